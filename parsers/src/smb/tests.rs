use super::smb1::{self, Body as Body1};
use super::smb2::{self, Body as Body2, Command, CtlCode, Dialect, FileId};
use super::*;
use dcwatch_tests::fixture::hex;

// zeek/testing/btest/Traces/smb/smb3.pcap: frame 1, SMB2 NEGOTIATE request offering 3.0
// (tshark -r F -Y frame.number==1 -T fields -e tcp.payload).
const SMB3_NEGOTIATE_REQUEST: &str = "00000066fe534d4240000000000000000000020000000000000000000000000000000000d500000000000000000000000000000000000000000000000000000000000000240001000100000057000000b2fceea195244165893fbf5b2c69acd400000000000000000003";

// Same capture, frame 2: NEGOTIATE response choosing 3.0, with the SPNEGO hint token.
const SMB3_NEGOTIATE_RESPONSE: &str = "000000f8fe534d4240000000000000000000010001000000000000000000000000000000d50000000000000000000000000000000000000000000000000000000000000041000300000300004bf432bf8f92054890c03ddf2546646e470000000000800000008000000080008a8ce7a9f4ced20100b579abb4cdd2018000780000000000607606062b0601050502a06c306aa03c303a060a2b06010401823702021e06092a864882f71201020206092a864886f712010202060a2a864886f71201020203060a2b06010401823702020aa32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c656173655f69676e6f7265";

// Same capture, frame 7: TREE_CONNECT request for \\WS2016\encrypted.
const SMB3_TREE_CONNECT: &str = "0000006efe534d4240000100000000000300020008000000000000000300000000000000d5000000000000003d0000940048000071ad17fd1d838197048999eb7b906ce309000000480024005c005c005700530032003000310036005c0065006e0063007200790070007400650064000000";

// Same capture, frame 8: its response, a disk share.
const SMB3_TREE_CONNECT_RESPONSE: &str = "00000050fe534d4240000100000000000300020009000000000000000300000000000000d5000000010000003d00009400480000c657089883f9f8fe765feebaf883e202100001000080000000000000ff011f00";

// Same capture, frame 9: an encrypted message (TRANSFORM_HEADER, then ciphertext: cut here).
const SMB3_TRANSFORM: &str = "000000c6fd534d4276176b1956ed2c9c5acf00a30c0485bc3aaa968f18ae61e6e76f1f000000000092000000000001003d00009400480000e72898fada97bec718be0eed4d912a7f";

// zeek/testing/btest/Traces/smb/raw_ntlm_in_smb.pcap: frame 16, SMB1 NEGOTIATE request.
const SMB1_NEGOTIATE: &str = "00000045ff534d4272000000000801c8000000000000000000000000ffff0100ffff0000002200024e54204c4d20302e31320002534d4220322e3030320002534d4220322e3f3f3f00";

// Same capture, frame 25: TREE_CONNECT_ANDX request for \\192.168.56.101\IPC$ (Unicode).
const SMB1_TREE_CONNECT: &str = "0000005eff534d4275000000000801c8000000000000000000000000ffff01000008030004ff000000080001003300005c005c003100390032002e003100360038002e00350036002e003100300031005c00490050004300240000003f3f3f3f3f00";

// Same capture, frame 26: its response, service "IPC".
const SMB1_TREE_CONNECT_RESPONSE: &str = "00000038ff534d4275000000008801c8000000000000000000000000000801000008030007ff0038000100ff010000ff010000070049504300000000";

// Same capture, frame 28: NT_CREATE_ANDX request for \srvsvc.
const SMB1_NT_CREATE: &str = "00000064ff534d42a2000000000801c8000000000000000000000000000801000008040018ff0000000010001000000000000000000000c000000000000000008000000003000000010000000000000002000000001100005c007300720076007300760063000000";

// Same capture, frame 29: its response, FID 0x4000, a named pipe.
const SMB1_NT_CREATE_RESPONSE: &str = "00000087ff534d42a2000000008801c800000000000000000000000000080100000804002aff00870000004001000000000000000000000000000000000000000000000000000000000000000000000080000000001000000000000000000000000000000200ff05000000000000000000000000000000000000000000000000009b0112009b0112000000";

