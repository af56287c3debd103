#!/usr/bin/env bash
# Run pytest with one env's interpreter; exit code 5 (no tests collected) is an error here,
# since every env must run tests.
set -uo pipefail
python="$1"; label="$2"; shift 2
echo ">> pytest ($label: $("$python" -c 'import torch; print("torch", torch.__version__)'))"
"$python" -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo ">> pytest ($label) collected no tests" >&2
  exit 1
fi
exit $rc
