//! The agent's HTTP endpoints: `/metrics` (Prometheus), `/processes` (JSON) and
//! `/processes/PID` (the last window's report), served from the [`Board`] on a thread of
//! their own.

use std::net::SocketAddr;
use std::sync::Arc;

use tiny_http::{Header, Request, Response, Server as HttpServer};

use super::board::Board;
use super::metrics::CONTENT_TYPE;

/// The server's thread; stopped when dropped.
pub struct Server {
    http: Arc<HttpServer>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub address: SocketAddr,
}

/// What a path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Processes,
    Report(u32),
    Index,
    NotFound,
}

fn route(url: &str) -> Route {
    let path = url.split('?').next().unwrap_or("");
    match path.trim_end_matches('/') {
        "" => Route::Index,
        "/metrics" => Route::Metrics,
        "/processes" => Route::Processes,
        other => other
            .strip_prefix("/processes/")
            .and_then(|pid| pid.parse().ok())
            .map_or(Route::NotFound, Route::Report),
    }
}

impl Server {
    pub fn start(address: SocketAddr, board: Arc<Board>) -> std::io::Result<Server> {
        let http = Arc::new(HttpServer::http(address).map_err(std::io::Error::other)?);
        let address = http.server_addr().to_ip().unwrap_or(address);
        let thread = {
            let http = Arc::clone(&http);
            std::thread::Builder::new()
                .name("gilscope-http".into())
                .spawn(move || {
                    for request in http.incoming_requests() {
                        answer(request, &board);
                    }
                })?
        };
        Ok(Server {
            http,
            thread: Some(thread),
            address,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(request: Request, board: &Board) {
    let (status, content_type, body) = match route(request.url()) {
        Route::Metrics => (200, CONTENT_TYPE, board.metrics.encode()),
        Route::Processes => (200, "application/json", board.listing_json()),
        Route::Report(pid) => match board.report_json(pid) {
            Some(json) => (200, "application/json", json),
            None => (
                404,
                "text/plain; charset=utf-8",
                format!("no report for process {pid}: it is not watched, or its first window has not closed yet\n"),
            ),
        },
        Route::Index => (
            200,
            "text/plain; charset=utf-8",
            "gilscope agent: /metrics (Prometheus), /processes (JSON), /processes/PID (the last window's gilscope.report/1)\n".to_string(),
        ),
        Route::NotFound => (404, "text/plain; charset=utf-8", "not found; try /metrics or /processes\n".to_string()),
    };
    let mut response = Response::from_string(body).with_status_code(status);
    if let Ok(header) = Header::from_bytes("Content-Type", content_type) {
        response = response.with_header(header);
    }
    // A client that went away is no concern of the agent's.
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/metrics"), Route::Metrics);
        assert_eq!(route("/metrics?x=1"), Route::Metrics);
        assert_eq!(route("/processes/"), Route::Processes);
        assert_eq!(route("/processes/123"), Route::Report(123));
        assert_eq!(route("/processes/abc"), Route::NotFound);
        assert_eq!(route("/"), Route::Index);
        assert_eq!(route("/other"), Route::NotFound);
    }
}
