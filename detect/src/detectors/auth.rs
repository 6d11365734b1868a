//! What the authentication detectors share: who the client of a message is (a KDC's reply goes
//! to it, so its address is the reply's destination), and an authentication attempt read from
//! any protocol that carries one (Kerberos pre-authentication, NTLM, event 4776) with whether
//! it guessed wrong or succeeded.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    AlertEntity, Carrier, Certainty, activity::Body, alert_entity::Role, kerberos_activity,
    ntlm_activity, windows_event_activity,
};

use crate::{
    catalogue::Kind,
    finding::{Finding, address_key, computer_text, source_computer_at, source_name},
    knowledge::account_key,
    observed::Observed,
};

/// Kerberos errors (RFC 4120 7.5.9).
pub(super) const KDC_ERR_PREAUTH_FAILED: i32 = 24;
pub(super) const KDC_ERR_PREAUTH_REQUIRED: i32 = 25;
/// The password was right but has expired: the KDC says so only after the pre-authentication
/// checked out (MS-KILE 3.3.5.7.1), and kerbrute reports it as a found password.
const KDC_ERR_KEY_EXPIRED: i32 = 23;
/// NTSTATUS of a wrong password: STATUS_WRONG_PASSWORD, and STATUS_LOGON_FAILURE, which SMB and
/// LDAP servers answer for it (MS-ERREF 2.3.1).
pub(super) const STATUS_WRONG_PASSWORD: u32 = 0xC000_006A;
pub(super) const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
/// NTSTATUS of a right password the account may not use until it is changed
/// (STATUS_PASSWORD_EXPIRED, STATUS_PASSWORD_MUST_CHANGE, MS-ERREF 2.3.1): Windows answers them
/// only after the password checked out, and NetExec reports them as found passwords.
const STATUS_PASSWORD_EXPIRED: u32 = 0xC000_0071;
const STATUS_PASSWORD_MUST_CHANGE: u32 = 0xC000_0224;
/// Event 4776: the DC validated NTLM credentials.
pub(super) const EVENT_CREDENTIAL_VALIDATION: u32 = 4776;

/// Whether the message went from a server to its client (a KDC's reply, an NTLM CHALLENGE).
pub(super) fn from_server(seen: &Observed<'_>) -> bool {
    use kerberos_activity::Type;
    match seen.body() {
        Some(Body::Kerberos(kerberos)) => matches!(
            Type::try_from(kerberos.r#type),
            Ok(Type::AsRep | Type::TgsRep | Type::KrbError | Type::ApRep)
        ),
        Some(Body::Ntlm(ntlm)) => ntlm.r#type == ntlm_activity::Type::Challenge as i32,
        _ => false,
    }
}

/// The client's address: the sender of a request, the destination of a reply.
pub(super) fn client_address(seen: &Observed<'_>) -> Option<IpAddr> {
    if from_server(seen) {
        seen.dst
    } else {
        seen.src
    }
}

/// The server's address: the destination of a request, the sender of a reply.
pub(super) fn server_address(seen: &Observed<'_>) -> Option<IpAddr> {
    if from_server(seen) {
        seen.src
    } else {
        seen.dst
    }
}

/// The primary key of what a client address did (`finding::source_key` for either direction).
pub(super) fn client_key(seen: &Observed<'_>) -> String {
    address_key(client_address(seen))
}

/// The client as a description names it: `WS01 (10.0.0.5)`.
pub(super) fn client_text(seen: &Observed<'_>) -> String {
    computer_text(source_name(seen), client_address(seen))
}

/// Whether the client's name was resolved with high certainty.
pub(super) fn client_resolved_high(seen: &Observed<'_>) -> bool {
    seen.activity
        .source_computer
        .as_ref()
        .is_some_and(|computer| {
            computer.certainty() == Certainty::High && !computer.name.is_empty()
        })
}

/// A finding on one activity whose source computer is the client, whichever way it went.
pub(super) fn client_finding(
    kind: &'static Kind,
    key: String,
    seen: &Observed<'_>,
    summary: impl Into<String>,
) -> Finding {
    Finding::from_source(
        kind,
        key,
        seen,
        summary,
        source_computer_at(seen, client_address(seen)),
    )
}

/// Where an attempt came from: an address on the wire, or the workstation name a 4776 names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Origin {
    Address(IpAddr),
    Workstation(String),
}

