//! What an activity says about which host is at which address.
//!
//! | activity | address | name | method | strong |
//! |---|---|---|---|---|
//! | Kerberos AS-REQ of a computer account (`WS01$`) | its sender | `WS01` | KERBEROS_PRINCIPAL | no: anyone can ask |
//! | Kerberos AS-REP or TGS-REP to a computer account | its receiver | `WS01` | KERBEROS_PRINCIPAL | yes: the KDC issued it |
//! | NTLM AUTHENTICATE with a workstation name | its sender | the name, upper case | NTLM_WORKSTATION | no: the client writes it |
//! | RDP client core data with a client name | its sender | the name, upper case | RDP_COOKIE | no |
//! | SMB session setup of a computer account, accepted | its client | `WS01` | SMB_SESSION | yes: the server checked it |
//! | NetBIOS registration or refresh request, unique `<00>`/`<20>` name | each NB address | the name | NETBIOS | no |
//! | NetBIOS positive name query response, unique `<00>`/`<20>` name | each NB address | the name | NETBIOS | no |
//! | NetBIOS node status answer | its sender | its first unique name (the host's own `<00>`) | NETBIOS_NODE_STATUS | yes: the host lists its own names |
//! | DNS response (NOERROR): A/AAAA answers | the record's address | the owner name, lower case | DNS | no: records outlive hosts |
//! | DNS response (NOERROR): PTR answers under in-addr.arpa / ip6.arpa | the address the owner spells | the target name | DNS | no |
//! | RADIUS Accounting-Request Start or Interim-Update with Framed-IP-Address | that address | User-Name | RADIUS | yes: the NAS assigned it |
//!
//! Names are kept as the wire spells them apart from case (NetBIOS-style names upper case, DNS
//! names lower case, ASCII only), a computer account's trailing `$` and a DNS name's trailing
//! dot; [`host_key`] compares them across methods.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dcwatch_proto::v1::{
    Activity, DnsActivity, Endpoint, KerberosActivity, NetbiosActivity, RadiusActivity,
    ResolutionMethod, activity::Body, dns_activity, kerberos_activity, netbios_activity,
    ntlm_activity, outcome::Status, radius_activity, rdp_activity, smb_activity,
};

/// Longer names are not names of hosts (DNS allows 253 characters).
pub const MAX_NAME_LEN: usize = 255;

/// One piece of evidence: `name` was at `address`, by `method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub address: IpAddr,
    pub name: String,
    pub method: ResolutionMethod,
    pub strong: bool,
}

/// The part of a name that two methods compare: the first DNS label, ASCII upper case, so that
/// `ws01.lab.example` (DNS) and `WS01` (NetBIOS, Kerberos `WS01$`) agree.
pub fn host_key(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_ascii_uppercase()
}

pub fn endpoint_ip(endpoint: Option<&Endpoint>) -> Option<IpAddr> {
    let ip = &endpoint?.ip;
    if let Ok(octets) = <[u8; 4]>::try_from(ip.as_slice()) {
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    <[u8; 16]>::try_from(ip.as_slice())
        .ok()
        .map(|octets| IpAddr::V6(Ipv6Addr::from(octets)))
}

/// Appends what `activity` says about addresses to `out`. Names that are empty or longer than
/// MAX_NAME_LEN once normalised give nothing.
pub fn collect(activity: &Activity, out: &mut Vec<Evidence>) {
    let src = endpoint_ip(activity.src.as_ref());
    let dst = endpoint_ip(activity.dst.as_ref());
    let mut push = |address: Option<IpAddr>, name: String, method, strong| {
        if let Some(address) = address
            && !name.is_empty()
            && name.len() <= MAX_NAME_LEN
        {
            out.push(Evidence {
                address,
                name,
                method,
                strong,
            });
        }
    };
    match &activity.body {
        Some(Body::Kerberos(kerberos)) => {
            if let Some((to_receiver, name)) = kerberos_computer(kerberos) {
                let address = if to_receiver { dst } else { src };
                push(
                    address,
                    name,
                    ResolutionMethod::KerberosPrincipal,
                    to_receiver,
                );
            }
        }
        Some(Body::Ntlm(ntlm)) if ntlm.r#type() == ntlm_activity::Type::Authenticate => push(
            src,
            netbios_style(&ntlm.workstation),
            ResolutionMethod::NtlmWorkstation,
            false,
        ),
        Some(Body::Rdp(rdp)) if rdp.r#type() == rdp_activity::Type::ClientInfo => push(
            src,
            netbios_style(&rdp.client_name),
            ResolutionMethod::RdpCookie,
            false,
        ),
        Some(Body::Smb(smb))
            if smb.r#type() == smb_activity::Type::SessionSetup
                && smb.answered
                && succeeded(activity)
                && smb.user.ends_with('$') =>
        {
            push(
                src,
                netbios_style(&smb.user),
                ResolutionMethod::SmbSession,
                true,
            );
        }
        Some(Body::Netbios(netbios)) => {
            for (address, name, method, strong) in netbios_evidence(netbios, src) {
                push(Some(address), name, method, strong);
            }
        }
        Some(Body::Dns(dns)) => {
            for (address, name) in dns_evidence(dns) {
                push(Some(address), name, ResolutionMethod::Dns, false);
            }
        }
        Some(Body::Radius(radius)) => {
            if let Some((address, user)) = radius_evidence(radius) {
                push(Some(address), user, ResolutionMethod::Radius, true);
            }
        }
        _ => {}
    }
}

