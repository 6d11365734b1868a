//! Windows security events forwarded by a SIEM over syslog, in the four layouts Microsoft
//! Defender for Identity's standalone sensor accepts (reference/002, "Configure event
//! collection": RSA Security Analytics, HP ArcSight CEF, Splunk, QRadar), for the events it
//! reads (reference/004): 4726 4728 4729 4730 4732 4733 4743 4753 4756 4757 4758 4763 4776
//! 7045 8004.
//!
//! ```text
//! message  = [syslog-header] layout                       ; header: RFC 5424, RFC 3164 or none
//! RSA      = "RsaSA" SEP time SEP event-id SEP provider SEP log SEP computer SEP user SEP
//!            source-host SEP ntlm-result                   ; SEP: LF (or CRLF, or a literal "\n")
//! CEF      = "CEF:0|" vendor "|" product "|" version "|" signature-id "|" name "|" severity "|"
//!            extension                                    ; key=value, `\=` `\\` `\n` escaped
//!            ; externalId rt cat shost dhost duser, csN/csNLabel "EventSource" and
//!            ; "Reason or Error Code"
//! Splunk   = *(key "=" value CRLF) "Message=" event-text   ; EventCode Logfile SourceName
//!            ; TimeGenerated (yyyyMMddHHmmss.ffffff±UUU) ComputerName
//! QRadar   = "AgentDevice=WindowsLog" *(TAB key "=" value) TAB "Message=" event-text
//!            ; AgentLogFile Source Computer EventID TimeGenerated (Unix ms or CIM datetime)
//! event-text = the event's rendered message: "Label:  value" lines under section labels
//!            ("Subject:", "Member:", "Group:", "Target Account:", ...), or the same flattened
//!            onto one line
//! ```
//!
//! Liberal in what it reads: keys and labels in any case and order, CR/LF/TAB or the literal
//! two-character `\n`, `\r\n`, `\t` as separators, extra keys ignored. What a field of the layout
//! says wins over what the event text says (the text only fills gaps).
//!
//! The event's time ([`WinEvent::time_ms`]) comes from the layout's own time field (RSA's second
//! field, CEF `rt`, Splunk's and QRadar's `TimeGenerated`: the time the DC wrote the event, to
//! the millisecond); when that is absent or unreadable, from an RFC 5424 header's TIMESTAMP;
//! otherwise it is `None` and the caller decides ([`WinEvent::time_source`] says which, and an
//! RFC 3164 header's yearless time is in [`SyslogHeader::bsd_time`]).

mod header;
mod layouts;
mod text;
pub mod time;

use std::borrow::Cow;

pub use header::{
    BsdTime, HeaderForm, MAX_PRI, MAX_SD_ELEMENTS, MAX_TAG_LEN, SyslogHeader, split as split_header,
};
pub use layouts::{CefMessage, cef_message};

use crate::framing::Framing;

/// Longest message read, header included. Windows events render to a few KiB; NXLog and
/// rsyslog default to 64 KiB for a syslog message too. Longer input is refused whole, so a
/// hostile sender cannot make a scan cost more than this.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Key/value pairs read from one message (CEF extension, Splunk or QRadar keys, RSA fields).
/// A forwarded event carries 10 to 40; further pairs are ignored and flagged.
pub const MAX_FIELDS: usize = 128;

/// `Label:` occurrences read in an event's text. The longest of the 15 events (4728 and kin)
/// has about 15; the rest is ignored and flagged.
pub const MAX_TEXT_LABELS: usize = 64;

/// Digits in an RFC 6587 octet count: 64 KiB needs 5; a sixth digit already exceeds
/// [`MAX_MESSAGE_LEN`], so more is not a count worth waiting for.
pub const MAX_OCTET_COUNT_DIGITS: usize = 6;

/// Why bytes are not a forwarded Windows event. Anything that still yields an event is an
/// anomaly on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WinEventError {
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes, more than the {MAX_MESSAGE_LEN} read")]
    TooLong(usize),
    #[error("message is not UTF-8")]
    NotUtf8,
    #[error("not one of the RSA, CEF, Splunk or QRadar layouts")]
    UnknownLayout,
    #[error("{0:?} layout without an event id")]
    MissingEventId(Layout),
    #[error("{0:?} layout with an event id that is not a number")]
    BadEventId(Layout),
}

