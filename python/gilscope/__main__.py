"""`python -m gilscope ARGS`: runs the installed binary with ARGS, in this process's place."""
import os
import sys

from gilscope import find_gilscope_bin


def main():
    binary = find_gilscope_bin()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()
