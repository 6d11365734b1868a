//! HTTP/1.x message heads, as a carrier of NTLM, Negotiate and Kerberos tokens (RFC 9112,
//! RFC 9110 section 11, RFC 4559).
//!
//! The sensor wants the authentication exchange, not the content: [`frame`] finds where each
//! message ends so bodies can be skipped, [`is_pdu_start`] finds the next message after a gap,
//! and [`parse_head`] reads the start line, `Host` and the four authentication headers, with
//! their tokens base64-decoded for [`crate::ntlm::parse`] or the GSS-API parser.
//!
//! ```text
//! HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]   (RFC 9112 2.1)
//! start-line   = request-line / status-line
//! request-line = method SP request-target SP HTTP-version                     (RFC 9112 3)
//! status-line  = HTTP-version SP status-code SP [ reason-phrase ]             (RFC 9112 4)
//! field-line   = field-name ":" OWS field-value OWS                           (RFC 9112 5)
//! credentials  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]               (RFC 9110 11.4)
//! challenge    = auth-scheme [ 1*SP ( token68 / #auth-param ) ]               (RFC 9110 11.3)
//! token68      = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! Tolerated with an anomaly flag, as real servers do: bare LF line ends, obs-fold
//! continuation lines (RFC 9112 5.2), malformed field lines (skipped).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

use crate::framing::{Framing, Start};

/// Longest head (start line, fields and the empty line) read. IIS accepts 16 KiB by default
/// (MaxRequestBytes) but large-PAC Kerberos tokens make admins raise it, and a sensor that
/// gives up earlier than the server is blind to the Authorization header: 64 KiB, the usual
/// raised value. A single field line may use all of it (a Negotiate token), so lines get no
/// tighter bound than the head.
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// Longest start line. Apache's LimitRequestLine is 8190 and IIS's URL limits are lower; a
/// longer "request line" is not one the sensor needs to believe.
pub const MAX_START_LINE_LEN: usize = 8 * 1024;

/// Field lines in a head. Apache refuses more than 100 (LimitRequestFields); IIS and nginx
/// bound bytes only. 1024 is far above any client while keeping per-head work bounded
/// independently of [`MAX_HEAD_LEN`].
pub const MAX_HEADERS: usize = 1024;

/// Largest decoded token. Windows' default MaxTokenSize (since Windows 8 / 2012) is 48000
/// bytes: no SSPI token is larger.
pub const MAX_TOKEN_LEN: usize = 48_000;

/// Base64 length of [`MAX_TOKEN_LEN`] bytes: longer token68 strings are not decoded.
pub const MAX_TOKEN_B64_LEN: usize = MAX_TOKEN_LEN.div_ceil(3) * 4;

/// Credentials/challenges kept from one head. A 401 offers two or three schemes (Negotiate,
/// NTLM, Basic); 16 leaves room for duplicates while bounding memory.
pub const MAX_AUTH_TOKENS: usize = 16;

/// Bytes of a Basic user name kept (sAMAccountName is 20 characters, a UPN some 100s).
pub const MAX_USER_LEN: usize = 256;

/// Chunks walked by [`frame`] before giving up on a chunked body (then `NotPdu`, and the
/// caller resynchronises with [`is_pdu_start`]). Each call walks from the start, so this bounds
/// the work per call; a 1 MiB body in 1 KiB chunks fits.
pub const MAX_CHUNKS: usize = 1024;

/// Longest chunk-size line (size plus chunk extensions). A size is at most 16 hex digits;
/// extensions are rare and short.
pub const MAX_CHUNK_LINE_LEN: usize = 1024;

/// Hex digits of a chunk size: 16 fill a u64.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Decimal digits of a Content-Length: 19 always fit a u64.
pub const MAX_CONTENT_LENGTH_DIGITS: usize = 19;

/// [`Framing::Pdu`] length meaning "to the end of the connection": a response with neither
/// Content-Length nor chunked coding (RFC 9112 6.3 rule 8). The caller skips the rest of the
/// direction.
pub const UNTIL_CLOSE: usize = usize::MAX;

/// Methods [`is_pdu_start`] accepts: RFC 9110's, PATCH (RFC 5789), and RPC over HTTP's
/// RPC_IN_DATA / RPC_OUT_DATA ([MS-RPCH] 2.1.2.1), which carry DCE-RPC with NTLM.
pub const KNOWN_METHODS: [&str; 11] = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "HEAD",
    "OPTIONS",
    "PATCH",
    "CONNECT",
    "TRACE",
    "RPC_IN_DATA",
    "RPC_OUT_DATA",
];

/// Why a head could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP head incomplete (no empty line yet)")]
    Incomplete,
    #[error("not an HTTP/1.x request or status line")]
    BadStartLine,
    #[error("HTTP head longer than {MAX_HEAD_LEN} bytes")]
    HeadTooLong,
    #[error("more than {MAX_HEADERS} HTTP field lines")]
    TooManyHeaders,
}

/// A request method token. Open: any token parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Method<'a>(pub &'a str);

impl Method<'static> {
    pub const GET: Self = Self("GET");
    pub const POST: Self = Self("POST");
    pub const HEAD: Self = Self("HEAD");
    pub const CONNECT: Self = Self("CONNECT");
    pub const RPC_IN_DATA: Self = Self("RPC_IN_DATA");
    pub const RPC_OUT_DATA: Self = Self("RPC_OUT_DATA");
}

/// Request or response, from the start line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadKind<'a> {
    Request {
        method: Method<'a>,
        /// request-target as sent (origin-form path, absolute URI, authority or "*").
        target: &'a str,
        /// The first Host field, if UTF-8.
        host: Option<&'a str>,
    },
    Response {
        status: u16,
    },
}

/// Which field an [`AuthToken`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthHeader {
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
}

/// auth-scheme, case-insensitive (RFC 9110 11.1). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme<'a> {
    Ntlm,
    /// SPNEGO (RFC 4559): the token is a GSS-API token, or a raw NTLMSSP message.
    Negotiate,
    /// Raw Kerberos GSS-API token (WinRM's "Kerberos" scheme).
    Kerberos,
    Basic,
    Other(&'a str),
}

/// What followed the scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// The scheme alone: an offer in WWW-Authenticate ("NTLM"), or a bare credential.
    Absent,
    /// token68, base64-decoded.
    Decoded(Vec<u8>),
    /// token68 that is not valid base64.
    BadBase64,
    /// token68 longer than [`MAX_TOKEN_B64_LEN`]: not decoded.
    TooLong,
    /// auth-params (realm="...", Digest fields): not kept.
    Params,
    /// Basic credentials: decoded for the user name, then dropped (see [`AuthToken`]).
    Withheld,
}