/// Which of the four SIEM layouts the message is in (reference/002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `RsaSA` and LF-separated fields in a fixed order.
    Rsa,
    /// ArcSight Common Event Format.
    Cef,
    /// Splunk's `EventCode=` … `Message=` lines.
    Splunk,
    /// QRadar's `AgentDevice=WindowsLog` tab-separated pairs.
    Qradar,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA_SECURITY_ANALYTICS",
            Self::Cef => "ARCSIGHT_CEF",
            Self::Splunk => "SPLUNK",
            Self::Qradar => "QRADAR",
        }
    }
}

/// A Windows event ID. Open: any id parses; the 15 dcwatch reads have names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub u32);

impl EventId {
    pub const USER_ACCOUNT_DELETED: Self = Self(4726);
    pub const GLOBAL_GROUP_MEMBER_ADDED: Self = Self(4728);
    pub const GLOBAL_GROUP_MEMBER_REMOVED: Self = Self(4729);
    pub const GLOBAL_GROUP_DELETED: Self = Self(4730);
    pub const LOCAL_GROUP_MEMBER_ADDED: Self = Self(4732);
    pub const LOCAL_GROUP_MEMBER_REMOVED: Self = Self(4733);
    pub const COMPUTER_ACCOUNT_DELETED: Self = Self(4743);
    pub const DISTRIBUTION_GLOBAL_GROUP_DELETED: Self = Self(4753);
    pub const UNIVERSAL_GROUP_MEMBER_ADDED: Self = Self(4756);
    pub const UNIVERSAL_GROUP_MEMBER_REMOVED: Self = Self(4757);
    pub const UNIVERSAL_GROUP_DELETED: Self = Self(4758);
    pub const DISTRIBUTION_UNIVERSAL_GROUP_DELETED: Self = Self(4763);
    pub const CREDENTIAL_VALIDATION: Self = Self(4776);
    pub const SERVICE_INSTALLED: Self = Self(7045);
    pub const NTLM_AUTHENTICATION_AUDIT: Self = Self(8004);

    /// The 15 events of reference/004, in id order.
    pub const KNOWN: [Self; 15] = [
        Self::USER_ACCOUNT_DELETED,
        Self::GLOBAL_GROUP_MEMBER_ADDED,
        Self::GLOBAL_GROUP_MEMBER_REMOVED,
        Self::GLOBAL_GROUP_DELETED,
        Self::LOCAL_GROUP_MEMBER_ADDED,
        Self::LOCAL_GROUP_MEMBER_REMOVED,
        Self::COMPUTER_ACCOUNT_DELETED,
        Self::DISTRIBUTION_GLOBAL_GROUP_DELETED,
        Self::UNIVERSAL_GROUP_MEMBER_ADDED,
        Self::UNIVERSAL_GROUP_MEMBER_REMOVED,
        Self::UNIVERSAL_GROUP_DELETED,
        Self::DISTRIBUTION_UNIVERSAL_GROUP_DELETED,
        Self::CREDENTIAL_VALIDATION,
        Self::SERVICE_INSTALLED,
        Self::NTLM_AUTHENTICATION_AUDIT,
    ];

    /// The first line Windows writes for the event (without its full stop).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            4726 => "A user account was deleted",
            4728 => "A member was added to a security-enabled global group",
            4729 => "A member was removed from a security-enabled global group",
            4730 => "A security-enabled global group was deleted",
            4732 => "A member was added to a security-enabled local group",
            4733 => "A member was removed from a security-enabled local group",
            4743 => "A computer account was deleted",
            4753 => "A security-disabled global group was deleted",
            4756 => "A member was added to a security-enabled universal group",
            4757 => "A member was removed from a security-enabled universal group",
            4758 => "A security-enabled universal group was deleted",
            4763 => "A security-disabled universal group was deleted",
            4776 => "The computer attempted to validate the credentials for an account",
            7045 => "A service was installed in the system",
            8004 => "NTLM authentication to this domain controller (Restrict NTLM audit)",
            _ => return None,
        })
    }

    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

