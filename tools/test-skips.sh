#!/bin/sh
# Lists the tests of the last ctest run in BUILD_DIR that were skipped, each with its reason
# (the "SKIP:" line the test printed: the capability this machine lacks). Prints nothing
# when none was skipped. `make test` and `make check` run it after ctest.
#
#   sh tools/test-skips.sh BUILD_DIR
set -eu
log=${1:?usage: test-skips.sh BUILD_DIR}/Testing/Temporary/LastTest.log
[ -f "$log" ] || exit 0
# A test that exits 77 is skipped by ctest (SKIP_RETURN_CODE) and, by the project's rule,
# printed its reason first on a line starting with "SKIP: ".
awk '
    /^[0-9]+\/[0-9]+ Test: / { name = $3; seen = 0 }
    /^SKIP: / && name != "" && !seen {
        lines[++n] = sprintf("  %-26s %s", name, substr($0, 7))
        seen = 1
    }
    END {
        if (n) {
            printf "skipped tests (%d), each with what this machine lacks:\n", n
            for (i = 1; i <= n; i++) print lines[i]
        }
    }
' "$log"
