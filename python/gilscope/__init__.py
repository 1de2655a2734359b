"""gilscope from Python: why are your threads not faster?

    import gilscope
    with gilscope.profile() as run:     # samples this process from outside
        work()
    print(run)                          # the terminal report
    run.verdict.kind                    # e.g. "gil_contention"
    run.save_html("report.html")

In Jupyter: `%load_ext gilscope`, then `%%gilscope` on a cell. In pytest:
`@pytest.mark.gilscope(fail_on=["gil_contention"])`. The sampler is the gilscope binary
installed with this package (`python -m gilscope --help`), run as a child process: it never
takes the GIL of the process it reads.
"""
from gilscope._binary import find_gilscope_bin
from gilscope._profile import GilscopeError, GilscopeUsageError, Run, Verdict, attach, profile

__all__ = [
    "GilscopeError", "GilscopeUsageError", "Run", "Verdict", "attach", "find_gilscope_bin",
    "profile",
]


def load_ipython_extension(ipython):
    """`%load_ext gilscope`: the `%%gilscope` cell magic and `%gilscope_attach`."""
    from gilscope._jupyter import GilscopeMagics
    ipython.register_magics(GilscopeMagics)
