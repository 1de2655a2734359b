//! How many CPUs a process may use: its CPU affinity (`taskset`, a container's cpuset), capped
//! by its cgroup's CPU quota (`docker --cpus`, a Kubernetes CPU limit). The verdicts weigh the
//! cores a program used against these, not against the machine's.

/// The CPUs `pid` may use, at least 1; the machine's (as gilscope sees them) where unreadable.
pub fn available_to(pid: u32) -> u32 {
    let affinity = affinity(pid)
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32)
        })
        .unwrap_or(1);
    let quota = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| cgroup_quota(&text));
    match quota {
        Some(cpus) => affinity.min(cpus.ceil() as u32).max(1),
        None => affinity.max(1),
    }
}

fn affinity(pid: u32) -> Option<u32> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size given.
    let read = unsafe {
        libc::sched_getaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set,
        )
    };
    if read != 0 {
        return None;
    }
    // SAFETY: `set` was filled by the kernel.
    let count = unsafe { libc::CPU_COUNT(&set) };
    u32::try_from(count).ok().filter(|&n| n > 0)
}

/// The tightest CPU quota, in CPUs, over the process's cgroup and its ancestors, from its
/// `/proc/PID/cgroup` text: cgroup v2's `cpu.max`, or v1's `cpu.cfs_quota_us` over
/// `cpu.cfs_period_us`. `None` without a quota.
fn cgroup_quota(proc_cgroup: &str) -> Option<f64> {
    let mut tightest: Option<f64> = None;
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let read = |dir: &str, file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
        let quota_in = |dir: &str| -> Option<f64> {
            if controllers.is_empty() {
                parse_cpu_max(&read(dir, "cpu.max")?)
            } else {
                let quota = read(dir, "cpu.cfs_quota_us")?;
                let period = read(dir, "cpu.cfs_period_us")?;
                v1_quota(&quota, &period)
            }
        };
        let roots: Vec<String> = if controllers.is_empty() {
            vec!["/sys/fs/cgroup".into()]
        } else if controllers == "cpu" {
            vec!["/sys/fs/cgroup/cpu".into()]
        } else if controllers.split(',').any(|c| c == "cpu") {
            // Mounted under the joined name (`cpu,cpuacct`), often linked as `cpu` too.
            vec![
                format!("/sys/fs/cgroup/{controllers}"),
                "/sys/fs/cgroup/cpu".into(),
            ]
        } else {
            continue;
        };
        for root in roots {
            let mut dir = path.trim_end_matches('/');
            loop {
                if let Some(cpus) = quota_in(&format!("{root}{dir}")) {
                    tightest = Some(tightest.map_or(cpus, |t| t.min(cpus)));
                }
                match dir.rfind('/') {
                    Some(slash) => dir = &dir[..slash],
                    None => break,
                }
            }
        }
    }
    tightest
}

/// cgroup v2's `cpu.max`: "QUOTA PERIOD" in microseconds, or "max PERIOD" for none.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_ascii_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// cgroup v1's quota and period files (quota -1: none).
fn v1_quota(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_in_both_cgroup_versions() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(v1_quota("-1\n", "100000\n"), None);
        assert_eq!(v1_quota("200000\n", "100000\n"), Some(2.0));
    }

    #[test]
    fn this_process_has_at_least_one_cpu_and_no_more_than_its_affinity() {
        let me = std::process::id();
        let cpus = available_to(me);
        assert!(cpus >= 1);
        assert!(cpus <= affinity(me).expect("own affinity is readable"));
    }
}
