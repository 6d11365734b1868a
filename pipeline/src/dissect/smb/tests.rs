use dcwatch_proto::v1::outcome::Status;

use super::*;
use crate::dissect::stream::Duplex;
use dcwatch_tests::fixture::hex;

const SUCCESS: u32 = 0;

/// One SMB2 command, header and body, unframed.
fn command(command: u16, message_id: u64, status: Option<u32>, tree: u32, body: &[u8]) -> Vec<u8> {
    let mut header = vec![0u8; smb2::HEADER_LEN];
    header[..4].copy_from_slice(b"\xfeSMB");
    header[4] = 64;
    header[12..14].copy_from_slice(&command.to_le_bytes());
    if let Some(status) = status {
        header[8..12].copy_from_slice(&status.to_le_bytes());
        header[16] = 1;
    }
    header[24..32].copy_from_slice(&message_id.to_le_bytes());
    header[36..40].copy_from_slice(&tree.to_le_bytes());
    header[40..48].copy_from_slice(&0x55u64.to_le_bytes());
    header.extend_from_slice(body);
    header
}

/// Commands compounded into one framed message (each padded to 8 bytes, NextCommand set;
/// all but the first related).
fn framed(commands: &[Vec<u8>]) -> Vec<u8> {
    let mut message = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let mut command = command.clone();
        if index > 0 {
            command[16] |= 4;
        }
        if index + 1 < commands.len() {
            command.resize(command.len().next_multiple_of(8), 0);
            let next = command.len() as u32;
            command[20..24].copy_from_slice(&next.to_le_bytes());
        }
        message.extend(command);
    }
    let mut packet = (message.len() as u32).to_be_bytes().to_vec();
    packet.extend(message);
    packet
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn tree_connect_request(path: &str) -> Vec<u8> {
    let name = utf16(path);
    let mut body = vec![9, 0, 0, 0, 72, 0];
    body.extend((name.len() as u16).to_le_bytes());
    body.extend(name);
    body
}

fn tree_connect_response(share_type: u8) -> Vec<u8> {
    let mut body = vec![0u8; 16];
    body[0] = 16;
    body[2] = share_type;
    body
}

fn create_request(name: &str) -> Vec<u8> {
    let name = utf16(name);
    let mut body = vec![0u8; 56];
    body[0] = 57;
    body[24..28].copy_from_slice(&0x0012_019fu32.to_le_bytes());
    body[36..40].copy_from_slice(&1u32.to_le_bytes());
    body[44..46].copy_from_slice(&120u16.to_le_bytes());
    body[46..48].copy_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend(name);
    body
}

fn create_response(file: u64) -> Vec<u8> {
    let mut body = vec![0u8; 88];
    body[0] = 89;
    body[4] = 1;
    body[64..72].copy_from_slice(&file.to_le_bytes());
    body[72..80].copy_from_slice(&file.to_le_bytes());
    body
}

fn ioctl(output: bool, file: u64, data: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; if output { 48 } else { 56 }];
    body[0] = if output { 49 } else { 57 };
    body[4..8].copy_from_slice(&0x0011_c017u32.to_le_bytes());
    body[8..16].copy_from_slice(&file.to_le_bytes());
    body[16..24].copy_from_slice(&file.to_le_bytes());
    let (offset_at, count_at) = if output { (32, 36) } else { (24, 28) };
    let offset = 64 + body.len() as u32;
    body[offset_at..offset_at + 4].copy_from_slice(&offset.to_le_bytes());
    body[count_at..count_at + 4].copy_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    body
}

fn close_request(file: u64) -> Vec<u8> {
    let mut body = vec![0u8; 24];
    body[0] = 24;
    body[8..16].copy_from_slice(&file.to_le_bytes());
    body[16..24].copy_from_slice(&file.to_le_bytes());
    body
}

fn close_response() -> Vec<u8> {
    let mut body = vec![0u8; 60];
    body[0] = 60;
    body
}

