#!/usr/bin/env bash
# Remakes the README's pictures from the classic example: the HTML report and its timeline.
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
