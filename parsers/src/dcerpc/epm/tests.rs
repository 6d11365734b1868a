use super::*;
use crate::dcerpc::{Body, parse, stub::TowerProtocol};
use dcwatch_tests::fixture::hex;

fn stub_of(pdu: &[u8]) -> Vec<u8> {
    match parse(pdu).expect("pdu").body {
        Body::Response(response) => response.stub.to_vec(),
        other => panic!("not a response: {other:?}"),
    }
}

// testdata/pcaps/suricata-verify/tests/dcerpc/zerologon/input.pcap frame 4 (impacket's bind):
// BIND, call 1, max_xmit/recv 4280, EPMv4 3.0 over NDR 2.0.
const ZL_BIND: &str = "05000b03100000004800000001000000b810b8100000000001000000000001000883afe11f5dc91191a408002b14a0fa03000000045d888aeb1cc9119fe808002b10486002000000";

// testdata/pcaps/zeek/testing/btest/Traces/dce-rpc/mapi.pcap (zeek, BSD-3-Clause), frame 505:
// Exchange's ept_lookup RESPONSE. tshark 4.0: handle 000000007cfc5f3b92b07544a3e3e4d53df481df,
// 1 entry ("MS Exchange Directory NSP Interface", NSPI f5cc5a18-4264-101a-8c59-08002b2f8426
// v56, floor 4 RPC over HTTP (0x1f) port 5000, floor 5 proto 0x20), return code 0.
const MAPI_LOOKUP_RESPONSE: &str = "0500020310000000d400000001000000bc00000000000000000000007cfc5f3b92b07544a3e3e4d53df481df01000000010000000000000001000000000000000000000000000000000000000300000000000000240000004d532045786368616e6765204469726563746f7279204e535020496e74657266616365004b0000004b000000050013000d185accf564421a108c5908002b2f842638000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b0200000001001f020013880100200400c0a800020000000000";

// Crafted the way a Windows DC answers (parsers/tests/fixtures/epm/craft-lookup.py), decoded by
// tshark 4.0 from parsers/tests/fixtures/epm/lookup.pcap as: RESPONSE call 2, handle 00000000 0102...10, 4 entries (max_count 500):
//   1. DRSUAPI e3514235-4b06-11d1-ab04-00c04fc2dcd2 v4, ncacn_ip_tcp port 49667, IP 10.0.0.1,
//      annotation "MS NT Directory DRS Interface"
//   2. LSARPC on named pipe \PIPE\lsass, NetBIOS \\DC1, empty annotation
//   3. no tower (NULL pointer), annotation "no tower"
//   4. NETLOGON 12345678-1234-abcd-ef00-01234567cffb v1, ncacn_ip_tcp port 49668, IP 0.0.0.0
// return code 0.
const CRAFTED_LOOKUP_RESPONSE: &str = "0500020310000000ec01000002000000d401000000000000000000000102030405060708090a0b0c0d0e0f1004000000f401000000000000040000000000000000000000000000000000000001000000000000001e0000004d53204e54204469726563746f72792044525320496e746572666163650000000000000000000000000000000000000002000000000000000100000000000000000000000000000000000000000000000000000000000000090000006e6f20746f7765720000000000000000000000000000000000000000030000000000000001000000000000004b0000004b000000050013000d354251e3064bd111ab0400c04fc2dcd204000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c20301000904000a000001005700000057000000050013000d785734123412cdabef000123456789ab00000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b0200000001000f0c005c504950455c6c736173730001001106005c5c44433100004b0000004b000000050013000d785634123412cdabef0001234567cffb01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c2040100090400000000000000000000";

// The end of the table: RESPONSE call 3, handle all zero, no entries (max_count 500), return
// code 0x16c9a0d6 (EPT_S_NOT_REGISTERED); tshark 4.0 reads the same.
const CRAFTED_LOOKUP_END: &str = "050002031000000040000000030000002800000000000000000000000000000000000000000000000000000000000000f40100000000000000000000d6a0c916";

