#!/usr/bin/env bash
# Run the test suites with one env's interpreter: the project's tests, then the example
# plugin package's own tests. Exit code 5 (no tests collected) is an error here, since every
# env must run tests.
set -uo pipefail
# Absolute path without resolving the venv symlink (that would escape the venv).
python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; label="$2"; shift 2
echo ">> pytest ($label: $("$python" -c 'import torch; print("torch", torch.__version__)'))"
# The example plugin's suite tests it as its users get it, installed (its entry point
# registered), so it is pip-installed into a throwaway folder put on PYTHONPATH for that suite
# only: the env itself stays without it, as the project's own tests expect.
# (Built from a copy, so the build leaves nothing in the repository.)
scratch="$(mktemp -d)"; trap 'rm -rf "$scratch"' EXIT; overlay="$scratch/site"
cp -r entry_points/sgap-plugin-example "$scratch/src"
"$python" -m pip install -q --no-deps --target "$overlay" "$scratch/src" || exit 1
status=0
for suite in . entry_points/sgap-plugin-example; do
  if [[ $suite == . ]]; then extra=""; else extra="$overlay"; fi
  (cd "$suite" && PYTHONPATH="$extra${PYTHONPATH:+:$PYTHONPATH}" \
    "$python" -m pytest -q -p no:cacheprovider "$@")
  rc=$?
  if [[ $rc -eq 5 ]]; then
    echo ">> pytest ($label) collected no tests in $suite" >&2
    rc=1
  fi
  [[ $rc -ne 0 ]] && status=$rc
done
exit $status
