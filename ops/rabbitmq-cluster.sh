#!/usr/bin/env bash
# A local three-node RabbitMQ cluster on this machine, for the broker-failover tests and for
# trying a clustered deployment (ops/DEPLOY.md "RabbitMQ cluster"). It lives beside the single
# test broker of ops/start-services.sh and never touches it: other node names, ports, data,
# logs and Erlang cookie.
#
#   ops/rabbitmq-cluster.sh start  [DIR]   start the three nodes, form the cluster, import the
#                                          definitions; a no-op when it is up (idempotent)
#   ops/rabbitmq-cluster.sh stop   [DIR]   stop the three nodes (data kept: start again later)
#   ops/rabbitmq-cluster.sh status [DIR]   which nodes run, and the cluster's view; exit 1
#                                          unless all three run in one cluster
#   ops/rabbitmq-cluster.sh destroy [DIR]  stop, then delete DIR
#   ops/rabbitmq-cluster.sh stop-node N    stop the broker on node N (1-3; `stop_app`: the
#                                          Erlang VM stays, its clients are disconnected)
#   ops/rabbitmq-cluster.sh kill-node N    SIGKILL node N's Erlang VM (a crash: no goodbye to
#                                          its clients or its cluster)
#   ops/rabbitmq-cluster.sh start-node N   start it again (its broker, or its whole VM after a
#                                          kill) and wait until it has booted
#   ops/rabbitmq-cluster.sh ctl N ARGS…    rabbitmqctl ARGS against node N (the cookie and
#                                          environment set), e.g. `ctl 1 list_queues`
#
#   DIR         ${RIX_CLUSTER_DIR:-/var/tmp/rix-cluster}: per node cN/ (mnesia, log,
#               enabled_plugins, start.log), home/.erlang.cookie (the cluster's own cookie),
#               env (the URLs, written by start).
#   nodes       rix-c1@localhost, rix-c2@localhost, rix-c3@localhost
#   AMQP        127.0.0.1:5701, :5702, :5703   (${RIX_CLUSTER_AMQP_BASE:-5700} + N)
#   Erlang dist 127.0.0.1:25701, :25702, :25703 (AMQP port + 20000)
#   plugins     none (no management listener, so no port clash with the single broker)
#   users       guest/guest (loopback only) and those of ops/rabbitmq/definitions.json, imported
#               with the exchanges, queues and policies; the queues named in
#               $RIX_RABBITMQ_SKIP_QUEUES (default rix.gateway) are left out, as in
#               ops/start-services.sh.
#
# The nodes run as the rabbitmq user, as Debian's own wrappers run the single broker, but with
# HOME=DIR/home so that they and this script's rabbitmqctl read the cluster's cookie, never
# /var/lib/rabbitmq/.erlang.cookie. Run it as root (CI) or as the rabbitmq user; any other user
# goes through sudo.
#
# Writes DIR/env with RIX_TEST_CLUSTER_AMQP_URLS (the three URLs, comma-separated: what a
# node's or a gateway's amqp_url takes); `source` it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/ops/rabbitmq-cluster.sh"
AMQP_BASE="${RIX_CLUSTER_AMQP_BASE:-5700}"
DEFINITIONS="${RIX_RABBITMQ_DEFINITIONS:-$REPO/ops/rabbitmq/definitions.json}"
NODES=(1 2 3)
BOOT_TIMEOUT=180  # seconds, for the three nodes together on a busy two-core machine

