#!/usr/bin/env bash
# `make demo`: a short PaSca search on the built-in csbm graph (no download), its Pareto
# front, and its most accurate member retrained next to SGC and PaSca-V3.
# Usage: scripts/demo.sh [SGAP]   (SGAP: the sgap executable, default `sgap` on PATH)
# The search folder is $SGAP_DEMO_OUT, else .cache/demo; each run starts it afresh.
set -euo pipefail
sgap="${1:-sgap}"
out="${SGAP_DEMO_OUT:-.cache/demo}"
if [[ -e "$out/search.json" ]]; then
  rm -rf -- "$out"  # a previous demo's search (a search refuses a used folder)
fi
run() {
  echo "\$ sgap $*"
  "$sgap" "$@"
  echo
}
run search --dataset csbm --max-evals 60 --workers 2 --no-presets --no-progress --out "$out"
run train --config "$out/pareto.json" --index 0
run train --preset sgc
run train --preset pasca_v3
