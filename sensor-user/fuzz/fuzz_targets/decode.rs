//! The first byte picks the link type, the rest is the frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor_user::decode::{LinkType, decode};

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
    if let Ok(summary) = decode(link, frame) {
        let _ = summary.src_endpoint();
        let _ = summary.dst_endpoint();
    }
});
