#!/bin/sh
# The tree's C files against its .clang-format (the tool wins arguments, STYLE.md 12).
# usage: tools/check_format.sh [--fix] [ROOT]   (default ROOT: the tree this script is in)
# Lists each file clang-format would change and exits 1 if there is any; --fix formats them.
set -eu
fix=0
if [ "${1:-}" = "--fix" ]; then
    fix=1
    shift
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
if ! command -v clang-format >/dev/null 2>&1; then
    echo "check_format: clang-format is not installed (Debian package clang-format; sh tools/deps.sh)" >&2
    exit 2
fi
if [ ! -f .clang-format ]; then
    echo "check_format: no .clang-format in $root" >&2
    exit 2
fi
list=$(mktemp)
trap 'rm -f "$list"' EXIT
# the project's own C files: every folder but build trees and hidden ones
find . \( -path './build*' -o -path './.*' -o -path '*/build-*' \) -prune -o \( -name '*.c' -o -name '*.h' \) -type f -print |
    sed 's|^\./||' | LC_ALL=C sort >"$list"
bad=0
while IFS= read -r f; do
    if [ "$fix" = 1 ]; then
        clang-format -i "$f"
    elif ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "$f: not formatted as .clang-format says (tools/check_format.sh --fix)"
        bad=$((bad + 1))
    fi
done <"$list"
n=$(wc -l <"$list")
if [ "$bad" -gt 0 ]; then
    echo "check_format: $bad of $n files need formatting"
    exit 1
fi
echo "check_format: $n files formatted as .clang-format says"
