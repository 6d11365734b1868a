//! A fake endpoint mapper on loopback answering with the parsers crate's fixtures
//! (parsers/src/dcerpc/epm/tests.rs, checked with tshark).

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::net::TcpListener;

use super::*;
use dcwatch_tests::fixture::hex;

// testdata/pcaps/suricata-verify/tests/dcerpc/zerologon/input.pcap frame 5: BIND_ACK accepting
// EPMv4 over NDR.
const BIND_ACK: &str = "05000c03100000003c00000001000000b810b81057e0000004003133350000000100000000000000045d888aeb1cc9119fe808002b10486002000000";
// BIND_NAK, reason 0 (not specified), no versions.
const BIND_NAK: &str = "05000d031000000012000000010000000000";
// Four entries, handle 00000000 0102...10: DRSUAPI on TCP 49667 at 10.0.0.1 (another host than
// the loopback mapper), LSARPC on \PIPE\lsass, no tower, NETLOGON on TCP 49668 at 0.0.0.0.
const LOOKUP_RESPONSE: &str = "0500020310000000ec01000002000000d401000000000000000000000102030405060708090a0b0c0d0e0f1004000000f401000000000000040000000000000000000000000000000000000001000000000000001e0000004d53204e54204469726563746f72792044525320496e746572666163650000000000000000000000000000000000000002000000000000000100000000000000000000000000000000000000000000000000000000000000090000006e6f20746f7765720000000000000000000000000000000000000000030000000000000001000000000000004b0000004b000000050013000d354251e3064bd111ab0400c04fc2dcd204000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c20301000904000a000001005700000057000000050013000d785734123412cdabef000123456789ab00000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b0200000001000f0c005c504950455c6c736173730001001106005c5c44433100004b0000004b000000050013000d785634123412cdabef0001234567cffb01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c2040100090400000000000000000000";
// No entries, handle zero, EPT_S_NOT_REGISTERED.
const LOOKUP_END: &str = "050002031000000040000000030000002800000000000000000000000000000000000000000000000000000000000000f40100000000000000000000d6a0c916";

/// `pdu` (a single-fragment response) cut into two fragments of its stub.
fn in_two_fragments(pdu: &[u8]) -> Vec<u8> {
    const BODY: usize = 24;
    let stub = &pdu[BODY..];
    let (first, second) = stub.split_at(stub.len() / 2);
    let mut out = Vec::new();
    for (part, flags) in [
        (first, PfcFlags::FIRST_FRAG.0),
        (second, PfcFlags::LAST_FRAG.0),
    ] {
        let mut fragment = pdu[..BODY].to_vec();
        fragment[3] = flags;
        let length = u16::try_from(BODY + part.len()).expect("fits");
        fragment[8..10].copy_from_slice(&length.to_le_bytes());
        fragment.extend_from_slice(part);
        out.extend_from_slice(&fragment);
    }
    out
}

/// Serves one connection: `bind_answer` to the bind, then the fixtures' answers to the
/// ept_lookup calls, the second only to a call that carries the first answer's handle.
async fn serve_once(listener: TcpListener, bind_answer: &'static str) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let bind = read_pdu(&mut stream).await.expect("bind");
    assert_eq!(bind, epm::bind(1));
    stream.write_all(&hex(bind_answer)).await.expect("write");
    let first = read_pdu(&mut stream).await.expect("first lookup");
    assert_eq!(first, epm::lookup_request(2, &[0; 20], 500));
    stream
        .write_all(&in_two_fragments(&hex(LOOKUP_RESPONSE)))
        .await
        .expect("write");
    let second = read_pdu(&mut stream).await.expect("second lookup");
    let mut handle = [0; 20];
    handle[4..].copy_from_slice(&(1..=16).collect::<Vec<u8>>());
    assert_eq!(second, epm::lookup_request(3, &handle, 500));
    stream.write_all(&hex(LOOKUP_END)).await.expect("write");
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    (listener, address)
}

#[tokio::test]
async fn the_mappers_own_tcp_ports_are_gathered_across_calls_and_fragments() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(serve_once(listener, BIND_ACK));
    let ports = query(address, Duration::from_secs(5)).await.expect("ports");
    // 49667 is announced for 10.0.0.1, not the mapper's host; the pipe and the entry without a
    // tower have no port.
    assert_eq!(ports, [49668]);
    server.await.expect("server");
}

#[tokio::test]
async fn a_refused_bind_is_an_error() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_pdu(&mut stream).await.expect("bind");
        stream.write_all(&hex(BIND_NAK)).await.expect("write");
    });
    let error = query(address, Duration::from_secs(5)).await;
    assert!(matches!(error, Err(QueryError::BindRefused)), "{error:?}");
    server.await.expect("server");
}

#[tokio::test]
async fn a_silent_mapper_times_out() {
    let (listener, address) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let error = query(address, Duration::from_millis(200)).await;
    assert!(matches!(error, Err(QueryError::Timeout)), "{error:?}");
    server.abort();
}

#[tokio::test]
async fn a_closed_port_is_an_error() {
    let (listener, address) = listener().await;
    drop(listener);
    let error = query(address, Duration::from_secs(5)).await;
    assert!(matches!(error, Err(QueryError::Io(_))), "{error:?}");
}

#[tokio::test]
async fn over_ipv6_towers_naming_an_ipv4_host_are_kept() {
    let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        .await
        .expect("bind ::1");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(serve_once(listener, BIND_ACK));
    let ports = query(address, Duration::from_secs(5)).await.expect("ports");
    // Floor 5 is IPv4 only: 10.0.0.1 cannot be told apart from the mapper's own host.
    assert_eq!(ports, [49667, 49668]);
    server.await.expect("server");
}
