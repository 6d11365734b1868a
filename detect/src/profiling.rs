//! What each activity teaches the profiles, after the detectors judged it (so a detector sees
//! the profile as it was before the activity):
//! - the DC an activity reached and the computer that sent it are active (their learning
//!   periods count from their first activity); a Windows event's DC is the computer it names;
//! - a computer's AES pre-authentication and AES TGTs are learned (overpass-the-hash and golden
//!   ticket downgrades are judged against them);
//! - a logon (an NTLM AUTHENTICATE its carrier accepted, an AS-REP) teaches the user the
//!   computer it came from;
//! - a VPN connection (RADIUS Accounting-Request Start) teaches the user its device
//!   (Calling-Station-Id) and location (the client's public address, its /24 or /48: *ours*,
//!   there is no GeoIP), and counts toward MDI's five connections.
//!
//! Computers are keyed by address, as alerts' primary keys are.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    RadiusActivity, activity::Body, kerberos_activity, ntlm_activity, radius_activity,
};

use crate::{
    knowledge::{Knowledge, account_key, account_name, is_aes, is_pre_authenticated},
    observed::Observed,
    profiles::{Profiles, Subject},
};

/// The facet of the computers a user logged on from.
pub const LOGON: &str = "logon";
/// The facets of a computer's pre-authentication etypes and its TGTs' etypes ("aes").
pub const AS_ETYPE: &str = "as_etype";
pub const TGT_ETYPE: &str = "tgt_etype";
/// The facets of a user's VPN devices and locations.
pub const VPN_DEVICE: &str = "vpn_device";
pub const VPN_LOCATION: &str = "vpn_location";

/// The profile key of the computer at `address`.
pub fn computer_key(address: IpAddr) -> String {
    Subject::Computer.address_key(address)
}

pub fn dc_key(name: &str) -> String {
    Subject::Dc.key(name)
}

pub fn user_key(name: &str) -> String {
    let account = account_name(name);
    if !account.is_ascii() {
        return Subject::User.key(&account_key(name));
    }
    // `Subject::key`'s text, the account folded in place: one allocation (every logon asks for
    // it; `account_key` first made a copy of its own).
    let prefix = Subject::User.prefix();
    let mut key = String::with_capacity(prefix.len() + 1 + account.len());
    key.push_str(prefix);
    key.push(':');
    let start = key.len();
    key.push_str(account);
    key[start..].make_ascii_lowercase();
    key
}

/// Where a VPN client connects from: its public address's /24 (IPv4) or /48 (IPv6).
pub fn vpn_location(radius: &RadiusActivity) -> Option<String> {
    let address: IpAddr = radius.tunnel_client_endpoint.trim().parse().ok()?;
    Some(match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", segments[0], segments[1], segments[2])
        }
    })
}

/// A RADIUS accounting start: a VPN connection.
pub fn vpn_start<'a>(seen: &Observed<'a>) -> Option<&'a RadiusActivity> {
    match seen.body() {
        Some(Body::Radius(radius))
            if radius.r#type == radius_activity::Type::AccountingRequest as i32
                && radius.status_type.eq_ignore_ascii_case("start")
                && !radius.user_name.is_empty() =>
        {
            Some(radius)
        }
        _ => None,
    }
}

/// A successful logon: (user, the computer's address).
pub fn logon<'a>(seen: &Observed<'a>) -> Option<(&'a str, IpAddr)> {
    match seen.body() {
        Some(Body::Ntlm(ntlm))
            if ntlm.r#type == ntlm_activity::Type::Authenticate as i32
                && seen.succeeded()
                && !ntlm.user.is_empty() =>
        {
            Some((ntlm.user.as_str(), seen.src?))
        }
        Some(Body::Kerberos(kerberos))
            if kerberos.r#type == kerberos_activity::Type::AsRep as i32
                && !kerberos.client.is_empty() =>
        {
            Some((kerberos.client.as_str(), seen.dst?))
        }
        _ => None,
    }
}

/// The DC tests of the last few addresses, kept while what they rest on is unchanged:
/// activities come in runs between the same two hosts (a connection's messages, its replies with
/// the ends swapped), and the test is a table lookup per end.
#[derive(Debug, Default)]
pub struct DcTests {
    generation: u64,
    recent: [Option<(IpAddr, bool)>; RECENT_DC_TESTS],
    /// The slot the next new answer takes (the oldest).
    next: usize,
}

