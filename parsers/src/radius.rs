//! RADIUS packets (RFC 2865 authentication, RFC 2866 accounting, RFC 5176 dynamic
//! authorization), UDP 1812/1645 and 1813/1646: which user got which VPN or Wi-Fi address, and
//! which logons a NAS accepted or rejected.
//!
//! Which function for which bytes: [`parse`] one UDP payload. With the shared secret of the
//! NAS, [`verify_accounting_request`] checks an Accounting-Request's authenticator and
//! [`verify_response`] a response's, given its request's authenticator.
//!
//! ```text
//! RFC 2865 3:  Code(8) Identifier(8) Length(16: 20..4096, octets beyond it are padding)
//!              Authenticator(16 octets) Attributes...
//! RFC 2865 5:  Attribute = Type(8) Length(8: >= 2, includes Type and Length) Value
//! RFC 2866 3:  Accounting-Request Authenticator =
//!              MD5(Code + Identifier + Length + 16 zero octets + request attributes + secret)
//! RFC 2865 3:  Response Authenticator =
//!              MD5(Code + ID + Length + RequestAuth + response attributes + secret)
//! ```
//!
//! Secrets never leave this module's functions, and passwords never enter a record: the values
//! of User-Password, CHAP-Password and Tunnel-Password are skipped, only their presence kept.

use std::{
    borrow::Cow,
    net::{Ipv4Addr, Ipv6Addr},
};

use md5::{Digest, Md5};

/// RFC 2865 3: the header (Code, Identifier, Length, Authenticator).
pub const HEADER_LEN: usize = 20;

/// RFC 2865 3: "The maximum length is 4096": longer declared lengths are malformed.
pub const MAX_PACKET_LEN: usize = 4096;

/// Attribute types recorded in [`Attributes::types`]. A 4096-octet packet holds at most 2048
/// (empty) attributes; real ones hold a few dozen, mostly vendor-specific ones.
pub const MAX_ATTRIBUTES: usize = 128;

const AUTHENTICATOR_LEN: usize = 16;

/// Why a packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RadiusError {
    #[error("{len} bytes is shorter than the 20-byte RADIUS header")]
    TooShort { len: usize },
    #[error("declared length {0} outside 20..=4096")]
    BadLength(u16),
    #[error("declared length {declared} beyond the {len} bytes of the datagram")]
    Truncated { declared: u16, len: usize },
}

/// Code (RFC 2865 3, RFC 2866 3, RFC 5176 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Code(pub u8);

impl Code {
    pub const ACCESS_REQUEST: Self = Self(1);
    pub const ACCESS_ACCEPT: Self = Self(2);
    pub const ACCESS_REJECT: Self = Self(3);
    pub const ACCOUNTING_REQUEST: Self = Self(4);
    pub const ACCOUNTING_RESPONSE: Self = Self(5);
    pub const ACCESS_CHALLENGE: Self = Self(11);
    pub const DISCONNECT_REQUEST: Self = Self(40);
    pub const DISCONNECT_ACK: Self = Self(41);
    pub const DISCONNECT_NAK: Self = Self(42);
    pub const COA_REQUEST: Self = Self(43);
    pub const COA_ACK: Self = Self(44);
    pub const COA_NAK: Self = Self(45);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ACCESS_REQUEST => "Access-Request",
            Self::ACCESS_ACCEPT => "Access-Accept",
            Self::ACCESS_REJECT => "Access-Reject",
            Self::ACCOUNTING_REQUEST => "Accounting-Request",
            Self::ACCOUNTING_RESPONSE => "Accounting-Response",
            Self::ACCESS_CHALLENGE => "Access-Challenge",
            Self::DISCONNECT_REQUEST => "Disconnect-Request",
            Self::DISCONNECT_ACK => "Disconnect-ACK",
            Self::DISCONNECT_NAK => "Disconnect-NAK",
            Self::COA_REQUEST => "CoA-Request",
            Self::COA_ACK => "CoA-ACK",
            Self::COA_NAK => "CoA-NAK",
            _ => return None,
        })
    }

    /// Requests whose authenticator is the MD5 over a zeroed authenticator (RFC 2866 3,
    /// RFC 5176 3.5), which [`verify_accounting_request`] checks.
    pub fn has_request_digest(self) -> bool {
        matches!(
            self,
            Self::ACCOUNTING_REQUEST | Self::DISCONNECT_REQUEST | Self::COA_REQUEST
        )
    }
}