// The REQUEST impacket's hept_lookup sends as its second call (tshark 4.0: opnum 2, inquiry
// type 0 rpc_c_ep_all_elts, NULL object and interface, version option 1, handle 00000000
// 0102...10, max entries 500).
const LOOKUP_REQUEST_CALL_3: &str = "05000003100000004000000003000000280000000000020000000000000000000000000001000000000000000102030405060708090a0b0c0d0e0f10f4010000";

#[test]
fn the_bind_is_impackets() {
    assert_eq!(bind(1), hex(ZL_BIND));
}

#[test]
fn a_lookup_request_continues_from_the_handle() {
    let mut handle = [0; CONTEXT_HANDLE_LEN];
    for (at, byte) in handle.iter_mut().enumerate().skip(4) {
        *byte = (at - 3) as u8;
    }
    assert_eq!(
        lookup_request(3, &handle, MAX_ENTRIES_PER_CALL),
        hex(LOOKUP_REQUEST_CALL_3)
    );
}

#[test]
fn exchanges_answer_gives_its_http_endpoint() {
    let stub = stub_of(&hex(MAPI_LOOKUP_RESPONSE));
    let answer = lookup_response(&stub, Encoding::Ndr, ByteOrder::Little).expect("answer");
    assert_eq!(answer.entries, 1);
    assert_eq!(answer.status, 0);
    assert_eq!(
        answer.handle.to_vec(),
        hex("000000007cfc5f3b92b07544a3e3e4d53df481df")
    );
    assert!(answer.has_more());
    let [endpoint] = answer.endpoints.as_slice() else {
        panic!("{:?}", answer.endpoints)
    };
    assert_eq!(
        endpoint.interface.map(|uuid| uuid.to_string()).as_deref(),
        Some("f5cc5a18-4264-101a-8c59-08002b2f8426")
    );
    assert_eq!(endpoint.protocol, TowerProtocol::HTTP);
    assert_eq!(endpoint.port, Some(5000));
}

#[test]
fn a_dcs_answer_gives_tcp_ports_and_pipes() {
    let stub = stub_of(&hex(CRAFTED_LOOKUP_RESPONSE));
    let answer = lookup_response(&stub, Encoding::Ndr, ByteOrder::Little).expect("answer");
    assert_eq!(answer.entries, 4);
    assert_eq!(answer.status, 0);
    assert!(answer.has_more());
    let summary: Vec<_> = answer
        .endpoints
        .iter()
        .map(|endpoint| {
            (
                endpoint.interface.map(|uuid| uuid.to_string()),
                endpoint.protocol,
                endpoint.port,
                endpoint.name.clone(),
                endpoint.ip.map(|ip| ip.to_string()),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some("e3514235-4b06-11d1-ab04-00c04fc2dcd2".to_owned()),
                TowerProtocol::TCP,
                Some(49667),
                None,
                Some("10.0.0.1".to_owned())
            ),
            (
                Some("12345778-1234-abcd-ef00-0123456789ab".to_owned()),
                TowerProtocol::NAMED_PIPE,
                None,
                Some("\\PIPE\\lsass".to_owned()),
                None
            ),
            (
                Some("12345678-1234-abcd-ef00-01234567cffb".to_owned()),
                TowerProtocol::TCP,
                Some(49668),
                None,
                Some("0.0.0.0".to_owned())
            ),
        ]
    );
}

#[test]
fn the_end_of_the_table_has_no_more() {
    let stub = stub_of(&hex(CRAFTED_LOOKUP_END));
    let answer = lookup_response(&stub, Encoding::Ndr, ByteOrder::Little).expect("answer");
    assert_eq!(answer.entries, 0);
    assert_eq!(answer.status, EPT_S_NOT_REGISTERED);
    assert_eq!(answer.handle, [0; CONTEXT_HANDLE_LEN]);
    assert!(answer.endpoints.is_empty());
    assert!(!answer.has_more());
}

