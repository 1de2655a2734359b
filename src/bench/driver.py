"""gilscope bench driver: runs one mode of a user's function over its tasks, once, and prints
one JSON line. Shipped inside the gilscope binary; needs Python 3.8+ and nothing else.

    python driver.py SPEC MODE WORKERS ARGS_JSON TASKS TASKS_FROM
"""
import ast
import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import re
import resource
import sys
import sysconfig
import time
import traceback


def fail(kind, message, **extra):
    out = {"ok": False, "error": kind, "message": message}
    out.update(extra)
    print(json.dumps(out), flush=True)
    sys.exit(3)


def load(spec):
    """Imports `FILE.py:NAME` or `module:NAME` as `python FILE.py` would see it (the file's
    directory first on sys.path), under its own module name, so its `__main__` block does
    not run."""
    if ":" not in spec:
        fail("bad_spec", "expected FILE.py:FUNCTION or module:FUNCTION, got %r" % spec)
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = os.path.abspath(where)
        if not os.path.exists(path):
            fail("not_found", "no such file: %s" % where)
        sys.path.insert(0, os.path.dirname(path))
        module_name = os.path.splitext(os.path.basename(path))[0]
    else:
        sys.path.insert(0, os.getcwd())
        module_name = where
    try:
        module = importlib.import_module(module_name)
    except SystemExit:
        fail("import_exit", "importing %s called sys.exit(): the module runs code at import" % module_name)
    except BaseException as e:  # noqa: B902 - report anything the import raises
        fail("import_error", "importing %s raised %s: %s" % (module_name, type(e).__name__, e),
             traceback=traceback.format_exc(limit=5))
    try:
        obj = module
        for part in name.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        fail("no_function", "%s has no attribute %r" % (module_name, name))
    return module, obj


def unguarded_code(path):
    """Top-level statements that run code at import, outside `if __name__ == "__main__":`."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.If):
            test = ast.dump(node.test)
            if "__name__" in test and "__main__" in test:
                continue
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.With, ast.For, ast.While)):
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            if calls and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                found.append(node.lineno)
    return found


def parse_arg(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def digest(results):
    """A digest of the results' repr, without memory addresses (which differ per process)."""
    text = ADDRESS.sub(" at 0x?", repr(results))
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def live_cpu_seconds(pid):
    """CPU time so far of a live process of ours (Linux's /proc/PID/stat: utime, stime)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def start_method():
    import multiprocessing
    return multiprocessing.get_start_method()


def cpu_seconds():
    """CPU time of this process (all threads) and of its reaped children (pool workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def check(spec):
    """Reads the target's file without importing it: the lines that run code at import."""
    where = spec.rsplit(":", 1)[0]
    path = where if where.endswith(".py") else None
    if path is None:
        try:  # locating a dotted module imports its parent packages, not the module itself
            path = getattr(importlib.util.find_spec(where), "origin", None)
        except (ImportError, ValueError):
            path = None
    lines = unguarded_code(path) if path and path.endswith(".py") else []
    print(json.dumps({"ok": True, "unguarded_lines": lines}), flush=True)


def main():
    if sys.argv[1] == "--check":
        sys.path.insert(0, os.getcwd())
        return check(sys.argv[2])
    spec, mode, workers, args_json, ntasks, tasks_from = sys.argv[1:7]
    if mode == "interpreters":
        try:
            from concurrent.futures import InterpreterPoolExecutor  # noqa: F401
        except ImportError:
            fail("mode_unavailable", "InterpreterPoolExecutor needs Python 3.14+")
    workers, ntasks = int(workers), int(ntasks)
    module, f = load(spec)
    if tasks_from:
        _, iterable = load(tasks_from)
        tasks = [t if isinstance(t, tuple) else (t,) for t in iterable]
    else:
        args = tuple(parse_arg(a) for a in json.loads(args_json))
        tasks = [args] * ntasks
    if not callable(f):
        fail("not_callable", "%s is not callable" % spec)

    arg_bytes = 0
    pickle_s = 0.0
    if mode in ("processes", "interpreters"):
        try:
            pickle.dumps(f)
        except Exception as e:  # noqa: BLE001 - any pickling failure means the same thing
            fail("unpicklable_function", "%s: %s" % (type(e).__name__, e))
        start = time.perf_counter()
        for t in tasks:
            arg_bytes += len(pickle.dumps(t))
        pickle_s = time.perf_counter() - start

    cpu_start = cpu_seconds()
    cpu_start_own = time.process_time()
    workers_cpu = 0.0
    start = time.perf_counter()
    try:
        if mode == "sequential":
            results = [f(*a) for a in tasks]
        elif mode == "threads":
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(lambda a: f(*a), tasks))
        elif mode == "processes":
            from concurrent.futures import ProcessPoolExecutor
            # Chunks as multiprocessing.Pool.map makes them (4 per worker): one pickled
            # round trip per task would weigh on small tasks more than the fix has to.
            chunksize = max(1, -(-len(tasks) // (4 * workers)))
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(f, *zip(*tasks), chunksize=chunksize)) if tasks else []
                # Under forkserver (the default from 3.14) the workers are the server's
                # children, never reaped by this process: take their CPU time while they live.
                workers_cpu = sum(live_cpu_seconds(pid) for pid in list(pool._processes))
        elif mode == "interpreters":
            try:
                from concurrent.futures import InterpreterPoolExecutor
            except ImportError:
                fail("mode_unavailable", "InterpreterPoolExecutor needs Python 3.14+")
            with InterpreterPoolExecutor(workers) as pool:
                results = list(pool.map(f, *zip(*tasks))) if tasks else []
        elif mode == "asyncio":
            import asyncio
            from concurrent.futures import ThreadPoolExecutor

            async def run_all():
                asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
                return await asyncio.gather(*(asyncio.to_thread(f, *a) for a in tasks))

            results = list(asyncio.run(run_all()))
        else:
            fail("bad_mode", "unknown mode %r" % mode)
    except Exception as e:  # noqa: BLE001 - the user's function may raise anything
        text = "%s: %s" % (type(e).__name__, e)
        if "bootstrapping phase" in text:
            fail("missing_main_guard", text)
        if "pickle" in text.lower() and mode in ("processes", "interpreters"):
            fail("unpicklable_result", text)
        fail("function_raised", text, traceback=traceback.format_exc(limit=6))
    elapsed = time.perf_counter() - start
    if mode == "processes":
        cpu = time.process_time() - cpu_start_own + workers_cpu
    else:
        cpu = cpu_seconds() - cpu_start

    print(json.dumps({
        "ok": True,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "tasks": len(tasks),
        "digest": digest(results),
        "arg_bytes": arg_bytes,
        "pickle_s": pickle_s,
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(getattr(sys, "_is_gil_enabled", lambda: True)()),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "start_method": start_method() if mode == "processes" else None,
    }), flush=True)


if __name__ == "__main__":
    main()
