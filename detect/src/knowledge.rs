//! What the detectors know about who is who: the directory when there is one, the
//! configuration, and what the traffic itself shows (an address that answers as a KDC, or serves
//! LDAP or DRSUAPI, is a domain controller; an account that got an AS-REP without
//! pre-authentication does not require it). Every answer says what it rests on, so an alert can
//! name what it relied on.

use std::{collections::HashSet, net::IpAddr, sync::Arc};

use dcwatch_entity::{Directory, Object, TagName};
use dcwatch_proto::v1::{
    activity::Body, dce_rpc_activity, kerberos_activity, ldap_activity, ntlm_activity,
};

use crate::{
    bounded::BoundedMap,
    config::Config,
    observed::Observed,
    tickets::{Honeytoken, Tickets, honeytokens_of},
    time::Millis,
};

/// Addresses remembered as servers (DCs and DNS servers) from the traffic.
pub const MAX_LEARNED_SERVERS: usize = 4_096;
/// Accounts remembered from the traffic (exists or not, no pre-authentication, AES keys).
pub const MAX_LEARNED_ACCOUNTS: usize = 200_000;

/// A yes or no, with what it rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub yes: bool,
    /// "configuration", "directory", "traffic" (the strongest first): how sure it is.
    pub source: Source,
    pub basis: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Neither the directory nor the traffic said anything: a guess.
    Assumed,
    Traffic,
    Directory,
    Configuration,
}

#[derive(Debug, Default, Clone, Copy)]
struct ServerRoles {
    kdc: bool,
    ldap: bool,
    drsuapi: bool,
}

/// What the traffic says of an account.
#[derive(Debug, Default, Clone, Copy)]
pub struct LearnedAccount {
    /// The KDC answered for it (AS-REP, PREAUTH_REQUIRED, PREAUTH_FAILED...): it exists.
    pub exists: Option<bool>,
    /// The KDC issued it an AS-REP to a request without pre-authentication.
    pub no_preauth: bool,
    /// The KDC offered or issued AES for it.
    pub aes_seen: bool,
}

#[derive(Debug)]
pub struct Knowledge {
    directory: Arc<Directory>,
    configured_dcs: HashSet<IpAddr>,
    configured_dns: HashSet<IpAddr>,
    honeytokens: Vec<String>,
    servers: BoundedMap<IpAddr, ServerRoles>,
    accounts: BoundedMap<String, LearnedAccount>,
    requests: BoundedMap<(IpAddr, u16), AsRequest>,
    flows: BoundedMap<FlowKey, FlowAccount>,
    /// The tickets the KDCs issued, by hash (golden ticket, pass-the-ticket).
    tickets: Tickets,
    /// Every honeytoken with the names a query may use for it, from the directory and the
    /// configuration (recomputed when the directory changes).
    honeytoken_names: Vec<Honeytoken>,
    /// NetBIOS names of computers the traffic shows are DCs (their NTLM CHALLENGE), lower case.
    dc_names: BoundedMap<String, ()>,
    /// Directories set since the start (part of [`Self::dc_generation`]).
    directories_set: u64,
}

/// The account that authenticated a connection (its NTLM AUTHENTICATE, its SMB session setup):
/// the caller of the DCE-RPC requests that follow on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowAccount {
    pub domain: String,
    pub name: String,
}

/// Connections whose authenticated account is remembered.
pub const MAX_AUTHENTICATED_FLOWS: usize = 65_536;

/// An AS-REQ waiting for its answer, by the client's address and port (the KDC answers there).
#[derive(Debug, Clone)]
pub struct AsRequest {
    pub client: String,
    pub pre_authenticated: bool,
    pub etypes: Vec<i32>,
    pub timestamp_etype: i32,
    /// Armoured with FAST (RFC 6113): its etypes say nothing of the client's keys.
    pub fast: bool,
}

/// PA-FX-FAST (RFC 6113): the request is armoured.
pub const PA_FX_FAST: i32 = 136;

