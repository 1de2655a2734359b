//! The one place where findings become words: each [`Finding`] gets its headline, evidence,
//! advice and code snippet here, and each [`Forecast`] its assumptions.

use crate::analysis::queries::{HotFunction, LoopCulprit};
use crate::model::Frame;
use crate::words::{self, file_name, pct, place};

use super::findings::{
    Assumption, CpuSaturated, Diagnosis, EventLoopBlocked, Finding, Forecast, FreeThreaded,
    FreeThreadedCase, GcPauses, GilContention, GilTurnedOn, GroupWords, Idle, IoBound, IpcOverhead,
    Load, LockContention, Mixed, NativeParallel, NoRuleFits, NotEnoughEvidence,
    ObjectLockContention, PhaseLabel, PhaseSpan, PoolLoad, PoolParallel, PoolUnderused,
    ResultBottleneck, SingleThreadCpu, ThreadPoolKind, UnmappedHolder,
};
use super::{
    Phase, Prediction, Verdict, VerdictKind, FREE_THREADED_EFFICIENCY, HANDOFF_RATE_MIN,
    MIN_DURATION_S, MIN_SAMPLES, WORKER_STARTUP_S,
};

/// The verdict, in words, of what the rules found.
pub(super) fn verdict(d: &Diagnosis) -> Verdict {
    let mut v = Verdict {
        kind: d.finding.kind(),
        headline: String::new(),
        evidence: Vec::new(),
        advice: Vec::new(),
        snippet: None,
        predicted_speedup: None,
        confidence: d.finding.confidence(),
        phases: d.phases.iter().map(phase).collect(),
    };
    write(&mut v, &d.finding);
    if let Some((start_s, end_s)) = d.during {
        v.headline = format!("From {start_s:.0} s to {end_s:.0} s: {}", v.headline);
    }
    if let Some((pid, command)) = &d.within {
        v.headline = format!("In PID {pid} ({command}): {}", v.headline);
    }
    v
}

/// Writes the finding's headline, evidence, advice, snippet and prediction into `v`.
fn write(v: &mut Verdict, finding: &Finding) {
    match finding {
        Finding::NotEnoughEvidence(f) => not_enough_evidence(v, f),
        Finding::UnmappedHolder(f) => unmapped_holder(v, f),
        Finding::NoRuleFits(f) => no_rule_fits(v, f),
        Finding::GilContention(f) => gil_contention(v, f),
        Finding::Mixed(f) => mixed(v, f),
        Finding::NativeParallel(f) => native_parallel(v, f),
        Finding::SingleThreadCpu(f) => single_thread_cpu(v, f),
        Finding::LockContention(f) => lock_contention(v, f),
        Finding::IoBound(f) => io_bound(v, f),
        Finding::CpuSaturated(f) => cpu_saturated(v, f),
        Finding::Idle(f) => idle(v, f),
        Finding::EventLoopBlocked(f) => event_loop_blocked(v, f),
        Finding::IpcOverhead(f) => ipc_overhead(v, f),
        Finding::ResultBottleneck(f) => result_bottleneck(v, f),
        Finding::PoolUnderused(f) => pool_underused(v, f),
        Finding::PoolParallel(f) => pool_parallel(v, f),
        Finding::FreeThreaded(f) => free_threaded(v, f),
        Finding::GilTurnedOn(f) => gil_turned_on(v, f),
        Finding::GcPauses(f) => gc_pauses(v, f),
        Finding::ObjectLockContention(f) => object_lock_contention(v, f),
    }
}

fn gc_pauses(v: &mut Verdict, f: &GcPauses) {
    v.headline = format!(
        "Garbage collection: the collector ran {} of the time, and {}",
        pct(f.share),
        if f.stops_the_world {
            "each collection stops every thread"
        } else {
            "the thread collecting holds the GIL while the others wait"
        }
    );
    v.evidence = vec![
        format!(
            "the garbage collector was collecting in {} of the samples",
            pct(f.share)
        ),
        if f.stops_the_world {
            core_line(&f.load)
        } else {
            gil_and_cores(&f.load)
        },
    ];
    if let Some(stopped) = f.world_stopped.filter(|_| f.stops_the_world) {
        v.evidence.push(format!(
            "the world was stopped (every other thread suspended) in {} of the samples",
            pct(stopped)
        ));
    }
    v.advice.push("Collections walk every tracked object: a large, long-lived heap (caches, loaded data) makes each one slow, and reference cycles in short-lived objects make them frequent".into());
    v.advice.push("After building the long-lived data, call `gc.freeze()`: the collector then skips those objects for good".into());
    v.advice.push("Break the reference cycles of short-lived objects (weak references, `__slots__` without back-pointers, clearing parents), or collect less often with `gc.set_threshold(...)`".into());
    v.advice.push("Processes would not help: each would hold a copy of the heap and collect it itself; neither would more threads".into());
    titled(
        &mut v.advice,
        "Where the collecting thread was when collections ran (what allocates):",
        hot_lines(&f.allocating, "collecting time"),
    );
    v.snippet = Some("# after loading the long-lived data, once\nimport gc\ngc.freeze()".into());
    v.predicted_speedup = Some(prediction(&f.forecast));
}

