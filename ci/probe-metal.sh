#!/usr/bin/env bash
# Probes the Metal device of a hosted macOS runner into $1 (metal-probe.json, metal-probe.md) and
# sets the step output `opened=true|false`. A device that does not open is not a failure here;
# one that opens must be recognised as paravirtual, or its results would read as real hardware's.
set -euo pipefail
out_dir=$1
cargo xtask op-matrix --features metal -- --probe-metal --report "$out_dir"
probe=$out_dir/metal-probe.json
if jq -e '.opened and (.paravirtual | not)' "$probe" >/dev/null; then
  echo "::error::the hosted runner's Metal device ($(jq -r .facts.name "$probe")) is not recognised as paravirtual; see op-matrix/src/metal.rs"
  exit 1
fi
echo "opened=$(jq -r .opened "$probe")" >> "${GITHUB_OUTPUT:-/dev/stdout}"
