#!/usr/bin/env bash
# Start PostgreSQL and RabbitMQ for the rix tests and demo (DESIGN.md §8). Idempotent: a
# service that is already running and healthy is left alone.
#
#   PostgreSQL  cluster in $RIX_SERVICES_DIR/pg, 127.0.0.1:${RIX_PG_PORT:-55432}, trust auth,
#               superuser "postgres", log in $RIX_SERVICES_DIR/pg/log.
#               As root the cluster belongs to (and runs as) the "postgres" user; as the
#               postgres user it runs directly; as any other non-root user it is created and
#               run as that user (the superuser role is still called "postgres").
#               Test settings (fsync and synchronous_commit off) unless RIX_PG_DURABLE=1,
#               which runs it as production would (the benchmarks' PostgreSQL), e.g.
#               RIX_SERVICES_DIR=/var/tmp/rix-bench RIX_PG_PORT=55433 RIX_PG_DURABLE=1.
#   RabbitMQ    Debian's rabbitmq-server, node rabbit@localhost, AMQP on
#               127.0.0.1:${RIX_AMQP_PORT:-5672}, user guest/guest (allowed from loopback).
#               Data in /var/lib/rabbitmq, logs in /var/log/rabbitmq (Debian defaults).
#               Needs root (or the rabbitmq user, or sudo) because Debian's wrappers do.
#               ops/rabbitmq/definitions.json (or $RIX_RABBITMQ_DEFINITIONS) is imported on
#               every run when it exists (importing is idempotent): the exchanges, the
#               dead-letter exchange and queue, and the policies. The queues named in
#               $RIX_RABBITMQ_SKIP_QUEUES (default: rix.gateway, the production gateway's
#               queue) and their bindings are left out: no test gateway consumes from that
#               queue, and bound to rix.records it would pile up every batch the test suite
#               publishes. RIX_RABBITMQ_SKIP_QUEUES= (empty) imports the whole file.
#
# Writes $RIX_SERVICES_DIR/env with the URLs the tests read; `source` it.
# Install the software first with ops/install-deps.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="${RIX_SERVICES_DIR:-/var/tmp/rix-services}"
PG_PORT="${RIX_PG_PORT:-55432}"
AMQP_PORT="${RIX_AMQP_PORT:-5672}"
PG_DATA="$SERVICES_DIR/pg"
RABBIT_NODE="rabbit@localhost"
DEFINITIONS="${RIX_RABBITMQ_DEFINITIONS:-$REPO/ops/rabbitmq/definitions.json}"
PG_TIMEOUT=90       # seconds
RABBIT_TIMEOUT=120  # seconds