/// Attribute type (RFC 2865 5, RFC 2866 5, RFC 3162, RFC 4818, RFC 6911).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttributeType(pub u8);

impl AttributeType {
    pub const USER_NAME: Self = Self(1);
    pub const USER_PASSWORD: Self = Self(2);
    pub const CHAP_PASSWORD: Self = Self(3);
    pub const NAS_IP_ADDRESS: Self = Self(4);
    pub const NAS_PORT: Self = Self(5);
    pub const SERVICE_TYPE: Self = Self(6);
    pub const FRAMED_IP_ADDRESS: Self = Self(8);
    pub const REPLY_MESSAGE: Self = Self(18);
    pub const CLASS: Self = Self(25);
    pub const VENDOR_SPECIFIC: Self = Self(26);
    pub const CALLED_STATION_ID: Self = Self(30);
    pub const CALLING_STATION_ID: Self = Self(31);
    pub const NAS_IDENTIFIER: Self = Self(32);
    pub const ACCT_STATUS_TYPE: Self = Self(40);
    pub const ACCT_DELAY_TIME: Self = Self(41);
    pub const ACCT_INPUT_OCTETS: Self = Self(42);
    pub const ACCT_OUTPUT_OCTETS: Self = Self(43);
    pub const ACCT_SESSION_ID: Self = Self(44);
    pub const ACCT_AUTHENTIC: Self = Self(45);
    pub const ACCT_SESSION_TIME: Self = Self(46);
    pub const ACCT_INPUT_PACKETS: Self = Self(47);
    pub const ACCT_OUTPUT_PACKETS: Self = Self(48);
    pub const ACCT_TERMINATE_CAUSE: Self = Self(49);
    pub const ACCT_MULTI_SESSION_ID: Self = Self(50);
    pub const ACCT_INPUT_GIGAWORDS: Self = Self(52);
    pub const ACCT_OUTPUT_GIGAWORDS: Self = Self(53);
    pub const NAS_PORT_TYPE: Self = Self(61);
    pub const TUNNEL_CLIENT_ENDPOINT: Self = Self(66);
    pub const TUNNEL_PASSWORD: Self = Self(69);
    pub const EAP_MESSAGE: Self = Self(79);
    pub const MESSAGE_AUTHENTICATOR: Self = Self(80);
    pub const NAS_PORT_ID: Self = Self(87);
    pub const NAS_IPV6_ADDRESS: Self = Self(95);
    pub const FRAMED_IPV6_PREFIX: Self = Self(97);
    pub const DELEGATED_IPV6_PREFIX: Self = Self(123);
    pub const FRAMED_IPV6_ADDRESS: Self = Self(168);

    /// Attributes whose value is a password or is hidden with the secret: never kept.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            Self::USER_PASSWORD | Self::CHAP_PASSWORD | Self::TUNNEL_PASSWORD
        )
    }
}

/// Acct-Status-Type values (RFC 2866 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AcctStatusType(pub u32);

impl AcctStatusType {
    pub const START: Self = Self(1);
    pub const STOP: Self = Self(2);
    pub const INTERIM_UPDATE: Self = Self(3);
    pub const ACCOUNTING_ON: Self = Self(7);
    pub const ACCOUNTING_OFF: Self = Self(8);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::START => "Start",
            Self::STOP => "Stop",
            Self::INTERIM_UPDATE => "Interim-Update",
            Self::ACCOUNTING_ON => "Accounting-On",
            Self::ACCOUNTING_OFF => "Accounting-Off",
            _ => return None,
        })
    }
}

/// Things that parse but should not be there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Datagram octets after Length (RFC 2865 3 calls them padding, to be ignored).
    pub trailing_bytes: bool,
    /// An attribute shorter than 2 or running past Length: the walk stopped there.
    pub bad_attribute: bool,
    /// A decoded attribute whose value has the wrong size for its type (kept as absent).
    pub bad_attribute_value: bool,
    /// A decoded attribute present twice: the first one is kept.
    pub duplicate_attribute: bool,
    /// More than [`MAX_ATTRIBUTES`] attributes: the rest are not listed in `types`.
    pub attributes_not_listed: bool,
}

