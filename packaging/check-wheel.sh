#!/usr/bin/env bash
# The wheel, as a user gets it: built with maturin (zig for the oldest glibc this toolchain
# targets, manylinux2014 = glibc 2.17), its tag checked, installed into a fresh venv, and run
# (`gilscope --version`, `python -m gilscope --version`, the README's main job,
# `gilscope.profile()` and the pytest plugin through its entry point); then
# `pip install .` from the checkout into another fresh venv. Needs PyPI (maturin, ziglang).
#
#     bash packaging/check-wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A target directory of its own: the zig-linked build must not replace target/release.
export CARGO_TARGET_DIR=$root/target/wheel

echo "-- maturin and ziglang"
python3 -m venv "$work/build"
"$work/build/bin/pip" install -q "maturin>=1.5,<2" ziglang

echo "-- maturin build --release --zig --compatibility manylinux2014"
PATH="$work/build/bin:$PATH" maturin build --release --zig --compatibility manylinux2014 \
  --out "$work/wheels"
wheel=$(ls "$work"/wheels/gilscope-*.whl)
echo "built $(basename "$wheel")"
case "$(basename "$wheel")" in
  *manylinux_2_17_x86_64*) ;;
  *) echo "FAIL: expected a manylinux_2_17_x86_64 wheel, got $(basename "$wheel")"; exit 1 ;;
esac

check_venv() {  # VENV: the installed gilscope works, and python -m gilscope runs it
  local venv=$1
  "$venv/bin/gilscope" --version
  "$venv/bin/python" -m gilscope --version
  test -f "$venv/share/man/man1/gilscope.1"
  test -f "$venv/share/bash-completion/completions/gilscope"
  "$venv/bin/gilscope" run -q --json "$work/report.json" -- python3 examples/threads_cpu.py >/dev/null
  python3 - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
kind = report["verdict"]["kind"]
assert kind == "gil_contention", kind
print("the README's main job through the installed binary: verdict", kind)
PY
  # The Python package: gilscope.profile() through the installed binary, and the pytest
  # plugin found through the wheel's entry point (no -p), as `pip install gilscope` gives them.
  "$venv/bin/python" - <<'PY'
import threading, gilscope
def work():
    total = 0
    for i in range(3_000_000):
        total = (total * 31 + i) % 1000003
with gilscope.profile() as run:
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
assert run.verdict.kind == "gil_contention", run.verdict
print("gilscope.profile() through the installed package: verdict", run.verdict.kind)
PY
  "$venv/bin/pip" install -q --disable-pip-version-check pytest==8.4.2
  local outcome
  outcome=$(cd "$work" && "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    "$root/tests/python_package/test_marked.py" 2>&1 | tail -n 1) || true
  case "$outcome" in
    "3 failed, 3 passed"*) echo "the pytest plugin from the wheel's entry point: $outcome" ;;
    *) echo "FAIL: the marked suite through the installed plugin: $outcome"; exit 1 ;;
  esac
}

echo "-- the wheel in a fresh venv"
python3 -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/pip" install -q "$wheel"
check_venv "$work/wheel-venv"

echo "-- pip install . from the checkout in a fresh venv"
python3 -m venv "$work/source-venv"
"$work/source-venv/bin/pip" install -q .
check_venv "$work/source-venv"
echo "wheel ok"
