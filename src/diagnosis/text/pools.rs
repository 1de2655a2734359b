//! The words for the rules about process pools: pickling, results, workers.

use crate::words::{file_name, pct, thread_name};

use super::super::findings::{IpcOverhead, PoolParallel, PoolUnderused, ResultBottleneck};
use super::super::Verdict;
use super::{hot_lines, pool_line, prediction, titled};

pub(super) fn ipc_overhead(v: &mut Verdict, f: &IpcOverhead) {
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

pub(super) fn result_bottleneck(v: &mut Verdict, f: &ResultBottleneck) {
    let thread = thread_name(f.thread.as_deref(), f.tid);
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

pub(super) fn pool_underused(v: &mut Verdict, f: &PoolUnderused) {
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

pub(super) fn pool_parallel(v: &mut Verdict, f: &PoolParallel) {
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
