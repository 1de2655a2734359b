"""Two multiprocessing workers burning CPU and a `sleep` subprocess (not Python): a process
tree to follow. The SIGKILL test kills one worker midway; the parent still exits 0."""
import multiprocessing
import subprocess
import time

from _common import DURATION


def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=burn, args=(DURATION,)) for _ in range(2)]
    for w in workers:
        w.start()
    sleeper = subprocess.Popen(["sleep", str(DURATION)])
    for w in workers:
        w.join()
    sleeper.wait()
    print("worker exit codes:", [w.exitcode for w in workers])
