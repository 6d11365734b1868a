use super::{
    stub::{self, ByteOrder, Decoded, Encoding, SecureChannelType, TowerProtocol},
    *,
};
use dcwatch_tests::fixture::hex;

// testdata/pcaps/suricata-verify/tests/dcerpc/zerologon/input.pcap (tshark -T fields -e tcp.payload)
// frame 4: BIND, call 1, EPMv4 3.0 over NDR.
const ZL_BIND: &str = "05000b03100000004800000001000000b810b8100000000001000000000001000883afe11f5dc91191a408002b14a0fa03000000045d888aeb1cc9119fe808002b10486002000000";
// frame 5: BIND_ACK, secondary address "135", acceptance of NDR.
const ZL_BIND_ACK: &str = "05000c03100000003c00000001000000b810b81057e0000004003133350000000100000000000000045d888aeb1cc9119fe808002b10486002000000";
// frame 8: ept_map RESPONSE: one tower, NETLOGON on ncacn_ip_tcp 172.16.5.58:49668.
const ZL_MAP_RESPONSE: &str = "0500020310000000980000000100000080000000000000000000000048450468443dad43ad06e9e13075aaf101000000010000000000000001000000030000004b0000004b000000050013000d785634123412cdabef0001234567cffb01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c2040100090400ac10053a0000000000";
// frame 19: NetrServerReqChallenge REQUEST, computer BAS-AD-01, all-zero challenge.
const ZL_REQ_CHALLENGE: &str = "050000031000000068000000010000005000000000000400e85a00000c000000000000000c0000005c005c004200410053002d00410044002d003000310000000a000000000000000a0000004200410053002d00410044002d003000310000000000000000000000";
// frame 22: NetrServerAuthenticate3 REQUEST, account BAS-AD-01$, ServerSecureChannel, zero
// credential.
const ZL_AUTHENTICATE3: &str = "050000031000000090000000020000007800000000001a00d2d900000c000000000000000c0000005c005c004200410053002d00410044002d003000310000000b000000000000000b0000004200410053002d00410044002d00300031002400000006000a000000000000000a0000004200410053002d00410044002d003000310000000000000000000000ffff2f21";
// frame 23: its RESPONSE, returning STATUS_ACCESS_DENIED (0xc0000022) in the stub.
const ZL_AUTHENTICATE3_RESPONSE: &str =
    "05000203100000002c0000000200000014000000000000000000000000000000ffff2f2100000000220000c0";
// testdata/pcaps/suricata-verify/tests/dcerpc-smb-test-01/input.pcap frame 22 (SMB2 write on
// \pipe\svcctl, PDU cut out of the frame): RCreateServiceWOW64W (opnum 45) REQUEST, PsExec.
const PSEXEC_CREATE: &str = "0500000310000000dc00000003000000c400000000002d0000000000c255930e0aaf2c45910fe56e9bc0f9150900000000000000090000005000530045005800450053005600430000000000000002000900000000000000090000005000530045005800450053005600430000000000ff010f001000000003000000000000001a000000000000001a0000002500530079007300740065006d0052006f006f00740025005c00500053004500580045005300560043002e00650078006500000000000000000000000000000000000000000000000000000000000000";
// same capture, frame 19: BIND_ACK "\pipe\ntsvcs", acceptance and negotiate_ack.
const PSEXEC_BIND_ACK: &str = "05000c03100000005c00000002000000b810b8109a0600000d005c706970655c6e747376637300000200000000000000045d888aeb1cc9119fe808002b10486002000000030003000000000000000000000000000000000000000000";
// testdata/pcaps/suricata-verify/tests/dcerpc/dcerpc-auth3-5133/input.pcap frame 1: BIND of
// SVCCTL (NDR and bind-time feature negotiation) with an NTLMSSP NEGOTIATE auth verifier.
const AUTH3_BIND: &str = "05000b0710000000a400280002000000d016d01600000000020000000000010081bb7a364498f135ad3298f03800100302000000045d888aeb1cc9119fe808002b104860020000000100010081bb7a364498f135ad3298f038001003020000002c1cb76c129840450300000000000000010000000a060000000000004e544c4d5353500001000000b78208e2000000000000000000000000000000000a005a290000000f";
// OTRF covenant-era capture empire_shell_rpc_samr_smb_group_domain_admins_standard_user frame
// 162: SamrLookupNamesInDomain REQUEST in NDR64, "Domain Admins".
const SAMR_LOOKUP_NDR64: &str = "05000003100000008a0000000600000072000000010011000000000079e2216440b67441b92b0cb5a02a4cd501000000e803000000000000000000000000000001000000000000001a001c000000000000000200000000000e0000000000000000000000000000000d0000000000000044006f006d00610069006e002000410064006d0069006e007300";

