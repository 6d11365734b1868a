//! Tunnelled mirrors taken apart: ERSPAN I, II and III, Ethernet over GRE, VXLAN and Geneve.
//! The XDP program does this before its filter for live frames (sensor-ebpf's `decapsulate`);
//! this is the same rule for frames that never went through it (replay), and the XDP program's
//! differential test holds the two to each other.

use dcwatch_telemetry::{Kind, Snapshot};
use sensor_common::{
    Counter,
    tunnel::{self, MAX_OUTER_LEN},
};
use serde::Deserialize;

const ETH_HEADER_LEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const VLAN_TAG_LEN: usize = 4;
/// As many tags as the XDP program follows.
const MAX_VLAN_TAGS: usize = 2;
const IPV4_MIN_HEADER_LEN: usize = 20;
/// More fragments, and the fragment offset.
const IPV4_FRAGMENT_MASK: u16 = 0x3fff;
const IPV6_HEADER_LEN: usize = 40;
const IPPROTO_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;

/// `[capture] decap`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecapMode {
    /// Known tunnels are taken apart, and their inner frame is what the sensor sees.
    #[default]
    Auto,
    /// Frames are taken as they come: a tunnel is its outer packet (on no watched port).
    Off,
}

/// What decapsulation needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapConfig {
    pub mode: DecapMode,
    /// The UDP port VXLAN arrives on.
    pub vxlan_port: u16,
}

impl Default for DecapConfig {
    fn default() -> Self {
        Self {
            mode: DecapMode::Auto,
            vxlan_port: tunnel::VXLAN_DEFAULT_PORT,
        }
    }
}

/// What a frame turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decapsulated<'a> {
    /// Not a tunnel (or decapsulation is off): the frame as it is.
    Plain,
    /// A tunnel of the type its counter names, and its inner Ethernet frame.
    Inner(Counter, &'a [u8]),
    /// A tunnel header cut short (its options included) or of the wrong version, or outer
    /// headers deeper than `MAX_OUTER_LEN`: the XDP program counts it as `malformed`.
    Malformed,
}

/// Where the outer headers end and the inner frame starts, by the XDP program's rules.
pub fn decapsulate<'a>(config: &DecapConfig, frame: &'a [u8]) -> Decapsulated<'a> {
    if config.mode == DecapMode::Off {
        return Decapsulated::Plain;
    }
    match inner_offset(config, frame) {
        Ok(Some((counter, start))) if start <= MAX_OUTER_LEN => match frame.get(start..) {
            Some(inner) => Decapsulated::Inner(counter, inner),
            // Options or a subheader announced past the end of the frame.
            None => Decapsulated::Malformed,
        },
        Ok(Some(_)) | Err(Malformed) => Decapsulated::Malformed,
        Ok(None) => Decapsulated::Plain,
    }
}

struct Malformed;

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
}

fn bytes<const N: usize>(frame: &[u8], at: usize) -> Result<[u8; N], Malformed> {
    frame
        .get(at..at + N)
        .and_then(|slice| slice.try_into().ok())
        .ok_or(Malformed)
}

fn inner_offset(config: &DecapConfig, frame: &[u8]) -> Result<Option<(Counter, usize)>, Malformed> {
    let Some((ethertype, l3)) = ethernet(frame) else {
        return Ok(None);
    };
    let (protocol, l4) = match ethertype {
        ETH_P_IPV4 => {
            let Ok(header) = bytes::<IPV4_MIN_HEADER_LEN>(frame, l3) else {
                return Ok(None);
            };
            let header_len = usize::from(header[0] & 0x0f) * 4;
            let flags_offset = u16::from_be_bytes([header[6], header[7]]);
            if header[0] >> 4 != 4
                || header_len < IPV4_MIN_HEADER_LEN
                || flags_offset & IPV4_FRAGMENT_MASK != 0
            {
                return Ok(None);
            }
            (header[9], l3 + header_len)
        }
        ETH_P_IPV6 => {
            let Ok(header) = bytes::<IPV6_HEADER_LEN>(frame, l3) else {
                return Ok(None);
            };
            if header[0] >> 4 != 6 {
                return Ok(None);
            }
            (header[6], l3 + IPV6_HEADER_LEN)
        }
        _ => return Ok(None),
    };
    match protocol {
        tunnel::IPPROTO_GRE => gre(frame, l4),
        IPPROTO_UDP => udp_tunnel(config, frame, l4),
        _ => Ok(None),
    }
}

