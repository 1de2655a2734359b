//! The words for the interpreter's own doing: the collector, a free-threaded build and its GIL.

use crate::words::{self, pct};

use super::super::findings::{
    FreeThreaded, FreeThreadedCase, GcPauses, GilTurnedOn, ObjectLockContention,
};
use super::super::Verdict;
use super::{
    core_line, gil_and_cores, groups_phrase, hot_lines, prediction, titled, waiting_threads_run,
};

pub(super) fn gc_pauses(v: &mut Verdict, f: &GcPauses) {
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

pub(super) fn free_threaded(v: &mut Verdict, f: &FreeThreaded) {
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

pub(super) fn object_lock_contention(v: &mut Verdict, f: &ObjectLockContention) {
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

pub(super) fn gil_turned_on(v: &mut Verdict, f: &GilTurnedOn) {
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
