//! Everything after decoding: TCP segments and UDP datagrams with arbitrary payloads through the
//! dissector (flow table, PDU streams with resynchronisation, the protocol sessions and their
//! parsers), with a small memory budget so the caps bite. After every packet and at the end the
//! budget must hold, and every activity must write as a valid JSON line.
//!
//! The first byte picks the server port (Kerberos, LDAP, DNS, WinRM, HTTP, RDP, NetBIOS name
//! service, RADIUS accounting, SMB, the DCE-RPC endpoint mapper; UDP for all but WinRM and
//! HTTP, TCP for all). Then records: a control byte (bit 0: from the server; bit 1: SYN; bit 2:
//! FIN; bit 3: RST; bit 4: UDP; bit 5: a second client port; bit 6: no ACK, as on a client's
//! opening SYN, which the flow table needs to tell the client from the server), a sequence delta
//! (i8, from where the direction is), a length byte, and that many payload bytes.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use dcwatch_proto::v1::Activity;
use libfuzzer_sys::fuzz_target;
use dcwatch_pipeline::{
    activity::write_json_line,
    decode::{Packet, TcpPacket, TransportPacket},
    dissect::{DissectLimits, Dissector},
    flow::{FlowLimits, FragmentLimits},
};

const PORTS: [u16; 10] = [88, 389, 53, 5985, 80, 3389, 137, 1813, 445, 135];
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const MEMORY: usize = 256 * 1024;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

fn check(dissector: &Dissector, activities: &mut Vec<Activity>, scratch: &mut Vec<u8>) {
    let peak = dissector.snapshot().get("memory_peak").unwrap_or_default();
    assert!(peak <= MEMORY as u64, "memory peak {peak} over {MEMORY}");
    for activity in activities.drain(..) {
        let mut line = Vec::new();
        if let Err(error) = write_json_line(&activity, &mut line, scratch) {
            panic!("{error} writing {activity:?}");
        }
        serde_json::from_slice::<serde_json::Value>(&line).expect("a valid JSON line");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut script)) = data.split_first() else {
        return;
    };
    let server_port = PORTS[usize::from(selector) % PORTS.len()];
    let mut dissector = Dissector::new(DissectLimits {
        flows: FlowLimits {
            max_flows: 4,
            max_buffered_per_direction: 16 * 1024,
            max_buffered_total: MEMORY,
            ..FlowLimits::default()
        },
        fragments: FragmentLimits::default(),
        memory_bytes: MEMORY,
        ..DissectLimits::default()
    });
    let mut activities = Vec::new();
    let mut scratch = Vec::new();
    // Next sequence number per (client port, direction).
    let mut next_seq = [[1000_u32, 5000_u32]; 2];
    let mut time_ns = 1_700_000_000_000_000_000_u64;
    while let [control, delta, len, rest @ ..] = script {
        let len = usize::from(*len).min(rest.len());
        let (payload, after) = rest.split_at(len);
        script = after;
        time_ns += 1_000_000;
        let from_server = control & 1 != 0;
        let client_port = if control & 0x20 != 0 { 50_001 } else { 50_000 };
        let (src, dst, src_port, dst_port) = if from_server {
            (SERVER, CLIENT, server_port, client_port)
        } else {
            (CLIENT, SERVER, client_port, server_port)
        };
        let udp = control & 0x10 != 0 && server_port != 5985 && server_port != 80;
        let transport = if udp {
            TransportPacket::Udp {
                src_port,
                dst_port,
                payload,
            }
        } else {
            let seqs = &mut next_seq[usize::from(client_port == 50_001)];
            let seq = &mut seqs[usize::from(from_server)];
            let start = seq.wrapping_add_signed(i32::from(*delta as i8));
            let syn = control & 2 != 0;
            *seq = start
                .wrapping_add(u32::try_from(payload.len()).unwrap_or(0))
                .wrapping_add(u32::from(syn));
            let mut flags = if control & 0x40 != 0 { 0 } else { 0x10 };
            if syn {
                flags |= 0x02;
            }
            if control & 4 != 0 {
                flags |= 0x01;
            }
            if control & 8 != 0 {
                flags |= 0x04;
            }
            TransportPacket::Tcp(TcpPacket {
                src_port,
                dst_port,
                seq: start,
                ack: 0,
                flags,
                payload,
            })
        };
        let packet = Packet {
            src,
            dst,
            ip_number: if udp { PROTO_UDP } else { PROTO_TCP },
            fragment: None,
            transport,
        };
        dissector.packet(time_ns, &packet, &mut activities);
        check(&dissector, &mut activities, &mut scratch);
    }
    dissector.finish(time_ns, &mut activities);
    check(&dissector, &mut activities, &mut scratch);
});
