//! The CEF line of an alert or a health event, in Defender for Identity's layout (DETECTIONS.md
//! "CEF"), and the syslog headers (RFC 5424, RFC 3164) it travels under.
//!
//! ```text
//! CEF:0|dcwatch|dcwatch|VERSION|CLASS|TITLE|3/5/10|start=ISO8601 end=ISO8601 suser=ACCOUNT
//!   shost=SOURCE_COMPUTER dhost=DESTINATION msg=DESCRIPTION externalId=ID cnt=N app=PROTOCOL
//!   outcome=Success|Failure cs1Label=url cs1=CONSOLE_URL cs2Label=trigger cs2=new|update
//!   cs3Label=shostfqdn cs3=FQDN cs4Label=dcwatchAlertId cs4=ALERT_ID
//! ```
//! Header fields escape `\` and `|`; extension values escape `\`, `=` and line breaks (`\n`,
//! `\r`). A key whose value is empty is left out, as MDI does. CEF cannot carry whitespace at
//! either end of a value (a space separates pairs), so values are trimmed: a SIEM would trim
//! them anyway.

use std::fmt::Write as _;

use crate::v1::{
    Alert, AlertEntity, HealthEvent, alert::Trigger, alert_entity::Role, health_event, outcome,
};

/// Device vendor and product in the CEF header.
pub const VENDOR: &str = "dcwatch";
pub const PRODUCT: &str = "dcwatch";

/// RFC 5424's MSGID is at most 32 characters (6.2.7): the class, cut there, as MDI does.
pub const MAX_MSGID: usize = 32;

/// The class of a health event's line.
pub const HEALTH_CLASS: &str = "DcwatchHealthEvent";
/// The class of `dcwatch-backend alerts test-syslog`'s line.
pub const TEST_CLASS: &str = "DcwatchTestMessage";

/// What a line needs besides the alert.
#[derive(Clone, Debug, Default)]
pub struct CefContext<'a> {
    /// dcwatch's version (the header's device version).
    pub version: &'a str,
    /// The console's address for alerts: `{id}` in it is replaced by the alert's id, else the id
    /// is appended. Empty: no `cs1` (there is no console yet).
    pub console_url: &'a str,
}

/// The CEF line (without a syslog header or a line break) of an alert.
pub fn alert_line(alert: &Alert, context: &CefContext<'_>) -> String {
    let mut line = header(
        context.version,
        &alert.class,
        &alert.title,
        severity_number(alert.severity),
    );
    let mut extension = Extension(&mut line);
    if let Some(start) = &alert.start {
        extension.pair("start", &iso8601(start.seconds, start.nanos));
    }
    if let Some(end) = &alert.end {
        extension.pair("end", &iso8601(end.seconds, end.nanos));
    }
    let account = first(alert, Role::SourceAccount).map(|entity| entity.name.as_str());
    extension.pair("suser", account.unwrap_or_default());
    let source = first(alert, Role::SourceComputer);
    let (short, fqdn) = source.map(computer_names).unwrap_or_default();
    extension.pair("shost", short);
    let destination =
        first(alert, Role::DestinationComputer).or_else(|| first(alert, Role::DomainController));
    extension.pair(
        "dhost",
        destination.map(computer_names).unwrap_or_default().0,
    );
    extension.pair("msg", &alert.description);
    extension.pair("externalId", &alert.external_id.to_string());
    extension.pair("cnt", &alert.count.to_string());
    extension.pair("app", &alert.protocol);
    extension.pair(
        "outcome",
        match alert.outcome() {
            outcome::Status::Success => "Success",
            outcome::Status::Failure => "Failure",
            outcome::Status::Unspecified => "",
        },
    );
    if !context.console_url.is_empty() {
        extension.custom(1, "url", &console_url(context.console_url, &alert.id));
    }
    let trigger = match alert.trigger() {
        Trigger::Update => "update",
        Trigger::New | Trigger::Unspecified => "new",
    };
    extension.custom(2, "trigger", trigger);
    extension.custom(3, "shostfqdn", fqdn);
    extension.custom(4, "dcwatchAlertId", &alert.id);
    line
}

