//! The four layouts of reference/002: which one a message is in, and its fields.

use std::borrow::Cow;

use super::{Anomalies, Layout, MAX_FIELDS, Raw, WinEvent, value};

/// Fields of a [`WinEvent`] a layout key or an event-text label can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    EventId,
    OtherEventId,
    Time,
    Text,
    Computer,
    Provider,
    LogName,
    SubjectName,
    SubjectDomain,
    SubjectSid,
    TargetName,
    TargetDomain,
    TargetSid,
    GroupName,
    GroupDomain,
    GroupSid,
    MemberName,
    MemberSid,
    ServiceName,
    ServiceFile,
    ServiceType,
    ServiceStartType,
    ServiceAccount,
    AuthenticationPackage,
    Status,
    Workstation,
    Server,
}

/// Fills `field` unless it already holds a value. `strict`: a second value is an anomaly (two
/// keys of the layout), rather than the event text repeating a key.
pub(super) fn set<'a>(
    event: &mut WinEvent<'a>,
    raw: &mut Raw<'a>,
    field: Field,
    text: Cow<'a, str>,
    strict: bool,
) {
    let Some(text) = value(text) else {
        return;
    };
    let slot = match field {
        Field::EventId => &mut raw.event_id,
        Field::OtherEventId => &mut raw.other_event_id,
        Field::Time => &mut raw.time,
        Field::Text => &mut raw.text,
        Field::Computer => &mut event.computer,
        Field::Provider => &mut event.provider,
        Field::LogName => &mut event.log_name,
        Field::SubjectName => &mut event.subject.name,
        Field::SubjectDomain => &mut event.subject.domain,
        Field::SubjectSid => &mut event.subject.sid,
        Field::TargetName => &mut event.target.name,
        Field::TargetDomain => &mut event.target.domain,
        Field::TargetSid => &mut event.target.sid,
        Field::GroupName => &mut event.group.name,
        Field::GroupDomain => &mut event.group.domain,
        Field::GroupSid => &mut event.group.sid,
        Field::MemberName => &mut event.member.name,
        Field::MemberSid => &mut event.member.sid,
        Field::ServiceName => &mut event.service_name,
        Field::ServiceFile => &mut event.service_file,
        Field::ServiceType => &mut event.service_type,
        Field::ServiceStartType => &mut event.service_start_type,
        Field::ServiceAccount => &mut event.service_account,
        Field::AuthenticationPackage => &mut event.authentication_package,
        Field::Status => &mut event.status,
        Field::Workstation => &mut event.workstation,
        Field::Server => &mut event.server,
    };
    if slot.is_some() {
        event.anomalies.duplicate_field |= strict;
        return;
    }
    *slot = Some(text);
}

/// Which layout `message` (the text after the syslog header) is in.
pub(super) fn detect(message: &str) -> Option<Layout> {
    let bytes = message.as_bytes();
    if bytes
        .get(..5)
        .is_some_and(|head| head.eq_ignore_ascii_case(b"RsaSA"))
    {
        return Some(Layout::Rsa);
    }
    if bytes
        .get(..4)
        .is_some_and(|head| head.eq_ignore_ascii_case(b"CEF:"))
    {
        return Some(Layout::Cef);
    }
    // Whichever key comes first: an event text may quote the other layout's key.
    match (
        find_key(message, "AgentDevice="),
        find_key(message, "EventCode="),
    ) {
        (Some(qradar), Some(splunk)) if splunk < qradar => Some(Layout::Splunk),
        (Some(_), _) => Some(Layout::Qradar),
        (None, Some(_)) => Some(Layout::Splunk),
        (None, None) => None,
    }
}

/// Where `key` (ending in `=`) starts `text` or first follows a non-alphanumeric byte, in any
/// case.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let key = key.as_bytes();
    bytes
        .windows(key.len())
        .enumerate()
        .position(|(at, window)| {
            window.eq_ignore_ascii_case(key)
                && (at == 0
                    || bytes
                        .get(at - 1)
                        .is_some_and(|byte| !byte.is_ascii_alphanumeric()))
        })
}