log() { printf '[rabbitmq-cluster] %s\n' "$*"; }
die() { printf '[rabbitmq-cluster] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

ARGS=("$@")
cmd="${1:-}"; [[ -n "$cmd" ]] || usage
shift
N=""
case "$cmd" in
    start|stop|status|destroy) [[ $# -le 1 ]] || usage; DIR="${1:-${RIX_CLUSTER_DIR:-/var/tmp/rix-cluster}}" ;;
    stop-node|kill-node|start-node) [[ $# -eq 1 ]] || usage; N="$1"; DIR="${RIX_CLUSTER_DIR:-/var/tmp/rix-cluster}" ;;
    ctl) [[ $# -ge 2 ]] || usage; N="$1"; shift; DIR="${RIX_CLUSTER_DIR:-/var/tmp/rix-cluster}" ;;
    *) usage ;;
esac
if [[ -n "$N" ]]; then [[ "$N" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3, not '$N'"; fi

# Debian's wrappers let only root or the rabbitmq user run RabbitMQ; so does this script.
if [[ $(id -u) -ne 0 && "$(id -un)" != rabbitmq ]]; then
    command -v sudo >/dev/null 2>&1 || die "run this as root (or user rabbitmq); sudo is not available"
    exec sudo RIX_CLUSTER_DIR="$DIR" RIX_CLUSTER_AMQP_BASE="$AMQP_BASE" \
        RIX_RABBITMQ_DEFINITIONS="$DEFINITIONS" \
        ${RIX_RABBITMQ_SKIP_QUEUES+RIX_RABBITMQ_SKIP_QUEUES="$RIX_RABBITMQ_SKIP_QUEUES"} \
        "$SELF" "${ARGS[@]}"
fi

# The programs behind Debian's /usr/sbin wrappers (which would reset HOME to the rabbitmq
# user's, and with it the cookie); elsewhere the ones on PATH.
RMQ_BIN=/usr/lib/rabbitmq/bin
if [[ ! -x "$RMQ_BIN/rabbitmq-server" ]]; then
    RMQ_BIN="$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /nonexistent/x)")"
fi
for c in rabbitmq-server rabbitmqctl rabbitmq-diagnostics; do
    [[ -x "$RMQ_BIN/$c" ]] || die "$c not found; run ops/install-deps.sh"
done

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
HOME_DIR="$DIR/home"

node_name() { echo "rix-c$1@localhost"; }
amqp_port() { echo $((AMQP_BASE + $1)); }

as_rabbitmq() {
    # Run a command as the rabbitmq user (already that user: directly), from DIR.
    if [[ "$(id -un)" == rabbitmq ]]; then
        (cd "$DIR" && "$@")
    else
        (cd "$DIR" && runuser -u rabbitmq -- "$@")
    fi
}

rmq() {
    # Run RabbitMQ program $2… for node $1 with the cluster's environment. Everything listens on
    # loopback: AMQP, epmd and Erlang distribution.
    local n="$1"; shift
    local prog="$1"; shift
    as_rabbitmq env \
        HOME="$HOME_DIR" \
        RABBITMQ_NODENAME="$(node_name "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
        RABBITMQ_DIST_PORT="$(( $(amqp_port "$n") + 20000 ))" \
        RABBITMQ_MNESIA_BASE="$DIR/c$n/mnesia" \
        RABBITMQ_LOG_BASE="$DIR/c$n/log" \
        RABBITMQ_PID_FILE="$DIR/c$n/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/c$n/enabled_plugins" \
        RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config" \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
        "$RMQ_BIN/$prog" "$@"
}

ctl() { local n="$1"; shift; rmq "$n" rabbitmqctl -n "$(node_name "$n")" "$@"; }
diag() { local n="$1"; shift; rmq "$n" rabbitmq-diagnostics -n "$(node_name "$n")" "$@"; }

vm_up() { diag "$1" -q ping >/dev/null 2>&1; }
app_running() { diag "$1" -q check_running >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$(amqp_port "$1")") >/dev/null 2>&1; }

ensure_localhost() {
    getent hosts localhost >/dev/null 2>&1 && return
    [[ $(id -u) -eq 0 ]] || die "'localhost' does not resolve; add '127.0.0.1 localhost' to /etc/hosts"
    log "adding '127.0.0.1 localhost' to /etc/hosts (the node names need it)"
    echo '127.0.0.1 localhost' >>/etc/hosts
}

prepare_dirs() {
    id rabbitmq >/dev/null 2>&1 || die "user 'rabbitmq' does not exist; run ops/install-deps.sh"
    chmod 0755 "$DIR"
    mkdir -p "$HOME_DIR"
    for n in "${NODES[@]}"; do
        mkdir -p "$DIR/c$n/mnesia" "$DIR/c$n/log"
        # No plugins: the management and prometheus listeners would clash with the single broker's.
        echo '[].' >"$DIR/c$n/enabled_plugins"
    done
    # Empty on purpose: /etc/rabbitmq's files belong to the single broker.
    : >"$DIR/rabbitmq-env.conf"
    : >"$DIR/rabbitmq.conf"
    echo '[].' >"$DIR/advanced.config"
    if [[ ! -s "$HOME_DIR/.erlang.cookie" ]]; then
        # The cluster's own cookie: nodes and CLI share it, the single broker never sees it.
        local cookie
        cookie="$(python3 -c 'import secrets; print(secrets.token_hex(16).upper())')"
        (umask 077 && printf '%s' "$cookie" >"$HOME_DIR/.erlang.cookie")
    fi
    if [[ "$(id -un)" != rabbitmq ]]; then
        chown -R rabbitmq:rabbitmq "$DIR/home" "$DIR"/c[123]
    fi
    chmod 0700 "$HOME_DIR"
    chmod 0400 "$HOME_DIR/.erlang.cookie"
}

wait_booted() {
    # Waits until node $1's broker has booted and its AMQP port is open.
    local n="$1" deadline="$2"
    until vm_up "$n"; do
        ((SECONDS < deadline)) || die "node $(node_name "$n") did not answer ping (log: $DIR/c$n/log, $DIR/c$n/start.log)"
        sleep 1
    done
    local left=$((deadline - SECONDS)); ((left > 0)) || left=1
    ctl "$n" -q await_startup --timeout "$left" >/dev/null \
        || die "node $(node_name "$n") did not finish booting (log: $DIR/c$n/log)"
    until port_open "$n"; do
        ((SECONDS < deadline)) || die "AMQP port $(amqp_port "$n") of $(node_name "$n") not open"
        sleep 0.5
    done
}

cluster_members() {
    # The running nodes node $1 sees in its cluster, one a line.
    ctl "$1" -q cluster_status --formatter json 2>/dev/null | python3 -c '
import json, sys
print("\n".join(json.load(sys.stdin).get("running_nodes", [])))'
}

formed() {
    local m
    m="$(cluster_members 1 2>/dev/null | sort | tr '\n' ' ')" || return 1
    [[ "$m" == "$(printf '%s\n' "$(node_name 1)" "$(node_name 2)" "$(node_name 3)" | sort | tr '\n' ' ')" ]]
}

import_definitions() {
    [[ -f "$DEFINITIONS" ]] || return 0
    local copy="$DIR/definitions.json"
    local skip="${RIX_RABBITMQ_SKIP_QUEUES-rix.gateway}"
    python3 "$REPO/ops/rabbitmq/filter-definitions.py" "$DEFINITIONS" "$copy.tmp" "$skip" \
        || die "cannot read RabbitMQ definitions $DEFINITIONS"
    chmod 0644 "$copy.tmp"
    mv -f "$copy.tmp" "$copy"
    log "importing RabbitMQ definitions from $DEFINITIONS${skip:+ (without queue(s) $skip)}"
    ctl 1 -q import_definitions "$copy" >/dev/null || die "rabbitmqctl import_definitions failed"
}

write_env() {
    local urls=() n
    for n in "${NODES[@]}"; do urls+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f"); done
    local joined; joined="$(IFS=,; echo "${urls[*]}")"
    local tmp; tmp="$(mktemp "$DIR/env.XXXXXX")"
    {
        echo "# Written by ops/rabbitmq-cluster.sh; source it."
        printf 'export RIX_CLUSTER_DIR=%q\n' "$DIR"
        # Single quotes, not %q (which escapes the commas): simple for other programs to read.
        printf "export RIX_TEST_CLUSTER_AMQP_URLS='%s'\n" "$joined"
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DIR/env"
    echo "$joined"
}

start() {
    ensure_localhost
    command -v python3 >/dev/null 2>&1 || die "python3 is needed; run ops/install-deps.sh"
    # running_nodes lists the nodes whose broker runs: all three means up and clustered.
    if formed; then
        log "cluster already running (amqp 127.0.0.1:$(amqp_port 1)-$(amqp_port 3), dir $DIR)"
        write_env >/dev/null
        return
    fi
    prepare_dirs
    local t0=$SECONDS deadline=$((SECONDS + BOOT_TIMEOUT)) n
    # All three at once: nodes that were clustered before wait for each other while booting.
    for n in "${NODES[@]}"; do
        if vm_up "$n"; then
            app_running "$n" || { log "starting the broker on $(node_name "$n") (its VM is up)"; ctl "$n" -q start_app >/dev/null & }
            continue
        fi
        port_open "$n" && die "something else listens on 127.0.0.1:$(amqp_port "$n"); stop it or set RIX_CLUSTER_AMQP_BASE"
        log "starting $(node_name "$n") (amqp 127.0.0.1:$(amqp_port "$n"), log $DIR/c$n/log)"
        # Detached Erlang processes must not hold our stdout open: their output goes to a file.
        rmq "$n" rabbitmq-server -detached </dev/null >"$DIR/c$n/start.log" 2>&1 \
            || { cat "$DIR/c$n/start.log" >&2; die "rabbitmq-server -detached failed for $(node_name "$n")"; }
    done
    for n in "${NODES[@]}"; do wait_booted "$n" "$deadline"; done
    wait  # the start_app calls, if any
    for n in 2 3; do
        if ! cluster_members "$n" | grep -qx "$(node_name 1)"; then
            log "joining $(node_name "$n") to $(node_name 1)"
            ctl "$n" -q stop_app >/dev/null
            ctl "$n" -q reset >/dev/null
            ctl "$n" -q join_cluster "$(node_name 1)" >/dev/null \
                || die "$(node_name "$n") could not join $(node_name 1) (log: $DIR/c$n/log)"
            ctl "$n" -q start_app >/dev/null
            wait_booted "$n" "$deadline"
        fi
    done
    until formed; do
        ((SECONDS < deadline)) || { ctl 1 cluster_status >&2 || true; die "the cluster did not form within ${BOOT_TIMEOUT}s"; }
        sleep 1
    done
    import_definitions
    log "cluster of three ready after $((SECONDS - t0))s"
}

stop_all() {
    local n pids=()
    for n in "${NODES[@]}"; do
        if vm_up "$n"; then
            log "stopping $(node_name "$n")"
            ctl "$n" -q stop >/dev/null 2>&1 &
            pids+=($!)
        fi
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
}

status() {
    local n ok=0
    for n in "${NODES[@]}"; do
        if app_running "$n"; then
            echo "$(node_name "$n")  running  amqp 127.0.0.1:$(amqp_port "$n")"
        elif vm_up "$n"; then
            echo "$(node_name "$n")  broker stopped (VM up)"; ok=1
        else
            echo "$(node_name "$n")  down"; ok=1
        fi
    done
    if formed; then echo "cluster: all three running together"; else echo "cluster: not formed"; ok=1; fi
    return $ok
}

# Two starts at the same moment would both find the nodes down; one at a time (the lock is
# held by flock itself, never inherited by the daemons).
if [[ "$cmd" != ctl && "${RIX_CLUSTER_LOCKED:-}" != "$DIR" ]]; then
    export RIX_CLUSTER_LOCKED="$DIR"
    exec flock -o "$DIR/cluster.lock" "$SELF" "${ARGS[@]}"
fi

case "$cmd" in
    start)
        start
        urls="$(write_env)"
        log "ready: $urls (env: $DIR/env)"
        ;;
    stop) stop_all ;;
    destroy) stop_all; rm -rf "$DIR"; log "removed $DIR" ;;
    status) status ;;
    stop-node)
        ctl "$N" -q stop_app >/dev/null || die "could not stop the broker on $(node_name "$N")"
        log "stopped the broker on $(node_name "$N")"
        ;;
    kill-node)
        pid="$(cat "$DIR/c$N/pid" 2>/dev/null)" || die "no pid file for $(node_name "$N") ($DIR/c$N/pid)"
        [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid file $DIR/c$N/pid"
        # Only that node's VM: a stale pid file may name a process that is something else now.
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx -- "RABBITMQ_NODENAME=$(node_name "$N")" \
            || die "$(node_name "$N") is not running (pid $pid is not its VM)"
        kill -KILL "$pid" || die "could not kill $(node_name "$N") (pid $pid)"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        log "killed $(node_name "$N") (pid $pid)"
        ;;
    start-node)
        if vm_up "$N"; then
            ctl "$N" -q start_app >/dev/null \
                || die "could not start the broker on $(node_name "$N") (log: $DIR/c$N/log)"
        else
            rmq "$N" rabbitmq-server -detached </dev/null >"$DIR/c$N/start.log" 2>&1 \
                || { cat "$DIR/c$N/start.log" >&2; die "rabbitmq-server -detached failed for $(node_name "$N")"; }
            wait_booted "$N" $((SECONDS + BOOT_TIMEOUT))
        fi
        # start_app returns once the broker has booted; the listener follows at once.
        deadline=$((SECONDS + BOOT_TIMEOUT))
        until port_open "$N"; do
            ((SECONDS < deadline)) || die "AMQP port $(amqp_port "$N") of $(node_name "$N") not open"
            sleep 0.2
        done
        log "started the broker on $(node_name "$N")"
        ;;
    ctl) ctl "$N" "$@" ;;
esac