impl Token {
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Token::Decoded(b) => Some(b),
            _ => None,
        }
    }
}

/// One credential (request) or challenge (response).
///
/// Basic credentials are `base64(user ":" password)`: the record keeps the user name only and
/// sets `cleartext_password`, because a sensor must not become a store of cleartext passwords
/// (its records are shipped and retained far more widely than the traffic itself); that the
/// password crossed the wire is what a detector needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthToken<'a> {
    pub header: AuthHeader,
    pub scheme: AuthScheme<'a>,
    pub token: Token,
    /// Basic: the user name, lossy UTF-8, at most [`MAX_USER_LEN`] bytes.
    pub basic_user: Option<String>,
    /// Basic credentials were sent: a password crossed the wire in cleartext (base64).
    pub cleartext_password: bool,
}

impl AuthToken<'_> {
    /// Whether the token is a raw NTLMSSP message (NTLM, or Negotiate falling back to it
    /// without SPNEGO), for [`crate::ntlm::parse`].
    pub fn is_ntlmssp(&self) -> bool {
        self.token
            .bytes()
            .is_some_and(|b| b.starts_with(&crate::ntlm::SIGNATURE))
    }
}

/// Deviations that still parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HttpAnomalies {
    /// A line ended in LF without CR (RFC 9112 2.2 allows recipients to accept it).
    pub bare_lf: bool,
    /// obs-fold continuation lines (RFC 9112 5.2); only a token for a scheme-only auth field
    /// is taken from them.
    pub obs_fold: bool,
    /// A field line without a colon, with an empty or invalid name, or whitespace before the
    /// colon (a request smuggling shape, RFC 9112 5.1): skipped.
    pub malformed_field_line: bool,
    /// Both Transfer-Encoding and Content-Length (RFC 9112 6.3: smuggling; TE wins).
    pub te_and_cl: bool,
    /// Content-Length values that disagree, or are not digits.
    pub bad_content_length: bool,
    /// Transfer-Encoding whose final coding is not chunked.
    pub te_not_chunked: bool,
    /// More than one Host field.
    pub duplicate_host: bool,
    /// Host that is not UTF-8.
    pub non_utf8_host: bool,
    /// More than [`MAX_AUTH_TOKENS`] credentials/challenges: the rest were dropped.
    pub too_many_auth_tokens: bool,
}

/// A parsed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHead<'a> {
    pub kind: HeadKind<'a>,
    /// The x of HTTP/1.x.
    pub version_minor: u8,
    pub auth: Vec<AuthToken<'a>>,
    /// Content-Length when valid (and consistent).
    pub content_length: Option<u64>,
    /// Transfer-Encoding ends in chunked.
    pub chunked: bool,
    /// Field lines, continuation lines included.
    pub header_count: usize,
    /// Bytes of the head, the empty line included: the body (if any) starts here.
    pub head_len: usize,
    pub anomalies: HttpAnomalies,
}

/// Length of the HTTP message at the front of `bytes`, assuming any response is not to a HEAD
/// request; see [`frame_response`].
pub fn frame(bytes: &[u8]) -> Framing {
    frame_response(bytes, false)
}

/// Length of the HTTP message at the front of `bytes` (RFC 9112 6.3), from its head alone
/// except for a chunked body, whose chunk-size lines are walked (at most [`MAX_CHUNKS`]).
///
/// The message body length is, in order: none for a response to HEAD (`request_was_head`,
/// which only the caller can know from the other direction; pass it also for a 2xx answer to
/// CONNECT, after which the connection is a tunnel), 1xx, 204 and 304; the chunked coding when
/// Transfer-Encoding ends in it; to the close ([`UNTIL_CLOSE`]) for a response with another
/// Transfer-Encoding or no length at all; Content-Length; none for a request without either.
/// `request_was_head` is ignored for requests.
///
/// `NotPdu` for bytes that do not start with a start line (including a stray CRLF between
/// messages, which RFC 9112 2.2 lets servers skip: the caller resynchronises), a head past [`MAX_HEAD_LEN`] or
/// [`MAX_HEADERS`], an invalid Content-Length, a request with a Transfer-Encoding other than
/// chunked (RFC 9112 6.3 rule 4), or a malformed or too long chunked body.
pub fn frame_response(bytes: &[u8], request_was_head: bool) -> Framing {
    let head = match scan_head(bytes, false) {
        Ok(h) => h,
        Err(ScanError::NeedMore) => return Framing::NeedMore,
        Err(_) => return Framing::NotPdu,
    };
    let mut body = BodyFields::default();
    for (line, _) in field_lines(head.fields) {
        if let Line::Field { name, value } = line {
            body.add(name, value);
        }
    }
    let is_request = matches!(head.start, StartLine::Request { .. });
    let no_body = match head.start {
        StartLine::Response { status, .. } => {
            request_was_head || (100..200).contains(&status) || status == 204 || status == 304
        }
        StartLine::Request { .. } => false,
    };
    if no_body {
        return Framing::Pdu(head.len);
    }
    if body.te_present {
        return match (body.chunked, is_request) {
            (true, _) => walk_chunks(bytes, head.len),
            (false, true) => Framing::NotPdu,
            (false, false) => Framing::Pdu(UNTIL_CLOSE),
        };
    }
    if body.cl_bad {
        return Framing::NotPdu;
    }
    match body.content_length {
        Some(n) => usize::try_from(n)
            .ok()
            .and_then(|n| head.len.checked_add(n))
            .map_or(Framing::NotPdu, Framing::Pdu),
        None if is_request => Framing::Pdu(head.len),
        None => Framing::Pdu(UNTIL_CLOSE),
    }
}

/// Whether an HTTP/1.x message plausibly starts here: a whole request line with a method from
/// [`KNOWN_METHODS`], a target of visible ASCII and `HTTP/1.<digit>`, or a whole status line
/// `HTTP/1.<digit> SP 3DIGIT` with a printable reason, ended by CRLF or LF. `NeedMore` only
/// while the bytes are a prefix of such a line shorter than [`MAX_START_LINE_LEN`].
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    // Resynchronising calls this at every offset of a stream: the first bytes decide before
    // the line is searched for its end, or a stretch without a newline would cost a search of
    // up to MAX_START_LINE_LEN bytes per offset.
    match start_token(bytes) {
        Start::Yes => {}
        other => return other,
    }
    match start_line(bytes, true) {
        Ok(_) => Start::Yes,
        Err(ScanError::NeedMore) => Start::NeedMore,
        Err(_) => Start::No,
    }
}

