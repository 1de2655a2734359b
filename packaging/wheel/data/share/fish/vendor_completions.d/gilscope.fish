# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gilscope_global_optspecs
    string join \n color= h/help V/version
end

function __fish_gilscope_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gilscope_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gilscope_using_subcommand
    set -l cmd (__fish_gilscope_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gilscope -n "__fish_gilscope_needs_command" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_needs_command" -s V -l version -d 'Print version'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "run" -d 'Launch a Python program and sample it until it exits; exit with its status'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "attach" -d 'Sample a running Python process until --duration or Ctrl-C; it keeps running'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "top" -d 'A live view of a running process (`top PID`) or a launched one (`top -- COMMAND`): each thread\'s states over the last second, the GIL, the hot functions and the verdict so far, refreshed every second. Keys: q quit, s sort, c last second / since start, f freeze. On quit, or when the target exits, the usual report is printed'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "record" -d 'Like `run` (or `attach` with --pid), and also write the raw samples to a file'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "bench" -d 'Run FUNCTION sequentially, in threads and in processes, each in a fresh interpreter, and show the measured table with the GIL evidence of each mode'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "diff" -d 'Compare two runs, each a recording or a JSON report: did the change help? Durations, cores, GIL, thread states and verdicts side by side, the speedup measured against the one predicted, and the functions whose GIL use changed most'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "completions" -d 'Print a completion script for a shell, e.g. `gilscope completions bash > ~/.local/share/bash-completion/completions/gilscope`'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "man" -d 'Print the manual page (roff), e.g. `gilscope man | man -l -`'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "agent" -d 'Watch every Python process on this host continuously, and serve their thread states, GIL and verdicts to Prometheus (`/metrics`) and as JSON (`/processes`). Runs until SIGTERM or Ctrl-C; needs the privilege `attach` needs'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "report" -d 'Produce the report from a recording, exactly as it was live'
complete -c gilscope -n "__fish_gilscope_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l rate -d 'Samples per second' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l duration -d 'Stop sampling after this many seconds' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l ready-file -d 'Create FILE (empty) once the first sample is taken, so that a script can wait for it before it starts the work to measure (the Python package\'s `gilscope.profile()` does)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l json -d 'Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l trace -d 'Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l flamegraph -d 'Write a flame graph (SVG) whose first level is the thread state' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l flamegraph-state -d 'Draw only the stacks of one state in the flame graph' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l speedscope -d 'Write a speedscope profile (open in speedscope.app)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l pprof -d 'Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope, Parca)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l html -d 'Write a self-contained HTML report (no network needed)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l fail-on -d 'Exit with status 3 when the verdict is one of these kinds (e.g. gil_contention)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l max-gil-wait -d 'Exit with status 3 when a thread waits for the GIL more than this share of its time' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l pyroscope -d 'Push each interval\'s per-thread profile (labels thread_name, thread_id, state) to this Pyroscope server, e.g. http://pyroscope:4040. Runs until Ctrl-C, SIGTERM, the target\'s exit or --duration' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l push-interval -d 'Seconds per pushed profile' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l app-name -d 'The service_name label (default: the script\'s name)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l tag -d 'An extra series label (repeatable), e.g. --tag region=eu' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l blocking -d 'Pause the target while reading its stacks (more exact stacks, slower target). Never left on: the kernel resumes the target if gilscope dies'
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l subprocesses -d 'Also sample every descendant process (multiprocessing pools, spawn and forkserver workers, `subprocess` children), including those started later'
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -s q -l quiet -d 'Do not print the terminal report'
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -l threads -d 'List every thread in the terminal report, not one row per group of threads started with the same function (a pool\'s workers, a server\'s request threads)'
complete -c gilscope -n "__fish_gilscope_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l rate -d 'Samples per second' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l duration -d 'Stop sampling after this many seconds' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l ready-file -d 'Create FILE (empty) once the first sample is taken, so that a script can wait for it before it starts the work to measure (the Python package\'s `gilscope.profile()` does)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l json -d 'Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l trace -d 'Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l flamegraph -d 'Write a flame graph (SVG) whose first level is the thread state' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l flamegraph-state -d 'Draw only the stacks of one state in the flame graph' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l speedscope -d 'Write a speedscope profile (open in speedscope.app)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l pprof -d 'Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope, Parca)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l html -d 'Write a self-contained HTML report (no network needed)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l fail-on -d 'Exit with status 3 when the verdict is one of these kinds (e.g. gil_contention)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l max-gil-wait -d 'Exit with status 3 when a thread waits for the GIL more than this share of its time' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l pyroscope -d 'Push each interval\'s per-thread profile (labels thread_name, thread_id, state) to this Pyroscope server, e.g. http://pyroscope:4040. Runs until Ctrl-C, SIGTERM, the target\'s exit or --duration' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l push-interval -d 'Seconds per pushed profile' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l app-name -d 'The service_name label (default: the script\'s name)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l tag -d 'An extra series label (repeatable), e.g. --tag region=eu' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l blocking -d 'Pause the target while reading its stacks (more exact stacks, slower target). Never left on: the kernel resumes the target if gilscope dies'
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l subprocesses -d 'Also sample every descendant process (multiprocessing pools, spawn and forkserver workers, `subprocess` children), including those started later'
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -s q -l quiet -d 'Do not print the terminal report'
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -l threads -d 'List every thread in the terminal report, not one row per group of threads started with the same function (a pool\'s workers, a server\'s request threads)'
complete -c gilscope -n "__fish_gilscope_using_subcommand attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l rate -d 'Samples per second' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l duration -d 'Stop sampling after this many seconds' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l ready-file -d 'Create FILE (empty) once the first sample is taken, so that a script can wait for it before it starts the work to measure (the Python package\'s `gilscope.profile()` does)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l json -d 'Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l trace -d 'Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l flamegraph -d 'Write a flame graph (SVG) whose first level is the thread state' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l flamegraph-state -d 'Draw only the stacks of one state in the flame graph' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l speedscope -d 'Write a speedscope profile (open in speedscope.app)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l pprof -d 'Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope, Parca)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l html -d 'Write a self-contained HTML report (no network needed)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l blocking -d 'Pause the target while reading its stacks (more exact stacks, slower target). Never left on: the kernel resumes the target if gilscope dies'
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l subprocesses -d 'Also sample every descendant process (multiprocessing pools, spawn and forkserver workers, `subprocess` children), including those started later'
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -s q -l quiet -d 'Do not print the terminal report'
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -l threads -d 'List every thread in the terminal report, not one row per group of threads started with the same function (a pool\'s workers, a server\'s request threads)'
complete -c gilscope -n "__fish_gilscope_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -s o -l output -d 'The recording to write' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l pid -d 'Attach to this PID instead of launching a command' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l rate -d 'Samples per second' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l duration -d 'Stop sampling after this many seconds' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l ready-file -d 'Create FILE (empty) once the first sample is taken, so that a script can wait for it before it starts the work to measure (the Python package\'s `gilscope.profile()` does)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l json -d 'Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l trace -d 'Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l flamegraph -d 'Write a flame graph (SVG) whose first level is the thread state' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l flamegraph-state -d 'Draw only the stacks of one state in the flame graph' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l speedscope -d 'Write a speedscope profile (open in speedscope.app)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l pprof -d 'Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope, Parca)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l html -d 'Write a self-contained HTML report (no network needed)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l fail-on -d 'Exit with status 3 when the verdict is one of these kinds (e.g. gil_contention)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l max-gil-wait -d 'Exit with status 3 when a thread waits for the GIL more than this share of its time' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l blocking -d 'Pause the target while reading its stacks (more exact stacks, slower target). Never left on: the kernel resumes the target if gilscope dies'
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l subprocesses -d 'Also sample every descendant process (multiprocessing pools, spawn and forkserver workers, `subprocess` children), including those started later'
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -s q -l quiet -d 'Do not print the terminal report'
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -l threads -d 'List every thread in the terminal report, not one row per group of threads started with the same function (a pool\'s workers, a server\'s request threads)'
complete -c gilscope -n "__fish_gilscope_using_subcommand record" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l tasks -d 'Call the function this many times (with ARGS each time)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l tasks-from -d 'Take the tasks from an iterable: `FILE.py:NAME`; each item is a tuple of arguments, or one argument' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l workers -d 'Workers for the parallel modes [default: the number of cores]' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l runs -d 'Measured runs per mode' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l warmup -d 'Warm-up runs per mode (the first one is sampled for the GIL evidence)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l modes -d 'Modes to compare, comma-separated [default: sequential,threads,processes, and interpreters where the interpreter has InterpreterPoolExecutor (3.14+)]' -r -f -a "sequential\t''
threads\t''
processes\t''
interpreters\t''
asyncio\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l python -d 'Interpreter to run with; repeat to compare several' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l timeout -d 'Give up on a run after this many seconds' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l export-json -d 'Write the results as JSON (schema gilscope.bench/1)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l export-markdown -d 'Write the results as a Markdown table' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l scaling -d 'Run each parallel mode with 1, 2, 4 ... up to --workers workers: time, speedup, tasks a second and speedup per worker at each count, and what gilscope saw in each threaded run (on a free-threaded build: parallel, object locks, the collector)'
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -l no-evidence -d 'Do not sample the warm-up run for GIL evidence'
complete -c gilscope -n "__fish_gilscope_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand diff" -l json -d 'Also write the comparison as JSON (schema gilscope.diff/1); `-` for stdout' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand diff" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand diff" -s q -l quiet -d 'Do not print the comparison'
complete -c gilscope -n "__fish_gilscope_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand completions" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand man" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l listen -d 'Where to serve /metrics and /processes' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l rate -d 'Samples per second of each process, at most' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l max-cpu -d 'The agent\'s CPU budget, in cores: over it, idle processes are sampled less often, then every process' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l window -d 'Seconds per window: each process\'s verdict and report cover its last window' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l discover-every -d 'Seconds between two looks for new processes' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l match -d 'Watch only processes whose command line matches this regular expression' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l exclude -d 'Never watch processes whose command line matches this regular expression' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l service-env -d 'The environment variable that names a process\'s service (else: its script\'s name)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l env-label -d 'Copy this environment variable of each process into its `gilscope_process_info` labels (repeatable), e.g. --env-label TEAM' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l duration -d 'Stop after this many seconds (default: until SIGTERM or Ctrl-C)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l pyroscope -d 'Also push each window\'s profiles to this Pyroscope server, one series per process (labels service_name, pid, container_id, pod_uid, --env-label values). Credentials come from the environment, as for `attach --pyroscope`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l tag -d 'An extra series label for the pushed profiles (repeatable), e.g. --tag cluster=eu-1' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand agent" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l json -d 'Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l trace -d 'Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or chrome://tracing)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l flamegraph -d 'Write a flame graph (SVG) whose first level is the thread state' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l flamegraph-state -d 'Draw only the stacks of one state in the flame graph' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l speedscope -d 'Write a speedscope profile (open in speedscope.app)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l pprof -d 'Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope, Parca)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l html -d 'Write a self-contained HTML report (no network needed)' -r -F
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l fail-on -d 'Exit with status 3 when the verdict is one of these kinds (e.g. gil_contention)' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l max-gil-wait -d 'Exit with status 3 when a thread waits for the GIL more than this share of its time' -r
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l color -d 'Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never' -r -f -a "auto\t'On a terminal, unless `NO_COLOR` is set (https://no-color.org)'
always\t''
never\t''"
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -s q -l quiet -d 'Do not print the terminal report'
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -l threads -d 'List every thread in the terminal report, not one row per group of threads started with the same function (a pool\'s workers, a server\'s request threads)'
complete -c gilscope -n "__fish_gilscope_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "run" -d 'Launch a Python program and sample it until it exits; exit with its status'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "attach" -d 'Sample a running Python process until --duration or Ctrl-C; it keeps running'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "top" -d 'A live view of a running process (`top PID`) or a launched one (`top -- COMMAND`): each thread\'s states over the last second, the GIL, the hot functions and the verdict so far, refreshed every second. Keys: q quit, s sort, c last second / since start, f freeze. On quit, or when the target exits, the usual report is printed'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "record" -d 'Like `run` (or `attach` with --pid), and also write the raw samples to a file'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "bench" -d 'Run FUNCTION sequentially, in threads and in processes, each in a fresh interpreter, and show the measured table with the GIL evidence of each mode'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "diff" -d 'Compare two runs, each a recording or a JSON report: did the change help? Durations, cores, GIL, thread states and verdicts side by side, the speedup measured against the one predicted, and the functions whose GIL use changed most'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "completions" -d 'Print a completion script for a shell, e.g. `gilscope completions bash > ~/.local/share/bash-completion/completions/gilscope`'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "man" -d 'Print the manual page (roff), e.g. `gilscope man | man -l -`'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "agent" -d 'Watch every Python process on this host continuously, and serve their thread states, GIL and verdicts to Prometheus (`/metrics`) and as JSON (`/processes`). Runs until SIGTERM or Ctrl-C; needs the privilege `attach` needs'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "report" -d 'Produce the report from a recording, exactly as it was live'
complete -c gilscope -n "__fish_gilscope_using_subcommand help; and not __fish_seen_subcommand_from run attach top record bench diff completions man agent report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
