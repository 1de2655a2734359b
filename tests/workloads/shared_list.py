"""Four threads parse records and append each result to one shared list, as a program written
for the GIL does: on a free-threaded build every append takes the list's lock, and the threads
take turns on it."""
import threading
import time

from _common import deadline

RECORDS = ["%d,%d,%d" % (i, i * 7 % 101, i % 13) for i in range(1000)]


def parse_into(results, until):
    while time.monotonic() < until:
        for record in RECORDS:
            a, b, c = record.split(",")
            results.append(int(a) + int(b) * int(c))
            if len(results) > 100_000:
                results.clear()


def main():
    until = deadline()
    results = []
    threads = [
        threading.Thread(target=parse_into, args=(results, until), name="parser-%d" % i)
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("results kept:", len(results))


if __name__ == "__main__":
    main()