/// The EtherType after up to `MAX_VLAN_TAGS` tags, and where its header starts.
fn ethernet(frame: &[u8]) -> Option<(u16, usize)> {
    let mut ethertype = be16(frame, ETH_HEADER_LEN - 2)?;
    let mut l3 = ETH_HEADER_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        ethertype = be16(frame, l3 + 2)?;
        l3 += VLAN_TAG_LEN;
    }
    Some((ethertype, l3))
}

fn gre(frame: &[u8], l4: usize) -> Result<Option<(Counter, usize)>, Malformed> {
    let header = bytes::<{ tunnel::GRE_BASE_LEN }>(frame, l4)?;
    let flags = u16::from_be_bytes([header[0], header[1]]);
    if flags & (tunnel::GRE_ROUTING | tunnel::GRE_VERSION) != 0 {
        return Ok(None);
    }
    let optional = |flag: u16| if flags & flag != 0 { 4 } else { 0 };
    let payload = l4
        + tunnel::GRE_BASE_LEN
        + optional(tunnel::GRE_CHECKSUM)
        + optional(tunnel::GRE_KEY)
        + optional(tunnel::GRE_SEQUENCE);
    Ok(match u16::from_be_bytes([header[2], header[3]]) {
        tunnel::TRANSPARENT_ETHERNET => Some((Counter::DecapGreEthernet, payload)),
        tunnel::GRE_ERSPAN if flags & tunnel::GRE_SEQUENCE == 0 => {
            Some((Counter::DecapErspan1, payload))
        }
        tunnel::GRE_ERSPAN => {
            let erspan = bytes::<{ tunnel::ERSPAN2_LEN }>(frame, payload)?;
            if erspan[0] >> 4 != tunnel::ERSPAN2_VERSION {
                return Err(Malformed);
            }
            Some((Counter::DecapErspan2, payload + tunnel::ERSPAN2_LEN))
        }
        tunnel::GRE_ERSPAN3 => {
            let erspan = bytes::<{ tunnel::ERSPAN3_LEN }>(frame, payload)?;
            if erspan[0] >> 4 != tunnel::ERSPAN3_VERSION {
                return Err(Malformed);
            }
            let platform = if erspan[tunnel::ERSPAN3_LEN - 1] & 1 != 0 {
                tunnel::ERSPAN3_PLATFORM_LEN
            } else {
                0
            };
            Some((
                Counter::DecapErspan3,
                payload + tunnel::ERSPAN3_LEN + platform,
            ))
        }
        _ => None,
    })
}

fn udp_tunnel(
    config: &DecapConfig,
    frame: &[u8],
    l4: usize,
) -> Result<Option<(Counter, usize)>, Malformed> {
    let header = bytes::<UDP_HEADER_LEN>(frame, l4)?;
    let dst_port = u16::from_be_bytes([header[2], header[3]]);
    let payload = l4 + UDP_HEADER_LEN;
    if dst_port == config.vxlan_port {
        let vxlan = bytes::<{ tunnel::VXLAN_LEN }>(frame, payload)?;
        if vxlan[0] & tunnel::VXLAN_FLAG_I == 0 {
            return Err(Malformed);
        }
        return Ok(Some((Counter::DecapVxlan, payload + tunnel::VXLAN_LEN)));
    }
    if dst_port != tunnel::GENEVE_PORT {
        return Ok(None);
    }
    let geneve = bytes::<{ tunnel::GENEVE_LEN }>(frame, payload)?;
    if geneve[0] >> 6 != 0 {
        return Err(Malformed);
    }
    if u16::from_be_bytes([geneve[2], geneve[3]]) != tunnel::TRANSPARENT_ETHERNET {
        return Ok(None);
    }
    let options = usize::from(geneve[0] & 0x3f) * 4;
    Ok(Some((
        Counter::DecapGeneve,
        payload + tunnel::GENEVE_LEN + options,
    )))
}

