#!/usr/bin/env bash
# Stop the PostgreSQL and RabbitMQ started by ops/start-services.sh. Tolerant: a service that
# is not running (or not installed) is skipped. Data stays in place; start-services.sh
# starts the same cluster/node again.
set -euo pipefail

SERVICES_DIR="${RIX_SERVICES_DIR:-/var/tmp/rix-services}"
PG_DATA="$SERVICES_DIR/pg"
AMQP_PORT="${RIX_AMQP_PORT:-5672}"
RABBIT_NODE="rabbit@localhost"
STOP_TIMEOUT=60  # seconds

log() { printf '[stop-services] %s\n' "$*"; }
warn() { printf '[stop-services] WARNING: %s\n' "$*" >&2; }

# --- PostgreSQL ----------------------------------------------------------------------------
stop_postgres() {
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "PostgreSQL: no cluster in $PG_DATA, nothing to stop"
        return
    fi
    local pg_bin
    pg_bin="/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin"
    if [[ ! -x "$pg_bin/pg_ctl" ]]; then
        warn "PostgreSQL: $pg_bin/pg_ctl not found; cannot stop the cluster in $PG_DATA"
        return
    fi
    # Same user choice as start-services.sh: postgres when root, else the current user.
    local run=()
    if [[ $(id -u) -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then run=(runuser -u postgres --); else run=(su postgres -s /bin/sh -c); fi
    fi
    pgctl() {
        if [[ ${#run[@]} -gt 0 && "${run[0]}" == su ]]; then
            (cd / && "${run[@]}" "$(printf '%q ' "$pg_bin/pg_ctl" "$@")")
        else
            (cd / && "${run[@]}" "$pg_bin/pg_ctl" "$@")
        fi
    }
    if ! pgctl -D "$PG_DATA" status >/dev/null 2>&1; then
        log "PostgreSQL: not running"
        return
    fi
    log "PostgreSQL: stopping ($PG_DATA)"
    pgctl -D "$PG_DATA" stop -m fast -w -t "$STOP_TIMEOUT" >/dev/null \
        || warn "PostgreSQL: pg_ctl stop failed (log: $PG_DATA/log)"
}

# --- RabbitMQ ------------------------------------------------------------------------------
stop_rabbitmq() {
    if ! command -v rabbitmqctl >/dev/null 2>&1; then
        log "RabbitMQ: not installed, nothing to stop"
        return
    fi
    local prefix=()
    if [[ $(id -u) -ne 0 && "$(id -un)" != rabbitmq ]]; then
        if command -v sudo >/dev/null 2>&1; then prefix=(sudo); else
            warn "RabbitMQ: need root (or sudo) to run rabbitmqctl; not stopped"
            return
        fi
    fi
    rmq() { "${prefix[@]}" env RABBITMQ_NODENAME="$RABBIT_NODE" ERL_EPMD_ADDRESS=127.0.0.1 "$@"; }
    if ! rmq rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        log "RabbitMQ: node $RABBIT_NODE not running"
        return
    fi
    local pid
    pid="$(rmq rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc '0-9')" || pid=""
    log "RabbitMQ: stopping node $RABBIT_NODE${pid:+ (pid $pid)}"
    rmq rabbitmqctl -q stop >/dev/null 2>&1 || warn "RabbitMQ: rabbitmqctl stop failed"
    # `stop` returns once the node has been told to halt, before the OS process has exited;
    # wait until it is really gone so that a start right after works.
    local deadline=$((SECONDS + STOP_TIMEOUT))
    proc_alive() {
        [[ -n "$pid" ]] || return 1
        local stat
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
        stat="${stat##*) }"    # state letter follows "pid (comm) "
        [[ -n "$stat" && "$stat" != Z* && "$stat" != X* ]]
    }
    while proc_alive || (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") >/dev/null 2>&1 \
        || rmq rabbitmq-diagnostics -q ping >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            warn "RabbitMQ: node still up ${STOP_TIMEOUT}s after rabbitmqctl stop"
            return
        fi
        sleep 0.5
    done
    # epmd (Erlang's port mapper, 127.0.0.1:4369) is left running: it is harmless, and any
    # RabbitMQ CLI command starts it again anyway.
    log "RabbitMQ: stopped"
}

stop_postgres
stop_rabbitmq
