//! IP fragments put back together before parsing: a Kerberos AS-REQ over UDP
//! (testdata/pcaps/arkime/tests/pcap/krb5-udp.pcap) cut into IPv4 and IPv6 fragments that arrive
//! out of order gives the same activity as the whole datagram.

use std::{path::Path, process::Command};

use dcwatch_pipeline::{
    capture_file::CaptureFile,
    decode::{self, TransportPacket},
};
use dcwatch_tests::{
    frames::{self, CLIENT_V4, CLIENT_V6, DC_V4, DC_V6, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Ipv4},
    pcap,
};
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const PROTO_UDP: u8 = 17;
const IPV6_FRAGMENT: u8 = 44;
const DESTINATION_OPTIONS: u8 = 60;
/// Bytes of UDP datagram per fragment: a multiple of 8, as fragment offsets require.
const PIECE: usize = 64;

/// The UDP payload of the capture's only frame: an AS-REQ.
fn as_req() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcaps/arkime/tests/pcap/krb5-udp.pcap");
    let mut file = CaptureFile::open(&path).expect("open");
    let frame = file.next_frame().expect("read").expect("one frame");
    match decode::packet(frame.link, frame.data)
        .expect("decodes")
        .transport
    {
        TransportPacket::Udp { payload, .. } => payload.to_vec(),
        other => panic!("not UDP: {other:?}"),
    }
}

/// Cuts `payload` into [`PIECE`]-byte fragments; `frame` makes each one's frame from its offset
/// (in 8-byte units), whether more follow, and its bytes.
fn fragments(payload: &[u8], frame: impl Fn(u16, bool, &[u8]) -> Vec<u8>) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = payload.chunks(PIECE).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(index, piece)| {
            let offset = u16::try_from(index * PIECE / 8).expect("small");
            frame(offset, index != last, piece)
        })
        .collect()
}

fn v4_fragments(datagram: &[u8]) -> Vec<Vec<u8>> {
    fragments(datagram, |offset, more, piece| {
        let ip = Ipv4 {
            more_fragments: more,
            fragment_offset: offset,
            ..Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP)
        }
        .packet(piece);
        frames::ethernet(&[], ETHERTYPE_IPV4, &ip)
    })
}

/// IPv6 fragments of `fragmentable` (the part after the Fragment header), which starts with a
/// header of kind `next`.
fn v6_fragments(next: u8, fragmentable: &[u8]) -> Vec<Vec<u8>> {
    fragments(fragmentable, |offset, more, piece| {
        let fragment = frames::ipv6_fragment(next, offset, more, piece);
        let ip = frames::ipv6(CLIENT_V6, DC_V6, IPV6_FRAGMENT, &fragment);
        frames::ethernet(&[], ETHERTYPE_IPV6, &ip)
    })
}

fn replay(frames: Vec<Vec<u8>>, workdir: &Path) -> (Vec<Value>, Value) {
    let capture = workdir.join("fragments.pcap");
    let stats = workdir.join("stats.json");
    let time = 1_700_000_000_000_000_000_u64;
    pcap::write(
        &capture,
        frames
            .into_iter()
            .enumerate()
            .map(|(index, frame)| (time + index as u64 * 1000, frame)),
    )
    .expect("write");
    let output = Command::new(SENSOR)
        .args(["replay", "--output", "json", "--stats-file"])
        .arg(&stats)
        .arg(&capture)
        .output()
        .expect("run the sensor");
    assert!(output.status.success());
    let activities = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    let stats =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("JSON");
    (activities, stats)
}

#[test]
fn fragmented_kerberos_datagrams_are_parsed_whole() {
    let payload = as_req();
    let datagram = frames::udp(50_000, 88, &payload);
    let workdir = tempfile::tempdir().expect("temporary directory");
    for (family, mut fragments) in [
        ("IPv4", v4_fragments(&datagram)),
        ("IPv6", v6_fragments(PROTO_UDP, &datagram)),
        // RFC 8200 4.5: extension headers after the Fragment header travel inside the
        // fragments.
        (
            "IPv6 with options after the fragment header",
            v6_fragments(
                DESTINATION_OPTIONS,
                &frames::ipv6_extension(PROTO_UDP, 0, &datagram),
            ),
        ),
    ] {
        assert!(
            fragments.len() >= 5,
            "{family}: {} fragments",
            fragments.len()
        );
        // Last first, then the rest reversed, with the second fragment sent twice.
        fragments.reverse();
        let second = fragments[fragments.len() - 2].clone();
        fragments.insert(1, second);
        let count = fragments.len() as u64;
        let (activities, stats) = replay(fragments, workdir.path());
        assert_eq!(activities.len(), 1, "{family}: {activities:?} {stats}");
        let activity = &activities[0];
        assert_eq!(activity["type"], "AS_REQ", "{family}");
        // tshark: kerberos.CNameString, kerberos.realm (the capture is anonymised).
        assert_eq!(activity["client"], "xxxxxxxx$", "{family}: {activity}");
        assert_eq!(activity["client_realm"], "xx.xxx.xxxxx.NET", "{family}");
        assert_eq!(activity["encrypted_timestamp"], true, "{family}");
        assert_eq!(stats["fragment_fragments"], count, "{family}");
        assert_eq!(stats["fragment_reassembled"], 1, "{family}");
        assert_eq!(stats["fragment_duplicates"], 1, "{family}");
        assert_eq!(stats["memory_in_use"], 0, "{family}");
    }
}