/// AS-REQs remembered until their answer.
pub const MAX_PENDING_AS_REQUESTS: usize = 16_384;

/// Kerberos error codes (RFC 4120 7.5.9) that say the principal exists.
const KDC_ERR_PREAUTH_FAILED: i32 = 24;
const KDC_ERR_PREAUTH_REQUIRED: i32 = 25;
const KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = 6;
const KDC_ERR_CLIENT_REVOKED: i32 = 18;
const KDC_ERR_KEY_EXPIRED: i32 = 23;
/// AES128 and AES256 (RFC 3962).
pub fn is_aes(etype: i32) -> bool {
    etype == 17 || etype == 18
}
/// RC4-HMAC (RFC 4757) and its export variant.
pub fn is_rc4(etype: i32) -> bool {
    etype == 23 || etype == 24
}

/// The lookup key of an account name: lower case, without its domain or realm.
pub fn account_key(name: &str) -> String {
    account_name(name).to_lowercase()
}

/// The name without its domain or realm.
pub(crate) fn account_name(name: &str) -> &str {
    let name = name.rsplit('\\').next().unwrap_or(name);
    name.split('@').next().unwrap_or(name)
}

/// Writes [`account_key`] of `name` into `key`, reusing its buffer.
fn write_account_key(key: &mut String, name: &str) {
    let name = account_name(name);
    key.clear();
    if name.is_ascii() {
        key.push_str(name);
        key.make_ascii_lowercase();
    } else {
        key.push_str(&name.to_lowercase());
    }
}

/// A computer name without its domain or `$`, lower case: `WS01.lab.example` and `ws01$` are
/// both `ws01`.
pub fn short_name(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    let name = name.split('.').next().unwrap_or(name);
    name.trim_end_matches('$').to_lowercase()
}

impl Knowledge {
    pub fn new(config: &Config, directory: Arc<Directory>) -> Self {
        Self {
            configured_dcs: config.dc_addresses.iter().copied().collect(),
            configured_dns: config.dns_servers.iter().copied().collect(),
            honeytokens: config
                .honeytokens
                .iter()
                .map(|name| account_key(name))
                .collect(),
            servers: BoundedMap::new(MAX_LEARNED_SERVERS),
            accounts: BoundedMap::new(MAX_LEARNED_ACCOUNTS),
            requests: BoundedMap::new(MAX_PENDING_AS_REQUESTS),
            flows: BoundedMap::new(MAX_AUTHENTICATED_FLOWS),
            tickets: Tickets::default(),
            honeytoken_names: honeytokens_of(&directory, &config.honeytokens),
            dc_names: BoundedMap::new(MAX_LEARNED_SERVERS),
            directory,
            directories_set: 0,
        }
    }

