"""A test suite as a library author writes one with gilscope's marker (run by
tests/python_package.rs through real pytest; some of these tests must fail, by design)."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from work import checksum, fetch


@pytest.mark.gilscope(fail_on=["gil_contention"])
def test_checksums_in_threads_must_not_contend():
    """Fails: four threads take turns on the GIL."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert len(list(pool.map(checksum, [3_000_000] * 4))) == 4


@pytest.mark.gilscope(max_gil_wait=0.3)
def test_checksums_wait_little_for_the_gil():
    """Fails: each worker waits for the GIL far more than 30% of its time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert len(list(pool.map(checksum, [3_000_000] * 4))) == 4


@pytest.mark.gilscope(fail_on=["gil_contention"], max_gil_wait=0.3)
def test_fetches_in_threads_run_concurrently():
    """Passes: the threads wait on I/O, not on the GIL."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(fetch, range(80))) == list(range(80))


@pytest.mark.gilscope(fail_on=["gil_contention"])
def test_a_failing_assertion_is_reported_as_such():
    """Fails on its own assertion, which gilscope does not hide."""
    time.sleep(0.6)
    assert 1 == 2, "the test's own failure"


@pytest.mark.gilscope(fail_on=["gil_contention"])
def test_too_short_to_judge():
    """Passes, with a warning that gilscope could not judge it."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert len(list(pool.map(checksum, [20_000] * 4))) == 4


def test_unmarked_tests_are_not_sampled(request):
    assert not hasattr(request.node, "gilscope_run")
