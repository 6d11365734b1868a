//! Every alert type's CEF line, behind both syslog headers, read back through the sensor's own
//! syslog and CEF parser (`dcwatch_parsers::winevent`): every field comes back as written,
//! hostile values included (pipes, equals signs, backslashes, line breaks, non-ASCII).

use dcwatch_backend::{config::SyslogFormat, outputs::syslog};
use dcwatch_parsers::winevent::{HeaderForm, cef_message, split_header};
use dcwatch_proto::{
    cef::{self, CefContext},
    v1::{Alert, AlertEntity, HealthEvent, alert, alert_entity::Role, health_event, outcome},
};

const HOSTILE_DESCRIPTION: &str =
    "al|ice = admin\\x on WS01 \\= \\n requested\nreplication\r\nfrom DC1 — 日本語 é|=\\";
const HOSTILE_ACCOUNT: &str = "CORP\\al=ice|bob";
const VERSION: &str = "0.1.0";

fn timestamp(seconds: i64, nanos: i32) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds, nanos }
}

fn entity(role: Role, name: &str, address: &str) -> AlertEntity {
    AlertEntity {
        role: role.into(),
        name: name.to_owned(),
        address: address.to_owned(),
        ..AlertEntity::default()
    }
}

fn alert_of(kind: &dcwatch_detect::catalogue::Kind, index: usize) -> Alert {
    Alert {
        id: format!("{}-{index}", kind.type_name),
        r#type: kind.type_name.to_owned(),
        external_id: kind.external_id,
        class: kind.class.to_owned(),
        title: kind.title.to_owned(),
        description: HOSTILE_DESCRIPTION.to_owned(),
        severity: kind.severity.into(),
        category: kind.category.into(),
        mitre: kind.mitre.iter().map(|id| (*id).to_owned()).collect(),
        // 2018-02-21T14:19:03.9975656Z, MDI's DCSync sample's start.
        start: Some(timestamp(1_519_222_743, 997_565_600)),
        end: Some(timestamp(1_519_222_800, 0)),
        status: alert::Status::Open.into(),
        entities: vec![
            entity(Role::SourceAccount, HOSTILE_ACCOUNT, ""),
            entity(Role::SourceComputer, "ws01.corp.example", "10.0.0.5"),
            entity(Role::DomainController, "DC1", "10.0.0.1"),
        ],
        count: u64::try_from(index).unwrap_or(0) + 7,
        trigger: alert::Trigger::Update.into(),
        protocol: "Drsr".to_owned(),
        outcome: outcome::Status::Success.into(),
        ..Alert::default()
    }
}

/// RFC 5424 6: MSGID = 1*32PRINTUSASCII: the class cut to 32 characters, anything outside
/// `!`..`~` replaced (by `_`).
fn msgid(class: &str) -> String {
    class
        .chars()
        .take(32)
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect()
}

fn severity_text(severity: alert::Severity) -> &'static str {
    match severity {
        alert::Severity::Low => "3",
        alert::Severity::High => "10",
        _ => "5",
    }
}

fn check_alert_line(alert: &Alert, format: SyslogFormat) {
    let context = CefContext {
        version: VERSION,
        console_url: "https://console.example/alerts/{id}?tab=evidence",
    };
    let line = cef::alert_line(alert, &context);
    assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
    let message = syslog::message(
        format,
        &line,
        &alert.class,
        cef::alert_pri(4, alert),
        1_519_222_900_123_456_789,
        "backend-1",
    );
    let (header, rest) = split_header(&message);
    match format {
        SyslogFormat::Rfc5424 => {
            assert_eq!(header.form, HeaderForm::Rfc5424);
            assert_eq!(
                header.msgid,
                Some(msgid(&alert.class).as_str()),
                "{message}"
            );
            assert_eq!(header.time_ms, Some(1_519_222_900_123));
        }
        SyslogFormat::Rfc3164 => assert_eq!(header.form, HeaderForm::Rfc3164),
    }
    // Auth (4): Error for high, Warning for medium, Notice for low (MDI's samples).
    let syslog_severity = match alert.severity() {
        alert::Severity::High => 3,
        alert::Severity::Low => 5,
        _ => 4,
    };
    assert_eq!(header.pri, Some(4 * 8 + syslog_severity));
    assert_eq!(header.hostname, Some("backend-1"));
    assert_eq!(header.app, Some("CEF"));
    assert_eq!(header.procid, Some(std::process::id().to_string().as_str()));
    let read = cef_message(rest).expect("a CEF message");
    assert_eq!(
        read.header,
        [
            "CEF:0",
            "dcwatch",
            "dcwatch",
            VERSION,
            alert.class.as_str(),
            alert.title.as_str(),
            severity_text(alert.severity())
        ],
        "{line}"
    );
    let expected = [
        ("start", "2018-02-21T14:19:03.997565600Z"),
        ("end", "2018-02-21T14:20:00Z"),
        ("suser", HOSTILE_ACCOUNT),
        ("shost", "ws01"),
        ("dhost", "DC1"),
        // CEF cannot carry a value's outer whitespace: the writer trims it.
        ("msg", HOSTILE_DESCRIPTION.trim()),
        ("externalId", &alert.external_id.to_string()),
        ("cnt", &alert.count.to_string()),
        ("app", "Drsr"),
        ("outcome", "Success"),
    ];
    for (key, value) in expected {
        assert_eq!(read.get(key), Some(value), "{key} in {line}");
    }
    assert_eq!(
        read.custom("url"),
        Some(format!("https://console.example/alerts/{}?tab=evidence", alert.id).as_str())
    );
    assert_eq!(read.custom("trigger"), Some("update"));
    assert_eq!(read.custom("shostfqdn"), Some("ws01.corp.example"));
    assert_eq!(read.custom("dcwatchAlertId"), Some(alert.id.as_str()));
    assert_eq!(read.extension.len(), expected.len() + 8, "{line}");
    assert!(!read.anomalies.bad_escape && !read.anomalies.too_many_fields);
}

