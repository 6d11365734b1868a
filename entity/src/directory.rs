//! The directory, indexed for the questions the detectors ask: which account is this name as the
//! wire spells it, which account owns this SPN, is this account sensitive and why.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{
    model::{Domain, Object, ObjectKind},
    sensitive::{self, SensitiveGroup},
    tag::{Tag, TagName},
    uac::Uac,
};

/// How deep group nesting is followed; real forests rarely pass 10.
pub const MAX_NESTING_DEPTH: usize = 32;
/// An account created this recently is tagged new.
pub const NEW_ACCOUNT_MS: i64 = 30 * 24 * 3600 * 1000;

/// What the configuration adds to the directory's own facts.
#[derive(Clone, Debug, Default)]
pub struct TagConfig {
    /// Accounts and computers tagged honeytoken, by any name form `Directory::account` takes.
    pub honeytokens: Vec<String>,
    /// Groups or accounts tagged sensitive beyond the built-in list.
    pub sensitive: Vec<String>,
}

/// The forest's domains and objects, with indices and tags computed once.
#[derive(Debug, Default)]
pub struct Directory {
    domains: Vec<Domain>,
    objects: Vec<Object>,
    tags: Vec<Vec<Tag>>,
    /// Transitive group DNs of each object, in breadth-first order.
    groups: Vec<Vec<String>>,
    by_sid: HashMap<String, usize>,
    by_dn: HashMap<String, usize>,
    by_sam: HashMap<String, Vec<usize>>,
    by_upn: HashMap<String, usize>,
    by_spn: HashMap<String, usize>,
    by_dns_name: HashMap<String, usize>,
}

fn key(text: &str) -> String {
    text.to_lowercase()
}

