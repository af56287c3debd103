#!/usr/bin/env bash
# Run the test suites with one env's interpreter: the project's tests, then the example
# plugin package's own tests. Exit code 5 (no tests collected) is an error here, since every
# env must run tests.
set -uo pipefail
# Absolute path without resolving the venv symlink (that would escape the venv).
python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; label="$2"; shift 2
echo ">> pytest ($label: $("$python" -c 'import torch; print("torch", torch.__version__)'))"
status=0
for suite in . entry_points/sgap-plugin-example; do
  (cd "$suite" && "$python" -m pytest -q -p no:cacheprovider "$@")
  rc=$?
  if [[ $rc -eq 5 ]]; then
    echo ">> pytest ($label) collected no tests in $suite" >&2
    rc=1
  fi
  [[ $rc -ne 0 ]] && status=$rc
done
exit $status
