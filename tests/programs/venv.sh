#!/usr/bin/env bash
# Builds one venv per CPython the realistic programs are tested on, with requirements.txt:
#   bash tests/programs/venv.sh [VERSION...]     (default: 3.9 3.12 3.14)
# Each lands in ${GILSCOPE_VENVS:-$TMPDIR/gilscope-venvs}/<version>. Debian's 3.14 has no
# ensurepip: its venv is made without pip and filled by another venv's pip (`pip --python`).
# Idempotent: a venv that already imports every library is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${GILSCOPE_VENVS:-${TMPDIR:-/tmp}/gilscope-venvs}
pyenv=${PYENV_ROOT:-/root/.pyenv}/versions
mkdir -p "$root"
base_check='import billiard, joblib, numpy, pandas, requests, pytest'
pip_venv=""
for version in "${@:-3.9 3.12 3.14}"; do
  for v in $version; do
    python=$(ls -d "$pyenv/$v".[0-9]*/bin/python 2>/dev/null | grep -v 't/bin' | sort -V | tail -n 1)
    if [ -z "$python" ]; then
      echo "venv.sh: CPython $v not found under $pyenv" >&2
      exit 1
    fi
    venv="$root/$v"
    check=$base_check
    [ "$v" = 3.12 ] && check="$check, ipykernel, nbclient, nbformat, nbconvert"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
      continue
    fi
    rm -rf "$venv"
    if "$python" -c 'import ensurepip' 2>/dev/null; then
      "$python" -m venv "$venv"
      "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
      pip_venv=$venv
    else
      "$python" -m venv --without-pip "$venv"
      if [ -z "$pip_venv" ]; then
        pip_venv="$root/pip"
        [ -x "$pip_venv/bin/pip" ] || python3 -m venv "$pip_venv"
      fi
      PYTHONWARNINGS=ignore "$pip_venv/bin/python" -m pip --python "$venv/bin/python" install -q \
        --disable-pip-version-check -r "$here/requirements.txt"
    fi
    "$venv/bin/python" -c "$check"
    echo "   $venv ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  done
done