// Same capture, frame 31: TRANSACTION TransactNmPipe on FID 0x4000 carrying a DCE-RPC bind.
const SMB1_TRANSACT_NMPIPE: &str = "0000009cff534d4225000000000801c800000000000000000000000000080100000805001000004800000000100000000000000000000000005400480054000200260000405900005c0050004900500045005c000000000005000b0310000000480000000300000000100010000000000100000000000100c84f324b7016d30112785a47bf6ee18803000000045d888aeb1cc9119fe808002b10486002000000";

// zeek/testing/btest/Traces/smb/smb1_transaction_request.pcap: frame 14, TRANSACTION on
// \PIPE\lsarpc, ASCII strings.
const SMB1_TRANSACTION_ASCII: &str = "00000069ff534d422500000000000000000000000000000000000000677a01007c2b02000e0b00090000000000000000000000000000000b0052000900600002000026ffff26005c5c504950455c6c73617270630000736f6d655f706172616d73000000736f6d655f64617461";

// zeek/testing/btest/Traces/smb/smb2readwrite.pcap: frame 1, CREATE request for "pythonfile".
const SMB2_CREATE: &str = "000000e8fe534d424000010000000000050001000000000000000000cd04000000000000fffe00007a6c1953c01c233c0000000000000000000000000000000000000000390000090200000000000000000000000000000000000000890012008000000003000000010000006000000078001400900000005800000070007900740068006f006e00660069006c006500320000002800000010000400000018001000000044486e510000000000000000000000000000000000000000180000001000040000001800000000004d78416300000000000000001000040000001800000000005146696400000000";

// Same capture, frame 2: its response, opened (1), 16 bytes, File Id c52f8c2e-...-ffae00000000.
const SMB2_CREATE_RESPONSE: &str = "000000f0fe534d424000010000000000050001000100000000000000cd04000000000000fffe00007a6c1953c01c233c0000000000000000000000000000000000000000590009000100000080261aedcabfd40140afd907cbbfd4016f871aedcabfd4016f871aedcabfd4010000100000000000100000000000000080000000000000002e8c2fc5000000004d57ffae000000009800000058000000200000001000040000001800080000004d78416300000000000000009f011700000000001000040000001800200000005146696400000000ceee1d0000000000010800000000000000000000000000000000000000000000";

// Same capture, frame 9: READ request of 16 bytes; frame 10: its 16 bytes of "A".
const SMB2_READ: &str = "00000071fe534d424000010000000000080001000000000000000000d204000000000000fffe00007a6c1953c01c233c0000000000000000000000000000000000000000310050001000000000000000000000002e8c2fc5000000004d57ffae000000000000000000000000000000000000000000";
const SMB2_READ_RESPONSE: &str = "00000060fe534d424000010000000000080001000100000000000000d204000000000000fffe00007a6c1953c01c233c00000000000000000000000000000000000000001100500010000000000000000000000041414141414141414141414141414141";

// Same capture, frame 19: the first 160 bytes of a 7000-byte WRITE (the rest cut, as the
// sensor cuts an oversized PDU).
const SMB2_WRITE_CUT: &str = "00001bc8fe534d424000010000000000090001000000000000000000d604000000000000fffe00007a6c1953c01c233c000000000000000000000000000000000000000031007000581b00000000000000000000f9d8d6ca0000000049b1670e0000000000000000000000000000000000000000424242424242424242424242424242424242424242424242424242424242424242424242424242424242";

// Same capture, frame 27: a CREATE answered STATUS_OBJECT_NAME_NOT_FOUND (an ERROR body).
const SMB2_CREATE_NOT_FOUND: &str = "00000049fe534d4240000100340000c0050001000100000000000000d804000000000000fffe00007a6c1953c01c233c0000000000000000000000000000000000000000090000000000000000";

