//! What a shell user gets besides the report: completion scripts, the man page, `--color`.

mod common;

use std::path::Path;

fn stdout_of(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = common::gilscope()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _gilscope"),
        ("zsh", "#compdef gilscope"),
        ("fish", "complete -c gilscope"),
    ] {
        let script = stdout_of(&["completions", shell], &[]);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(300)]
        );
        for word in ["attach", "record", "diff", "subprocesses"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let output = common::gilscope()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("hint:"));
}

#[test]
fn the_man_page_is_roff_with_every_command() {
    let page = stdout_of(&["man"], &[]);
    assert!(page.contains(".TH gilscope 1"), "{}", &page[..200]);
    for command in [
        "run",
        "attach",
        "record",
        "bench",
        "diff",
        "report",
        "completions",
    ] {
        assert!(page.contains(command), "the man page names {command}");
    }
}

#[test]
fn color_follows_the_flag_then_no_color_then_the_stream() {
    let recording = common::recording("cpu_threads");
    let recording = recording.to_str().unwrap();
    let escapes = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["report", recording];
        all.extend(args);
        stdout_of(&all, env).matches('\x1b').count()
    };
    assert!(escapes(&["--color", "always"], &[]) > 0);
    assert!(
        escapes(&["--color", "always"], &[("NO_COLOR", "1")]) > 0,
        "the flag wins"
    );
    assert_eq!(escapes(&["--color", "never"], &[]), 0);
    assert_eq!(escapes(&[], &[]), 0, "auto: a pipe gets no colour");
    assert_eq!(escapes(&["--color", "auto"], &[("NO_COLOR", "1")]), 0);
}

/// The wheel ships the man page and completion scripts from `packaging/wheel/data/share`:
/// they must be what this binary prints (`GILSCOPE_BLESS=1` rewrites them).
#[test]
fn the_wheels_man_page_and_completions_are_current() {
    let share = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/wheel/data/share");
    for (args, file) in [
        (&["man"][..], "man/man1/gilscope.1"),
        (
            &["completions", "bash"][..],
            "bash-completion/completions/gilscope",
        ),
        (&["completions", "zsh"][..], "zsh/site-functions/_gilscope"),
        (
            &["completions", "fish"][..],
            "fish/vendor_completions.d/gilscope.fish",
        ),
    ] {
        common::golden(&share.join(file), stdout_of(args, &[]).as_bytes());
    }
}