#[test]
fn every_alert_type_reads_back_field_for_field() {
    let kinds = dcwatch_detect::catalogue::ALL;
    assert!(!kinds.is_empty());
    for (index, kind) in kinds.iter().enumerate() {
        let alert = alert_of(kind, index);
        check_alert_line(&alert, SyslogFormat::Rfc5424);
        check_alert_line(&alert, SyslogFormat::Rfc3164);
    }
}

#[test]
fn hostile_header_fields_read_back() {
    let mut alert = alert_of(dcwatch_detect::catalogue::ALL[0], 99);
    alert.class = "Evil|Class\\Name=x é".to_owned();
    alert.title = "A | title \\ with = and ü".to_owned();
    alert.severity = alert::Severity::Low.into();
    check_alert_line(&alert, SyslogFormat::Rfc5424);
    check_alert_line(&alert, SyslogFormat::Rfc3164);
    // A line break has no escape in the header: it becomes a space.
    alert.title = "two\nlines".to_owned();
    let line = cef::alert_line(&alert, &CefContext::default());
    let read = cef_message(&line).expect("CEF");
    assert_eq!(read.header[5], "two lines");
}

#[test]
fn empty_fields_are_left_out_and_an_address_stands_for_a_nameless_computer() {
    let alert = Alert {
        id: "x".to_owned(),
        class: "DcwatchSecurityAlert".to_owned(),
        entities: vec![entity(Role::SourceComputer, "", "10.9.8.7")],
        trigger: alert::Trigger::New.into(),
        ..Alert::default()
    };
    let line = cef::alert_line(&alert, &CefContext::default());
    let read = cef_message(&line).expect("CEF");
    assert_eq!(read.get("shost"), Some("10.9.8.7"));
    assert_eq!(read.get("suser"), None);
    assert_eq!(read.custom("shostfqdn"), None);
    assert_eq!(read.custom("url"), None);
    assert_eq!(read.custom("trigger"), Some("new"));
    assert_eq!(read.get("outcome"), None);
}

#[test]
fn health_events_read_back() {
    let event = HealthEvent {
        time: Some(timestamp(1_519_222_743, 0)),
        severity: health_event::Severity::Error.into(),
        kind: "CAPTURE_LOSS".to_owned(),
        message: "the ring dropped 5% = 1200 packets\non eth1 | mirror".to_owned(),
        ..Default::default()
    };
    let line = cef::health_line("dc1|sensor", &event, &CefContext::default());
    let message = syslog::message(
        SyslogFormat::Rfc5424,
        &line,
        cef::HEALTH_CLASS,
        cef::health_pri(4, &event),
        0,
        "b",
    );
    let (header, rest) = split_header(&message);
    assert_eq!(header.pri, Some(4 * 8 + 3));
    assert_eq!(header.msgid, Some(cef::HEALTH_CLASS));
    let read = cef_message(rest).expect("CEF");
    assert_eq!(read.header[4], cef::HEALTH_CLASS);
    assert_eq!(read.header[5], "CAPTURE_LOSS");
    assert_eq!(read.header[6], "10");
    assert_eq!(read.get("rt"), Some("2018-02-21T14:19:03Z"));
    assert_eq!(read.get("dvchost"), Some("dc1|sensor"));
    assert_eq!(read.get("msg"), Some(event.message.as_str()));
    assert_eq!(read.custom("kind"), Some("CAPTURE_LOSS"));
}
