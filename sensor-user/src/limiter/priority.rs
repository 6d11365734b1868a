//! What an activity is worth when the host runs short: the order in which the limiter sheds.

use std::{collections::HashSet, net::IpAddr};

use dcwatch_proto::{
    json::endpoint_ip,
    v1::{Activity, activity::Body, ldap_activity, smb_activity},
};

use super::Level;

/// Worth, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// DNS and NetBIOS exchanges of a client that is not a DC.
    NameQuery,
    /// SMB opens and closes of files on disk shares (what their reads and writes are reported
    /// in), other than executables and administrative shares.
    SmbFileIo,
    /// The rest of the traffic.
    Normal,
    /// Kerberos, NTLM, DRSUAPI and SVCCTL calls, LDAP binds, and Windows events: never shed.
    Protected,
}

/// DCE-RPC interfaces whose calls are never shed: replication (DCSync, DCShadow) and the service
/// manager (remote execution).
const PROTECTED_INTERFACES: [&str; 2] = ["drsuapi", "svcctl"];

impl Priority {
    /// The activity's worth; `dcs`: the configured DC addresses.
    pub fn of(activity: &Activity, dcs: &HashSet<IpAddr>) -> Self {
        let client_is_dc = || {
            activity
                .src
                .as_ref()
                .and_then(endpoint_ip)
                .is_some_and(|ip| dcs.contains(&ip))
        };
        match &activity.body {
            Some(Body::Kerberos(_) | Body::Ntlm(_) | Body::WindowsEvent(_)) | None => {
                Self::Protected
            }
            Some(Body::Ldap(ldap)) if ldap.r#type() == ldap_activity::Type::Bind => Self::Protected,
            Some(Body::Dcerpc(call))
                if PROTECTED_INTERFACES.contains(&call.interface_name.as_str()) =>
            {
                Self::Protected
            }
            Some(Body::Dns(_) | Body::Netbios(_)) if !client_is_dc() => Self::NameQuery,
            Some(Body::Smb(smb))
                if matches!(
                    smb.r#type(),
                    smb_activity::Type::Create | smb_activity::Type::Close
                ) && smb.share_type() == smb_activity::ShareType::Disk
                    && !smb.is_pipe
                    && !smb.admin_share
                    && !smb.executable =>
            {
                Self::SmbFileIo
            }
            _ => Self::Normal,
        }
    }

    /// Whether `level` sheds activities of this worth in userspace. Name queries are shed from
    /// [`Level::ShedLow`] on (below it, XDP's sample is what is kept).
    pub fn shed_at(self, level: Level) -> bool {
        match self {
            Self::NameQuery | Self::SmbFileIo => level >= Level::ShedLow,
            Self::Normal => level >= Level::ShedNormal,
            Self::Protected => false,
        }
    }
}

dcwatch_telemetry::counters! {
    /// Activities the limiter shed in userspace, by worth (named `limiter_shed_*`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ShedCounters {
        /// DNS and NetBIOS name activities of clients that are not DCs, shed.
        counter name_query_activities: u64,
        /// SMB file reads and writes, shed.
        counter smb_file_activities: u64,
        /// Activities of normal worth, shed under the heaviest load.
        counter normal_activities: u64,
    }
}

impl ShedCounters {
    pub fn count(&mut self, priority: Priority) {
        match priority {
            Priority::NameQuery => self.name_query_activities += 1,
            Priority::SmbFileIo => self.smb_file_activities += 1,
            Priority::Normal => self.normal_activities += 1,
            Priority::Protected => {}
        }
    }
}

/// The userspace half of shedding: the level in force, and what it shed.
#[derive(Clone, Debug, Default)]
pub struct Shedder {
    level: Level,
    dcs: HashSet<IpAddr>,
    counters: ShedCounters,
}