/// The CEF line of a sensor's health event: class [`HEALTH_CLASS`], the event's kind as the
/// name, 3 (info), 5 (warning) or 10 (error). A health issue adds its `start` (and `end` once
/// closed), `cs2Label=state cs2=open|closed` and `cs3Label=subject`.
pub fn health_line(sensor_id: &str, event: &HealthEvent, context: &CefContext<'_>) -> String {
    let severity = match event.severity() {
        health_event::Severity::Error => 10,
        health_event::Severity::Warning => 5,
        health_event::Severity::Info | health_event::Severity::Unspecified => 3,
    };
    let mut line = header(context.version, HEALTH_CLASS, &event.kind, severity);
    let mut extension = Extension(&mut line);
    if let Some(time) = &event.time {
        extension.pair("rt", &iso8601(time.seconds, time.nanos));
    }
    // A health issue's span; a point event has neither.
    if let Some(start) = &event.start {
        extension.pair("start", &iso8601(start.seconds, start.nanos));
    }
    if let Some(end) = &event.end {
        extension.pair("end", &iso8601(end.seconds, end.nanos));
    }
    extension.pair("dvchost", sensor_id);
    extension.pair("msg", &event.message);
    extension.custom(1, "kind", &event.kind);
    let state = match event.state() {
        health_event::State::Open => "open",
        health_event::State::Closed => "closed",
        health_event::State::Unspecified => "",
    };
    if !state.is_empty() {
        extension.custom(2, "state", state);
        extension.custom(3, "subject", &event.subject);
    }
    line
}

/// The line `alerts test-syslog` sends.
pub fn test_line(host: &str, unix_ns: i64, context: &CefContext<'_>) -> String {
    let mut line = header(context.version, TEST_CLASS, "dcwatch test message", 3);
    let mut extension = Extension(&mut line);
    let (seconds, nanos) = split_ns(unix_ns);
    extension.pair("rt", &iso8601(seconds, nanos));
    extension.pair("dvchost", host);
    extension.pair(
        "msg",
        &format!(
            "A test message from dcwatch-backend on {host}: this destination receives alerts."
        ),
    );
    line
}

/// CEF's 3/5/10; an unspecified severity is medium.
fn severity_number(severity: i32) -> u8 {
    match severity {
        3 => 3,
        10 => 10,
        _ => 5,
    }
}

fn header(version: &str, class: &str, name: &str, severity: u8) -> String {
    let mut line = String::with_capacity(512);
    line.push_str("CEF:0|");
    for field in [VENDOR, PRODUCT, version, class, name] {
        escape_header(field, &mut line);
        line.push('|');
    }
    let _ = write!(line, "{severity}|");
    line
}

/// The extension being written: pairs separated by one space.
struct Extension<'a>(&'a mut String);

impl Extension<'_> {
    fn pair(&mut self, key: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        if !self.0.ends_with('|') {
            self.0.push(' ');
        }
        self.0.push_str(key);
        self.0.push('=');
        escape_value(value, self.0);
    }

    /// `csNLabel=label csN=value`, as MDI writes them.
    fn custom(&mut self, slot: u8, label: &str, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        self.pair(&format!("cs{slot}Label"), label);
        self.pair(&format!("cs{slot}"), value);
    }
}

/// A header field: `\` and `|` escaped; a line break has no escape there and becomes a space.
pub fn escape_header(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
}

/// An extension value: `\`, `=` escaped, line breaks as `\n` and `\r`.
pub fn escape_value(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
}

fn first(alert: &Alert, role: Role) -> Option<&AlertEntity> {
    alert.entities.iter().find(|entity| {
        entity.role() == role && !(entity.name.is_empty() && entity.address.is_empty())
    })
}

