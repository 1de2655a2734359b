"""The CPython interpreters the bench scripts run on: the newest patch release of each
required minor version under pyenv, with a loud skip for a missing one."""
import glob
import sys

VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]


def interpreters():
    """(version, path) of each installed required version, oldest first."""
    for v in VERSIONS:
        # Default builds only: a free-threaded one ends in "t" (3.13.5t).
        found = sorted((p for p in glob.glob("/root/.pyenv/versions/%s.*/bin/python" % v)
                        if p.split("/")[-3].split(".")[2].isdigit()),
                       key=lambda p: int(p.split("/")[-3].split(".")[2]))
        if found:
            yield v, found[-1]
        else:
            print("SKIPPED: no CPython %s under /root/.pyenv/versions" % v, file=sys.stderr)