/// An IPv6 prefix attribute (RFC 3162 2.3): prefix length and the prefix's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub address: Ipv6Addr,
    pub length: u8,
}

/// The attributes the sensor reports, decoded; the first of each type wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// Every attribute's type, in order, at most [`MAX_ATTRIBUTES`].
    pub types: Vec<AttributeType>,
    pub user_name: Option<&'a [u8]>,
    pub nas_ip: Option<Ipv4Addr>,
    pub nas_ipv6: Option<Ipv6Addr>,
    pub nas_port: Option<u32>,
    pub nas_identifier: Option<&'a [u8]>,
    pub framed_ip: Option<Ipv4Addr>,
    pub framed_ipv6: Option<Ipv6Addr>,
    pub framed_ipv6_prefix: Option<Ipv6Prefix>,
    pub delegated_ipv6_prefix: Option<Ipv6Prefix>,
    pub called_station_id: Option<&'a [u8]>,
    pub calling_station_id: Option<&'a [u8]>,
    /// Tunnel-Client-Endpoint (RFC 2868 3.3): the tunnel initiator's address (a VPN client's
    /// public address), as text; its tag, when there was one, removed.
    pub tunnel_client_endpoint: Option<&'a [u8]>,
    pub acct_status_type: Option<AcctStatusType>,
    pub acct_session_id: Option<&'a [u8]>,
    pub acct_session_time: Option<u32>,
    /// Acct-Input-Octets with Acct-Input-Gigawords (RFC 2869 5.1) as the high 32 bits.
    pub input_octets: Option<u64>,
    pub output_octets: Option<u64>,
    pub acct_terminate_cause: Option<u32>,
    pub reply_message: Option<&'a [u8]>,
    /// A User-Password, CHAP-Password or Tunnel-Password was present (its value is not kept).
    pub password_present: bool,
    pub eap_present: bool,
    pub message_authenticator_present: bool,
}

/// One RADIUS packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadiusPacket<'a> {
    pub code: Code,
    pub identifier: u8,
    pub length: u16,
    pub authenticator: [u8; AUTHENTICATOR_LEN],
    pub attributes: Attributes<'a>,
    pub anomalies: Anomalies,
}

/// Parses one RADIUS packet (a UDP payload). See the module documentation for the grammar.
pub fn parse(bytes: &[u8]) -> Result<RadiusPacket<'_>, RadiusError> {
    let (packet, trailing) = packet_bytes(bytes)?;
    let (header, body) = packet.split_at(HEADER_LEN);
    let mut authenticator = [0u8; AUTHENTICATOR_LEN];
    authenticator.copy_from_slice(&header[4..HEADER_LEN]);
    let mut anomalies = Anomalies {
        trailing_bytes: trailing,
        ..Anomalies::default()
    };
    let attributes = attributes(body, &mut anomalies);
    Ok(RadiusPacket {
        code: Code(header[0]),
        identifier: header[1],
        length: u16::from_be_bytes([header[2], header[3]]),
        authenticator,
        attributes,
        anomalies,
    })
}

/// The packet's bytes up to its Length, and whether the datagram had more.
fn packet_bytes(bytes: &[u8]) -> Result<(&[u8], bool), RadiusError> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or(RadiusError::TooShort { len: bytes.len() })?;
    let declared = u16::from_be_bytes([header[2], header[3]]);
    let length = usize::from(declared);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(RadiusError::BadLength(declared));
    }
    let packet = bytes.get(..length).ok_or(RadiusError::Truncated {
        declared,
        len: bytes.len(),
    })?;
    Ok((packet, bytes.len() > length))
}

fn attributes<'a>(mut body: &'a [u8], anomalies: &mut Anomalies) -> Attributes<'a> {
    let mut attributes = Attributes::default();
    while !body.is_empty() {
        let Some(&[kind, len]) = body.get(..2).and_then(|h| <&[u8; 2]>::try_from(h).ok()) else {
            anomalies.bad_attribute = true;
            break;
        };
        let Some((attribute, rest)) = body.split_at_checked(usize::from(len)).filter(|_| len >= 2)
        else {
            anomalies.bad_attribute = true;
            break;
        };
        body = rest;
        let kind = AttributeType(kind);
        if attributes.types.len() < MAX_ATTRIBUTES {
            attributes.types.push(kind);
        } else {
            anomalies.attributes_not_listed = true;
        }
        attributes.take(kind, &attribute[2..], anomalies);
    }
    attributes
}

