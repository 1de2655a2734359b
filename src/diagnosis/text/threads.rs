//! The words for the rules about threads: the GIL, locks, I/O, native code, the CPU, an event loop.

use crate::analysis::queries::LoopCulprit;
use crate::words::{self, pct, place};

use super::super::findings::{
    CpuSaturated, EventLoopBlocked, GilContention, Idle, IoBound, LockContention, Mixed,
    NativeParallel, NoRuleFits, NotEnoughEvidence, SingleThreadCpu, ThreadPoolKind, UnmappedHolder,
};
use super::super::{Verdict, HANDOFF_RATE_MIN, MIN_DURATION_S, MIN_SAMPLES};
use super::{
    core_line, each_waited, entry_places, gil_and_cores, groups_phrase, hot_lines, location,
    prediction, thread_or_its, titled, verb, waiting_threads_run,
};

pub(super) fn not_enough_evidence(v: &mut Verdict, f: &NotEnoughEvidence) {
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

pub(super) fn unmapped_holder(v: &mut Verdict, f: &UnmappedHolder) {
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

pub(super) fn no_rule_fits(v: &mut Verdict, f: &NoRuleFits) {
    let shares: Vec<String> = f
        .shares
        .iter()
        .map(|(state, share)| format!("{} {}", state.name(), pct(*share)))
        .collect();
    v.headline = "No clear bottleneck: the threads' time is spread over several states".into();
    v.evidence = vec![
        format!(
            "{} {} on average: {}",
            groups_phrase(&f.groups),
            verb(&f.groups, "spends", "spend"),
            shares.join(", ")
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("Sample a longer stretch of the slow part, or look at the per-thread table and the hot functions below".into());
}

pub(super) fn gil_contention(v: &mut Verdict, f: &GilContention) {
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
                "drop joblib's backend=\"threading\" (or prefer=\"threads\"): its default backend, loky, runs the tasks in worker processes. Each call then pays to pickle and dispatch its tasks, so call Parallel once over all the work rather than once per small batch: a program calling it for a few milliseconds of work at a time runs slower in processes than in threads",
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
    v.snippet = Some(to_processes_snippet(f.pool).into());
    v.predicted_speedup = Some(prediction(&f.forecast));
}

/// The before and after of moving the work to processes, in the pool the program already uses.
fn to_processes_snippet(pool: ThreadPoolKind) -> &'static str {
    match pool {
        ThreadPoolKind::Executor => "# before\nwith ThreadPoolExecutor(max_workers=n) as pool:\n    results = list(pool.map(work, tasks))\n\n# after\nfrom concurrent.futures import ProcessPoolExecutor\n\nif __name__ == \"__main__\":\n    with ProcessPoolExecutor(max_workers=n) as pool:\n        # a few chunks per worker: one pickled round trip per task costs small tasks dear\n        chunks = max(1, len(tasks) // (4 * n))\n        results = list(pool.map(work, tasks, chunksize=chunks))",
        ThreadPoolKind::MultiprocessingThreadPool => "# before\nfrom multiprocessing.pool import ThreadPool\n\nwith ThreadPool(n) as pool:\n    results = pool.map(work, tasks)\n\n# after\nfrom multiprocessing import Pool\n\nif __name__ == \"__main__\":\n    with Pool(n) as pool:\n        results = pool.map(work, tasks)  # map already sends the tasks in chunks",
        ThreadPoolKind::Joblib => "# before\nfor batch in batches:\n    results = Parallel(n_jobs=n, backend=\"threading\")(delayed(work)(t) for t in batch)\n\n# after: joblib's default backend (loky) runs the tasks in worker processes;\n# one call over all the work, which it sends in automatically sized batches\nif __name__ == \"__main__\":\n    tasks = [t for batch in batches for t in batch]\n    results = Parallel(n_jobs=n)(delayed(work)(t) for t in tasks)",
        ThreadPoolKind::Threads => "# before\nthreads = [threading.Thread(target=work, args=(t,)) for t in tasks]\n\n# after\nimport multiprocessing\n\nif __name__ == \"__main__\":\n    with multiprocessing.Pool() as pool:\n        results = pool.map(work, tasks)",
    }
}

pub(super) fn mixed(v: &mut Verdict, f: &Mixed) {
    let (io, python) = (groups_phrase(&f.io_groups), groups_phrase(&f.python_groups));
    let (io_groups, python_groups) = (&f.io_groups[..], &f.python_groups[..]);
    v.headline = format!(
        "Mixed: {io} {} on I/O while {python} {} Python and {} the GIL",
        verb(io_groups, "waits", "wait"),
        verb(python_groups, "runs", "run"),
        verb(python_groups, "holds", "hold"),
    );
    v.evidence = vec![
        format!(
            "{io} {} I/O or {}, yet {} {} of {} time for the GIL; {python} ran Python, waiting {} for it",
            verb(io_groups, "does", "do"),
            verb(io_groups, "sleeps", "sleep"),
            verb(io_groups, "waits", "wait"),
            pct(f.io_wait),
            verb(io_groups, "its", "their"),
            pct(f.python_wait)
        ),
        gil_and_cores(&f.load),
    ];
    v.advice.push("Keep the I/O in threads (or asyncio), and send the CPU-bound Python work to a process pool: chain a ThreadPoolExecutor that fetches into a ProcessPoolExecutor that computes".into());
    v.advice.extend(hot_lines(&f.hot, "GIL-holding time"));
    v.snippet = Some("import asyncio\nfrom concurrent.futures import ProcessPoolExecutor\n\nasync def handle(item, pool):\n    data = await fetch(item)  # I/O stays in threads or the loop\n    loop = asyncio.get_running_loop()\n    # the CPU-bound part goes to a process\n    return await loop.run_in_executor(pool, compute, data)".into());
    v.predicted_speedup = f.forecast.as_ref().map(prediction);
}

pub(super) fn native_parallel(v: &mut Verdict, f: &NativeParallel) {
    let threads = words::threads(f.threads);
    v.headline = format!(
        "Threads already work: {threads} run native code with the GIL released, filling {}",
        words::of_cores(f.load.cores_used, f.load.cores, 1)
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
            "Every core is busy: more workers will not help; {} (one per core) is enough",
            words::count(f.load.cores as usize, "worker")
        ));
    }
    v.advice.extend(hot_lines(&f.hot, "native time"));
    v.predicted_speedup = Some(prediction(&f.forecast));
}

pub(super) fn single_thread_cpu(v: &mut Verdict, f: &SingleThreadCpu) {
    let thread = &f.thread;
    let others = if f.others >= 0.5 {
        "while the others wait"
    } else {
        "and no other thread takes part"
    };
    v.headline = format!("One thread does all the work: {thread} is busy {others}");
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

pub(super) fn lock_contention(v: &mut Verdict, f: &LockContention) {
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

pub(super) fn io_bound(v: &mut Verdict, f: &IoBound) {
    let (spend, their) = if words::is_one_thread(f.threads) {
        ("spends", "its")
    } else {
        ("spend", "their")
    };
    v.headline = format!(
        "I/O-bound: {} {spend} most of {their} time waiting on I/O, not on the GIL",
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
            thread_or_its(thread.as_deref()),
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

pub(super) fn cpu_saturated(v: &mut Verdict, f: &CpuSaturated) {
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

pub(super) fn idle(v: &mut Verdict, f: &Idle) {
    v.headline = "Idle: the program was mostly waiting, with no thread busy".into();
    v.evidence = vec![core_line(&f.load)];
    v.advice.push(
        "Nothing to speed up in this window: sample while the program does its slow part".into(),
    );
}

pub(super) fn event_loop_blocked(v: &mut Verdict, f: &EventLoopBlocked) {
    v.headline = format!(
        "Blocked event loop: the asyncio loop in {} {} {} of the time, stalling every task (longest stretch without waiting for events: {:.0} ms)",
        thread_or_its(f.thread.as_deref()),
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

pub(super) fn culprit(c: &LoopCulprit) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pool_gets_the_processes_of_its_own_library() {
        for (pool, before, after) in [
            (
                ThreadPoolKind::Executor,
                "ThreadPoolExecutor(",
                "ProcessPoolExecutor(",
            ),
            (
                ThreadPoolKind::MultiprocessingThreadPool,
                "ThreadPool(",
                "with Pool(",
            ),
            (
                ThreadPoolKind::Joblib,
                "backend=\"threading\"",
                "Parallel(n_jobs=n)(",
            ),
            (
                ThreadPoolKind::Threads,
                "threading.Thread(",
                "multiprocessing.Pool()",
            ),
        ] {
            let snippet = to_processes_snippet(pool);
            let (old, new) = snippet.split_once("# after").unwrap();
            assert!(old.contains(before), "{pool:?}: {snippet}");
            assert!(
                new.contains(after) && new.contains("__main__"),
                "{pool:?}: {snippet}"
            );
        }
    }
}
