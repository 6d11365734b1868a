use dcwatch_proto::v1::{
    dce_rpc_activity::{AuthLevel, AuthType},
    outcome::Status,
};

use super::*;
use crate::dissect::endpoints::{Announced, Announcements, LEARNED_ENDPOINT_TTL_NS};
use crate::dissect::session::{Kind, Session};
use crate::flow::{FlowKey, StreamEvent};
use dcwatch_tests::fixture::hex;

// testdata/pcaps/suricata-verify/tests/dcerpc/zerologon/input.pcap (tshark -e tcp.payload):
// frames 4, 5, 7, 8 on port 135 (EPM bind, ack, ept_map request and answer), then 16, 17, 19,
// 22, 23 on the learned port 49668 (NETLOGON bind, ack, NetrServerReqChallenge,
// NetrServerAuthenticate3 and its answer).
const EPM_BIND: &str = "05000b03100000004800000001000000b810b8100000000001000000000001000883afe11f5dc91191a408002b14a0fa03000000045d888aeb1cc9119fe808002b10486002000000";
const EPM_BIND_ACK: &str = "05000c03100000003c00000001000000b810b81057e0000004003133350000000100000000000000045d888aeb1cc9119fe808002b10486002000000";
const EPM_MAP: &str = "05000003100000009c0000000100000084000000000003000100000000000000000000000000000000000000020000004b0000004b000000050013000d785634123412cdabef0001234567cffb01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b0200000001000702000000010009040000000000ab000000000000000000000000000000000000000001000000";
const EPM_MAP_RESPONSE: &str = "0500020310000000980000000100000080000000000000000000000048450468443dad43ad06e9e13075aaf101000000010000000000000001000000030000004b0000004b000000050013000d785634123412cdabef0001234567cffb01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c2040100090400ac10053a0000000000";
const NETLOGON_REQ_CHALLENGE: &str = "050000031000000068000000010000005000000000000400e85a00000c000000000000000c0000005c005c004200410053002d00410044002d003000310000000a000000000000000a0000004200410053002d00410044002d003000310000000000000000000000";
const NETLOGON_AUTHENTICATE3: &str = "050000031000000090000000020000007800000000001a00d2d900000c000000000000000c0000005c005c004200410053002d00410044002d003000310000000b000000000000000b0000004200410053002d00410044002d00300031002400000006000a000000000000000a0000004200410053002d00410044002d003000310000000000000000000000ffff2f21";
const NETLOGON_AUTHENTICATE3_RESPONSE: &str =
    "05000203100000002c0000000200000014000000000000000000000000000000ffff2f2100000000220000c0";

