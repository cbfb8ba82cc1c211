#!/usr/bin/env bash
# Install what the rix test suite and demo need on a Debian 12 machine:
#   - Debian packages: postgresql (server 15, ships pg_trgm), rabbitmq-server, and the
#     build tools (gcc, pkg-config, libssl-dev).
#   - A Python venv at $RIX_SERVICES_DIR/venv with jsonschema + referencing (the independent
#     JSON Schema validator used by schema/tests/independent_validator.rs via RIX_PYTHON) and
#     cryptography (the independent verifier of signed records, gateway/tests/verifier.py) and
#     playwright (drives Debian's Chromium in the portal's browser test, gateway/tests/browser.py;
#     the browser is Debian's, `playwright install` is never run) and sickle (the stock OAI-PMH
#     harvester of the gateway's OAI-PMH test, gateway/tests/harvester.py).
#   - Debian's chromium and a CJK font (fonts-noto-cjk) for that test and its screenshots.
#   - xmllint (libxml2-utils): every OAI-PMH response is validated against the official XSDs.
#
# Idempotent: when everything is already present it does nothing (no apt-get update).
# Packages are installed without starting any service (a temporary /usr/sbin/policy-rc.d
# returning 101); ops/start-services.sh starts what the tests need.
#
# Needs root for apt-get. When not root it uses sudo if available; otherwise it fails and
# says what to run.
set -euo pipefail

SERVICES_DIR="${RIX_SERVICES_DIR:-/var/tmp/rix-services}"
VENV="$SERVICES_DIR/venv"
PY_PACKAGES=(jsonschema referencing cryptography playwright sickle)

log() { printf '[install-deps] %s\n' "$*"; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

# --- privilege handling --------------------------------------------------------------------
SUDO=()
need_root() {
    # Sets SUDO so that "${SUDO[@]}" cmd runs cmd as root; fails clearly when impossible.
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "root is needed to install Debian packages ($*) and sudo is not available.
Run as root:  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $*
then run this script again."
    fi
}

pkg_installed() {
    # True when the Debian package $1 is installed (status "install ok installed").
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

pg_server_present() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null \
        && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# --- Debian packages -----------------------------------------------------------------------
missing=()
for p in gcc pkg-config libssl-dev ca-certificates chromium fonts-noto-cjk libxml2-utils; do
    pkg_installed "$p" || missing+=("$p")
done
if ! pg_server_present || ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    missing+=(postgresql postgresql-client)
fi
if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1 \
    || ! command -v rabbitmq-diagnostics >/dev/null 2>&1; then
    missing+=(rabbitmq-server)
fi

# Python with a working venv module (pyenv's python3 if it is on PATH, else the system one).
PYTHON=""
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        PYTHON="$(command -v "$cand")"
        break
    fi
done
if [[ -z "$PYTHON" ]] && ! [[ -x "$VENV/bin/python" ]]; then
    missing+=(python3 python3-venv)
fi

if ((${#missing[@]} > 0)); then
    need_root "${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Keep package maintainer scripts from starting services (there is no systemd and
        # ops/start-services.sh runs them with our own settings). Removed again below.
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() {
        if [[ $created_policy -eq 1 ]]; then
            "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
        fi
    }
    trap cleanup_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    cleanup_policy
    trap - EXIT
    pg_server_present || die "PostgreSQL server binaries still missing under /usr/lib/postgresql/*/bin"
    command -v rabbitmq-server >/dev/null 2>&1 || die "rabbitmq-server still missing after apt-get install"
else
    log "Debian packages present (postgresql, rabbitmq-server, gcc, pkg-config, libssl-dev, chromium, fonts-noto-cjk, libxml2-utils)"
fi

# --- Python venv for the independent JSON Schema validator ---------------------------------
venv_ok() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import jsonschema, referencing, cryptography, playwright, sickle' >/dev/null 2>&1
}
if venv_ok; then
    log "Python venv present: $VENV"
else
    if [[ -z "$PYTHON" ]]; then
        for cand in /usr/bin/python3 python3; do
            if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
                PYTHON="$(command -v "$cand")"
                break
            fi
        done
    fi
    [[ -n "$PYTHON" ]] || die "no python3 with the venv module (install python3-venv)"
    mkdir -p "$SERVICES_DIR"
    if [[ -d "$VENV" ]] && ! [[ -x "$VENV/bin/pip" ]]; then
        rm -rf "$VENV"   # broken leftover
    fi
    log "creating Python venv $VENV with $PYTHON"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    venv_ok || die "venv $VENV cannot import ${PY_PACKAGES[*]}"
    log "Python venv ready: $VENV ($("$VENV/bin/python" -c 'import jsonschema, importlib.metadata as m; print("jsonschema", m.version("jsonschema"), "referencing", m.version("referencing"))'))"
fi