/// An NTSTATUS, as 4776's "Error Code" (and RSA's and CEF's NTLM result) gives it. Open: any
/// code parses; those the 4776 documentation lists have names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NtStatus(pub u32);

impl NtStatus {
    pub const SUCCESS: Self = Self(0);
    pub const NO_SUCH_USER: Self = Self(0xC000_0064);
    pub const WRONG_PASSWORD: Self = Self(0xC000_006A);
    pub const LOGON_FAILURE: Self = Self(0xC000_006D);
    pub const ACCOUNT_RESTRICTION: Self = Self(0xC000_006E);
    pub const INVALID_LOGON_HOURS: Self = Self(0xC000_006F);
    pub const INVALID_WORKSTATION: Self = Self(0xC000_0070);
    pub const PASSWORD_EXPIRED: Self = Self(0xC000_0071);
    pub const ACCOUNT_DISABLED: Self = Self(0xC000_0072);
    pub const ACCOUNT_EXPIRED: Self = Self(0xC000_0193);
    pub const PASSWORD_MUST_CHANGE: Self = Self(0xC000_0224);
    pub const ACCOUNT_LOCKED_OUT: Self = Self(0xC000_0234);
    pub const NO_SECRETS: Self = Self(0xC000_0371);

    /// The code's name in [MS-ERREF] 2.3.1.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SUCCESS => "STATUS_SUCCESS",
            Self::NO_SUCH_USER => "STATUS_NO_SUCH_USER",
            Self::WRONG_PASSWORD => "STATUS_WRONG_PASSWORD",
            Self::LOGON_FAILURE => "STATUS_LOGON_FAILURE",
            Self::ACCOUNT_RESTRICTION => "STATUS_ACCOUNT_RESTRICTION",
            Self::INVALID_LOGON_HOURS => "STATUS_INVALID_LOGON_HOURS",
            Self::INVALID_WORKSTATION => "STATUS_INVALID_WORKSTATION",
            Self::PASSWORD_EXPIRED => "STATUS_PASSWORD_EXPIRED",
            Self::ACCOUNT_DISABLED => "STATUS_ACCOUNT_DISABLED",
            Self::ACCOUNT_EXPIRED => "STATUS_ACCOUNT_EXPIRED",
            Self::PASSWORD_MUST_CHANGE => "STATUS_PASSWORD_MUST_CHANGE",
            Self::ACCOUNT_LOCKED_OUT => "STATUS_ACCOUNT_LOCKED_OUT",
            Self::NO_SECRETS => "STATUS_NO_SECRETS",
            _ => return None,
        })
    }
}

/// Where [`WinEvent::time_ms`] came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// The layout's own field: when the DC wrote the event.
    Event,
    /// An RFC 5424 header's TIMESTAMP: when the forwarder sent it.
    SyslogHeader,
    /// Neither: `time_ms` is `None`.
    #[default]
    None,
}

/// An account as an event names it; every part optional (`-` in the event reads as absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountName<'a> {
    pub name: Option<Cow<'a, str>>,
    pub domain: Option<Cow<'a, str>>,
    pub sid: Option<Cow<'a, str>>,
}

impl AccountName<'_> {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.domain.is_none() && self.sid.is_none()
    }
}

/// Parsed but odd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// The layout has a time field but it was absent.
    pub event_time_missing: bool,
    /// The time field was there but in no format read.
    pub event_time_unreadable: bool,
    /// A key given twice; the first one counts.
    pub duplicate_field: bool,
    /// More than [`MAX_FIELDS`] pairs or [`MAX_TEXT_LABELS`] labels; the rest was ignored.
    pub too_many_fields: bool,
    /// A field the layout requires was absent (RSA's nine, CEF's externalId/rt/cat/dhost...).
    pub missing_fields: bool,
    /// RSA: more than nine fields (the rest is read as event text).
    pub extra_fields: bool,
    /// CEF: a backslash before a character CEF does not escape (kept as is).
    pub bad_escape: bool,
    /// Two fields give different event ids (CEF signature id and externalId, QRadar EventID and
    /// EventIDCode); the layout's main one counts.
    pub event_id_mismatch: bool,
    /// The NTLM result code is not a hex or decimal number.
    pub status_unreadable: bool,
}