/// A group as the evidence names it: `MainThread`, `4 threads (crunch-*)`, or for threads that
/// come and go (one per request), `712 threads of Thread-* (process_request_thread), 2.1 at a
/// time`.
fn group_phrase(g: &GroupWords) -> String {
    if let Some(rate) = g.started_per_s {
        format!(
            "{} of {} ({rate:.0} started a second, {:.1} at a time)",
            words::count(g.threads, "thread"),
            g.label,
            g.at_once
        )
    } else if g.threads == 1 {
        g.label.clone()
    } else if g.label.contains('(') {
        format!("{} {} threads", g.threads, g.label)
    } else {
        format!("{} ({})", words::count(g.threads, "thread"), g.label)
    }
}

/// Groups joined into one phrase: `4 threads (crunch-*) and MainThread`.
fn groups_phrase(groups: &[GroupWords]) -> String {
    let phrases: Vec<String> = groups.iter().map(group_phrase).collect();
    match phrases.as_slice() {
        [] => "no thread".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `each waited 71%` for several threads, `it waited 71%` for one.
fn each_waited(threads: f64, wait: f64) -> String {
    if threads < 1.5 {
        format!("it waited {}", pct(wait))
    } else {
        format!("each waited {}", pct(wait))
    }
}

fn not_enough_evidence(v: &mut Verdict, f: &NotEnoughEvidence) {
    let NotEnoughEvidence {
        samples,
        duration_s,
        needed_s,
    } = f;
    v.headline = format!(
        "Not enough evidence: {samples} samples over {duration_s:.2} s; sample at least {needed_s:.1} s"
    );
    v.evidence = vec![format!(
        "{samples} samples, {duration_s:.2} s: a verdict needs {MIN_SAMPLES} samples and {MIN_DURATION_S:.1} s"
    )];
    v.advice
        .push("run the program for longer, or attach while it does its slow part".into());
}

fn unmapped_holder(v: &mut Verdict, f: &UnmappedHolder) {
    v.headline = format!(
        "Cannot tell: the GIL was held {} of the time by a thread gilscope could not map",
        pct(f.unmapped)
    );
    v.evidence = vec![
        "CPython names the GIL's holder by a thread id from its own memory; that id matched none of the target's threads, so no thread can be shown holding the GIL and GIL-based verdicts would be guesses".into(),
        core_line(&f.load),
    ];
    v.advice.push("The likely cause is a PID namespace gilscope could not translate (a container): run gilscope in the target's PID namespace (`gilscope run` inside the container, or a sidecar started with `--pid=container:NAME`)".into());
    v.advice.push("If the target is on the host, please report this with the Python build and `cat /proc/PID/status`".into());
}

fn no_rule_fits(v: &mut Verdict, f: &NoRuleFits) {
    let shares: Vec<String> = f
        .shares
        .iter()
        .map(|(state, share)| format!("{} {}", state.name(), pct(*share)))
        .collect();
    v.headline = "No clear bottleneck: the threads' time is spread over several states".into();
    v.evidence = vec![
        format!(
            "{} spend on average: {}",
            groups_phrase(&f.groups),
            shares.join(", ")
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("Sample a longer stretch of the slow part, or look at the per-thread table and the hot functions below".into());
}

fn gil_contention(v: &mut Verdict, f: &GilContention) {
    let at_a_time = if f.groups.iter().any(|g| g.started_per_s.is_some()) {
        " at a time"
    } else {
        ""
    };
    v.headline = format!(
        "GIL contention: {}{at_a_time} take turns on one GIL, so they run one at a time",
        words::threads(f.threads).replacen("thread", "Python thread", 1)
    );
    v.evidence.push(format!(
        "{} ran Python; the GIL was held {} of the time; {} of its time for it; {}",
        groups_phrase(&f.groups),
        pct(f.load.gil_held),
        each_waited(f.threads, f.wait),
        core_line(&f.load)
    ));
    if !f.bystanders.is_empty() {
        v.evidence.push(format!(
            "{} barely ran or waited for the GIL: bystanders, not part of the contention",
            groups_phrase(&f.bystanders)
        ));
    }
    let ping_pong = f.switches_per_s.filter(|&rate| rate >= HANDOFF_RATE_MIN);
    match (f.switches_per_s, ping_pong) {
        (_, Some(rate)) => v.evidence.push(format!(
            "the GIL changed hands {rate:.0} times a second, and passing it on took {} of the threads' time",
            pct(f.handoff)
        )),
        (Some(rate), None) => v
            .evidence
            .push(format!("the GIL changed hands {rate:.0} times a second")),
        (None, None) => {}
    }
    if ping_pong.is_some() {
        v.advice.push("The threads pass the GIL back and forth in small pieces of work (typically items handed one at a time through a queue): hand them batches (lists of items), so each holds the GIL for longer and hands it on less often".into());
    }
    v.advice.push(format!(
        "Move the CPU-bound Python work to processes: {}",
        match f.pool {
            ThreadPoolKind::Executor => "replace ThreadPoolExecutor with ProcessPoolExecutor",
            ThreadPoolKind::MultiprocessingThreadPool =>
                "replace multiprocessing.pool.ThreadPool with multiprocessing.Pool (the same map and apply methods)",
            ThreadPoolKind::Joblib =>
                "drop joblib's backend=\"threading\" (or prefer=\"threads\"): its default backend, loky, runs the tasks in worker processes",
            ThreadPoolKind::Threads =>
                "replace threading.Thread with multiprocessing.Pool (or ProcessPoolExecutor)",
        }
    ));
    titled(
        &mut v.advice,
        "The functions holding the GIL:",
        hot_lines(&f.hot, "GIL-holding time"),
    );
    let entries = entry_places(&f.entries);
    if !entries.is_empty() {
        v.advice.push(format!(
            "They run in the threads started at: {}",
            entries.join(", ")
        ));
    }
    v.advice.push(
        "Keep the pool's creation under `if __name__ == \"__main__\":`, and pass small arguments (paths, ranges) rather than large data".into(),
    );
    if f.defined_in_notebook {
        v.advice.push("These functions are defined in a notebook cell, which worker processes started by spawn or forkserver (the default from Python 3.14) cannot import: move them into a .py module beside the notebook and import them from there".into());
    }
    v.advice.push(
        "Alternatively, a free-threaded CPython (3.13t or later) runs these threads in parallel"
            .into(),
    );
    v.snippet = Some(if f.pool == ThreadPoolKind::Executor {
        "# before\nwith ThreadPoolExecutor(max_workers=n) as pool:\n    results = list(pool.map(work, tasks))\n\n# after\nfrom concurrent.futures import ProcessPoolExecutor\n\nif __name__ == \"__main__\":\n    with ProcessPoolExecutor(max_workers=n) as pool:\n        results = list(pool.map(work, tasks))".into()
    } else {
        "# before\nthreads = [threading.Thread(target=work, args=(t,)) for t in tasks]\n\n# after\nimport multiprocessing\n\nif __name__ == \"__main__\":\n    with multiprocessing.Pool() as pool:\n        results = pool.map(work, tasks)".into()
    });
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn mixed(v: &mut Verdict, f: &Mixed) {
    let (io, python) = (groups_phrase(&f.io_groups), groups_phrase(&f.python_groups));
    v.headline = format!("Mixed: {io} wait on I/O while {python} run Python and hold the GIL");
    v.evidence = vec![
        format!(
            "{io} do I/O or sleep, yet wait {} of their time for the GIL; {python} ran Python, waiting {} for it",
            pct(f.io_wait),
            pct(f.python_wait)
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("Keep the I/O in threads (or asyncio), and send the CPU-bound Python work to a process pool: chain a ThreadPoolExecutor that fetches into a ProcessPoolExecutor that computes".into());
    v.advice.extend(hot_lines(&f.hot, "GIL-holding time"));
    v.snippet = Some("import asyncio\nfrom concurrent.futures import ProcessPoolExecutor\n\nasync def handle(item, pool):\n    data = await fetch(item)  # I/O stays in threads or the loop\n    loop = asyncio.get_running_loop()\n    # the CPU-bound part goes to a process\n    return await loop.run_in_executor(pool, compute, data)".into());
    v.predicted_speedup = f.forecast.as_ref().map(prediction);
}

fn native_parallel(v: &mut Verdict, f: &NativeParallel) {
    let threads = words::threads(f.threads);
    v.headline = format!(
        "Threads already work: {threads} run native code with the GIL released, filling {:.1} of {} cores",
        f.load.cores_used, f.load.cores
    );
    v.evidence = vec![
        format!(
            "{threads} spent {} of their time in native code without the GIL; they waited {} for it",
            pct(f.native),
            pct(f.wait)
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("Threads already run in parallel here: processes would add start-up and pickling costs for no gain".into());
    if f.oversubscribed {
        v.advice.push(format!(
            "Every core is busy: more workers will not help; {} workers (one per core) is enough",
            f.load.cores
        ));
    }
    v.advice.extend(hot_lines(&f.hot, "native time"));
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn single_thread_cpu(v: &mut Verdict, f: &SingleThreadCpu) {
    let thread = &f.thread;
    v.headline = format!("One thread does all the work: {thread} is busy while the others wait");
    let mut busy = format!(
        "{thread} was on the CPU {} of its time ({} holding the GIL)",
        pct(f.on_cpu),
        pct(f.holding)
    );
    if f.others >= 0.5 {
        busy.push_str(&format!(
            "; {} beside it took part",
            words::threads(f.others)
        ));
    } else {
        busy.push_str("; no other thread ran or waited for the GIL");
    }
    v.evidence = vec![busy, core_line(&f.load)];
    v.advice.push("Split the work into independent parts first; then run the parts in a process pool (threads would only take turns on the GIL)".into());
    if let Some(entry) = &f.entry {
        v.advice
            .push(format!("The busy thread runs {}", location(entry)));
    }
    v.advice.extend(hot_lines(&f.hot, "GIL-holding time"));
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn lock_contention(v: &mut Verdict, f: &LockContention) {
    v.headline = format!(
        "Lock contention: {} wait on a lock of the program's own, not on the GIL",
        words::threads(f.waiters)
    );
    v.evidence = vec![
        format!(
            "the threads spent {} of their time waiting on a lock, condition, queue or event, and {} waiting for the GIL",
            pct(f.lock),
            pct(f.wait)
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("The GIL is not the limit: the program's own locking serialises the threads. Hold locks for less time (never across I/O or sleep), or split the data so threads do not share a lock".into());
    titled(
        &mut v.advice,
        "Where the threads wait:",
        hot_lines(&f.sites, "lock-waiting time"),
    );
    waiting_threads_run(&mut v.advice, &f.entries);
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn io_bound(v: &mut Verdict, f: &IoBound) {
    v.headline = format!(
        "I/O-bound: {} spend most of their time waiting on I/O, not on the GIL",
        words::threads(f.threads)
    );
    v.evidence = vec![
        format!(
            "the threads waited on I/O or slept {} of their time and for the GIL {}",
            pct(f.io),
            pct(f.wait)
        ),
        gil_and_cores(&f.load),
    ];
    for (thread, waiting) in &f.loops {
        v.evidence.push(format!(
            "the asyncio loop in {} waited for events {} of its time: it is not blocked",
            thread_or_its(thread),
            pct(*waiting)
        ));
    }
    if f.loops.is_empty() {
        v.advice.push("Threads are the right tool here: the GIL is released while they wait. More threads give more concurrent waits".into());
        v.advice.push("asyncio pays once you need many hundreds of concurrent waits (connections, requests); below that, threads are simpler".into());
    } else {
        v.headline =
            "I/O-bound: the asyncio loop waits on I/O nearly all the time, not on the GIL or the CPU"
                .into();
        v.advice.push("asyncio is the right tool here: the loop spends its time waiting for I/O. More concurrent tasks give more concurrent waits".into());
    }
    v.advice.extend(hot_lines(&f.hot, "I/O time"));
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn cpu_saturated(v: &mut Verdict, f: &CpuSaturated) {
    v.headline = format!(
        "CPU saturated: the process keeps all {} cores busy",
        f.load.cores
    );
    v.evidence = vec![
        core_line(&f.load),
        format!(
            "the GIL was held {}; threads waited {} for it",
            pct(f.load.gil_held),
            pct(f.wait)
        ),
    ];
    v.advice.push(
        "Nothing to gain from more workers: make the work itself cheaper, or run on more cores"
            .into(),
    );
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn idle(v: &mut Verdict, f: &Idle) {
    v.headline = "Idle: the program was mostly waiting, with no thread busy".into();
    v.evidence = vec![core_line(&f.load)];
    v.advice.push(
        "Nothing to speed up in this window: sample while the program does its slow part".into(),
    );
}

fn event_loop_blocked(v: &mut Verdict, f: &EventLoopBlocked) {
    v.headline = format!(
        "Blocked event loop: the asyncio loop in {} {} {} of the time, stalling every task (longest stretch without waiting for events: {:.0} ms)",
        thread_or_its(&f.thread),
        if f.blocking { "sat in blocking calls" } else { "ran CPU-bound code" },
        pct(f.busy),
        f.longest_s * 1000.0
    );
    v.evidence = vec![format!(
        "the loop waited for events {} of its time; {} was spent in callbacks and coroutine steps, {} of it blocked rather than on a CPU",
        pct(1.0 - f.busy),
        pct(f.busy),
        pct(f.blocked)
    )];
    if f.blocking {
        v.advice.push("Move the blocking calls off the loop: `await asyncio.to_thread(f, ...)` (3.9+) or `await loop.run_in_executor(None, f, ...)`; use `await asyncio.sleep()` instead of `time.sleep()`, and async libraries (aiohttp, httpx, aiofiles) instead of requests or plain file reads".into());
        v.snippet = Some("# before: blocks every task on the loop\ntime.sleep(delay)\ndata = requests.get(url).content\n\n# after\nawait asyncio.sleep(delay)\ndata = await asyncio.to_thread(lambda: requests.get(url).content)".into());
    } else {
        v.advice.push("Move the CPU-bound work to a process pool: `await loop.run_in_executor(pool, f, ...)` with a `ProcessPoolExecutor`, so the loop keeps serving other tasks".into());
        v.snippet = Some("from concurrent.futures import ProcessPoolExecutor\n\npool = ProcessPoolExecutor()\n\nasync def handle(item):\n    loop = asyncio.get_running_loop()\n    return await loop.run_in_executor(pool, compute, item)".into());
    }
    titled(
        &mut v.advice,
        "Where the loop's time went:",
        f.culprits
            .iter()
            .map(|c| format!("- {}", culprit(c)))
            .collect(),
    );
}

fn culprit(c: &LoopCulprit) -> String {
    let site = place(&c.function, &c.file, c.line);
    let site = if c.function == c.coroutine {
        site
    } else {
        format!("{site} in coroutine {}", c.coroutine)
    };
    format!(
        "{site}: {} of the loop's time, {}",
        pct(c.share),
        if c.blocked >= 0.5 {
            "blocked"
        } else {
            "on a CPU"
        }
    )
}

fn ipc_overhead(v: &mut Verdict, f: &IpcOverhead) {
    v.headline = format!(
        "IPC overhead: {} of the CPU time goes to pickling and sending data between processes, not to the work",
        pct(f.ipc_share)
    );
    v.evidence = vec![
        format!(
            "{} of the on-CPU samples of the parent and the workers were in pickle or multiprocessing's send/receive code",
            pct(f.ipc_share)
        ),
        pool_line(&f.pool),
    ];
    v.advice.push("Send less: pass file paths, database keys or index ranges and let each worker load its own data, or put large arrays in `multiprocessing.shared_memory`".into());
    v.advice.push("Send fewer, bigger tasks: a `chunksize` on `map`/`imap_unordered` (or group items yourself), so each task does more work per pickled byte".into());
    v.advice.push("Return less: reduce the result inside the worker (a sum, a count, a file written) instead of sending the data back".into());
    titled(
        &mut v.advice,
        "Where the processes hold their GILs:",
        hot_lines(&f.hot, "GIL-holding time"),
    );
    v.snippet = Some("# before: each task pickles a large list\npool.map(total, [big_list] * n)\n\n# after: send what to load, not the data\ndef total_of(path):\n    return sum(load(path))\n\npool.imap_unordered(total_of, paths, chunksize=16)".into());
}

fn result_bottleneck(v: &mut Verdict, f: &ResultBottleneck) {
    let thread = &f.thread;
    v.headline = format!(
        "Result bottleneck: the parent's result thread ({thread}) is busy {} of the time receiving and unpickling, and the workers wait on it",
        pct(f.busy)
    );
    v.evidence = vec![
        format!(
            "{thread} ({}) was on a CPU or waiting for the parent's GIL {} of its time",
            f.tid,
            pct(f.busy)
        ),
        pool_line(&f.pool),
    ];
    v.advice.push("Return less from each task: reduce inside the worker, or write large results to files and return their paths".into());
    v.advice.push("Keep the parent's other threads from holding its GIL while results arrive (move the parent's own CPU work out of it)".into());
}

fn pool_underused(v: &mut Verdict, f: &PoolUnderused) {
    let pool = &f.pool;
    v.headline = if f.few_workers {
        let workers = pool.concurrent_workers.round().max(1.0);
        format!(
            "Under-used pool: {workers:.0} worker{} for {} cores, so {:.1} cores stay idle",
            if workers == 1.0 { "" } else { "s" },
            pool.cores,
            (pool.cores as f64 - pool.cores_used).max(0.0)
        )
    } else {
        format!(
            "Under-used pool: the workers are busy only {} of the time; they wait for tasks",
            pct(f.utilisation)
        )
    };
    v.evidence = vec![pool_line(pool)];
    if f.few_workers {
        v.advice.push(format!(
            "Create the pool with one worker per core: `Pool({})` or `ProcessPoolExecutor(max_workers={})` (the default is `os.cpu_count()`)",
            pool.cores, pool.cores
        ));
    }
    v.advice.push("If the parent produces tasks one at a time (a loop of `apply_async`/`submit` that waits on each result), submit them all first and collect later, or use `imap_unordered`".into());
    v.advice.push("Give each task more work (a `chunksize`, or grouped items) so workers do not wait between tasks".into());
    if let Some(busy) = f.parent_busy {
        v.evidence.push(format!(
            "the parent's main thread was busy {} of the time: it may not produce tasks fast enough",
            pct(busy)
        ));
    }
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn pool_parallel(v: &mut Verdict, f: &PoolParallel) {
    let pool = &f.pool;
    v.headline = format!(
        "The process pool works: {:.1} workers busy in parallel on {} cores ({:.1}× one core)",
        pool.busy_workers, pool.cores, pool.cores_used
    );
    v.evidence = vec![
        pool_line(pool),
        format!(
            "only {} of the on-CPU time went to pickling and sending data",
            pct(f.ipc_share)
        ),
    ];
    if !f.tasks.is_empty() {
        let tasks: Vec<String> = f
            .tasks
            .iter()
            .map(|(function, file)| format!("{function} ({})", file_name(file)))
            .collect();
        v.evidence
            .push(format!("the workers run {}", tasks.join(", ")));
    }
    v.advice.push("Nothing to fix: the work runs in parallel on every core. More workers than cores would not help".into());
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn free_threaded(v: &mut Verdict, f: &FreeThreaded) {
    let load = &f.load;
    v.headline =
        "Free-threaded CPython: the GIL is disabled and threads run Python in parallel".into();
    v.evidence = vec![core_line(load)];
    match f.case {
        FreeThreadedCase::GilHeld => {
            v.headline = "Free-threaded CPython, but the GIL was turned back on".into();
            v.evidence.push(format!(
                "the GIL was held {} of the time: an extension module that does not declare free-threading support re-enabled it",
                pct(load.gil_held)
            ));
            v.advice.push("Find the extension that re-enabled the GIL (Python warns at import with `-W default`), upgrade it, or run with PYTHON_GIL=0 if it is safe".into());
        }
        FreeThreadedCase::Starved { busy } => {
            v.headline = format!(
                "Free-threaded CPython: the GIL is disabled, yet {} busy use only {:.1} cores",
                words::threads(busy),
                load.cores_used
            );
            v.evidence.push(format!(
                "{} are on a CPU most of the time, but the process used {:.1} cores: they wait for CPUs other programs hold, or spin",
                words::threads(busy),
                load.cores_used
            ));
            v.advice.push("Check what else runs on the machine (`top`); more threads than cores cannot run at once".into());
        }
        FreeThreadedCase::Locks { lock } => {
            v.headline = "Free-threaded CPython: the GIL is disabled, but the threads wait on the program's own locks".into();
            v.evidence.push(format!(
                "the threads spend {} of their time waiting on locks, queues or events",
                pct(lock)
            ));
            v.advice
                .push("Hold locks for less time, or give each thread its own data".into());
        }
        FreeThreadedCase::Parallel => {
            v.advice
                .push("Threads already run Python in parallel; more cores give more speed".into());
        }
    }
    v.evidence.push("with the GIL disabled, a thread on a CPU shows as `native` whether it runs Python or native code; each thread's `attached` share in the JSON says how much of its time it ran attached to the interpreter".into());
}

fn object_lock_contention(v: &mut Verdict, f: &ObjectLockContention) {
    v.headline = format!(
        "Object-lock contention: {} take turns on the lock of an object they share (a free-threaded build has no GIL, but each dict, list or set has a lock)",
        groups_phrase(&f.groups)
    );
    v.evidence = vec![
        format!(
            "the threads spent {} of their time waiting for (or spinning on) an object's lock while another thread updated it",
            pct(f.object_lock)
        ),
        core_line(&f.load),
    ];
    if !f.objects.is_empty() {
        let names: Vec<String> = f.objects.iter().map(|t| format!("`{t}`")).collect();
        v.evidence.push(format!(
            "while they waited, other threads held the lock of {}",
            match names.len() {
                1 => format!("a {}", names[0]),
                _ => format!("objects of type {}", names.join(" or ")),
            }
        ));
    }
    v.advice.push("Give each thread its own object and merge the results at the end (a dict per thread, then `Counter.update`), batch the updates, or send them through a `queue.Queue` to the one thread that owns the object".into());
    titled(
        &mut v.advice,
        "Where the threads wait (the lines that update the shared object):",
        hot_lines(&f.sites, "object-lock waiting time"),
    );
    waiting_threads_run(&mut v.advice, &f.entries);
    v.snippet = Some(
        "# each thread counts into its own dict; merge once at the end
def work(chunk):
    counts = {}
    for key in chunk:
        counts[key] = counts.get(key, 0) + 1
    return counts

total = collections.Counter()
for counts in executor.map(work, chunks):
    total.update(counts)"
            .into(),
    );
    v.predicted_speedup = Some(prediction(&f.forecast));
}

fn gil_turned_on(v: &mut Verdict, f: &GilTurnedOn) {
    let (at_s, cores) = (f.at_s, f.cores);
    let names: Vec<String> = f.modules.iter().map(|m| format!("`{}`", m.name)).collect();
    let culprit = match names.len() {
        0 => "an extension module gilscope could not name".to_string(),
        _ => names.join(", "),
    };
    let when = if at_s > 0.0 {
        format!("importing {culprit} turned the GIL back on at {at_s:.1} s")
    } else {
        format!("the GIL is on: {culprit} turned it back on before sampling began")
    };
    v.headline = format!("Free-threaded CPython, but {when}");
    if f.contended {
        v.headline.push_str(": the threads now take turns on it");
    }
    for module in &f.modules {
        let file = if module.file.is_empty() {
            String::new()
        } else {
            format!(" ({})", module.file)
        };
        v.evidence.push(format!(
            "`{}`{file} does not declare free-threading support (no `Py_mod_gil` slot), so importing it enabled the GIL for the whole process",
            module.name
        ));
    }
    if let Some(b) = &f.before {
        v.evidence.push(format!(
            "before: {:.1} s with the GIL disabled, {:.1} of {cores} cores used",
            b.seconds, b.cores
        ));
    }
    v.evidence.push(format!(
        "after: the GIL held {} of the time; the busy threads waited {} of their time for it; {:.1} of {cores} cores used",
        pct(f.after.gil_held),
        pct(f.after.gil_wait),
        f.after.cores
    ));
    let first = f
        .modules
        .first()
        .map_or("the extension".to_string(), |m| format!("`{}`", m.name));
    v.advice.push(format!(
        "Install a build of {first} made for free-threaded CPython (one that declares `Py_mod_gil`), or replace it"
    ));
    v.advice.push("Or keep the GIL off with PYTHON_GIL=0 (or `python -X gil=0`): at your own risk, since the extension was not written for threads running at once".into());
    if f.contended {
        v.advice.push(
            "Until then, processes (multiprocessing.Pool) run the CPU-bound threads in parallel"
                .into(),
        );
    }
}

fn phase(p: &PhaseSpan) -> Phase {
    Phase {
        start_s: p.start_s,
        end_s: p.end_s,
        kind: p.kind,
        headline: match p.label {
            PhaseLabel::Character => character(p.kind).into(),
            PhaseLabel::GilDisabled => "the GIL disabled: threads run in parallel".into(),
            PhaseLabel::GilOn => format!("the GIL on: {}", character(p.kind)),
        },
    }
}

/// A phase's character in a few words.
fn character(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::GilContention => "Python threads contend for the GIL",
        VerdictKind::SingleThreadCpu => "one thread runs Python",
        VerdictKind::NativeParallel => "native code runs without the GIL",
        VerdictKind::IoBound => "threads wait on I/O or sleep",
        VerdictKind::LockContention => "threads wait on the program's locks",
        VerdictKind::Idle => "mostly idle",
        VerdictKind::CpuSaturated => "every core busy",
        VerdictKind::IpcOverhead => "processes busy moving data",
        VerdictKind::FreeThreaded => "threads run Python in parallel",
        VerdictKind::Mixed => "I/O threads wait for the GIL",
        VerdictKind::PoolParallel => "a process pool busy on every core",
        VerdictKind::PoolUnderused => "a process pool with idle workers",
        VerdictKind::EventLoopBlocked => "an event loop blocked",
        VerdictKind::GcPauses => "the garbage collector running",
        VerdictKind::ObjectLockContention => "threads take turns on a shared object's lock",
        VerdictKind::Inconclusive => "no clear character",
    }
}

fn prediction(f: &Forecast) -> Prediction {
    Prediction {
        processes: f.processes,
        threads: f.threads,
        free_threaded: f.free_threaded,
        fix: f.fix,
        assumptions: f.assumptions.iter().map(|a| assumption(*a)).collect(),
    }
}

fn assumption(a: Assumption) -> String {
    match a {
        Assumption::GcRemoved { share } => format!(
            "an upper bound: the collector's {} of the run gone ({:.1}x); `gc.freeze()` removes the long-lived heap from each collection, fewer cycles make them rarer",
            pct(share),
            1.0 / (1.0 - share).max(0.05)
        ),
        Assumption::ParallelShare { parallel, workers } => format!(
            "{} of the run had several busy threads and is spread over {workers} cores; the other {} stays serial",
            pct(parallel),
            pct(1.0 - parallel)
        ),
        Assumption::EvenSplit => "the work divides evenly among the workers and shares no state".into(),
        Assumption::WorkerStartup => format!("worker start-up {WORKER_STARTUP_S} s each (estimate)"),
        Assumption::PicklingUnmeasured => {
            "pickling of arguments and results not measured: assumed small (estimate)".into()
        }
        Assumption::FreeThreadedSpeed => format!(
            "a free-threaded build runs Python at about {} of the default build's speed (estimate)",
            pct(FREE_THREADED_EFFICIENCY)
        ),
        Assumption::SplitFirst { cores } => format!(
            "an upper bound: the work must first be split into at least {cores} independent parts"
        ),
        Assumption::NativeAlreadyParallel => {
            "the native work already runs without the GIL on every core it can use".into()
        }
        Assumption::WaitsOutside => "the waits are outside the process: neither processes nor a free-threaded build shorten them".into(),
        Assumption::LockStays => "the lock stays as it is: only changing the locking helps".into(),
        Assumption::EveryCoreBusy => "every core is already busy".into(),
        Assumption::EveryCoreBusyWithWork => "every core is already busy with the work".into(),
        Assumption::ObjectLockRemoved { running, cores } => format!(
            "a floor: with its own object each thread works all the time, not {} of it, on {cores:.0} cores; a contended object also makes each update slower, which the fix removes too",
            pct(running)
        ),
        Assumption::AllCoresBusy {
            cores,
            busy_workers,
        } => format!(
            "an upper bound: all {cores} cores kept busy, against {busy_workers:.1} busy workers today"
        ),
    }
}

/// "1.0 of 2 cores used".
fn core_line(load: &Load) -> String {
    format!("{:.1} of {} cores used", load.cores_used, load.cores)
}

/// "the GIL was held 95% of the time; 1.0 of 2 cores used", which most rules give.
fn gil_and_cores(load: &Load) -> String {
    format!(
        "the GIL was held {} of the time; {}",
        pct(load.gil_held),
        core_line(load)
    )
}

fn pool_line(pool: &PoolLoad) -> String {
    let mut line = format!(
        "{:.1} workers alive on average, {:.1} of them busy on a CPU; {:.1} of {} cores used by the whole process tree",
        pool.concurrent_workers, pool.busy_workers, pool.cores_used, pool.cores
    );
    let (start, end) = pool.lifetime;
    let outside = (pool.run_s - (end - start)).max(0.0);
    if pool.run_s > 0.0 && outside / pool.run_s >= POOL_OUTSIDE_NOTE_MIN {
        let serial = outside / pool.run_s;
        line.push_str(&format!(
            "; judged over the pool's life, {start:.1}-{end:.1} s: the other {outside:.1} s of the run ({}) ran outside it, which caps the whole run's speedup at {:.1}x",
            pct(serial),
            1.0 / serial
        ));
    }
    line
}

/// The share of a run outside its pool's lifetime worth naming.
const POOL_OUTSIDE_NOTE_MIN: f64 = 0.1;

/// "the asyncio loop in MainThread", or "in its thread" for a nameless one.
fn thread_or_its(thread: &str) -> &str {
    if thread.is_empty() {
        "its thread"
    } else {
        thread
    }
}

/// `function (file:line)`, the file's directory dropped.
fn location(frame: &Frame) -> String {
    place(&frame.function, &frame.file, frame.line)
}

/// `title`, then the `lines` under it; nothing when there are none.
fn titled(advice: &mut Vec<String>, title: &str, lines: Vec<String>) {
    if !lines.is_empty() {
        advice.push(title.into());
        advice.extend(lines);
    }
}

fn hot_lines(hot: &[HotFunction], what: &str) -> Vec<String> {
    hot.iter()
        .map(|h| {
            format!(
                "- {}:{} `{}` ({} of {what})",
                file_name(&h.file),
                h.line,
                h.function,
                pct(h.fraction)
            )
        })
        .collect()
}

/// `Waiting threads run: work (app.py:8), ...`, where the entry points are known.
fn waiting_threads_run(advice: &mut Vec<String>, entries: &[Frame]) {
    let entries = entry_places(entries);
    if !entries.is_empty() {
        advice.push(format!("Waiting threads run: {}", entries.join(", ")));
    }
}

/// The entry points' places, sorted, each once.
fn entry_places(entries: &[Frame]) -> Vec<String> {
    let mut names: Vec<String> = entries.iter().map(location).collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::findings::Span;
    use crate::diagnosis::Confidence;
    use crate::model::ExtensionModule;

    fn load() -> Load {
        Load {
            gil_held: 0.97,
            cores_used: 1.04,
            cores: 2,
        }
    }

    fn alone(finding: Finding) -> Diagnosis {
        Diagnosis {
            finding,
            during: None,
            within: None,
            phases: Vec::new(),
        }
    }

    #[test]
    fn a_child_judged_in_a_phase_names_both_in_order() {
        let mut d = alone(Finding::Idle(Idle { load: load() }));
        d.during = Some((1.2, 3.6));
        d.within = Some((42, "python app.py".into()));
        let v = verdict(&d);
        assert_eq!(
            v.headline,
            "In PID 42 (python app.py): From 1 s to 4 s: Idle: the program was mostly waiting, with no thread busy"
        );
        assert_eq!(v.evidence, ["1.0 of 2 cores used"]);
    }

    #[test]
    fn more_native_threads_than_busy_cores_is_saturation() {
        let native = |oversubscribed| {
            verdict(&alone(Finding::NativeParallel(NativeParallel {
                threads: 4.0,
                native: 0.9,
                wait: 0.01,
                oversubscribed,
                load: load(),
                hot: Vec::new(),
                forecast: Forecast::unchanged(Assumption::NativeAlreadyParallel),
            })))
        };
        let (fits, over) = (native(false), native(true));
        assert_eq!(fits.kind, VerdictKind::NativeParallel);
        assert_eq!(over.kind, VerdictKind::CpuSaturated);
        assert_eq!(over.advice.len(), fits.advice.len() + 1);
        assert!(over.advice[1].contains("2 workers (one per core)"));
    }

    #[test]
    fn no_rule_fits_lists_the_spread_and_is_not_trusted() {
        let v = verdict(&alone(Finding::NoRuleFits(NoRuleFits {
            groups: vec![
                GroupWords {
                    label: "fetch-*".into(),
                    threads: 3,
                    at_once: 3.0,
                    started_per_s: None,
                },
                GroupWords {
                    label: "Thread-* (process_request_thread)".into(),
                    threads: 400,
                    at_once: 1.2,
                    started_per_s: Some(100.0),
                },
            ],
            shares: vec![
                (crate::model::ThreadState::Io, 0.31),
                (crate::model::ThreadState::Lock, 0.25),
            ],
            load: load(),
        })));
        assert_eq!(v.kind, VerdictKind::Inconclusive);
        assert_eq!(v.confidence, Confidence::Low);
        assert!(v.predicted_speedup.is_none());
        assert_eq!(
            v.evidence[0],
            "3 threads (fetch-*) and 400 threads of Thread-* (process_request_thread) (100 started a second, 1.2 at a time) spend on average: io 31%, lock 25%"
        );
    }

    #[test]
    fn a_gil_turned_on_mid_run_splits_the_phases_in_words() {
        let d = Diagnosis {
            phases: vec![
                PhaseSpan {
                    start_s: 0.0,
                    end_s: 1.5,
                    kind: VerdictKind::FreeThreaded,
                    label: PhaseLabel::GilDisabled,
                },
                PhaseSpan {
                    start_s: 1.5,
                    end_s: 3.0,
                    kind: VerdictKind::GilContention,
                    label: PhaseLabel::GilOn,
                },
            ],
            ..alone(Finding::GilTurnedOn(GilTurnedOn {
                modules: vec![ExtensionModule {
                    name: "gil_ext".into(),
                    file: String::new(),
                }],
                at_s: 1.5,
                contended: true,
                before: None,
                after: Span {
                    seconds: 1.5,
                    cores: 1.0,
                    gil_held: 0.99,
                    gil_wait: 0.6,
                },
                cores: 2,
            }))
        };
        let v = verdict(&d);
        assert_eq!(v.kind, VerdictKind::GilContention);
        assert_eq!(v.headline, "Free-threaded CPython, but importing `gil_ext` turned the GIL back on at 1.5 s: the threads now take turns on it");
        let phases: Vec<&str> = v.phases.iter().map(|p| p.headline.as_str()).collect();
        assert_eq!(
            phases,
            [
                "the GIL disabled: threads run in parallel",
                "the GIL on: Python threads contend for the GIL"
            ]
        );
        // No "before" span: the GIL was on from the first window.
        assert_eq!(v.evidence.len(), 2);
    }

    #[test]
    fn every_assumption_is_a_sentence_of_its_own() {
        let all = [
            Assumption::ParallelShare {
                parallel: 0.9,
                workers: 2.0,
            },
            Assumption::EvenSplit,
            Assumption::WorkerStartup,
            Assumption::PicklingUnmeasured,
            Assumption::FreeThreadedSpeed,
            Assumption::SplitFirst { cores: 2 },
            Assumption::NativeAlreadyParallel,
            Assumption::WaitsOutside,
            Assumption::LockStays,
            Assumption::EveryCoreBusy,
            Assumption::EveryCoreBusyWithWork,
            Assumption::AllCoresBusy {
                cores: 2,
                busy_workers: 0.96,
            },
        ];
        let words: std::collections::HashSet<String> = all.iter().map(|a| assumption(*a)).collect();
        assert_eq!(words.len(), all.len());
        assert!(words.contains(
            "90% of the run had several busy threads and is spread over 2 cores; the other 10% stays serial"
        ));
        assert!(
            words.contains("an upper bound: all 2 cores kept busy, against 1.0 busy workers today")
        );
    }
}
