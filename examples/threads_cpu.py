"""The classic: four threads of pure-Python arithmetic. Adding threads makes it no faster.

    gilscope run -- python3 examples/threads_cpu.py
"""
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000


def work(n):
    return sum(i * i for i in range(n))


def main():
    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(N,), name=f"worker-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"4 threads x work({N}) took {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