impl Origin {
    /// A finding on an attempt from this origin: its source computer is the client address, or
    /// the workstation a 4776 names (the event's sender is the DC, not the client).
    pub(super) fn finding(
        &self,
        kind: &'static Kind,
        seen: &Observed<'_>,
        summary: impl Into<String>,
    ) -> Finding {
        match self {
            Self::Address(_) => client_finding(kind, self.key(), seen, summary),
            Self::Workstation(name) => Finding::from_source(
                kind,
                self.key(),
                seen,
                summary,
                AlertEntity {
                    role: Role::SourceComputer.into(),
                    name: name.clone(),
                    ..AlertEntity::default()
                },
            ),
        }
    }

    /// How a description names the origin.
    pub(super) fn text(&self, seen: &Observed<'_>) -> String {
        match self {
            Self::Address(_) => client_text(seen),
            Self::Workstation(name) => format!("workstation {name} (event 4776)"),
        }
    }

    /// The profile of the origin (its learned baseline, Part II).
    pub(super) fn profile_key(&self) -> String {
        match self {
            Self::Address(ip) => crate::profiling::computer_key(*ip),
            Self::Workstation(name) => crate::profiles::Subject::Computer.key(name),
        }
    }

    /// The primary key of what the origin did.
    pub(super) fn key(&self) -> String {
        match self {
            Self::Address(ip) => address_key(Some(*ip)),
            Self::Workstation(name) => format!("src:{name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guess {
    Wrong,
    Right,
}

/// One authentication attempt with a password (or a key derived from it).
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub origin: Origin,
    /// `LAB\alice` or `alice`.
    pub account: String,
    /// `account_key` of it: `alice`.
    pub key: String,
    pub guess: Guess,
    /// "Kerberos", "NTLM", "event 4776".
    pub via: &'static str,
    /// NTLM's claimed workstation, for matching a 4776 to the wire attempt it logs.
    pub workstation: String,
}

impl Attempt {
    /// What says the guess was wrong or right, for an alert's `relied_on`.
    pub(super) fn basis(&self) -> &'static str {
        match self.via {
            "Kerberos" => "traffic: the KDC's PREAUTH_FAILED answers (and AS-REPs for a guess)",
            "NTLM" => "traffic: the NTLM carrier's answers (wrong password, logon failure)",
            _ => "event 4776: the DC's credential validation status",
        }
    }
}

/// The attempt an activity shows: a Kerberos pre-authentication that failed (24) or an AS-REP,
/// an NTLM AUTHENTICATE with its carrier's outcome (an NTSTATUS over SMB, invalidCredentials
/// over LDAP, 401 over HTTP), a 4776 with its status. Other failures
/// (unknown user, locked out, clock skew) are not password guesses.
pub(super) fn attempt(seen: &Observed<'_>) -> Option<Attempt> {
    let (origin, account, guess, via, workstation) = match seen.body()? {
        Body::Kerberos(kerberos) => {
            use kerberos_activity::Type;
            let guess = match Type::try_from(kerberos.r#type).ok()? {
                Type::KrbError if kerberos.error_code == KDC_ERR_PREAUTH_FAILED => Guess::Wrong,
                Type::KrbError if kerberos.error_code == KDC_ERR_KEY_EXPIRED => Guess::Right,
                Type::AsRep => Guess::Right,
                _ => return None,
            };
            if kerberos.client.is_empty() {
                return None;
            }
            let account = if kerberos.client_realm.is_empty() {
                kerberos.client.clone()
            } else {
                format!("{}\\{}", kerberos.client_realm, kerberos.client)
            };
            (
                Origin::Address(seen.dst?),
                account,
                guess,
                "Kerberos",
                String::new(),
            )
        }
        Body::Ntlm(ntlm) => {
            if ntlm.r#type != ntlm_activity::Type::Authenticate as i32
                || ntlm.user.is_empty()
                || ntlm.version == ntlm_activity::Version::Anonymous as i32
            {
                return None;
            }
            let guess = if seen.succeeded()
                || (seen.failed() && is_right_but_expired(outcome_code(seen)))
            {
                Guess::Right
            } else if seen.failed() && carrier_says_wrong_password(seen) {
                Guess::Wrong
            } else {
                return None;
            };
            let account = if ntlm.domain.is_empty() {
                ntlm.user.clone()
            } else {
                format!("{}\\{}", ntlm.domain, ntlm.user)
            };
            (
                Origin::Address(seen.src?),
                account,
                guess,
                "NTLM",
                ntlm.workstation.to_lowercase(),
            )
        }
        Body::WindowsEvent(event) => {
            if event.r#type != windows_event_activity::Type::Event as i32
                || event.event_id != EVENT_CREDENTIAL_VALIDATION
                || !event.has_status
                || event.workstation.is_empty()
            {
                return None;
            }
            let guess = if event.status == 0 || is_right_but_expired(event.status) {
                Guess::Right
            } else if is_wrong_password(event.status) {
                Guess::Wrong
            } else {
                return None;
            };
            let target = event.target.as_ref()?;
            if target.name.is_empty() {
                return None;
            }
            let account = if target.domain.is_empty() {
                target.name.clone()
            } else {
                format!("{}\\{}", target.domain, target.name)
            };
            let workstation = event.workstation.to_lowercase();
            (
                Origin::Workstation(workstation.clone()),
                account,
                guess,
                "event 4776",
                workstation,
            )
        }
        _ => return None,
    };
    Some(Attempt {
        key: account_key(&account),
        origin,
        account,
        guess,
        via,
        workstation,
    })
}

fn is_wrong_password(status: u32) -> bool {
    matches!(status, STATUS_WRONG_PASSWORD | STATUS_LOGON_FAILURE)
}

fn is_right_but_expired(status: u32) -> bool {
    matches!(
        status,
        STATUS_PASSWORD_EXPIRED | STATUS_PASSWORD_MUST_CHANGE
    )
}

/// LDAP result invalidCredentials (RFC 4511), which an NTLM bind's failure answers.
const LDAP_INVALID_CREDENTIALS: u32 = 49;
/// HTTP 401 to an AUTHENTICATE: the credentials were refused (the challenge step's 401 answers
/// the NEGOTIATE, not the AUTHENTICATE).
const HTTP_UNAUTHORIZED: u32 = 401;

/// Whether an NTLM AUTHENTICATE's carrier answered "wrong password", in its own codes.
fn carrier_says_wrong_password(seen: &Observed<'_>) -> bool {
    let code = outcome_code(seen);
    match seen.activity.carrier() {
        Carrier::Ldap => code == LDAP_INVALID_CREDENTIALS || is_wrong_password(code),
        Carrier::Http => code == HTTP_UNAUTHORIZED || is_wrong_password(code),
        _ => is_wrong_password(code),
    }
}

fn outcome_code(seen: &Observed<'_>) -> u32 {
    seen.activity
        .outcome
        .as_ref()
        .map_or(0, |outcome| outcome.code)
}

/// A 4776 logs on the DC the NTLM validation a sensor may also have seen on the wire; within
/// this long of a wire attempt for the same account and workstation it is the same attempt.
pub(super) const ECHO_WITHIN: crate::time::Millis = 5 * crate::time::SECOND;
/// Wire attempts remembered for matching their 4776.
pub(super) const MAX_ECHOES: usize = 16_384;

/// An echo's key as its attempt holds it (account key, workstation, wrong): hashed and compared
/// as the owned key, so looking it up copies nothing.
#[derive(Hash)]
struct EchoRef<'a>((&'a str, &'a str, bool));

impl EchoRef<'_> {
    fn owned(&self) -> (String, String, bool) {
        let (key, workstation, wrong) = self.0;
        (key.to_owned(), workstation.to_owned(), wrong)
    }
}

