"""joblib with backend="threading" on pure-Python work: the threads share one GIL.
expect: gil_contention
"""
import os
import time

from joblib import Parallel, delayed

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def tokenize(text):
    tokens = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?")
        tokens[word] = tokens.get(word, 0) + 1
    return tokens


if __name__ == "__main__":
    docs = ["The quick brown fox, the lazy dog; and the end. " * 200 for _ in range(64)]
    stop = time.monotonic() + RUN_SECONDS
    with Parallel(n_jobs=4, backend="threading") as parallel:
        while time.monotonic() < stop:
            parallel(delayed(tokenize)(d) for d in docs)