log() { printf '[start-services] %s\n' "$*"; }
die() { printf '[start-services] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
PG_DATA="$SERVICES_DIR/pg"

# Two runs at the same moment (two terminals; a test run while `rix demo` starts) would both
# find PostgreSQL down and both start it ("lock file postmaster.pid already exists"). So the
# script runs again under flock: one run at a time, the next waits and then finds everything
# up. -o: the lock is held by flock itself, never inherited by the daemons started here.
if [[ "${RIX_START_SERVICES_LOCKED:-}" != "$SERVICES_DIR" ]]; then
    export RIX_START_SERVICES_LOCKED="$SERVICES_DIR"
    exec flock -o "$SERVICES_DIR/start-services.lock" "${BASH_SOURCE[0]}" "$@"
fi

# --- PostgreSQL ----------------------------------------------------------------------------
PG_BIN=""
for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do   # newest version first
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then PG_BIN="$d"; break; fi
done
[[ -n "$PG_BIN" ]] || die "PostgreSQL server not found under /usr/lib/postgresql/*/bin; run ops/install-deps.sh"
PG_ISREADY="$PG_BIN/pg_isready"
PSQL="$PG_BIN/psql"
[[ -x "$PSQL" ]] || PSQL="$(command -v psql)" || die "psql not found; run ops/install-deps.sh"
[[ -x "$PG_ISREADY" ]] || PG_ISREADY="$(command -v pg_isready)" || die "pg_isready not found"

# Who owns and runs the cluster.
if [[ $(id -u) -eq 0 ]]; then
    PG_USER=postgres
    id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist; run ops/install-deps.sh"
else
    PG_USER="$(id -un)"   # non-root: the cluster belongs to whoever runs this script
fi

as_pg() {
    # Run a command as the cluster owner, from / (postgres may not be able to read the cwd).
    if [[ "$(id -un)" == "$PG_USER" ]]; then
        (cd / && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        local q; q="$(printf '%q ' "$@")"
        (cd / && su "$PG_USER" -s /bin/sh -c "$q")
    fi
}

pg_ready() { "$PG_ISREADY" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_ours_running() { [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

start_postgres() {
    if pg_ours_running && pg_ready; then
        log "PostgreSQL already running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
        return
    fi
    if ! pg_ours_running && pg_ready; then
        die "something else already answers on 127.0.0.1:$PG_PORT (not the cluster in $PG_DATA); stop it or set RIX_PG_PORT"
    fi

    local t0=$SECONDS
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "initialising PostgreSQL cluster in $PG_DATA (owner $PG_USER, $PG_BIN)"
        rm -rf "$PG_DATA"   # a partial leftover without PG_VERSION; nothing to keep
        mkdir -p "$PG_DATA"
        if [[ "$(id -un)" != "$PG_USER" ]]; then chown "$PG_USER:" "$PG_DATA"; fi
        chmod 700 "$PG_DATA"
        # The parent directories must be traversable by the owner.
        as_pg test -w "$PG_DATA" \
            || die "$PG_USER cannot write $PG_DATA (is a parent directory not traversable?); set RIX_SERVICES_DIR elsewhere"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$SERVICES_DIR/initdb.log" 2>&1 \
            || { cat "$SERVICES_DIR/initdb.log" >&2; die "initdb failed (log above, also in $SERVICES_DIR/initdb.log)"; }
    else
        local have want
        have="$(cat "$PG_DATA/PG_VERSION")"
        want="$(basename "$(dirname "$PG_BIN")")"
        [[ "$have" == "$want" ]] \
            || die "$PG_DATA holds a PostgreSQL $have cluster but the server is $want; remove $PG_DATA to recreate it"
        as_pg test -w "$PG_DATA" || die "$PG_DATA is not writable by $PG_USER (created by another user?)"
    fi

    local settings="-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c max_connections=300"
    if [[ -n "${RIX_PG_DURABLE:-}" ]]; then
        # A production server's durability (fsync, synchronous_commit and full-page writes on,
        # PostgreSQL's defaults) with memory sized for a catalogue of millions of records: what
        # the benchmarks' PostgreSQL figures are measured against.
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT (durable: fsync and synchronous_commit on)"
        settings+=" -c shared_buffers=2GB -c max_wal_size=8GB -c effective_cache_size=8GB"
    else
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        # fsync/synchronous_commit/full_page_writes off: fast and fine for throw-away test data.
        # A production PostgreSQL must NOT run with these settings (a crash can corrupt the data).
        settings+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" \
        -o "$settings" \
        -l "$PG_DATA/log" -w -t "$PG_TIMEOUT" start >/dev/null \
        || { tail -n 30 "$PG_DATA/log" >&2 || true; die "pg_ctl start failed (log: $PG_DATA/log)"; }

    local deadline=$((SECONDS + PG_TIMEOUT))
    until pg_ready; do
        ((SECONDS < deadline)) || { tail -n 30 "$PG_DATA/log" >&2 || true; die "PostgreSQL not ready after ${PG_TIMEOUT}s"; }
        sleep 0.5
    done
    log "PostgreSQL ready after $((SECONDS - t0))s"
}

# --- RabbitMQ ------------------------------------------------------------------------------
for c in rabbitmq-server rabbitmqctl rabbitmq-diagnostics; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found; run ops/install-deps.sh"
done

RMQ_PREFIX=()
if [[ $(id -u) -ne 0 && "$(id -un)" != rabbitmq ]]; then
    # Debian's wrappers only let root or the rabbitmq user run the server and CLI tools.
    command -v sudo >/dev/null 2>&1 \
        || die "RabbitMQ must be started as root (or user rabbitmq) and sudo is not available; run this script as root"
    RMQ_PREFIX=(sudo)
fi

rmq() {
    # Run a RabbitMQ command against our node. Debian's wrapper switches to the rabbitmq user
    # with plain `su`, which keeps these variables. Everything listens on loopback only:
    # AMQP (NODE_IP_ADDRESS), epmd (ERL_EPMD_ADDRESS) and Erlang distribution (25672).
    "${RMQ_PREFIX[@]}" env \
        RABBITMQ_NODENAME="$RABBIT_NODE" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$AMQP_PORT" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        "$@"
}

amqp_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") >/dev/null 2>&1; }
rabbit_ping() { rmq rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

ensure_localhost() {
    if ! getent hosts localhost >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]]; then
            log "adding '127.0.0.1 localhost' to /etc/hosts (node name $RABBIT_NODE needs it)"
            echo '127.0.0.1 localhost' >>/etc/hosts
        else
            die "'localhost' does not resolve; add '127.0.0.1 localhost' to /etc/hosts"
        fi
    fi
}

start_rabbitmq() {
    ensure_localhost
    if rabbit_ping && amqp_port_open; then
        log "RabbitMQ already running ($RABBIT_NODE, amqp 127.0.0.1:$AMQP_PORT)"
        return
    fi
    local t0=$SECONDS deadline=$((SECONDS + RABBIT_TIMEOUT))
    if rabbit_ping; then
        log "RabbitMQ node $RABBIT_NODE is up but 127.0.0.1:$AMQP_PORT is not open yet; waiting"
    else
        if amqp_port_open; then
            die "something else listens on 127.0.0.1:$AMQP_PORT but node $RABBIT_NODE does not answer; stop it or set RIX_AMQP_PORT"
        fi
        log "starting RabbitMQ ($RABBIT_NODE, amqp 127.0.0.1:$AMQP_PORT; logs in /var/log/rabbitmq)"
        # Detached Erlang processes (beam, epmd) must not hold our stdout/stderr open (a caller
        # reading our output to EOF would hang), so their startup output goes to a file.
        rmq rabbitmq-server -detached </dev/null >"$SERVICES_DIR/rabbitmq-start.log" 2>&1 \
            || { cat "$SERVICES_DIR/rabbitmq-start.log" >&2; die "rabbitmq-server -detached failed"; }
        until rabbit_ping; do
            ((SECONDS < deadline)) || die "RabbitMQ node $RABBIT_NODE did not answer ping within ${RABBIT_TIMEOUT}s (see /var/log/rabbitmq)"
            sleep 1
        done
    fi
    # The node answers ping before the broker has booted; wait for the boot and the port.
    rmq rabbitmqctl -q await_startup --timeout "$RABBIT_TIMEOUT" >/dev/null \
        || die "RabbitMQ did not finish booting (see /var/log/rabbitmq)"
    until amqp_port_open; do
        ((SECONDS < deadline)) || die "RabbitMQ AMQP port 127.0.0.1:$AMQP_PORT not open within ${RABBIT_TIMEOUT}s (see /var/log/rabbitmq)"
        sleep 0.5
    done
    log "RabbitMQ ready after $((SECONDS - t0))s"
}

import_definitions() {
    [[ -f "$DEFINITIONS" ]] || return 0
    # The CLI runs as the rabbitmq user, which may not be able to read the checkout: write the
    # (filtered) file somewhere readable first.
    local copy="$SERVICES_DIR/rabbitmq-definitions.json"
    local skip="${RIX_RABBITMQ_SKIP_QUEUES-rix.gateway}"
    local py
    py="$(command -v python3)" || die "python3 is needed to filter $DEFINITIONS; run ops/install-deps.sh"
    "$py" "$REPO/ops/rabbitmq/filter-definitions.py" "$DEFINITIONS" "$copy.tmp" "$skip" \
        || die "cannot read RabbitMQ definitions $DEFINITIONS"
    chmod 0644 "$copy.tmp"
    mv -f "$copy.tmp" "$copy"
    log "importing RabbitMQ definitions from $DEFINITIONS${skip:+ (without queue(s) $skip)}"
    rmq rabbitmqctl -q import_definitions "$copy" >/dev/null \
        || die "rabbitmqctl import_definitions $DEFINITIONS failed"
}

# --- go --------------------------------------------------------------------------------------
start_postgres
# pg_trgm ships with Debian's server package; fail early when it is missing.
"$PSQL" -X -q -v ON_ERROR_STOP=1 "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_trgm" >/dev/null 2>&1 \
    || die "pg_trgm is not available in PostgreSQL on 127.0.0.1:$PG_PORT (is the contrib part of the server installed?)"

start_rabbitmq
import_definitions

PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
PY="$SERVICES_DIR/venv/bin/python"
ENV_FILE="$SERVICES_DIR/env"
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
{
    echo "# Written by ops/start-services.sh; source it before running the tests."
    printf 'export RIX_SERVICES_DIR=%q\n' "$SERVICES_DIR"
    printf 'export RIX_TEST_POSTGRES_URL=%q\n' "$PG_URL"
    printf 'export RIX_TEST_AMQP_URL=%q\n' "$AMQP_URL"
    printf 'export RIX_PYTHON=%q\n' "$PY"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$ENV_FILE"
[[ -x "$PY" ]] || log "warning: $PY does not exist yet (run ops/install-deps.sh)"

cat <<EOF
[start-services] ready:
  PostgreSQL  $PG_URL   (data+log: $PG_DATA, runs as $PG_USER)
  RabbitMQ    $AMQP_URL   (node $RABBIT_NODE, logs: /var/log/rabbitmq)
  Python      $PY
  env file    $ENV_FILE   (source it: . $ENV_FILE)
  stop with   ops/stop-services.sh
EOF