/// Stores `value` in `slot` unless one is there already.
fn first<T>(slot: &mut Option<T>, value: Option<T>, anomalies: &mut Anomalies) {
    match (slot.is_some(), value) {
        (true, _) => anomalies.duplicate_attribute = true,
        (false, Some(value)) => *slot = Some(value),
        (false, None) => anomalies.bad_attribute_value = true,
    }
}

fn ipv4(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

fn ipv6(value: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(value).ok().map(Ipv6Addr::from)
}

fn integer(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes)
}

/// RFC 3162 2.3: Reserved(8) Prefix-Length(8) Prefix(0..16 octets, the rest zero).
fn ipv6_prefix(value: &[u8]) -> Option<Ipv6Prefix> {
    let (&[_, length], prefix) = value.split_first_chunk::<2>()?;
    if length > 128 || prefix.len() > 16 {
        return None;
    }
    let mut octets = [0u8; 16];
    octets.get_mut(..prefix.len())?.copy_from_slice(prefix);
    Some(Ipv6Prefix {
        address: Ipv6Addr::from(octets),
        length,
    })
}

/// The string of a tagged attribute (RFC 2868 3): a first octet of 0x00 to 0x1F is the tag
/// (0 when unused); from 0x20 on it is the string's first octet, the tag left out.
fn untagged(value: &[u8]) -> &[u8] {
    match value.split_first() {
        Some((&tag, rest)) if tag <= 0x1F => rest,
        _ => value,
    }
}

/// RFC 2865 5: text and string attributes are 1..=253 octets; an empty one is malformed.
fn string(value: &[u8]) -> Option<&[u8]> {
    (!value.is_empty()).then_some(value)
}

impl<'a> Attributes<'a> {
    fn take(&mut self, kind: AttributeType, value: &'a [u8], anomalies: &mut Anomalies) {
        match kind {
            AttributeType::USER_NAME => first(&mut self.user_name, string(value), anomalies),
            AttributeType::NAS_IP_ADDRESS => first(&mut self.nas_ip, ipv4(value), anomalies),
            AttributeType::NAS_IPV6_ADDRESS => first(&mut self.nas_ipv6, ipv6(value), anomalies),
            AttributeType::NAS_PORT => first(&mut self.nas_port, integer(value), anomalies),
            AttributeType::NAS_IDENTIFIER => {
                first(&mut self.nas_identifier, string(value), anomalies);
            }
            AttributeType::FRAMED_IP_ADDRESS => first(&mut self.framed_ip, ipv4(value), anomalies),
            AttributeType::FRAMED_IPV6_ADDRESS => {
                first(&mut self.framed_ipv6, ipv6(value), anomalies);
            }
            AttributeType::FRAMED_IPV6_PREFIX => {
                first(&mut self.framed_ipv6_prefix, ipv6_prefix(value), anomalies);
            }
            AttributeType::DELEGATED_IPV6_PREFIX => {
                first(
                    &mut self.delegated_ipv6_prefix,
                    ipv6_prefix(value),
                    anomalies,
                );
            }
            AttributeType::CALLED_STATION_ID => {
                first(&mut self.called_station_id, string(value), anomalies);
            }
            AttributeType::CALLING_STATION_ID => {
                first(&mut self.calling_station_id, string(value), anomalies);
            }
            AttributeType::TUNNEL_CLIENT_ENDPOINT => {
                first(
                    &mut self.tunnel_client_endpoint,
                    string(untagged(value)),
                    anomalies,
                );
            }
            AttributeType::ACCT_STATUS_TYPE => first(
                &mut self.acct_status_type,
                integer(value).map(AcctStatusType),
                anomalies,
            ),
            AttributeType::ACCT_SESSION_ID => {
                first(&mut self.acct_session_id, string(value), anomalies);
            }
            AttributeType::ACCT_SESSION_TIME => {
                first(&mut self.acct_session_time, integer(value), anomalies);
            }
            AttributeType::ACCT_TERMINATE_CAUSE => {
                first(&mut self.acct_terminate_cause, integer(value), anomalies);
            }
            AttributeType::ACCT_INPUT_OCTETS | AttributeType::ACCT_INPUT_GIGAWORDS => {
                add_octets(&mut self.input_octets, kind, value, anomalies);
            }
            AttributeType::ACCT_OUTPUT_OCTETS | AttributeType::ACCT_OUTPUT_GIGAWORDS => {
                add_octets(&mut self.output_octets, kind, value, anomalies);
            }
            AttributeType::REPLY_MESSAGE => {
                first(&mut self.reply_message, string(value), anomalies);
            }
            AttributeType::EAP_MESSAGE => self.eap_present = true,
            AttributeType::MESSAGE_AUTHENTICATOR => self.message_authenticator_present = true,
            kind if kind.is_secret() => self.password_present = true,
            _ => {}
        }
    }
}

