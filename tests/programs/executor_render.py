"""A ThreadPoolExecutor that renders report pages: pure-Python string work, mapped over a list
of pages.
expect: gil_contention
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def render(page):
    rows = []
    for i in range(300):
        rows.append("<tr><td>%d</td><td>%s</td><td>%.2f</td></tr>" % (i, "name-%d" % (page + i), i * 1.5))
    return "<table>" + "".join(rows) + "</table>"


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPoolExecutor(max_workers=4) as pool:
        while time.monotonic() < stop:
            pages = list(pool.map(render, range(200)))
