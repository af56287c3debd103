#!/usr/bin/env bash
# Create or reuse .venv-openbox, pinned by constraints/openbox.txt: OpenBox alone, for the
# OpenBox peer of benchmarks/search_peers.py (the package is not installed there). Idempotent
# like scripts/setup_env.sh (a stamp keyed on the hash of the constraint file and this
# script), and apart from it so that adding this env leaves the other envs' stamps valid.
set -euo pipefail
venv=.venv-openbox
python="${SGAP_PYTHON:-python3.11}"
constraints=constraints/openbox.txt
key=$(cat "$constraints" scripts/setup_openbox_env.sh | sha256sum | cut -c1-16)
stamp="$venv/.sgap-env-$key"
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo ">> setting up $venv (openbox, key $key)"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade "pip<25"
"$venv/bin/python" -m pip install --quiet -c "$constraints" -r "$constraints"
"$venv/bin/python" -c "import openbox; print('>> openbox', openbox.__version__)"
rm -f "$venv"/.sgap-env-*
touch "$stamp"
echo ">> $venv ready"