fn request_of(text: &str) -> (Vec<u8>, Header) {
    let bytes = hex(text);
    let header = header(&bytes).expect("header");
    (bytes, header)
}

#[test]
fn a_bind_lists_its_contexts() {
    let bytes = hex(ZL_BIND);
    assert_eq!(frame(&bytes), Framing::Pdu(bytes.len()));
    assert_eq!(is_pdu_start(&bytes), Start::Yes);
    let pdu = parse(&bytes).expect("bind");
    assert_eq!(pdu.header.packet_type, PacketType::BIND);
    assert_eq!(pdu.header.call_id, 1);
    assert!(pdu.header.little_endian());
    let Body::Bind(bind) = pdu.body else {
        panic!("not a bind: {:?}", pdu.body)
    };
    assert_eq!(bind.max_xmit_frag, 4280);
    assert_eq!(bind.contexts.len(), 1);
    let context = &bind.contexts[0];
    assert_eq!(context.abstract_syntax.uuid, interfaces::EPM);
    assert_eq!(
        context.abstract_syntax.uuid.to_string(),
        "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
    );
    assert_eq!(
        (context.abstract_syntax.major, context.abstract_syntax.minor),
        (3, 0)
    );
    assert_eq!(context.transfer_syntaxes[0].uuid, SyntaxId::NDR);
    assert_eq!(pdu.auth, None);
    assert_eq!(pdu.anomalies, Anomalies::default());
}

#[test]
fn a_bind_ack_gives_the_port_and_the_results() {
    let bytes = hex(ZL_BIND_ACK);
    let pdu = parse(&bytes).expect("bind_ack");
    let Body::BindAck(ack) = pdu.body else {
        panic!("not a bind_ack")
    };
    assert_eq!(ack.secondary_address, b"135");
    assert_eq!(ack.results.len(), 1);
    assert_eq!(ack.results[0].result, ContextResult::ACCEPTANCE);
    assert_eq!(ack.results[0].transfer_syntax.uuid, SyntaxId::NDR);

    let bytes = hex(PSEXEC_BIND_ACK);
    let pdu = parse(&bytes).expect("bind_ack");
    let Body::BindAck(ack) = pdu.body else {
        panic!("not a bind_ack")
    };
    assert_eq!(ack.secondary_address, b"\\pipe\\ntsvcs");
    assert_eq!(
        ack.results.iter().map(|r| r.result).collect::<Vec<_>>(),
        [ContextResult::ACCEPTANCE, ContextResult::NEGOTIATE_ACK]
    );
}

#[test]
fn the_auth_verifier_of_a_bind_is_its_token() {
    let bytes = hex(AUTH3_BIND);
    let pdu = parse(&bytes).expect("bind");
    let auth = pdu.auth.expect("verifier");
    assert_eq!(auth.auth_type, AuthType::NTLM);
    assert_eq!(auth.auth_level, AuthLevel::PKT_PRIVACY);
    assert!(auth.token.starts_with(b"NTLMSSP\0\x01"));
    let Body::Bind(bind) = pdu.body else {
        panic!("not a bind")
    };
    assert_eq!(bind.contexts.len(), 2);
    assert_eq!(bind.contexts[0].abstract_syntax.uuid, interfaces::SVCCTL);
    assert_eq!(
        interfaces::interface(bind.contexts[0].abstract_syntax.uuid).map(|i| i.name),
        Some("svcctl")
    );
}

#[test]
fn an_ept_map_answer_announces_its_endpoint() {
    let (bytes, _) = request_of(ZL_MAP_RESPONSE);
    let pdu = parse(&bytes).expect("response");
    let Body::Response(response) = pdu.body else {
        panic!("not a response")
    };
    let Some(Decoded::Endpoints(endpoints)) = stub::response(
        interfaces::EPM,
        3,
        response.stub,
        Encoding::Ndr,
        ByteOrder::Little,
    ) else {
        panic!("no endpoints")
    };
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.interface, Some(interfaces::NETLOGON));
    assert_eq!(endpoint.protocol, TowerProtocol::TCP);
    assert_eq!(endpoint.port, Some(49668));
    assert_eq!(endpoint.ip, Some("172.16.5.58".parse().expect("ip")));
}

