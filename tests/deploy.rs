//! The Kubernetes manifest runs the agent with options it takes: its container's arguments,
//! read from `deploy/kubernetes/gilscope-agent.yaml`, start `gilscope agent` (on a free
//! loopback port, for a moment) and it exits cleanly. (The Grafana dashboard's queries are
//! run against a real Prometheus in tests/agent.rs.)

mod common;

use std::path::Path;

/// The `args:` list of the manifest's container, one item a line.
fn container_args(manifest: &str) -> Vec<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for line in lines.by_ref() {
        let Some(item) = line.trim().strip_prefix("- ") else {
            break;
        };
        let item = item.split("  #").next().unwrap_or(item).trim();
        args.push(item.trim_matches('"').to_string());
    }
    args
}

#[test]
fn the_daemonset_runs_the_agent_with_options_it_takes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/gilscope-agent.yaml");
    let manifest = std::fs::read_to_string(path).unwrap();
    assert!(
        manifest.contains("hostPID: true"),
        "the agent must see the node's processes"
    );
    assert!(
        manifest.contains("SYS_PTRACE"),
        "reading a process's memory takes ptrace rights"
    );
    let mut args = container_args(&manifest);
    assert_eq!(args.first().map(String::as_str), Some("agent"), "{args:?}");
    let listen = args.iter().position(|a| a == "--listen").expect("--listen") + 1;
    assert!(args[listen].ends_with(":9531"), "{args:?}");
    args[listen] = "127.0.0.1:0".into();
    let output = common::gilscope()
        .args(&args)
        .args(["--duration", "0.5", "--match", "^no-such-process$"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    assert!(stderr.contains("stopped after"), "{stderr}");
}