impl Directory {
    /// Indexes `objects` and tags them as of `now_ms` (Unix milliseconds: "new" and "expired"
    /// are relative to it). Deleted objects are kept (a ticket for one is a forgery) but never
    /// tagged.
    pub fn new(
        domains: Vec<Domain>,
        objects: Vec<Object>,
        config: &TagConfig,
        now_ms: i64,
    ) -> Self {
        let mut directory = Self {
            domains,
            objects,
            ..Self::default()
        };
        for (index, object) in directory.objects.iter().enumerate() {
            if !object.sid.is_empty() {
                directory.by_sid.insert(key(&object.sid), index);
            }
            if !object.dn.is_empty() {
                directory.by_dn.insert(key(&object.dn), index);
            }
            if !object.sam_account_name.is_empty() {
                directory
                    .by_sam
                    .entry(key(&object.sam_account_name))
                    .or_default()
                    .push(index);
            }
            if !object.upn.is_empty() {
                directory.by_upn.insert(key(&object.upn), index);
            }
            for spn in &object.spns {
                directory.by_spn.insert(key(spn), index);
            }
            if !object.dns_host_name.is_empty() {
                directory
                    .by_dns_name
                    .insert(key(&object.dns_host_name), index);
            }
        }
        directory.groups = (0..directory.objects.len())
            .map(|index| directory.transitive_groups(index))
            .collect();
        directory.tags = (0..directory.objects.len())
            .map(|index| directory.compute_tags(index, config, now_ms))
            .collect();
        directory
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn domains(&self) -> &[Domain] {
        &self.domains
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.iter()
    }

    /// Accounts that are not deleted: users and computers.
    pub fn live_account_count(&self) -> usize {
        self.objects
            .iter()
            .filter(|object| {
                !object.deleted && matches!(object.kind, ObjectKind::User | ObjectKind::Computer)
            })
            .count()
    }

    pub fn by_sid(&self, sid: &str) -> Option<&Object> {
        self.by_sid
            .get(&key(sid))
            .map(|&index| &self.objects[index])
    }

    pub fn by_dn(&self, dn: &str) -> Option<&Object> {
        self.by_dn.get(&key(dn)).map(|&index| &self.objects[index])
    }

    /// A computer by its DNS name (`ws01.lab.example`), or by its bare host name when only one
    /// computer has it.
    pub fn by_dns_name(&self, name: &str) -> Option<&Object> {
        let name = key(name.trim_end_matches('.'));
        if let Some(&index) = self.by_dns_name.get(&name) {
            return Some(&self.objects[index]);
        }
        if name.contains('.') {
            return None;
        }
        self.account_in(&format!("{name}$"), None)
    }

    /// The account owning a service principal name (`MSSQLSvc/sql01.lab.example:1433`); a
    /// `host/NAME` SPN a computer answers without listing it resolves to that computer.
    pub fn spn_owner(&self, spn: &str) -> Option<&Object> {
        if let Some(&index) = self.by_spn.get(&key(spn)) {
            return Some(&self.objects[index]);
        }
        let (service, host) = spn.split_once('/')?;
        let host = host.split([':', '/']).next().unwrap_or(host);
        if ["host", "cifs", "ldap", "http", "rpcss", "gc", "krbtgt"]
            .iter()
            .any(|known| service.eq_ignore_ascii_case(known))
        {
            return self.by_dns_name(host);
        }
        None
    }

    /// The account a name designates in any form the wire uses: `alice`, `ALICE`, `LAB\alice`,
    /// `alice@LAB.EXAMPLE`, `alice@lab.example` (a UPN), `WS01$`, `host/ws01.lab.example`.
    pub fn account(&self, name: &str) -> Option<&Object> {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        if let Some((domain, sam)) = name.split_once('\\') {
            return self.account_in(sam, Some(domain));
        }
        if name.contains('/') {
            return self.spn_owner(name);
        }
        if let Some((sam, realm)) = name.rsplit_once('@') {
            if let Some(&index) = self.by_upn.get(&key(name)) {
                return Some(&self.objects[index]);
            }
            return self.account_in(sam, Some(realm));
        }
        self.account_in(name, None)
    }

    /// An account by sAMAccountName, in `domain` (NetBIOS or DNS name) when given and known.
    pub fn account_in(&self, sam: &str, domain: Option<&str>) -> Option<&Object> {
        let candidates = self.by_sam.get(&key(sam))?;
        let wanted = domain.and_then(|domain| self.domain(domain));
        let chosen = match wanted {
            Some(domain) => candidates.iter().find(|&&index| {
                self.objects[index]
                    .domain
                    .eq_ignore_ascii_case(&domain.name)
            }),
            None => candidates.first(),
        };
        chosen
            .or(candidates.first())
            .map(|&index| &self.objects[index])
    }

    /// A domain by its DNS or NetBIOS name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|domain| {
            domain.name.eq_ignore_ascii_case(name) || domain.netbios_name.eq_ignore_ascii_case(name)
        })
    }

    /// Tags of an object (which must come from this directory).
    pub fn tags(&self, object: &Object) -> &[Tag] {
        self.index_of(object)
            .map(|index| self.tags[index].as_slice())
            .unwrap_or_default()
    }

    pub fn has_tag(&self, object: &Object, name: TagName) -> bool {
        self.tags(object).iter().any(|tag| tag.name == name)
    }

    /// The DNs of every group an object belongs to, directly or through nesting, and its
    /// primary group.
    pub fn groups(&self, object: &Object) -> &[String] {
        self.index_of(object)
            .map(|index| self.groups[index].as_slice())
            .unwrap_or_default()
    }

    fn index_of(&self, object: &Object) -> Option<usize> {
        let index = if object.dn.is_empty() {
            self.by_sid.get(&key(&object.sid))
        } else {
            self.by_dn.get(&key(&object.dn))
        }?;
        Some(*index)
    }

    fn primary_group_dn(&self, object: &Object) -> Option<String> {
        let rid = object.primary_group_id?;
        let domain_sid = object.sid.rsplit_once('-')?.0;
        let group = self.by_sid(&format!("{domain_sid}-{rid}"))?;
        Some(group.dn.clone())
    }

    /// Breadth-first over memberOf, each group once (cycles end), at most MAX_NESTING_DEPTH deep.
    fn transitive_groups(&self, index: usize) -> Vec<String> {
        let object = &self.objects[index];
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue: VecDeque<(String, usize)> = object
            .member_of
            .iter()
            .cloned()
            .chain(self.primary_group_dn(object))
            .map(|dn| (dn, 1))
            .collect();
        while let Some((dn, depth)) = queue.pop_front() {
            if depth > MAX_NESTING_DEPTH || !seen.insert(key(&dn)) {
                continue;
            }
            if let Some(group) = self.by_dn(&dn) {
                queue.extend(
                    group
                        .member_of
                        .iter()
                        .map(|parent| (parent.clone(), depth + 1)),
                );
            }
            order.push(dn);
        }
        order
    }

    /// The path from an object up to a sensitive group: `["IT-Admins", "Domain Admins"]`.
    fn sensitive_chain(&self, index: usize, config: &TagConfig) -> Option<Vec<String>> {
        let object = &self.objects[index];
        let mut parent: HashMap<String, Option<String>> = HashMap::new();
        let mut queue: VecDeque<(String, usize)> = VecDeque::new();
        for dn in object
            .member_of
            .iter()
            .cloned()
            .chain(self.primary_group_dn(object))
        {
            if parent.insert(key(&dn), None).is_none() {
                queue.push_back((dn, 1));
            }
        }
        while let Some((dn, depth)) = queue.pop_front() {
            let Some(group) = self.by_dn(&dn) else {
                continue;
            };
            if self.is_sensitive_group(group, config) {
                let mut chain = vec![name_of(group)];
                let mut at = parent.get(&key(&dn)).cloned().flatten();
                while let Some(child) = at {
                    chain.push(self.by_dn(&child).map_or_else(|| child.clone(), name_of));
                    at = parent.get(&key(&child)).cloned().flatten();
                }
                chain.reverse();
                return Some(chain);
            }
            if depth >= MAX_NESTING_DEPTH {
                continue;
            }
            for next in &group.member_of {
                if let std::collections::hash_map::Entry::Vacant(slot) = parent.entry(key(next)) {
                    slot.insert(Some(dn.clone()));
                    queue.push_back((next.clone(), depth + 1));
                }
            }
        }
        None
    }

    fn is_sensitive_group(&self, group: &Object, config: &TagConfig) -> bool {
        sensitive::group(group).is_some() || configured(&config.sensitive, group)
    }

    fn compute_tags(&self, index: usize, config: &TagConfig, now_ms: i64) -> Vec<Tag> {
        let object = &self.objects[index];
        let mut tags = Vec::new();
        if object.deleted {
            return tags;
        }
        if configured(&config.honeytokens, object) {
            tags.push(Tag::new(TagName::Honeytoken, "configured as a honeytoken"));
        }
        if let Some(SensitiveGroup { name, .. }) = sensitive::group(object) {
            tags.push(Tag::new(
                TagName::Sensitive,
                format!("{name}, a sensitive group"),
            ));
        } else if configured(&config.sensitive, object) {
            tags.push(Tag::new(TagName::Sensitive, "configured as sensitive"));
        } else if let Some(chain) = self.sensitive_chain(index, config) {
            let reason = match chain.split_last() {
                Some((top, [])) => format!("member of {top}"),
                Some((top, via)) => {
                    let via: Vec<&str> = via.iter().rev().map(String::as_str).collect();
                    format!("member of {top} via {}", via.join(" via "))
                }
                None => String::new(),
            };
            tags.push(Tag::new(TagName::Sensitive, reason));
        }
        if object.uac.has(Uac::PARTIAL_SECRETS_ACCOUNT) && object.kind == ObjectKind::Computer {
            tags.push(Tag::new(
                TagName::Rodc,
                "userAccountControl PARTIAL_SECRETS_ACCOUNT",
            ));
        } else if object.uac.has(Uac::SERVER_TRUST_ACCOUNT) && object.kind == ObjectKind::Computer {
            tags.push(Tag::new(
                TagName::Dc,
                "userAccountControl SERVER_TRUST_ACCOUNT",
            ));
        }
        if object.kind == ObjectKind::Computer {
            if object
                .spns
                .iter()
                .any(|spn| spn.to_lowercase().starts_with("exchangemdb/"))
            {
                tags.push(Tag::new(
                    TagName::ExchangeServer,
                    "exchangeMDB service principal",
                ));
            }
            if object
                .spns
                .iter()
                .any(|spn| spn.to_lowercase().starts_with("dns/"))
            {
                tags.push(Tag::new(TagName::DnsServer, "DNS service principal"));
            }
        }
        if object.uac.has(Uac::ACCOUNTDISABLE) {
            tags.push(Tag::new(
                TagName::Disabled,
                "userAccountControl ACCOUNTDISABLE",
            ));
        }
        if object.uac.has(Uac::DONT_REQ_PREAUTH) {
            tags.push(Tag::new(
                TagName::DontReqPreauth,
                "userAccountControl DONT_REQ_PREAUTH",
            ));
        }
        if object
            .account_expires
            .is_some_and(|expires| expires > 0 && expires < now_ms)
        {
            tags.push(Tag::new(TagName::Expired, "accountExpires is past"));
        }
        if object
            .when_created
            .is_some_and(|created| now_ms.saturating_sub(created) < NEW_ACCOUNT_MS)
        {
            tags.push(Tag::new(TagName::New, "created in the last 30 days"));
        }
        tags
    }
}

/// The name an analyst knows an object by: its sAMAccountName, else its DN's first RDN.
pub fn name_of(object: &Object) -> String {
    if !object.sam_account_name.is_empty() {
        return object.sam_account_name.clone();
    }
    object
        .dn
        .split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map_or_else(|| object.dn.clone(), |(_, value)| value.to_owned())
}

/// Whether a configured list names an object (by sAMAccountName, DN, SID or UPN).
fn configured(list: &[String], object: &Object) -> bool {
    list.iter().any(|entry| {
        let entry = entry.trim();
        let sam = entry.rsplit(['\\']).next().unwrap_or(entry);
        (!object.sam_account_name.is_empty() && object.sam_account_name.eq_ignore_ascii_case(sam))
            || (!object.dn.is_empty() && object.dn.eq_ignore_ascii_case(entry))
            || (!object.sid.is_empty() && object.sid.eq_ignore_ascii_case(entry))
            || (!object.upn.is_empty() && object.upn.eq_ignore_ascii_case(entry))
    })
}
