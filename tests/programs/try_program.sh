#!/usr/bin/env bash
# try_program.sh VERSION PROGRAM [run|attach] [gilscope options...]: the verdict gilscope gives.
set -u
here=$(cd "$(dirname "$0")" && pwd)
v=$1; prog=$2; mode=${3:-run}; shift 3 || true
py=${GILSCOPE_VENVS:-/tmp/gilscope-venvs}/$v/bin/python
g=$here/../../target/release/gilscope
out=$(mktemp)
if [ "$mode" = run ]; then
  $g run --json $out -q "$@" -- $py $here/$prog >/dev/null 2>&1
else
  RUN_SECONDS=6 $py $here/$prog >/dev/null 2>&1 & pid=$!
  sleep 1.5
  $g attach --json $out -q --duration 3 "$@" $pid >/dev/null 2>&1
  wait $pid
fi
python3 - "$out" <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
v=r["verdict"]
print(v["kind"], "|", v["headline"])
for e in v["evidence"]: print("   ", e)
print("   cores", round(r["process"]["cpu_cores_used"],2), "gil", r["process"]["gil_held"], "threads", len(r["threads"]), "procs", len(r["processes"]))
PY