/// Reads the layout's fields into `event`; returns what [`super::finish`] still needs.
pub(super) fn read<'a>(layout: Layout, message: &'a str, event: &mut WinEvent<'a>) -> Raw<'a> {
    let mut raw = Raw::default();
    match layout {
        Layout::Rsa => rsa(message, event, &mut raw),
        Layout::Cef => cef(message, event, &mut raw),
        Layout::Splunk => splunk(message, event, &mut raw),
        Layout::Qradar => qradar(message, event, &mut raw),
    }
    raw
}

/// RSA's fields, in order after `RsaSA` (reference/002).
const RSA_FIELDS: [Field; 8] = [
    Field::Time,
    Field::EventId,
    Field::Provider,
    Field::LogName,
    Field::Computer,
    Field::TargetName,
    Field::Workstation,
    Field::Status,
];

/// `RsaSA SEP time SEP id SEP provider SEP log SEP computer SEP user SEP host SEP result`: the
/// separator is LF (CR before it dropped), or the literal `\n` when no LF is there.
fn rsa<'a>(message: &'a str, event: &mut WinEvent<'a>, raw: &mut Raw<'a>) {
    let separator = if message.contains('\n') { "\n" } else { "\\n" };
    let mut parts = message.splitn(RSA_FIELDS.len() + 2, separator).skip(1);
    let mut seen = 0;
    for field in RSA_FIELDS {
        let Some(part) = parts.next() else {
            break;
        };
        seen += 1;
        set(
            event,
            raw,
            field,
            Cow::Borrowed(part.trim_end_matches('\r')),
            true,
        );
    }
    if seen < RSA_FIELDS.len() {
        event.anomalies.missing_fields = true;
    }
    if let Some(extra) = parts.next() {
        event.anomalies.extra_fields = true;
        set(event, raw, Field::Text, Cow::Borrowed(extra), true);
    }
}

/// Extension keys of ArcSight's Windows events (reference/002, and the CEF key dictionary).
fn cef_key(key: &str) -> Option<Field> {
    const KEYS: [(&str, Field); 15] = [
        ("externalId", Field::EventId),
        ("rt", Field::Time),
        ("cat", Field::LogName),
        ("shost", Field::Workstation),
        ("dhost", Field::Computer),
        ("dvchost", Field::Computer),
        ("duser", Field::TargetName),
        ("dntdom", Field::TargetDomain),
        ("duid", Field::TargetSid),
        ("suser", Field::SubjectName),
        ("sntdom", Field::SubjectDomain),
        ("suid", Field::SubjectSid),
        ("msg", Field::Text),
        ("sproc", Field::ServiceName),
        ("filePath", Field::ServiceFile),
    ];
    KEYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, field)| *field)
}

/// Labels of CEF custom fields (`csN=value csNLabel=label`): the two reference/002 requires and
/// the event-text labels, so a connector that maps those into custom fields is read too.
fn custom_label(label: &str) -> Option<Field> {
    let label = label.trim().trim_end_matches(':').trim();
    if label.eq_ignore_ascii_case("EventSource") {
        return Some(Field::Provider);
    }
    if label.eq_ignore_ascii_case("Reason or Error Code") {
        return Some(Field::Status);
    }
    super::text::flat_label(label)
}

/// Custom-field slots kept while the extension is read: cs1..cs6, cn1..cn3, flexString1..2.
const CUSTOM_SLOTS: usize = 11;

/// The slot of a custom key (`cs3` → 2) and whether it is the label (`cs3Label`).
fn custom_slot(key: &str) -> Option<(usize, bool)> {
    let lower = key.to_ascii_lowercase();
    let (stem, is_label) = match lower.strip_suffix("label") {
        Some(stem) => (stem, true),
        None => (lower.as_str(), false),
    };
    let (base, number) = if let Some(number) = stem.strip_prefix("cs") {
        (0, number)
    } else if let Some(number) = stem.strip_prefix("cn") {
        (6, number)
    } else if let Some(number) = stem.strip_prefix("flexstring") {
        (9, number)
    } else {
        return None;
    };
    let number: usize = number.parse().ok()?;
    let limit = match base {
        0 => 6,
        6 => 3,
        _ => 2,
    };
    (1..=limit)
        .contains(&number)
        .then(|| (base + number - 1, is_label))
}