    pub fn set_directory(&mut self, directory: Arc<Directory>) {
        self.honeytoken_names = honeytokens_of(&directory, &self.honeytokens);
        self.directory = directory;
        self.directories_set += 1;
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn has_directory(&self) -> bool {
        !self.directory.is_empty()
    }

    /// Learns from one activity, before the detectors judge it.
    pub fn learn(&mut self, seen: &Observed<'_>) {
        if let Some(account) = &seen.activity.account
            && !account.name.is_empty()
            && match seen.body() {
                // A DCE-RPC bind's NTLM has no outcome of its own: not refused is enough.
                Some(Body::Ntlm(_) | Body::Smb(_)) => !seen.failed(),
                Some(Body::Ldap(_)) => seen.succeeded(),
                _ => false,
            }
        {
            let flow = self
                .flows
                .touch(flow_key(seen), seen.time, FlowAccount::default);
            // A connection's every message names its account: copied when it changes only.
            if flow.name != account.name || flow.domain != account.domain {
                flow.domain.clone_from(&account.domain);
                flow.name.clone_from(&account.name);
            }
        }
        match seen.body() {
            Some(Body::Kerberos(kerberos)) => self.learn_kerberos(seen, kerberos),
            Some(Body::Ldap(ldap))
                if ldap.answered && ldap.r#type != ldap_activity::Type::Sealed as i32 =>
            {
                if let Some(server) = seen.dst {
                    self.servers
                        .touch(server, seen.time, ServerRoles::default)
                        .ldap = true;
                }
            }
            Some(Body::Ntlm(ntlm))
                if ntlm.r#type == ntlm_activity::Type::Challenge as i32
                    && !ntlm.server_nb_computer.is_empty()
                    && seen.src.is_some_and(|server| {
                        self.servers.get(&server).is_some() || self.configured_dcs.contains(&server)
                    }) =>
            {
                self.dc_names
                    .touch(ntlm.server_nb_computer.to_lowercase(), seen.time, || ());
            }
            Some(Body::Dcerpc(rpc))
                if rpc.answered
                    && (rpc.interface_name == "drsuapi"
                        || rpc.contexts.iter().any(|context| {
                            context.interface_name == "drsuapi" && context.result == "acceptance"
                        }))
                    && rpc.r#type != dce_rpc_activity::Type::Unspecified as i32 =>
            {
                if let Some(server) = seen.dst {
                    self.servers
                        .touch(server, seen.time, ServerRoles::default)
                        .drsuapi = true;
                }
            }
            _ => {}
        }
    }

    fn learn_kerberos(
        &mut self,
        seen: &Observed<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
    ) {
        use kerberos_activity::Type;
        let Ok(kind) = Type::try_from(kerberos.r#type) else {
            return;
        };
        if matches!(kind, Type::AsRep | Type::TgsRep | Type::KrbError)
            && let Some(kdc) = seen.src
        {
            self.servers.touch(kdc, seen.time, ServerRoles::default).kdc = true;
        }
        if matches!(kind, Type::AsRep | Type::TgsRep) {
            self.tickets.learn(seen, kerberos);
        }
        if kerberos.client.is_empty() {
            return;
        }
        match kind {
            Type::AsReq => {
                if let Some(client) = seen.src {
                    let request =
                        self.requests
                            .touch((client, seen.src_port), seen.time, || AsRequest {
                                client: String::new(),
                                pre_authenticated: false,
                                etypes: Vec::new(),
                                timestamp_etype: 0,
                                fast: false,
                            });
                    // A client's retries reuse its port: the request's buffers are refilled,
                    // not allocated again.
                    write_account_key(&mut request.client, &kerberos.client);
                    request.pre_authenticated = is_pre_authenticated(kerberos);
                    request.etypes.clone_from(&kerberos.etypes);
                    request.timestamp_etype = kerberos.timestamp_etype;
                    request.fast =
                        kerberos.fast_armor || kerberos.pa_data_types.contains(&PA_FX_FAST);
                }
            }
            Type::AsRep => {
                let key = account_key(&kerberos.client);
                let no_preauth = self
                    .as_request(seen)
                    .is_some_and(|request| request.client == key && !request.pre_authenticated);
                let learned = self.accounts.touch(key, seen.time, LearnedAccount::default);
                learned.exists = Some(true);
                // The reply's encrypted part is in the client's key; its ticket is in krbtgt's.
                learned.aes_seen |= is_aes(kerberos.reply_etype);
                learned.no_preauth |= no_preauth;
            }
            Type::KrbError => {
                let exists = match kerberos.error_code {
                    KDC_ERR_C_PRINCIPAL_UNKNOWN => Some(false),
                    KDC_ERR_PREAUTH_FAILED
                    | KDC_ERR_PREAUTH_REQUIRED
                    | KDC_ERR_CLIENT_REVOKED
                    | KDC_ERR_KEY_EXPIRED => Some(true),
                    _ => None,
                };
                if exists.is_some() {
                    let learned = self.accounts.touch(
                        account_key(&kerberos.client),
                        seen.time,
                        LearnedAccount::default,
                    );
                    learned.exists = exists;
                    learned.aes_seen |= kerberos.offered_etypes.iter().any(|etype| is_aes(*etype));
                }
            }
            _ => {}
        }
    }

    /// The AS-REQ an AS-REP or KRB-ERROR answers (the last one from the address and port it
    /// goes to).
    pub fn as_request(&self, answer: &Observed<'_>) -> Option<&AsRequest> {
        self.requests.get(&(answer.dst?, answer.dst_port))
    }

    /// The account that authenticated the activity's connection, when one did.
    pub fn flow_account(&self, seen: &Observed<'_>) -> Option<&FlowAccount> {
        self.flows.get(&flow_key(seen))
    }

    /// Whether `address` is a domain controller, and on what.
    pub fn domain_controller(&self, address: Option<IpAddr>, computer_name: &str) -> Verdict {
        self.dc_answer(address, computer_name).verdict()
    }

    /// What [`Self::domain_controller`] says, its basis written only when asked: most who ask
    /// let the activity go on the answer alone (a DC replicating is no DCSync), and writing the
    /// basis was an allocation a call.
    pub fn dc_answer(&self, address: Option<IpAddr>, computer_name: &str) -> DcAnswer<'_> {
        DcAnswer {
            reason: address.map(|address| (address, self.dc_reason(address, computer_name))),
        }
    }

