"""`gilscope.profile()` and `gilscope.attach()`: the gilscope binary sampling a process from
outside, driven from Python. The binary is the one sampler: nothing here reads the process or
takes the GIL while it samples; the code below starts the binary, waits for its first sample,
stops it, and reads what it wrote."""
import ctypes
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from gilscope._binary import find_gilscope_bin

# How long the binary may take to find the interpreter and take its first sample.
_START_TIMEOUT_S = 30.0
# How long it may take to write its report once told to stop.
_STOP_TIMEOUT_S = 120.0
# The exit status of a tripped gate (--fail-on, --max-gil-wait): src/gate.rs's GATE_EXIT_CODE.
GATE_EXIT_CODE = 3


class GilscopeError(RuntimeError):
    """gilscope could not sample: the binary's own one-line error and hint."""


class GilscopeUsageError(GilscopeError, ValueError):
    """An option gilscope refused (a misspelt verdict kind in fail_on, a rate out of range)."""


class Verdict(object):
    """The report's verdict, as attributes: kind, headline, evidence, advice, snippet,
    predicted_speedup, confidence, phases (the JSON's keys, `gilscope.report/1`)."""

    def __init__(self, fields):
        self._fields = dict(fields)

    def __getattr__(self, name):
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name)

    def __repr__(self):
        return "Verdict(kind=%r, headline=%r)" % (self.kind, self.headline)


class Run(object):
    """One sampled stretch of a process: the report as a dict (`report`), its verdict, the
    terminal report (`text`, also `str(run)`), and the recording it came from, from which
    `save_html` and the other renderings are made (`gilscope report`). Bound by
    `with gilscope.profile() as run` at the start of the block and filled at its end."""

    def __init__(self):
        self.report = None
        self.text = None
        self.recording = None
        # Why the gate (fail_on, max_gil_wait) tripped, in the binary's words, or None.
        self.gate = None
        self._workdir = None

    def _complete(self, report, text, workdir, gate):
        self.report = report
        self.text = text
        self.recording = os.path.join(workdir.name, "run.gilscope")
        self.gate = gate
        self._workdir = workdir

    @property
    def verdict(self):
        fields = (self.report or {}).get("verdict")
        return Verdict(fields) if fields else None

    def save_html(self, path):
        """Writes the self-contained HTML report to `path` and returns the path."""
        _run_binary(["report", self._recording(), "-q", "--html", os.fspath(path)])
        return path

    def html(self):
        """The self-contained HTML report, as a string (rendered once, then kept)."""
        path = os.path.join(self._workdir.name, "report.html")
        if not os.path.exists(path):
            self.save_html(path)
        with open(path, encoding="utf-8") as f:
            return f.read()

    def save_recording(self, path):
        """Copies the raw recording (for `gilscope report`, `gilscope diff`) to `path`."""
        shutil.copyfile(self._recording(), path)
        return path

    def _recording(self):
        if self.recording is None:
            raise GilscopeError("the run is read once its `with` block has ended")
        return self.recording

    def _repr_html_(self):
        if self.report is None:
            return None
        from gilscope._jupyter import report_frame
        return report_frame(self.html())

    def __str__(self):
        return self.text if self.text is not None else repr(self)

    def __repr__(self):
        if self.report is None:
            return "<gilscope.Run in progress>"
        verdict = self.verdict
        return "<gilscope.Run %s, %.1f s, %d samples>" % (
            verdict.kind if verdict else "no verdict",
            self.report.get("duration_s", 0.0),
            self.report.get("samples", 0),
        )


def profile(func=None, rate=100, subprocesses=False, duration=None, fail_on=(),
            max_gil_wait=None):
    """Samples this process while a block or a function runs.

        with gilscope.profile() as run:
            work()
        run.verdict.kind            # "gil_contention"

        @gilscope.profile(rate=200)     # or @gilscope.profile
        def work(): ...
        work(); work.last_run       # the last call's Run

    rate: samples per second; subprocesses: also sample the processes the block starts;
    duration: stop sampling after this many seconds (the block runs on); fail_on (verdict
    kinds) and max_gil_wait (a fraction of a thread's time) set the gate: why it tripped is
    in `run.gate`.
    """
    sampling = _Profile(dict(rate=rate, subprocesses=subprocesses, duration=duration,
                             fail_on=tuple(fail_on), max_gil_wait=max_gil_wait))
    return sampling(func) if func is not None else sampling


class _Profile(object):
    """`gilscope.profile(...)`: a context manager, and a decorator of functions."""

    def __init__(self, options):
        self._options = options
        self._sampler = None
        self._run = None

    def __call__(self, func):
        options = self._options

        @functools.wraps(func)
        def sampled(*args, **kwargs):
            with _Profile(options) as run:
                result = func(*args, **kwargs)
            sampled.last_run = run
            return result

        sampled.last_run = None
        return sampled

    def __enter__(self):
        self._run = Run()
        self._sampler = _Sampler.start(["--pid", str(os.getpid())], self._options)
        return self._run

    def __exit__(self, exc_type, exc, tb):
        sampler, self._sampler = self._sampler, None
        try:
            sampler.stop(self._run)
        except GilscopeError:
            if exc_type is None:
                raise
        return False  # the block's own exception, if any, goes on


def attach(pid, duration, rate=100, subprocesses=False, fail_on=(), max_gil_wait=None):
    """Samples another running process for `duration` seconds and returns its Run."""
    options = dict(rate=rate, subprocesses=subprocesses, duration=duration,
                   fail_on=tuple(fail_on), max_gil_wait=max_gil_wait)
    run = Run()
    _Sampler.start(["--pid", str(int(pid))], options).wait(run)
    return run


