"""The IPython extension (`%load_ext gilscope`): `%%gilscope` samples the kernel while a cell
runs, `%gilscope_attach PID` samples another process; both show the report in the notebook,
the HTML report in a frame of its own (self-contained: no network), or the terminal report
with `--text`."""
import html

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from gilscope._profile import attach, profile


def report_frame(report_html):
    """The HTML report in an iframe of its own (its styles and script stay inside it), as tall
    as its content."""
    return (
        '<iframe class="gilscope-report" srcdoc="%s" style="width:100%%;height:720px;'
        'border:1px solid #ddd" onload="this.style.height=(this.contentWindow.document.body'
        '.scrollHeight+40)+\'px\'"></iframe>' % html.escape(report_html, quote=True)
    )


def _show(run, as_text):
    if as_text:
        print(run.text, end="")
    else:
        display({"text/html": report_frame(run.html()), "text/plain": run.text}, raw=True)


@magics_class
class GilscopeMagics(Magics):
    @magic_arguments()
    @argument("--text", action="store_true", help="print the terminal report, not the HTML one")
    @argument("--rate", type=float, default=100, help="samples per second (default 100)")
    @argument("--subprocesses", action="store_true",
              help="also sample the processes the cell starts (multiprocessing, joblib)")
    @argument("-o", "--out", metavar="NAME",
              help="also keep the run (a gilscope.Run) in the variable NAME")
    @cell_magic
    def gilscope(self, line, cell):
        """Run the cell while gilscope samples the kernel, then show the report."""
        args = parse_argstring(self.gilscope, line)
        with profile(rate=args.rate, subprocesses=args.subprocesses) as run:
            self.shell.run_cell(cell, store_history=False)
        if args.out:
            self.shell.user_ns[args.out] = run
        _show(run, args.text)

    @magic_arguments()
    @argument("pid", type=int, help="the process to sample")
    @argument("--duration", type=float, default=5.0, help="seconds to sample (default 5)")
    @argument("--text", action="store_true", help="print the terminal report, not the HTML one")
    @argument("--rate", type=float, default=100, help="samples per second (default 100)")
    @argument("--subprocesses", action="store_true", help="also sample its child processes")
    @argument("-o", "--out", metavar="NAME",
              help="also keep the run (a gilscope.Run) in the variable NAME")
    @line_magic
    def gilscope_attach(self, line):
        """Sample a running process for --duration seconds, then show the report."""
        args = parse_argstring(self.gilscope_attach, line)
        run = attach(args.pid, duration=args.duration, rate=args.rate,
                     subprocesses=args.subprocesses)
        if args.out:
            self.shell.user_ns[args.out] = run
        _show(run, args.text)