    /// Whether `address` is a domain controller, as `domain_controller` says without a computer
    /// name, without writing out its basis (for what asks on every activity).
    pub fn is_domain_controller(&self, address: IpAddr) -> bool {
        self.dc_reason(address, "").yes()
    }

    /// Changes so far of what [`Self::is_domain_controller`] rests on (the servers learned from
    /// the traffic, the directory; the configuration is fixed): while it is the same, so are
    /// its answers.
    pub fn dc_generation(&self) -> u64 {
        self.servers.generation() + self.directories_set
    }

    fn dc_reason<'a>(&'a self, address: IpAddr, computer_name: &str) -> DcReason<'a> {
        if self.configured_dcs.contains(&address) {
            return DcReason::Configured;
        }
        if let Some(domain) = self.directory.domains().iter().find(|domain| {
            domain
                .dc_addresses
                .iter()
                .any(|dc| dc.parse() == Ok(address))
        }) {
            return DcReason::DirectoryDomain(&domain.name);
        }
        if !computer_name.is_empty()
            && let Some(computer) = self.directory.by_dns_name(computer_name)
        {
            return DcReason::DirectoryComputer {
                yes: computer.is_domain_controller(),
                name: &computer.sam_account_name,
            };
        }
        // The configuration's or the directory's list is the authority when there is one:
        // a rogue DC (DCShadow) serves DRSUAPI too, so the traffic must not make it one.
        let listed = !self.configured_dcs.is_empty()
            || self
                .directory
                .domains()
                .iter()
                .any(|domain| !domain.dc_addresses.is_empty());
        if listed {
            return DcReason::NotListed;
        }
        if let Some(roles) = self.servers.get(&address) {
            return DcReason::Served(if roles.drsuapi {
                "served DRSUAPI"
            } else if roles.kdc {
                "answered as a KDC"
            } else {
                "served LDAP"
            });
        }
        DcReason::NeverServed {
            none_configured: self.configured_dcs.is_empty() && !self.has_directory(),
        }
    }

    /// Whether `address` may transfer DNS zones: a configured DNS server, or a DC.
    pub fn dns_server(&self, address: Option<IpAddr>, computer_name: &str) -> Verdict {
        if let Some(address) = address
            && self.configured_dns.contains(&address)
        {
            return verdict(
                true,
                Source::Configuration,
                format!("configuration: {address} is a DNS server"),
            );
        }
        if !computer_name.is_empty()
            && let Some(computer) = self.directory.by_dns_name(computer_name)
            && self.directory.has_tag(computer, TagName::DnsServer)
        {
            return verdict(
                true,
                Source::Directory,
                format!("directory: {} is a DNS server", computer.sam_account_name),
            );
        }
        let dc = self.domain_controller(address, computer_name);
        if dc.yes {
            return Verdict {
                basis: format!("{} (DCs serve DNS)", dc.basis),
                ..dc
            };
        }
        Verdict {
            basis: format!("{}; not a configured DNS server", dc.basis),
            ..dc
        }
    }

    /// The directory's account for a name in any form the wire uses.
    pub fn account(&self, name: &str, domain: &str) -> Option<&Object> {
        if domain.is_empty() {
            self.directory.account(name)
        } else {
            self.directory
                .account(&format!("{domain}\\{}", account_key(name)))
                .or_else(|| self.directory.account(name))
        }
    }

    pub fn learned_account(&self, name: &str) -> Option<&LearnedAccount> {
        self.accounts.get(&account_key(name))
    }

    /// Whether an account exists: the directory's word, else the KDC's answers.
    pub fn account_exists(&self, name: &str, domain: &str) -> Option<bool> {
        if self.has_directory() {
            return Some(
                self.account(name, domain)
                    .is_some_and(|account| !account.deleted),
            );
        }
        self.learned_account(name)
            .and_then(|learned| learned.exists)
    }

    /// Why an account is a honeytoken, when it is one.
    pub fn honeytoken(&self, name: &str, domain: &str) -> Option<String> {
        if let Some(account) = self.account(name, domain)
            && let Some(tag) = self
                .directory
                .tags(account)
                .iter()
                .find(|tag| tag.name == TagName::Honeytoken)
        {
            return Some(format!("directory: {}", tag.reason));
        }
        let key = account_key(name);
        self.honeytokens
            .contains(&key)
            .then(|| "configuration: a honeytoken".to_owned())
    }

    /// Why an account is sensitive, when the directory says it is.
    pub fn sensitive(&self, name: &str, domain: &str) -> Option<String> {
        let account = self.account(name, domain)?;
        self.directory
            .tags(account)
            .iter()
            .find(|tag| tag.name == TagName::Sensitive)
            .map(|tag| tag.reason.clone())
    }

    /// The ticket a KDC issued with this hash, when a sensor saw the reply.
    pub fn issued_ticket(&self, hash: &[u8]) -> Option<&crate::tickets::IssuedTicket> {
        self.tickets.get(hash)
    }

    /// Every honeytoken, with the names a query may use for it.
    pub fn honeytokens(&self) -> &[Honeytoken] {
        &self.honeytoken_names
    }

    /// Whether `name` (`DC1`, `dc1$`) is a domain controller's computer name, and on what.
    pub fn dc_name(&self, name: &str) -> Option<Verdict> {
        let key = account_key(name);
        let short = key.trim_end_matches('$');
        if short.is_empty() {
            return None;
        }
        // Asked of every AS-REQ's client (noPac): no account name written for an empty directory.
        if self.has_directory()
            && let Some(computer) = self.directory.account(&format!("{short}$"))
            && computer.is_domain_controller()
        {
            return Some(verdict(
                true,
                Source::Directory,
                format!(
                    "directory: {} is a domain controller",
                    computer.sam_account_name
                ),
            ));
        }
        self.dc_names.get_ref(short).map(|()| {
            verdict(
                true,
                Source::Traffic,
                format!("traffic: a domain controller answered NTLM as {short}"),
            )
        })
    }

    /// Counters of the learned tables: (name, evictions).
    pub fn evictions(&self) -> [(&'static str, u64); 6] {
        [
            ("detect_learned_tickets_evicted", self.tickets.evicted()),
            ("detect_learned_dc_names_evicted", self.dc_names.evicted()),
            ("detect_learned_servers_evicted", self.servers.evicted()),
            ("detect_learned_accounts_evicted", self.accounts.evicted()),
            (
                "detect_pending_as_requests_evicted",
                self.requests.evicted(),
            ),
            ("detect_authenticated_flows_evicted", self.flows.evicted()),
        ]
    }

    /// Forgets learned facts not refreshed since `before`.
    pub fn expire(&mut self, before: Millis) {
        self.servers.expire(before);
        self.accounts.expire(before);
        self.requests.expire(before);
        self.flows.expire(before);
        self.tickets.expire(before);
        self.dc_names.expire(before);
    }
}

