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

use dcwatch_proto::v1::{DceRpcActivity, activity::Body, dce_rpc_activity, kerberos_activity};

use super::{Context, Detector, Key};
use crate::{observed::Observed, time::Millis};

/// A set of activity kinds: the body's protocol, or no body at all; for DCE-RPC, requests to
/// each interface of [`Interface`] apart from everything else; for Kerberos, each message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u64);

/// Kinds there are: every body variant, "no body", one per DCE-RPC interface, one per
/// Kerberos message type.
const COUNT: usize = FIRST_MESSAGE + MESSAGES;
/// The kind of Kerberos activities of no known message type.
const OTHER_KERBEROS: usize = 1;
/// The first Kerberos message type's kind (AS-REQ, numbered 1), after the interfaces'.
const FIRST_MESSAGE: usize = FIRST_INTERFACE + Interface::ALL.len();
/// Kerberos message types, AS-REQ (1) to KRB-ERROR (7).
const MESSAGES: usize = kerberos_activity::Type::KrbError as usize;
/// Not a kind: the flag of [`Kinds::ALARM`], after the kinds.
const ALARM: usize = COUNT;
/// The kind of DCE-RPC activities no interface kind takes: binds, and requests to other
/// interfaces or to one whose bind was not seen.
const OTHER_DCERPC: usize = 6;
/// The first interface's kind: after the body variants.
const FIRST_INTERFACE: usize = 12;

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
    const ALL: [Self; 16] = [
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

    /// The name the sensor's parser gives it (parsers' `dcerpc::interfaces::INTERFACES`).
    const fn name(self) -> &'static str {
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
    pub const KERBEROS: Self =
        Self(Self::of(OTHER_KERBEROS).0 | (((1 << MESSAGES) - 1) << FIRST_MESSAGE));
    pub const NTLM: Self = Self::of(2);
    pub const LDAP: Self = Self::of(3);
    pub const DNS: Self = Self::of(4);
    pub const SMB: Self = Self::of(5);
    /// Every DCE-RPC activity: binds and requests to any interface.
    pub const DCERPC: Self = Self(Self::of(OTHER_DCERPC).0 | Self::INTERFACES.0);
    pub const RADIUS: Self = Self::of(9);
    pub const WINDOWS_EVENT: Self = Self::of(10);
    pub const NTP: Self = Self::of(11);
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
        match message {
            kerberos_activity::Type::Unspecified => Self(0),
            message => Self::of(FIRST_MESSAGE + message as usize - 1),
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
        Some(Body::Kerberos(kerberos)) => {
            match kerberos_activity::Type::try_from(kerberos.r#type) {
                Ok(kerberos_activity::Type::Unspecified) | Err(_) => OTHER_KERBEROS,
                Ok(message) => FIRST_MESSAGE + message as usize - 1,
            }
        }
        Some(Body::Ntlm(_)) => 2,
        Some(Body::Ldap(_)) => 3,
        Some(Body::Dns(_)) => 4,
        Some(Body::Smb(_)) => 5,
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
    pub fn new(all: Vec<Box<dyn Detector>>) -> Self {
        let by_kind = std::array::from_fn(|kind| {
            (0..all.len())
                .filter(|&detector| all[detector].kinds().contains(kind))
                .collect()
        });
        Self {
            alarms: Alarms::new(&all),
            all,
            by_kind,
        }
    }

    /// Only the detectors keyed by `key`, still sorted by kind.
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
            if judge.kinds().contains(kind) || alarms.at[detector] <= seen.time {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dcwatch_proto::v1::{
        DceRpcActivity, DnsActivity, KerberosActivity, NtlmActivity, activity::Body,
        dce_rpc_activity,
    };

    use super::{Detectors, Interface, Kinds};
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
}
