//! The syslog header in front of a forwarded event: RFC 5424, RFC 3164 (BSD), or none.
//!
//! ```text
//! RFC 5424 6:  SYSLOG-MSG = HEADER SP STRUCTURED-DATA [SP MSG]
//!              HEADER     = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
//!              PRI        = "<" 1*3DIGIT ">"          ; 0..191
//!              STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT ; "[" SD-ID *(SP PARAM="VALUE") "]"
//! RFC 3164 4.1: PRI TIMESTAMP SP HOSTNAME SP TAG [ "[" PID "]" ] ":" SP CONTENT
//!              TIMESTAMP  = Mmm SP dd SP hh:mm:ss     ; day space-padded, no year
//! ```
//! Relays are sloppy (QRadar's own example has no TAG; some strip the PRI), so every part after
//! the PRI is optional and the header ends where the next part does not look like one.

use super::time::{self, CivilTime};

/// Largest PRI: facility 23 × 8 + severity 7 (RFC 5424 6.2.1).
pub const MAX_PRI: u16 = 191;

/// Longest RFC 3164 TAG: the RFC says 32 characters; 48 leaves room for `name[pid]`.
pub const MAX_TAG_LEN: usize = 48;

/// Structured-data elements skipped in an RFC 5424 header. Real senders write one or two
/// (`timeQuality`, `origin`); the bound keeps a hostile header from being a long loop.
pub const MAX_SD_ELEMENTS: usize = 16;

/// The header as far as it was there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyslogHeader<'a> {
    /// Facility × 8 + severity, when a `<PRI>` came first.
    pub pri: Option<u16>,
    /// Which header form it was.
    pub form: HeaderForm,
    /// Unix milliseconds of an RFC 5424 TIMESTAMP (full date and zone).
    pub time_ms: Option<u64>,
    /// An RFC 3164 TIMESTAMP, which has no year: the caller supplies one.
    pub bsd_time: Option<BsdTime>,
    pub hostname: Option<&'a str>,
    /// RFC 3164 TAG or RFC 5424 APP-NAME.
    pub app: Option<&'a str>,
    /// RFC 5424 PROCID, or the `[PID]` of an RFC 3164 TAG.
    pub procid: Option<&'a str>,
    /// RFC 5424 MSGID.
    pub msgid: Option<&'a str>,
}

/// Which syslog header was in front of the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderForm {
    /// No header: the message starts with the event (ArcSight's CEF, a bare forward).
    #[default]
    None,
    /// Only a `<PRI>`.
    PriOnly,
    Rfc3164,
    Rfc5424,
}

/// `Mmm dd hh:mm:ss`: a time without a year or zone (RFC 3164 4.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BsdTime {
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl BsdTime {
    /// Unix milliseconds in `year`, taken as UTC.
    pub fn unix_ms(self, year: i64) -> Option<u64> {
        CivilTime {
            year,
            month: self.month,
            day: self.day,
            hour: self.hour,
            minute: self.minute,
            second: self.second,
            millisecond: 0,
        }
        .unix_ms()
    }
}

/// Splits the header off `text`: the header and the message after it.
pub fn split(text: &str) -> (SyslogHeader<'_>, &str) {
    let mut header = SyslogHeader::default();
    let mut rest = text;
    if let Some((pri, after)) = pri(text) {
        header.pri = Some(pri);
        header.form = HeaderForm::PriOnly;
        rest = after;
        if let Some(after) = rest.strip_prefix("1 ")
            && let Some(message) = rfc5424(after, &mut header)
        {
            return (header, message);
        }
    }
    if let Some(message) = rfc3164(rest, &mut header) {
        return (header, message);
    }
    (header, rest)
}

/// `<PRI>`: 1 to 3 digits, no leading zero but `<0>`, at most [`MAX_PRI`].
fn pri(text: &str) -> Option<(u16, &str)> {
    let inner = text.strip_prefix('<')?;
    let close = inner.find('>').filter(|close| (1..=3).contains(close))?;
    let number = inner.get(..close)?;
    if !number.bytes().all(|byte| byte.is_ascii_digit())
        || (number.len() > 1 && number.starts_with('0'))
    {
        return None;
    }
    let value: u16 = number.parse().ok().filter(|value| *value <= MAX_PRI)?;
    Some((value, inner.get(close + 1..)?))
}

/// The next space-separated token and what follows its space (or nothing at the end).
fn token(text: &str) -> Option<(&str, &str)> {
    match text.split_once(' ') {
        Some((token, rest)) if !token.is_empty() => Some((token, rest)),
        Some(_) => None,
        None if !text.is_empty() => Some((text, "")),
        None => None,
    }
}

/// `-` is RFC 5424's NILVALUE.
fn nil(value: &str) -> Option<&str> {
    (value != "-").then_some(value)
}