#[test]
fn zerologon_requests_show_zero_credentials() {
    let (bytes, _) = request_of(ZL_REQ_CHALLENGE);
    let Body::Request(request) = parse(&bytes).expect("request").body else {
        panic!("not a request")
    };
    assert_eq!(request.opnum, 4);
    assert_eq!(
        interfaces::operation_name(interfaces::NETLOGON, request.opnum),
        Some("NetrServerReqChallenge")
    );
    let Some(Decoded::Netlogon(challenge)) = stub::request(
        interfaces::NETLOGON,
        4,
        request.stub,
        Encoding::Ndr,
        ByteOrder::Little,
    ) else {
        panic!("not decoded")
    };
    assert_eq!(challenge.primary_name.as_deref(), Some("\\\\BAS-AD-01"));
    assert_eq!(challenge.computer_name, "BAS-AD-01");
    assert!(challenge.zero_credential());

    let (bytes, _) = request_of(ZL_AUTHENTICATE3);
    let Body::Request(request) = parse(&bytes).expect("request").body else {
        panic!("not a request")
    };
    let Some(Decoded::Netlogon(auth)) = stub::request(
        interfaces::NETLOGON,
        request.opnum,
        request.stub,
        Encoding::Ndr,
        ByteOrder::Little,
    ) else {
        panic!("not decoded")
    };
    assert_eq!(auth.account_name.as_deref(), Some("BAS-AD-01$"));
    assert_eq!(auth.secure_channel_type, Some(SecureChannelType::SERVER));
    assert_eq!(auth.computer_name, "BAS-AD-01");
    assert!(auth.zero_credential());
    assert_eq!(auth.negotiate_flags, Some(0x212f_ffff));

    let (bytes, _) = request_of(ZL_AUTHENTICATE3_RESPONSE);
    let Body::Response(response) = parse(&bytes).expect("response").body else {
        panic!("not a response")
    };
    assert_eq!(
        stub::return_value(response.stub, ByteOrder::Little),
        Some(0xc000_0022)
    );
}

/// Reverses the bytes of each element of `bytes`, laid out as runs of (element width, count):
/// a little-endian NDR stub made big-endian, field by field.
fn swapped(bytes: &[u8], layout: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(width, count) in layout {
        for _ in 0..count {
            out.extend(bytes[at..at + width].iter().rev());
            at += width;
        }
    }
    assert_eq!(at, bytes.len(), "the layout covers the stub");
    out
}

/// A REQUEST or RESPONSE PDU (24-byte header and fixed fields) made big-endian: drep, then
/// frag_length, auth_length, call_id, alloc_hint and the two u16 that follow, then the stub by
/// `layout`.
fn big_endian(pdu: &[u8], layout: &[(usize, usize)]) -> Vec<u8> {
    let mut out = pdu[..4].to_vec();
    out.extend(swapped(&pdu[4..8], &[(1, 4)]));
    out[4] = 0x00; // drep: big-endian integers, ASCII, IEEE.
    out.extend(swapped(&pdu[8..24], &[(2, 2), (4, 2), (2, 2)]));
    out.extend(swapped(&pdu[24..], layout));
    out
}