/// PA-DATA types that pre-authenticate an AS-REQ besides PA-ENC-TIMESTAMP: PKINIT
/// (PA-PK-AS-REQ 16 and its draft 14) and FAST (PA-FX-FAST 136, carrying encrypted challenge).
const PRE_AUTHENTICATING_PA_DATA: [i32; 3] = [14, 16, 136];

/// Whether an AS-REQ proves knowledge of the client's key (or certificate).
pub fn is_pre_authenticated(kerberos: &dcwatch_proto::v1::KerberosActivity) -> bool {
    kerberos.encrypted_timestamp
        || kerberos.timestamp_etype != 0
        || kerberos
            .pa_data_types
            .iter()
            .any(|pa| PRE_AUTHENTICATING_PA_DATA.contains(pa))
}

/// A connection's key: the sensor's flow id, else its addresses and ports from the client's side
/// (requests and the authentications before them are both client to server).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FlowKey {
    /// A flow id as the sensor writes it (16 lower-case hex digits), as its number: every
    /// NTLM, SMB and LDAP message with an account touches its connection's entry, and a number
    /// is hashed, compared and copied without the heap.
    Id(u64),
    /// Any other flow id, or the addresses and ports.
    Text(String),
}

fn flow_key(seen: &Observed<'_>) -> FlowKey {
    let id = &seen.activity.flow_id;
    if id.len() == 16
        && let Some(number) = id.bytes().try_fold(0_u64, |number, byte| {
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                _ => return None,
            };
            Some(number << 4 | u64::from(digit))
        })
    {
        return FlowKey::Id(number);
    }
    if !id.is_empty() {
        return FlowKey::Text(id.clone());
    }
    let text = |ip: Option<IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
    FlowKey::Text(format!(
        "{}:{}>{}:{}",
        text(seen.src),
        seen.src_port,
        text(seen.dst),
        seen.dst_port
    ))
}

