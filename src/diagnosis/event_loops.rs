//! The rule for an asyncio event loop that stalls.

use crate::analysis::queries::loop_culprits;
use crate::analysis::{Analysis, EventLoop, ThreadSummary};
use crate::words::{pct, place};

use super::facts::Facts;
use super::text::base;
use super::{Verdict, VerdictKind};

/// An event loop is blocked when it ran (outside its selector) at least this share of its
/// time, with a stall of at least [`LOOP_STALL_MIN_S`].
pub const LOOP_BUSY_MIN: f64 = 0.25;
pub const LOOP_STALL_MIN_S: f64 = 0.05;

/// The event loop that stalls the most, if one is blocked (see [`LOOP_BUSY_MIN`]).
pub(super) fn blocked_loop(analysis: &Analysis) -> Option<(&ThreadSummary, &EventLoop)> {
    analysis
        .threads
        .iter()
        .filter_map(|t| Some((t, t.event_loop.as_ref()?)))
        .filter(|(_, lp)| {
            lp.busy_share() >= LOOP_BUSY_MIN
                && lp
                    .stalls
                    .first()
                    .is_some_and(|s| s.duration_ns as f64 / 1e9 >= LOOP_STALL_MIN_S)
        })
        .max_by(|a, b| a.1.busy_share().total_cmp(&b.1.busy_share()))
}

pub(super) fn event_loop_blocked(f: &Facts, thread: &ThreadSummary, lp: &EventLoop) -> Verdict {
    let a = f.analysis;
    let blocking = lp.blocked_ns * 2 >= lp.running_ns;
    let longest = lp
        .stalls
        .first()
        .map_or(0.0, |s| s.duration_ns as f64 / 1e9);
    let culprits: Vec<String> = loop_culprits(a, lp)
        .iter()
        .filter(|c| c.share >= 0.01)
        .map(|c| {
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
        })
        .collect();
    let mut v = base(
        VerdictKind::EventLoopBlocked,
        format!(
            "Blocked event loop: the asyncio loop in {} {} {} of the time, stalling every task (longest stretch without waiting for events: {:.0} ms)",
            if thread.name.is_empty() { "its thread" } else { &thread.name },
            if blocking { "sat in blocking calls" } else { "ran CPU-bound code" },
            pct(lp.busy_share()),
            longest * 1000.0
        ),
        vec![format!(
            "the loop waited for events {} of its time; {} was spent in callbacks and coroutine steps, {} of it blocked rather than on a CPU",
            pct(1.0 - lp.busy_share()),
            pct(lp.busy_share()),
            pct(if lp.running_ns == 0 { 0.0 } else { lp.blocked_ns as f64 / lp.running_ns as f64 })
        )],
    );
    if blocking {
        v.advice.push("Move the blocking calls off the loop: `await asyncio.to_thread(f, ...)` (3.9+) or `await loop.run_in_executor(None, f, ...)`; use `await asyncio.sleep()` instead of `time.sleep()`, and async libraries (aiohttp, httpx, aiofiles) instead of requests or plain file reads".into());
        v.snippet = Some("# before: blocks every task on the loop\ntime.sleep(delay)\ndata = requests.get(url).content\n\n# after\nawait asyncio.sleep(delay)\ndata = await asyncio.to_thread(lambda: requests.get(url).content)".into());
    } else {
        v.advice.push("Move the CPU-bound work to a process pool: `await loop.run_in_executor(pool, f, ...)` with a `ProcessPoolExecutor`, so the loop keeps serving other tasks".into());
        v.snippet = Some("from concurrent.futures import ProcessPoolExecutor\n\npool = ProcessPoolExecutor()\n\nasync def handle(item):\n    loop = asyncio.get_running_loop()\n    return await loop.run_in_executor(pool, compute, item)".into());
    }
    if !culprits.is_empty() {
        v.advice.push("Where the loop's time went:".into());
        v.advice
            .extend(culprits.into_iter().map(|c| format!("- {c}")));
    }
    v
}