/// Counts what decapsulation found, for the stats file: the same names as the XDP program's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapCounters {
    /// By tunnel type, indexed like `TUNNELS`.
    pub outer: [u64; TUNNELS.len()],
    /// Tunnel headers that did not parse (the XDP program's `malformed`).
    pub malformed: u64,
}

/// The tunnel types, in the order of `DecapCounters::outer`.
pub const TUNNELS: [Counter; 6] = [
    Counter::DecapErspan1,
    Counter::DecapErspan2,
    Counter::DecapErspan3,
    Counter::DecapGreEthernet,
    Counter::DecapVxlan,
    Counter::DecapGeneve,
];

impl DecapCounters {
    /// Counts what `decapsulated` is, and returns the frame to go on with: the inner one, the
    /// whole one, or none (a malformed tunnel).
    pub fn count<'a>(
        &mut self,
        frame: &'a [u8],
        decapsulated: Decapsulated<'a>,
    ) -> Option<&'a [u8]> {
        match decapsulated {
            Decapsulated::Plain => Some(frame),
            Decapsulated::Inner(counter, inner) => {
                if let Some(index) = TUNNELS.iter().position(|&tunnel| tunnel == counter) {
                    self.outer[index] += 1;
                }
                Some(inner)
            }
            Decapsulated::Malformed => {
                self.malformed += 1;
                None
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (counter, value) in TUNNELS.iter().zip(self.outer) {
            snapshot.push(counter.name(), Kind::Counter, counter.help(), value);
        }
        snapshot.push(
            "decap_malformed",
            Kind::Counter,
            "Frames whose tunnel header did not parse.",
            self.malformed,
        );
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 header announcing `protocol`, then `l4`.
    fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut frame = vec![0_u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let total = u16::try_from(20 + l4.len()).expect("small");
        frame.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0]);
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        frame.extend_from_slice(l4);
        frame
    }

    const INNER: &[u8] = b"inner ethernet frame";

    fn gre(flags: u16, protocol: u16, extra: &[u8]) -> Vec<u8> {
        let mut l4 = flags.to_be_bytes().to_vec();
        l4.extend_from_slice(&protocol.to_be_bytes());
        for flag in [tunnel::GRE_CHECKSUM, tunnel::GRE_KEY, tunnel::GRE_SEQUENCE] {
            if flags & flag != 0 {
                l4.extend_from_slice(&[0xaa; 4]);
            }
        }
        l4.extend_from_slice(extra);
        l4.extend_from_slice(INNER);
        ipv4(tunnel::IPPROTO_GRE, &l4)
    }

    fn udp(port: u16, header: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0x30, 0x39];
        l4.extend_from_slice(&port.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 0]);
        l4.extend_from_slice(header);
        l4.extend_from_slice(INNER);
        ipv4(IPPROTO_UDP, &l4)
    }

    fn auto(frame: &[u8]) -> Decapsulated<'_> {
        decapsulate(&DecapConfig::default(), frame)
    }

    #[test]
    fn every_tunnel_type_yields_its_inner_frame() {
        let erspan2 = [0x10, 0x01, 0, 0, 0, 0, 0, 0];
        let erspan3 = [0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut erspan3_platform = erspan3;
        erspan3_platform[11] = 1;
        let mut erspan3_platform = erspan3_platform.to_vec();
        erspan3_platform.extend_from_slice(&[0xbb; 8]);
        let cases = [
            (gre(0, tunnel::GRE_ERSPAN, &[]), Counter::DecapErspan1),
            (
                gre(tunnel::GRE_SEQUENCE, tunnel::GRE_ERSPAN, &erspan2),
                Counter::DecapErspan2,
            ),
            (
                gre(tunnel::GRE_SEQUENCE, tunnel::GRE_ERSPAN3, &erspan3),
                Counter::DecapErspan3,
            ),
            (
                gre(tunnel::GRE_SEQUENCE, tunnel::GRE_ERSPAN3, &erspan3_platform),
                Counter::DecapErspan3,
            ),
            (
                gre(
                    tunnel::GRE_CHECKSUM | tunnel::GRE_KEY,
                    tunnel::TRANSPARENT_ETHERNET,
                    &[],
                ),
                Counter::DecapGreEthernet,
            ),
            (udp(4789, &[0x08, 0, 0, 0, 0, 0, 1, 0]), Counter::DecapVxlan),
            (
                udp(6081, &[0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4]),
                Counter::DecapGeneve,
            ),
        ];
        for (frame, counter) in &cases {
            assert_eq!(
                auto(frame),
                Decapsulated::Inner(*counter, INNER),
                "{counter:?}"
            );
        }
    }

    #[test]
    fn what_is_no_tunnel_stays_whole_and_bad_tunnel_headers_are_malformed() {
        // GRE carrying IPv4, GRE with routing, UDP to another port, Geneve carrying IPv4.
        assert_eq!(auto(&gre(0, 0x0800, &[])), Decapsulated::Plain);
        assert_eq!(
            auto(&gre(tunnel::GRE_ROUTING, tunnel::TRANSPARENT_ETHERNET, &[])),
            Decapsulated::Plain
        );
        assert_eq!(auto(&udp(88, &[])), Decapsulated::Plain);
        assert_eq!(
            auto(&udp(6081, &[0, 0, 0x08, 0x00, 0, 0, 1, 0])),
            Decapsulated::Plain
        );
        // VXLAN without its I flag; ERSPAN II of the wrong version; a GRE header cut short.
        assert_eq!(auto(&udp(4789, &[0; 8])), Decapsulated::Malformed);
        assert_eq!(
            auto(&gre(tunnel::GRE_SEQUENCE, tunnel::GRE_ERSPAN, &[0x20; 8])),
            Decapsulated::Malformed
        );
        let cut = gre(0, tunnel::GRE_ERSPAN, &[]);
        assert_eq!(auto(&cut[..36]), Decapsulated::Malformed);
        // A fragment of a tunnel packet is not taken apart.
        let mut fragment = gre(0, tunnel::GRE_ERSPAN, &[]);
        fragment[20] = 0x20;
        assert_eq!(auto(&fragment), Decapsulated::Plain);
    }

    #[test]
    fn the_vxlan_port_is_configurable_and_off_means_off() {
        let frame = udp(8472, &[0x08, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(auto(&frame), Decapsulated::Plain);
        let linux = DecapConfig {
            vxlan_port: 8472,
            ..DecapConfig::default()
        };
        assert_eq!(
            decapsulate(&linux, &frame),
            Decapsulated::Inner(Counter::DecapVxlan, INNER)
        );
        let off = DecapConfig {
            mode: DecapMode::Off,
            ..linux
        };
        assert_eq!(decapsulate(&off, &frame), Decapsulated::Plain);
    }

    #[test]
    fn counters_follow_what_was_found() {
        let mut counters = DecapCounters::default();
        let vxlan = udp(4789, &[0x08, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(counters.count(&vxlan, auto(&vxlan)), Some(INNER));
        let bad = udp(4789, &[0; 8]);
        assert_eq!(counters.count(&bad, auto(&bad)), None);
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.get("decap_vxlan"), Some(1), "{snapshot:?}");
        assert_eq!(snapshot.get("decap_malformed"), Some(1), "{snapshot:?}");
        assert_eq!(snapshot.get("decap_geneve"), Some(0), "{snapshot:?}");
    }
}
