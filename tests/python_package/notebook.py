"""Executes a notebook as a data scientist writes one, in a real Jupyter kernel (nbclient):
`%load_ext gilscope`, a GIL-bound cell (a thread pool over pure Python), an I/O cell (a thread
pool over waits), one with `--text`, and `%gilscope_attach` on a service the notebook started.
Prints what the outputs show as one JSON line; `--save FILE.ipynb` also keeps the executed
notebook (docs/make-pictures.sh renders it)."""
import json
import re
import sys

import nbformat
from nbclient import NotebookClient

# The work is typed into a cell, as in a notebook (not imported from work.py): the advice for
# functions a process pool cannot import depends on it.
SETUP = '''\
import time
from concurrent.futures import ThreadPoolExecutor

def checksum(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003
    return total

def fetch(i):
    time.sleep(0.05)  # a remote call's latency
    return i

# A service's workers: three threads of pure Python behind a sleeping main thread.
SERVICE = """
import threading, time
def serve():
    while True:
        sum(i * i for i in range(10_000))
for _ in range(3):
    threading.Thread(target=serve, daemon=True).start()
time.sleep(60)
"""'''

CELLS = [
    "%load_ext gilscope",
    SETUP,
    "%%gilscope -o cpu_run\nwith ThreadPoolExecutor(max_workers=4) as pool:\n"
    "    totals = list(pool.map(checksum, [1_500_000] * 8))",
    "%%gilscope -o io_run\nwith ThreadPoolExecutor(max_workers=8) as pool:\n"
    "    pages = list(pool.map(fetch, range(80)))",
    "%%gilscope --text\nwith ThreadPoolExecutor(max_workers=4) as pool:\n"
    "    totals = list(pool.map(checksum, [1_500_000] * 8))",
    "import subprocess, sys\nservice = subprocess.Popen([sys.executable, '-c', SERVICE])\n"
    "time.sleep(0.5)",
    "%gilscope_attach {service.pid} --duration 1.5 --text -o attached_run\nservice.kill()",
    "print(cpu_run.verdict.kind, io_run.verdict.kind, attached_run.verdict.kind)",
]


def html_of(cell):
    for output in cell.outputs:
        data = output.get("data", {})
        if "text/html" in data:
            return data["text/html"]
    return None


def text_of(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def main():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    cells = notebook.cells
    errors = [o for c in cells for o in c.outputs if o.get("output_type") == "error"]
    frames = [html_of(c) for c in cells[2:4]]
    out = {
        "errors": ["%s: %s" % (e["ename"], e["evalue"]) for e in errors],
        "kinds": text_of(cells[-1]).split(),
        "frames": [
            None if f is None else {
                "iframe": f.startswith('<iframe class="gilscope-report" srcdoc="'),
                "bytes": len(f),
                "network": sorted(set(re.findall(r'(?:src|href)=&quot;(https?:[^&]*)', f))),
            } for f in frames
        ],
        "text_report": text_of(cells[4])[:2000],
        "attached_report": text_of(cells[6])[:600],
    }
    if len(sys.argv) == 3 and sys.argv[1] == "--save":
        nbformat.write(notebook, sys.argv[2])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
