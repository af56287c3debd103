#!/usr/bin/env bash
# Create or reuse a virtual environment pinned by constraints/<name>.txt.
# Idempotent: a stamp keyed on the hash of the constraint file and pyproject.toml skips the
# install when nothing changed.  Usage: scripts/setup_env.sh compat|latest
set -euo pipefail
name="$1"
case "$name" in
  compat) venv=.venv; extras="pyg,dgl,search,ray,bench,docs,dev" ;;
  latest) venv=.venv-latest; extras="pyg,search,dev" ;;
  *) echo "usage: $0 compat|latest" >&2; exit 2 ;;
esac
python="${SGAP_PYTHON:-python3.11}"
constraints="constraints/$name.txt"
key=$(cat "$constraints" pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
stamp="$venv/.sgap-env-$key"
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo ">> setting up $venv ($name, key $key)"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade "pip<25"
"$venv/bin/python" -m pip install --quiet -c "$constraints" -r "$constraints"
"$venv/bin/python" -m pip install --quiet -c "$constraints" -e ".[$extras]"
rm -f "$venv"/.sgap-env-*
touch "$stamp"
echo ">> $venv ready"