/// `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`
/// (ArcSight CEF 23). Header fields escape `|` and `\`; extension values escape `=`, `\`, and
/// write line breaks as `\n`, `\r`.
fn cef<'a>(message: &'a str, event: &mut WinEvent<'a>, raw: &mut Raw<'a>) {
    let Some(after) = message.get(4..) else {
        return;
    };
    let (header, extension) = cef_header(after);
    if let Some(signature) = header.get(4) {
        set(
            event,
            raw,
            Field::OtherEventId,
            Cow::Borrowed(signature),
            true,
        );
    }
    if header.len() < 7 {
        event.anomalies.missing_fields = true;
    }
    let mut custom: [(Option<Cow<'a, str>>, Option<&'a str>); CUSTOM_SLOTS] =
        std::array::from_fn(|_| (None, None));
    let mut count = 0;
    for (key, raw_value) in pairs(extension, |byte| byte == b' ', None) {
        count += 1;
        if count > MAX_FIELDS {
            event.anomalies.too_many_fields = true;
            break;
        }
        let text = unescape_cef(raw_value, &mut event.anomalies);
        if let Some((slot, is_label)) = custom_slot(key) {
            if let Some(entry) = custom.get_mut(slot) {
                if is_label {
                    entry.1 = Some(raw_value);
                } else {
                    entry.0 = Some(text);
                }
            }
            continue;
        }
        if let Some(field) = cef_key(key) {
            set(event, raw, field, text, true);
        }
    }
    for (text, label) in custom {
        if let (Some(text), Some(field)) = (text, label.and_then(custom_label)) {
            set(event, raw, field, text, true);
        }
    }
    let required = [
        raw.event_id.is_some(),
        raw.time.is_some(),
        event.log_name.is_some(),
        event.computer.is_some(),
    ];
    if required.contains(&false) {
        event.anomalies.missing_fields = true;
    }
}

/// Any CEF message read whole: the seven header fields and the extension's pairs, unescaped,
/// in order. Windows events are read by [`super::parse`]; this serves other CEF (dcwatch's own
/// alerts, read back in tests and by tools).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CefMessage<'a> {
    /// `CEF:0`, vendor, product, version, signature id, name, severity.
    pub header: Vec<Cow<'a, str>>,
    /// At most [`MAX_FIELDS`] pairs; `too_many_fields` says when more were ignored.
    pub extension: Vec<(&'a str, Cow<'a, str>)>,
    pub anomalies: Anomalies,
}

impl CefMessage<'_> {
    /// The first value of `key` (case-sensitive, as CEF keys are).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.as_ref())
    }

    /// The value of the custom field labelled `label` (`csN=value csNLabel=label`).
    pub fn custom(&self, label: &str) -> Option<&str> {
        let (key, _) = self
            .extension
            .iter()
            .find(|(key, value)| key.ends_with("Label") && value == label)?;
        self.get(key.strip_suffix("Label")?)
    }
}

/// Reads a CEF message (`CEF:` first, no syslog header); `None` when it is not CEF.
pub fn cef_message(message: &str) -> Option<CefMessage<'_>> {
    let after = message
        .get(..4)
        .filter(|head| head.eq_ignore_ascii_case("CEF:"))
        .and_then(|_| message.get(4..))?;
    let (fields, extension) = cef_header(after);
    let mut read = CefMessage::default();
    if fields.len() < 7 {
        read.anomalies.missing_fields = true;
    }
    read.header = fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let field = unescape_header(field);
            if index == 0 {
                Cow::Owned(format!("CEF:{field}"))
            } else {
                field
            }
        })
        .collect();
    for (key, raw_value) in pairs(extension, |byte| byte == b' ', None) {
        if read.extension.len() == MAX_FIELDS {
            read.anomalies.too_many_fields = true;
            break;
        }
        let value = unescape_cef(raw_value, &mut read.anomalies);
        read.extension.push((key, value));
    }
    Some(read)
}

