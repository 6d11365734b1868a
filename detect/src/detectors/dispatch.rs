//! Which activities reach which detector. Most detectors read one protocol: handing every
//! activity to all of them cost about 38 calls per activity that returned at once (issue #13's
//! detect-cost). Each detector declares the kinds it reads ([`Detector::kinds`]); the
//! detectors are sorted by kind once, when the engine is made.
//!
//! DCE-RPC is split further: most of its detectors judge requests to one interface (DRSUAPI,
//! SAMR, NETLOGON...), and with the protocol alone every DCE-RPC activity called about 15 of
//! them, each paying a cache miss on its own state to return at once. A request to an
//! interface of [`Interface`] is a kind of its own; a detector that declares the interface
//! still checks the request itself, the dispatch only spares the calls that cannot match.
//! Kerberos likewise by message type: several of its detectors read one or two of them.

use std::ops::BitOr;

use dcwatch_proto::v1::{
    DceRpcActivity, activity::Body, dce_rpc_activity, dns_activity, kerberos_activity,
    ldap_activity, ntlm_activity, smb_activity,
};

use super::{Context, Detector, Key, dns_volume::NXDOMAIN};
use crate::{knowledge::Knowledge, observed::Observed, time::Millis};

/// A set of activity kinds: the body's protocol, or no body at all; for DCE-RPC, requests to
/// each interface of [`Interface`] apart from everything else; for Kerberos, NTLM, LDAP, SMB and
/// DNS, each message type (and DNS responses NXDOMAIN apart from the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u128);

/// The kind of DCE-RPC activities no interface kind takes: binds, and requests to other
/// interfaces or to one whose bind was not seen.
const OTHER_DCERPC: usize = 6;
/// The first interface's kind: after the body variants.
const FIRST_INTERFACE: usize = 12;
/// Kerberos messages by type, after the interfaces'; each protocol's types after the last's.
/// The last of each is its enum's last variant (a test holds them so).
const KERBEROS: Typed = Typed {
    other: 1,
    first: FIRST_INTERFACE + Interface::ALL.len(),
    types: kerberos_activity::Type::KrbError as usize,
};
const NTLM: Typed = KERBEROS.then(2, ntlm_activity::Type::Authenticate as usize);
const LDAP: Typed = NTLM.then(3, ldap_activity::Type::Sealed as usize);
const DNS: Typed = LDAP.then(4, dns_activity::Type::NotifyResponse as usize);
const SMB: Typed = DNS.then(5, smb_activity::Type::Compressed as usize);
/// DNS responses NXDOMAIN: a kind apart from other responses (the query volume counts them).
const NXDOMAIN_RESPONSE: usize = SMB.end();
/// Kinds there are: every body variant, "no body", one per DCE-RPC interface, one per message
/// type of the typed protocols, DNS responses NXDOMAIN.
const COUNT: usize = NXDOMAIN_RESPONSE + 1;
/// Not a kind: the flag of [`Kinds::ALARM`], after the kinds.
const ALARM: usize = COUNT;

/// A protocol whose messages have a kind per type, numbered 1 to `types` in its protobuf enum;
/// its body's own kind (`other`) takes those of type 0 or of a type this build does not know.
/// Most of its detectors judge one or two types: the protocol alone called each of them for
/// every message, to return at once on most.
#[derive(Clone, Copy)]
struct Typed {
    other: usize,
    first: usize,
    types: usize,
}

impl Typed {
    /// The kind after its types' kinds.
    const fn end(self) -> usize {
        self.first + self.types
    }

    /// The protocol of body kind `other` and `types` types, its kinds after this one's.
    const fn then(self, other: usize, types: usize) -> Self {
        Self {
            other,
            first: self.end(),
            types,
        }
    }

    /// Every message of the protocol, whatever its type.
    const fn all(self) -> Kinds {
        Kinds(Kinds::of(self.other).0 | (((1 << self.types) - 1) << self.first))
    }