/// Parses the head at the front of `bytes` (RFC 9112 2-5): start line, Host, Content-Length,
/// Transfer-Encoding and the credentials/challenges of `Authorization`,
/// `Proxy-Authorization`, `WWW-Authenticate` and `Proxy-Authenticate` (RFC 9110 11.6), in any
/// message. The head must be complete; the body is not read.
pub fn parse_head(bytes: &[u8]) -> Result<HttpHead<'_>, HttpError> {
    let head = scan_head(bytes, false).map_err(|e| match e {
        ScanError::NeedMore => HttpError::Incomplete,
        ScanError::NotHttp => HttpError::BadStartLine,
        ScanError::TooLong => HttpError::HeadTooLong,
        ScanError::TooManyHeaders => HttpError::TooManyHeaders,
    })?;
    let mut out = HttpHead {
        kind: match head.start {
            StartLine::Request { method, target, .. } => HeadKind::Request {
                method: Method(method),
                target,
                host: None,
            },
            StartLine::Response { status, .. } => HeadKind::Response { status },
        },
        version_minor: head.start.version_minor(),
        auth: Vec::new(),
        content_length: None,
        chunked: false,
        header_count: 0,
        head_len: head.len,
        anomalies: HttpAnomalies {
            bare_lf: head.bare_lf,
            ..HttpAnomalies::default()
        },
    };
    let mut body = BodyFields::default();
    let mut host_seen = false;
    let mut last_was_auth = false;
    for (line, bare_lf) in field_lines(head.fields) {
        out.header_count += 1;
        out.anomalies.bare_lf |= bare_lf;
        let mut this_is_auth = false;
        match line {
            Line::Field { name, value } => {
                body.add(name, value);
                if name.eq_ignore_ascii_case(b"host") {
                    set_host(&mut out, value, &mut host_seen);
                } else if let Some(header) = auth_header(name) {
                    this_is_auth = add_auth(&mut out, header, value);
                }
            }
            Line::Fold(cont) => {
                out.anomalies.obs_fold = true;
                if last_was_auth {
                    fold_token(&mut out, cont);
                }
            }
            Line::Malformed => out.anomalies.malformed_field_line = true,
        }
        last_was_auth = this_is_auth;
    }
    out.content_length = body.content_length.filter(|_| !body.cl_bad);
    out.chunked = body.chunked;
    out.anomalies.bad_content_length = body.cl_bad;
    out.anomalies.te_and_cl = body.te_present && body.cl_present;
    out.anomalies.te_not_chunked = body.te_present && !body.chunked;
    Ok(out)
}

fn set_host<'a>(out: &mut HttpHead<'a>, value: &'a [u8], seen: &mut bool) {
    if std::mem::replace(seen, true) {
        out.anomalies.duplicate_host = true;
        return;
    }
    let host_str = std::str::from_utf8(value).ok();
    out.anomalies.non_utf8_host |= host_str.is_none();
    if let HeadKind::Request { host, .. } = &mut out.kind {
        *host = host_str;
    }
}

fn auth_header(name: &[u8]) -> Option<AuthHeader> {
    [
        (&b"authorization"[..], AuthHeader::Authorization),
        (b"proxy-authorization", AuthHeader::ProxyAuthorization),
        (b"www-authenticate", AuthHeader::WwwAuthenticate),
        (b"proxy-authenticate", AuthHeader::ProxyAuthenticate),
    ]
    .into_iter()
    .find(|(n, _)| name.eq_ignore_ascii_case(n))
    .map(|(_, h)| h)
}

/// Adds the credentials or challenges of one field. Returns whether the field ended with a
/// scheme-only entry that a continuation line could complete.
fn add_auth<'a>(out: &mut HttpHead<'a>, header: AuthHeader, value: &'a [u8]) -> bool {
    let mut last_absent = false;
    for element in split_list(value) {
        let Some((scheme, rest)) = scheme_and_rest(element) else {
            continue;
        };
        if out.auth.len() == MAX_AUTH_TOKENS {
            out.anomalies.too_many_auth_tokens = true;
            return false;
        }
        let token = make_token(scheme, rest, header);
        last_absent = token.token == Token::Absent;
        out.auth.push(token);
    }
    last_absent
}

/// obs-fold after "Authorization: NTLM": the continuation holds the token.
fn fold_token(out: &mut HttpHead<'_>, cont: &[u8]) {
    let Some(last) = out.auth.last_mut() else {
        return;
    };
    if last.token == Token::Absent {
        let replaced = make_token(last.scheme, trim(cont), last.header);
        *last = replaced;
    }
}

/// One list element: a new challenge/credential ("scheme [token68 / auth-param]") or, when its
/// first word is `name=value`, an auth-param continuing the previous one (None).
fn scheme_and_rest(element: &[u8]) -> Option<(AuthScheme<'_>, &[u8])> {
    let (word, rest) = match element.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (element.get(..i)?, trim(element.get(i..)?)),
        None => (element, &[][..]),
    };
    if word.is_empty() || !word.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let word = std::str::from_utf8(word).ok()?;
    let scheme = match word {
        w if w.eq_ignore_ascii_case("NTLM") => AuthScheme::Ntlm,
        w if w.eq_ignore_ascii_case("Negotiate") => AuthScheme::Negotiate,
        w if w.eq_ignore_ascii_case("Kerberos") => AuthScheme::Kerberos,
        w if w.eq_ignore_ascii_case("Basic") => AuthScheme::Basic,
        w => AuthScheme::Other(w),
    };
    Some((scheme, rest))
}

fn make_token<'a>(scheme: AuthScheme<'a>, rest: &[u8], header: AuthHeader) -> AuthToken<'a> {
    let mut out = AuthToken {
        header,
        scheme,
        token: Token::Absent,
        basic_user: None,
        cleartext_password: false,
    };
    if rest.is_empty() {
        return out;
    }
    if !is_token68(rest) {
        out.token = Token::Params;
        return out;
    }
    out.token = decode_token68(rest);
    if scheme == AuthScheme::Basic
        && matches!(out.token, Token::Decoded(_))
        && let Token::Decoded(mut creds) = std::mem::replace(&mut out.token, Token::Withheld)
    {
        out.basic_user = Some(basic_user(&creds));
        out.cleartext_password = true;
        // The password is not kept; do not leave it in freed memory either.
        creds.fill(0);
    }
    out
}