/// Why an address is or is not a domain controller, before the basis is written out.
#[derive(Debug)]
enum DcReason<'a> {
    Configured,
    /// A DC address of this directory domain.
    DirectoryDomain(&'a str),
    DirectoryComputer {
        yes: bool,
        name: &'a str,
    },
    /// Not in the configured or directory list, which is the authority.
    NotListed,
    /// What it served, as DCs do.
    Served(&'static str),
    NeverServed {
        none_configured: bool,
    },
}

impl DcReason<'_> {
    fn yes(&self) -> bool {
        match self {
            Self::Configured | Self::DirectoryDomain(_) | Self::Served(_) => true,
            Self::DirectoryComputer { yes, .. } => *yes,
            Self::NotListed | Self::NeverServed { .. } => false,
        }
    }
}

/// [`Knowledge::dc_answer`]'s answer: whether the address is a DC, why, or that it is unknown.
#[derive(Debug)]
pub struct DcAnswer<'a> {
    reason: Option<(IpAddr, DcReason<'a>)>,
}

impl DcAnswer<'_> {
    pub fn yes(&self) -> bool {
        self.reason.as_ref().is_some_and(|(_, reason)| reason.yes())
    }

    /// How sure the answer is.
    pub fn source(&self) -> Source {
        match &self.reason {
            None
            | Some((
                _,
                DcReason::NeverServed {
                    none_configured: true,
                },
            )) => Source::Assumed,
            Some((_, DcReason::Configured)) => Source::Configuration,
            Some((_, DcReason::Served(_))) => Source::Traffic,
            Some((
                _,
                DcReason::DirectoryDomain(_)
                | DcReason::DirectoryComputer { .. }
                | DcReason::NotListed
                | DcReason::NeverServed {
                    none_configured: false,
                },
            )) => Source::Directory,
        }
    }

    /// The answer with its basis written out.
    pub fn verdict(self) -> Verdict {
        let (yes, source) = (self.yes(), self.source());
        let Some((address, reason)) = self.reason else {
            return verdict(yes, source, "the address is unknown".into());
        };
        let basis = match reason {
            DcReason::Configured => format!("configuration: {address} is a domain controller"),
            DcReason::DirectoryDomain(domain) => {
                format!("directory: {address} is a domain controller of {domain}")
            }
            DcReason::DirectoryComputer { yes: true, name } => {
                format!("directory: {name} is a domain controller (userAccountControl)")
            }
            DcReason::DirectoryComputer { yes: false, name } => {
                format!("directory: {name} is not a domain controller")
            }
            DcReason::NotListed => format!(
                "{address} is not in the configured or directory list of domain controllers"
            ),
            DcReason::Served(role) => {
                format!("traffic: {address} {role}, as domain controllers do")
            }
            DcReason::NeverServed {
                none_configured: true,
            } => format!(
                "traffic: {address} never answered as a KDC or served LDAP or DRSUAPI (no directory or DC list configured)"
            ),
            DcReason::NeverServed {
                none_configured: false,
            } => format!(
                "{address} is not a configured or directory domain controller and never answered as one"
            ),
        };
        verdict(yes, source, basis)
    }
}