// zeek/testing/btest/Traces/smb/smb3.pcap: frame 4, SESSION_SETUP answered
// MORE_PROCESSING_REQUIRED with the NTLMSSP CHALLENGE.
const SMB3_SESSION_SETUP_CHALLENGE: &str = "000000f8fe534d4240000000160000c00100010001000000000000000100000000000000d5000000000000003d0000940048000000000000000000000000000000000000090000004800b0004e544c4d53535000020000000800080038000000350289e201151813d2898ccd000000000000000070007000400000000a0039380000000f530055005300450002000800530055005300450001000c0057005300320030003100360004000e0073007500730065002e006400650003001c005700530032003000310036002e0073007500730065002e006400650005000e0073007500730065002e0064006500070008008a8ce7a9f4ced20100000000";

#[test]
fn smb2_files_are_opened_read_written() {
    let packet = hex(SMB2_CREATE);
    let message = smb2_of(&packet);
    let Body2::CreateRequest {
        name,
        create_disposition,
        ..
    } = &message.commands[0].body
    else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!(name, "pythonfile");
    assert_eq!(*create_disposition, 1);
    let packet = hex(SMB2_CREATE_RESPONSE);
    let message = smb2_of(&packet);
    let file = FileId {
        persistent: 0xc52f_8c2e,
        volatile: 0xaeff_574d,
    };
    let Body2::CreateResponse {
        file_id,
        create_action,
        end_of_file,
        ..
    } = message.commands[0].body
    else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!((file_id, create_action, end_of_file), (file, 1, 16));
    let packet = hex(SMB2_READ);
    assert_eq!(
        smb2_of(&packet).commands[0].body,
        Body2::ReadRequest {
            file_id: file,
            length: 16,
            offset: 0
        }
    );
    let packet = hex(SMB2_READ_RESPONSE);
    assert_eq!(
        smb2_of(&packet).commands[0].body,
        Body2::ReadResponse {
            data_length: 16,
            data: &[b'A'; 16]
        }
    );
    let packet = hex(SMB2_WRITE_CUT);
    let message = smb2_of(&packet);
    let Body2::WriteRequest {
        data_length, data, ..
    } = message.commands[0].body
    else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!(data_length, 7000);
    assert!(data.iter().all(|&b| b == b'B') && data.len() < 7000);
    assert!(message.commands[0].anomalies.data_truncated);
    let packet = hex(SMB2_CREATE_NOT_FOUND);
    let message = smb2_of(&packet);
    assert_eq!(message.commands[0].body, Body2::Error);
    assert_eq!(
        message.commands[0].header.status,
        NtStatus::OBJECT_NAME_NOT_FOUND
    );
}

#[test]
fn smb2_session_setup_leg() {
    let packet = hex(SMB3_SESSION_SETUP_CHALLENGE);
    let message = smb2_of(&packet);
    let pdu = &message.commands[0];
    assert_eq!(pdu.header.status, NtStatus::MORE_PROCESSING_REQUIRED);
    assert_eq!(pdu.header.session_id, 0x0000_4800_9400_003d);
    let Body2::SessionSetupResponse {
        session_flags,
        security_buffer,
    } = pdu.body
    else {
        panic!("{:?}", pdu.body);
    };
    assert_eq!(session_flags.0, 0);
    assert!(security_buffer.starts_with(b"NTLMSSP\0\x02"));
    assert_eq!(security_buffer.len(), 0xb0);
}

const ALL: [&str; 18] = [
    SMB3_NEGOTIATE_REQUEST,
    SMB3_NEGOTIATE_RESPONSE,
    SMB3_TREE_CONNECT,
    SMB3_TREE_CONNECT_RESPONSE,
    SMB3_TRANSFORM,
    SMB1_NEGOTIATE,
    SMB1_TREE_CONNECT,
    SMB1_TREE_CONNECT_RESPONSE,
    SMB1_NT_CREATE,
    SMB1_NT_CREATE_RESPONSE,
    SMB1_TRANSACT_NMPIPE,
    SMB2_CREATE,
    SMB2_CREATE_RESPONSE,
    SMB2_READ,
    SMB2_READ_RESPONSE,
    SMB2_WRITE_CUT,
    SMB2_CREATE_NOT_FOUND,
    SMB3_SESSION_SETUP_CHALLENGE,
];

fn smb2_of(packet: &[u8]) -> smb2::Message<'_> {
    match parse(packet).expect("parses") {
        Packet::Smb2(message) => message,
        other => panic!("not SMB2: {other:?}"),
    }
}

