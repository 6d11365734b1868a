//! The analyst's console: HTML pages and the JSON API behind them, over HTTPS on their own
//! listener (`[console] listen`), with local users, session cookies, CSRF tokens and a login
//! rate limit.
//!
//! - `data` is the console's one way into the store: every page and endpoint reads and writes
//!   through it; entity pages read the directory the store holds (synced by sensors or
//!   imported), as serve last loaded it.
//! - `api` answers JSON (described by `backend/console/openapi.json`), `pages` renders the same
//!   data as HTML without script, `report` writes the per-alert workbook.

pub mod api;
pub mod auth;
pub mod cli;
pub mod data;
pub mod html;
pub mod pages;
pub mod report;
pub mod users;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use log::{debug, info, warn};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    },
};

use crate::{
    console::{auth::Auth, data::Data},
    detection::DirectorySource,
};

/// A TLS handshake that has not finished in this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens (HTTPS); unset: no console.
    pub listen: Option<SocketAddr>,
    /// How analysts reach it (the alert report's "View in browser" link).
    pub url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("console: listening on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("console: TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("console: opening the store: {0}")]
    Opening(String),
}

/// What every handler shares.
#[derive(Debug)]
pub struct Console {
    pub data: Data,
    pub auth: Auth,
    /// The console's own address for links in reports (`https://host:port`).
    pub url: String,
}

pub type State = Arc<Console>;

impl Console {
    /// The console over `store` (SQLite's or the cluster's PostgreSQL).
    pub fn new(
        store: Box<dyn crate::store::Storage>,
        config: &ConsoleConfig,
        url: String,
        directory: Arc<DirectorySource>,
    ) -> Self {
        Self {
            data: Data::new(store, directory),
            auth: Auth::default(),
            url: config.url.clone().unwrap_or(url),
        }
    }
}

/// Every route: pages, the JSON API, the stylesheet; with the security headers on every answer.
pub fn router(console: State) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// No script, frame, form target or resource from anywhere but the console itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not no-referrer: with it, Chromium sends `Origin: null` on the console's own form posts,
    // which the cross-site check then (rightly) refuses.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The TLS acceptor for the backend's certificate (PEM chain and key).
pub fn acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, ConsoleError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ConsoleError::Tls(format!("certificate: {error}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|error| ConsoleError::Tls(format!("key: {error}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ConsoleError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| ConsoleError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the console's listener (so a port-0 address is known before serving).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ConsoleError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ConsoleError::Listen { address, source })
}

/// Serves `router` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!("console: accept: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!("console: TLS handshake from {peer}: {error}");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(router.layer(axum::Extension(Peer(peer))));
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                debug!("console: connection from {peer}: {error}");
            }
        });
    }
    info!("console: stopped");
}

/// The client's address, for the login rate limit.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Starts the console when `[console] listen` is set: binds, then serves (and samples the
/// sensors' counters every minute) until `stopping` turns true.
pub async fn start(
    config: &crate::config::Config,
    cert_pem: &[u8],
    key_pem: &[u8],
    directory: Arc<DirectorySource>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>, ConsoleError> {
    let Some(address) = config.console.listen else {
        return Ok(None);
    };
    let acceptor = acceptor(cert_pem, key_pem)?;
    let listener = bind(address).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| ConsoleError::Listen { address, source })?;
    let opened = config.clone();
    let store = tokio::task::spawn_blocking(move || crate::store::open(&opened))
        .await
        .map_err(|failure| ConsoleError::Opening(failure.to_string()))??;
    let console = Arc::new(Console::new(
        store,
        &config.console,
        format!("https://localhost:{}", bound.port()),
        directory,
    ));
    info!("console on https://{bound}/");
    let sampler = Arc::clone(&console);
    let mut sampler_stopping = stopping.clone();
    Ok(Some(tokio::spawn(async move {
        let sampling = tokio::spawn(async move {
            let mut tick = tokio::time::interval(data::COUNTER_SAMPLE_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let console = Arc::clone(&sampler);
                        let sampled = tokio::task::spawn_blocking(move || {
                            console.data.sample_counters(data::now_ns())
                        })
                        .await;
                        if let Ok(Err(error)) = sampled {
                            warn!("console: sampling counters: {error}");
                        }
                    }
                    _ = sampler_stopping.changed() => return,
                }
            }
        });
        let shutdown = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        serve(listener, acceptor, router(console), shutdown).await;
        let _ = sampling.await;
    })))
}
