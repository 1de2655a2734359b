//! Phrases every stage that speaks shares (the diagnosis, the renderers, the bench, the live
//! view): a percentage, a file's name, a place in the code, a thread's name.

use crate::model::Tid;

pub fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// A path's last component: `work.py`.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The command with its program's directory dropped, on one line: `python3.12 app.py`
/// (a `python -c` script's line breaks become spaces).
pub fn short_command(command: &str) -> String {
    let (program, rest) = command.split_once(' ').unwrap_or((command, ""));
    let program = program.rsplit('/').next().unwrap_or(program);
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{program} {rest}").trim_end().to_string()
}

/// `function (file:line)` with the file's directory dropped; the function alone without a file.
pub fn place(function: &str, file: &str, line: i32) -> String {
    let file = file_name(file);
    if file.is_empty() {
        function.to_string()
    } else {
        format!("{function} ({file}:{line})")
    }
}

/// A thread's display name: `name (tid)`, else `thread tid`.
pub fn thread_label(name: Option<&str>, tid: Tid) -> String {
    match name {
        Some(name) => format!("{name} ({tid})"),
        None => format!("thread {tid}"),
    }
}

/// A thread's name alone where it has one: `worker-1`, else `thread 13551`.
pub fn thread_name(name: Option<&str>, tid: Tid) -> String {
    match name {
        Some(name) => name.to_string(),
        None => format!("thread {tid}"),
    }
}

/// What runs the target: `CPython 3.12.1`, or `not Python`.
pub fn interpreter(python: Option<&str>) -> String {
    match python {
        Some(version) => format!("CPython {version}"),
        None => "not Python".into(),
    }
}

/// A count with its noun, singular or plural: `1 thread`, `4 threads`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Cores used out of those available: `1.0 of 2 cores`, `0.9 of 1 core` (`digits` decimals).
pub fn of_cores(used: f64, cores: u32, digits: usize) -> String {
    let noun = if cores == 1 { "core" } else { "cores" };
    format!("{used:.digits$} of {cores} {noun}")
}

/// Whether [`threads`] says "1 thread": a verb after it is then singular.
pub fn is_one_thread(n: f64) -> bool {
    (n - n.round()).abs() < 0.25 && n.round() <= 1.0
}

/// A count of threads that may be an average (threads alive at once), rounded to a whole one
/// where it is close: `4 threads`, `1 thread`, `2.4 threads`.
pub fn threads(n: f64) -> String {
    if (n - n.round()).abs() < 0.25 {
        count(n.round().max(1.0) as usize, "thread")
    } else {
        format!("{n:.1} threads")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_on_one_line() {
        assert_eq!(
            short_command("/usr/bin/python3.12 app.py --port 80"),
            "python3.12 app.py --port 80"
        );
        assert_eq!(
            short_command("/v/bin/python -c \nimport time\n  time.sleep(60)\n"),
            "python -c import time time.sleep(60)"
        );
    }

    #[test]
    fn what_is_missing_is_said_not_left_blank() {
        assert_eq!(interpreter(Some("3.12.1")), "CPython 3.12.1");
        assert_eq!(interpreter(None), "not Python");
        assert_eq!(thread_label(None, Tid(4242)), "thread 4242");
        assert_eq!(thread_label(Some("worker-1"), Tid(4242)), "worker-1 (4242)");
        assert_eq!(thread_name(None, Tid(4242)), "thread 4242");
    }

    #[test]
    fn counts_and_cores_agree_in_number() {
        assert_eq!(threads(1.1), "1 thread");
        assert!(is_one_thread(1.1) && is_one_thread(0.9));
        assert!(!is_one_thread(2.0) && !is_one_thread(1.4));
        assert_eq!(of_cores(1.0, 1, 1), "1.0 of 1 core");
        assert_eq!(of_cores(1.25, 2, 2), "1.25 of 2 cores");
    }
}
