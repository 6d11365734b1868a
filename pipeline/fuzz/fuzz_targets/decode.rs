//! The first byte picks the link type, the rest is the frame: both decoders (the packet summary
//! and the transport view the flow stage uses), and the transport reader of reassembled IP
//! datagrams on the bytes of any fragment; Ethernet frames are also taken out of their tunnel,
//! and the inner frame decoded.

#![no_main]

use libfuzzer_sys::fuzz_target;
use dcwatch_pipeline::{
    decap::{DecapConfig, Decapsulated, decapsulate},
    decode::{LinkType, TransportPacket, decode, packet, transport},
};

const LINKS: [LinkType; 5] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Loopback,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    if let (LinkType::Ethernet, Decapsulated::Inner(_, inner)) =
        (link, decapsulate(&DecapConfig::default(), frame))
    {
        assert!(inner.len() < frame.len(), "the inner frame lies within the outer one");
        let _ = packet(link, inner);
    }
    if let Ok(summary) = decode(link, frame) {
        let _ = summary.src_endpoint();
        let _ = summary.dst_endpoint();
    }
    if let Ok(decoded) = packet(link, frame) {
        let _ = format!("{decoded:?}");
        if let TransportPacket::Fragment(bytes) = decoded.transport {
            let _ = format!("{:?}", transport(decoded.ip_number, bytes));
        }
    }
});