fn smb1_of(packet: &[u8]) -> smb1::Message<'_> {
    match parse(packet).expect("parses") {
        Packet::Smb1(message) => message,
        other => panic!("not SMB1: {other:?}"),
    }
}

#[test]
fn frames_and_starts() {
    for fixture in ALL {
        let packet = hex(fixture);
        if fixture != SMB3_TRANSFORM && fixture != SMB2_WRITE_CUT {
            assert_eq!(frame(&packet), Framing::Pdu(packet.len()), "{fixture}");
        }
        assert_eq!(is_pdu_start(&packet), Start::Yes, "{fixture}");
    }
    assert_eq!(frame(&[0x00, 0x00]), Framing::NeedMore);
    assert_eq!(frame(&[0x30, 0x84, 0x00, 0x00]), Framing::NotPdu);
    assert_eq!(is_pdu_start(&[0x85, 0, 0, 0]), Start::Yes);
    assert_eq!(is_pdu_start(&[0x85, 0, 0, 1]), Start::No);
    assert_eq!(is_pdu_start(&[0x00, 0, 0, 0x40, 0xfe]), Start::NeedMore);
    // A session message whose trailer is not SMB.
    assert_eq!(is_pdu_start(&hex("0000004030840000003a020101")), Start::No);
    // An SMB2 signature with a wrong StructureSize.
    assert_eq!(
        is_pdu_start(&hex("00000050fe534d42410000000000")),
        Start::No
    );
    // A session message longer than anything believable.
    assert_eq!(is_pdu_start(&hex("00ffffffff534d4272000000")), Start::No);
}

#[test]
fn random_bytes_rarely_start_a_pdu() {
    // A simple LCG: no dependency, deterministic.
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut starts = 0;
    for _ in 0..100_000 {
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *byte = (state >> 56) as u8;
        }
        if is_pdu_start(&bytes) == Start::Yes {
            starts += 1;
        }
    }
    assert!(starts < 5, "{starts} random starts");
}

#[test]
fn smb2_negotiate() {
    let packet = hex(SMB3_NEGOTIATE_REQUEST);
    let message = smb2_of(&packet);
    assert_eq!(message.commands.len(), 1);
    let pdu = &message.commands[0];
    assert_eq!(pdu.header.command, Command::NEGOTIATE);
    assert!(!pdu.header.is_response());
    assert_eq!(
        pdu.body,
        Body2::NegotiateRequest {
            dialects: vec![Dialect::SMB_3_0]
        }
    );
    let packet = hex(SMB3_NEGOTIATE_RESPONSE);
    let message = smb2_of(&packet);
    let pdu = &message.commands[0];
    assert!(pdu.header.is_response());
    assert_eq!(pdu.header.status, NtStatus::SUCCESS);
    let Body2::NegotiateResponse {
        dialect,
        security_buffer,
    } = &pdu.body
    else {
        panic!("{:?}", pdu.body);
    };
    assert_eq!(*dialect, Dialect::SMB_3_0);
    assert_eq!(dialect.major(), 3);
    assert_eq!(security_buffer.len(), 120);
    assert_eq!(security_buffer.first(), Some(&0x60));
}

#[test]
fn smb2_tree_connect() {
    let packet = hex(SMB3_TREE_CONNECT);
    let message = smb2_of(&packet);
    let pdu = &message.commands[0];
    assert_eq!(pdu.header.session_id, 0x0000_4800_9400_003d);
    assert_eq!(pdu.header.message_id, 3);
    assert_eq!(
        pdu.body,
        Body2::TreeConnectRequest {
            path: r"\\WS2016\encrypted".to_owned()
        }
    );
    let packet = hex(SMB3_TREE_CONNECT_RESPONSE);
    let message = smb2_of(&packet);
    let pdu = &message.commands[0];
    assert_eq!(pdu.header.tree_id, 1);
    let Body2::TreeConnectResponse { share_type, .. } = pdu.body else {
        panic!("{:?}", pdu.body);
    };
    assert_eq!(share_type, ShareType::DISK);
}

