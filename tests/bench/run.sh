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
#   BENCH_INGEST_ROUNDS=3       rounds over every ingest target, interleaved (medians)
#   BENCH_KAFKA_VARIANTS=       more Kafka ingest targets, each `key=value;…` librdkafka
#                               producer properties, separated by `|` (e.g. `linger.ms=5|compression.type=lz4`)
#   BENCH_PROFILE=1             perf-profile one more embedded-log ingest run (needs perf)
#   BENCH_ENRICHER=1            the enricher burst (5,000 orders) and 50 accounts
#   BENCH_PROJECTOR_EVENTS=100000  events for the projector bench (1000000 for the 1M replay)
#   BENCH_PROJECTOR_DB=both     sqlite, postgres or both (postgres: postgres@127.0.0.1:5432)
#   BENCH_PROJECTOR_TIMEOUT=1800  seconds before the projector bench is given up
#   BENCH_BACKFILL=0            also run the enricher's backfill test (5,000 orders, debug build)
#   BENCH_E2E=1                 end to end: webhook 202 → deal in the read API (release `dealflow`)
#   BENCH_E2E_RATE=1000         webhooks/s, open loop, over BENCH_E2E_ACCOUNTS=10 accounts
#   BENCH_E2E_SECONDS=60        seconds of sustained load
#   BENCH_E2E_LAYOUTS=all,split all-in-one (embedded log + SQLite) and/or split targets
#                               (Kafka via nisshi + PostgreSQL; skipped without nisshi)
#   BENCH_BACKLOG=1             enricher RSS over time with a backlog of OrderChanged
#   BENCH_BACKLOG_EVENTS=1000000  records in the backlog (10 accounts × 10,000 orders)
#   BENCH_BACKLOG_BUS=embedded  embedded (`--target all`) or kafka (`--target enricher`, nisshi)
#   BENCH_BACKLOG_MODES=drain,hold  drain it, hold it (every API key revoked) and/or
#                               reprocess (drain, `dealflow reprocess --since`, apply again)
#   BENCH_BACKLOG_LIMIT=180     seconds each backlog run is watched at most
#   BENCH_ACCOUNTS=0            many accounts on one enricher (issue 20): RSS, CPU, worst lag,
#                               every account's reconciliation against its interval
#   BENCH_ACCOUNTS_N=1000       simulated accounts (BENCH_ACCOUNTS_ORDERS=20 orders each)
#   BENCH_ACCOUNTS_RATE=300     webhooks/s over all of them, for BENCH_ACCOUNTS_SECONDS=60
#   BENCH_ACCOUNTS_RECONCILE=30 the enricher's DEALFLOW_RECONCILE_INTERVAL, in seconds
#   BENCH_ACCOUNTS_BUS=auto     kafka (`--target enricher` alone on nisshi), embedded
#                               (`--target all`), or auto: kafka when nisshi is on PATH
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
E2E=${BENCH_E2E:-1}
E2E_RATE=${BENCH_E2E_RATE:-1000}
E2E_ACCOUNTS=${BENCH_E2E_ACCOUNTS:-10}
E2E_SECONDS=${BENCH_E2E_SECONDS:-60}
E2E_LAYOUTS=${BENCH_E2E_LAYOUTS:-all,split}
BACKLOG=${BENCH_BACKLOG:-1}
BACKLOG_EVENTS=${BENCH_BACKLOG_EVENTS:-1000000}
BACKLOG_BUS=${BENCH_BACKLOG_BUS:-embedded}
BACKLOG_MODES=${BENCH_BACKLOG_MODES:-drain,hold}
BACKLOG_LIMIT=${BENCH_BACKLOG_LIMIT:-180}
ACCOUNTS=${BENCH_ACCOUNTS:-0}
ACCOUNTS_N=${BENCH_ACCOUNTS_N:-1000}
ACCOUNTS_ORDERS=${BENCH_ACCOUNTS_ORDERS:-20}
ACCOUNTS_RATE=${BENCH_ACCOUNTS_RATE:-300}
ACCOUNTS_SECONDS=${BENCH_ACCOUNTS_SECONDS:-60}
ACCOUNTS_RECONCILE=${BENCH_ACCOUNTS_RECONCILE:-30}
ACCOUNTS_BUS=${BENCH_ACCOUNTS_BUS:-auto}
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
if ! command -v nisshi >/dev/null; then
    case "$E2E_LAYOUTS" in *split*)
        say "nisshi not on PATH: the end-to-end run skips the split layout"
        E2E_LAYOUTS=$(echo "$E2E_LAYOUTS" | tr ',' '\n' | grep -vx split | paste -sd, -)
        [ -n "$E2E_LAYOUTS" ] || E2E=0;;
    esac
    if [ "$BACKLOG_BUS" = kafka ]; then say "nisshi not on PATH: the backlog runs on the embedded log"; BACKLOG_BUS=embedded; fi
    if [ "$ACCOUNTS_BUS" = kafka ]; then say "nisshi not on PATH: the many-accounts run uses the all-in-one"; ACCOUNTS_BUS=embedded; fi
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The binaries are copied out of the shared target directory at once: another checkout built
# into the same directory can replace `release/<name>` with its own version at any time.
say "building in release"
cargo build --release -p dealflow-bench
cp "$CARGO_TARGET_DIR/release/dealflow-bench" "$WORK/"
BENCH="$WORK/dealflow-bench"
if ! "$BENCH" e2e --help >/dev/null 2>&1; then
    # A build of another checkout left its (older) binary there and cargo thinks ours fresh.
    say "the built dealflow-bench is not this checkout's: rebuilding"
    touch tests/bench/src/main.rs
    cargo build --release -p dealflow-bench
    cp "$CARGO_TARGET_DIR/release/dealflow-bench" "$WORK/"