impl Anomalies {
    /// Each flag with its name, for the activity's `anomalies` list.
    pub fn flags(&self) -> [(bool, &'static str); 9] {
        [
            (self.event_time_missing, "event_time_missing"),
            (self.event_time_unreadable, "event_time_unreadable"),
            (self.duplicate_field, "duplicate_field"),
            (self.too_many_fields, "too_many_fields"),
            (self.missing_fields, "missing_fields"),
            (self.extra_fields, "extra_fields"),
            (self.bad_escape, "bad_escape"),
            (self.event_id_mismatch, "event_id_mismatch"),
            (self.status_unreadable, "status_unreadable"),
        ]
    }
}

/// One forwarded event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WinEvent<'a> {
    pub header: SyslogHeader<'a>,
    pub layout: Option<Layout>,
    pub event_id: EventId,
    /// Unix milliseconds, UTC (see the module documentation for where it comes from).
    pub time_ms: Option<u64>,
    pub time_source: TimeSource,
    /// The computer that logged the event: the DC.
    pub computer: Option<Cow<'a, str>>,
    /// The event provider (`Microsoft-Windows-Security-Auditing`, `Service Control Manager`).
    pub provider: Option<Cow<'a, str>>,
    /// The event log (`Security`, `System`, `Microsoft-Windows-NTLM/Operational`).
    pub log_name: Option<Cow<'a, str>>,
    /// Who did it ("Subject:").
    pub subject: AccountName<'a>,
    /// The account acted on: "Target Account:" (4726), "Target Computer:" (4743), the "Logon
    /// Account" of 4776, the "User name"/"Domain name" of 8004, CEF `duser`, RSA's user.
    pub target: AccountName<'a>,
    /// "Group:" or "Deleted Group:".
    pub group: AccountName<'a>,
    /// "Member:" (its name is usually a distinguished name).
    pub member: AccountName<'a>,
    pub service_name: Option<Cow<'a, str>>,
    pub service_file: Option<Cow<'a, str>>,
    pub service_type: Option<Cow<'a, str>>,
    pub service_start_type: Option<Cow<'a, str>>,
    pub service_account: Option<Cow<'a, str>>,
    pub authentication_package: Option<Cow<'a, str>>,
    /// 4776 "Error Code", RSA's NTLM result, CEF's "Reason or Error Code", as written.
    pub status: Option<Cow<'a, str>>,
    /// [`Self::status`] as a number (`0x0`, `0xC000006A`).
    pub status_code: Option<NtStatus>,
    /// The client: 4776 "Source Workstation", 8004 "Workstation name", CEF `shost`, RSA's
    /// source host.
    pub workstation: Option<Cow<'a, str>>,
    /// 8004 "Secure Channel name": the server the client authenticated to.
    pub server: Option<Cow<'a, str>>,
    pub anomalies: Anomalies,
}

/// Reads one syslog message: the header, then the layout it is in.
///
/// The bytes are one UDP datagram or one RFC 6587 frame's content (without the octet count or
/// the trailing newline). An id outside the 15 still parses ([`EventId::is_known`]).
pub fn parse(bytes: &[u8]) -> Result<WinEvent<'_>, WinEventError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(WinEventError::TooLong(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| WinEventError::NotUtf8)?;
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        return Err(WinEventError::Empty);
    }
    let (header, message) = header::split(text);
    let message = message.trim_start();
    let mut event = WinEvent {
        header,
        ..WinEvent::default()
    };
    let layout = layouts::detect(message).ok_or(WinEventError::UnknownLayout)?;
    event.layout = Some(layout);
    let fields = layouts::read(layout, message, &mut event);
    finish(event, fields, layout)
}

/// What the layout gave that needs a second look: the id and time as written, the event text.
#[derive(Debug, Default)]
struct Raw<'a> {
    event_id: Option<Cow<'a, str>>,
    /// A second id to cross-check (CEF signature id, QRadar EventIDCode).
    other_event_id: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    text: Option<Cow<'a, str>>,
}