#[test]
fn smb3_transform() {
    let packet = hex(SMB3_TRANSFORM);
    let Packet::Transform(transform) = parse(&packet).expect("parses") else {
        panic!("not a transform");
    };
    assert_eq!(transform.session_id, 0x0000_4800_9400_003d);
    assert_eq!(transform.original_message_size, 0x92);
    assert_eq!(transform.flags, 1);
}

/// An SMB2 header of `command`, as a request, with `next` as its NextCommand.
fn smb2_header(command: u16, message_id: u64, next: u32) -> Vec<u8> {
    let mut header = vec![0u8; smb2::HEADER_LEN];
    header[..4].copy_from_slice(&SMB2_MAGIC);
    header[4] = 64;
    header[12..14].copy_from_slice(&command.to_le_bytes());
    header[20..24].copy_from_slice(&next.to_le_bytes());
    header[24..32].copy_from_slice(&message_id.to_le_bytes());
    header[40..48].copy_from_slice(&7u64.to_le_bytes());
    header
}

/// A compounded CREATE (name "a") + IOCTL (pipe transceive, related file id) + CLOSE.
pub(crate) fn compounded_message() -> Vec<u8> {
    let mut create = smb2_header(5, 10, 0);
    let mut body = vec![0u8; 56];
    body[0] = 57;
    body[24..28].copy_from_slice(&0x0012_019fu32.to_le_bytes());
    body[44..46].copy_from_slice(&120u16.to_le_bytes());
    body[46..48].copy_from_slice(&2u16.to_le_bytes());
    create.extend(body);
    create.extend([b'a', 0]);
    create.resize(128, 0);
    let next = create.len() as u32;
    create[20..24].copy_from_slice(&next.to_le_bytes());

    let mut ioctl = smb2_header(0x0b, 11, 0);
    ioctl[16] = 4; // RELATED_OPERATIONS
    let mut body = vec![0u8; 56];
    body[0] = 57;
    body[4..8].copy_from_slice(&0x0011_c017u32.to_le_bytes());
    body[8..24].fill(0xff);
    body[24..28].copy_from_slice(&120u32.to_le_bytes());
    body[28..32].copy_from_slice(&4u32.to_le_bytes());
    ioctl.extend(body);
    ioctl.extend([5, 0, 11, 3]);
    ioctl.resize(128, 0);
    let next = ioctl.len() as u32;
    ioctl[20..24].copy_from_slice(&next.to_le_bytes());

    let mut close = smb2_header(6, 12, 0);
    close[16] = 4;
    let mut body = vec![0u8; 24];
    body[0] = 24;
    body[8..24].fill(0xff);
    close.extend(body);

    let mut message = create;
    message.extend(ioctl);
    message.extend(close);
    let mut packet = (message.len() as u32).to_be_bytes().to_vec();
    packet.extend(message);
    packet
}

#[test]
fn smb2_compounded_commands_are_all_read() {
    let packet = compounded_message();
    let message = smb2_of(&packet);
    assert!(!message.chain_truncated);
    let commands: Vec<_> = message.commands.iter().map(|c| c.header.command).collect();
    assert_eq!(commands, [Command::CREATE, Command::IOCTL, Command::CLOSE]);
    assert!(matches!(&message.commands[0].body, Body2::CreateRequest { name, .. } if name == "a"));
    assert_eq!(
        message.commands[1].body,
        Body2::IoctlRequest {
            ctl_code: CtlCode::PIPE_TRANSCEIVE,
            file_id: FileId {
                persistent: u64::MAX,
                volatile: u64::MAX
            },
            input: &[5, 0, 11, 3],
        }
    );
}

#[test]
fn smb2_compound_chain_is_bounded() {
    // MAX_COMPOUNDED + 5 tiny LOGOFF requests, each pointing at the next.
    let mut message = Vec::new();
    for index in 0..smb2::MAX_COMPOUNDED + 5 {
        let mut logoff = smb2_header(2, index as u64, 72);
        logoff.extend([4, 0, 0, 0, 0, 0, 0, 0]);
        message.extend(logoff);
    }
    let parsed = smb2::parse(&message).expect("parses");
    assert_eq!(parsed.commands.len(), smb2::MAX_COMPOUNDED);
    assert!(parsed.chain_truncated);
}