fn write_request(file: u64, data: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; 48];
    body[0] = 49;
    body[2..4].copy_from_slice(&112u16.to_le_bytes());
    body[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
    body[16..24].copy_from_slice(&file.to_le_bytes());
    body[24..32].copy_from_slice(&file.to_le_bytes());
    body.extend_from_slice(data);
    body
}

fn session_setup_response(flags: u16) -> Vec<u8> {
    let mut body = vec![0u8; 8];
    body[0] = 9;
    body[2..4].copy_from_slice(&flags.to_le_bytes());
    body
}

fn session_setup_request() -> Vec<u8> {
    let mut body = vec![0u8; 24];
    body[0] = 25;
    body
}

struct Connection {
    streams: Duplex<SmbSession>,
    budget: MemoryBudget,
    counters: DissectCounters,
    announced: Announcements,
    out: Vec<Activity>,
    time_ns: u64,
}

impl Connection {
    fn new() -> Self {
        let budget = MemoryBudget::new(1 << 20);
        Self {
            streams: Duplex::new(SmbSession::new(budget.clone()), &budget),
            budget,
            counters: DissectCounters::default(),
            announced: Announcements::default(),
            out: Vec::new(),
            time_ns: 0,
        }
    }

    fn send(&mut self, direction: Direction, bytes: &[u8]) {
        let (client, server) = ("10.0.0.5:50000", "10.0.0.1:445");
        let (src, dst) = match direction {
            Direction::ToServer => (client, server),
            Direction::ToClient => (server, client),
        };
        self.time_ns += 1;
        let seen = Seen {
            time_ns: self.time_ns,
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            tcp: true,
        };
        let sink = Sink {
            out: &mut self.out,
            counters: &mut self.counters,
            announced: &mut self.announced,
        };
        self.streams
            .data(direction, bytes, &seen, sink, &self.budget);
    }

    fn gap(&mut self, direction: Direction) {
        let seen = Seen {
            time_ns: self.time_ns,
            src: "10.0.0.5:50000".parse().expect("address"),
            dst: "10.0.0.1:445".parse().expect("address"),
            tcp: true,
        };
        let sink = Sink {
            out: &mut self.out,
            counters: &mut self.counters,
            announced: &mut self.announced,
        };
        self.streams.gap(direction, &seen, sink, &self.budget);
    }

    /// Sends a message one byte at a time.
    fn trickle(&mut self, direction: Direction, bytes: &[u8]) {
        for byte in bytes {
            self.send(direction, std::slice::from_ref(byte));
        }
    }

    fn close(self) -> (Vec<Activity>, DissectCounters, MemoryBudget) {
        let Self {
            streams,
            mut counters,
            mut out,
            budget,
            ..
        } = self;
        streams.finish(&mut counters).close(&mut counters, &mut out);
        (out, counters, budget)
    }
}