/// After `<PRI>1 `: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [SP MSG]. `None` leaves the
/// text to the RFC 3164 attempt.
fn rfc5424<'a>(text: &'a str, header: &mut SyslogHeader<'a>) -> Option<&'a str> {
    let (timestamp, rest) = token(text)?;
    let (hostname, rest) = token(rest)?;
    let (app, rest) = token(rest)?;
    let (procid, rest) = token(rest)?;
    let (msgid, rest) = token(rest)?;
    let rest = structured_data(rest)?;
    header.form = HeaderForm::Rfc5424;
    header.time_ms = nil(timestamp).and_then(time::date_time);
    header.hostname = nil(hostname);
    header.app = nil(app);
    header.procid = nil(procid);
    header.msgid = nil(msgid);
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    Some(message.strip_prefix('\u{feff}').unwrap_or(message))
}

/// Skips STRUCTURED-DATA: `-` or `[id param="value"...]...`, with `\"`, `\\` and `\]` escaped
/// inside values (RFC 5424 6.3.3).
fn structured_data(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix('-') {
        return Some(rest);
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    for _ in 0..MAX_SD_ELEMENTS {
        if bytes.get(at) != Some(&b'[') {
            break;
        }
        at = element_end(bytes, at)?;
    }
    if at == 0 {
        return None;
    }
    text.get(at..)
}

/// The index after the `]` closing the element that starts at `start`.
fn element_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut quoted = false;
    let mut at = start + 1;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\\' if quoted => at += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted => return Some(at + 1),
            _ => {}
        }
        at += 1;
    }
    None
}

/// `Mmm dd hh:mm:ss HOSTNAME [TAG[PID]: ]`; `None` when no timestamp starts `text`.
fn rfc3164<'a>(text: &'a str, header: &mut SyslogHeader<'a>) -> Option<&'a str> {
    let (bsd, rest) = bsd_time(text)?;
    header.form = HeaderForm::Rfc3164;
    header.bsd_time = Some(bsd);
    let rest = rest.trim_start_matches(' ');
    let Some((hostname, after_host)) = token(rest) else {
        return Some(rest);
    };
    if !plausible_host(hostname) {
        // The relay left the host out: what follows the time is the tag or the message.
        return Some(tag(rest, header));
    }
    header.hostname = Some(hostname);
    Some(tag(after_host, header))
}

/// A host name or address: no `=`, `|`, control character or trailing `:`, and not the first
/// word of a layout (`RsaSA`, `CEF:0|...`).
fn plausible_host(token: &str) -> bool {
    let layout_start = token
        .get(..5)
        .is_some_and(|head| head.eq_ignore_ascii_case("RsaSA"))
        || token
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("CEF:"));
    !layout_start
        && !token.ends_with(':')
        && !token.contains(|c: char| c == '=' || c == '|' || c.is_control())
}

/// `TAG[PID]: ` when there is one; CEF's own `CEF:0|` is not a tag, but `CEF[PID]: ` is.
fn tag<'a>(text: &'a str, header: &mut SyslogHeader<'a>) -> &'a str {
    // `:` is ASCII, so its byte position is a character boundary.
    let Some(colon) = text
        .bytes()
        .take(MAX_TAG_LEN + 1)
        .position(|byte| byte == b':')
    else {
        return text;
    };
    let Some(candidate) = text.get(..colon) else {
        return text;
    };
    let (name, pid) = candidate
        .split_once('[')
        .map_or((candidate, None), |(name, pid)| {
            match pid.strip_suffix(']') {
                Some(pid) => (name, Some(pid)),
                None => ("", None),
            }
        });
    let plausible = !name.is_empty()
        && name.len() <= MAX_TAG_LEN
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./".contains(&byte));
    if !plausible || (name.eq_ignore_ascii_case("CEF") && pid.is_none()) {
        return text;
    }
    header.app = Some(name);
    header.procid = pid.filter(|pid| !pid.is_empty());
    let rest = text.get(colon + 1..).unwrap_or_default();
    rest.strip_prefix(' ').unwrap_or(rest)
}