/// Octets and gigawords (the high 32 bits) add into one counter, in either order.
fn add_octets(
    slot: &mut Option<u64>,
    kind: AttributeType,
    value: &[u8],
    anomalies: &mut Anomalies,
) {
    let Some(value) = integer(value) else {
        anomalies.bad_attribute_value = true;
        return;
    };
    let shift = if matches!(
        kind,
        AttributeType::ACCT_INPUT_GIGAWORDS | AttributeType::ACCT_OUTPUT_GIGAWORDS
    ) {
        32
    } else {
        0
    };
    let part = u64::from(value) << shift;
    *slot = Some(slot.unwrap_or_default() | part);
}

/// Lossy text of a string attribute (User-Name and others are UTF-8 by RFC 2865 5, but NASes
/// send what they like).
pub fn text(value: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(value)
}

/// Checks the Request Authenticator of an Accounting-Request (RFC 2866 3), or of a
/// Disconnect-Request or CoA-Request (RFC 5176 3.5, same computation):
///
/// ```text
/// Authenticator = MD5(Code + Identifier + Length + 16 zero octets + attributes + secret)
/// ```
///
/// `packet` is the UDP payload; octets beyond Length are ignored. False for any other code, a
/// malformed packet, or an empty secret.
pub fn verify_accounting_request(packet: &[u8], secret: &[u8]) -> bool {
    let Ok((packet, _)) = packet_bytes(packet) else {
        return false;
    };
    if secret.is_empty() || !Code(packet[0]).has_request_digest() {
        return false;
    }
    digest_matches(packet, &[0; AUTHENTICATOR_LEN], secret)
}

/// Checks the Response Authenticator of a response (Access-Accept/-Reject/-Challenge,
/// Accounting-Response, the RFC 5176 ACKs and NAKs) given its request's authenticator
/// (RFC 2865 3, RFC 2866 4):
///
/// ```text
/// ResponseAuth = MD5(Code + ID + Length + RequestAuth + attributes + secret)
/// ```
pub fn verify_response(
    packet: &[u8],
    request_authenticator: &[u8; AUTHENTICATOR_LEN],
    secret: &[u8],
) -> bool {
    let Ok((packet, _)) = packet_bytes(packet) else {
        return false;
    };
    !secret.is_empty() && digest_matches(packet, request_authenticator, secret)
}

