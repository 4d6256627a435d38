#!/bin/sh
# Line coverage that the fuzz corpora reach in the sources each harness is aimed at.
#
#   fuzz/coverage.sh FUZZ_BUILD_DIR [HARNESS...]
#
# Builds the harnesses with clang's source-based coverage in FUZZ_BUILD_DIR/coverage/ (its own
# tree, -DBIC_FUZZ=ON -DBIC_FUZZ_COVERAGE=ON), runs each once over its corpus (the one a
# fuzz/run.sh FUZZ_BUILD_DIR ... left in FUZZ_BUILD_DIR/fuzz-work/<name>/corpus, else the
# committed seeds) and prints llvm-cov's line and function coverage of the harness's target
# sources (fuzz/harnesses.txt). Nothing is written to the source tree.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 FUZZ_BUILD_DIR [HARNESS...]" >&2
    exit 2
fi
fuzz_build=$1
shift
if [ -z "$fuzz_build" ]; then
    echo "$0: FUZZ_BUILD_DIR must not be empty" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
list=$src/fuzz/harnesses.txt
build=$fuzz_build/coverage
names=${*:-$(awk '/^[a-z]/ { print $1 }' "$list")}
for tool in clang llvm-profdata llvm-cov; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "$0: $tool is not installed (Debian packages clang, llvm)" >&2
        exit 1
    fi
done

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang cmake -S "$src" -B "$build" -DBIC_FUZZ=ON -DBIC_FUZZ_COVERAGE=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=""
for n in $names; do
    targets="$targets fuzz_$n"
done
cmake --build "$build" -j "${BIC_FUZZ_JOBS:-2}" --target $targets >/dev/null

printf '%-12s %-32s %8s %8s %8s\n' harness source lines covered functions
for n in $names; do
    corpus=$fuzz_build/fuzz-work/$n/corpus
    [ -d "$corpus" ] || corpus=$src/fuzz/corpus/$n
    work=$build/cov-work/$n
    rm -rf "$work"
    mkdir -p "$work"
    maxlen=$(awk -v n="$n" '$1 == n { print $2 }' "$list")
    LLVM_PROFILE_FILE="$work/%p.profraw" ASAN_OPTIONS=detect_leaks=0 \
        "$build/fuzz/fuzz_$n" -runs=0 -max_len="$maxlen" "$corpus" >"$work/log" 2>&1 || {
        echo "$0: fuzz_$n failed on its corpus (see $work/log)" >&2
        exit 1
    }
    llvm-profdata merge -sparse "$work"/*.profraw -o "$work/merged.profdata"
    files=$(awk -v n="$n" '$1 == n { print $4 }' "$list" | tr ',' ' ')
    paths=""
    for f in $files; do
        paths="$paths $src/$f"
    done
    # llvm-cov report columns: Filename Regions Missed Cover Functions Missed Executed
    # Lines Missed Cover [Branches Missed Cover]
    llvm-cov report "$build/fuzz/fuzz_$n" -instr-profile="$work/merged.profdata" $paths |
        awk -v n="$n" -v files="$files" '
            BEGIN { nf = split(files, want, " ") }
            $1 ~ /\.c$/ {
                f = $1
                for (i = 1; i <= nf; i++) {
                    b = want[i]; sub(/.*\//, "", b)
                    if (f == want[i] || f ~ ("(^|/)" b "$")) f = want[i]
                }
                printf "%-12s %-32s %8d %7.1f%% %8s\n", n, f, $8, 100 * ($8 - $9) / ($8 ? $8 : 1), $7
            }'
done