#[test]
fn smb2_error_response_is_status_only() {
    let mut message = smb2_header(3, 4, 0);
    message[16] = 1; // SERVER_TO_REDIR
    message[8..12].copy_from_slice(&NtStatus::BAD_NETWORK_NAME.0.to_le_bytes());
    message.extend([9, 0, 0, 0, 0, 0, 0, 0, 0]);
    let parsed = smb2::parse(&message).expect("parses");
    assert_eq!(parsed.commands[0].body, Body2::Error);
    assert_eq!(
        parsed.commands[0].header.status.name(),
        Some("STATUS_BAD_NETWORK_NAME")
    );
}

#[test]
fn smb1_negotiate() {
    let packet = hex(SMB1_NEGOTIATE);
    let message = smb1_of(&packet);
    assert_eq!(message.header.command, smb1::Command::NEGOTIATE);
    assert_eq!(
        message.commands[0].body,
        Body1::NegotiateRequest {
            dialects: vec![
                "NT LM 0.12".to_owned(),
                "SMB 2.002".to_owned(),
                "SMB 2.???".to_owned()
            ]
        }
    );
}

#[test]
fn smb1_tree_connect() {
    let packet = hex(SMB1_TREE_CONNECT);
    let message = smb1_of(&packet);
    assert_eq!(
        message.commands[0].body,
        Body1::TreeConnectRequest {
            path: r"\\192.168.56.101\IPC$".to_owned(),
            service: "?????".to_owned(),
        }
    );
    let packet = hex(SMB1_TREE_CONNECT_RESPONSE);
    let message = smb1_of(&packet);
    assert!(message.header.is_response());
    assert_eq!(message.header.tid, 0x0800);
    assert_eq!(
        message.commands[0].body,
        Body1::TreeConnectResponse {
            service: "IPC".to_owned()
        }
    );
}

#[test]
fn smb1_nt_create() {
    let packet = hex(SMB1_NT_CREATE);
    let message = smb1_of(&packet);
    let Body1::NtCreateRequest {
        name,
        desired_access,
        ..
    } = &message.commands[0].body
    else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!(name, r"\srvsvc");
    assert_eq!(*desired_access, 0xc000_0000);
    let packet = hex(SMB1_NT_CREATE_RESPONSE);
    let message = smb1_of(&packet);
    let Body1::NtCreateResponse {
        fid, resource_type, ..
    } = message.commands[0].body
    else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!(fid, 0x4000);
    assert_eq!(resource_type, 2);
}

#[test]
fn smb1_transact_named_pipe() {
    let packet = hex(SMB1_TRANSACT_NMPIPE);
    let message = smb1_of(&packet);
    let body = &message.commands[0].body;
    assert_eq!(body.transact_pipe_fid(), Some(0x4000));
    let Body1::TransactionRequest { name, data, .. } = body else {
        panic!("{body:?}");
    };
    assert_eq!(name, r"\PIPE\");
    // A DCE-RPC bind: version 5.0, type 11.
    assert_eq!(data.get(..3), Some([5, 0, 11].as_slice()));
    assert_eq!(data.len(), 72);

    let packet = hex(SMB1_TRANSACTION_ASCII);
    let message = smb1_of(&packet);
    // Its WordCount (14) leaves out the two setup words: read as 16 words, and flagged.
    let Body1::TransactionRequest { name, setup, data } = &message.commands[0].body else {
        panic!("{:?}", message.commands[0].body);
    };
    assert_eq!(name, r"\\PIPE\lsarpc");
    assert_eq!(setup, &[0x2600, 0xffff]);
    assert_eq!(*data, b"some_data");
    assert!(message.anomalies.short_setup);
}

#[test]
fn every_prefix_is_safe() {
    for fixture in ALL.iter().chain([&SMB1_TRANSACTION_ASCII]) {
        let packet = hex(fixture);
        for len in 0..packet.len() {
            let prefix = &packet[..len];
            let _ = frame(prefix);
            let _ = is_pdu_start(prefix);
            // The fixed parts: a prefix shorter than the SMB header never parses.
            let result = parse(prefix);
            if len < NBSS_HEADER_LEN + 33 && !fixture.starts_with("000000c6fd") {
                assert!(result.is_err(), "{fixture} at {len}");
            }
        }
    }
    let packet = compounded_message();
    for len in 0..packet.len() {
        let _ = parse(&packet[..len]);
    }
}

#[test]
fn every_byte_flip_is_safe() {
    for fixture in ALL {
        let packet = hex(fixture);
        for at in 0..packet.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut mutated = packet.clone();
                mutated[at] = value;
                let _ = parse(&mutated);
                let _ = is_pdu_start(&mutated);
            }
        }
    }
}

