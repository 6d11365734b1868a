//! A parsed event as a `windows_event` activity.

use std::{borrow::Cow, net::SocketAddr};

use dcwatch_parsers::winevent::{AccountName, Layout, TimeSource, WinEvent};
use dcwatch_proto::v1::{
    Account, Activity, EventAccount, WindowsEventActivity, activity::Body, windows_event_activity,
};

use crate::activity::{Seen, flag_names, outcome};

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
        status: event.status_code.unwrap_or_default(),
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
        });
    }
    if event.event_id.0 == 4776
        && let Some(code) = event.status_code
    {
        activity.outcome = Some(outcome(code == 0, code, None));
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