/// Addresses whose DC test is kept: both ends of the current and of the previous connection.
const RECENT_DC_TESTS: usize = 4;

impl DcTests {
    /// Whether each end is a domain controller, as [`Knowledge::is_domain_controller`] says.
    pub fn of(
        &mut self,
        knowledge: &Knowledge,
        ends: (Option<IpAddr>, Option<IpAddr>),
    ) -> (bool, bool) {
        let generation = knowledge.dc_generation();
        if generation != self.generation {
            *self = Self {
                generation,
                ..Self::default()
            };
        }
        (self.is_dc(knowledge, ends.0), self.is_dc(knowledge, ends.1))
    }

    fn is_dc(&mut self, knowledge: &Knowledge, address: Option<IpAddr>) -> bool {
        let Some(address) = address else {
            return false;
        };
        if let Some((_, answer)) = self
            .recent
            .iter()
            .flatten()
            .find(|(known, _)| *known == address)
        {
            return *answer;
        }
        let answer = knowledge.is_domain_controller(address);
        self.recent[self.next] = Some((address, answer));
        self.next = (self.next + 1) % RECENT_DC_TESTS;
        answer
    }
}

/// The facet of the AES a Kerberos request shows of its sending computer, when it shows one:
/// AES pre-authentication, or a TGS-REQ with an AES TGT.
fn aes_facet(seen: &Observed<'_>) -> Option<&'static str> {
    use kerberos_activity::Type;
    let Some(Body::Kerberos(kerberos)) = seen.body() else {
        return None;
    };
    match Type::try_from(kerberos.r#type) {
        Ok(Type::AsReq) if is_pre_authenticated(kerberos) => Some(AS_ETYPE).filter(|_| {
            is_aes(kerberos.timestamp_etype)
                || (kerberos.timestamp_etype == 0
                    && kerberos.etypes.first().is_some_and(|etype| is_aes(*etype)))
        }),
        Ok(Type::TgsReq) => Some(TGT_ETYPE).filter(|_| is_aes(kerberos.ticket_etype)),
        _ => None,
    }
}

/// Teaches the profiles what `seen` shows.
pub fn learn(
    profiles: &mut Profiles,
    seen: &Observed<'_>,
    knowledge: &Knowledge,
    dc_tests: &mut DcTests,
) {
    let time = seen.time;
    if let Some(Body::WindowsEvent(event)) = seen.body() {
        if !event.computer.is_empty() {
            profiles.touch(&dc_key(&event.computer), time);
        }
        return;
    }
    let (src_dc, dst_dc) = dc_tests.of(knowledge, (seen.src, seen.dst));
    // The sending computer's AES is learned in the lookup that touches it, when one does.
    let aes = aes_facet(seen);
    let mut aes_learned = false;
    let mut touch_computer = |profiles: &mut Profiles, computer: IpAddr| match aes {
        Some(facet) if seen.src == Some(computer) => {
            profiles.learn((Subject::Computer, computer), time, facet, "aes");
            aes_learned = true;
        }
        _ => {
            profiles.touch((Subject::Computer, computer), time);
        }
    };
    match (seen.src, seen.dst) {
        (Some(src), Some(dst)) if dst_dc && !src_dc => {
            profiles.touch((Subject::Dc, dst), time);
            touch_computer(profiles, src);
        }
        (Some(src), Some(dst)) if src_dc && !dst_dc => {
            profiles.touch((Subject::Dc, src), time);
            touch_computer(profiles, dst);
        }
        (Some(src), _) if !src_dc => touch_computer(profiles, src),
        _ => {}
    }
    if let (Some(facet), Some(src), false) = (aes, seen.src, aes_learned) {
        profiles.learn((Subject::Computer, src), time, facet, "aes");
    }
    if let Some((user, computer)) = logon(seen) {
        profiles.learn(&user_key(user), time, LOGON, &computer.to_string());
    }
    if let Some(radius) = vpn_start(seen) {
        let user = user_key(&radius.user_name);
        profiles.vpn_connected(&user, time);
        if !radius.calling_station_id.is_empty() {
            profiles.learn(&user, time, VPN_DEVICE, &radius.calling_station_id);
        }
        if let Some(location) = vpn_location(radius) {
            profiles.learn(&user, time, VPN_LOCATION, &location);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{AS_ETYPE, DcTests, TGT_ETYPE};
    use crate::{
        config::Config,
        detectors::testing::{DC, as_req, kerberos, krb_error, tgs_req},
        knowledge::Knowledge,
        observed::Observed,
        profiles::{Profiles, Subject},
    };

    #[test]
    fn a_kerberos_request_teaches_its_sender_aes_whichever_end_is_a_dc() {
        use dcwatch_proto::v1::kerberos_activity::Type;
        let mut knowledge = Knowledge::new(&Config::test_mode(), Arc::default());
        let (mut profiles, mut tests) = (Profiles::default(), DcTests::default());
        let mut learn = |knowledge: &Knowledge, activity| {
            let seen = Observed::new(&activity, "").expect("a timed activity");
            super::learn(&mut profiles, &seen, knowledge, &mut tests);
            profiles
                .get((Subject::Computer, seen.src.expect("a sender")))
                .map(|profile| {
                    (
                        profile.knows(AS_ETYPE, "aes"),
                        profile.knows(TGT_ETYPE, "aes"),
                    )
                })
        };
        // No DC known yet: the sender is a computer of its own.
        assert_eq!(
            learn(&knowledge, as_req(0, "10.0.0.7:50000", "alice", |_| {})),
            Some((true, false))
        );
        // The KDC answered: from then on the request goes from a computer to a DC.
        let reply = krb_error(1, "10.0.0.8:50001", "bob", 25);
        knowledge.learn(&Observed::new(&reply, "").expect("a timed activity"));
        assert_eq!(
            learn(
                &knowledge,
                tgs_req(2, "10.0.0.8:50002", "cifs/fs1", &[1; 16], |_| {})
            ),
            Some((false, true))
        );
        // RC4 pre-authentication teaches nothing.
        assert_eq!(
            learn(
                &knowledge,
                as_req(3, "10.0.0.9:50003", "carol", |body| {
                    body.timestamp_etype = 23;
                })
            ),
            Some((false, false))
        );
        // A DC's own requests, to another computer and to itself: the DC's computer profile
        // learns them, as a sender's does.
        let from_dc = |offset, dst: &str| {
            kerberos(
                offset,
                &format!("{DC}:50004"),
                dst,
                Type::AsReq,
                "dc1$",
                |body| {
                    body.encrypted_timestamp = true;
                    body.timestamp_etype = 18;
                    body.pa_data_types = vec![2];
                },
            )
        };
        assert_eq!(
            learn(&knowledge, from_dc(4, "10.0.0.10:88")),
            Some((true, false))
        );
        assert_eq!(
            learn(&knowledge, from_dc(5, &format!("{DC}:88"))),
            Some((true, false))
        );
    }

    #[test]
    fn a_user_key_is_the_subject_key_of_the_account_key() {
        for name in ["LAB\\Alice", "alice@LAB.EXAMPLE", "bob", "LAB\\ÉLODIE", ""] {
            assert_eq!(
                super::user_key(name),
                Subject::User.key(&crate::knowledge::account_key(name)),
                "{name}"
            );
        }
        assert_eq!(super::user_key("LAB\\Alice"), "user:alice");
    }

    #[test]
    fn the_dc_test_kept_for_the_same_ends_follows_what_the_traffic_teaches() {
        let mut knowledge = Knowledge::new(&Config::test_mode(), Arc::default());
        let mut tests = DcTests::default();
        // The KDC's answer: its sender is a DC once the engine has learned from it.
        let reply = krb_error(0, "10.0.0.5:50000", "alice", 25);
        let seen = Observed::new(&reply, "").expect("a timed activity");
        let ends = (seen.src, seen.dst);
        assert_eq!(tests.of(&knowledge, ends), (false, false));
        knowledge.learn(&seen);
        assert_eq!(tests.of(&knowledge, ends), (true, false));
        assert_eq!(tests.of(&knowledge, (seen.dst, seen.src)), (false, true));
        // More addresses than are kept: the DC is still one when its answer was pushed out.
        let dc = seen.src;
        for last in 1..=10_u8 {
            let client = Some(std::net::IpAddr::from([10, 1, 0, last]));
            assert_eq!(tests.of(&knowledge, (client, dc)), (false, true), "{last}");
            assert_eq!(tests.of(&knowledge, (None, client)), (false, false));
        }
    }
}