fn succeeded(activity: &Activity) -> bool {
    activity
        .outcome
        .as_ref()
        .is_some_and(|outcome| outcome.status() == Status::Success)
}

/// A NetBIOS, NTLM, RDP or computer-account name as the host key spells it: trimmed, without a
/// trailing `$`, ASCII upper case.
fn netbios_style(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .trim_end_matches('$')
        .to_ascii_uppercase()
}

fn dns_style(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `(sent to the receiver, name)` for a Kerberos message naming a computer account as its
/// client: `WS01$`, or a `host/ws01.lab.example` principal.
fn kerberos_computer(kerberos: &KerberosActivity) -> Option<(bool, String)> {
    use kerberos_activity::Type;
    let to_receiver = match kerberos.r#type() {
        Type::AsReq => false,
        Type::AsRep | Type::TgsRep => true,
        _ => return None,
    };
    let client = kerberos.client.trim();
    if client.ends_with('$') && !client.contains('/') {
        return Some((to_receiver, netbios_style(client)));
    }
    let host = client
        .strip_prefix("host/")
        .or_else(|| client.strip_prefix("HOST/"))?;
    Some((to_receiver, dns_style(host)))
}

/// Only unique workstation (`<00>`) and server (`<20>`) names name a host; group names and the
/// domain's names do not.
fn is_host_suffix(suffix: u32) -> bool {
    suffix == 0x00 || suffix == 0x20
}

fn netbios_evidence(
    netbios: &NetbiosActivity,
    sender: Option<IpAddr>,
) -> Vec<(IpAddr, String, ResolutionMethod, bool)> {
    use netbios_activity::Type;
    let mut found = Vec::new();
    let host_name = !netbios.group && is_host_suffix(netbios.suffix);
    let claimed =
        matches!(netbios.r#type(), Type::Registration | Type::Refresh) && !netbios.response;
    let answered = netbios.r#type() == Type::Response && netbios.response && netbios.rcode == 0;
    match netbios.r#type() {
        _ if host_name && (claimed || answered) => {
            let name = netbios_style(&netbios.name_base);
            for address in &netbios.addresses {
                if let Ok(address) = address.parse() {
                    found.push((address, name.clone(), ResolutionMethod::Netbios, false));
                }
            }
        }
        Type::NodeStatus if netbios.response && netbios.rcode == 0 => {
            // The host lists its own unique names first (NAME<00>, then the domain's group
            // names, NAME<20>...): the first unique one names it.
            let workstation = netbios
                .node_names
                .iter()
                .find(|entry| !entry.ends_with(" group"))
                .map(|entry| {
                    entry
                        .rsplit_once('<')
                        .map_or(entry.as_str(), |(name, _)| name)
                })
                .map(netbios_style);
            if let (Some(address), Some(name)) = (sender, workstation) {
                found.push((address, name, ResolutionMethod::NetbiosNodeStatus, true));
            }
        }
        _ => {}
    }
    found
}

fn dns_evidence(dns: &DnsActivity) -> Vec<(IpAddr, String)> {
    if dns.r#type() != dns_activity::Type::Response || dns.rcode != 0 {
        return Vec::new();
    }
    dns.records
        .iter()
        .filter_map(|record| match record.r#type.as_str() {
            "A" | "AAAA" => Some((record.data.parse().ok()?, dns_style(&record.name))),
            "PTR" => Some((reverse_address(&record.name)?, dns_style(&record.data))),
            _ => None,
        })
        .collect()
}

/// The address a reverse-lookup name spells: `4.3.2.1.in-addr.arpa` is 1.2.3.4, and the 32
/// nibbles under `ip6.arpa` an IPv6 address.
pub fn reverse_address(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(reversed) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let parts: Vec<&str> = reversed.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        for (slot, part) in octets.iter_mut().rev().zip(parts) {
            *slot = part.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let reversed = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = reversed
        .split('.')
        .map(|nibble| {
            u8::from_str_radix(nibble, 16)
                .ok()
                .filter(|_| nibble.len() == 1)
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (index, pair) in nibbles.rchunks(2).enumerate() {
        // rchunks from the end: the last two nibbles written are the first octet.
        if let [low, high] = pair {
            octets[index] = high << 4 | low;
        }
    }
    Some(IpAddr::V6(Ipv6Addr::from(octets)))
}

fn radius_evidence(radius: &RadiusActivity) -> Option<(IpAddr, String)> {
    if radius.r#type() != radius_activity::Type::AccountingRequest
        || !matches!(radius.status_type.as_str(), "Start" | "Interim-Update")
    {
        return None;
    }
    let user = radius.user_name.trim();
    if user.is_empty() {
        return None;
    }
    Some((radius.framed_ip.parse().ok()?, user.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_spell_addresses() {
        assert_eq!(
            reverse_address("5.0.98.10.in-addr.arpa."),
            Some("10.98.0.5".parse().expect("address"))
        );
        assert_eq!(
            reverse_address(
                "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa"
            ),
            Some("4321:0:1:2:3:4:567:89ab".parse().expect("address"))
        );
        assert_eq!(reverse_address("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse_address("x.2.3.4.in-addr.arpa"), None);
        assert_eq!(reverse_address("example.com"), None);
    }

    #[test]
    fn host_keys_compare_across_methods() {
        assert_eq!(host_key("ws01.lab.example"), host_key("WS01"));
        assert_ne!(host_key("ws01.lab.example"), host_key("WS02"));
    }
}