/// `user-id ":" password` (RFC 7617 2): the part before the first colon.
fn basic_user(creds: &[u8]) -> String {
    let user = creds.split(|&b| b == b':').next().unwrap_or_default();
    let cut = user.get(..MAX_USER_LEN).unwrap_or(user);
    String::from_utf8_lossy(cut).into_owned()
}

fn decode_token68(t: &[u8]) -> Token {
    if t.len() > MAX_TOKEN_B64_LEN {
        return Token::TooLong;
    }
    match STANDARD_PAD_INDIFFERENT.decode(t) {
        Ok(b) => Token::Decoded(b),
        Err(_) => Token::BadBase64,
    }
}

fn is_token68(t: &[u8]) -> bool {
    let body_len = t.iter().position(|&b| b == b'=').unwrap_or(t.len());
    body_len > 0
        && t.iter()
            .take(body_len)
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        && t.iter().skip(body_len).all(|&b| b == b'=')
}

/// Splits a field value on commas outside quoted strings (RFC 9110 5.6.1, 5.6.4), trimming
/// each element and dropping empty ones.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = list_element_end(rest);
            let (element, tail) = rest.split_at_checked(end).unwrap_or((rest, &[]));
            rest = tail.get(1..).unwrap_or_default();
            let element = trim(element);
            if !element.is_empty() {
                return Some(element);
            }
        }
        None
    })
}

fn list_element_end(s: &[u8]) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in s.iter().enumerate() {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, _, b'"') => quoted = !quoted,
            (false, _, b',') => return i,
            _ => {}
        }
    }
    s.len()
}

/// What Content-Length and Transfer-Encoding say, over all their fields.
#[derive(Default)]
struct BodyFields {
    content_length: Option<u64>,
    cl_present: bool,
    cl_bad: bool,
    te_present: bool,
    chunked: bool,
}

impl BodyFields {
    fn add(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.cl_present = true;
            // RFC 9110 8.6: a list of identical values is the same as one value.
            for v in split_list(value) {
                match (parse_decimal(v), self.content_length) {
                    (None, _) => self.cl_bad = true,
                    (Some(n), Some(m)) if n != m => self.cl_bad = true,
                    (Some(n), _) => self.content_length = Some(n),
                }
            }
            self.cl_bad |= self.content_length.is_none();
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.te_present = true;
            // Only the final coding matters (RFC 9112 6.3 rule 4); a later field overrides.
            if let Some(last) = split_list(value).last() {
                self.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        }
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > MAX_CONTENT_LENGTH_DIGITS {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// chunked-body = *chunk last-chunk trailer-section CRLF, chunk = chunk-size [ chunk-ext ] CRLF
/// chunk-data CRLF, last-chunk = 1*"0" [ chunk-ext ] CRLF (RFC 9112 7.1).
fn walk_chunks(bytes: &[u8], mut pos: usize) -> Framing {
    for _ in 0..MAX_CHUNKS {
        let rest = bytes.get(pos..).unwrap_or_default();
        let (line, line_len) = match next_line(rest, MAX_CHUNK_LINE_LEN) {
            Ok(l) => l,
            Err(e) => return e,
        };
        let Some(size) = chunk_size(line) else {
            return Framing::NotPdu;
        };
        let Some(data_start) = pos.checked_add(line_len) else {
            return Framing::NotPdu;
        };
        if size == 0 {
            return trailer_end(bytes, data_start);
        }
        let Some(data_end) = usize::try_from(size)
            .ok()
            .and_then(|s| data_start.checked_add(s))
        else {
            return Framing::NotPdu;
        };
        let Some(after) = bytes.get(data_end..) else {
            return Framing::NeedMore;
        };
        let crlf = match after {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            [] | [b'\r'] => return Framing::NeedMore,
            _ => return Framing::NotPdu,
        };
        pos = data_end + crlf;
    }
    Framing::NotPdu
}

/// trailer-section = *( field-line CRLF ), then the empty line.
fn trailer_end(bytes: &[u8], mut pos: usize) -> Framing {
    let start = pos;
    for _ in 0..=MAX_HEADERS {
        let rest = bytes.get(pos..).unwrap_or_default();
        let budget = MAX_HEAD_LEN.saturating_sub(pos - start);
        let (line, len) = match next_line(rest, budget) {
            Ok(l) => l,
            Err(e) => return e,
        };
        pos += len;
        if line.is_empty() {
            return Framing::Pdu(pos);
        }
    }
    Framing::NotPdu
}

/// The line at the front of `rest` (without CR LF) and its length with them; NeedMore or
/// NotPdu when no LF comes within `max` bytes.
fn next_line(rest: &[u8], max: usize) -> Result<(&[u8], usize), Framing> {
    let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = rest.get(..i).unwrap_or_default();
            Ok((line.strip_suffix(b"\r").unwrap_or(line), i + 1))
        }
        None if window.len() > max => Err(Framing::NotPdu),
        None => Err(Framing::NeedMore),
    }
}

/// chunk-size = 1*HEXDIG, then optional BWS and chunk extensions (";" ...), ignored.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_CHUNK_SIZE_DIGITS {
        return None;
    }
    let ext = trim(line.get(digits..)?);
    if !ext.is_empty() && !ext.starts_with(b";") {
        return None;
    }
    line.get(..digits)?.iter().try_fold(0u64, |n, &b| {
        let d = char::from(b).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(d))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanError {
    NeedMore,
    NotHttp,
    TooLong,
    TooManyHeaders,
}

#[derive(Clone, Copy, Debug)]
enum StartLine<'a> {
    Request {
        method: &'a str,
        target: &'a str,
        minor: u8,
    },
    Response {
        status: u16,
        minor: u8,
    },
}

impl StartLine<'_> {
    fn version_minor(self) -> u8 {
        match self {
            StartLine::Request { minor, .. } | StartLine::Response { minor, .. } => minor,
        }
    }
}

/// A located head: start line, the bytes of its field lines, its full length.
struct Scanned<'a> {
    start: StartLine<'a>,
    fields: &'a [u8],
    len: usize,
    bare_lf: bool,
}

