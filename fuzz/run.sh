#!/bin/sh
# Runs the libFuzzer harnesses for a bounded time each.
#
#   fuzz/run.sh BUILD_DIR [SECONDS] [HARNESS...]
#
# BUILD_DIR is a clang build tree with -DBIC_FUZZ=ON; it is configured (CC=clang) when it
# does not exist yet, and the harnesses are built in it unless BIC_FUZZ_SKIP_BUILD=1.
# SECONDS (default $BIC_FUZZ_SECONDS, else 60) is the run time of each harness; 0 only
# builds. Without HARNESS names every harness of fuzz/harnesses.txt runs.
#
# Each harness starts from a copy of its committed seed corpus (fuzz/corpus/<name>/) in
# BUILD_DIR/fuzz-work/<name>/ (the source tree is never written), with the -max_len of
# harnesses.txt and the dictionary fuzz/dict/<name>.dict when there is one. Any crash, leak,
# undefined behaviour or timeout fails the run; its input is kept in that directory.
# A summary line per harness (executions, coverage) is printed and appended to
# BUILD_DIR/fuzz-work/summary.txt.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [SECONDS] [HARNESS...]" >&2
    exit 2
fi
build=$1
shift
if [ -z "$build" ]; then
    echo "$0: BUILD_DIR must not be empty" >&2
    exit 2
fi
seconds=${BIC_FUZZ_SECONDS:-60}
if [ $# -gt 0 ]; then
    seconds=$1
    shift
fi
case $seconds in
'' | *[!0-9]*)
    echo "$0: SECONDS must be a whole number of seconds (got '$seconds')" >&2
    exit 2
    ;;
esac
src=$(cd "$(dirname "$0")/.." && pwd)
list=$src/fuzz/harnesses.txt

all=$(awk '/^[a-z]/ { print $1 }' "$list")
if [ $# -gt 0 ]; then
    names=$*
    for n in $names; do
        if ! printf '%s\n' $all | grep -qx "$n"; then
            echo "$0: unknown harness '$n'; harnesses: $(echo $all)" >&2
            exit 2
        fi
    done
else
    names=$all
fi

if [ "${BIC_FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    if ! command -v clang >/dev/null 2>&1; then
        echo "$0: clang is not installed (tools/deps.sh installs it)" >&2
        exit 1
    fi
    if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt"; then
        echo "$0: $build is not a clang build tree; use another directory" >&2
        exit 1
    fi
    if [ ! -f "$build/CMakeCache.txt" ] || ! grep -q '^BIC_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
        CC=clang cmake -S "$src" -B "$build" -DBIC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    targets=""
    for n in $names; do
        targets="$targets fuzz_$n"
    done
    cmake --build "$build" -j "${BIC_FUZZ_JOBS:-2}" --target $targets
fi
[ "$seconds" -eq 0 ] && exit 0

mkdir -p "$build/fuzz-work"
summary=$build/fuzz-work/summary.txt
failed=""
for n in $names; do
    bin=$build/fuzz/fuzz_$n
    if [ ! -x "$bin" ]; then
        echo "fuzz_$n: not built ($bin missing)" >&2
        failed="$failed $n"
        continue
    fi
    maxlen=$(awk -v n="$n" '$1 == n { print $2 }' "$list")
    work=$build/fuzz-work/$n
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$src/fuzz/corpus/$n" ]; then
        cp -R "$src/fuzz/corpus/$n/." "$work/corpus/"
    fi
    seeds=$(find "$work/corpus" -type f | wc -l)
    set -- -max_total_time="$seconds" -max_len="$maxlen" -timeout=60 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/"
    if [ -f "$src/fuzz/dict/$n.dict" ]; then
        set -- "$@" -dict="$src/fuzz/dict/$n.dict"
    fi
    echo "fuzz_$n: $seconds s from $seeds seeds, -max_len=$maxlen"
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" "$@" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -n 1 || true)
    cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    line="fuzz_$n: seconds=$seconds execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} seeds=$seeds exit=$rc"
    echo "$line"
    echo "$line" >>"$summary"
    if [ "$rc" -ne 0 ]; then
        echo "---- fuzz_$n failed (exit $rc); last lines of $work/log ----" >&2
        tail -n 60 "$work/log" >&2
        for a in "$work"/artifacts/*; do
            [ -e "$a" ] && echo "fuzz_$n: the failing input is kept in $a (replay: $bin $a)" >&2
        done
        failed="$failed $n"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzzing failed:$failed" >&2
    exit 1
fi