    /// Messages of one type (none at all for type 0, "unspecified").
    const fn one(self, value: i32) -> Kinds {
        if value < 1 || value as usize > self.types {
            return Kinds(0);
        }
        Kinds::of(self.first + value as usize - 1)
    }

    /// The kind of a message of type `value`.
    fn index(self, value: i32) -> usize {
        match usize::try_from(value) {
            Ok(value @ 1..) if value <= self.types => self.first + value - 1,
            _ => self.other,
        }
    }
}

/// The DCE-RPC interfaces some detector reads requests of, by the name the sensor gives them
/// (`DceRpcActivity::interface_name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    Drsuapi,
    Samr,
    Lsarpc,
    Netlogon,
    Efsrpc,
    Srvsvc,
    Spoolss,
    IRemoteWinspool,
    Netdfs,
    Winreg,
    Svcctl,
    Atsvc,
    ITaskSchedulerService,
    IWbemServices,
    ISystemActivator,
    IActivation,
}

impl Interface {
    pub const ALL: [Self; 16] = [
        Self::Drsuapi,
        Self::Samr,
        Self::Lsarpc,
        Self::Netlogon,
        Self::Efsrpc,
        Self::Srvsvc,
        Self::Spoolss,
        Self::IRemoteWinspool,
        Self::Netdfs,
        Self::Winreg,
        Self::Svcctl,
        Self::Atsvc,
        Self::ITaskSchedulerService,
        Self::IWbemServices,
        Self::ISystemActivator,
        Self::IActivation,
    ];

    /// The name the sensor's parser gives it (parsers' `dcerpc::interfaces::INTERFACES`; a
    /// test of sensor-user, which sees both, holds them equal).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Drsuapi => "drsuapi",
            Self::Samr => "samr",
            Self::Lsarpc => "lsarpc",
            Self::Netlogon => "netlogon",
            Self::Efsrpc => "efsrpc",
            Self::Srvsvc => "srvsvc",
            Self::Spoolss => "spoolss",
            Self::IRemoteWinspool => "IRemoteWinspool",
            Self::Netdfs => "netdfs",
            Self::Winreg => "winreg",
            Self::Svcctl => "svcctl",
            Self::Atsvc => "atsvc",
            Self::ITaskSchedulerService => "ITaskSchedulerService",
            Self::IWbemServices => "IWbemServices",
            Self::ISystemActivator => "ISystemActivator",
            Self::IActivation => "IActivation",
        }
    }

    /// The interface a request names, if it is one of these.
    fn of(rpc: &DceRpcActivity) -> Option<Self> {
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 {
            return None;
        }
        Self::ALL
            .into_iter()
            .find(|interface| interface.name() == rpc.interface_name)
    }
}

impl Kinds {
    /// Every Kerberos activity, whatever its message.
    pub const KERBEROS: Self = KERBEROS.all();
    /// Every NTLM activity, whatever its message.
    pub const NTLM: Self = NTLM.all();
    /// Every LDAP activity, whatever its operation.
    pub const LDAP: Self = LDAP.all();
    /// Every DNS activity, whatever its type and answer.
    pub const DNS: Self = Self(DNS.all().0 | Self::DNS_NXDOMAIN.0);
    /// Every SMB activity, whatever its type.
    pub const SMB: Self = SMB.all();
    /// Every DCE-RPC activity: binds and requests to any interface.
    pub const DCERPC: Self = Self(Self::of(OTHER_DCERPC).0 | Self::INTERFACES.0);
    pub const RADIUS: Self = Self::of(9);
    pub const WINDOWS_EVENT: Self = Self::of(10);
    pub const NTP: Self = Self::of(11);
    /// DNS responses NXDOMAIN, no other response.
    pub const DNS_NXDOMAIN: Self = Self::of(NXDOMAIN_RESPONSE);
    /// Every activity, whatever it carries.
    pub const ALL: Self = Self((1 << COUNT) - 1);
    /// Not a kind: besides its kinds, the detector is handed the first activity of any kind at
    /// or after its [`Detector::alarm`] (a clock that releases what it held). Calling such a
    /// detector on every activity cost a call and a cache miss on its state per activity for
    /// the rare one that had something to release.
    pub const ALARM: Self = Self::of(ALARM);
    /// Requests to any interface of [`Interface`].
    const INTERFACES: Self = Self(((1 << Interface::ALL.len()) - 1) << FIRST_INTERFACE);

