//! The push over HTTP(S), with the headers Grafana's agents send.

use std::time::Duration;

use base64::Engine;

use super::{wire, Credentials, SendError, Transport};

/// One agent (its connections kept alive between pushes) for one server.
pub struct Http {
    agent: ureq::Agent,
    endpoint: String,
    credentials: Credentials,
}

impl Http {
    pub fn new(url: &str, credentials: Credentials) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("gilscope/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http {
            agent,
            endpoint: format!("{}{}", url.trim_end_matches('/'), wire::PUSH_PATH),
            credentials,
        }
    }
}

impl Transport for Http {
    fn send(&mut self, body: &[u8], timeout: Duration) -> Result<(), SendError> {
        let mut request = self
            .agent
            .post(&self.endpoint)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/proto")
            .header("Content-Encoding", "gzip");
        if let Some(tenant) = &self.credentials.tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        if let Some((user, password)) = &self.credentials.basic_auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("Authorization", format!("Basic {token}"));
        }
        let response = request
            .send(body)
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(SendError::Transient(format!(
                "the server answered {status}"
            ))),
            _ => Err(SendError::Permanent(format!(
                "the server answered {status}"
            ))),
        }
    }
}