#[test]
fn a_big_endian_netlogon_call_decodes_as_the_little_endian_one() {
    // ZL_AUTHENTICATE3's stub: PrimaryName (unique pointer, 12-unit string), AccountName
    // (11 units), SecureChannelType, ComputerName (10 units), ClientCredential (8 bytes),
    // NegotiateFlags.
    let layout = [
        (4, 4),
        (2, 12),
        (4, 3),
        (2, 11),
        (2, 1),
        (4, 3),
        (2, 10),
        (1, 8),
        (4, 1),
    ];
    let bytes = big_endian(&hex(ZL_AUTHENTICATE3), &layout);
    let pdu = parse(&bytes).expect("request");
    assert!(!pdu.header.little_endian());
    assert!(pdu.anomalies.unusual_drep);
    let Body::Request(request) = pdu.body else {
        panic!("not a request")
    };
    assert_eq!(request.opnum, 26);
    let order = ByteOrder::of(&pdu.header);
    assert_eq!(order, ByteOrder::Big);
    let Some(Decoded::Netlogon(auth)) = stub::request(
        interfaces::NETLOGON,
        request.opnum,
        request.stub,
        Encoding::Ndr,
        order,
    ) else {
        panic!("not decoded")
    };
    assert_eq!(auth.primary_name.as_deref(), Some("\\\\BAS-AD-01"));
    assert_eq!(auth.account_name.as_deref(), Some("BAS-AD-01$"));
    assert_eq!(auth.secure_channel_type, Some(SecureChannelType::SERVER));
    assert_eq!(auth.computer_name, "BAS-AD-01");
    assert!(auth.zero_credential());
    assert_eq!(auth.negotiate_flags, Some(0x212f_ffff));
    // Read little-endian, the same stub says nothing sensible.
    assert_ne!(
        stub::request(
            interfaces::NETLOGON,
            26,
            request.stub,
            Encoding::Ndr,
            ByteOrder::Little
        ),
        Some(Decoded::Netlogon(auth))
    );

    // The answer: ServerCredential (8 bytes), NegotiateFlags, AccountRid, the NTSTATUS.
    let bytes = big_endian(&hex(ZL_AUTHENTICATE3_RESPONSE), &[(1, 8), (4, 3)]);
    let pdu = parse(&bytes).expect("response");
    let Body::Response(response) = pdu.body else {
        panic!("not a response")
    };
    assert_eq!(
        stub::return_value(response.stub, ByteOrder::of(&pdu.header)),
        Some(0xc000_0022)
    );
}

#[test]
fn a_big_endian_create_service_decodes_as_the_little_endian_one() {
    // PSEXEC_CREATE's stub: hSCManager (20 bytes), lpServiceName (9 units), pad, lpDisplayName
    // (pointer, 9 units), pad, access, type, start type, error control, lpBinaryPathName
    // (26 units), and the rest (not read) kept as bytes.
    let layout = [
        (1, 20),
        (4, 3),
        (2, 9),
        (1, 2),
        (4, 4),
        (2, 9),
        (1, 2),
        (4, 4),
        (4, 3),
        (2, 26),
        (1, 28),
    ];
    let bytes = big_endian(&hex(PSEXEC_CREATE), &layout);
    let pdu = parse(&bytes).expect("request");
    let Body::Request(request) = pdu.body else {
        panic!("not a request")
    };
    assert_eq!(request.opnum, 45);
    let Some(Decoded::CreateService(service)) = stub::request(
        interfaces::SVCCTL,
        45,
        request.stub,
        Encoding::Ndr,
        ByteOrder::of(&pdu.header),
    ) else {
        panic!("not decoded")
    };
    assert_eq!(service.service_name, "PSEXESVC");
    assert_eq!(service.display_name.as_deref(), Some("PSEXESVC"));
    assert_eq!(service.binary_path, "%SystemRoot%\\PSEXESVC.exe");
    assert_eq!(service.start_type, 3);
}

#[test]
fn a_created_service_shows_its_binary() {
    let (bytes, _) = request_of(PSEXEC_CREATE);
    let Body::Request(request) = parse(&bytes).expect("request").body else {
        panic!("not a request")
    };
    assert_eq!(request.opnum, 45);
    let Some(Decoded::CreateService(service)) = stub::request(
        interfaces::SVCCTL,
        45,
        request.stub,
        Encoding::Ndr,
        ByteOrder::Little,
    ) else {
        panic!("not decoded")
    };
    assert_eq!(service.service_name, "PSEXESVC");
    assert_eq!(service.display_name.as_deref(), Some("PSEXESVC"));
    assert_eq!(service.binary_path, "%SystemRoot%\\PSEXESVC.exe");
    assert_eq!(service.start_type, 3);
}