/// MD5 over the packet with `authenticator` in place of its own, then the secret, compared
/// with the packet's authenticator. `packet` is at least [`HEADER_LEN`] long.
fn digest_matches(packet: &[u8], authenticator: &[u8; AUTHENTICATOR_LEN], secret: &[u8]) -> bool {
    let (header, rest) = packet.split_at(4);
    let (claimed, attributes) = rest.split_at(AUTHENTICATOR_LEN);
    let mut md5 = Md5::new();
    md5.update(header);
    md5.update(authenticator);
    md5.update(attributes);
    md5.update(secret);
    let computed = md5.finalize();
    // Constant time, not that a passive sensor is an oracle: it is no dearer.
    computed
        .iter()
        .zip(claimed)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;
    use dcwatch_tests::fixture::hex;

    // arkime/tests/pcap/radius.pcap: frame 1, Accounting-Request Interim-Update from an Aruba
    // controller (tshark -r F -T fields -e udp.payload). Its authenticator is all zeros (the
    // capture's sender did not compute it).
    const ACCOUNTING_REQUEST: &str = "\
        04e3015700000000000000000000000000000000010b78787878787878787804060a000001050600000000\
        3d06000000132c1f78787878787878783938354145423839383030302d353733363133303030065738c959\
        32193938354145423839383030302d3030303030303937303308060a0000031f0e39383541454238393830\
        30301e0e303031413145303030303030193a5048fc3468f64f16b5207eb261bf274eb90b00000000000052\
        30303030353533352d30312d303030303030306500000000000000000000002906000000001a14000039e7\
        050e7878782d656d706c6f7965651a1a000039e70614585858582d3030302d3030302d30303061321a0c00\
        0039e70a06585858321a14000039e7010e5858585f454d504c4f5945451a0c000039e7020600000bd81a08\
        000039e70c022806000000032a060051e1a22b06050f00ca2f060000945c3006000117352e060002b5d4";
    // The same packet with its authenticator computed for the secret "testing123" (python3
    // hashlib.md5 over the RFC 2866 3 input): only these 16 octets differ.
    const SIGNED_AUTHENTICATOR: &str = "cb2a5a43fe873f13fdaf23448c7e4745";
    // arkime/tests/pcap/radius.pcap: frame 2, the Accounting-Response.
    const ACCOUNTING_RESPONSE: &str = "05e3001400000000000000000000000000000000";
    // zeek/testing/btest/Traces/radius/radius.pcap: frame 1, Access-Request for John.McGuirk
    // carrying EAP-Message and Message-Authenticator (no password attribute).
    const ACCESS_REQUEST: &str = "\
        0105008becfe3d2fe4473ec6299095ee46aedf7704060a00000105060000c35c3d060000000f010e4a6f68\
        6e2e4d63477569726b1e1330302d31392d30362d45412d42382d38431f1330302d31342d32322d45392d35\
        342d35450606000000020c06000005dc4f1302000011014a6f686e2e4d63477569726b501228c5beb88424\
        86da70db51316f9d7889";
    // tcpdump/tests/RADIUS-RFC4675.pcap: frames 1 and 2, Access-Request for bob-tagged with a
    // User-Password, and its Access-Accept; the secret is "testing123" (found by checking the
    // Access-Accept's authenticator).
    const PASSWORD_REQUEST: &str = "\
        01460050f44757bc498c3393763a27d0b2393702010c626f622d7461676765640212a30e22b0369e89f89e\
        b6e0612c2c3c2304067f0000010506000000015012ffb19e8ea9620aec372d7fa3b2c76287";
    const ACCESS_ACCEPT: &str = "\
        02460035766a0314eaf4b95f1ec271ae19cb3bdc38063100007b3906000000013a0b31766c616e6e616d65\
        3b0a6162636461626364";
    // tcpdump/tests/RADIUS-RFC5176.pcap: frame 1, a Disconnect-Request signed with
    // "testing123" (RFC 5176 3.5: the Accounting-Request computation).
    const DISCONNECT_REQUEST: &str =
        "28010026e1792d2b4ab349f1a4c0fcc733d091c1501258513d662847e5f8734a30dbdac8e4af";

    #[test]
    fn accounting_request_attributes() {
        let bytes = hex(ACCOUNTING_REQUEST);
        let packet = parse(&bytes).unwrap();
        assert_eq!(packet.code, Code::ACCOUNTING_REQUEST);
        assert_eq!(packet.identifier, 0xe3);
        assert_eq!(usize::from(packet.length), bytes.len());
        let a = &packet.attributes;
        assert_eq!(a.user_name, Some(&b"xxxxxxxxx"[..]));
        assert_eq!(a.nas_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a.nas_port, Some(0));
        assert_eq!(a.framed_ip, Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(a.calling_station_id, Some(&b"985AEB898000"[..]));
        assert_eq!(a.called_station_id, Some(&b"001A1E000000"[..]));
        assert_eq!(a.acct_status_type, Some(AcctStatusType::INTERIM_UPDATE));
        assert_eq!(
            a.acct_status_type.and_then(AcctStatusType::name),
            Some("Interim-Update")
        );
        assert_eq!(
            a.acct_session_id,
            Some(&b"xxxxxxxx985AEB898000-57361300"[..])
        );
        assert_eq!(a.acct_session_time, Some(0x0002_b5d4));
        assert_eq!(a.input_octets, Some(0x0051_e1a2));
        assert_eq!(a.output_octets, Some(0x050f_00ca));
        assert_eq!(a.types.len(), 24);
        assert_eq!(a.types[0], AttributeType::USER_NAME);
        assert!(!a.password_present);
        assert_eq!(packet.anomalies, Anomalies::default());
    }

    #[test]
    fn accounting_authenticator_checks() {
        let mut bytes = hex(ACCOUNTING_REQUEST);
        // As captured: zeros are no digest of anything.
        assert!(!verify_accounting_request(&bytes, b"testing123"));
        bytes[4..20].copy_from_slice(&hex(SIGNED_AUTHENTICATOR));
        assert!(verify_accounting_request(&bytes, b"testing123"));
        assert!(!verify_accounting_request(&bytes, b"testing124"));
        assert!(!verify_accounting_request(&bytes, b""));
        // Padding after Length is not covered.
        bytes.extend_from_slice(&[0; 7]);
        assert!(verify_accounting_request(&bytes, b"testing123"));
        // A changed attribute breaks it.
        bytes[30] ^= 1;
        assert!(!verify_accounting_request(&bytes, b"testing123"));
        // Other codes are not accounting requests.
        assert!(!verify_accounting_request(
            &hex(PASSWORD_REQUEST),
            b"testing123"
        ));
    }

    #[test]
    fn disconnect_request_from_a_capture_verifies() {
        let bytes = hex(DISCONNECT_REQUEST);
        assert_eq!(parse(&bytes).unwrap().code, Code::DISCONNECT_REQUEST);
        assert!(verify_accounting_request(&bytes, b"testing123"));
        assert!(!verify_accounting_request(&bytes, b"testing12"));
    }

    #[test]
    fn response_authenticator_from_a_capture_verifies() {
        let request = hex(PASSWORD_REQUEST);
        let request = parse(&request).unwrap();
        let accept = hex(ACCESS_ACCEPT);
        assert_eq!(parse(&accept).unwrap().code, Code::ACCESS_ACCEPT);
        assert!(verify_response(
            &accept,
            &request.authenticator,
            b"testing123"
        ));
        assert!(!verify_response(&accept, &[0; 16], b"testing123"));
        let response = hex(ACCOUNTING_RESPONSE);
        assert_eq!(parse(&response).unwrap().code, Code::ACCOUNTING_RESPONSE);
    }

    #[test]
    fn passwords_are_never_kept() {
        let bytes = hex(PASSWORD_REQUEST);
        let packet = parse(&bytes).unwrap();
        assert_eq!(packet.code, Code::ACCESS_REQUEST);
        assert_eq!(packet.attributes.user_name, Some(&b"bob-tagged"[..]));
        assert!(packet.attributes.password_present);
        assert!(
            packet
                .attributes
                .types
                .contains(&AttributeType::USER_PASSWORD)
        );
        let debug = format!("{packet:?}");
        // The hidden password's first octets (a30e22b0) appear nowhere in the record.
        assert!(!debug.contains("163, 14, 34"));
    }

    #[test]
    fn access_request_with_eap() {
        let bytes = hex(ACCESS_REQUEST);
        let packet = parse(&bytes).unwrap();
        let a = &packet.attributes;
        assert_eq!(a.user_name.map(text).as_deref(), Some("John.McGuirk"));
        assert_eq!(a.calling_station_id, Some(&b"00-14-22-E9-54-5E"[..]));
        assert!(a.eap_present && a.message_authenticator_present);
        assert_eq!(packet.anomalies, Anomalies::default());
    }

    #[test]
    fn every_prefix_is_handled() {
        for fixture in [ACCOUNTING_REQUEST, ACCESS_REQUEST, ACCESS_ACCEPT] {
            let bytes = hex(fixture);
            for len in 0..bytes.len() {
                assert!(parse(&bytes[..len]).is_err(), "prefix {len} of {fixture}");
                assert!(!verify_accounting_request(&bytes[..len], b"testing123"));
            }
        }
    }

    #[test]
    fn bad_lengths_and_attributes() {
        let mut bytes = hex(ACCOUNTING_RESPONSE);
        bytes[3] = 19;
        assert_eq!(parse(&bytes), Err(RadiusError::BadLength(19)));
        bytes[2] = 0x10;
        bytes[3] = 0x01;
        assert_eq!(parse(&bytes), Err(RadiusError::BadLength(4097)));
        // An attribute of length 0 would loop forever if trusted; one past the end stops too.
        for attribute in [[1u8, 0], [1, 1], [1, 9]] {
            let mut bytes = hex(ACCOUNTING_RESPONSE);
            bytes.extend_from_slice(&attribute);
            bytes[3] = 22;
            let packet = parse(&bytes).unwrap();
            assert!(packet.anomalies.bad_attribute);
        }
        // A 3-octet NAS-IP-Address and a repeated User-Name.
        let mut bytes = hex(ACCOUNTING_RESPONSE);
        bytes.extend_from_slice(&[4, 5, 1, 2, 3, 1, 3, b'a', 1, 3, b'b']);
        bytes[3] = 31;
        let packet = parse(&bytes).unwrap();
        assert!(packet.anomalies.bad_attribute_value && packet.anomalies.duplicate_attribute);
        assert_eq!(packet.attributes.user_name, Some(&b"a"[..]));
        assert_eq!(packet.attributes.nas_ip, None);
    }

    #[test]
    fn attribute_list_is_bounded() {
        let mut bytes = hex(ACCOUNTING_RESPONSE);
        bytes.extend(std::iter::repeat_n([200u8, 2], 1000).flatten());
        let len = u16::try_from(bytes.len()).unwrap();
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        let packet = parse(&bytes).unwrap();
        assert_eq!(packet.attributes.types.len(), MAX_ATTRIBUTES);
        assert!(packet.anomalies.attributes_not_listed);
    }

    #[test]
    fn ipv6_prefixes() {
        let mut bytes = hex(ACCOUNTING_RESPONSE);
        // Framed-IPv6-Prefix 2001:db8::/32 and a prefix length above 128.
        bytes.extend_from_slice(&[97, 8, 0, 32, 0x20, 0x01, 0x0d, 0xb8, 123, 4, 0, 129]);
        bytes[3] = 32;
        let packet = parse(&bytes).unwrap();
        assert_eq!(
            packet.attributes.framed_ipv6_prefix,
            Some(Ipv6Prefix {
                address: "2001:db8::".parse().unwrap(),
                length: 32
            })
        );
        assert_eq!(packet.attributes.delegated_ipv6_prefix, None);
        assert!(packet.anomalies.bad_attribute_value);
    }

    // Crafted (RFC 2868 3.3), and read the same by tshark 4.0's radius dissector
    // (radius.Tunnel_Client_Endpoint): an Access-Request whose Tunnel-Client-Endpoint
    // "203.0.113.7" has tag 0x01, then one whose "198.51.100.9" has none (its first octet, '1',
    // is above 0x1F).
    const TAGGED_ENDPOINT: &str = "\
        0107003c000000000000000000000000000000000107616c696365420e013230332e302e3131332e371f13\
        30302d31312d32322d33332d34342d3535";
    const UNTAGGED_ENDPOINT: &str =
        "01080027000000000000000000000000000000000105626f62420e3139382e35312e3130302e39";

    #[test]
    fn tunnel_client_endpoint_with_and_without_its_tag() {
        let bytes = hex(TAGGED_ENDPOINT);
        let a = parse(&bytes).unwrap().attributes;
        assert_eq!(a.tunnel_client_endpoint, Some(&b"203.0.113.7"[..]));
        assert_eq!(a.calling_station_id, Some(&b"00-11-22-33-44-55"[..]));
        let bytes = hex(UNTAGGED_ENDPOINT);
        let a = parse(&bytes).unwrap().attributes;
        assert_eq!(a.tunnel_client_endpoint, Some(&b"198.51.100.9"[..]));
        // A tag and nothing after it is an empty string: malformed, not kept.
        let mut empty = hex("0109001700000000000000000000000000000000420301");
        let packet = parse(&empty).unwrap();
        assert_eq!(packet.attributes.tunnel_client_endpoint, None);
        assert!(packet.anomalies.bad_attribute_value);
        empty.truncate(22);
        assert!(parse(&empty).is_err());
    }
}
