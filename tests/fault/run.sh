#!/usr/bin/env bash
# The fault-injection suite (tests/fault): builds the `dealflow` binary and the suite (debug
# profile, what CI's test build already produced), then runs it. Extra arguments go to the
# suite, e.g. `bash tests/fault/run.sh --seed 42`. Needs nisshi on PATH (or NISSHI_BIN) and
# PostgreSQL at 127.0.0.1:5432 (user postgres; FAULT_POSTGRES_URL overrides).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dealflow/target}"
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --quiet -p dealflow --bin dealflow -p dealflow-fault --bin dealflow-fault
exec "$CARGO_TARGET_DIR/debug/dealflow-fault" --dealflow-bin "$CARGO_TARGET_DIR/debug/dealflow" "$@"