// sensor-user/fuzz/artifacts/dissect/crash-98e20c4b75d5ef5c73865bb6d229d15d8247ca1c: the first
// client PDU of that fuzz input, the Kerberos bind of the seed cut from
// testdata/pcaps/zeek/testing/btest/Traces/dce-rpc/kerberos135_auth.pcapng with its sec_trailer's
// auth_type mutated to 2, a value MS-RPCE does not define.
const BIND_UNKNOWN_AUTH_TYPE: &str = "05000b0310000000b407370708000000d016d016000000000200000000000100a001000000000000c00000000000004600000000045d888aeb1cc9119fe808002b1048600200000001000100a001000000000000c000000000000046000000002c1cb76c129840450300000000000000010000000902000000feffff5f82073406062b0601050502a082072830820724a030302e06092a864882f71201020206092a864886f712010202060a2b06010401823702021e060a2b06010401823702020aa28206ee048206ea6e8206e6308206e2a003020105a10302010ea20703050020000000a3820500618204fc308204f8a003020105a10e1b0c5352542d41442e4c4f43414ca22f302da003020102a12630241b0552504353531b1b424c41434b434c4f5645522d44432e5352542d41442e6c6f63616ca38204ae308204aaa003020112a103020103a282049c04820498feac3af6f3390c87da18346e4c37802ba6ea5ea7e129c036348fa8dc8a9febef46da750475c08f00bcd7270dd5b0febcb2cb5f76b5f770b81a122c2a4a3216a9fd4f05ee2118ccf09a19f97ac2994f23bd6367bbb1a16ca57d964a2c07473359de572898f54e7b61c335e5ccdc39d528c5db2e0e7d18782981a8d1dea1d74e134d78b1b85c37ae249319ccd103bbb59d0970d718aa00115a27284e53ee6ad8f26ef2aad369e39f2d9d4b68e8c6050d85b780b8a609febc5f81ac5e51be542571e8f9694d4b6b7963166e53130e8e4c4eadce1ab91bb16386ade3fbf3626ce40c441c62f9391c38f1fa710221d3478b35b4a5c88129f29c1b162abf7fdd36109ed0344ee578ce56ddda74e3d7667169d67c958580ebeee7066db36140dd1be3c010fb2bbc4242aea10cbba694acf8c243cccc622bdcc3f1bda3d1e8b1e287e777bc5cf4b2e149752e56afe8e1206236dd2d6fedfb48fe85f03ae3748125b21b5e4eca913c4c6ebc3449dbfab99adfe8df3ece590ac72cf8260deab304573c8af82607c17b988830dedae7231923309db5efef9b8113189f44c8ef893ab13a67bc80ef86710c56d210febcb7af3bfbe6ec23bba7c6dd2f6c303726268ca6123735769670e95700122afbc5771174e415e7977893445a7ef5aa4f466d9c50a5091e50864bcb90f6879e3327b7ddbeed8b84d9dd87479d8f2ef6a24438bc50d21a17119e357c82e38dee90a09762b56845b2984dbdb5eff6fae6999173a293c8d4653d477eb7c3be75461ba43ba2fc0583c5f2638ee2bdd35795beb554733b34d2ca58aa12c247590fea46cf6a336f12c10457b516e9de19533e3aea6f8c7051eb708098a90d092b372aca861b1c1d66e23d81d99ab6743def6de7a6cceaf5101312342478a964fe988c550fe0bd36982746e6c71c711b677ad2c1b4e6dc0eb6ea507abd569fa4905cb2e099d22680ebb247229474375eabdeac6a50380c6b90166ef4e7fd91643b0209e01a75c014ba5c9debf947415f673b5a9404a85838bffc728ae3ea97aea667d29ebfc9993e966e34f41c6d0e1351853cd58233bfefbefa1fb4206c2e11a8bc7f793c63c4f7cd9236a4d8a3e90902ae5aa15f4af17e1bd0458f21915fc17266da3547e4e3b6424e27ce719139edbd39484cdd54165602468d58c1f06aefcede85c3bdd5a690f662ff22e887e3d7375e783c36ad0c697efec0bea2c6ba73955dbc86c7e70086e01cc320dd63eea9a9542cf949d2313b88c4f8e644687d33cd9398b9b6058a192e1e94252d525a42b6ab2f492bbdb42b95cfa4b4af18f2cfca747684ae20980bf5cbe29a0b8a8f1a261b09f51e52d124ef3d0fc937b462e4f49b4cb8427eec38857dd3ee51a32cbd1b061ece6aee34d3d28946207c8efe174d8cd89be064580947e0bf687202484f93ae0577a9bb0b0be7dcae615352926ab12efad72971533797fffa6ff74c2e704420f563bda6fdb1d809cc99f1540f94f93cc15ae3be17a3f14998170a3fb65d737518a027303603943dc44c87659f7e916566fe4689a26187d6adc24af52c649196d3ce3dd405cebeb93b82004d69250166dc03519f4eaead255faa591ff72dcd363b18c1314d77d90e038c514163063666534c2064b6b10cc8becf514d7f274fd9e6a48201c7308201c3a003020112a28201ba048201b6809ddbb5b9b2cf520d1e83d6c6df5dc68dc5f36f7761b2378264c003ceb7fd61d45db41e44d79d8fade3dcb8c7634518e9a41ec20cc578274c15c828144f477e9c60a4946ab6f167c950eff0a6dbcee866981e86f4f5b8651a52caea23d78e35fa2d42fecf8dbcd482823f8d514e9b42e5486fdacb022c4c2ab20fb4f943d8eeecf9c76c4ebb30bfcbe39aeffc1e083b3ecba4b6a893d9eb72c7843ceac49387f797028211fc5587af4f66197b0accbf13e2d336ab879b8a51dabf542a65aa5792897e9cdedbfc8bd393c2a1d6fb80e86881d433b2f7fcbae7a429723745778fef4df4c1e2dc2100f5944d18b9d763b78a57b693a7b8dbf0ea6e0a67f25129a58b1be8f5174a61b9ec15ee150029725ffb5065549c4718d198975291294fdb85bd534aee7dab86f1ff94706542f12834bce4b904b291e6a1a8bb80a0ea4942eabc17a50d42f58f7800f9ca2d9f42ed823fd3df6b6165a2340a585f01b12778b249d7f734611c1386be3d2679ce23af4e0973f2b21366e4fe76ddf62e6bed4bc1f27bd8a5717f3d90c9dcefce643ab7bdef591220aaab537c4f3c420805caee3280191845a0a301b9e4ec3d15392d1ce010ce7caee4e1";

fn seen(direction: Direction) -> Seen {
    let client: SocketAddr = "172.16.5.10:50555".parse().expect("address");
    let server: SocketAddr = "172.16.5.58:135".parse().expect("address");
    let (src, dst) = match direction {
        Direction::ToServer => (client, server),
        Direction::ToClient => (server, client),
    };
    Seen {
        time_ns: 1,
        src,
        dst,
        tcp: true,
    }
}

struct Harness {
    rpc: DceRpc,
    counters: DissectCounters,
    announced: Announcements,
    out: Vec<Activity>,
}