/// A computer's short name (`CLIENT1`) and its FQDN (`client1.corp.example`, empty when only a
/// short name is known); its address when it has no name.
fn computer_names(entity: &AlertEntity) -> (&str, &str) {
    if entity.name.is_empty() {
        return (&entity.address, "");
    }
    match entity.name.split_once('.') {
        Some((short, _)) if !short.is_empty() => (short, &entity.name),
        _ => (&entity.name, ""),
    }
}

fn console_url(template: &str, id: &str) -> String {
    if template.contains("{id}") {
        template.replace("{id}", id)
    } else {
        format!("{template}{id}")
    }
}

/// How the syslog header is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG` (MSGID: the class, cut to 32).
    #[default]
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOST APP[PROCID]: MSG`.
    Rfc3164,
}

/// The syslog header's parts.
#[derive(Clone, Copy, Debug)]
pub struct SyslogHeader<'a> {
    pub format: SyslogFormat,
    /// Facility (0..=23) × 8 + severity (0..=7).
    pub pri: u8,
    pub unix_ns: i64,
    pub hostname: &'a str,
    /// APP-NAME / TAG: `CEF`, as MDI's lines.
    pub app: &'a str,
    pub procid: u32,
    /// The CEF class (RFC 5424's MSGID, cut to [`MAX_MSGID`]).
    pub class: &'a str,
}

/// The syslog severity MDI gives an alert of `severity` (3/5/10): Notice, Warning, Error.
pub fn syslog_severity(cef_severity: u8) -> u8 {
    match cef_severity {
        10.. => 3,
        5..=9 => 4,
        _ => 5,
    }
}

/// The alert's syslog severity under `facility`: `<PRI>`'s value.
pub fn alert_pri(facility: u8, alert: &Alert) -> u8 {
    facility
        .min(23)
        .saturating_mul(8)
        .saturating_add(syslog_severity(severity_number(alert.severity)))
}

/// A health event's `<PRI>` under `facility`: Error, Warning or Informational.
pub fn health_pri(facility: u8, event: &HealthEvent) -> u8 {
    let severity = match event.severity() {
        health_event::Severity::Error => 3,
        health_event::Severity::Warning => 4,
        health_event::Severity::Info | health_event::Severity::Unspecified => 6,
    };
    facility.min(23).saturating_mul(8).saturating_add(severity)
}

/// `message` behind its syslog header. Header fields are printable US-ASCII without spaces
/// (RFC 5424 6): anything else in the host name or the class becomes `_`.
pub fn syslog_message(header: &SyslogHeader<'_>, message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 96);
    let (seconds, nanos) = split_ns(header.unix_ns);
    let host = header_token(header.hostname, 255);
    let app = header_token(header.app, 48);
    match header.format {
        SyslogFormat::Rfc5424 => {
            let msgid = header_token(header.class, MAX_MSGID);
            let time = rfc3339_micros(seconds, nanos);
            let _ = write!(
                out,
                "<{}>1 {time} {host} {app} {} {msgid} - ",
                header.pri, header.procid
            );
        }
        SyslogFormat::Rfc3164 => {
            let civil = Civil::from_unix(seconds);
            let _ = write!(
                out,
                "<{}>{} {:>2} {:02}:{:02}:{:02} {host} {app}[{}]: ",
                header.pri,
                MONTHS
                    .get(civil.month.saturating_sub(1) as usize)
                    .copied()
                    .unwrap_or("Jan"),
                civil.day,
                civil.hour,
                civil.minute,
                civil.second,
                header.procid
            );
        }
    }
    out.push_str(message);
    out
}

/// A header token: printable ASCII (33..=126) kept, the rest `_`, at most `max` characters,
/// `-` (the NILVALUE) when empty.
fn header_token(text: &str, max: usize) -> String {
    let token: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if token.is_empty() {
        "-".to_owned()
    } else {
        token
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn split_ns(unix_ns: i64) -> (i64, i32) {
    let seconds = unix_ns.div_euclid(1_000_000_000);
    let nanos = i32::try_from(unix_ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    (seconds, nanos)
}

/// `2026-12-06T07:01:02.1234567Z`: UTC, with as many fraction digits as the time needs (none,
/// 3, 6 or 9), as the proto3 JSON form writes timestamps.
pub fn iso8601(seconds: i64, nanos: i32) -> String {
    let civil = Civil::from_unix(seconds);
    let mut out = civil.date_time();
    let nanos = nanos.clamp(0, 999_999_999);
    if nanos != 0 {
        if nanos % 1_000_000 == 0 {
            let _ = write!(out, ".{:03}", nanos / 1_000_000);
        } else if nanos % 1_000 == 0 {
            let _ = write!(out, ".{:06}", nanos / 1_000);
        } else {
            let _ = write!(out, ".{nanos:09}");
        }
    }
    out.push('Z');
    out
}

/// RFC 5424's TIMESTAMP: microseconds at most (6.2.3.1 TIME-SECFRAC is 1*6DIGIT).
fn rfc3339_micros(seconds: i64, nanos: i32) -> String {
    let civil = Civil::from_unix(seconds);
    let mut out = civil.date_time();
    let _ = write!(out, ".{:06}Z", nanos.clamp(0, 999_999_999) / 1_000);
    out
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// From Unix seconds (H. Hinnant's `civil_from_days`).
    fn from_unix(seconds: i64) -> Self {
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        let small = |value: i64| u32::try_from(value).unwrap_or(0);
        Self {
            year,
            month: small(month),
            day: small(day),
            hour: small(in_day / 3600),
            minute: small(in_day % 3600 / 60),
            second: small(in_day % 60),
        }
    }

    fn date_time(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_times_match_known_dates() {
        // date -u -d @1519222743 → 2018-02-21T14:19:03Z (MDI's DCSync sample's start).
        assert_eq!(
            iso8601(1_519_222_743, 997_565_600),
            "2018-02-21T14:19:03.997565600Z"
        );
        assert_eq!(iso8601(0, 0), "1970-01-01T00:00:00Z");
        // 2024-02-29 (leap day) 23:59:59 UTC = 1709251199.
        assert_eq!(
            iso8601(1_709_251_199, 5_000_000),
            "2024-02-29T23:59:59.005Z"
        );
        assert_eq!(iso8601(-1, 0), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn escaping_follows_cef() {
        let mut header = String::new();
        escape_header("a|b\\c\nd=e", &mut header);
        assert_eq!(header, "a\\|b\\\\c d=e");
        let mut value = String::new();
        escape_value("a|b\\c\nd=e\r", &mut value);
        assert_eq!(value, "a|b\\\\c\\nd\\=e\\r");
    }

    #[test]
    fn headers_are_rfc5424_and_rfc3164() {
        let header = SyslogHeader {
            format: SyslogFormat::Rfc5424,
            pri: 4 * 8 + 3,
            unix_ns: 1_519_222_743_997_565_600,
            hostname: "backend 1",
            app: "CEF",
            procid: 42,
            class: "RetrieveDataProtectionBackupKeySecurityAlert",
        };
        assert_eq!(
            syslog_message(&header, "CEF:0|x"),
            "<35>1 2018-02-21T14:19:03.997565Z backend_1 CEF 42 RetrieveDataProtectionBackupKeyS - CEF:0|x"
        );
        let bsd = SyslogHeader {
            format: SyslogFormat::Rfc3164,
            unix_ns: 1_709_251_199_000_000_000 - 28 * 86_400_000_000_000,
            ..header
        };
        assert_eq!(
            syslog_message(&bsd, "CEF:0|x"),
            "<35>Feb  1 23:59:59 backend_1 CEF[42]: CEF:0|x"
        );
    }
}