impl hashbrown::Equivalent<(String, String, bool)> for EchoRef<'_> {
    fn equivalent(&self, (key, workstation, wrong): &(String, String, bool)) -> bool {
        self.0 == (key.as_str(), workstation.as_str(), *wrong)
    }
}

/// Recent NTLM attempts seen on the wire, so a 4776 logging one is not counted twice.
#[derive(Debug)]
pub(super) struct Echoes {
    wire: crate::bounded::BoundedMap<(String, String, bool), crate::time::Millis>,
}

impl Default for Echoes {
    fn default() -> Self {
        Self {
            wire: crate::bounded::BoundedMap::new(MAX_ECHOES),
        }
    }
}

impl Echoes {
    /// Whether the attempt is new: a wire NTLM attempt is remembered, a 4776 matching one is not
    /// new.
    pub(super) fn is_new(&mut self, attempt: &Attempt, time: crate::time::Millis) -> bool {
        let slot = EchoRef((
            &attempt.key,
            &attempt.workstation,
            attempt.guess == Guess::Wrong,
        ));
        match attempt.via {
            "NTLM" if !attempt.workstation.is_empty() => {
                *self.wire.touch_with(&slot, EchoRef::owned, time, || time) = time;
                true
            }
            "event 4776" => self
                .wire
                .get_ref(&slot)
                .is_none_or(|wire| time.abs_diff(*wire) > ECHO_WITHIN.unsigned_abs()),
            _ => true,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.wire.len()
    }

    pub(super) fn evicted(&self) -> u64 {
        self.wire.evicted()
    }
}
