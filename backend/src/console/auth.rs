//! Sessions, CSRF and the login rate limit.
//!
//! - A session is a random 256-bit token in a `__Host-` cookie (Secure, HttpOnly,
//!   SameSite=Strict, Path=/): the browser sends it only to this origin over HTTPS, and no
//!   script can read it. Sessions live in memory (a restart logs everyone out), at most
//!   `MAX_SESSIONS`, each ending after `IDLE_TIMEOUT` without use or `MAX_AGE` in all.
//! - Every state-changing request must carry the session's CSRF token (a form's `csrf` field or
//!   the `X-CSRF-Token` header), and is refused when the browser says it comes from another
//!   site (`Sec-Fetch-Site`) or another origin (`Origin`). SameSite=Strict alone would do in
//!   current browsers; the token covers the rest.
//! - Logins are limited per client address and per user name: after `MAX_FAILURES` failures
//!   within `FAILURE_WINDOW`, attempts are refused (429) until the window moves on.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde::Serialize;

use crate::console::{State, users::Role};

pub const COOKIE: &str = "__Host-dcwatch-session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const MAX_SESSIONS: usize = 10_000;
pub const IDLE_TIMEOUT: Duration = Duration::from_hours(8);
pub const MAX_AGE: Duration = Duration::from_hours(24);
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_mins(5);
/// Addresses and names whose failures are remembered; beyond it the oldest are forgotten.
pub const MAX_TRACKED: usize = 10_000;

/// A logged-in user, as handlers see it.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The token state-changing requests must echo.
    pub csrf: String,
}

#[derive(Debug)]
struct Session {
    user: User,
    created: Instant,
    used: Instant,
}

#[derive(Debug, Default)]
pub struct Auth {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    counters: Mutex<AuthCounters>,
}

/// What the console refused, for its log and the health page.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct AuthCounters {
    pub logins: u64,
    pub failed_logins: u64,
    pub rate_limited: u64,
    pub csrf_refused: u64,
    pub sessions_evicted: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Auth {
    /// Whether a login from `client` for `name` may be tried now.
    pub fn login_allowed(&self, client: &str, name: &str) -> bool {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        let limited = [client_key(client), name_key(name)].iter().any(|key| {
            failures.get_mut(key).is_some_and(|times| {
                while times
                    .front()
                    .is_some_and(|time| now.duration_since(*time) > FAILURE_WINDOW)
                {
                    times.pop_front();
                }
                times.len() >= MAX_FAILURES
            })
        });
        if limited {
            lock(&self.counters).rate_limited += 1;
        }
        !limited
    }

    pub fn login_failed(&self, client: &str, name: &str) {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED {
            let oldest = failures
                .iter()
                .min_by_key(|(_, times)| times.back().copied())
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                failures.remove(&oldest);
            }
        }
        for key in [client_key(client), name_key(name)] {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            if times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
        lock(&self.counters).failed_logins += 1;
    }

    /// Starts a session; returns its token (the cookie's value).
    pub fn start(&self, name: String, role: Role) -> std::io::Result<(String, User)> {
        let token = crate::new_token()?;
        let user = User {
            name,
            role,
            csrf: crate::new_token()?,
        };
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, session| live(session, now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, session)| session.used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
                lock(&self.counters).sessions_evicted += 1;
            }
        }
        sessions.insert(
            token.clone(),
            Session {
                user: user.clone(),
                created: now,
                used: now,
            },
        );
        lock(&self.counters).logins += 1;
        Ok((token, user))
    }

    pub fn end(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }

    fn user(&self, token: &str) -> Option<User> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(token)?;
        if !live(session, now) {
            sessions.remove(token);
            return None;
        }
        session.used = now;
        Some(session.user.clone())
    }

    pub fn counters(&self) -> AuthCounters {
        *lock(&self.counters)
    }

    pub fn csrf_refused(&self) {
        lock(&self.counters).csrf_refused += 1;
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.used) < IDLE_TIMEOUT && now.duration_since(session.created) < MAX_AGE
}

fn client_key(client: &str) -> String {
    format!("client:{client}")
}

fn name_key(name: &str) -> String {
    format!("name:{}", name.to_lowercase())
}

