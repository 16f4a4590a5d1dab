#!/bin/bash
# Runs the test command given as arguments, its whole output kept in
# .build/test-output.log. When it fails, each failure (the ✘ lines with the
# details under them, a crash) is printed again at the end: a CI log that shows
# only its last lines still names what failed and why.
set -u
log="${EDSHIM_TEST_LOG:-.build/test-output.log}"
mkdir -p "$(dirname "$log")"
set -o pipefail
"$@" 2>&1 | tee "$log"
status=$?
if [ "$status" -ne 0 ]; then
    echo
    echo "──── failures (whole output: $log) ────"
    awk '
        /✘|Fatal error|unexpected signal|error: / { print; inside = 1; next }
        inside && /^(↳|[ \t])/ { print; next }
        { inside = 0 }
    ' "$log" | tail -n 150
    echo "──── exit status $status ────"
fi
exit "$status"