fn verdict(yes: bool, source: Source, basis: String) -> Verdict {
    Verdict { yes, source, basis }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dcwatch_proto::v1::{DceRpcActivity, activity::Body};

    use super::{FlowAccount, Knowledge};
    use crate::{
        config::Config,
        detectors::testing::{activity, ntlm_authenticate},
        observed::Observed,
    };

    /// The account the traffic taught for a request on the connection `flow_id` between `src`
    /// and `dst`.
    fn caller(knowledge: &Knowledge, flow_id: &str, src: &str, dst: &str) -> Option<FlowAccount> {
        let mut request = activity(10, src, dst, Body::Dcerpc(DceRpcActivity::default()));
        request.flow_id = flow_id.into();
        let seen = Observed::new(&request, "").expect("a timed activity");
        knowledge.flow_account(&seen).cloned()
    }

    #[test]
    fn a_connection_is_found_by_its_flow_id_in_any_form_or_by_its_ends() {
        let mut knowledge = Knowledge::new(&Config::test_mode(), Arc::default());
        let (client, server) = ("10.0.0.5:50000", "10.0.0.1:445");
        for (flow_id, user) in [
            ("00ff0a1b2c3d4e5f", "alice"),
            ("00FF0A1B2C3D4E5F", "bob"),
            ("flow-7", "carol"),
            ("", "dave"),
        ] {
            let mut logon = ntlm_authenticate(0, client, server, "LAB", user, 0, |_| {});
            logon.flow_id = flow_id.into();
            knowledge.learn(&Observed::new(&logon, "").expect("a timed activity"));
        }
        let name = |flow_id: &str, src: &str, dst: &str| {
            caller(&knowledge, flow_id, src, dst).map(|account| account.name)
        };
        assert_eq!(
            name("00ff0a1b2c3d4e5f", client, server).as_deref(),
            Some("alice")
        );
        // Another text is another connection, as it always was: only the sensor's own form
        // is held as a number.
        assert_eq!(
            name("00FF0A1B2C3D4E5F", client, server).as_deref(),
            Some("bob")
        );
        assert_eq!(name("flow-7", client, server).as_deref(), Some("carol"));
        assert_eq!(name("", client, server).as_deref(), Some("dave"));
        assert_eq!(
            name("", server, client),
            None,
            "the ends from the client's side"
        );
        assert_eq!(name("00ff0a1b2c3d4e5e", client, server), None);
        assert_eq!(name("00ff0a1b2c3d4e5", client, server), None);
    }
}