fi
if [ "$E2E" = 1 ] || [ "$BACKLOG" = 1 ] || [ "$ACCOUNTS" = 1 ]; then
    cargo build --release -p dealflow --bin dealflow
    cp "$CARGO_TARGET_DIR/release/dealflow" "$WORK/"
fi
DEALFLOW="$WORK/dealflow"
REPORT="$WORK/report.md"

{
    echo "### $(date -u '+%Y-%m-%d %H:%M UTC') — commit ${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "?")}"
    echo
    echo "Command: \`tests/bench/run.sh\` (BENCH_SECONDS=$SECS BENCH_CONNECTIONS=$CONNS BENCH_KAFKA=$KAFKA BENCH_PROJECTOR_EVENTS=$PROJECTOR_EVENTS BENCH_PROJECTOR_DB=$PROJECTOR_DB BENCH_E2E=$E2E BENCH_E2E_RATE=$E2E_RATE BENCH_E2E_SECONDS=$E2E_SECONDS BENCH_E2E_LAYOUTS=$E2E_LAYOUTS BENCH_BACKLOG=$BACKLOG BENCH_BACKLOG_EVENTS=$BACKLOG_EVENTS BENCH_BACKLOG_BUS=$BACKLOG_BUS BENCH_BACKLOG_MODES=$BACKLOG_MODES BENCH_ACCOUNTS=$ACCOUNTS BENCH_ACCOUNTS_N=$ACCOUNTS_N BENCH_ACCOUNTS_BUS=$ACCOUNTS_BUS)"
    echo
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, $(uname -sr), load average at start $(cut -d" " -f1-3 /proc/loadavg); load generator and servers share the cores."
    echo
} >"$REPORT"

say "ingest"
INGEST_ARGS=(ingest --seconds "$SECS" --connections "$CONNS" --rounds "${BENCH_INGEST_ROUNDS:-3}")
[ "$KAFKA" = 1 ] || INGEST_ARGS+=(--no-kafka)
if [ "$KAFKA" = 1 ] && [ -n "${BENCH_KAFKA_VARIANTS:-}" ]; then
    IFS='|' read -r -a VARIANTS <<<"$BENCH_KAFKA_VARIANTS"
    for v in "${VARIANTS[@]}"; do INGEST_ARGS+=(--kafka-variant "$v"); done
fi
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

if [ "$E2E" = 1 ]; then
    say "end to end ($E2E_RATE webhooks/s for $E2E_SECONDS s: $E2E_LAYOUTS)"
    E2E_ARGS=(e2e --dealflow "$DEALFLOW" --rate "$E2E_RATE" --seconds "$E2E_SECONDS" --accounts "$E2E_ACCOUNTS" --layouts "$E2E_LAYOUTS")
    [ "$PROFILE" = 1 ] && E2E_ARGS+=(--profile "$WORK/e2e-perf.data")
    "$BENCH" "${E2E_ARGS[@]}" >>"$REPORT" || say "end-to-end run failed: exit $?"
    if [ "$PROFILE" = 1 ] && [ -s "$WORK/e2e-perf.data" ]; then
        {
            echo "<details><summary>Where the all-in-one's CPU goes during the end-to-end load (perf record -F 499 -g)</summary>"
            echo
            echo '```'
            perf report -i "$WORK/e2e-perf.data" --stdio --no-children --sort comm \
                2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *$//' | head -12
            echo
            perf report -i "$WORK/e2e-perf.data" --stdio --no-children --sort comm,dso,sym \
                --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *$//' | cut -c1-150 | head -30
            echo '```'
            echo "</details>"
            echo
        } >>"$REPORT"
    fi
fi

if [ "$BACKLOG" = 1 ]; then
    say "enricher memory with $BACKLOG_EVENTS OrderChanged waiting ($BACKLOG_BUS: $BACKLOG_MODES)"
    "$BENCH" backlog --dealflow "$DEALFLOW" --events "$BACKLOG_EVENTS" --bus "$BACKLOG_BUS" \
        --modes "$BACKLOG_MODES" --limit "$BACKLOG_LIMIT" >>"$REPORT" || say "backlog run failed: exit $?"
fi

if [ "$ACCOUNTS" = 1 ]; then
    say "$ACCOUNTS_N accounts on one enricher ($ACCOUNTS_RATE webhooks/s for $ACCOUNTS_SECONDS s, reconcile every $ACCOUNTS_RECONCILE s, bus $ACCOUNTS_BUS)"
    "$BENCH" accounts --dealflow "$DEALFLOW" --bus "$ACCOUNTS_BUS" --accounts "$ACCOUNTS_N" \
        --orders "$ACCOUNTS_ORDERS" --rate "$ACCOUNTS_RATE" --seconds "$ACCOUNTS_SECONDS" \
        --reconcile "$ACCOUNTS_RECONCILE" >>"$REPORT" || say "many-accounts run failed: exit $?"
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
        cargo test -q -p dealflow-enricher --test backfill -- --nocapture 2>&1 | grep -iE 'orders/s|backfill timeline'
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