#[test]
fn names_are_bounded() {
    let long = vec![b'a'; MAX_NAME_BYTES * 4];
    let (text, cut) = utf16(&long);
    assert!(cut);
    assert_eq!(text.chars().count(), MAX_NAME_BYTES / 2);
    let (text, cut) = oem(&long);
    assert!(cut);
    assert_eq!(text.len(), MAX_NAME_BYTES);
}

#[test]
fn status_names() {
    assert_eq!(
        NtStatus::MORE_PROCESSING_REQUIRED.name(),
        Some("STATUS_MORE_PROCESSING_REQUIRED")
    );
    assert!(NtStatus::LOGON_FAILURE.is_error());
    assert!(!NtStatus::BUFFER_OVERFLOW.is_error());
    assert_eq!(NtStatus(0x1234).name(), None);
}

/// An SMB1 LOGOFF_ANDX request whose AndX block names `next` at `offset`.
fn smb1_andx_logoff(next: u8, offset: u16) -> Vec<u8> {
    let mut message = SMB1_MAGIC.to_vec();
    message.push(smb1::Command::LOGOFF_ANDX.0);
    message.resize(smb1::HEADER_LEN, 0);
    message.push(2); // WordCount
    message.extend([next, 0]);
    message.extend(offset.to_le_bytes());
    message.extend([0, 0]); // ByteCount
    message
}

#[test]
fn smb1_andx_block_that_does_not_read_keeps_the_ones_before() {
    // A LOGOFF_ANDX followed by an extended-security SESSION_SETUP_ANDX whose SecurityBlob
    // is longer than its bytes.
    let mut message = smb1_andx_logoff(smb1::Command::SESSION_SETUP_ANDX.0, 39);
    let mut words = [0u8; 24];
    words[0] = smb1::Command::NO_ANDX.0;
    words[14..16].copy_from_slice(&0xffffu16.to_le_bytes());
    message.push(12); // WordCount
    message.extend(words);
    message.extend([0, 0]); // ByteCount
    let parsed = smb1::parse(&message).expect("parses");
    assert_eq!(parsed.commands.len(), 1);
    assert_eq!(parsed.commands[0].body, Body1::LogoffRequest);
    assert!(parsed.anomalies.chain_truncated);
}

#[test]
fn smb1_andx_chains_only_go_forward() {
    // Pointing at itself: one command read, the loop flagged.
    let message = smb1_andx_logoff(smb1::Command::LOGOFF_ANDX.0, smb1::HEADER_LEN as u16);
    let parsed = smb1::parse(&message).expect("parses");
    assert_eq!(parsed.commands.len(), 1);
    assert!(parsed.anomalies.chain_truncated);
    // Pointing past the end: the first command still reads.
    let message = smb1_andx_logoff(smb1::Command::LOGOFF_ANDX.0, 0xfff0);
    let parsed = smb1::parse(&message).expect("parses");
    assert_eq!(parsed.commands.len(), 1);
    assert!(parsed.anomalies.chain_truncated);
    // A chain of blocks each pointing to the next is cut at MAX_ANDX_CHAIN.
    let mut message = smb1_andx_logoff(smb1::Command::LOGOFF_ANDX.0, 39);
    for index in 0..smb1::MAX_ANDX_CHAIN + 3 {
        let next = 39 + 7 * (index as u16 + 1);
        message.extend([2, smb1::Command::LOGOFF_ANDX.0, 0]);
        message.extend(next.to_le_bytes());
        message.extend([0, 0]);
    }
    let parsed = smb1::parse(&message).expect("parses");
    assert_eq!(parsed.commands.len(), smb1::MAX_ANDX_CHAIN);
    assert!(parsed.anomalies.chain_truncated);
    assert!(
        parsed
            .commands
            .iter()
            .all(|block| block.body == Body1::LogoffRequest)
    );
}

