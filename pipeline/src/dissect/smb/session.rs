//! Logons: session setups, their tokens handed to Kerberos and NTLM, and the account each
//! session id stands for.

use super::{
    Account, Activity, Carrier, Logon, MAX_SESSIONS_PER_FLOW, Mechanism, NtStatus, Seen, Sink,
    SmbSession, Status, activity, finish, gss, outcome, timestamp,
};

impl SmbSession {
    /// The activities of a session setup's token, and what they say about the logon.
    pub(super) fn tokens(
        &self,
        token: &[u8],
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> (Logon, Vec<Activity>) {
        let mut carried = Vec::new();
        if !gss::token(token, seen, Carrier::Smb, &mut carried) {
            sink.counters.unreadable_tokens += 1;
        }
        let mut logon = Logon::default();
        for activity in &carried {
            match &activity.body {
                Some(activity::Body::Ntlm(ntlm)) => {
                    logon.mechanism = Mechanism::Ntlm;
                    if ntlm.r#type
                        == i32::from(dcwatch_proto::v1::ntlm_activity::Type::Authenticate)
                    {
                        logon.user.clone_from(&ntlm.user);
                        logon.domain.clone_from(&ntlm.domain);
                        if ntlm.user.is_empty() {
                            logon.mechanism = Mechanism::Anonymous;
                        }
                    }
                }
                Some(activity::Body::Kerberos(_)) => logon.mechanism = Mechanism::Kerberos,
                _ => {}
            }
        }
        (logon, carried)
    }

    pub(super) fn server_tokens(
        &self,
        token: &[u8],
        seen: &Seen,
        out: &mut Vec<Activity>,
        sink: &mut Sink<'_>,
    ) {
        if !gss::token(token, seen, Carrier::Smb, out) {
            sink.counters.unreadable_tokens += 1;
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one answered setup leg, read once"
    )]
    pub(super) fn setup_answered(
        &mut self,
        session: u64,
        mut logon: Logon,
        native_os: String,
        mut carried: Vec<Activity>,
        activity: Option<Activity>,
        (status, guest, null, encrypt): (NtStatus, bool, bool, bool),
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        // What earlier legs learnt (an NTLM NEGOTIATE says NTLM before the AUTHENTICATE names
        // the user).
        if let Some(earlier) = self.setups.remove(&session) {
            if logon.mechanism == Mechanism::Unspecified {
                logon.mechanism = earlier.mechanism;
            }
            self.release_entry(earlier.user.len() + earlier.domain.len());
            if logon.user.is_empty() {
                logon.user = earlier.user;
                logon.domain = earlier.domain;
            }
        }
        let step = status == NtStatus::MORE_PROCESSING_REQUIRED;
        let mut result = outcome(!status.is_error(), status.0, status.name());
        if step {
            result.status = Status::Unspecified.into();
        }
        let time = timestamp(seen.time_ns);
        for token in &mut carried {
            token.outcome = Some(result.clone());
            token.time = Some(time);
        }
        sink.out.extend(carried);
        if step {
            if self.setups.len() < MAX_SESSIONS_PER_FLOW
                && self.charge_entry(logon.user.len() + logon.domain.len())
            {
                self.setups.insert(session, logon);
            }
            return;
        }
        if guest {
            logon.mechanism = Mechanism::Guest;
        } else if null {
            logon.mechanism = Mechanism::Anonymous;
        }
        let Some(mut activity) = activity else {
            return;
        };
        if let Some(activity::Body::Smb(body)) = &mut activity.body {
            body.session_id = session;
            body.mechanism = logon.mechanism.into();
            body.user.clone_from(&logon.user);
            body.domain.clone_from(&logon.domain);
            body.guest = guest;
            body.null_session = null;
            body.encrypt_data = encrypt;
            body.native_os = native_os;
        }
        if !logon.user.is_empty() {
            activity.account = Some(Account {
                domain: logon.domain.clone(),
                name: logon.user.clone(),
                sid: String::new(),
                tags: Vec::new(),
            });
        }
        if !status.is_error() {
            // A logon replaced gives its charge back before the new one is charged.
            let charge = logon.user.len() + logon.domain.len();
            let replaced = self.logons.remove(&session);
            if let Some(old) = &replaced {
                self.release_entry(old.user.len() + old.domain.len());
            }
            if (replaced.is_some() || self.logons.len() < MAX_SESSIONS_PER_FLOW)
                && self.charge_entry(charge)
            {
                self.logons.insert(session, logon);
            }
        }
        sink.out.push(finish(activity, status, seen));
    }

    pub(super) fn forget_logon(&mut self, session: u64) {
        if let Some(logon) = self.logons.remove(&session) {
            self.release_entry(logon.user.len() + logon.domain.len());
        }
    }

    pub(super) fn with_account(&self, mut activity: Activity, session: u64) -> Activity {
        if let Some(logon) = self.logons.get(&session)
            && !logon.user.is_empty()
        {
            activity.account = Some(Account {
                domain: logon.domain.clone(),
                name: logon.user.clone(),
                sid: String::new(),
                tags: Vec::new(),
            });
        }
        activity
    }
}
