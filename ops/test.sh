#!/usr/bin/env bash
# The rix test command (README "Testing"; .ci/run calls exactly this):
#   1. ops/install-deps.sh     Debian packages + Python venv (no-op when present)
#   2. ops/start-services.sh   PostgreSQL 127.0.0.1:55432, RabbitMQ 127.0.0.1:5672 (no-op when up)
#   3. cargo fmt --all --check
#   4. cargo clippy --workspace --all-targets --locked -- -D warnings
#   5. cargo doc --no-deps --workspace --locked with RUSTDOCFLAGS=-D warnings (broken doc links)
#   6. cargo test --workspace --locked "$@"   (extra arguments go to cargo test)
# with the service URLs from $RIX_SERVICES_DIR/env in the environment. The services are left
# running afterwards; ops/stop-services.sh stops them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SERVICES_DIR="${RIX_SERVICES_DIR:-/var/tmp/rix-services}"

# cargo lives in ~/.cargo/bin on a rustup machine; a non-login shell may not have it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

T0=$SECONDS
step() { printf '\n==> [%s] %s  (+%ss)\n' "$1" "$2" "$((SECONDS - T0))"; }

step 1/6 "install dependencies (ops/install-deps.sh)"
ops/install-deps.sh

step 2/6 "start PostgreSQL and RabbitMQ (ops/start-services.sh)"
ops/start-services.sh
# shellcheck source=/dev/null
source "$SERVICES_DIR/env"
echo "RIX_TEST_POSTGRES_URL=$RIX_TEST_POSTGRES_URL"
echo "RIX_TEST_AMQP_URL=$RIX_TEST_AMQP_URL"
echo "RIX_PYTHON=$RIX_PYTHON"

command -v cargo >/dev/null 2>&1 || { echo "cargo not found on PATH" >&2; exit 1; }
# A one-shot build gains nothing from incremental caches, which would add gigabytes on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step 3/6 "cargo fmt --all --check"
cargo fmt --all --check

step 4/6 "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step 5/6 "cargo doc --no-deps --workspace --locked (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked

step 6/6 "cargo test --workspace --locked $*"
cargo test --workspace --locked "$@"

printf '\n==> all checks passed in %ss\n' "$((SECONDS - T0))"
