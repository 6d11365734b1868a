//! Suspicious VPN connection (MDI 2025): a user connecting to the VPN from a device and a
//! location the user's profile never showed. MDI models "the machines users log in to and the
//! locations the users connect from" over a sliding month, after 30 days from the user's first
//! VPN connection and 5 connections in the last 30 days; its scoring is not documented.
//!
//! dcwatch's rule (*ours*): a RADIUS Accounting-Request Start whose Calling-Station-Id (the
//! device) and client location (Tunnel-Client-Endpoint's /24 or /48: no GeoIP) are both new to
//! the user. So a travelling user on a known device, or a known place with a new device, does
//! not alert (MDI's false positives: relocation, travel, a new device).

use dcwatch_proto::v1::alert_entity::Role;

use super::{Context, Detector, Key, Kinds, target::clip};
use crate::finding::account_entity;
use crate::{
    catalogue::SUSPICIOUS_VPN,
    finding::{Finding, account_key},
    learning::{Behaviour, VPN_WINDOW},
    observed::Observed,
    profiling::{VPN_DEVICE, VPN_LOCATION, user_key, vpn_location, vpn_start},
};

#[derive(Debug, Default)]
pub(super) struct SuspiciousVpn;

impl Detector for SuspiciousVpn {
    fn kinds(&self) -> Kinds {
        Kinds::RADIUS
    }

    fn key(&self) -> Key {
        Key::Account
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(radius) = vpn_start(seen) else {
            return;
        };
        let (Some(location), false) = (vpn_location(radius), radius.calling_station_id.is_empty())
        else {
            return;
        };
        let user = user_key(&radius.user_name);
        let Some(profile) = context.profiles.get(&user) else {
            return;
        };
        let device = radius.calling_station_id.as_str();
        if profile.knows(VPN_DEVICE, device) || profile.knows(VPN_LOCATION, &location) {
            return;
        }
        let connections = profile.vpn_connections_since(seen.time.saturating_sub(VPN_WINDOW));
        let name = clip(&radius.user_name);
        let description = format!(
            "{name} connected to the VPN from the device {} at {location} ({}), neither seen in the user's {connections} VPN connections of the last 30 days",
            clip(device),
            clip(&radius.tunnel_client_endpoint),
        );
        let (domain, short) = radius
            .user_name
            .split_once('\\')
            .unwrap_or(("", radius.user_name.as_str()));
        let finding = Finding::on(
            &SUSPICIOUS_VPN,
            account_key(&radius.user_name),
            seen,
            format!("VPN start of {name} from {}", clip(device)),
        )
        .without_source_computer()
        .describe(description)
        .entity(account_entity(
            Role::SourceAccount,
            domain,
            short,
            context.knowledge.directory(),
        ))
        .detail("device", clip(device))
        .detail("location", location.clone())
        .detail("nas", clip(&radius.nas_identifier))
        .relied_on("profile: the user's VPN devices and client locations (/24 or /48)")
        .behaviour(
            Behaviour::new(
                user.clone(),
                user,
                name,
                format!(
                    "connected from the device {} or from {location}",
                    clip(device)
                ),
            )
            .item(VPN_DEVICE, device)
            .item(VPN_LOCATION, location),
        );
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{RadiusActivity, activity::Body, radius_activity};

    use crate::{
        Config,
        detectors::testing::{activity, run, summary},
        time::DAY,
    };

    fn start(offset: i64, device: &str, endpoint: &str) -> dcwatch_proto::v1::Activity {
        activity(
            offset,
            "10.98.0.250:1813",
            "10.98.0.5:1813",
            Body::Radius(RadiusActivity {
                r#type: radius_activity::Type::AccountingRequest.into(),
                status_type: "Start".into(),
                user_name: "LAB\\bob".into(),
                calling_station_id: device.into(),
                tunnel_client_endpoint: endpoint.into(),
                nas_identifier: "vpn1".into(),
                ..RadiusActivity::default()
            }),
        )
    }

    /// bob connects every other day for 40 days from his laptop at home.
    fn month_at_home() -> Vec<dcwatch_proto::v1::Activity> {
        (0..20)
            .map(|index| start(index * 2 * DAY, "00-11-22-33-44-55", "198.51.100.7"))
            .collect()
    }

    #[test]
    fn a_new_device_from_a_new_place_after_learning_is_suspicious() {
        let mut history = month_at_home();
        history.push(start(41 * DAY, "de-ad-be-ef-00-01", "203.0.113.9"));
        let alerts = run(Some(Config::default()), Directory::default(), &history);
        assert_eq!(
            summary(&alerts),
            [("suspicious_vpn".into(), "account:bob".into(), 1)]
        );
        assert!(
            alerts[0].description.starts_with(
                "LAB\\bob connected to the VPN from the device de-ad-be-ef-00-01 at 203.0.113.0/24 (203.0.113.9), neither seen"
            ) && alerts[0].description.contains("in 41 days of learning"),
            "{}",
            alerts[0].description
        );
        assert_eq!(alerts[0].external_id, 2025);
    }

    #[test]
    fn a_traveller_with_a_known_device_or_too_few_connections_is_not() {
        let mut travelling = month_at_home();
        travelling.push(start(41 * DAY, "00-11-22-33-44-55", "203.0.113.9"));
        travelling.push(start(42 * DAY, "aa-aa-aa-aa-aa-aa", "198.51.100.8"));
        assert!(run(Some(Config::default()), Directory::default(), &travelling).is_empty());
        // Four connections in 40 days: still learning at threshold high, judged at low.
        let mut few: Vec<_> = (0..4)
            .map(|index| start(index * 10 * DAY, "00-11-22-33-44-55", "198.51.100.7"))
            .collect();
        few.push(start(41 * DAY, "de-ad-be-ef-00-01", "203.0.113.9"));
        assert!(run(Some(Config::default()), Directory::default(), &few).is_empty());
        assert_eq!(
            run(Some(Config::test_mode()), Directory::default(), &few).len(),
            1
        );
    }
}
