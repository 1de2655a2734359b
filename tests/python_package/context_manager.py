"""`gilscope.profile()` on its own process, as a user writes it: a thread pool over pure-Python
work, one over calls that wait, a decorated function, the gate, a misspelt option, and the HTML
report. Prints what it saw as one JSON line (tests/python_package.rs checks it)."""
import json
import re
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

import gilscope
from work import checksum, fetch


def seen(run):
    threads = [t for t in run.report["threads"] if t["states"].get("gil_wait", 0) > 0]
    return {
        "kind": run.verdict.kind if run.verdict else None,
        "duration_s": run.report["duration_s"],
        "max_gil_wait": max([t["states"]["gil_wait"] for t in threads] or [0.0]),
        "text_has_headline": run.verdict is not None and run.verdict.headline[:40] in run.text,
    }


out = {
    "python": sys.version.split()[0],
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
}
# Work for about a second (a verdict needs half of one): threads run in parallel on a
# free-threaded build, so each is given more.
N = 3_000_000 if out["free_threaded"] else 1_500_000

with gilscope.profile() as run:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(checksum, [N] * 8))
out["cpu"] = seen(run)
html = run.html()
out["html"] = {
    "bytes": len(html),
    "network": sorted(set(re.findall(r'(?:src|href)="(https?:[^"]*)"', html))),
}

with gilscope.profile() as run:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fetch, range(80)))
out["io"] = seen(run)


@gilscope.profile(rate=200)
def crunch():
    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(pool.map(checksum, [2 * N] * 4))


crunch()
crunch()
out["decorated"] = dict(seen(crunch.last_run), rate_hz=crunch.last_run.report["rate_hz"])

# The CPU-bound pool's verdict, as a test suite would forbid it.
with gilscope.profile(fail_on=[out["cpu"]["kind"]]) as run:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(checksum, [2 * N] * 4))
out["gate"] = run.gate

try:
    with gilscope.profile(fail_on=["gil_contentoin"]):
        pass
    out["usage_error"] = None
except gilscope.GilscopeUsageError as e:
    out["usage_error"] = str(e)

print(json.dumps(out))