#[test]
fn samr_names_decode_in_ndr64_and_not_as_ndr() {
    let (bytes, _) = request_of(SAMR_LOOKUP_NDR64);
    let Body::Request(request) = parse(&bytes).expect("request").body else {
        panic!("not a request")
    };
    assert_eq!(
        stub::request(
            interfaces::SAMR,
            17,
            request.stub,
            Encoding::Ndr64,
            ByteOrder::Little
        ),
        Some(Decoded::LookupNames(vec!["Domain Admins".to_owned()]))
    );
    assert_eq!(
        stub::request(
            interfaces::SAMR,
            17,
            request.stub,
            Encoding::Ndr,
            ByteOrder::Little
        ),
        None
    );
}

#[test]
fn every_prefix_is_an_error_or_needs_more() {
    for text in [
        ZL_BIND,
        ZL_BIND_ACK,
        ZL_MAP_RESPONSE,
        ZL_AUTHENTICATE3,
        PSEXEC_CREATE,
        AUTH3_BIND,
    ] {
        let bytes = hex(text);
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            assert!(parse(prefix).is_err(), "prefix {len} of {text}");
            assert_ne!(is_pdu_start(prefix), Start::No, "prefix {len}");
            match frame(prefix) {
                Framing::NeedMore => assert!(len < HEADER_LEN),
                Framing::Pdu(total) => assert_eq!(total, bytes.len()),
                Framing::NotPdu => panic!("prefix {len} refused"),
            }
        }
    }
}

#[test]
fn stubs_cut_anywhere_decode_to_nothing_without_panic() {
    for (text, interface) in [
        (ZL_AUTHENTICATE3, interfaces::NETLOGON),
        (ZL_REQ_CHALLENGE, interfaces::NETLOGON),
        (PSEXEC_CREATE, interfaces::SVCCTL),
        (SAMR_LOOKUP_NDR64, interfaces::SAMR),
    ] {
        let bytes = hex(text);
        let Body::Request(request) = parse(&bytes).expect("request").body else {
            panic!("not a request")
        };
        for len in 0..request.stub.len().saturating_sub(8) {
            for encoding in [Encoding::Ndr, Encoding::Ndr64] {
                let _ = stub::request(
                    interface,
                    request.opnum,
                    &request.stub[..len],
                    encoding,
                    ByteOrder::Little,
                );
            }
        }
    }
    let bytes = hex(ZL_MAP_RESPONSE);
    let Body::Response(response) = parse(&bytes).expect("response").body else {
        panic!("not a response")
    };
    // The tower ends 5 bytes before the stub does (1 byte of pad, then the status).
    for len in 0..response.stub.len() - 5 {
        assert_eq!(
            stub::response(
                interfaces::EPM,
                3,
                &response.stub[..len],
                Encoding::Ndr,
                ByteOrder::Little
            ),
            None,
            "cut at {len}"
        );
    }
}

#[test]
fn hostile_headers_are_refused() {
    let mut bytes = hex(ZL_BIND);
    // Version 4 (connectionless) is not this protocol.
    bytes[0] = 4;
    assert_eq!(frame(&bytes), Framing::NotPdu);
    assert_eq!(is_pdu_start(&bytes), Start::No);
    // A frag_length shorter than the header.
    let mut bytes = hex(ZL_BIND);
    bytes[8] = 4;
    bytes[9] = 0;
    assert_eq!(frame(&bytes), Framing::NotPdu);
    // An auth_length longer than the PDU.
    let mut bytes = hex(ZL_BIND);
    bytes[10] = 0xff;
    assert_eq!(is_pdu_start(&bytes), Start::No);
    assert!(parse(&bytes).is_err());
    // A context count far beyond the bytes: what fits is kept, the rest flagged.
    let mut bytes = hex(ZL_BIND);
    bytes[24] = 0xff;
    let pdu = parse(&bytes).expect("still a bind");
    assert!(pdu.anomalies.truncated_body);
    assert!(pdu.anomalies.too_many_items);
    // Random text does not start a PDU.
    assert_eq!(is_pdu_start(b"GET / HTTP/1.1\r\nHost: x\r\n"), Start::No);
}

