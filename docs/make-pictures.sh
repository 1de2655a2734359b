#!/usr/bin/env bash
# Remakes the README's pictures: the classic example's HTML report and timeline, and a
# notebook with `%%gilscope` cells.
#   bash docs/make-pictures.sh        (needs Chromium: apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
cargo run --release -q -- run -q --html "$out/report.html" --trace "$out/trace.json" \
  -- python3 examples/threads_cpu.py
shot() { # url size file
  chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$out/profile" --hide-scrollbars --virtual-time-budget=2000 \
    --window-size="$2" --screenshot="$3" "$1" 2>/dev/null
}
shot "file://$out/report.html" 1200,1300 docs/images/report.png
shot "file://$out/report.html#timeline-only" 1200,235 docs/images/timeline.png
echo "wrote docs/images/report.png and docs/images/timeline.png (trace: $out/trace.json)"

# The notebook: tests/python_package/notebook.py runs `%%gilscope` cells in a real Jupyter
# kernel (the 3.12 venv of tests/programs/venv.sh has ipykernel, nbclient and nbconvert);
# nbconvert renders the executed notebook, Chromium photographs it.
venv=${GILSCOPE_VENVS:-${TMPDIR:-/tmp}/gilscope-venvs}/3.12
if [ ! -x "$venv/bin/jupyter-nbconvert" ]; then
  echo "no $venv with nbconvert: bash tests/programs/venv.sh 3.12, then again" >&2
  exit 1
fi
GILSCOPE_BIN=$PWD/target/release/gilscope PYTHONPATH=$PWD/python \
  "$venv/bin/python" tests/python_package/notebook.py --save "$out/notebook.ipynb" >/dev/null
"$venv/bin/jupyter-nbconvert" --to html --log-level WARN "$out/notebook.ipynb" --output-dir "$out"
shot "file://$out/notebook.html" 1100,1500 docs/images/notebook.png
echo "wrote docs/images/notebook.png"