fn scan_head(bytes: &[u8], strict: bool) -> Result<Scanned<'_>, ScanError> {
    let (start, start_len, bare_lf) = start_line(bytes, strict)?;
    let mut pos = start_len;
    for _ in 0..=MAX_HEADERS {
        let window = bytes
            .get(pos..MAX_HEAD_LEN.min(bytes.len()))
            .unwrap_or_default();
        let Some(i) = window.iter().position(|&b| b == b'\n') else {
            return Err(if bytes.len() >= MAX_HEAD_LEN {
                ScanError::TooLong
            } else {
                ScanError::NeedMore
            });
        };
        let line = window.get(..i).unwrap_or_default();
        if line.is_empty() || line == b"\r" {
            let fields = bytes.get(start_len..pos).unwrap_or_default();
            return Ok(Scanned {
                start,
                fields,
                len: pos + i + 1,
                bare_lf,
            });
        }
        pos += i + 1;
    }
    Err(ScanError::TooManyHeaders)
}

/// Whether `bytes` begin with `HTTP/` or a known method and a space (`NeedMore` while they are
/// a prefix of one).
fn start_token(bytes: &[u8]) -> Start {
    let tokens = KNOWN_METHODS.iter().map(|method| method.as_bytes());
    let mut need_more = false;
    for token in std::iter::once(b"HTTP/".as_slice()).chain(tokens) {
        let starts = match token {
            b"HTTP/" => bytes.starts_with(token),
            _ => bytes.starts_with(token) && bytes.get(token.len()) == Some(&b' '),
        };
        if starts {
            return Start::Yes;
        }
        let with_space = token.len() + usize::from(token != b"HTTP/");
        if bytes.len() < with_space && token.starts_with(bytes) {
            need_more = true;
        }
    }
    if need_more {
        Start::NeedMore
    } else {
        Start::No
    }
}

/// request-line or status-line (RFC 9112 3, 4), through its LF. Returns the line, its length
/// with the line end, and whether that end was a bare LF.
fn start_line(bytes: &[u8], strict: bool) -> Result<(StartLine<'_>, usize, bool), ScanError> {
    let window = bytes.get(..MAX_START_LINE_LEN).unwrap_or(bytes);
    let (line, complete) = match window.iter().position(|&b| b == b'\n') {
        Some(i) => (window.get(..i).unwrap_or_default(), true),
        None if window.len() == MAX_START_LINE_LEN => return Err(ScanError::NotHttp),
        None => (window, false),
    };
    let (content, bare_lf) = match line.strip_suffix(b"\r") {
        Some(c) => (c, false),
        None => (line, complete),
    };
    let mut c = Cursor {
        rest: content,
        complete,
    };
    let start = if content.starts_with(b"HTTP/") || (!complete && b"HTTP/".starts_with(content)) {
        status_line(&mut c, strict)?
    } else {
        request_line(&mut c, strict)?
    };
    if !complete {
        return Err(ScanError::NeedMore);
    }
    Ok((start, line.len() + 1, bare_lf))
}

fn request_line<'a>(c: &mut Cursor<'a>, strict: bool) -> Result<StartLine<'a>, ScanError> {
    let method = c.take_while(|b| is_tchar(*b));
    if strict && !KNOWN_METHODS.iter().any(|m| m.as_bytes() == method) {
        let prefix = c.at_end()
            && KNOWN_METHODS
                .iter()
                .any(|m| m.as_bytes().starts_with(method));
        return Err(if prefix && !c.complete {
            ScanError::NeedMore
        } else {
            ScanError::NotHttp
        });
    }
    if method.is_empty() {
        return Err(c.fail());
    }
    c.expect(b" ")?;
    let target = c.take_while(u8::is_ascii_graphic);
    if target.is_empty() {
        return Err(c.fail());
    }
    c.expect(b" ")?;
    let minor = version(c)?;
    if !c.rest.is_empty() {
        return Err(ScanError::NotHttp);
    }
    // Both are ASCII (tchar, VCHAR), hence UTF-8.
    let method = std::str::from_utf8(method).map_err(|_| ScanError::NotHttp)?;
    let target = std::str::from_utf8(target).map_err(|_| ScanError::NotHttp)?;
    Ok(StartLine::Request {
        method,
        target,
        minor,
    })
}

fn status_line<'a>(c: &mut Cursor<'a>, strict: bool) -> Result<StartLine<'a>, ScanError> {
    let minor = version(c)?;
    c.expect(b" ")?;
    let digits = c.take_while(u8::is_ascii_digit);
    if digits.len() != 3 {
        return Err(if digits.len() < 3 && c.at_end() {
            c.fail()
        } else {
            ScanError::NotHttp
        });
    }
    let status = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) && strict {
        return Err(ScanError::NotHttp);
    }
    // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), after SP; "HTTP/1.1 200" is tolerated.
    if !c.rest.is_empty() {
        c.expect(b" ")?;
        let printable = |b: &u8| *b == b'\t' || *b == b' ' || b.is_ascii_graphic() || *b >= 0x80;
        if strict && !c.rest.iter().all(printable) {
            return Err(ScanError::NotHttp);
        }
    }
    Ok(StartLine::Response { status, minor })
}

/// HTTP-version for 1.x: "HTTP/1." DIGIT.
fn version(c: &mut Cursor<'_>) -> Result<u8, ScanError> {
    c.expect(b"HTTP/1.")?;
    match c.rest.split_first() {
        Some((&d, rest)) if d.is_ascii_digit() => {
            c.rest = rest;
            Ok(d - b'0')
        }
        Some(_) => Err(ScanError::NotHttp),
        None => Err(c.fail()),
    }
}

/// Reads a line whose end may not have arrived yet: running out of bytes is NeedMore then.
struct Cursor<'a> {
    rest: &'a [u8],
    complete: bool,
}

impl<'a> Cursor<'a> {
    fn take_while(&mut self, f: impl Fn(&u8) -> bool) -> &'a [u8] {
        let n = self.rest.iter().take_while(|b| f(b)).count();
        let (taken, rest) = self.rest.split_at_checked(n).unwrap_or((self.rest, &[]));
        self.rest = rest;
        taken
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// The error for input that stopped short: NeedMore unless the line is complete.
    fn fail(&self) -> ScanError {
        if self.complete || !self.at_end() {
            ScanError::NotHttp
        } else {
            ScanError::NeedMore
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Result<(), ScanError> {
        if let Some(rest) = self.rest.strip_prefix(lit) {
            self.rest = rest;
            Ok(())
        } else if !self.complete && lit.starts_with(self.rest) {
            Err(ScanError::NeedMore)
        } else {
            Err(ScanError::NotHttp)
        }
    }
}

enum Line<'a> {
    Field {
        name: &'a [u8],
        value: &'a [u8],
    },
    /// obs-fold: a line starting with SP or HTAB continues the previous field.
    Fold(&'a [u8]),
    Malformed,
}

/// The field lines of a head (each ending in LF), with whether each ended in a bare LF.
fn field_lines(fields: &[u8]) -> impl Iterator<Item = (Line<'_>, bool)> {
    fields
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|raw| {
            let (line, bare_lf) = match raw.strip_suffix(b"\r") {
                Some(l) => (l, false),
                None => (raw, true),
            };
            (classify_line(line), bare_lf)
        })
}

fn classify_line(line: &[u8]) -> Line<'_> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Line::Fold(trim(line));
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Line::Malformed;
    };
    let (name, value) = line.split_at_checked(colon).unwrap_or((line, &[]));
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Line::Malformed;
    }
    Line::Field {
        name,
        value: trim(value.get(1..).unwrap_or_default()),
    }
}

