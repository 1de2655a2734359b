//! Where and how to push: `--pyroscope` and its options checked, the credentials from the
//! environment, the retry policy.

use std::time::Duration;

/// Series labels that gilscope sets itself (and per-sample labels), which `--tag` may not.
pub const RESERVED_LABELS: [&str; 8] = [
    "__name__",
    "service_name",
    "pid",
    "process.runtime.name",
    "process.runtime.version",
    "thread_name",
    "thread_id",
    "state",
];

/// How a failed window is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries per window before it is dropped.
    pub attempts: u32,
    /// The first wait before a retry; it doubles each time, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// Where and how to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// The server's base URL, without the call's path.
    pub url: String,
    pub interval: Duration,
    /// `service_name`; `None`: the script's name, once the target is known.
    pub app_name: Option<String>,
    /// Extra series labels (`--tag`).
    pub tags: Vec<(String, String)>,
    /// From the environment only.
    pub credentials: Credentials,
    pub retry: Retry,
}

impl PushConfig {
    /// Checks `--pyroscope` and its options; `None` without `--pyroscope`.
    pub fn from_args(
        args: &crate::cli::PushArgs,
        credentials: Credentials,
    ) -> Result<Option<PushConfig>, crate::error::Error> {
        use crate::error::Error::InvalidOption;
        let Some(url) = &args.pyroscope else {
            return Ok(None);
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(InvalidOption {
                option: "--pyroscope",
                value: format!("{url} (expected http://HOST:PORT or https://HOST)"),
            });
        };
        if !matches!(scheme, "http" | "https") || rest.is_empty() {
            return Err(InvalidOption {
                option: "--pyroscope",
                value: format!("{url} (expected http://HOST:PORT or https://HOST)"),
            });
        }
        if rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains('@'))
        {
            return Err(InvalidOption {
                option: "--pyroscope",
                value: format!(
                    "a URL with credentials in it (set {} and {} instead, so they stay out of the process list)",
                    Credentials::USER_VAR,
                    Credentials::PASSWORD_VAR
                ),
            });
        }
        let seconds = args.push_interval;
        if !(seconds.is_finite() && (0.1..=3600.0).contains(&seconds)) {
            return Err(InvalidOption {
                option: "--push-interval",
                value: format!("{seconds} (from 0.1 to 3600 seconds)"),
            });
        }
        let mut tags = Vec::new();
        for tag in &args.tag {
            let Some((key, value)) = tag.split_once('=') else {
                return Err(InvalidOption {
                    option: "--tag",
                    value: format!("{tag} (expected KEY=VALUE)"),
                });
            };
            let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !valid_key || RESERVED_LABELS.contains(&key) {
                return Err(InvalidOption {
                    option: "--tag",
                    value: format!(
                        "{tag} (a key is letters, digits, '_' or '.', not starting with a digit, and none of {})",
                        RESERVED_LABELS.join(", ")
                    ),
                });
            }
            tags.push((key.to_string(), value.to_string()));
        }
        Ok(Some(PushConfig {
            url: url.trim_end_matches('/').to_string(),
            interval: Duration::from_secs_f64(seconds),
            app_name: args.app_name.clone().filter(|n| !n.is_empty()),
            tags,
            credentials,
            retry: Retry::default(),
        }))
    }
}

/// The tenant and basic-auth credentials, read from the environment, never the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sent as `X-Scope-OrgID` (`PYROSCOPE_TENANT_ID`).
    pub tenant: Option<String>,
    /// `PYROSCOPE_BASIC_AUTH_USER` and `PYROSCOPE_BASIC_AUTH_PASSWORD`.
    pub basic_auth: Option<(String, String)>,
}

impl Credentials {
    pub const TENANT_VAR: &'static str = "PYROSCOPE_TENANT_ID";
    pub const USER_VAR: &'static str = "PYROSCOPE_BASIC_AUTH_USER";
    pub const PASSWORD_VAR: &'static str = "PYROSCOPE_BASIC_AUTH_PASSWORD";

    pub fn from_env() -> Credentials {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Credentials {
            tenant: var(Self::TENANT_VAR),
            basic_auth: var(Self::USER_VAR)
                .map(|user| (user, var(Self::PASSWORD_VAR).unwrap_or_default())),
        }
    }
}
