"""The pytest plugin (registered by the wheel's `pytest11` entry point): a test marked

    @pytest.mark.gilscope(fail_on=["gil_contention"], max_gil_wait=0.3)

runs while gilscope samples the test process, and fails with gilscope's one-line reason when
its verdict is listed in fail_on or a thread waits for the GIL more than max_gil_wait of its
time. `pytest --gilscope-report DIR` writes each marked test's HTML report to DIR. Where
gilscope cannot read the process, the marker only warns: the test runs as it would without it.
Needs pytest 8 or later."""
import os
import re
import warnings

import pytest

from gilscope._profile import GilscopeError, GilscopeUsageError, profile

_MARKER = "gilscope"


class GilscopeWarning(UserWarning):
    """gilscope could not sample a marked test; the test ran unsampled."""


def pytest_addoption(parser):
    group = parser.getgroup("gilscope", "gilscope: why threads are not faster")
    group.addoption("--gilscope-report", metavar="DIR", default=None,
                    help="write the HTML report of each test marked gilscope to DIR")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "gilscope(fail_on=(), max_gil_wait=None, rate=100, subprocesses=False): sample the "
        "test with gilscope; fail it when the verdict is in fail_on or a thread waits for the "
        "GIL more than max_gil_wait of its time",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker(_MARKER)
    if marker is None:
        return (yield)
    options = dict(marker.kwargs)
    unknown = set(options) - {"fail_on", "max_gil_wait", "rate", "subprocesses"}
    if unknown or marker.args:
        raise pytest.UsageError("@pytest.mark.gilscope takes only the keywords fail_on, "
                                "max_gil_wait, rate and subprocesses (got %s)"
                                % ", ".join(sorted(unknown) or map(repr, marker.args)))
    sampling = profile(**options)
    try:
        run = sampling.__enter__()
    except GilscopeUsageError as e:
        raise pytest.UsageError("@pytest.mark.gilscope on %s: %s" % (item.nodeid, e))
    except GilscopeError as e:
        warnings.warn(GilscopeWarning("gilscope could not sample %s: %s" % (item.nodeid, e)))
        return (yield)
    try:
        result = yield
    finally:
        # A failing test's report is written too; its own failure goes on unchanged.
        run = _finish(item, sampling, run)
    if run is not None and run.gate:
        headline = run.verdict.headline if run.verdict else "no verdict"
        pytest.fail("gilscope: %s. %s" % (run.gate, headline), pytrace=False)
    if run is not None and run.verdict is not None and run.verdict.kind == "inconclusive":
        # The gate could not judge: say so rather than pass in silence.
        warnings.warn(GilscopeWarning("gilscope could not judge %s: %s"
                                      % (item.nodeid, run.verdict.headline)))
    return result


def _finish(item, sampling, run):
    """Stops sampling and writes the HTML report where asked; the run, or None (warned)."""
    try:
        sampling.__exit__(None, None, None)
        item.gilscope_run = run
        report_dir = item.config.getoption("--gilscope-report")
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
            run.save_html(os.path.join(report_dir, _file_name(item.nodeid) + ".html"))
    except GilscopeError as e:
        warnings.warn(GilscopeWarning("gilscope could not finish sampling %s: %s"
                                      % (item.nodeid, e)))
        return None
    return run


def _file_name(nodeid):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