impl Shedder {
    pub fn new(dcs: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            dcs: dcs.into_iter().collect(),
            ..Self::default()
        }
    }

    /// The configured DCs (a reload may change them).
    pub fn set_dcs(&mut self, dcs: impl IntoIterator<Item = IpAddr>) {
        self.dcs = dcs.into_iter().collect();
    }

    pub fn set_level(&mut self, level: Level) {
        self.level = level;
    }

    pub fn level(&self) -> Level {
        self.level
    }

    pub fn counters(&self) -> &ShedCounters {
        &self.counters
    }

    /// Whether `activity` goes on; one that does not is counted.
    pub fn keep(&mut self, activity: &Activity) -> bool {
        if self.level == Level::Normal {
            return true;
        }
        let priority = Priority::of(activity, &self.dcs);
        if priority.shed_at(self.level) {
            self.counters.count(priority);
            false
        } else {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{
        DceRpcActivity, DnsActivity, Endpoint, KerberosActivity, LdapActivity, SmbActivity,
    };

    use super::*;

    fn from(src: [u8; 4], body: Body) -> Activity {
        Activity {
            src: Some(Endpoint {
                ip: src.to_vec(),
                port: 50_000,
            }),
            body: Some(body),
            ..Activity::default()
        }
    }

    fn smb(r#type: smb_activity::Type, share: smb_activity::ShareType) -> SmbActivity {
        let mut smb = SmbActivity::default();
        smb.set_type(r#type);
        smb.set_share_type(share);
        smb
    }

    #[test]
    fn ranks_as_the_limiter_sheds() {
        let dc = [10, 0, 0, 1];
        let client = [10, 0, 0, 50];
        let dcs = HashSet::from([IpAddr::from(dc)]);
        let of = |activity: &Activity| Priority::of(activity, &dcs);
        let dns = Body::Dns(DnsActivity::default());
        assert_eq!(of(&from(client, dns.clone())), Priority::NameQuery);
        assert_eq!(of(&from(dc, dns)), Priority::Normal, "a DC's own lookups");
        let mut bind = LdapActivity::default();
        bind.set_type(ldap_activity::Type::Bind);
        assert_eq!(of(&from(client, Body::Ldap(bind))), Priority::Protected);
        let mut search = LdapActivity::default();
        search.set_type(ldap_activity::Type::Search);
        assert_eq!(of(&from(client, Body::Ldap(search))), Priority::Normal);
        let kerberos = Body::Kerberos(KerberosActivity::default());
        assert_eq!(of(&from(client, kerberos)), Priority::Protected);
        for (interface, priority) in [
            ("drsuapi", Priority::Protected),
            ("svcctl", Priority::Protected),
            ("samr", Priority::Normal),
        ] {
            let call = Body::Dcerpc(DceRpcActivity {
                interface_name: interface.to_owned(),
                ..DceRpcActivity::default()
            });
            assert_eq!(of(&from(client, call)), priority, "{interface}");
        }
        use smb_activity::{ShareType, Type};
        let file = smb(Type::Close, ShareType::Disk);
        assert_eq!(
            of(&from(client, Body::Smb(file.clone()))),
            Priority::SmbFileIo
        );
        for keep in [
            SmbActivity {
                executable: true,
                ..file.clone()
            },
            SmbActivity {
                admin_share: true,
                ..file.clone()
            },
            smb(Type::Create, ShareType::Pipe),
            smb(Type::TreeConnect, ShareType::Disk),
        ] {
            assert_eq!(
                of(&from(client, Body::Smb(keep.clone()))),
                Priority::Normal,
                "{keep:?}"
            );
        }
    }

    #[test]
    fn each_level_sheds_what_the_one_below_does_and_protected_never() {
        let all = [
            Priority::NameQuery,
            Priority::SmbFileIo,
            Priority::Normal,
            Priority::Protected,
        ];
        let shed = |level| all.iter().filter(|p| p.shed_at(level)).count();
        assert_eq!(shed(Level::Normal), 0);
        assert_eq!(
            shed(Level::SampleNames),
            0,
            "XDP samples; what it keeps stays"
        );
        assert_eq!(shed(Level::ShedLow), 2);
        assert_eq!(shed(Level::ShedNormal), 3);
        assert!(!Priority::Protected.shed_at(Level::MAX));
        let mut counters = ShedCounters::default();
        for priority in all {
            counters.count(priority);
        }
        assert_eq!(
            (
                counters.name_query_activities,
                counters.smb_file_activities,
                counters.normal_activities
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn the_shedder_counts_exactly_what_it_drops() {
        let mut shedder = Shedder::new([IpAddr::from([10, 0, 0, 1])]);
        let dns = from([10, 0, 0, 50], Body::Dns(DnsActivity::default()));
        let kerberos = from([10, 0, 0, 50], Body::Kerberos(KerberosActivity::default()));
        assert!(shedder.keep(&dns), "normal level keeps everything");
        shedder.set_level(Level::ShedLow);
        let kept = (0..7)
            .flat_map(|_| [&dns, &kerberos])
            .filter(|activity| shedder.keep(activity))
            .count();
        assert_eq!(kept, 7, "every Kerberos activity");
        assert_eq!(shedder.counters().name_query_activities, 7);
        assert_eq!(shedder.counters().normal_activities, 0);
    }
}