#[test]
fn malformed_answers_are_refused() {
    let stub = stub_of(&hex(CRAFTED_LOOKUP_RESPONSE));
    // num_ents (offset 20) says 5, the array's actual count 4.
    let mut count_mismatch = stub.clone();
    count_mismatch[20] = 5;
    assert_eq!(
        lookup_response(&count_mismatch, Encoding::Ndr, ByteOrder::Little),
        None
    );
    // Both counts beyond what was asked for.
    let mut too_many = stub.clone();
    too_many[20..24].copy_from_slice(&10_000_u32.to_le_bytes());
    too_many[32..36].copy_from_slice(&10_000_u32.to_le_bytes());
    assert_eq!(
        lookup_response(&too_many, Encoding::Ndr, ByteOrder::Little),
        None
    );
    // The first annotation's length (offset 60) longer than ept_max_annotation_size.
    let mut long_annotation = stub.clone();
    long_annotation[60] = 65;
    assert_eq!(
        lookup_response(&long_annotation, Encoding::Ndr, ByteOrder::Little),
        None
    );
    // The first tower's length (after the entries) running past the stub.
    let tower_at = stub
        .windows(8)
        .position(|window| window == [0x4b, 0, 0, 0, 0x4b, 0, 0, 0])
        .expect("first tower");
    let mut long_tower = stub;
    long_tower[tower_at + 4..tower_at + 8].copy_from_slice(&0x7fff_ffff_u32.to_le_bytes());
    assert_eq!(
        lookup_response(&long_tower, Encoding::Ndr, ByteOrder::Little),
        None
    );
}

#[test]
fn every_prefix_is_refused_without_panicking() {
    for fixture in [
        MAPI_LOOKUP_RESPONSE,
        CRAFTED_LOOKUP_RESPONSE,
        CRAFTED_LOOKUP_END,
    ] {
        let stub = stub_of(&hex(fixture));
        for len in 0..stub.len() {
            for encoding in [Encoding::Ndr, Encoding::Ndr64] {
                for order in [ByteOrder::Little, ByteOrder::Big] {
                    let prefix = &stub[..len];
                    // Every field up to the status is needed: no prefix is a whole answer.
                    assert_eq!(
                        lookup_response(prefix, encoding, order),
                        None,
                        "{len} bytes"
                    );
                }
            }
        }
    }
}

#[test]
fn an_authenticated_bind_is_the_bind_with_its_verifier() {
    let token = b"NTLMSSP\0\x01\0\0\0token";
    let pdu = authenticated_bind(7, AuthType::NTLM, AuthLevel::CONNECT, token);
    let unauthenticated = bind(7);
    // The same body; frag_length and auth_length grow by the verifier.
    assert_eq!(
        pdu[HEADER_LEN..unauthenticated.len()],
        unauthenticated[HEADER_LEN..]
    );
    assert_eq!(
        pdu.len(),
        unauthenticated.len() + SEC_TRAILER_LEN + token.len()
    );
    let parsed = parse(&pdu).expect("a PDU");
    assert_eq!(usize::from(parsed.header.frag_length), pdu.len());
    assert_eq!(usize::from(parsed.header.auth_length), token.len());
    assert_eq!(parsed.header.call_id, 7);
    assert_eq!(parsed.anomalies, crate::dcerpc::Anomalies::default());
    let Body::Bind(body) = &parsed.body else {
        panic!("not a bind: {:?}", parsed.body)
    };
    assert_eq!(body.contexts[0].abstract_syntax.uuid, interfaces::EPM);
    let auth = parsed.auth.expect("an auth verifier");
    assert_eq!(
        (auth.auth_type, auth.auth_level),
        (AuthType::NTLM, AuthLevel::CONNECT)
    );
    assert_eq!((auth.pad_length, auth.context_id), (0, 0));
    assert_eq!(auth.token, token);
}
