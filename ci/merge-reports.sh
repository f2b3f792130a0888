#!/usr/bin/env bash
# Merges every runner's report.json under $1 into one matrix in $2 (report.json, ops.md,
# junit.xml). Fails when no runner produced a report, or when the merged matrix fails.
set -euo pipefail
in_dir=$1
out_dir=$2
mapfile -t reports < <(find "$in_dir" -name report.json | sort)
if [ "${#reports[@]}" -eq 0 ]; then
  echo "no op-matrix reports under $in_dir" >&2
  exit 1
fi
cargo xtask op-matrix -- --merge "${reports[@]}" --report "$out_dir"
