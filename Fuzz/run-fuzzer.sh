#!/usr/bin/env bash
# Runs one libFuzzer target built by `make fuzz` for a bounded number of executions,
# on a scratch copy of its committed seed corpus (Fuzz/Corpus/TARGET stays as is).
#
#   Fuzz/run-fuzzer.sh SCRATCH TARGET MAX_LEN RUNS [libFuzzer flags…]
#
# Prints the executions and exec/s; exits non-zero on any crash, trap, violated
# property, leak or hang, leaving the input in SCRATCH/findings/TARGET/ and the log in
# SCRATCH/logs/TARGET.log. Replay a finding with `SCRATCH/release/TARGET FILE`.
set -euo pipefail

scratch=$1 target=$2 max_len=$3 runs=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
binary=$scratch/release/$target
findings=$scratch/findings/$target
log=$scratch/logs/$target.log
corpus=$(mktemp -d "${TMPDIR:-/tmp}/edshim-fuzz-$target.XXXXXX")
trap 'rm -rf "$corpus"' EXIT

[ -x "$binary" ] || { echo "fuzz: $binary is missing: run make fuzz" >&2; exit 2; }
mkdir -p "$findings" "$(dirname "$log")"
cp "$here/Corpus/$target/"* "$corpus/"
dictionary=()
[ -f "$here/Dictionaries/$target.dict" ] && dictionary=(-dict="$here/Dictionaries/$target.dict")

echo "fuzz: $target: $runs executions, inputs up to $max_len bytes, $(ls "$corpus" | wc -l) seeds"
status=0
# The Swift runtime's own crash reporter (swift-backtrace) would outlive the crash and
# hold the log open; libFuzzer's handler reports the trap and saves the input instead.
SWIFT_BACKTRACE=enable=no "$binary" "$corpus" -runs="$runs" -max_len="$max_len" -timeout=10 \
    -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$findings/" "${dictionary[@]}" "$@" \
    >"$log" 2>&1 </dev/null || status=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (exit $status); input saved in $findings/, full log $log" >&2
    exit 1
fi
echo "fuzz: $target: $(stat number_of_executed_units) executions, $(stat average_exec_per_sec) exec/s," \
    "$(ls "$corpus" | wc -l) corpus inputs ($(stat new_units_added) new), peak RSS $(stat peak_rss_mb) MB, no crash"
