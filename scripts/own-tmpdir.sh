#!/bin/sh
# Runs a command with TMPDIR set to a directory of its own, removed when it ends.
# SwiftPM leaves a few empty TemporaryDirectory.* folders in $TMPDIR on every build
# and test run; this keeps them out of /tmp.
#   scripts/own-tmpdir.sh swift build
set -eu
dir=$(mktemp -d "${TMPDIR:-/tmp}/edshim-swift.XXXXXX")
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
TMPDIR=$dir "$@"