fn finish<'a>(
    mut event: WinEvent<'a>,
    raw: Raw<'a>,
    layout: Layout,
) -> Result<WinEvent<'a>, WinEventError> {
    let id_text = raw
        .event_id
        .as_deref()
        .or(raw.other_event_id.as_deref())
        .ok_or(WinEventError::MissingEventId(layout))?;
    let id = event_id(id_text).ok_or(WinEventError::BadEventId(layout))?;
    event.event_id = EventId(id);
    if let Some(other) = raw.other_event_id.as_deref()
        && event_id(other) != Some(id)
    {
        event.anomalies.event_id_mismatch = true;
    }
    if let Some(text) = raw.text {
        text::read(text, &mut event);
    }
    split_domain(&mut event.target);
    split_domain(&mut event.subject);
    match raw.time.as_deref() {
        Some(written) => match time::date_time(written) {
            Some(ms) => {
                event.time_ms = Some(ms);
                event.time_source = TimeSource::Event;
            }
            None => event.anomalies.event_time_unreadable = true,
        },
        None => event.anomalies.event_time_missing = true,
    }
    if event.time_ms.is_none() && event.header.time_ms.is_some() {
        event.time_ms = event.header.time_ms;
        event.time_source = TimeSource::SyslogHeader;
    }
    if let Some(status) = event.status.as_deref() {
        event.status_code = status_code(status).map(NtStatus);
        event.anomalies.status_unreadable = event.status_code.is_none();
    }
    Ok(event)
}

/// An event id: decimal, or what follows the last `:` (`Microsoft-Windows-Security-Auditing:4776`).
fn event_id(text: &str) -> Option<u32> {
    let text = text.trim();
    let digits = text.rsplit_once(':').map_or(text, |(_, id)| id).trim();
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `0xC000006A` or `3221225578`.
fn status_code(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// `DOMAIN\user` in a name field with no domain of its own: split it.
fn split_domain(account: &mut AccountName<'_>) {
    if account.domain.is_some() {
        return;
    }
    let Some(name) = account.name.take() else {
        return;
    };
    let split = match &name {
        Cow::Borrowed(text) => text
            .split_once('\\')
            .map(|(domain, user)| (Cow::Borrowed(domain), Cow::Borrowed(user))),
        Cow::Owned(text) => text
            .split_once('\\')
            .map(|(domain, user)| (Cow::Owned(domain.to_owned()), Cow::Owned(user.to_owned()))),
    };
    match split {
        Some((domain, user)) if !domain.is_empty() && !user.is_empty() => {
            account.domain = Some(domain);
            account.name = Some(user);
        }
        _ => account.name = Some(name),
    }
}

/// RFC 6587 3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, MSG-LEN = NONZERO-DIGIT *DIGIT.
/// `Pdu(n)`: the frame is the first `n` bytes, count and space included.
pub fn octet_counted_frame(bytes: &[u8]) -> Framing {
    let digits = bytes
        .iter()
        .take(MAX_OCTET_COUNT_DIGITS + 1)
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits > MAX_OCTET_COUNT_DIGITS {
        return Framing::NotPdu;
    }
    match bytes.get(digits) {
        None => return Framing::NeedMore,
        Some(b' ') if digits > 0 && bytes.first() != Some(&b'0') => {}
        Some(_) => return Framing::NotPdu,
    }
    let mut len = 0usize;
    for byte in bytes.iter().take(digits) {
        len = len * 10 + usize::from(byte - b'0');
    }
    Framing::Pdu(digits + 1 + len)
}

/// RFC 6587 3.4.2 non-transparent framing: the frame ends at LF (or NUL, which some senders
/// use). `Pdu(n)`: the message is `bytes[..n - 1]`, the trailer is the `n`th byte.
pub fn newline_frame(bytes: &[u8]) -> Framing {
    match bytes.iter().position(|byte| matches!(byte, b'\n' | b'\0')) {
        Some(end) => Framing::Pdu(end + 1),
        None => Framing::NeedMore,
    }
}

/// Which RFC 6587 framing a TCP connection uses, from its first byte: a digit starts an octet
/// count, anything else a newline-terminated message (`<PRI>`, or a bare layout).
pub fn is_octet_counted(first: u8) -> bool {
    first.is_ascii_digit()
}

/// A field value: trimmed, `-` and empty read as absent.
fn value(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "-" {
        return None;
    }
    Some(match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests;
