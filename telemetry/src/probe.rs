//! `/metrics`, `/livez` and `/readyz` over plain HTTP/1.1, served from what the daemon last
//! [published](Published::publish): the same snapshot its stats file was written from.
//!
//! - `/livez`: 200 while the process answers (no dependency is checked).
//! - `/readyz`: 200 when the daemon says it is ready, else 503 with the reason;
//!   `?verbose` adds the reason (or `ok`) to the body either way.
//! - `/metrics`: the Prometheus text exposition.
//!
//! The server is deliberately small (one request per connection, a bounded request head, a
//! timeout): it answers monitoring systems, usually on a loopback or management address.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use log::{debug, warn};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::{
    Kind, Snapshot,
    health::{Issue, IssueKind},
    prometheus::{CONTENT_TYPE, Exposition},
};

/// Longest request head read; anything longer is refused.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a daemon shows on its probe endpoints, replaced at every stats tick.
#[derive(Debug)]
pub struct Published {
    /// `dcwatch_sensor` or `dcwatch_backend`.
    prefix: &'static str,
    daemon: &'static str,
    version: &'static str,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Snapshot,
    open_issues: Vec<IssueKind>,
    /// `None`: ready.
    not_ready: Option<String>,
}

impl Published {
    /// Not ready until the first [`Published::publish`].
    pub fn new(prefix: &'static str, daemon: &'static str, version: &'static str) -> Self {
        Self {
            prefix,
            daemon,
            version,
            state: Mutex::new(State {
                not_ready: Some("starting".to_owned()),
                ..State::default()
            }),
        }
    }

    /// Replaces what the endpoints show: the counters, the kinds of the open health issues
    /// (one per issue), and readiness (`Err(reason)`: not ready).
    pub fn publish<'a>(
        &self,
        snapshot: Snapshot,
        open_issues: impl IntoIterator<Item = &'a Issue>,
        ready: Result<(), String>,
    ) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.snapshot = snapshot;
        state.open_issues = open_issues.into_iter().map(|issue| issue.kind).collect();
        state.not_ready = ready.err();
    }

    /// Readiness alone (a daemon stopping, a listener lost).
    pub fn set_ready(&self, ready: Result<(), String>) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .not_ready = ready.err();
    }

    /// The `/metrics` text: `dcwatch_build_info`, every counter, and
    /// `PREFIX_health_issues_open{kind}` for every kind of issue.
    pub fn render(&self) -> String {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut exposition = Exposition::new(self.prefix, self.daemon, self.version);
        exposition.snapshot(&state.snapshot);
        let counts: Vec<(IssueKind, u64)> = IssueKind::ALL
            .iter()
            .map(|kind| {
                let open = state
                    .open_issues
                    .iter()
                    .filter(|open| *open == kind)
                    .count();
                (*kind, u64::try_from(open).unwrap_or(u64::MAX))
            })
            .collect();
        let labels: Vec<[(&str, &str); 1]> = counts
            .iter()
            .map(|(kind, _)| [("kind", kind.name())])
            .collect();
        let series: Vec<(&[(&str, &str)], u64)> = labels
            .iter()
            .zip(&counts)
            .map(|(labels, (_, count))| (labels.as_slice(), *count))
            .collect();
        exposition.family(
            &format!("{}_health_issues_open", self.prefix),
            Kind::Gauge,
            "Health issues open now, by kind.",
            &series,
        );
        exposition.finish()
    }

    fn readiness(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .not_ready
            .clone()
    }
}

/// Binds the probe listener (before anything slow, so a taken port fails at start).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Answers probe requests on `listener` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    published: Arc<Published>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let published = Arc::clone(&published);
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream, &published).await {
                            debug!("probe request from {peer}: {error}");
                        }
                    });
                }
                Err(error) => {
                    warn!("probe listener: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn answer(mut stream: TcpStream, published: &Published) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let (status, content_type, body) = route(&head, published);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    if !head.starts_with("HEAD ") {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// The request head (up to the blank line), or an error when it is longer than allowed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(buffer.get(..read).unwrap_or_default());
        if head.len() > MAX_REQUEST_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status line, content type and body for a request head.
fn route(head: &str, published: &Published) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or("/"),
    );
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "GET or HEAD only\n".into());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let verbose = query.split('&').any(|pair| pair == "verbose");
    match path {
        "/metrics" => ("200 OK", CONTENT_TYPE, published.render()),
        "/livez" => (
            "200 OK",
            TEXT,
            if verbose {
                "ok\n".into()
            } else {
                String::new()
            },
        ),
        "/readyz" => match published.readiness() {
            None => (
                "200 OK",
                TEXT,
                if verbose {
                    "ok\n".into()
                } else {
                    String::new()
                },
            ),
            Some(reason) => (
                "503 Service Unavailable",
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            TEXT,
            "/metrics, /livez or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Issues;

    async fn get(address: SocketAddr, target: &str) -> String {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("response");
        response
    }

    #[tokio::test]
    async fn endpoints_answer_from_what_was_published() {
        let listener = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let published = Arc::new(Published::new("dcwatch_test", "test", "9.9.9"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::clone(&published), async {
            let _ = stopped.await;
        }));

        assert!(get(address, "/livez").await.starts_with("HTTP/1.1 200 OK"));
        let readyz = get(address, "/readyz?verbose").await;
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        assert!(readyz.ends_with("not ready: starting\n"), "{readyz}");

        let mut snapshot = Snapshot::default();
        snapshot.push("frames", Kind::Counter, "Frames.", 12);
        let mut issues = Issues::default();
        let _opened = issues.set(IssueKind::XdpGeneric, "eth1", Some("generic".into()), 1);
        published.publish(snapshot, issues.open(), Ok(()));
        let readyz = get(address, "/readyz?verbose").await;
        assert!(readyz.starts_with("HTTP/1.1 200 OK"), "{readyz}");
        let metrics = get(address, "/metrics").await;
        assert!(
            metrics.contains("\r\ncontent-type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\ndcwatch_test_frames_total 12\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\ndcwatch_test_health_issues_open{kind=\"XDP_GENERIC\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\ndcwatch_test_health_issues_open{kind=\"NIC_DOWN\"} 0\n"),
            "{metrics}"
        );
        assert!(get(address, "/nothing").await.starts_with("HTTP/1.1 404"));
        let _ = stop.send(());
        server.await.expect("server stops");
    }
}