/// `Mmm dd hh:mm:ss ` (day padded with a space or a zero).
fn bsd_time(text: &str) -> Option<(BsdTime, &str)> {
    let month_name = text.get(..3)?;
    if !month_name.bytes().all(|byte| byte.is_ascii_alphabetic()) || text.get(3..4)? != " " {
        return None;
    }
    let month = time::month(month_name)?;
    let day_text = text.get(4..6)?;
    let day: u32 = day_text
        .trim_start_matches([' ', '0'])
        .parse()
        .ok()
        .filter(|day| (1..=31).contains(day))?;
    let clock = text.get(6..16)?;
    let bytes = clock.as_bytes();
    let digit = |at: usize| {
        bytes
            .get(at)
            .filter(|byte| byte.is_ascii_digit())
            .map(|byte| u32::from(byte - b'0'))
    };
    if bytes.first() != Some(&b' ') || bytes.get(3) != Some(&b':') || bytes.get(6) != Some(&b':') {
        return None;
    }
    let bsd = BsdTime {
        month,
        day,
        hour: digit(1)? * 10 + digit(2)?,
        minute: digit(4)? * 10 + digit(5)?,
        second: digit(7)? * 10 + digit(8)?,
    };
    if bsd.hour > 23 || bsd.minute > 59 || bsd.second > 60 {
        return None;
    }
    let rest = text.get(15..)?;
    Some((bsd, rest.strip_prefix(' ').unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_with_tag() {
        let (header, message) =
            split("<13>Feb 11 00:00:00 dc1.corp.example MSWinEventLog[12]: EventCode=4776");
        assert_eq!(header.pri, Some(13));
        assert_eq!(header.form, HeaderForm::Rfc3164);
        assert_eq!(header.hostname, Some("dc1.corp.example"));
        assert_eq!(header.app, Some("MSWinEventLog"));
        assert_eq!(
            header.bsd_time,
            Some(BsdTime {
                month: 2,
                day: 11,
                hour: 0,
                minute: 0,
                second: 0
            })
        );
        assert_eq!(message, "EventCode=4776");
    }

    #[test]
    fn rfc3164_without_tag_as_qradar_sends() {
        // reference/002, QRadar's example.
        let (header, message) =
            split("<13>Feb 11 00:00:00 10.0.0.1 AgentDevice=WindowsLog\tAgentLogFile=Security");
        assert_eq!(header.hostname, Some("10.0.0.1"));
        assert_eq!(header.app, None);
        assert_eq!(message, "AgentDevice=WindowsLog\tAgentLogFile=Security");
    }

    #[test]
    fn rfc3164_day_padding_and_cef_is_no_tag() {
        let (header, message) = split("<134>Mar  3 10:11:12 relay CEF:0|Microsoft|x");
        assert_eq!(header.bsd_time.map(|t| t.day), Some(3));
        assert_eq!(header.hostname, Some("relay"));
        assert_eq!(message, "CEF:0|Microsoft|x");
        assert_eq!(
            header.bsd_time.and_then(|t| t.unix_ms(2026)),
            Some(1_772_532_672_000)
        );
    }

    #[test]
    fn cef_with_a_pid_is_a_tag() {
        let (header, message) = split("<35>Feb  1 23:59:59 backend CEF[42]: CEF:0|dcwatch|x");
        assert_eq!(
            (header.hostname, header.app, header.procid),
            (Some("backend"), Some("CEF"), Some("42"))
        );
        assert_eq!(message, "CEF:0|dcwatch|x");
    }

    #[test]
    fn rfc3164_without_host() {
        let (header, message) = split("<13>Feb 11 00:00:00 RsaSA\n2015-May-19 09:07:09\n4776");
        assert_eq!((header.hostname, header.app), (None, None));
        assert_eq!(message, "RsaSA\n2015-May-19 09:07:09\n4776");
        let (header, message) = split("Feb 11 00:00:00 CEF:0|a");
        assert_eq!(
            (header.form, header.hostname, message),
            (HeaderForm::Rfc3164, None, "CEF:0|a")
        );
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let (header, message) = split(
            "<14>1 2026-11-22T03:04:05.678Z dc1 nxlog 42 - [meta x=\"a\\]b\"][origin ip=\"10.0.0.1\"] \u{feff}RsaSA\n",
        );
        assert_eq!(header.form, HeaderForm::Rfc5424);
        assert_eq!(header.time_ms, Some(1_795_316_645_678));
        assert_eq!(header.hostname, Some("dc1"));
        assert_eq!(header.app, Some("nxlog"));
        assert_eq!((header.procid, header.msgid), (Some("42"), None));
        assert_eq!(message, "RsaSA\n");
        let (header, message) = split("<14>1 - - - - - - EventCode=1");
        assert_eq!(
            (header.form, header.hostname, header.time_ms),
            (HeaderForm::Rfc5424, None, None)
        );
        assert_eq!(message, "EventCode=1");
    }

    #[test]
    fn bare_and_broken_headers() {
        let (header, message) = split("CEF:0|a|b");
        assert_eq!((header.form, message), (HeaderForm::None, "CEF:0|a|b"));
        let (header, message) = split("<999>x");
        assert_eq!((header.pri, message), (None, "<999>x"));
        let (header, message) = split("<7>RsaSA");
        assert_eq!(
            (header.form, header.pri, message),
            (HeaderForm::PriOnly, Some(7), "RsaSA")
        );
        // An unclosed structured-data element: not RFC 5424, left to the layouts.
        let (header, _) = split("<14>1 2026-11-22T03:04:05Z h a p m [x");
        assert_eq!(header.form, HeaderForm::PriOnly);
    }
}