#[test]
fn big_endian_pdus_are_read_in_their_order() {
    // ZL_BIND re-encoded big-endian by hand: drep 00, the header's and body's integers and the
    // UUIDs' first three fields swapped.
    let little = hex(ZL_BIND);
    let mut big = little.clone();
    big[4] = 0x00;
    big[8..10].copy_from_slice(&[0, 0x48]);
    big[12..16].copy_from_slice(&1u32.to_be_bytes());
    big[16..18].copy_from_slice(&4280u16.to_be_bytes());
    big[18..20].copy_from_slice(&4280u16.to_be_bytes());
    big[28..30].copy_from_slice(&0u16.to_be_bytes());
    let uuid = &little[32..48];
    let mut swapped = uuid.to_vec();
    swapped[0..4].reverse();
    swapped[4..6].reverse();
    swapped[6..8].reverse();
    big[32..48].copy_from_slice(&swapped);
    big[48..52].copy_from_slice(&3u32.to_be_bytes());
    let pdu = parse(&big).expect("big-endian bind");
    assert!(!pdu.header.little_endian());
    let Body::Bind(bind) = pdu.body else {
        panic!("not a bind")
    };
    assert_eq!(bind.max_xmit_frag, 4280);
    assert_eq!(bind.contexts[0].abstract_syntax.uuid, interfaces::EPM);
    assert_eq!(bind.contexts[0].abstract_syntax.major, 3);
}

#[test]
fn names_of_code_points() {
    assert_eq!(FaultStatus(0x1c01_0002).name(), Some("nca_s_op_rng_error"));
    assert_eq!(FaultStatus(5).name(), Some("access_denied"));
    assert_eq!(
        interfaces::operation_name(interfaces::DRSUAPI, 3),
        Some("DsGetNCChanges")
    );
    assert_eq!(
        interfaces::operation_name(interfaces::LSARPC, 43),
        Some("LsarRetrievePrivateData")
    );
    assert_eq!(
        interfaces::operation_name(interfaces::SPOOLSS, 65),
        Some("RpcRemoteFindFirstPrinterChangeNotificationEx")
    );
    assert_eq!(
        interfaces::interface(interfaces::EFSRPC_LSARPC).map(|i| i.name),
        Some("efsrpc")
    );
}

/// The interface UUIDs as the specifications print them (MS-DRSR 2.2, MS-SCMR 1.9, MS-SAMR 1.9,
/// MS-LSAD 1.9, MS-NRPC 1.9, MS-SRVS 1.9, MS-WKST 1.9, C706 appendix O, MS-TSCH 1.9, MS-EFSR
/// 1.9, MS-RPRN 1.9, MS-RRP 1.9, MS-DSSP 1.9): a constant written as a number once named
/// DCSync's interface wrongly by one digit, and nothing else would have told.
#[test]
fn interface_uuids_read_as_the_specifications_print_them() {
    let expected = [
        ("drsuapi", "e3514235-4b06-11d1-ab04-00c04fc2dcd2"),
        ("svcctl", "367abb81-9844-35f1-ad32-98f038001003"),
        ("samr", "12345778-1234-abcd-ef00-0123456789ac"),
        ("lsarpc", "12345778-1234-abcd-ef00-0123456789ab"),
        ("netlogon", "12345678-1234-abcd-ef00-01234567cffb"),
        ("srvsvc", "4b324fc8-1670-01d3-1278-5a47bf6ee188"),
        ("wkssvc", "6bffd098-a112-3610-9833-46c3f87e345a"),
        ("epm", "e1af8308-5d1f-11c9-91a4-08002b14a0fa"),
        ("atsvc", "1ff70682-0a51-30e8-076d-740be8cee98b"),
        ("efsrpc", "df1941c5-fe89-4e79-bf10-463657acf44d"),
        ("spoolss", "12345678-1234-abcd-ef00-0123456789ab"),
        ("winreg", "338cd001-2244-31f1-aaaa-900038001003"),
        ("dssetup", "3919286a-b10c-11d0-9ba8-00c04fd92ef5"),
    ];
    let known = [
        interfaces::DRSUAPI,
        interfaces::SVCCTL,
        interfaces::SAMR,
        interfaces::LSARPC,
        interfaces::NETLOGON,
        interfaces::SRVSVC,
        interfaces::WKSSVC,
        interfaces::EPM,
        interfaces::ATSVC,
        interfaces::EFSRPC,
        interfaces::SPOOLSS,
        interfaces::WINREG,
        interfaces::DSSETUP,
    ];
    for ((name, text), uuid) in expected.into_iter().zip(known) {
        assert_eq!(uuid.to_string(), text, "{name}");
        assert_eq!(
            interfaces::interface(uuid).map(|interface| interface.name),
            Some(name),
            "{name}"
        );
    }
}