class _Sampler(object):
    """One `gilscope record` child sampling a process."""

    def __init__(self, process, workdir, paths, tracer):
        self._process = process
        self._workdir = workdir
        self._paths = paths
        self._tracer = tracer

    @classmethod
    def start(cls, target, options):
        workdir = tempfile.TemporaryDirectory(prefix="gilscope-")
        paths = {name: os.path.join(workdir.name, name)
                 for name in ("run.gilscope", "report.json", "ready")}
        command = ["record", "-o", paths["run.gilscope"], "--json", paths["report.json"],
                   "--color", "never", "--ready-file", paths["ready"],
                   "--rate", str(options["rate"])] + target
        if options["subprocesses"]:
            command.append("--subprocesses")
        if options["duration"] is not None:
            command += ["--duration", str(options["duration"])]
        if options["fail_on"]:
            command += ["--fail-on", ",".join(options["fail_on"])]
        if options["max_gil_wait"] is not None:
            command += ["--max-gil-wait", str(options["max_gil_wait"])]
        tracer = _Tracer.declare()
        try:
            process = subprocess.Popen(
                [_binary()] + command, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                # Its own session: a Ctrl-C meant for the program reaches the sampler only
                # through stop(), after the block has unwound.
                start_new_session=True)
        except OSError as e:
            tracer.release()
            raise GilscopeError("gilscope: error: cannot run %s: %s (hint: reinstall gilscope, "
                                "or set GILSCOPE_BIN to the binary's path)"
                                % (_binary(), e.strerror or e))
        except BaseException:
            tracer.release()
            raise
        sampler = cls(process, workdir, paths, tracer)
        try:
            sampler._wait_ready()
        except BaseException:
            # A Ctrl-C while the sampler starts, or its failure: nothing is left running.
            sampler._abandon()
            raise
        return sampler

    def _abandon(self):
        """Stops the sampler without its report (it never pauses the target: killing it
        leaves the target as it was)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.communicate()
        self._tracer.release()

    def _wait_ready(self):
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not os.path.exists(self._paths["ready"]):
            if self._process.poll() is not None:
                _, err = self._process.communicate()
                raise _error(err, self._process.returncode)
            if time.monotonic() > deadline:
                raise GilscopeError("gilscope took more than %.0f s to take its first sample"
                                    % _START_TIMEOUT_S)
            time.sleep(0.002)

    def stop(self, run):
        """Tells the sampler to finish (as Ctrl-C does) and fills `run` with its report."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        self.wait(run)

    def wait(self, run):
        try:
            out, err = self._process.communicate(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._abandon()
            raise GilscopeError("gilscope did not finish its report within %.0f s"
                                % _STOP_TIMEOUT_S)
        except BaseException:
            self._abandon()  # a Ctrl-C while it writes: no report, nothing left running
            raise
        self._tracer.release()
        code = self._process.returncode
        if code not in (0, GATE_EXIT_CODE):
            raise _error(err, code)
        with open(self._paths["report.json"], encoding="utf-8") as f:
            report = json.load(f)
        gate = None
        if code == GATE_EXIT_CODE:
            gate = _gate_line(err)
        run._complete(report, out.decode("utf-8", "replace"), self._workdir, gate)


def _binary():
    try:
        return find_gilscope_bin()
    except FileNotFoundError as e:
        raise GilscopeError("gilscope: error: %s" % e)


def _run_binary(arguments):
    done = subprocess.run([_binary()] + arguments, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise _error(done.stderr, done.returncode)
    return done.stdout


def _error(stderr, code):
    """The binary's error as an exception: its own one-line error with the hint, or, for an
    option it refused before starting (clap's `error: invalid value ...`), a usage error."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("gilscope: error")]
    message = (errors or lines or ["gilscope exited with status %s" % code])[-1]
    if re.search(r"(invalid value|unexpected argument) .* for '--", message):
        return GilscopeUsageError(message)
    scope = _ptrace_scope()
    if "permission denied" in message.lower() and scope is not None and scope >= 2:
        message += (" (kernel.yama.ptrace_scope is %d: only a process with CAP_SYS_PTRACE may "
                    "read another, even its own parent; `sudo sysctl kernel.yama.ptrace_scope=1`"
                    " lets gilscope.profile() read its own process)" % scope)
    return GilscopeError(message)


def _gate_line(stderr):
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("gilscope: gate: "):
            reason = line[len("gilscope: gate: "):]
            return reason.rsplit(" (exit", 1)[0]
    return "the gate tripped"


def _ptrace_scope():
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class _Tracer(object):
    """This process declared as its own tracer's ancestor for Yama (`PR_SET_PTRACER`): under
    `ptrace_scope=1` a process may read only its descendants, and the sampler is this
    process's child. Declaring this process itself lets any of its descendants read it, which
    has no race with the child's start; the declaration is withdrawn when the last sampler
    ends. Without Yama the call fails and nothing is needed."""

    _PR_SET_PTRACER = 0x59616D61
    _lock = threading.Lock()
    _holders = 0

    def __init__(self, declared):
        self._declared = declared

    @classmethod
    def declare(cls):
        with cls._lock:
            if cls._holders == 0 and not cls._prctl(os.getpid()):
                return cls(False)
            cls._holders += 1
            return cls(True)

    def release(self):
        if not self._declared:
            return
        self._declared = False
        with _Tracer._lock:
            _Tracer._holders -= 1
            if _Tracer._holders == 0:
                _Tracer._prctl(0)

    @classmethod
    def _prctl(cls, pid):
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return False
        return libc.prctl(cls._PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0) == 0
