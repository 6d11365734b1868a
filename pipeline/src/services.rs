//! The services dcwatch watches by default, and the protocol a port suggests.
//!
//! One table serves both the default port set of the XDP filter and the `protocol` guessed for a
//! packet, so the two cannot disagree.

use std::fmt;

use serde::Serialize;

/// A transport protocol the XDP filter matches ports on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// A well-known port of a service that matters to domain controllers.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    pub name: &'static str,
    pub transport: Transport,
    pub port: u16,
}

const fn tcp(name: &'static str, port: u16) -> Service {
    Service {
        name,
        transport: Transport::Tcp,
        port,
    }
}

const fn udp(name: &'static str, port: u16) -> Service {
    Service {
        name,
        transport: Transport::Udp,
        port,
    }
}

/// The default watch list (DESIGN.md, Capture). Dynamic DCE-RPC ports are learned at run time.
pub const SERVICES: &[Service] = &[
    tcp("kerberos", 88),
    udp("kerberos", 88),
    tcp("kpasswd", 464),
    udp("kpasswd", 464),
    tcp("ldap", 389),
    udp("cldap", 389),
    tcp("ldap-gc", 3268),
    tcp("dns", 53),
    udp("dns", 53),
    tcp("smb", 445),
    udp("netbios-ns", 137),
    tcp("netbios-ssn", 139),
    tcp("dcerpc-epm", 135),
    tcp("rdp", 3389),
    // WinRM: how PowerShell remoting reaches a DC, authenticated with Kerberos or NTLM over HTTP.
    tcp("winrm", 5985),
    // RADIUS (often NPS on the DCs themselves): VPN and Wi-Fi logons and who holds which address.
    udp("radius", 1812),
    udp("radius-acct", 1813),
    udp("syslog", 514),
    tcp("syslog", 514),
    udp("ntp", 123),
    // Encrypted: flows and sizes only.
    tcp("ldaps", 636),
    tcp("ldaps-gc", 3269),
    tcp("adws", 9389),
];

/// Services the sensor understands but does not watch unless configured to: plain HTTP carries
/// NTLM and Negotiate authentication to web applications, rarely to a DC itself.
///
/// RADIUS's pre-RFC 2865 ports, 1645 and 1646, are still used by some NASes.
pub const OPT_IN_SERVICES: &[Service] = &[
    tcp("http", 80),
    tcp("http", 8080),
    udp("radius", 1645),
    udp("radius-acct", 1646),
];

/// The name of the service on a port, among the default and the opt-in ones.
pub fn service_name(transport: Transport, port: u16) -> Option<&'static str> {
    SERVICES
        .iter()
        .chain(OPT_IN_SERVICES)
        .find(|service| service.transport == transport && service.port == port)
        .map(|service| service.name)
}

/// Default watched ports of one transport, ascending.
pub fn default_ports(transport: Transport) -> Vec<u16> {
    let mut ports: Vec<u16> = SERVICES
        .iter()
        .filter(|service| service.transport == transport)
        .map(|service| service.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The service a packet between these ports most likely belongs to: the destination port's, else
/// the source port's (a reply), else `"other"` (a port configured beyond the table).
pub fn guess_protocol(transport: Transport, src_port: u16, dst_port: u16) -> &'static str {
    service_name(transport, dst_port)
        .or_else(|| service_name(transport, src_port))
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_by_destination_then_source() {
        assert_eq!(guess_protocol(Transport::Udp, 51000, 88), "kerberos");
        assert_eq!(guess_protocol(Transport::Tcp, 389, 51000), "ldap");
        assert_eq!(guess_protocol(Transport::Udp, 389, 51000), "cldap");
        assert_eq!(guess_protocol(Transport::Tcp, 51000, 445), "smb");
        assert_eq!(guess_protocol(Transport::Tcp, 51000, 137), "other");
        assert_eq!(guess_protocol(Transport::Udp, 1645, 1812), "radius");
        assert_eq!(guess_protocol(Transport::Udp, 40000, 1646), "radius-acct");
        assert_eq!(guess_protocol(Transport::Tcp, 40000, 50000), "other");
    }

    #[test]
    fn default_ports_are_sorted_and_unique() {
        let tcp = default_ports(Transport::Tcp);
        assert_eq!(
            tcp,
            [
                53, 88, 135, 139, 389, 445, 464, 514, 636, 3268, 3269, 3389, 5985, 9389
            ]
        );
        assert_eq!(
            default_ports(Transport::Udp),
            [53, 88, 123, 137, 389, 464, 514, 1812, 1813]
        );
    }
}