impl Harness {
    fn new() -> Self {
        Self {
            rpc: DceRpc::new(Carrier::None, MemoryBudget::new(1 << 20)),
            counters: DissectCounters::default(),
            announced: Announcements::default(),
            out: Vec::new(),
        }
    }

    fn pdu(&mut self, direction: Direction, bytes: &[u8]) {
        let mut sink = Sink {
            out: &mut self.out,
            counters: &mut self.counters,
            announced: &mut self.announced,
        };
        self.rpc
            .message(direction, bytes, &seen(direction), &mut sink)
            .expect("parses");
    }

    fn close(self) -> Vec<Activity> {
        let mut out = self.out;
        self.rpc.close(&mut out);
        out
    }
}

fn body(activity: &Activity) -> &DceRpcActivity {
    match &activity.body {
        Some(Body::Dcerpc(body)) => body,
        other => panic!("not DCE-RPC: {other:?}"),
    }
}

#[test]
fn an_epm_exchange_names_the_interface_and_announces_the_port() {
    let mut harness = Harness::new();
    harness.pdu(Direction::ToServer, &hex(EPM_BIND));
    assert!(harness.out.is_empty(), "the bind waits for its ack");
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    harness.pdu(Direction::ToServer, &hex(EPM_MAP));
    harness.pdu(Direction::ToClient, &hex(EPM_MAP_RESPONSE));
    let harness_announced = harness.announced.as_slice().to_vec();
    let out = harness.close();
    assert_eq!(out.len(), 2);
    let bind = body(&out[0]);
    assert_eq!(bind.r#type, i32::from(Type::Bind));
    assert_eq!(bind.contexts[0].interface_name, "epm");
    assert_eq!(bind.contexts[0].result, "acceptance");
    assert_eq!(bind.secondary_address, "135");
    let map = body(&out[1]);
    assert_eq!(map.interface_name, "epm");
    assert_eq!(map.operation, "ept_map");
    assert_eq!(map.endpoints, ["172.16.5.58:49668"]);
    assert_eq!(
        out[1].outcome.as_ref().map(|outcome| outcome.status),
        Some(Status::Success.into())
    );
    assert_eq!(
        harness_announced,
        [Announced {
            mapper: "172.16.5.58".parse().expect("address"),
            endpoint: "172.16.5.58:49668".parse().expect("address"),
        }],
        "the answer's endpoint handed over as a typed value"
    );
}

/// A REQUEST PDU (call id 7, context 0, one fragment) carrying `stub`.
fn request_pdu(opnum: u16, stub: &[u8]) -> Vec<u8> {
    let frag = u16::try_from(24 + stub.len()).expect("fits");
    let mut pdu = vec![5, 0, 0, 3, 0x10, 0, 0, 0];
    pdu.extend(frag.to_le_bytes());
    pdu.extend([0, 0]);
    pdu.extend(7u32.to_le_bytes());
    pdu.extend(u32::try_from(stub.len()).expect("fits").to_le_bytes());
    pdu.extend(0u16.to_le_bytes());
    pdu.extend(opnum.to_le_bytes());
    pdu.extend_from_slice(stub);
    pdu
}

/// A SamrLookupNamesInDomain stub in NDR ([MS-SAMR] 3.1.5.11.2) looking up `names`.
fn samr_lookup_stub(names: &[String]) -> Vec<u8> {
    let count = u32::try_from(names.len()).expect("fits");
    let mut stub = vec![0u8; 20]; // DomainHandle
    stub.extend(count.to_le_bytes());
    stub.extend(1000u32.to_le_bytes());
    stub.extend(0u32.to_le_bytes());
    stub.extend(count.to_le_bytes());
    for (index, name) in names.iter().enumerate() {
        let bytes = u16::try_from(name.len() * 2).expect("fits");
        stub.extend(bytes.to_le_bytes());
        stub.extend(bytes.to_le_bytes());
        stub.extend((0x2_0000 + u32::try_from(index).expect("fits")).to_le_bytes());
    }
    for name in names {
        let units = u32::try_from(name.len()).expect("fits");
        stub.extend(units.to_le_bytes());
        stub.extend(0u32.to_le_bytes());
        stub.extend(units.to_le_bytes());
        stub.extend(name.encode_utf16().flat_map(u16::to_le_bytes));
        stub.resize(stub.len().next_multiple_of(4), 0);
    }
    stub
}

#[test]
fn a_call_is_charged_for_what_it_holds_and_gives_it_back() {
    let mut harness = Harness::new();
    // The EPM bind's bytes with the SAMR interface, version 1.0.
    let mut bind = hex(EPM_BIND);
    bind[32..48].copy_from_slice(&hex("785734123412cdabef000123456789ac"));
    bind[48..52].copy_from_slice(&1u32.to_le_bytes());
    harness.pdu(Direction::ToServer, &bind);
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    assert_eq!(harness.rpc.budget.in_use(), 0);
    let names: Vec<String> = (0..200)
        .map(|index| format!("account-{index:08}"))
        .collect();
    harness.pdu(
        Direction::ToServer,
        &request_pdu(17, &samr_lookup_stub(&names)),
    );
    let held = harness.rpc.budget.in_use();
    let names_len: usize = names.iter().map(String::len).sum();
    assert!(held > names_len, "{held} bytes charged");
    // The response: a stub ending in STATUS_SUCCESS.
    let mut response = hex(NETLOGON_AUTHENTICATE3_RESPONSE);
    response[12] = 7;
    let at = response.len() - 4;
    response[at..].copy_from_slice(&0u32.to_le_bytes());
    harness.pdu(Direction::ToClient, &response);
    assert_eq!(harness.rpc.budget.in_use(), 0);
    let out = harness.close();
    assert_eq!(body(&out[1]).names, names);
    assert_eq!(
        out[1].outcome.as_ref().map(|outcome| outcome.status),
        Some(Status::Success.into())
    );
}

#[test]
fn a_request_without_its_bind_still_reports_its_opnum() {
    let mut harness = Harness::new();
    harness.pdu(Direction::ToServer, &hex(NETLOGON_AUTHENTICATE3));
    harness.pdu(Direction::ToClient, &hex(NETLOGON_AUTHENTICATE3_RESPONSE));
    let out = harness.close();
    assert_eq!(out.len(), 1);
    let request = body(&out[0]);
    assert_eq!(request.opnum, 26);
    assert!(request.interface_uuid.is_empty());
    assert!(request.answered);
    assert!(
        request.computer_name.is_empty(),
        "no interface, no stub decoded"
    );
    // Nor its return value: the answer claims neither success nor failure.
    assert_eq!(
        out[0].outcome.as_ref().map(|outcome| outcome.status),
        Some(Status::Unspecified.into())
    );
}

#[test]
fn zerologon_is_visible_once_the_bind_is_seen() {
    let mut harness = Harness::new();
    // The NETLOGON bind of frame 16: the EPM bind's bytes with the NETLOGON interface.
    let mut bind = hex(EPM_BIND);
    bind[32..48].copy_from_slice(&hex("785634123412cdabef0001234567cffb"));
    bind[48..52].copy_from_slice(&1u32.to_le_bytes());
    harness.pdu(Direction::ToServer, &bind);
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    harness.pdu(Direction::ToServer, &hex(NETLOGON_REQ_CHALLENGE));
    harness.pdu(Direction::ToServer, &hex(NETLOGON_AUTHENTICATE3));
    harness.pdu(Direction::ToClient, &hex(NETLOGON_AUTHENTICATE3_RESPONSE));
    let out = harness.close();
    assert_eq!(out.len(), 3, "{out:?}");
    let authenticate = body(&out[1]);
    assert_eq!(authenticate.operation, "NetrServerAuthenticate3");
    assert_eq!(authenticate.account_name, "BAS-AD-01$");
    assert_eq!(authenticate.secure_channel_type, "ServerSecureChannel");
    assert!(authenticate.zero_credential);
    assert_eq!(authenticate.return_value, 0xc000_0022);
    // The server refused the zero credential: the call failed with its NTSTATUS.
    let refused = out[1].outcome.as_ref().expect("outcome");
    assert_eq!(refused.status, i32::from(Status::Failure));
    assert_eq!(refused.code, 0xc000_0022);
    assert_eq!(refused.name, "STATUS_ACCESS_DENIED");
    // Never answered: reported at close, without an outcome.
    let challenge = body(&out[2]);
    assert_eq!(challenge.operation, "NetrServerReqChallenge");
    assert!(!challenge.answered);
    assert!(challenge.zero_credential);
    assert_eq!(challenge.auth_type, i32::from(AuthType::None));
    assert_eq!(challenge.auth_level, i32::from(AuthLevel::Unspecified));
}

#[test]
fn a_big_endian_call_is_decoded_and_flagged() {
    let mut harness = Harness::new();
    let mut bind = hex(EPM_BIND);
    bind[32..48].copy_from_slice(&hex("785634123412cdabef0001234567cffb"));
    bind[48..52].copy_from_slice(&1u32.to_le_bytes());
    harness.pdu(Direction::ToServer, &bind);
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    // NETLOGON_AUTHENTICATE3 with drep big-endian and every integer (and UTF-16 unit) of its
    // header and stub byte-swapped: PrimaryName (pointer, 12 units), AccountName (11 units),
    // SecureChannelType, ComputerName (10 units), ClientCredential (bytes), NegotiateFlags.
    let layout: &[(usize, usize)] = &[
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
    let swap = |pdu: &[u8], layout: &[(usize, usize)]| {
        let mut out = pdu[..4].to_vec();
        out.extend([0x00, 0, 0, 0]);
        let mut at = 8;
        for &(width, count) in [(2, 2), (4, 2), (2, 2)].iter().chain(layout) {
            for _ in 0..count {
                out.extend(pdu[at..at + width].iter().rev());
                at += width;
            }
        }
        assert_eq!(at, pdu.len());
        out
    };
    harness.pdu(
        Direction::ToServer,
        &swap(&hex(NETLOGON_AUTHENTICATE3), layout),
    );
    // The answer: ServerCredential (bytes), NegotiateFlags, AccountRid, STATUS_ACCESS_DENIED.
    harness.pdu(
        Direction::ToClient,
        &swap(&hex(NETLOGON_AUTHENTICATE3_RESPONSE), &[(1, 8), (4, 3)]),
    );
    let out = harness.close();
    let authenticate = body(&out[1]);
    assert_eq!(authenticate.operation, "NetrServerAuthenticate3");
    assert_eq!(authenticate.account_name, "BAS-AD-01$");
    assert_eq!(authenticate.computer_name, "BAS-AD-01");
    assert!(authenticate.zero_credential);
    assert!(
        authenticate
            .anomalies
            .iter()
            .any(|name| name == "unusual_drep")
    );
    assert_eq!(authenticate.return_value, 0xc000_0022);
    assert_eq!(
        out[1].outcome.as_ref().map(|outcome| outcome.status),
        Some(Status::Failure.into())
    );
}

#[test]
fn a_fault_is_the_outcome_of_its_request() {
    let mut harness = Harness::new();
    harness.pdu(Direction::ToServer, &hex(NETLOGON_REQ_CHALLENGE));
    // A FAULT for call 1: nca_s_op_rng_error.
    let fault = hex("0500030310000000200000000100000000000000000000000200011c00000000");
    harness.pdu(Direction::ToClient, &fault);
    let out = harness.close();
    let outcome = out[0].outcome.as_ref().expect("outcome");
    assert_eq!(outcome.status, i32::from(Status::Failure));
    assert_eq!(outcome.code, 0x1c01_0002);
    assert_eq!(outcome.name, "nca_s_op_rng_error");
}

/// One fragment of the request or response `whole` (its 24-byte header, flags and length
/// changed) carrying `part` of its stub.
fn fragment(whole: &[u8], flags: u8, part: &[u8]) -> Vec<u8> {
    let mut pdu = whole[..24].to_vec();
    pdu[3] = flags;
    let len = u16::try_from(24 + part.len()).expect("small");
    pdu[8..10].copy_from_slice(&len.to_le_bytes());
    pdu.extend_from_slice(part);
    pdu
}

#[test]
fn a_request_in_fragments_is_put_back_together() {
    let whole = hex(NETLOGON_AUTHENTICATE3);
    let stub = &whole[24..];
    let (head, tail) = stub.split_at(50);
    let mut harness = Harness::new();
    let mut bind = hex(EPM_BIND);
    bind[32..48].copy_from_slice(&hex("785634123412cdabef0001234567cffb"));
    harness.pdu(Direction::ToServer, &bind);
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    harness.pdu(Direction::ToServer, &fragment(&whole, 0x01, head));
    harness.pdu(Direction::ToServer, &fragment(&whole, 0x02, tail));
    harness.pdu(Direction::ToClient, &hex(NETLOGON_AUTHENTICATE3_RESPONSE));
    let budget = harness.rpc.budget.clone();
    let out = harness.close();
    let request = body(&out[1]);
    assert_eq!(request.account_name, "BAS-AD-01$");
    assert_eq!(request.stub_len as usize, stub.len());
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_pipe_carries_the_same_association() {
    let budget = MemoryBudget::new(1 << 20);
    let mut pipe = RpcPipe::new(budget.clone());
    let mut counters = DissectCounters::default();
    let mut announced = Announcements::default();
    let mut out = Vec::new();
    let bind = hex(EPM_BIND);
    let mut sink = Sink {
        out: &mut out,
        counters: &mut counters,
        announced: &mut announced,
    };
    // The bind split across two writes.
    pipe.data(
        Direction::ToServer,
        &bind[..10],
        &seen(Direction::ToServer),
        &mut sink,
    );
    pipe.data(
        Direction::ToServer,
        &bind[10..],
        &seen(Direction::ToServer),
        &mut sink,
    );
    pipe.data(
        Direction::ToClient,
        &hex(EPM_BIND_ACK),
        &seen(Direction::ToClient),
        &mut sink,
    );
    pipe.gap(Direction::ToServer, &mut sink);
    pipe.close(&mut counters, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].carrier, i32::from(Carrier::Smb));
    assert_eq!(body(&out[0]).contexts[0].interface_name, "epm");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_tcp_session_on_port_135_is_dcerpc() {
    assert_eq!(Kind::for_tcp(135), Some(Kind::DceRpc));
    let budget = MemoryBudget::new(1 << 20);
    let mut session = Session::new(Kind::DceRpc, budget.clone()).expect("a stream protocol");
    let key = FlowKey {
        client: "172.16.5.10:50555".parse().expect("address"),
        server: "172.16.5.58:135".parse().expect("address"),
    };
    let mut counters = DissectCounters::default();
    let mut announced = Announcements::default();
    let mut out = Vec::new();
    for (direction, pdu) in [
        (Direction::ToServer, EPM_BIND),
        (Direction::ToClient, EPM_BIND_ACK),
        (Direction::ToServer, EPM_MAP),
        (Direction::ToClient, EPM_MAP_RESPONSE),
    ] {
        let bytes = hex(pdu);
        session.event(
            1,
            &key,
            direction,
            StreamEvent::Data(&bytes),
            &budget,
            &mut counters,
            &mut announced,
            &mut out,
        );
    }
    session.close(&mut counters, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(counters.parse_errors, 0);
    assert_eq!(body(&out[1]).endpoints, ["172.16.5.58:49668"]);
}

/// One TCP connection driven through a whole [`crate::dissect::Dissector`].
struct Connection {
    client: SocketAddr,
    server: SocketAddr,
    client_seq: u32,
    server_seq: u32,
}

impl Connection {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;

    fn send(
        &mut self,
        dissector: &mut crate::dissect::Dissector,
        time_ns: u64,
        to_server: bool,
        flags: u8,
        payload: &[u8],
        out: &mut Vec<Activity>,
    ) {
        use crate::decode::{Packet, TcpPacket, TransportPacket};
        let (src, dst, seq, ack) = if to_server {
            (self.client, self.server, self.client_seq, self.server_seq)
        } else {
            (self.server, self.client, self.server_seq, self.client_seq)
        };
        let packet = Packet {
            src: src.ip(),
            dst: dst.ip(),
            ip_number: 6,
            fragment: None,
            transport: TransportPacket::Tcp(TcpPacket {
                src_port: src.port(),
                dst_port: dst.port(),
                seq,
                ack,
                flags,
                payload,
            }),
        };
        dissector.packet(time_ns, &packet, out);
        let advance = u32::try_from(payload.len()).expect("small") + u32::from(flags & 0x02 != 0);
        if to_server {
            self.client_seq = self.client_seq.wrapping_add(advance);
        } else {
            self.server_seq = self.server_seq.wrapping_add(advance);
        }
    }

    fn open(
        client: &str,
        server: &str,
        dissector: &mut crate::dissect::Dissector,
        time_ns: u64,
        out: &mut Vec<Activity>,
    ) -> Self {
        let mut connection = Self {
            client: client.parse().expect("address"),
            server: server.parse().expect("address"),
            client_seq: 1000,
            server_seq: 5000,
        };
        connection.send(dissector, time_ns, true, Self::SYN, &[], out);
        connection.send(dissector, time_ns, false, Self::SYN | Self::ACK, &[], out);
        connection.send(dissector, time_ns, true, Self::ACK, &[], out);
        connection
    }
}

#[test]
fn an_endpoint_learned_from_epm_makes_a_later_connection_dcerpc() {
    use crate::dissect::{DissectLimits, Dissector};
    let mut dissector = Dissector::new(DissectLimits {
        memory_bytes: 1 << 24,
        ..DissectLimits::default()
    });
    let mut out = Vec::new();
    let mut epm = Connection::open(
        "172.16.5.10:50555",
        "172.16.5.58:135",
        &mut dissector,
        1,
        &mut out,
    );
    for (to_server, pdu) in [
        (true, EPM_BIND),
        (false, EPM_BIND_ACK),
        (true, EPM_MAP),
        (false, EPM_MAP_RESPONSE),
    ] {
        epm.send(
            &mut dissector,
            2,
            to_server,
            Connection::PSH_ACK,
            &hex(pdu),
            &mut out,
        );
    }
    assert_eq!(
        dissector.take_learned_endpoints(),
        [(
            "172.16.5.58:49668".parse().expect("address"),
            2 + LEARNED_ENDPOINT_TTL_NS
        )]
    );
    let mut netlogon = Connection::open(
        "172.16.5.10:50556",
        "172.16.5.58:49668",
        &mut dissector,
        3,
        &mut out,
    );
    netlogon.send(
        &mut dissector,
        4,
        true,
        Connection::PSH_ACK,
        &hex(NETLOGON_AUTHENTICATE3),
        &mut out,
    );
    netlogon.send(
        &mut dissector,
        5,
        false,
        Connection::PSH_ACK,
        &hex(NETLOGON_AUTHENTICATE3_RESPONSE),
        &mut out,
    );
    dissector.finish(6, &mut out);
    let requests: Vec<_> = out
        .iter()
        .filter_map(|activity| match &activity.body {
            Some(Body::Dcerpc(body)) if body.r#type == i32::from(Type::Request) => Some(body.opnum),
            _ => None,
        })
        .collect();
    assert_eq!(requests, [3, 26], "{out:?}");
    assert_eq!(dissector.counters().parse_errors, 0);
}

#[test]
fn an_ept_map_answer_in_fragments_is_put_back_together() {
    let whole = hex(EPM_MAP_RESPONSE);
    let stub = &whole[24..];
    let (head, tail) = stub.split_at(70);
    let mut harness = Harness::new();
    harness.pdu(Direction::ToServer, &hex(EPM_BIND));
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    harness.pdu(Direction::ToServer, &hex(EPM_MAP));
    harness.pdu(Direction::ToClient, &fragment(&whole, 0x01, head));
    assert_eq!(harness.out.len(), 1, "only the bind so far");
    harness.pdu(Direction::ToClient, &fragment(&whole, 0x02, tail));
    let budget = harness.rpc.budget.clone();
    let out = harness.close();
    assert_eq!(body(&out[1]).endpoints, ["172.16.5.58:49668"]);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn calls_never_answered_are_bounded_and_reported() {
    let budget = MemoryBudget::new(1 << 20);
    let mut rpc = DceRpc::new(Carrier::None, budget.clone());
    let mut counters = DissectCounters::default();
    let mut announced = Announcements::default();
    let mut out = Vec::new();
    let mut request = hex(NETLOGON_REQ_CHALLENGE);
    for call_id in 0..u32::try_from(MAX_PENDING_CALLS + 10).expect("small") {
        request[12..16].copy_from_slice(&call_id.to_le_bytes());
        let mut sink = Sink {
            out: &mut out,
            counters: &mut counters,
            announced: &mut announced,
        };
        rpc.message(
            Direction::ToServer,
            &request,
            &seen(Direction::ToServer),
            &mut sink,
        )
        .expect("parses");
    }
    assert_eq!(out.len(), 10, "the oldest were reported unanswered");
    assert_eq!(counters.requests_not_awaited, 10);
    assert!(budget.in_use() > 0);
    rpc.close(&mut out);
    assert_eq!(out.len(), MAX_PENDING_CALLS + 10);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_malformed_pdu_is_an_error_and_the_association_goes_on() {
    let mut harness = Harness::new();
    let mut sink = Sink {
        out: &mut harness.out,
        counters: &mut harness.counters,
        announced: &mut harness.announced,
    };
    // An auth_length longer than the PDU.
    let mut bad = hex(EPM_BIND);
    bad[10] = 0xff;
    assert!(
        harness
            .rpc
            .message(
                Direction::ToServer,
                &bad,
                &seen(Direction::ToServer),
                &mut sink
            )
            .is_err()
    );
    harness.pdu(Direction::ToServer, &hex(EPM_BIND));
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    assert_eq!(harness.close().len(), 1);
}

#[test]
fn an_auth_type_without_a_name_is_flagged_and_still_writes_as_a_line() {
    let mut harness = Harness::new();
    harness.pdu(Direction::ToServer, &hex(BIND_UNKNOWN_AUTH_TYPE));
    let out = harness.close();
    let bind = out
        .iter()
        .find(|activity| matches!(activity.body, Some(Body::Dcerpc(_))))
        .expect("the bind");
    assert_eq!(body(bind).auth_type, i32::from(AuthType::None));
    assert_eq!(body(bind).anomalies, ["unknown_auth_type"]);
    for activity in &out {
        let mut line = Vec::new();
        crate::activity::write_json_line(activity, &mut line, &mut Vec::new())
            .expect("every enum has a name");
    }
}

/// A request (`ptype` 0) or response (2) PDU of `call_id`, little-endian NDR, one fragment.
fn call_pdu(ptype: u8, call_id: u32, opnum: u16, stub: &[u8]) -> Vec<u8> {
    let frag = u16::try_from(24 + stub.len()).expect("fits");
    let mut pdu = vec![5, 0, ptype, 3, 0x10, 0, 0, 0];
    pdu.extend(frag.to_le_bytes());
    pdu.extend([0, 0]);
    pdu.extend(call_id.to_le_bytes());
    pdu.extend(u32::try_from(stub.len()).expect("fits").to_le_bytes());
    pdu.extend(0u16.to_le_bytes());
    if ptype == 0 {
        pdu.extend(opnum.to_le_bytes());
    } else {
        pdu.extend([0, 0]);
    }
    pdu.extend_from_slice(stub);
    pdu
}

// testdata/pcaps/suricata-verify/tests/dcerpc/dcerpc-dce-stub-data-04/input.pcap, stubs of
// frames 8 and 10 (OpenHKLM and its answer), 12 and 14 (BaseRegOpenKey and its answer).
const OPEN_HKLM: &str = "2cfdb50040aa010000000002";
const OPEN_HKLM_RESPONSE: &str = "00000000f672289cf057d811b005000c2987eae900000000";
const OPEN_RUN_KEY: &str = concat!(
    "00000000f672289cf057d811b005000c2987eae95c005c00a8b914002e000000000000002e00000053004f00",
    "4600540057004100520045005c004d006900630072006f0073006f00660074005c00570069006e0064006f00",
    "770073005c00430075007200720065006e007400560065007200730069006f006e005c00520075006e000000",
    "0000000003000000",
);
const OPEN_RUN_KEY_RESPONSE: &str = "00000000f772289cf057d811b005000c2987eae900000000";

#[test]
fn registry_keys_are_named_through_their_handles() {
    let mut harness = Harness::new();
    let mut bind = hex(EPM_BIND);
    // WINREG 338cd001-2244-31f1-aaaa-900038001003 as the abstract syntax.
    bind[32..48].copy_from_slice(&hex("01d08c334422f131aaaa900038001003"));
    harness.pdu(Direction::ToServer, &bind);
    harness.pdu(Direction::ToClient, &hex(EPM_BIND_ACK));
    harness.pdu(Direction::ToServer, &call_pdu(0, 1, 2, &hex(OPEN_HKLM)));
    harness.pdu(
        Direction::ToClient,
        &call_pdu(2, 1, 0, &hex(OPEN_HKLM_RESPONSE)),
    );
    harness.pdu(Direction::ToServer, &call_pdu(0, 2, 15, &hex(OPEN_RUN_KEY)));
    harness.pdu(
        Direction::ToClient,
        &call_pdu(2, 2, 0, &hex(OPEN_RUN_KEY_RESPONSE)),
    );
    // BaseRegSaveKey on the Run key's handle (frame 14's), saving to a file name.
    let mut save = hex("00000000f772289cf057d811b005000c2987eae9");
    save.extend(hex(
        "0a000a00000002000500000000000000050000006100620063000000000000000000",
    ));
    harness.pdu(Direction::ToServer, &call_pdu(0, 3, 20, &save));
    // A save on a handle this association never saw opened names no key.
    let mut unknown = vec![0x42; 20];
    unknown.extend(hex(
        "0a000a00000002000500000000000000050000006100620063000000000000000000",
    ));
    harness.pdu(Direction::ToServer, &call_pdu(0, 4, 20, &unknown));
    let out = harness.close();
    let paths: Vec<(&str, &str)> = out[1..]
        .iter()
        .map(body)
        .map(|body| (body.operation.as_str(), body.key_path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("OpenLocalMachine", "HKLM"),
            (
                "BaseRegOpenKey",
                "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
            ),
            (
                "BaseRegSaveKey",
                "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run"
            ),
            ("BaseRegSaveKey", ""),
        ]
    );
}

#[test]
fn a_high_port_is_taken_as_dcerpc_by_its_content_and_only_then() {
    use crate::dissect::{DissectLimits, Dissector};
    let mut dissector = Dissector::new(DissectLimits {
        memory_bytes: 1 << 24,
        rpc_by_content: true,
        ..DissectLimits::default()
    });
    let mut out = Vec::new();
    // An HTTP request and answer on a high port: probed, refused, not followed.
    let mut web = Connection::open(
        "172.16.5.10:50600",
        "172.16.5.58:50000",
        &mut dissector,
        1,
        &mut out,
    );
    // Requests on a connection seen from its start: the first is not DCE-RPC, so none is.
    for _ in 0..2 {
        web.send(
            &mut dissector,
            2,
            true,
            Connection::PSH_ACK,
            b"GET / HTTP/1.1\r\nHost: dc\r\n\r\n",
            &mut out,
        );
    }
    web.send(
        &mut dissector,
        2,
        false,
        Connection::PSH_ACK,
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(dissector.counters().rpc_probes_refused, 1);
    assert_eq!(dissector.counters().rpc_found_by_content, 0);
    // The zerologon NETLOGON association on 49668, whose ept_map answer the sensor never saw.
    let mut netlogon = Connection::open(
        "172.16.5.10:50556",
        "172.16.5.58:49668",
        &mut dissector,
        3,
        &mut out,
    );
    netlogon.send(
        &mut dissector,
        4,
        true,
        Connection::PSH_ACK,
        &hex(NETLOGON_AUTHENTICATE3),
        &mut out,
    );
    netlogon.send(
        &mut dissector,
        4,
        false,
        Connection::PSH_ACK,
        &hex(NETLOGON_AUTHENTICATE3_RESPONSE),
        &mut out,
    );
    dissector.finish(5, &mut out);
    assert_eq!(dissector.counters().rpc_found_by_content, 1);
    assert_eq!(out.len(), 1, "{out:?}");
    let request = body(&out[0]);
    assert!(request.found_by_content);
    assert_eq!(request.opnum, 26);
    assert!(request.answered, "its response matched");
}