#[test]
fn smb2_dialect_list_is_bounded() {
    let mut message = vec![0u8; smb2::HEADER_LEN];
    message[..4].copy_from_slice(&SMB2_MAGIC);
    message[4] = 64;
    let mut body = vec![0u8; 36];
    body[0] = 36;
    body[2..4].copy_from_slice(&u16::MAX.to_le_bytes());
    message.extend(body);
    // Fewer dialects than announced: an error, not a read past the end.
    message.extend([0x02, 0x02, 0x10, 0x02]);
    assert!(smb2::parse(&message).is_err());
    message.extend(vec![0x11; smb2::MAX_DIALECTS * 2]);
    let parsed = smb2::parse(&message).expect("parses");
    let Body2::NegotiateRequest { dialects } = &parsed.commands[0].body else {
        panic!("{:?}", parsed.commands[0].body);
    };
    assert_eq!(dialects.len(), smb2::MAX_DIALECTS);
    assert!(parsed.commands[0].anomalies.too_many_dialects);
}

/// A COMPRESSION_TRANSFORM_HEADER ([MS-SMB2] 2.2.42.1) and `payload` bytes after it, in a
/// session message.
fn compressed(
    original_size: u32,
    algorithm: u16,
    flags: u16,
    offset: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut message = b"\xfcSMB".to_vec();
    message.extend(original_size.to_le_bytes());
    message.extend(algorithm.to_le_bytes());
    message.extend(flags.to_le_bytes());
    message.extend(offset.to_le_bytes());
    message.extend_from_slice(payload);
    let mut packet = vec![0, 0];
    packet.extend(u16::try_from(message.len()).expect("small").to_be_bytes());
    packet.extend(message);
    packet
}

#[test]
fn a_compression_header_is_checked_against_its_message() {
    // A legitimate LZ77 message: 0x68 bytes compressed into the 40 that follow, no
    // uncompressed prefix.
    let packet = compressed(0x68, 2, 0, 0, &[0x5a; 40]);
    let Ok(Packet::Compressed(header)) = parse(&packet) else {
        panic!("not a compressed message")
    };
    assert_eq!(
        header,
        smb2::CompressionHeader {
            original_size: 0x68,
            algorithm: 2,
            flags: 0,
            offset_or_length: 0,
            payload_len: 40,
        }
    );
    assert!(!header.overflows());
    assert_eq!(is_pdu_start(&packet), Start::Yes);
}

#[test]
fn smbghost_headers_overflow() {
    // CVE-2020-0796 as the public proofs of concept send it: LZNT1, OriginalCompressedSegmentSize
    // 0xffffffff, Offset 16, so that the server's OriginalCompressedSegmentSize + Offset wraps.
    let ghost = compressed(0xffff_ffff, 1, 0, 16, &[0x41; 32]);
    let Ok(Packet::Compressed(header)) = parse(&ghost) else {
        panic!("not a compressed message")
    };
    assert!(header.overflows());
    // An offset past the end of the message.
    let past = compressed(0x1000, 1, 0, 0x100, &[0; 16]);
    let Ok(Packet::Compressed(header)) = parse(&past) else {
        panic!("not a compressed message")
    };
    assert!(header.overflows());
    // An original size no message decompresses to, without wrapping.
    let huge = compressed(0x4000_0000, 3, 0, 0, &[0; 16]);
    let Ok(Packet::Compressed(header)) = parse(&huge) else {
        panic!("not a compressed message")
    };
    assert!(header.overflows());
}

#[test]
fn compression_headers_cut_short_are_errors() {
    let packet = compressed(0x68, 2, 0, 0, &[]);
    for len in 4..packet.len() {
        let mut cut = packet[..len].to_vec();
        let body = u16::try_from(len - 4).expect("small");
        cut[2..4].copy_from_slice(&body.to_be_bytes());
        assert!(parse(&cut).is_err(), "cut at {len}");
    }
    assert!(parse(&packet).is_ok());
}
