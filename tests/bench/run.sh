#!/usr/bin/env bash
# dealflow's benchmark suite (issue 9): builds in release, runs every benchmark, prints the
# tables and appends them to BENCHMARKS.md with the command, the machine and the date.
#
#   tests/bench/run.sh
#
# Knobs (environment):
#   BENCH_SECONDS=10            seconds per wrk run (ingest)
#   BENCH_CONNECTIONS=64,256    wrk connection counts
#   BENCH_KAFKA=1               also ingest on Kafka (nisshi, built with `cargo install nisshi`)
#   BENCH_PROFILE=1             perf-profile one more embedded-log ingest run (needs perf)
#   BENCH_ENRICHER=1            the enricher burst (5,000 orders) and 50 accounts
#   BENCH_PROJECTOR_EVENTS=100000  events for the projector bench (1000000 for the 1M replay)
#   BENCH_PROJECTOR_DB=both     sqlite, postgres or both (postgres: postgres@127.0.0.1:5432)
#   BENCH_PROJECTOR_TIMEOUT=1800  seconds before the projector bench is given up
#   BENCH_BACKFILL=0            also run the enricher's backfill test (5,000 orders, debug build)
#   BENCH_OUT=BENCHMARKS.md     where to append ("-" prints only)
# Not part of `cargo nextest run --workspace`: nothing here is a test.
set -euo pipefail

cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/dealflow/target}
export PATH="$HOME/.cargo/bin:$PATH"
SECS=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64,256}
KAFKA=${BENCH_KAFKA:-1}
PROFILE=${BENCH_PROFILE:-1}
ENRICHER=${BENCH_ENRICHER:-1}
PROJECTOR_EVENTS=${BENCH_PROJECTOR_EVENTS:-100000}
PROJECTOR_DB=${BENCH_PROJECTOR_DB:-both}
BACKFILL=${BENCH_BACKFILL:-0}
OUT=${BENCH_OUT:-BENCHMARKS.md}

say() { echo "== $*" >&2; }

# What the suite needs: wrk (Debian), perf if profiling, nisshi if Kafka.
if ! command -v wrk >/dev/null; then
    say "installing wrk"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q wrk
fi
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null; then
    say "perf not found: skipping the profile"; PROFILE=0
fi
if [ "$KAFKA" = 1 ] && ! command -v nisshi >/dev/null; then
    say "nisshi not on PATH (cargo install nisshi): skipping ingest on Kafka"; KAFKA=0
fi

say "building in release"
cargo build --release -p dealflow-bench
BENCH="$CARGO_TARGET_DIR/release/dealflow-bench"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
REPORT="$WORK/report.md"

{
    echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — commit ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "?")}"
    echo
    echo "Command: \`tests/bench/run.sh\` (BENCH_SECONDS=$SECS BENCH_CONNECTIONS=$CONNS BENCH_KAFKA=$KAFKA BENCH_PROJECTOR_EVENTS=$PROJECTOR_EVENTS BENCH_PROJECTOR_DB=$PROJECTOR_DB)"
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, $(uname -sr), load average at start $(cut -d" " -f1-3 /proc/loadavg); load generator and servers share the cores."
    echo
} >"$REPORT"

say "ingest"
INGEST_ARGS=(ingest --seconds "$SECS" --connections "$CONNS")
[ "$KAFKA" = 1 ] || INGEST_ARGS+=(--no-kafka)
[ "$PROFILE" = 1 ] && INGEST_ARGS+=(--profile "$WORK/perf.data")
"$BENCH" "${INGEST_ARGS[@]}" >>"$REPORT"

if [ "$PROFILE" = 1 ] && [ -s "$WORK/perf.data" ]; then
    say "profile"
    {
        echo "<details><summary>Where ingest's time goes (embedded log, c${CONNS%%,*}, perf record -F 499 -g of the server process)</summary>"
        echo
        echo '```'
        samples=$(perf script -i "$WORK/perf.data" -F comm 2>/dev/null | wc -l)
        echo "server process on CPU: $(awk -v n="$samples" -v s="$SECS" 'BEGIN {printf "%.2f", n / (s * 499)}') cores of $(nproc) (wrk and the rest of the machine use the others)"
        echo
        perf report -i "$WORK/perf.data" --stdio --no-children --sort comm,dso \
            2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *$//' | head -8
        echo
        perf report -i "$WORK/perf.data" --stdio --no-children --sort comm,sym \
            --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *$//' | cut -c1-150 | head -30
        echo '```'
        echo "</details>"
        echo
    } >>"$REPORT"
fi

if [ "$ENRICHER" = 1 ]; then
    say "enricher"
    "$BENCH" enricher >>"$REPORT"
fi

if [ "$PROJECTOR_EVENTS" -gt 0 ]; then
    say "projector ($PROJECTOR_EVENTS events)"
    {
        echo "#### Projector (\`cargo bench -p dealflow-projector --bench projector-bench -- --events $PROJECTOR_EVENTS --database $PROJECTOR_DB\`)"
        echo
        echo '```'
        timeout "${BENCH_PROJECTOR_TIMEOUT:-1800}" \
            cargo bench -q -p dealflow-projector --bench projector-bench -- \
            --events "$PROJECTOR_EVENTS" --database "$PROJECTOR_DB" 2>/dev/null \
            || echo "(projector bench failed or timed out: exit $?)"
        echo '```'
        echo
    } >>"$REPORT"
fi

if [ "$BACKFILL" = 1 ]; then
    say "enricher backfill"
    {
        echo "#### Backfill (\`cargo test -p dealflow-enricher --test backfill -- --nocapture\`)"
        echo
        echo '```'
        cargo test -q -p dealflow-enricher --test backfill -- --nocapture 2>/dev/null | grep -i 'orders/s'
        echo '```'
        echo
    } >>"$REPORT"
fi

cat "$REPORT"
if [ "$OUT" != "-" ]; then
    [ -f "$OUT" ] || printf '# Benchmarks\n\nFigures from `tests/bench/run.sh`, newest last.\n\n' >"$OUT"
    cat "$REPORT" >>"$OUT"
    say "appended to $OUT"
fi