/// A header field's escapes: `\\` and `\|`.
fn unescape_header(field: &str) -> Cow<'_, str> {
    if !field.contains('\\') {
        return Cow::Borrowed(field);
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(escaped @ ('\\' | '|'))) => {
                out.push(escaped);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Header fields before the 7th unescaped `|` (escapes left in: only the signature id is used,
/// and it has none), and the extension after it.
fn cef_header(text: &str) -> (Vec<&str>, &str) {
    let mut fields = Vec::with_capacity(7);
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'\\' => at += 1,
            b'|' => {
                fields.push(text.get(start..at).unwrap_or_default());
                start = at + 1;
                if fields.len() == 7 {
                    return (fields, text.get(start..).unwrap_or_default().trim());
                }
            }
            _ => {}
        }
        at += 1;
    }
    (fields, "")
}

/// CEF extension value escapes: `\=` `\\` `\|` literal, `\n` `\r` line breaks.
fn unescape_cef<'a>(value: &'a str, anomalies: &mut Anomalies) -> Cow<'a, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(escaped @ ('=' | '\\' | '|')) => out.push(escaped),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                anomalies.bad_escape = true;
                out.push('\\');
                out.push(other);
            }
            None => {
                anomalies.bad_escape = true;
                out.push('\\');
            }
        }
    }
    Cow::Owned(out)
}

/// `key=value` pairs where a value runs to the next separator that is followed by a key and an
/// `=`, and `last` (a key, in any case) takes the rest of the text whatever it holds. Keys are
/// letters, digits and `_`, `.`, `[`, `]`; a leading `\` (a mangled separator) is dropped.
fn pairs<'a>(
    text: &'a str,
    is_separator: fn(u8) -> bool,
    last: Option<&'static str>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while bytes.get(at).is_some_and(|byte| is_separator(*byte)) {
            at += 1;
        }
        if at >= bytes.len() {
            return None;
        }
        let key_len = key_at(bytes, at)?;
        let key_start = if bytes.get(at) == Some(&b'\\') {
            at + 1
        } else {
            at
        };
        let key = text.get(key_start..at + key_len)?;
        let value_start = at + key_len + 1;
        let is_last = last.is_some_and(|last| last.eq_ignore_ascii_case(key));
        let value_end = if is_last {
            bytes.len()
        } else {
            next_key(bytes, value_start, is_separator).unwrap_or(bytes.len())
        };
        at = value_end;
        Some((key, text.get(value_start..value_end)?))
    })
}

/// The length of a key at `at` (without its `=`), if a key and `=` are there.
fn key_at(bytes: &[u8], at: usize) -> Option<usize> {
    let skip = usize::from(bytes.get(at) == Some(&b'\\'));
    let len = bytes
        .get(at + skip..)?
        .iter()
        .take_while(|byte| byte.is_ascii_alphanumeric() || b"_.[]".contains(byte))
        .count();
    (len > 0 && bytes.get(at + skip + len) == Some(&b'=')).then_some(skip + len)
}

/// Where the value starting at `from` ends: at the first separator run followed by a key.
fn next_key(bytes: &[u8], from: usize, is_separator: fn(u8) -> bool) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        if bytes.get(at).is_some_and(|byte| is_separator(*byte)) {
            let mut next = at;
            while bytes.get(next).is_some_and(|byte| is_separator(*byte)) {
                next += 1;
            }
            if key_at(bytes, next).is_some() {
                return Some(at);
            }
            at = next;
        } else {
            at += 1;
        }
    }
    None
}

/// Splunk's keys (reference/002) and the other names Splunk's Windows add-on writes.
fn splunk_key(key: &str) -> Option<Field> {
    const KEYS: [(&str, Field); 8] = [
        ("EventCode", Field::EventId),
        ("Logfile", Field::LogName),
        ("LogName", Field::LogName),
        ("SourceName", Field::Provider),
        ("TimeGenerated", Field::Time),
        ("ComputerName", Field::Computer),
        ("Message", Field::Text),
        ("EventID", Field::OtherEventId),
    ];
    KEYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, field)| *field)
}