    const fn of(index: usize) -> Self {
        Self(1 << index)
    }

    /// DCE-RPC requests to `interface`, nothing else of DCE-RPC.
    pub const fn requests(interface: Interface) -> Self {
        Self::of(FIRST_INTERFACE + interface as usize)
    }

    /// Kerberos messages of one type, no other Kerberos (`TYPE_UNSPECIFIED`: none at all).
    pub const fn kerberos(message: kerberos_activity::Type) -> Self {
        KERBEROS.one(message as i32)
    }

    /// NTLM messages of one type, no other NTLM (`TYPE_UNSPECIFIED`: none at all).
    pub const fn ntlm(message: ntlm_activity::Type) -> Self {
        NTLM.one(message as i32)
    }

    /// LDAP operations of one type, no other LDAP (`TYPE_UNSPECIFIED`: none at all).
    pub const fn ldap(operation: ldap_activity::Type) -> Self {
        LDAP.one(operation as i32)
    }

    /// SMB activities of one type, no other SMB (`TYPE_UNSPECIFIED`: none at all).
    pub const fn smb(message: smb_activity::Type) -> Self {
        SMB.one(message as i32)
    }

    /// DNS messages of one type, no other DNS (`TYPE_UNSPECIFIED`: none at all); responses
    /// include those NXDOMAIN ([`Self::DNS_NXDOMAIN`] alone takes only those).
    pub const fn dns(message: dns_activity::Type) -> Self {
        match message {
            dns_activity::Type::Response => Self(DNS.one(message as i32).0 | Self::DNS_NXDOMAIN.0),
            message => DNS.one(message as i32),
        }
    }

    fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

impl BitOr for Kinds {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The kind of an activity, as an index into [`Kinds`]'s bits (0: no body).
fn index(body: Option<&Body>) -> usize {
    match body {
        None => 0,
        Some(Body::Kerberos(kerberos)) => KERBEROS.index(kerberos.r#type),
        Some(Body::Ntlm(ntlm)) => NTLM.index(ntlm.r#type),
        Some(Body::Ldap(ldap)) => LDAP.index(ldap.r#type),
        Some(Body::Dns(dns))
            if dns.r#type == dns_activity::Type::Response as i32 && dns.rcode == NXDOMAIN =>
        {
            NXDOMAIN_RESPONSE
        }
        Some(Body::Dns(dns)) => DNS.index(dns.r#type),
        Some(Body::Smb(smb)) => SMB.index(smb.r#type),
        Some(Body::Dcerpc(rpc)) => Interface::of(rpc).map_or(OTHER_DCERPC, |interface| {
            FIRST_INTERFACE + interface as usize
        }),
        Some(Body::Netbios(_)) => 7,
        Some(Body::Rdp(_)) => 8,
        Some(Body::Radius(_)) => 9,
        Some(Body::WindowsEvent(_)) => 10,
        Some(Body::Ntp(_)) => 11,
    }
}

/// Every detector, and for each kind the ones that read it, in the order of
/// [`super::all`] (findings of one activity keep the order they always had).
#[derive(Debug)]
pub struct Detectors {
    all: Vec<Box<dyn Detector>>,
    /// Each detector's kinds; none while it cannot raise anything ([`Self::fit`]).
    kinds: Vec<Kinds>,
    by_kind: [Vec<usize>; COUNT],
    alarms: Alarms,
}

/// The detectors' alarms ([`Kinds::ALARM`]), apart from the detectors so that the dispatch's
/// loop borrows both at once.
#[derive(Debug)]
struct Alarms {
    /// Whether each detector has one.
    alarmed: Vec<bool>,
    /// Each detector's, as it said after its last call; `Millis::MAX` for none.
    at: Vec<Millis>,
    /// The earliest of `at`: an activity before it wakes no detector outside its kinds.
    earliest: Millis,
}

impl Alarms {
    fn new(all: &[Box<dyn Detector>]) -> Self {
        let alarmed: Vec<bool> = all
            .iter()
            .map(|detector| detector.kinds().contains(ALARM))
            .collect();
        let at: Vec<Millis> = all
            .iter()
            .zip(&alarmed)
            .map(|(detector, &alarmed)| {
                if alarmed {
                    detector.alarm()
                } else {
                    Millis::MAX
                }
            })
            .collect();
        Self {
            earliest: at.iter().copied().min().unwrap_or(Millis::MAX),
            alarmed,
            at,
        }
    }

    /// Reads the alarm of a detector just called, while its state is in the cache.
    fn heard(&mut self, detector: usize, judge: &dyn Detector) {
        if !self.alarmed[detector] {
            return;
        }
        let alarm = judge.alarm();
        if alarm != self.at[detector] {
            self.at[detector] = alarm;
            self.earliest = self.at.iter().copied().min().unwrap_or(Millis::MAX);
        }
    }
}

impl Detectors {
    /// Every detector reading its kinds, whatever the engine knows (see [`Self::fit`]).
    pub fn new(all: Vec<Box<dyn Detector>>) -> Self {
        let kinds: Vec<Kinds> = all.iter().map(|detector| detector.kinds()).collect();
        Self {
            alarms: Alarms::new(&all),
            by_kind: by_kind(&kinds),
            kinds,
            all,
        }
    }

    /// Leaves out of the dispatch the detectors that cannot raise anything with what the
    /// engine knows ([`Detector::applies`]), and takes back those that can again; call it
    /// whenever that knowledge changes. A detector left out keeps its alarm.
    pub fn fit(&mut self, knowledge: &Knowledge) {
        self.kinds = self
            .all
            .iter()
            .map(|detector| {
                if detector.applies(knowledge) {
                    detector.kinds()
                } else {
                    Kinds(0)
                }
            })
            .collect();
        self.by_kind = by_kind(&self.kinds);
    }

    /// Only the detectors keyed by `key`, still sorted by kind, each reading its kinds (call
    /// [`Self::fit`] again).
    #[must_use]
    pub fn keyed_by(self, key: Key) -> Self {
        let mut all = self.all;
        all.retain(|detector| detector.key() == key);
        Self::new(all)
    }

    /// Lets every detector that reads this activity's kind judge it, and every detector whose
    /// alarm is due.
    pub fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let kind = index(seen.body());
        let Self {
            all,
            kinds,
            by_kind,
            alarms,
        } = self;
        if seen.time < alarms.earliest {
            for &detector in &by_kind[kind] {
                let judge = &mut all[detector];
                judge.observe(seen, context);
                alarms.heard(detector, judge.as_ref());
            }
            return;
        }
        // Rare: a detector woken outside its kinds takes its place in the order.
        for (detector, judge) in all.iter_mut().enumerate() {
            if kinds[detector].contains(kind) || alarms.at[detector] <= seen.time {
                judge.observe(seen, context);
                alarms.heard(detector, judge.as_ref());
            }
        }
    }

    /// Entries the detectors' bounded tables had to forget.
    pub fn evicted(&self) -> u64 {
        self.all.iter().map(|detector| detector.evicted()).sum()
    }
}

/// For each kind, the detectors that read it, in their order.
fn by_kind(kinds: &[Kinds]) -> [Vec<usize>; COUNT] {
    std::array::from_fn(|kind| {
        (0..kinds.len())
            .filter(|&detector| kinds[detector].contains(kind))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dcwatch_proto::v1::{
        DceRpcActivity, DnsActivity, KerberosActivity, LdapActivity, NtlmActivity, SmbActivity,
        activity::Body, dce_rpc_activity, dns_activity, kerberos_activity, ldap_activity,
        ntlm_activity, smb_activity,
    };

    use super::{DNS, Detectors, Interface, KERBEROS, Kinds, LDAP, NTLM, SMB, Typed, index};
    use crate::{
        Config,
        detectors::{
            Context, Detector,
            testing::{T0, activity},
        },
        knowledge::Knowledge,
        observed::Observed,
        profiles::Profiles,
        time::Millis,
    };

    /// A mock detector: it notes (its number, the activity's offset) of what reached it.
    #[derive(Debug)]
    struct Noting {
        number: usize,
        kinds: Kinds,
        log: Arc<Mutex<Vec<(usize, i64)>>>,
    }

    impl Detector for Noting {
        fn kinds(&self) -> Kinds {
            self.kinds
        }

        fn observe(&mut self, seen: &Observed<'_>, _: &mut Context<'_>) {
            if let Ok(mut log) = self.log.lock() {
                log.push((self.number, seen.time - T0));
            }
        }
    }

    /// The (detector, offset) pairs of what reached each detector, one declaring each of
    /// `kinds`, when `activities` are observed in order.
    fn reached(kinds: &[Kinds], activities: &[dcwatch_proto::v1::Activity]) -> Vec<(usize, i64)> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut detectors = Detectors::new(
            kinds
                .iter()
                .enumerate()
                .map(|(number, &kinds)| {
                    Box::new(Noting {
                        number,
                        kinds,
                        log: Arc::clone(&log),
                    }) as Box<dyn Detector>
                })
                .collect(),
        );
        observe_all(&mut detectors, activities);
        log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Hands `activities` to `detectors` in order.
    fn observe_all(detectors: &mut Detectors, activities: &[dcwatch_proto::v1::Activity]) {
        let config = Config::test_mode();
        let knowledge = Knowledge::new(&config, Arc::default());
        let profiles = Profiles::default();
        let mut findings = Vec::new();
        for activity in activities {
            let seen = Observed::new(activity, "").expect("a timed activity");
            let mut context = Context {
                knowledge: &knowledge,
                profiles: &profiles,
                config: &config,
                findings: &mut findings,
            };
            detectors.observe(&seen, &mut context);
        }
    }

    #[test]
    fn an_activity_reaches_the_detectors_of_its_kind_in_their_order() {
        let (src, dst) = ("10.0.0.1:50000", "10.0.0.2:445");
        let mut bodiless = activity(3, src, dst, Body::Dns(DnsActivity::default()));
        bodiless.body = None;
        let activities = [
            activity(0, src, dst, Body::Kerberos(KerberosActivity::default())),
            activity(1, src, dst, Body::Dns(DnsActivity::default())),
            activity(2, src, dst, Body::Ntlm(NtlmActivity::default())),
            bodiless,
        ];
        let kinds = [
            Kinds::KERBEROS,
            Kinds::DNS | Kinds::NTLM,
            Kinds::ALL,
            Kinds::LDAP,
        ];
        assert_eq!(
            reached(&kinds, &activities),
            [(0, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2), (2, 3)]
        );
    }

    fn rpc(
        offset: i64,
        r#type: dce_rpc_activity::Type,
        interface: &str,
    ) -> dcwatch_proto::v1::Activity {
        let body = DceRpcActivity {
            r#type: r#type.into(),
            interface_name: interface.to_owned(),
            ..DceRpcActivity::default()
        };
        activity(
            offset,
            "10.0.0.1:50000",
            "10.0.0.2:49667",
            Body::Dcerpc(body),
        )
    }

    #[test]
    fn a_dcerpc_request_reaches_the_detectors_of_its_interface_and_of_every_dcerpc() {
        use dce_rpc_activity::Type;
        let activities = [
            rpc(0, Type::Request, "drsuapi"),
            rpc(1, Type::Request, "samr"),
            // A bind names its interfaces in its contexts, not as a request's interface.
            rpc(2, Type::Bind, "drsuapi"),
            rpc(3, Type::Request, "wkssvc"),
            // Names are the parser's, compared as they are.
            rpc(4, Type::Request, "DRSUAPI"),
            rpc(5, Type::Request, "IRemoteWinspool"),
        ];
        let kinds = [
            Kinds::requests(Interface::Drsuapi),
            Kinds::requests(Interface::Samr) | Kinds::requests(Interface::IRemoteWinspool),
            Kinds::DCERPC,
            Kinds::NTLM,
        ];
        assert_eq!(
            reached(&kinds, &activities),
            [
                (0, 0),
                (2, 0),
                (1, 1),
                (2, 1),
                (2, 2),
                (2, 3),
                (2, 4),
                (1, 5),
                (2, 5)
            ]
        );
    }

    /// A mock detector of Kerberos with an alarm: each Kerberos activity holds something for
    /// two milliseconds; it notes what reached it, like [`Noting`].
    #[derive(Debug)]
    struct Holding {
        log: Arc<Mutex<Vec<(usize, i64)>>>,
        due: Millis,
    }

    impl Detector for Holding {
        fn kinds(&self) -> Kinds {
            Kinds::KERBEROS | Kinds::ALARM
        }

        fn observe(&mut self, seen: &Observed<'_>, _: &mut Context<'_>) {
            if let Ok(mut log) = self.log.lock() {
                log.push((1, seen.time - T0));
            }
            if matches!(seen.body(), Some(Body::Kerberos(_))) {
                self.due = seen.time + 2;
            } else if seen.time >= self.due {
                self.due = Millis::MAX;
            }
        }

        fn alarm(&self) -> Millis {
            self.due
        }
    }

    #[test]
    fn a_detector_is_handed_any_activity_once_its_alarm_is_due_in_its_place() {
        let (src, dst) = ("10.0.0.1:50000", "10.0.0.2:53");
        let dns = |offset| activity(offset, src, dst, Body::Dns(DnsActivity::default()));
        let activities = [
            dns(0),
            activity(1, src, dst, Body::Kerberos(KerberosActivity::default())),
            dns(2),
            // Due: handed this one, between the detectors before and after it.
            dns(3),
            dns(4),
        ];
        let log = Arc::new(Mutex::new(Vec::new()));
        let noting = |number| {
            Box::new(Noting {
                number,
                kinds: Kinds::DNS,
                log: Arc::clone(&log),
            }) as Box<dyn Detector>
        };
        let mut detectors = Detectors::new(vec![
            noting(0),
            Box::new(Holding {
                log: Arc::clone(&log),
                due: Millis::MAX,
            }),
            noting(2),
        ]);
        observe_all(&mut detectors, &activities);
        let log = log.lock().map(|log| log.clone()).unwrap_or_default();
        assert_eq!(
            log,
            [
                (0, 0),
                (2, 0),
                (1, 1),
                (0, 2),
                (2, 2),
                (0, 3),
                (1, 3),
                (2, 3),
                (0, 4),
                (2, 4)
            ]
        );
    }

    #[test]
    fn every_interface_has_a_kind_of_its_own() {
        let mut seen = 0;
        for interface in Interface::ALL {
            let Kinds(bit) = Kinds::requests(interface);
            assert_eq!(bit.count_ones(), 1, "{interface:?}");
            assert_eq!(seen & bit, 0, "{interface:?} shares a kind");
            assert_eq!(Kinds::DCERPC.0 & bit, bit, "{interface:?} is DCE-RPC");
            assert_eq!(Kinds::ALL.0 & bit, bit, "{interface:?} is in ALL");
            seen |= bit;
        }
    }

    #[test]
    fn every_kerberos_message_has_a_kind_of_its_own() {
        use dcwatch_proto::v1::kerberos_activity::Type;
        let messages = [
            Type::AsReq,
            Type::AsRep,
            Type::TgsReq,
            Type::TgsRep,
            Type::ApReq,
            Type::ApRep,
            Type::KrbError,
        ];
        let mut seen = 0;
        for message in messages {
            let Kinds(bit) = Kinds::kerberos(message);
            assert_eq!(bit.count_ones(), 1, "{message:?}");
            assert_eq!(seen & bit, 0, "{message:?} shares a kind");
            assert_eq!(Kinds::KERBEROS.0 & bit, bit, "{message:?} is Kerberos");
            seen |= bit;
        }
        assert_eq!(Kinds::kerberos(Type::Unspecified), Kinds(0));
        let activities = [
            activity(
                0,
                "10.0.0.1:50000",
                "10.0.0.2:88",
                Body::Kerberos(KerberosActivity {
                    r#type: Type::TgsReq.into(),
                    ..KerberosActivity::default()
                }),
            ),
            activity(
                1,
                "10.0.0.1:50000",
                "10.0.0.2:88",
                Body::Kerberos(KerberosActivity::default()),
            ),
        ];
        let kinds = [
            Kinds::kerberos(Type::TgsReq),
            Kinds::kerberos(Type::AsReq),
            Kinds::KERBEROS,
        ];
        assert_eq!(reached(&kinds, &activities), [(0, 0), (2, 0), (2, 1)]);
    }

    /// A typed protocol, all its kinds, and whether its enum has a value.
    type Protocol = (Typed, Kinds, fn(i32) -> bool);

    /// Each type of each typed protocol: a kind of its own within the protocol's, and the
    /// protobuf enum ends where the protocol's kinds do (a type it adds needs a kind, or its
    /// messages would go to "other" and miss the detectors that declare it).
    #[test]
    fn every_message_type_of_every_typed_protocol_has_a_kind_of_its_own() {
        let protocols: [Protocol; 5] = [
            (KERBEROS, Kinds::KERBEROS, |value| {
                kerberos_activity::Type::try_from(value).is_ok()
            }),
            (NTLM, Kinds::NTLM, |value| {
                ntlm_activity::Type::try_from(value).is_ok()
            }),
            (LDAP, Kinds::LDAP, |value| {
                ldap_activity::Type::try_from(value).is_ok()
            }),
            (DNS, Kinds::DNS, |value| {
                dns_activity::Type::try_from(value).is_ok()
            }),
            (SMB, Kinds::SMB, |value| {
                smb_activity::Type::try_from(value).is_ok()
            }),
        ];
        let mut seen = 0;
        for (typed, all, known) in protocols {
            let last = i32::try_from(typed.types).expect("a few types");
            assert!(
                known(last) && !known(last + 1),
                "{all:?} ends at type {last}"
            );
            assert_eq!(typed.one(0), Kinds(0));
            assert_eq!(typed.index(0), typed.other);
            assert_eq!(typed.index(last + 1), typed.other);
            for value in 1..=last {
                let Kinds(bit) = typed.one(value);
                assert_eq!(bit.count_ones(), 1, "{all:?} type {value}");
                assert_eq!(seen & bit, 0, "{all:?} type {value} shares a kind");
                assert_eq!(all.0 & bit, bit, "{all:?} type {value} is in its protocol");
                assert_eq!(Kinds::ALL.0 & bit, bit, "{all:?} type {value} is in ALL");
                assert_eq!(1 << typed.index(value), bit);
                seen |= bit;
            }
        }
        let Kinds(nxdomain) = Kinds::DNS_NXDOMAIN;
        assert_eq!(seen & nxdomain, 0);
        assert_eq!(
            Kinds::dns(dns_activity::Type::Response).0 & nxdomain,
            nxdomain
        );
        assert_eq!(Kinds::DNS.0 & nxdomain, nxdomain);
    }

    fn ntlm(offset: i64, message: ntlm_activity::Type) -> dcwatch_proto::v1::Activity {
        let body = NtlmActivity {
            r#type: message.into(),
            ..NtlmActivity::default()
        };
        activity(offset, "10.0.0.1:50000", "10.0.0.2:445", Body::Ntlm(body))
    }

    fn ldap(offset: i64, operation: ldap_activity::Type) -> dcwatch_proto::v1::Activity {
        let body = LdapActivity {
            r#type: operation.into(),
            ..LdapActivity::default()
        };
        activity(offset, "10.0.0.1:50000", "10.0.0.2:389", Body::Ldap(body))
    }

    fn smb(offset: i64, message: smb_activity::Type) -> dcwatch_proto::v1::Activity {
        let body = SmbActivity {
            r#type: message.into(),
            ..SmbActivity::default()
        };
        activity(offset, "10.0.0.1:50000", "10.0.0.2:445", Body::Smb(body))
    }

    fn dns(offset: i64, message: dns_activity::Type, rcode: u32) -> dcwatch_proto::v1::Activity {
        let body = DnsActivity {
            r#type: message.into(),
            rcode,
            ..DnsActivity::default()
        };
        activity(offset, "10.0.0.2:53", "10.0.0.1:50000", Body::Dns(body))
    }

    #[test]
    fn ntlm_ldap_smb_and_dns_reach_the_detectors_of_their_message_type() {
        use dns_activity::Type as Dns;
        let activities = [
            ntlm(0, ntlm_activity::Type::Negotiate),
            ntlm(1, ntlm_activity::Type::Authenticate),
            ldap(2, ldap_activity::Type::Bind),
            ldap(3, ldap_activity::Type::Modify),
            smb(4, smb_activity::Type::Create),
            smb(5, smb_activity::Type::Compressed),
            dns(6, Dns::Query, 0),
            dns(7, Dns::Response, 0),
            // NXDOMAIN (3): a response of its own kind, still a response.
            dns(8, Dns::Response, 3),
            dns(9, Dns::Axfr, 0),
            // No type: the protocol's "other" kind, which only whole protocols take.
            ntlm(10, ntlm_activity::Type::Unspecified),
        ];
        let kinds = [
            Kinds::ntlm(ntlm_activity::Type::Authenticate),
            Kinds::ldap(ldap_activity::Type::Modify) | Kinds::smb(smb_activity::Type::Compressed),
            Kinds::dns(Dns::Query) | Kinds::DNS_NXDOMAIN,
            Kinds::dns(Dns::Response),
            Kinds::NTLM | Kinds::LDAP | Kinds::SMB | Kinds::DNS,
        ];
        assert_eq!(
            reached(&kinds, &activities),
            [
                (4, 0),
                (0, 1),
                (4, 1),
                (4, 2),
                (1, 3),
                (4, 3),
                (4, 4),
                (1, 5),
                (4, 5),
                (2, 6),
                (4, 6),
                (3, 7),
                (4, 7),
                (2, 8),
                (3, 8),
                (4, 8),
                (4, 9),
                (4, 10)
            ]
        );
    }

    /// What no detector judges reaches none: NTLM's NEGOTIATE and CHALLENGE, SMB other than a
    /// compression header, DNS responses that are not NXDOMAIN, LDAP's unbind. Each was a call
    /// per activity (or several) that returned at once.
    #[test]
    fn messages_no_detector_judges_reach_none_of_them() {
        let detectors = crate::detectors::all();
        let unread = [
            ntlm(0, ntlm_activity::Type::Negotiate),
            ntlm(0, ntlm_activity::Type::Challenge),
            smb(0, smb_activity::Type::Create),
            smb(0, smb_activity::Type::SessionSetup),
            dns(0, dns_activity::Type::Response, 0),
            ldap(0, ldap_activity::Type::Unbind),
        ];
        for activity in unread {
            let kind = index(activity.body.as_ref());
            let readers: Vec<_> = detectors.by_kind[kind]
                .iter()
                .map(|&detector| &detectors.all[detector])
                .collect();
            assert!(
                readers.is_empty(),
                "{:?} reaches {readers:?}",
                activity.body
            );
        }
    }
}
