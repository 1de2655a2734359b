"""Reporting queries: two threads, each with its own sqlite3 connection, run aggregate queries
over a table; sqlite3 releases the GIL while a statement runs.
expect: native_parallel | cpu_saturated
"""
import os
import sqlite3
import tempfile
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def report(path, stop):
    db = sqlite3.connect(path)
    while time.monotonic() < stop:
        db.execute("SELECT region, sum(amount * price), avg(price) FROM sales GROUP BY region").fetchall()
    db.close()


if __name__ == "__main__":
    path = os.path.join(tempfile.mkdtemp(), "sales.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sales (region TEXT, amount INTEGER, price REAL)")
    db.executemany(
        "INSERT INTO sales VALUES (?, ?, ?)",
        (("r%d" % (i % 20), i % 97, (i % 13) * 1.5) for i in range(300_000)),
    )
    db.commit()
    db.close()
    stop = time.monotonic() + RUN_SECONDS
    threads = [threading.Thread(target=report, args=(path, stop), name="report-%d" % i) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
