//! HTTP/1.x as a carrier of NTLM and Negotiate (Kerberos) authentication (RFC 4559): the tokens
//! of `Authorization` headers, with the outcome the response's status gives them, and the tokens
//! of `WWW-Authenticate` challenges.

use std::collections::VecDeque;

use dcwatch_parsers::{
    framing::{Framing, Start},
    http::{self, HeadKind, Method},
};
use dcwatch_proto::v1::{Activity, Carrier};

use super::{
    gss,
    stream::{Malformed, StreamProtocol},
};
use crate::{
    activity::{Seen, outcome},
    flow::Direction,
};

/// Requests waiting for their response on one connection (pipelining); beyond it the oldest is
/// reported without an outcome.
pub const MAX_PENDING_REQUESTS: usize = 32;

/// HTTP statuses that refuse the credentials presented (RFC 9110 15.5.2, 15.5.8).
const UNAUTHORIZED: u16 = 401;
const PROXY_AUTHENTICATION_REQUIRED: u16 = 407;

#[derive(Debug)]
struct PendingRequest {
    is_head: bool,
    /// Activities of the request's tokens, waiting for the response's status.
    carried: Vec<Activity>,
}

#[derive(Debug, Default)]
pub struct HttpSession {
    pending: VecDeque<PendingRequest>,
}

impl StreamProtocol for HttpSession {
    fn frame(&self, direction: Direction, bytes: &[u8]) -> Framing {
        match direction {
            Direction::ToServer => http::frame(bytes),
            Direction::ToClient => http::frame_response(
                bytes,
                self.pending.front().is_some_and(|request| request.is_head),
            ),
        }
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        http::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        _direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        out: &mut Vec<Activity>,
    ) -> Result<(), Malformed> {
        let head = http::parse_head(pdu).map_err(|_| Malformed)?;
        let mut carried = Vec::new();
        for auth in &head.auth {
            if let Some(token) = auth.token.bytes() {
                gss::token(token, seen, Carrier::Http, &mut carried);
            }
        }
        match head.kind {
            HeadKind::Request { method, .. } => {
                if self.pending.len() >= MAX_PENDING_REQUESTS
                    && let Some(oldest) = self.pending.pop_front()
                {
                    out.extend(oldest.carried);
                }
                self.pending.push_back(PendingRequest {
                    is_head: method == Method::HEAD,
                    carried,
                });
            }
            HeadKind::Response { status } => {
                let informational = (100..200).contains(&status);
                if !informational && let Some(request) = self.pending.pop_front() {
                    let refused = status == UNAUTHORIZED || status == PROXY_AUTHENTICATION_REQUIRED;
                    for mut activity in request.carried {
                        activity.outcome = Some(outcome(!refused, u32::from(status), None));
                        out.push(activity);
                    }
                }
                out.extend(carried);
            }
        }
        Ok(())
    }
}

impl HttpSession {
    /// The connection ended: tokens of requests never answered are reported without outcome.
    pub fn close(self, out: &mut Vec<Activity>) {
        out.extend(self.pending.into_iter().flat_map(|request| request.carried));
    }
}
