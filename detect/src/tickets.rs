//! Facts about tickets and honeytokens the detectors share: which tickets the KDCs issued (by the
//! hash of their cipher, to whom, when, in which etype) so a ticket no KDC issued, or used past
//! its lifetime, stands out; and every name a query may use for a honeytoken.

use std::net::IpAddr;

use dcwatch_entity::{Directory, TagName};
use dcwatch_proto::v1::KerberosActivity;

use crate::{bounded::BoundedMap, knowledge::account_key, observed::Observed, time::Millis};

/// Tickets remembered from the KDCs' replies. A busy domain issues a few tickets per user per
/// hour; this holds a working day of a 20,000-user domain, and the oldest go first.
pub const MAX_LEARNED_TICKETS: usize = 200_000;

/// A ticket as the KDC's reply (AS-REP or TGS-REP) issued it.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    pub client: String,
    pub client_realm: String,
    pub service: String,
    pub issued: Millis,
    /// The etype of the ticket's cipher (the service's key; krbtgt's for a TGT).
    pub etype: i32,
    /// The address the reply went to.
    pub to: Option<IpAddr>,
}

#[derive(Debug)]
pub struct Tickets {
    issued: BoundedMap<Vec<u8>, IssuedTicket>,
}

impl Default for Tickets {
    fn default() -> Self {
        Self {
            issued: BoundedMap::new(MAX_LEARNED_TICKETS),
        }
    }
}

impl Tickets {
    /// Remembers the ticket an AS-REP or TGS-REP carries.
    pub fn learn(&mut self, seen: &Observed<'_>, kerberos: &KerberosActivity) {
        if kerberos.ticket_hash.is_empty() {
            return;
        }
        // Names and hash copied for a new ticket only, not for a reply seen again.
        let slot = self
            .issued
            .touch_ref(kerberos.ticket_hash.as_slice(), seen.time, || {
                IssuedTicket {
                    client: kerberos.client.clone(),
                    client_realm: kerberos.client_realm.clone(),
                    service: kerberos.service.clone(),
                    issued: seen.time,
                    etype: kerberos.ticket_etype,
                    to: seen.dst,
                }
            });
        // A replay of the same reply keeps the first issue time.
        slot.issued = slot.issued.min(seen.time);
    }

    pub fn get(&self, hash: &[u8]) -> Option<&IssuedTicket> {
        self.issued.get_ref(hash)
    }

    pub fn evicted(&self) -> u64 {
        self.issued.evicted()
    }

    pub fn expire(&mut self, before: Millis) {
        self.issued.expire(before);
    }
}

/// A honeytoken and the names a query may use for it.
#[derive(Debug, Clone)]
pub struct Honeytoken {
    /// How alerts name it: its sAMAccountName, or the configured name.
    pub name: String,
    /// Lower case: sAMAccountName (and without its `$`), DN, UPN.
    pub forms: Vec<String>,
    /// Its RID, when the directory knows its SID.
    pub rid: Option<u32>,
    /// Why it is a honeytoken.
    pub reason: String,
}

/// The honeytokens of the directory (its `honeytoken` tag) and of the configuration.
pub fn honeytokens_of(directory: &Directory, configured: &[String]) -> Vec<Honeytoken> {
    let mut found: Vec<Honeytoken> = Vec::new();
    for object in directory.objects() {
        let Some(tag) = directory
            .tags(object)
            .iter()
            .find(|tag| tag.name == TagName::Honeytoken)
        else {
            continue;
        };
        let mut forms = vec![
            object.sam_account_name.to_lowercase(),
            object.sam_account_name.trim_end_matches('$').to_lowercase(),
            object.dn.to_lowercase(),
            object.upn.to_lowercase(),
        ];
        forms.retain(|form| !form.is_empty());
        forms.dedup();
        found.push(Honeytoken {
            name: object.sam_account_name.clone(),
            forms,
            rid: object.rid(),
            reason: format!("directory: {}", tag.reason),
        });
    }
    for name in configured {
        let key = account_key(name);
        if key.is_empty()
            || found
                .iter()
                .any(|honeytoken| honeytoken.forms.contains(&key))
        {
            continue;
        }
        let object = directory.account(name);
        found.push(Honeytoken {
            name: name.clone(),
            forms: vec![key.clone(), key.trim_end_matches('$').to_owned()],
            rid: object.and_then(dcwatch_entity::Object::rid),
            reason: "configuration: a honeytoken".to_owned(),
        });
    }
    found
}
