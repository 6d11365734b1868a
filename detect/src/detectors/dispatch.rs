//! Which activities reach which detector. Most detectors read one protocol: handing every
//! activity to all of them cost about 38 calls per activity that returned at once (issue #13's
//! detect-cost). Each detector declares the kinds it reads ([`Detector::kinds`]); the
//! detectors are sorted by kind once, when the engine is made.

use std::ops::BitOr;

use dcwatch_proto::v1::activity::Body;

use super::{Context, Detector, Key};
use crate::observed::Observed;

/// A set of activity kinds: the body's protocol, or no body at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u16);

/// Kinds there are: every body variant and "no body".
const COUNT: usize = 12;

impl Kinds {
    pub const KERBEROS: Self = Self::of(1);
    pub const NTLM: Self = Self::of(2);
    pub const LDAP: Self = Self::of(3);
    pub const DNS: Self = Self::of(4);
    pub const SMB: Self = Self::of(5);
    pub const DCERPC: Self = Self::of(6);
    pub const RADIUS: Self = Self::of(9);
    pub const WINDOWS_EVENT: Self = Self::of(10);
    pub const NTP: Self = Self::of(11);
    /// Every activity, whatever it carries (a detector whose clock releases what it held).
    pub const ALL: Self = Self((1 << COUNT) - 1);

    const fn of(index: usize) -> Self {
        Self(1 << index)
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
        Some(Body::Kerberos(_)) => 1,
        Some(Body::Ntlm(_)) => 2,
        Some(Body::Ldap(_)) => 3,
        Some(Body::Dns(_)) => 4,
        Some(Body::Smb(_)) => 5,
        Some(Body::Dcerpc(_)) => 6,
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
}

impl Detectors {
    pub fn new(all: Vec<Box<dyn Detector>>) -> Self {
        let by_kind = std::array::from_fn(|kind| {
            (0..all.len())
                .filter(|&detector| all[detector].kinds().contains(kind))
                .collect()
        });
        Self { all, by_kind }
    }

    /// Only the detectors keyed by `key`, still sorted by kind.
    #[must_use]
    pub fn keyed_by(self, key: Key) -> Self {
        let mut all = self.all;
        all.retain(|detector| detector.key() == key);
        Self::new(all)
    }

    /// Lets every detector that reads this activity's kind judge it.
    pub fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        for &detector in &self.by_kind[index(seen.body())] {
            self.all[detector].observe(seen, context);
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

    use dcwatch_proto::v1::{DnsActivity, KerberosActivity, NtlmActivity, activity::Body};

    use super::{Detectors, Kinds};
    use crate::{
        Config,
        detectors::{
            Context, Detector,
            testing::{T0, activity},
        },
        knowledge::Knowledge,
        observed::Observed,
        profiles::Profiles,
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
        let log = Arc::new(Mutex::new(Vec::new()));
        let kinds = [
            Kinds::KERBEROS,
            Kinds::DNS | Kinds::NTLM,
            Kinds::ALL,
            Kinds::LDAP,
        ];
        let mut detectors = Detectors::new(
            kinds
                .into_iter()
                .enumerate()
                .map(|(number, kinds)| {
                    Box::new(Noting {
                        number,
                        kinds,
                        log: Arc::clone(&log),
                    }) as Box<dyn Detector>
                })
                .collect(),
        );
        let config = Config::test_mode();
        let knowledge = Knowledge::new(&config, Arc::default());
        let profiles = Profiles::default();
        let mut findings = Vec::new();
        for activity in &activities {
            let seen = Observed::new(activity, "").expect("a timed activity");
            let mut context = Context {
                knowledge: &knowledge,
                profiles: &profiles,
                config: &config,
                findings: &mut findings,
            };
            detectors.observe(&seen, &mut context);
        }
        let log = log.lock().map(|log| log.clone()).unwrap_or_default();
        assert_eq!(
            log,
            [(0, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2), (2, 3)]
        );
    }
}