/// `key=value` lines, CRLF or LF separated (or the literal `\r\n`, `\n`, `\r` when there is no
/// line break at all, as the reference writes them); `Message=` takes the rest.
fn splunk<'a>(message: &'a str, event: &mut WinEvent<'a>, raw: &mut Raw<'a>) {
    let literal = !message.contains('\n');
    let mut rest = message;
    for _ in 0..MAX_FIELDS {
        if rest.is_empty() {
            return;
        }
        let line_start = message.len() - rest.len();
        let (line, after) = if literal {
            literal_line(rest)
        } else {
            real_line(rest)
        };
        rest = after;
        let Some((key, text)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_start_matches('\\');
        if key.eq_ignore_ascii_case("Message") {
            // The value is everything after `Message=`, line breaks and all.
            let start = line_start + line.find('=').map_or(0, |at| at + 1);
            set(
                event,
                raw,
                Field::Text,
                Cow::Borrowed(message.get(start..).unwrap_or(text)),
                true,
            );
            return splunk_required(event, raw);
        }
        if let Some(field) = splunk_key(key) {
            set(
                event,
                raw,
                field,
                Cow::Borrowed(text.trim_end_matches('\r')),
                true,
            );
        }
    }
    event.anomalies.too_many_fields = !rest.is_empty();
    splunk_required(event, raw);
}

fn splunk_required(event: &mut WinEvent<'_>, raw: &Raw<'_>) {
    let required = [
        raw.event_id.is_some(),
        raw.time.is_some(),
        raw.text.is_some(),
        event.computer.is_some(),
    ];
    event.anomalies.missing_fields |= required.contains(&false);
}

/// The first line and what follows its LF.
fn real_line(text: &str) -> (&str, &str) {
    text.split_once('\n').unwrap_or((text, ""))
}

/// The first line when separators are the literal `\r\n`, `\n` or `\r`.
fn literal_line(text: &str) -> (&str, &str) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'\\' && matches!(bytes.get(at + 1), Some(b'n' | b'r')) {
            let mut end = at + 2;
            if bytes.get(at + 1) == Some(&b'r')
                && bytes.get(end) == Some(&b'\\')
                && bytes.get(end + 1) == Some(&b'n')
            {
                end += 2;
            }
            return (
                text.get(..at).unwrap_or_default(),
                text.get(end..).unwrap_or_default(),
            );
        }
        at += 1;
    }
    (text, "")
}

/// QRadar's keys (reference/002).
fn qradar_key(key: &str) -> Option<Field> {
    const KEYS: [(&str, Field); 7] = [
        ("EventID", Field::EventId),
        ("EventIDCode", Field::OtherEventId),
        ("AgentLogFile", Field::LogName),
        ("Source", Field::Provider),
        ("Computer", Field::Computer),
        ("TimeGenerated", Field::Time),
        ("Message", Field::Text),
    ];
    KEYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(key))
        .map(|(_, field)| *field)
}

/// `AgentDevice=WindowsLog TAB key=value ... TAB Message=text`: tabs (or spaces, as the
/// reference's example has them) between pairs, `Message` last and taking the rest.
fn qradar<'a>(message: &'a str, event: &mut WinEvent<'a>, raw: &mut Raw<'a>) {
    let mut count = 0;
    for (key, text) in pairs(
        message,
        |byte| byte == b'\t' || byte == b' ',
        Some("Message"),
    ) {
        count += 1;
        if count > MAX_FIELDS {
            event.anomalies.too_many_fields = true;
            break;
        }
        if let Some(field) = qradar_key(key) {
            set(event, raw, field, Cow::Borrowed(text), true);
        }
    }
    let required = [
        raw.event_id.is_some(),
        raw.time.is_some(),
        event.log_name.is_some(),
        event.computer.is_some(),
    ];
    event.anomalies.missing_fields |= required.contains(&false);
}