fn smb_bodies(activities: &[Activity]) -> Vec<(&SmbActivity, Option<i32>)> {
    activities
        .iter()
        .filter_map(|activity| match &activity.body {
            Some(activity::Body::Smb(body)) => {
                Some((body, activity.outcome.as_ref().map(|o| o.status)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_pipe_is_opened_transceived_and_closed_across_split_compounded_messages() {
    let mut connection = Connection::new();
    connection.trickle(
        Direction::ToServer,
        &framed(&[command(3, 1, None, 0, &tree_connect_request(r"\\dc\IPC$"))]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(3, 1, Some(SUCCESS), 7, &tree_connect_response(2))]),
    );
    let related = u64::MAX;
    let request = framed(&[
        command(5, 2, None, 7, &create_request("lsarpc")),
        command(
            0x0b,
            3,
            None,
            7,
            &ioctl(false, related, &[5, 0, 11, 3, 0, 0]),
        ),
        command(6, 4, None, 7, &close_request(related)),
    ]);
    // Split in the middle of the second command.
    let (first, second) = request.split_at(150);
    connection.send(Direction::ToServer, first);
    connection.send(Direction::ToServer, second);
    connection.trickle(
        Direction::ToClient,
        &framed(&[
            command(5, 2, Some(SUCCESS), 7, &create_response(9)),
            command(0x0b, 3, Some(SUCCESS), 7, &ioctl(true, 9, &[5, 0, 12, 3])),
            command(6, 4, Some(SUCCESS), 7, &close_response()),
        ]),
    );
    let (out, counters, budget) = connection.close();
    assert_eq!(counters.parse_errors, 0);
    let bodies = smb_bodies(&out);
    let kinds: Vec<_> = bodies.iter().map(|(body, _)| body.r#type()).collect();
    assert_eq!(kinds, [Type::TreeConnect, Type::Create, Type::Close]);
    assert_eq!(bodies[0].0.share, r"\\dc\IPC$");
    assert_eq!(bodies[0].0.share_type(), ShareTypeValue::Pipe);
    assert_eq!(bodies[1].0.path, r"\\dc\IPC$\lsarpc");
    assert!(bodies[1].0.is_pipe);
    assert_eq!(bodies[1].1, Some(Status::Success as i32));
    let close = bodies[2].0;
    assert_eq!(close.path, r"\\dc\IPC$\lsarpc");
    assert_eq!((close.bytes_written, close.bytes_read), (6, 4));
    assert!(!close.open_at_end);
    assert_eq!(budget.in_use(), 0);
}

/// A connection with `\\dc\IPC$\netlogon` open as file 9 (tree 7).
fn pipe_open() -> Connection {
    let mut connection = Connection::new();
    connection.send(
        Direction::ToServer,
        &framed(&[command(3, 1, None, 0, &tree_connect_request(r"\\dc\IPC$"))]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(3, 1, Some(SUCCESS), 7, &tree_connect_response(2))]),
    );
    connection.send(
        Direction::ToServer,
        &framed(&[command(5, 2, None, 7, &create_request("netlogon"))]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(5, 2, Some(SUCCESS), 7, &create_response(9))]),
    );
    connection
}

// testdata/pcaps/suricata-verify/tests/dcerpc/zerologon/input.pcap: frame 19,
// NetrServerReqChallenge (call id 1), as in the dcerpc tests.
const REQ_CHALLENGE: &str = "050000031000000068000000010000005000000000000400e85a00000c000000000000000c0000005c005c004200410053002d00410044002d003000310000000a000000000000000a0000004200410053002d00410044002d003000310000000000000000000000";

fn rpc_call_ids(activities: &[Activity]) -> Vec<u32> {
    activities
        .iter()
        .filter_map(|activity| match &activity.body {
            Some(activity::Body::Dcerpc(body)) => Some(body.call_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pipe_write_cut_short_is_a_gap_and_the_next_call_is_read() {
    let mut connection = pipe_open();
    // A write of 0x10000 bytes of which the message holds the first 40: a DCE-RPC request
    // whose rest never arrives.
    let mut cut = write_request(9, &hex(REQ_CHALLENGE)[..40]);
    cut[4..8].copy_from_slice(&0x1_0000u32.to_le_bytes());
    connection.send(
        Direction::ToServer,
        &framed(&[command(9, 3, None, 7, &cut)]),
    );
    // The next call, whole in its own write, call id 2.
    let mut next = hex(REQ_CHALLENGE);
    next[12] = 2;
    connection.send(
        Direction::ToServer,
        &framed(&[command(9, 4, None, 7, &write_request(9, &next))]),
    );
    let (out, counters, budget) = connection.close();
    assert_eq!(counters.pipe_gaps, 1, "{counters:?}");
    assert_eq!(rpc_call_ids(&out), [2]);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_related_pipe_write_beyond_what_is_kept_is_a_gap() {
    let mut connection = pipe_open();
    // A compounded CREATE and related WRITE whose data is longer than what is kept until
    // the CREATE is answered: a call, then filler.
    let mut data = hex(REQ_CHALLENGE);
    data.resize(MAX_DEFERRED_BYTES + 1000, 0);
    connection.send(
        Direction::ToServer,
        &framed(&[
            command(5, 10, None, 7, &create_request("svcctl")),
            command(9, 11, None, 7, &write_request(u64::MAX, &data)),
        ]),
    );
    let mut written = vec![0u8; 16];
    written[0] = 17;
    connection.send(
        Direction::ToClient,
        &framed(&[
            command(5, 10, Some(SUCCESS), 7, &create_response(12)),
            command(9, 11, Some(SUCCESS), 7, &written),
        ]),
    );
    let (out, counters, budget) = connection.close();
    assert_eq!(counters.pipe_gaps, 1, "{counters:?}");
    assert_eq!(rpc_call_ids(&out), [1], "the call before the cut is read");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_pipe_read_not_awaited_is_a_gap() {
    let mut connection = pipe_open();
    let mut read = vec![0u8; 49];
    read[0] = 49;
    read[16..24].copy_from_slice(&9u64.to_le_bytes());
    read[24..32].copy_from_slice(&9u64.to_le_bytes());
    // The same message id twice: the first read's answer will not be recognised.
    for _ in 0..2 {
        connection.send(
            Direction::ToServer,
            &framed(&[command(8, 3, None, 7, &read)]),
        );
    }
    let (_, counters, budget) = connection.close();
    assert_eq!(counters.pipe_gaps, 1, "{counters:?}");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn related_commands_after_a_failed_create_open_no_file() {
    let mut connection = pipe_open();
    let related = u64::MAX;
    let mut read = vec![0u8; 49];
    read[0] = 49;
    read[16..24].copy_from_slice(&related.to_le_bytes());
    read[24..32].copy_from_slice(&related.to_le_bytes());
    connection.send(
        Direction::ToServer,
        &framed(&[
            command(5, 10, None, 7, &create_request("nothere")),
            command(8, 11, None, 7, &read),
            command(6, 12, None, 7, &close_request(related)),
        ]),
    );
    let error = vec![9, 0, 0, 0, 0, 0, 0, 0, 0];
    let not_found = 0xc000_0034;
    connection.send(
        Direction::ToClient,
        &framed(&[
            command(5, 10, Some(not_found), 7, &error),
            command(8, 11, Some(not_found), 7, &error),
            command(6, 12, Some(not_found), 7, &error),
        ]),
    );
    let (out, _, budget) = connection.close();
    let bodies = smb_bodies(&out);
    let kinds: Vec<_> = bodies.iter().map(|(body, _)| body.r#type()).collect();
    // The tree connect, the netlogon create, the failed create, netlogon still open.
    assert_eq!(
        kinds,
        [Type::TreeConnect, Type::Create, Type::Create, Type::Close],
        "{bodies:?}"
    );
    assert_eq!(bodies[3].0.file_name, "netlogon");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn a_synchronous_pending_answer_keeps_the_request_waiting() {
    let mut connection = pipe_open();
    connection.send(
        Direction::ToServer,
        &framed(&[command(5, 10, None, 7, &create_request("lsarpc"))]),
    );
    let error = vec![9, 0, 0, 0, 0, 0, 0, 0, 0];
    connection.send(
        Direction::ToClient,
        &framed(&[command(5, 10, Some(NtStatus::PENDING.0), 7, &error)]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(5, 10, Some(SUCCESS), 7, &create_response(12))]),
    );
    let (out, counters, _) = connection.close();
    assert_eq!(counters.orphan_responses, 0);
    let bodies = smb_bodies(&out);
    let creates: Vec<_> = bodies
        .iter()
        .filter(|(body, _)| body.r#type() == Type::Create)
        .collect();
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[1].0.file_name, "lsarpc");
    assert_eq!(creates[1].1, Some(Status::Success as i32));
    assert_eq!(out.iter().filter(|a| a.outcome.is_some()).count(), 3);
}

#[test]
fn a_tree_connected_again_gives_its_charge_back() {
    let mut connection = Connection::new();
    for (id, path) in [
        (1, r"\\dc\a-share-with-a-rather-long-name"),
        (2, r"\\dc\c$"),
    ] {
        connection.send(
            Direction::ToServer,
            &framed(&[command(3, id, None, 0, &tree_connect_request(path))]),
        );
        connection.send(
            Direction::ToClient,
            &framed(&[command(3, id, Some(SUCCESS), 7, &tree_connect_response(1))]),
        );
    }
    connection.send(
        Direction::ToServer,
        &framed(&[command(4, 3, None, 7, &[4, 0, 0, 0])]),
    );
    assert_eq!(connection.budget.in_use(), 0);
}

#[test]
fn a_setup_reports_once_with_its_final_status() {
    let mut connection = Connection::new();
    for (id, status) in [
        (1, NtStatus::MORE_PROCESSING_REQUIRED),
        (2, NtStatus::SUCCESS),
        (3, NtStatus::MORE_PROCESSING_REQUIRED),
        (4, NtStatus::LOGON_FAILURE),
    ] {
        connection.send(
            Direction::ToServer,
            &framed(&[command(1, id, None, 0, &session_setup_request())]),
        );
        let body = if status.is_error() && status != NtStatus::MORE_PROCESSING_REQUIRED {
            vec![9, 0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            session_setup_response(0)
        };
        connection.send(
            Direction::ToClient,
            &framed(&[command(1, id, Some(status.0), 0, &body)]),
        );
    }
    let (out, _, _) = connection.close();
    let bodies = smb_bodies(&out);
    let outcomes: Vec<_> = bodies.iter().map(|(_, outcome)| *outcome).collect();
    assert_eq!(
        outcomes,
        [Some(Status::Success as i32), Some(Status::Failure as i32)]
    );
    assert_eq!(out[1].outcome.as_ref().map(|o| o.code), Some(0xc000_006d));
}

#[test]
fn a_connection_picked_up_mid_stream_reports_what_it_can() {
    let mut connection = Connection::new();
    // Picked up after a loss: half a message, then the stream hunts for a start.
    let write = framed(&[command(9, 40, None, 3, &write_request(77, b"hello"))]);
    connection.gap(Direction::ToServer);
    connection.send(Direction::ToServer, &write[10..]);
    connection.send(Direction::ToServer, &write);
    // The answer to a request never seen.
    connection.send(
        Direction::ToClient,
        &framed(&[command(5, 39, Some(SUCCESS), 3, &create_response(1))]),
    );
    connection.send(Direction::ToServer, &[0x85, 0, 0, 0]);
    let (out, counters, budget) = connection.close();
    assert_eq!(counters.orphan_responses, 1, "{counters:?}");
    let bodies = smb_bodies(&out);
    assert_eq!(bodies.len(), 1);
    let close = bodies[0].0;
    assert_eq!(close.r#type(), Type::Close);
    assert!(close.open_at_end);
    assert_eq!(close.bytes_written, 5);
    assert_eq!(close.file_name, "");
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn encrypted_messages_are_counted_once_per_connection() {
    let mut connection = Connection::new();
    let mut transform = vec![0u8; 4 + smb2::TRANSFORM_HEADER_LEN + 16];
    let len = (transform.len() - 4) as u32;
    transform[..4].copy_from_slice(&len.to_be_bytes());
    transform[4..8].copy_from_slice(b"\xfdSMB");
    transform[40..44].copy_from_slice(&100u32.to_le_bytes());
    for _ in 0..3 {
        connection.send(Direction::ToServer, &transform);
        connection.send(Direction::ToClient, &transform);
    }
    let (out, _, _) = connection.close();
    let bodies = smb_bodies(&out);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].0.encrypted_messages, 6);
    assert_eq!(bodies[0].0.encrypted_bytes, 600);
}

#[test]
fn hostile_input_never_panics() {
    let mut connection = Connection::new();
    let mut state: u64 = 7;
    for _ in 0..2000 {
        let mut bytes = [0u8; 96];
        for byte in &mut bytes {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *byte = (state >> 56) as u8;
        }
        // A plausible frame around random content, so the parsers see it.
        bytes[..8].copy_from_slice(&[0, 0, 0, 92, 0xfe, b'S', b'M', b'B']);
        bytes[8] = 64;
        bytes[9] = 0;
        connection.send(Direction::ToServer, &bytes);
        bytes[20] |= 1;
        connection.send(Direction::ToClient, &bytes);
    }
    let (_, _, budget) = connection.close();
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn admin_shares_and_executables_are_flagged() {
    assert!(admin_share(r"\\dc1\ADMIN$"));
    assert!(admin_share(r"\\10.0.0.1\c$"));
    assert!(admin_share("IPC$"));
    assert!(!admin_share(r"\\dc1\SYSVOL"));
    assert!(!admin_share(r"\\dc1\share$"));
    assert!(executable(r"Windows\Temp\evil.EXE"));
    assert!(executable("run.ps1"));
    assert!(!executable("notes.txt"));
    assert!(!executable("exe"));
    let mut connection = Connection::new();
    connection.send(
        Direction::ToServer,
        &framed(&[command(
            3,
            1,
            None,
            0,
            &tree_connect_request(r"\\dc1\ADMIN$"),
        )]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(3, 1, Some(SUCCESS), 7, &tree_connect_response(1))]),
    );
    connection.send(
        Direction::ToServer,
        &framed(&[command(5, 2, None, 7, &create_request(r"Temp\svc.exe"))]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(5, 2, Some(SUCCESS), 7, &create_response(9))]),
    );
    connection.send(
        Direction::ToServer,
        &framed(&[command(6, 3, None, 7, &close_request(9))]),
    );
    connection.send(
        Direction::ToClient,
        &framed(&[command(6, 3, Some(SUCCESS), 7, &close_response())]),
    );
    let flags: Vec<(i32, bool, bool)> = smb_bodies(&connection.out)
        .into_iter()
        .map(|(body, _)| (body.r#type, body.admin_share, body.executable))
        .collect();
    assert_eq!(
        flags,
        [
            (Type::TreeConnect.into(), true, false),
            (Type::Create.into(), true, true),
            (Type::Close.into(), true, true),
        ]
    );
}

/// A session message holding a COMPRESSION_TRANSFORM_HEADER ([MS-SMB2] 2.2.42.1) and
/// `payload`.
fn compressed_message(original_size: u32, offset: u32, payload: &[u8]) -> Vec<u8> {
    let mut message = b"\xfcSMB".to_vec();
    message.extend(original_size.to_le_bytes());
    message.extend(1u16.to_le_bytes()); // LZNT1
    message.extend(0u16.to_le_bytes()); // unchained
    message.extend(offset.to_le_bytes());
    message.extend_from_slice(payload);
    let mut packet = (message.len() as u32).to_be_bytes().to_vec();
    packet.extend(message);
    packet
}

#[test]
fn smbghost_is_reported_and_ordinary_compression_once() {
    let mut connection = Connection::new();
    // Two ordinary compressed messages: the first is reported, the second not.
    connection.send(
        Direction::ToServer,
        &compressed_message(0x100, 0, &[0x11; 64]),
    );
    connection.send(
        Direction::ToServer,
        &compressed_message(0x100, 0, &[0x11; 64]),
    );
    // CVE-2020-0796: OriginalCompressedSegmentSize 0xffffffff plus Offset 16 wraps.
    connection.send(
        Direction::ToServer,
        &compressed_message(0xffff_ffff, 16, &[0x41; 64]),
    );
    let compressed: Vec<(u32, u32, u32, bool)> = smb_bodies(&connection.out)
        .into_iter()
        .filter(|(body, _)| body.r#type == i32::from(Type::Compressed))
        .map(|(body, _)| {
            (
                body.compressed_original_size,
                body.compressed_offset,
                body.compressed_payload_len,
                body.compression_overflow,
            )
        })
        .collect();
    assert_eq!(
        compressed,
        [(0x100, 0, 64, false), (0xffff_ffff, 16, 64, true)]
    );
}
