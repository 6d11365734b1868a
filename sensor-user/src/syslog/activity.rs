//! A parsed event as a `windows_event` activity.

use std::{borrow::Cow, net::SocketAddr};

use dcwatch_parsers::winevent::{AccountName, EventId, Layout, NtStatus, TimeSource, WinEvent};
use dcwatch_proto::v1::{
    Account, Activity, EventAccount, WindowsEventActivity, activity::Body, windows_event_activity,
};

use dcwatch_pipeline::activity::{Seen, flag_names, outcome};

/// The activity for `event`, received from `peer` on `local` at `received_ns`.
///
/// `time` is the event's own time where the message had one, else the RFC 5424 header's, else
/// `received_ns` (an RFC 3164 header's time has no year or zone and is not used).
pub fn activity(
    event: &WinEvent<'_>,
    peer: SocketAddr,
    local: SocketAddr,
    received_ns: u64,
) -> Activity {
    const NS_PER_MS: u64 = 1_000_000;
    let (time_ns, time_source) = match (event.time_ms, event.time_source) {
        (Some(ms), TimeSource::Event) => (
            ms.saturating_mul(NS_PER_MS),
            windows_event_activity::TimeSource::EventTime,
        ),
        (Some(ms), _) => (
            ms.saturating_mul(NS_PER_MS),
            windows_event_activity::TimeSource::SyslogHeaderTime,
        ),
        (None, _) => (
            received_ns,
            windows_event_activity::TimeSource::ReceivedTime,
        ),
    };
    let seen = Seen {
        time_ns,
        src: peer,
        dst: local,
        tcp: false,
    };
    let body = WindowsEventActivity {
        r#type: windows_event_activity::Type::Event.into(),
        event_id: event.event_id.0,
        event_name: event.event_id.name().unwrap_or_default().to_owned(),
        layout: layout(event.layout).into(),
        time_source: time_source.into(),
        computer: text(event.computer.as_ref()),
        provider: text(event.provider.as_ref()),
        log_name: text(event.log_name.as_ref()),
        subject: account(&event.subject),
        target: account(&event.target),
        group: account(&event.group),
        member: account(&event.member),
        service_name: text(event.service_name.as_ref()),
        service_file: text(event.service_file.as_ref()),
        service_type: text(event.service_type.as_ref()),
        service_start_type: text(event.service_start_type.as_ref()),
        service_account: text(event.service_account.as_ref()),
        authentication_package: text(event.authentication_package.as_ref()),
        status: event.status_code.unwrap_or_default().0,
        has_status: event.status_code.is_some(),
        workstation: text(event.workstation.as_ref()),
        server: text(event.server.as_ref()),
        syslog_host: event.header.hostname.unwrap_or_default().to_owned(),
        syslog_app: event.header.app.unwrap_or_default().to_owned(),
        anomalies: flag_names(event.anomalies.flags()),
    };
    let mut activity = seen.activity(Body::WindowsEvent(body));
    let acted_on = if event.target.is_empty() {
        &event.member
    } else {
        &event.target
    };
    if !acted_on.is_empty() {
        activity.account = Some(Account {
            domain: text(acted_on.domain.as_ref()),
            name: text(acted_on.name.as_ref()),
            sid: text(acted_on.sid.as_ref()),
            tags: Vec::new(),
        });
    }
    if event.event_id == EventId::CREDENTIAL_VALIDATION
        && let Some(code) = event.status_code
    {
        activity.outcome = Some(outcome(code == NtStatus::SUCCESS, code.0, code.name()));
    }
    activity
}

fn text(value: Option<&Cow<'_, str>>) -> String {
    value
        .map(|value| value.as_ref().to_owned())
        .unwrap_or_default()
}

fn account(account: &AccountName<'_>) -> Option<EventAccount> {
    (!account.is_empty()).then(|| EventAccount {
        name: text(account.name.as_ref()),
        domain: text(account.domain.as_ref()),
        sid: text(account.sid.as_ref()),
    })
}

fn layout(layout: Option<Layout>) -> windows_event_activity::Layout {
    use windows_event_activity::Layout as Proto;
    match layout {
        Some(Layout::Rsa) => Proto::RsaSecurityAnalytics,
        Some(Layout::Cef) => Proto::ArcsightCef,
        Some(Layout::Splunk) => Proto::Splunk,
        Some(Layout::Qradar) => Proto::Qradar,
        None => Proto::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_parsers::winevent;

    use super::*;

    fn activity_of(message: &str) -> Activity {
        let event = winevent::parse(message.as_bytes()).expect("an event");
        activity(
            &event,
            "10.0.0.9:5000".parse().expect("address"),
            "10.0.0.1:514".parse().expect("address"),
            7_000_000_000,
        )
    }

    fn body(activity: &Activity) -> &WindowsEventActivity {
        match &activity.body {
            Some(Body::WindowsEvent(body)) => body,
            other => panic!("not a Windows event: {other:?}"),
        }
    }

    #[test]
    fn a_failed_validation_has_its_outcome_and_account() {
        let activity = activity_of(
            "CEF:0|a|b|c|d|e|f|externalId=4776 rt=1426218619123 cat=Security dhost=DC1 duser=CORP\\\\bob shost=WKS cs4=0xC0000234 cs4Label=Reason or Error Code",
        );
        let body = body(&activity);
        assert_eq!(body.event_id, 4776);
        assert_eq!(body.status, 0xC000_0234);
        assert!(body.has_status);
        assert_eq!(
            body.time_source(),
            windows_event_activity::TimeSource::EventTime
        );
        assert_eq!(
            activity
                .time
                .as_ref()
                .map(|time| (time.seconds, time.nanos)),
            Some((1_426_218_619, 123_000_000))
        );
        let account = activity.account.as_ref().expect("account");
        assert_eq!(
            (account.domain.as_str(), account.name.as_str()),
            ("CORP", "bob")
        );
        let outcome = activity.outcome.as_ref().expect("outcome");
        assert_eq!(outcome.name, "STATUS_ACCOUNT_LOCKED_OUT");
    }

    #[test]
    fn the_member_is_the_account_and_no_time_means_received() {
        let activity = activity_of(
            "<13>Feb 11 00:00:00 relay EventCode=4728\nComputerName=DC1\nMessage=Member: Security ID: S-1-5-21-1-2-3-1104 Account Name: CN=bob Group: Group Name: Domain Admins",
        );
        let body = body(&activity);
        assert_eq!(
            body.time_source(),
            windows_event_activity::TimeSource::ReceivedTime
        );
        assert_eq!(activity.time.as_ref().map(|time| time.seconds), Some(7));
        assert_eq!(
            activity
                .account
                .as_ref()
                .map(|account| account.name.as_str()),
            Some("CN=bob")
        );
        assert_eq!(
            body.group.as_ref().map(|group| group.name.as_str()),
            Some("Domain Admins")
        );
        assert_eq!(body.syslog_host, "relay");
        assert!(activity.outcome.is_none());
        assert!(body.anomalies.contains(&"event_time_missing".to_owned()));
    }
}