/// tchar (RFC 9110 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Strips OWS (SP / HTAB) from both ends.
fn trim(s: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;
    use crate::ntlm::{self, NtlmMessage};

    /// Fixtures in tests/fixtures/http/: one direction of a TCP stream, reassembled with
    /// `tshark -r F -q -z follow,tcp,raw,N` (cut after the first message where noted).
    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/http/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// Splits a direction into messages with `frame`, as the sensor's reassembly would.
    fn messages(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let Framing::Pdu(n) = frame(bytes) else {
                panic!("no frame: {:?}", frame(bytes))
            };
            let (m, rest) = bytes.split_at(n);
            out.push(m);
            bytes = rest;
        }
        out
    }

    fn request_parts<'a>(h: &HttpHead<'a>) -> (&'a str, &'a str, Option<&'a str>) {
        match h.kind {
            HeadKind::Request {
                method,
                target,
                host,
            } => (method.0, target, host),
            HeadKind::Response { .. } => panic!("not a request"),
        }
    }

    fn status(h: &HttpHead<'_>) -> u16 {
        match h.kind {
            HeadKind::Response { status } => status,
            HeadKind::Request { .. } => panic!("not a response"),
        }
    }

    // arkime/tests/pcap/ntlm_synthetic.pcap tcp.stream 3 (frames 44, 46, 48, 50): GET with
    // "Authorization: NTLM <NEGOTIATE>", 401 with "WWW-Authenticate: NTLM <CHALLENGE>",
    // GET with "Authorization: NTLM <AUTHENTICATE>" (tshark: user dave, domain HTTPDOM, host
    // HTTPHOST), 200 with Content-Length 3.
    #[test]
    fn synthetic_ntlm_over_http() {
        let client = fixture("synthetic_ntlm_client.bin");
        let reqs = messages(&client);
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert_eq!(is_pdu_start(r), Start::Yes);
        }
        let h = parse_head(reqs[1]).unwrap();
        assert_eq!(
            request_parts(&h),
            ("GET", "/protected/index.html", Some("srv.example.com"))
        );
        assert_eq!(
            (h.version_minor, h.header_count, h.head_len),
            (1, 3, reqs[1].len())
        );
        assert_eq!(h.auth.len(), 1);
        let a = &h.auth[0];
        assert_eq!(
            (a.header, a.scheme),
            (AuthHeader::Authorization, AuthScheme::Ntlm)
        );
        assert!(a.is_ntlmssp());
        let Ok(NtlmMessage::Authenticate(auth)) = ntlm::parse(a.token.bytes().unwrap()) else {
            panic!("not an AUTHENTICATE")
        };
        assert_eq!(
            (auth.user.as_str(), auth.domain.as_str()),
            ("dave", "HTTPDOM")
        );
        assert_eq!(h.anomalies, HttpAnomalies::default());

        let server = fixture("synthetic_ntlm_server.bin");
        let resps = messages(&server);
        assert_eq!(resps.len(), 2);
        let h = parse_head(resps[0]).unwrap();
        assert_eq!(status(&h), 401);
        assert_eq!(h.content_length, Some(0));
        let a = &h.auth[0];
        assert_eq!(
            (a.header, a.scheme),
            (AuthHeader::WwwAuthenticate, AuthScheme::Ntlm)
        );
        let Ok(NtlmMessage::Challenge(c)) = ntlm::parse(a.token.bytes().unwrap()) else {
            panic!("not a CHALLENGE")
        };
        assert_eq!(c.target_name, "HTTPTGT");
        assert_eq!(parse_head(resps[1]).unwrap().content_length, Some(3));
    }

    // arkime/tests/pcap/ntlm_synthetic.pcap tcp.stream 4 (frames 58-64): the same with
    // "Negotiate" carrying raw NTLMSSP (no SPNEGO); tshark shows user eve, domain HTTP6DOM.
    #[test]
    fn synthetic_negotiate_over_http() {
        let client = fixture("synthetic_negotiate_client.bin");
        let reqs = messages(&client);
        let h = parse_head(reqs[1]).unwrap();
        let a = &h.auth[0];
        assert_eq!(a.scheme, AuthScheme::Negotiate);
        let Ok(NtlmMessage::Authenticate(auth)) = ntlm::parse(a.token.bytes().unwrap()) else {
            panic!("not an AUTHENTICATE")
        };
        assert_eq!(
            (auth.user.as_str(), auth.domain.as_str()),
            ("eve", "HTTP6DOM")
        );
        let server = fixture("synthetic_negotiate_server.bin");
        assert_eq!(messages(&server).len(), 2);
    }

    // OTRF-Security-Datasets .../covenant_psremoting_command_2020-08-06115603.cap tcp.stream 0
    // (frames 5 and 7): WinRM POST /wsman with "Authorization: Kerberos <AP-REQ GSS token>"
    // (2368-byte head) and "HTTP/1.1 200 " (empty reason) with "WWW-Authenticate: Kerberos
    // <AP-REP>". tshark: http.authorization starts "Kerberos YIIGQAYJKoZIhvcSAQICAQBu".
    #[test]
    fn winrm_kerberos() {
        let req = fixture("winrm_kerberos_request_head.bin");
        assert_eq!(frame(&req), Framing::Pdu(req.len()));
        let h = parse_head(&req).unwrap();
        assert_eq!(
            request_parts(&h),
            (
                "POST",
                "/wsman?PSVersion=5.1.18362.752",
                Some("workstation6:5985")
            )
        );
        assert_eq!(h.content_length, Some(0));
        let a = &h.auth[0];
        assert_eq!(a.scheme, AuthScheme::Kerberos);
        let token = a.token.bytes().unwrap();
        // GSS-API InitialContextToken: [APPLICATION 0] with the Kerberos OID 1.2.840.113554.1.2.2.
        assert_eq!(token.first(), Some(&0x60));
        assert!(
            token
                .windows(11)
                .any(|w| w == [6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 1, 2, 2])
        );

        let resp = fixture("winrm_kerberos_response_head.bin");
        assert_eq!(is_pdu_start(&resp), Start::Yes);
        let h = parse_head(&resp).unwrap();
        assert_eq!(status(&h), 200);
        assert_eq!(h.auth[0].header, AuthHeader::WwwAuthenticate);
        assert_eq!(h.auth[0].scheme, AuthScheme::Kerberos);
        assert!(h.auth[0].token.bytes().is_some());
    }

    // OTRF-Security-Datasets .../covenant_dcsync_dcerpc_drsuapi_DsGetNCChanges_2020-08-05020926.cap
    // frames 1 and 3 (tcp.stream 0): GET (no body) and an IIS "Transfer-Encoding: chunked"
    // response of one 0x95-byte chunk; tshark: http.transfer_encoding "chunked".
    #[test]
    fn chunked_response() {
        let req = fixture("dcsync_request.bin");
        assert_eq!(frame(&req), Framing::Pdu(req.len()));
        let resp = fixture("dcsync_chunked_response.bin");
        assert_eq!(frame(&resp), Framing::Pdu(resp.len()));
        let h = parse_head(&resp).unwrap();
        assert!(h.chunked && h.content_length.is_none());
        for n in 0..resp.len() {
            assert_eq!(frame(&resp[..n]), Framing::NeedMore, "prefix {n}");
        }
        // The same body with a trailer field.
        let mut with_trailer = resp[..resp.len() - 2].to_vec();
        with_trailer.extend_from_slice(b"X-Trailer: 1\r\n\r\n");
        assert_eq!(frame(&with_trailer), Framing::Pdu(with_trailer.len()));
    }

    // zeek/testing/btest/Traces/dce-rpc/mapi.pcap tcp.stream 0: frames 107 (HTTP/1.0 200,
    // Content-Length 10784, gzip body) and 178 (404, Content-Length 546), one direction; and
    // the GET of frame 123 (tshark: http.host webmail.aol.com, uri /@iconURL@).
    #[test]
    fn mapi_pcap_http() {
        let resps = fixture("mapi_responses.bin");
        let msgs = messages(&resps);
        assert_eq!(msgs.len(), 2);
        let h = parse_head(msgs[0]).unwrap();
        assert_eq!(
            (status(&h), h.version_minor, h.content_length),
            (200, 0, Some(10784))
        );
        assert_eq!(status(&parse_head(msgs[1]).unwrap()), 404);
        let req = fixture("mapi_request.bin");
        let msgs = messages(&req);
        let h = parse_head(msgs[0]).unwrap();
        assert_eq!(
            request_parts(&h),
            ("GET", "/@iconURL@", Some("webmail.aol.com"))
        );
        assert!(h.auth.is_empty());
    }

    // Hand-written heads from here on.

    #[test]
    fn www_authenticate_offers() {
        let head = b"HTTP/1.1 401 Unauthorized\r\n\
            WWW-Authenticate: Negotiate\r\n\
            WWW-Authenticate: NTLM\r\n\
            WWW-Authenticate: Basic realm=\"a, b\", charset=\"UTF-8\", Digest realm=\"x\", nonce=\"y\"\r\n\
            Content-Length: 0\r\n\r\n";
        let h = parse_head(head).unwrap();
        let schemes: Vec<_> = h.auth.iter().map(|a| (a.scheme, a.token.clone())).collect();
        assert_eq!(
            schemes,
            [
                (AuthScheme::Negotiate, Token::Absent),
                (AuthScheme::Ntlm, Token::Absent),
                (AuthScheme::Basic, Token::Params),
                (AuthScheme::Other("Digest"), Token::Params),
            ]
        );
        assert!(h.auth.iter().all(|a| !a.cleartext_password));
        assert_eq!(frame(head), Framing::Pdu(head.len()));
    }

    #[test]
    fn basic_keeps_user_only() {
        // "alice:s3cr:et" in base64.
        let head =
            b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U6czNjcjpldA==\r\n\r\n";
        let h = parse_head(head).unwrap();
        let a = &h.auth[0];
        assert_eq!(a.basic_user.as_deref(), Some("alice"));
        assert!(a.cleartext_password);
        assert_eq!(a.token, Token::Withheld);
        assert!(!format!("{h:?}").contains("s3cr"));
        let h = parse_head(b"GET / HTTP/1.1\r\nAuthorization: Basic ab!\r\n\r\n").unwrap();
        assert_eq!(
            (&h.auth[0].token, h.auth[0].cleartext_password),
            (&Token::Params, false)
        );
        let h = parse_head(b"GET / HTTP/1.1\r\nAuthorization: Basic abcde\r\n\r\n").unwrap();
        assert_eq!(
            (&h.auth[0].token, h.auth[0].cleartext_password),
            (&Token::BadBase64, false)
        );
    }

    #[test]
    fn bad_tokens_are_not_errors() {
        let long = "A".repeat(MAX_TOKEN_B64_LEN + 4);
        let head = format!(
            "GET / HTTP/1.1\r\nAuthorization: NTLM T!!!\r\nProxy-Authorization: Negotiate {long}\r\n\
             Authorization: NTLM TlRMT\r\n\r\n"
        );
        let h = parse_head(head.as_bytes()).unwrap();
        assert_eq!(h.auth[0].token, Token::Params);
        assert_eq!(
            (h.auth[1].header, &h.auth[1].token),
            (AuthHeader::ProxyAuthorization, &Token::TooLong)
        );
        assert_eq!(h.auth[2].token, Token::BadBase64);
    }

    #[test]
    fn tolerated_oddities() {
        let head = b"GET /x HTTP/1.0\nHost: a\nHost: b\nbad line\nName : v\n\
            Authorization: NTLM\n TlRMTVNTUAABAAAABwIAAg==\nContent-Length: 5\nTransfer-Encoding: chunked\n\n";
        let h = parse_head(head).unwrap();
        let an = h.anomalies;
        assert!(
            an.bare_lf
                && an.obs_fold
                && an.malformed_field_line
                && an.duplicate_host
                && an.te_and_cl
        );
        assert_eq!(request_parts(&h).2, Some("a"));
        assert!(h.auth[0].is_ntlmssp(), "folded token: {:?}", h.auth[0]);
        assert!(h.chunked);
        // TE wins over CL: the body is chunked, and none has arrived.
        assert_eq!(frame(head), Framing::NeedMore);
    }

    #[test]
    fn body_rules() {
        let r = |s: &str| frame(s.as_bytes());
        assert_eq!(
            r("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
            Framing::Pdu(47)
        );
        assert_eq!(r("HTTP/1.1 100 Continue\r\n\r\n"), Framing::Pdu(25));
        assert_eq!(r("HTTP/1.1 200 OK\r\n\r\n"), Framing::Pdu(UNTIL_CLOSE));
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Framing::Pdu(UNTIL_CLOSE)
        );
        assert_eq!(
            r("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Framing::NotPdu
        );
        assert_eq!(r("POST / HTTP/1.1\r\n\r\n"), Framing::Pdu(19));
        assert_eq!(
            r("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n"),
            Framing::Pdu(44)
        );
        assert_eq!(
            r("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n"),
            Framing::NotPdu
        );
        assert_eq!(
            r("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Framing::NotPdu
        );
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(frame_response(head, true), Framing::Pdu(head.len()));
        assert_eq!(frame_response(head, false), Framing::Pdu(head.len() + 7));
    }

    #[test]
    fn start_lines() {
        for yes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"RPC_IN_DATA /rpc/rpcproxy.dll?h:593 HTTP/1.1\r\n",
            b"HTTP/1.1 401 Unauthorized\r\n",
            b"HTTP/1.0 200\n",
            b"OPTIONS * HTTP/1.1\r\n",
        ] {
            assert_eq!(is_pdu_start(yes), Start::Yes, "{yes:?}");
            for n in 0..yes.len() {
                assert_eq!(
                    is_pdu_start(&yes[..n]),
                    Start::NeedMore,
                    "{yes:?} prefix {n}"
                );
            }
        }
        for no in [
            &b"FOO / HTTP/1.1\r\n"[..],
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n",
            b"PRI * HTTP/2.0\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 999 X\r\n",
            b"get / HTTP/1.1\r\n",
            b"GET / HTTP/1.1 x\r\n",
            b"GET /\x01 HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00",
            b"\r\n",
        ] {
            assert_eq!(is_pdu_start(no), Start::No, "{no:?}");
        }
        // The lenient frame accepts any method token; is_pdu_start does not.
        assert_eq!(frame(b"PROPFIND / HTTP/1.1\r\n\r\n"), Framing::Pdu(23));
        assert_eq!(frame(b"\x16\x03\x01\x02\x00"), Framing::NotPdu);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n"),
            Err(HttpError::Incomplete)
        );
        assert_eq!(parse_head(b"xx\r\n\r\n"), Err(HttpError::BadStartLine));
    }

    #[test]
    fn every_prefix() {
        for name in [
            "synthetic_ntlm_client.bin",
            "winrm_kerberos_response_head.bin",
        ] {
            let all = fixture(name);
            let Framing::Pdu(first) = frame(&all) else {
                panic!()
            };
            for n in 0..first {
                assert_eq!(frame(&all[..n]), Framing::NeedMore);
                assert_ne!(is_pdu_start(&all[..n]), Start::No);
                assert!(parse_head(&all[..n]).is_err());
            }
        }
    }

    #[test]
    fn hostile_heads() {
        // Huge Content-Length: a length, not an allocation; past u64 it is not a number.
        let head = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n";
        let expected = usize::try_from(u64::MAX)
            .ok()
            .and_then(|n| n.checked_add(head.len()));
        assert_eq!(frame(head), expected.map_or(Framing::NotPdu, Framing::Pdu));
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"),
            Framing::NotPdu
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Framing::NotPdu
        );
        // Endless chunk list: given up after MAX_CHUNKS.
        let mut chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..MAX_CHUNKS + 5 {
            chunks.extend_from_slice(b"1\r\nx\r\n");
        }
        assert_eq!(frame(&chunks), Framing::NotPdu);
        chunks.truncate(200);
        assert_eq!(frame(&chunks), Framing::NeedMore);
        // Chunk sizes that overflow, or are not hex.
        let r = |s: &[u8]| {
            frame(
                &[
                    &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                    s,
                ]
                .concat(),
            )
        };
        assert_eq!(r(b"fffffffffffffffff\r\n"), Framing::NotPdu);
        assert_eq!(r(b"zz\r\n"), Framing::NotPdu);
        // 16 digits parse, but no buffer ends that far; 13 digits is merely more to wait for.
        assert_eq!(r(b"ffffffffffffffff\r\n"), Framing::NotPdu);
        assert_eq!(r(b"fffffffffffff\r\n"), Framing::NeedMore);
        assert_eq!(r(b"1\r\nxy"), Framing::NotPdu);
        // A field line without end.
        let mut endless = b"GET / HTTP/1.1\r\nX: ".to_vec();
        endless.resize(MAX_HEAD_LEN - 1, b'a');
        assert_eq!(frame(&endless), Framing::NeedMore);
        endless.resize(MAX_HEAD_LEN + 10, b'a');
        assert_eq!(frame(&endless), Framing::NotPdu);
        assert_eq!(parse_head(&endless), Err(HttpError::HeadTooLong));
        // A start line without end.
        let long_line = vec![b'G'; MAX_START_LINE_LEN + 1];
        assert_eq!(is_pdu_start(&long_line), Start::No);
        // 100k field lines (500 kB): the count bound stops the scan first.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..100_000 {
            many.extend_from_slice(b"a:b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(frame(&many), Framing::NotPdu);
        assert_eq!(parse_head(&many), Err(HttpError::TooManyHeaders));
        // Exactly MAX_HEADERS is fine.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..MAX_HEADERS {
            many.extend_from_slice(b"a:\n");
        }
        many.extend_from_slice(b"\n");
        assert_eq!(parse_head(&many).map(|h| h.header_count), Ok(MAX_HEADERS));
        assert_eq!(frame(&many), Framing::Pdu(many.len()));
        // More auth offers than MAX_AUTH_TOKENS.
        let offers = "NTLM, ".repeat(MAX_AUTH_TOKENS + 3);
        let head = format!("HTTP/1.1 401 X\r\nWWW-Authenticate: {offers}\r\n\r\n");
        let h = parse_head(head.as_bytes()).unwrap();
        assert_eq!(h.auth.len(), MAX_AUTH_TOKENS);
        assert!(h.anomalies.too_many_auth_tokens);
    }
}
