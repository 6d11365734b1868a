//! Community ID v1 (corelight/community-id-spec): a flow's 5-tuple as Zeek, Suricata and Arkime
//! write it, so an activity can be joined to their records.
//!
//! ```text
//! "1:" + base64(SHA-1(seed (u16be) | saddr | daddr | proto (u8) | 0 (u8) | sport (u16be) |
//!                     dport (u16be)))
//! with the endpoints ordered so that (saddr, sport) is the smaller of the two.
//! ```

use std::net::{IpAddr, SocketAddr};

use base64::{Engine, engine::general_purpose::STANDARD};
use sha1::{Digest, Sha1};

/// IANA protocol numbers of the transports the sensor reads.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// The Community ID v1 of a flow between `a` and `b` (either way round), with the seed 0 the
/// other tools use by default.
pub fn community_id(a: SocketAddr, b: SocketAddr, protocol: u8) -> String {
    with_seed(0, a, b, protocol)
}

fn with_seed(seed: u16, a: SocketAddr, b: SocketAddr, protocol: u8) -> String {
    let (first, second) = ordered(a, b);
    let mut hasher = Sha1::new();
    hasher.update(seed.to_be_bytes());
    hash_ip(&mut hasher, first.ip());
    hash_ip(&mut hasher, second.ip());
    hasher.update([protocol, 0]);
    hasher.update(first.port().to_be_bytes());
    hasher.update(second.port().to_be_bytes());
    let mut id = String::from("1:");
    STANDARD.encode_string(hasher.finalize(), &mut id);
    id
}

/// The two endpoints, the smaller first: by address octets, then by port. An IPv4 and an IPv6
/// endpoint never share a flow; IPv4 orders first so the result is still defined. (`IpAddr`
/// orders so: IPv4 first, then by octets; the backend's store recomputes these ids for every
/// activity it reads back, so no allocation here.)
pub fn ordered(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let key = |s: SocketAddr| (s.ip(), s.port());
    if key(a) <= key(b) { (a, b) } else { (b, a) }
}

fn hash_ip(hasher: &mut Sha1, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => hasher.update(ip.octets()),
        IpAddr::V6(ip) => hasher.update(ip.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    /// The spec's baseline (community-id-spec's baseline data, also Zeek's btest
    /// `community_id_v1`): 1.2.3.4:1122 and 5.6.7.8:3344.
    #[test]
    fn spec_vectors() {
        let (a, b) = (at("1.2.3.4:1122"), at("5.6.7.8:3344"));
        assert_eq!(community_id(a, b, TCP), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
        assert_eq!(community_id(a, b, UDP), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=");
        assert_eq!(with_seed(1, a, b, TCP), "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=");
        assert_eq!(with_seed(1, a, b, UDP), "1:OShq+iKDAMVouh/4bMxB9Sz4amw=");
    }

    #[test]
    fn either_direction_gives_the_same_id() {
        let (a, b) = (at("5.6.7.8:3344"), at("1.2.3.4:1122"));
        assert_eq!(community_id(a, b, TCP), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
        // Equal addresses order by port.
        let (c, d) = (at("10.0.0.1:2000"), at("10.0.0.1:1000"));
        assert_eq!(community_id(c, d, TCP), community_id(d, c, TCP));
        assert_eq!(ordered(c, d), (d, c));
    }

    /// tshark 4.0 with `--enable-protocol communityid`: arkime krb5-udp.pcap frame 1, and two
    /// IPv6 packets made with text2pcap (`-6 fd00::5,fd00::1`, `-u 50000,53` and
    /// `-T 50000,445`).
    #[test]
    fn tshark_computes_the_same() {
        assert_eq!(
            community_id(at("10.172.10.172:58412"), at("10.150.10.150:88"), UDP),
            "1:37biltTX+G3ht//omeHKaBaSt6A="
        );
        let (client, server) = (at("[fd00::5]:50000"), at("[fd00::1]:53"));
        assert_eq!(
            community_id(client, server, UDP),
            "1:sb50bPEv//iy4zQ0KYBV8XDcLkw="
        );
        let server = at("[fd00::1]:445");
        assert_eq!(
            community_id(server, client, TCP),
            "1:kNZ8kIAIbYwotCUSn2g+vYf4cdo="
        );
    }
}
