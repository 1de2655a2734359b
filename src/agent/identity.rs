//! Who a watched process is: its service name, its container and pod, and the labels asked
//! for from its environment. Read once, when the agent first attaches.

use serde::Serialize;

use crate::push::service_name;

/// A watched process's identity, as the metrics and `/processes` name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub pid: u32,
    /// The service: the `--service-env` variable's value where the process has it, else the
    /// script's name (`python app.py` → `app`).
    pub service: String,
    pub command: Vec<String>,
    /// The container's id (64 hex digits), from the process's cgroup path.
    pub container_id: Option<String>,
    /// The Kubernetes pod's UID, from the process's cgroup path.
    pub pod_uid: Option<String>,
    /// `--env-label` variables the process has, by name.
    pub env_labels: Vec<(String, String)>,
}

/// What to read from a process's environment.
#[derive(Debug, Clone, Default)]
pub struct EnvLabels {
    /// The variable that names the service, where set.
    pub service_var: Option<String>,
    /// Variables to copy as labels.
    pub labels: Vec<String>,
}

impl Identity {
    /// Reads process `pid`'s identity from `/proc`. What cannot be read stays empty.
    pub fn read(pid: u32, command: Vec<String>, env: &EnvLabels) -> Identity {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        Identity::from_parts(pid, command, &environ, &cgroup, env)
    }

    /// The identity from a process's command line, `environ` and `cgroup` files.
    pub fn from_parts(
        pid: u32,
        command: Vec<String>,
        environ: &[u8],
        cgroup: &str,
        env: &EnvLabels,
    ) -> Identity {
        let variables = parse_environ(environ);
        let lookup = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let service = env
            .service_var
            .as_deref()
            .and_then(lookup)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| service_name(&command));
        let env_labels = env
            .labels
            .iter()
            .filter_map(|name| Some((name.clone(), lookup(name)?)))
            .collect();
        let place = ContainerPlace::from_cgroup(cgroup);
        Identity {
            pid,
            service,
            command,
            container_id: place.container_id,
            pod_uid: place.pod_uid,
            env_labels,
        }
    }
}

impl Identity {
    /// Where the process runs and what its environment says, as labels: `container_id` and
    /// `pod_uid` where known, and each `--env-label` variable under [`label_name`]'s name.
    pub fn place_labels(&self) -> Vec<(String, String)> {
        let place = [
            ("container_id", &self.container_id),
            ("pod_uid", &self.pod_uid),
        ];
        place
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.clone()?)))
            .chain(
                self.env_labels
                    .iter()
                    .map(|(name, value)| (label_name(name), value.clone())),
            )
            .collect()
    }
}

/// Labels the agent sets itself, which an environment variable's label may not take.
const OWN_LABELS: [&str; 8] = [
    "pid",
    "service",
    "service_name",
    "command",
    "python",
    "container_id",
    "pod_uid",
    "state",
];

/// An environment variable's name as a label name: lower case, anything but letters, digits
/// and `_` turned into `_`, and never one of the agent's own labels (those get `env_`).
pub fn label_name(variable: &str) -> String {
    let name: String = variable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if OWN_LABELS.contains(&name.as_str()) || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("env_{name}")
    } else {
        name
    }
}

/// `NAME=value` pairs of a `/proc/PID/environ` file (NUL-separated).
fn parse_environ(environ: &[u8]) -> Vec<(String, String)> {
    environ
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The container and pod a cgroup path names, as containerd, CRI-O, Docker and podman name
/// them under the systemd and cgroupfs drivers, in cgroup v1 and v2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerPlace {
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
}

impl ContainerPlace {
    /// Reads every line of a `/proc/PID/cgroup` file (`ID:CONTROLLERS:PATH`); the innermost
    /// container id and pod UID found win.
    pub fn from_cgroup(cgroup: &str) -> ContainerPlace {
        let mut place = ContainerPlace::default();
        for line in cgroup.lines() {
            let Some(path) = line.splitn(3, ':').nth(2) else {
                continue;
            };
            for part in path.split('/') {
                if let Some(id) = container_id_of(part) {
                    place.container_id = Some(id);
                }
                if let Some(uid) = pod_uid_of(part) {
                    place.pod_uid = Some(uid);
                }
            }
        }
        place
    }
}

/// A container id from one cgroup path component: `docker-ID.scope`,
/// `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope`, or a bare `ID`
/// (cgroupfs driver), where ID is 64 hex digits.
fn container_id_of(part: &str) -> Option<String> {
    let part = part.strip_suffix(".scope").unwrap_or(part);
    let id = part.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// A pod UID from one cgroup path component: `pod<UID>` (cgroupfs) or
/// `kubepods-<qos>-pod<UID>.slice` (systemd, where the UID's dashes are underscores).
fn pod_uid_of(part: &str) -> Option<String> {
    let part = part.strip_suffix(".slice").unwrap_or(part);
    let at = part.rfind("pod")?;
    let before = &part[..at];
    if !(before.is_empty() || before.ends_with('-')) {
        return None;
    }
    let uid = part[at + 3..].replace('_', "-");
    let is_uid = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    is_uid.then(|| uid.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a";
    const UID: &str = "0d2f6a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6";

    fn place(cgroup: &str) -> ContainerPlace {
        ContainerPlace::from_cgroup(cgroup)
    }

    #[test]
    fn docker_and_podman_under_systemd_and_cgroupfs() {
        for cgroup in [
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n"),
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
        ] {
            assert_eq!(place(&cgroup).container_id.as_deref(), Some(ID), "{cgroup}");
            assert_eq!(place(&cgroup).pod_uid, None, "{cgroup}");
        }
    }

    #[test]
    fn kubernetes_pods_by_containerd_and_crio() {
        let systemd_uid = UID.replace('-', "_");
        for cgroup in [
            format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"),
            format!("0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope\n"),
            format!("4:pids:/kubepods/besteffort/pod{UID}/{ID}\n"),
        ] {
            let found = place(&cgroup);
            assert_eq!(found.container_id.as_deref(), Some(ID), "{cgroup}");
            assert_eq!(found.pod_uid.as_deref(), Some(UID), "{cgroup}");
        }
    }

    #[test]
    fn a_process_on_the_host_has_neither() {
        for cgroup in [
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/\n",
            "",
            "0::/system.slice/pod-manager.service\n",
        ] {
            assert_eq!(place(cgroup), ContainerPlace::default(), "{cgroup}");
        }
    }

    #[test]
    fn service_from_the_environment_else_the_script() {
        let env = EnvLabels {
            service_var: Some("OTEL_SERVICE_NAME".into()),
            labels: vec!["TEAM".into(), "ABSENT".into()],
        };
        let command = vec!["python3".to_string(), "/srv/api.py".to_string()];
        let environ = b"PATH=/bin\0OTEL_SERVICE_NAME=checkout\0TEAM=pay=ments\0";
        let named = Identity::from_parts(7, command.clone(), environ, "", &env);
        assert_eq!(named.service, "checkout");
        assert_eq!(named.env_labels, vec![("TEAM".into(), "pay=ments".into())]);
        let unnamed = Identity::from_parts(7, command, b"PATH=/bin\0", "", &env);
        assert_eq!(unnamed.service, "api");
        assert!(unnamed.env_labels.is_empty());
    }
}