/// The cookie that carries `token`.
pub fn session_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The cookie that ends the session in the browser.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session token the request's cookies carry.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Whether the browser says the request comes from elsewhere: `Sec-Fetch-Site` other than
/// same-origin or none (typed or bookmarked), or an `Origin` that is not this host.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => false,
        Some(Ok(origin)) => host.is_none_or(|host| origin != format!("https://{host}")),
        Some(Err(_)) => true,
    }
}

/// Compares in time independent of where the strings differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Why a request was refused before its handler ran.
#[derive(Debug)]
pub enum Refusal {
    /// No session: pages go to the login form, the API answers 401.
    Login { api: bool, next: String },
    /// A state change from elsewhere or without the CSRF token.
    Forbidden(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Login { api: true, .. } => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "log in first"})),
            )
                .into_response(),
            Self::Login { api: false, next } => {
                let next: String = url_encode(&next);
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Self::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": why})),
            )
                .into_response(),
        }
    }
}

pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

impl FromRequestParts<State> for User {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Refusal> {
        let api = parts.uri.path().starts_with("/api/");
        let user = cookie_token(&parts.headers)
            .and_then(|token| state.auth.user(&token))
            .ok_or_else(|| Refusal::Login {
                api,
                next: parts
                    .uri
                    .path_and_query()
                    .map_or("/", |path| path.as_str())
                    .to_owned(),
            })?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            if cross_site(&parts.headers) {
                state.auth.csrf_refused();
                return Err(Refusal::Forbidden("cross-site request refused"));
            }
            // Forms carry the token in their body; the handler checks it (`Form::check`).
            if api {
                let header = parts
                    .headers
                    .get(CSRF_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                if !same_secret(header, &user.csrf) {
                    state.auth.csrf_refused();
                    return Err(Refusal::Forbidden("missing or wrong X-CSRF-Token"));
                }
            }
        }
        Ok(user)
    }
}

impl OptionalFromRequestParts<State> for User {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &State,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(cookie_token(&parts.headers).and_then(|token| state.auth.user(&token)))
    }
}

impl User {
    /// A form's CSRF field against the session's token.
    pub fn check_form(&self, state: &State, field: &str) -> Result<(), Refusal> {
        if same_secret(field, &self.csrf) {
            Ok(())
        } else {
            state.auth.csrf_refused();
            Err(Refusal::Forbidden("missing or wrong CSRF token"))
        }
    }

    /// Analysts and admins change alerts; viewers only read.
    pub fn may_change(&self) -> bool {
        self.role >= Role::Analyst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_limit_logins_per_client_and_per_name() {
        let auth = Auth::default();
        for _ in 0..MAX_FAILURES {
            assert!(auth.login_allowed("10.0.0.1", "alice"));
            auth.login_failed("10.0.0.1", "alice");
        }
        assert!(
            !auth.login_allowed("10.0.0.1", "bob"),
            "the client is limited"
        );
        assert!(
            !auth.login_allowed("10.0.0.2", "ALICE"),
            "the name is limited"
        );
        assert!(auth.login_allowed("10.0.0.2", "bob"));
        assert_eq!(auth.counters().rate_limited, 2);
    }

    #[test]
    fn sessions_and_cookies() {
        let auth = Auth::default();
        let (token, user) = auth.start("alice".into(), Role::Viewer).expect("start");
        assert_eq!(token.len(), 64);
        assert_ne!(token, user.csrf);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("other=1; {COOKIE}={token}")
                .parse()
                .expect("header"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some(token.as_str()));
        assert_eq!(
            auth.user(&token).map(|user| user.name).as_deref(),
            Some("alice")
        );
        auth.end(&token);
        assert!(auth.user(&token).is_none());
        assert!(session_cookie("x").contains("Secure; HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "console:8443".parse().expect("header"));
        assert!(!cross_site(&headers));
        headers.insert(
            header::ORIGIN,
            "https://console:8443".parse().expect("header"),
        );
        assert!(!cross_site(&headers));
        headers.insert(
            header::ORIGIN,
            "https://evil.example".parse().expect("header"),
        );
        assert!(cross_site(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().expect("header"));
        assert!(cross_site(&headers));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
