//! SMB 1 and SMB 2/3 (TCP 445 and 139) to activities: dialect negotiations, logons, share
//! connections, file opens with their read/write volume, and the named pipes' bytes handed to
//! DCE-RPC.
//!
//! A request waits (by message id) for its answer, which gives the activity its outcome; the
//! connection's state maps session ids to their logged-on account, tree ids to shares and file
//! ids to open files, each map bounded and charged to the shared memory budget. A connection
//! picked up mid-stream reports what it can: unknown sessions, trees and files have empty names.
//! Authentication tokens in session setups become NTLM/Kerberos activities carried by SMB, with
//! the setup's outcome. Encrypted (SMB3 transform) messages are counted, one activity per
//! connection.

mod compressed;
mod encrypted;
mod files;
mod pending;
mod pipe;
mod session;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::collections::HashMap;

use dcwatch_parsers::{
    framing::{Framing, Start},
    smb::{
        self, NtStatus, Packet, ShareType,
        smb1::{self, Body as Body1},
        smb2::{self, Body as Body2, Command, CtlCode, Dialect, FileId, SessionFlags},
    },
};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, SmbActivity, activity,
    outcome::Status,
    smb_activity::{Mechanism, ShareType as ShareTypeValue, Type},
};
use prost::Message as _;

use super::{
    DissectCounters,
    dcerpc::RpcPipe,
    endpoints::Announcements,
    gss,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome, timestamp},
    flow::{Direction, MemoryBudget},
};

/// Requests waiting for their answer on one connection. SMB2 clients keep up to their credits
/// outstanding (Windows grants a few hundred); a client that sends more has the oldest given up.
pub(super) const MAX_PENDING_PER_FLOW: usize = 512;

/// Sessions (logged on or in the middle of a multi-leg setup) remembered per connection. A
/// connection rarely carries more than a few (one per user of a multi-user client).
pub(super) const MAX_SESSIONS_PER_FLOW: usize = 64;

/// Tree connections remembered per connection: shares a client uses at once.
pub(super) const MAX_TREES_PER_FLOW: usize = 256;

/// Open files remembered per connection, for their names and read/write volume. Explorer on a
/// large share keeps a few hundred open; past this bound new opens are reported but not
/// followed.
pub(super) const MAX_FILES_PER_FLOW: usize = 1024;

/// Encrypted messages counted before the count is reported, so a long-lived encrypted
/// connection reports now and then rather than only when it ends.
pub(super) const ENCRYPTED_REPORT_EVERY: u64 = 10_000;

/// The SMB2 FileId that, in a related compounded request, means "the file the previous
/// command opened" ([MS-SMB2] 3.2.4.1.4).
const RELATED_FILE_ID: FileId = FileId {
    persistent: u64::MAX,
    volatile: u64::MAX,
};

/// Bytes of a related compounded write or transceive kept until the chain's CREATE answer
/// names the file: a pipe call (a DCE-RPC request) fits; larger writes are counted, their bytes
/// beyond this not handed to the pipe.
pub(super) const MAX_DEFERRED_BYTES: usize = 64 * 1024;

/// Fixed cost charged per remembered item, besides its strings: map entry, struct, allocator.
const ENTRY_OVERHEAD: usize = 128;

/// Where a file lives: its session, tree and id (an SMB1 FID in the volatile half).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    session: u64,
    tree: u32,
    id: FileId,
}

#[derive(Debug, Default, Clone)]
struct Logon {
    mechanism: Mechanism,
    user: String,
    domain: String,
}

#[derive(Debug)]
struct Tree {
    share: String,
    share_type: ShareType,
}

impl Tree {
    fn is_pipe(&self) -> bool {
        self.share_type == ShareType::PIPE || self.share.to_ascii_uppercase().ends_with("\\IPC$")
    }
}

#[derive(Debug)]
struct File {
    session: u64,
    share: String,
    share_type: ShareType,
    name: String,
    is_pipe: bool,
    bytes_read: u64,
    bytes_written: u64,
    pipe: Option<RpcPipe>,
    charge: usize,
    /// The activity's endpoints: the client's request.
    seen: Seen,
}

/// What a request waits with.
#[derive(Debug)]
enum Waiting {
    Negotiate {
        /// SMB1 dialect strings, to name the chosen index.
        offered: Vec<String>,
    },
    SessionSetup {
        logon: Logon,
        native_os: String,
        carried: Vec<Activity>,
    },
    TreeConnect {
        share: String,
    },
    Create {
        tree: (u64, u32),
        name: String,
    },
    Read {
        file: FileKey,
    },
    Transceive {
        file: FileKey,
        /// The input of a related transceive, written once its file is known.
        input: Option<Deferred>,
    },
    /// A related write, waiting for its file to be known.
    Write {
        file: FileKey,
        length: u32,
        data: Vec<u8>,
        /// The data was cut before it was kept.
        cut: bool,
        client: Seen,
    },
    Close {
        file: FileKey,
    },
    Logoff,
    Other,
}

/// The input of a related transceive, kept until the chain's CREATE answer names its file.
#[derive(Debug)]
struct Deferred {
    /// The input's length, as sent.
    length: u32,
    /// Its bytes, at most [`MAX_DEFERRED_BYTES`].
    data: Vec<u8>,
    /// The bytes were cut before they were kept.
    cut: bool,
    client: Seen,
}

#[derive(Debug)]
struct Pending {
    waiting: Waiting,
    /// The request's activity, when it has one.
    activity: Option<Activity>,
    charge: usize,
}

#[derive(Debug, Default)]
struct Encrypted {
    session_id: u64,
    messages: u64,
    bytes: u64,
    seen: Option<Seen>,
}

#[derive(Debug)]
pub(super) struct SmbSession {
    budget: MemoryBudget,
    /// 1 or 2/3 once known (the negotiated dialect's major version).
    version: u32,
    pending: HashMap<u64, Pending>,
    negotiate: Option<Pending>,
    /// Setups in progress (after a MORE_PROCESSING_REQUIRED leg), by session id.
    setups: HashMap<u64, Logon>,
    logons: HashMap<u64, Logon>,
    trees: HashMap<(u64, u32), Tree>,
    files: HashMap<FileKey, File>,
    encrypted: Encrypted,
    /// A COMPRESSED activity was reported for this connection.
    compression_reported: bool,
    /// Bytes of the budget held by the maps' entries (pending requests charge their own).
    charged: usize,
    /// A gap in a direction: the pipes lost bytes there.
    gapped: [bool; 2],
    /// The data of the command being handled was cut (an oversized PDU, or a data field past
    /// the end of the message): a pipe gets what arrived, then a gap.
    cut: bool,
    last_seen: Option<Seen>,
}

impl SmbSession {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            budget,
            version: 0,
            pending: HashMap::new(),
            negotiate: None,
            setups: HashMap::new(),
            logons: HashMap::new(),
            trees: HashMap::new(),
            files: HashMap::new(),
            encrypted: Encrypted::default(),
            compression_reported: false,
            charged: 0,
            gapped: [false; 2],
            cut: false,
            last_seen: None,
        }
    }
}

impl Drop for SmbSession {
    fn drop(&mut self) {
        let pending: usize = self.pending.values().map(|p| p.charge).sum();
        let files: usize = self.files.values().map(|f| f.charge).sum();
        let negotiate = self.negotiate.as_ref().map_or(0, |p| p.charge);
        self.budget
            .release(self.charged + pending + files + negotiate);
    }
}

impl StreamProtocol for SmbSession {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        smb::frame(bytes)
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        smb::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        self.last_seen = Some(*seen);
        self.flush_gaps(sink);
        let packet = smb::parse(pdu).map_err(|_| Malformed)?;
        match packet {
            Packet::Smb2(message) => self.smb2(direction, &message, truncated, seen, sink),
            Packet::Smb1(message) => {
                self.cut = truncated || message.anomalies.data_truncated;
                self.smb1(&message, seen, sink);
            }
            Packet::Transform(transform) => {
                // The activity is the client's: its endpoints as a request's.
                let client = match direction {
                    Direction::ToServer => *seen,
                    Direction::ToClient => swapped(seen),
                };
                self.encrypted(
                    transform.session_id,
                    transform.original_message_size,
                    &client,
                    sink,
                );
            }
            Packet::Compressed(header) => {
                let client = match direction {
                    Direction::ToServer => *seen,
                    Direction::ToClient => swapped(seen),
                };
                self.compressed(&header, &client, sink);
            }
            Packet::Control(_) => {}
        }
        Ok(())
    }

    fn gap(&mut self, direction: Direction) {
        self.gapped[direction_index(direction)] = true;
    }
}

fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

/// The endpoints of a message the other way round: the request's view of an answer.
fn swapped(seen: &Seen) -> Seen {
    Seen {
        src: seen.dst,
        dst: seen.src,
        ..*seen
    }
}

/// The request's activity answered: the answer's time and outcome.
fn finish(activity: Activity, status: NtStatus, seen: &Seen) -> Activity {
    let mut activity = with_outcome(activity, status);
    activity.time = Some(timestamp(seen.time_ns));
    activity
}

fn with_outcome(mut activity: Activity, status: NtStatus) -> Activity {
    if let Some(activity::Body::Smb(body)) = &mut activity.body {
        body.answered = true;
    }
    activity.outcome = Some(outcome(!status.is_error(), status.0, status.name()));
    activity
}

/// Extensions of files that run (programs, libraries, drivers, scripts, screensavers): what
/// lateral movement copies to an administrative share.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    ".exe", ".dll", ".bat", ".cmd", ".ps1", ".vbs", ".sys", ".scr",
];

/// Whether a share (`\\server\NAME` or `NAME`) is an administrative one: ADMIN$, IPC$, or a
/// drive's hidden share (C$, D$...).
fn admin_share(share: &str) -> bool {
    let name = share.rsplit('\\').next().unwrap_or(share);
    let upper = name.to_ascii_uppercase();
    match upper.as_bytes() {
        [drive, b'$'] => drive.is_ascii_alphabetic(),
        _ => upper == "ADMIN$" || upper == "IPC$",
    }
}

/// Whether a file's name ends in an executable's extension (case-insensitive).
fn executable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    EXECUTABLE_EXTENSIONS
        .iter()
        .any(|extension| lower.ends_with(extension))
}

fn join_path(share: &str, name: &str) -> String {
    match (share.is_empty(), name.is_empty()) {
        (_, true) => share.to_owned(),
        (true, false) => name.to_owned(),
        (false, false) => format!("{share}\\{name}"),
    }
}

fn dialect_text(dialect: Dialect) -> String {
    format!("0x{:04x}", dialect.0)
}

fn share_type_value(share_type: ShareType) -> ShareTypeValue {
    match share_type {
        ShareType::DISK => ShareTypeValue::Disk,
        ShareType::PIPE => ShareTypeValue::Pipe,
        ShareType::PRINT => ShareTypeValue::Print,
        _ => ShareTypeValue::Unspecified,
    }
}

fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

fn smb2_anomalies(anomalies: &smb2::Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.name_truncated, "name_truncated"),
        (anomalies.data_truncated, "data_truncated"),
        (anomalies.too_many_dialects, "too_many_dialects"),
        (anomalies.odd_structure_size, "odd_structure_size"),
        (anomalies.odd_name_length, "odd_name_length"),
    ])
}

fn smb1_anomalies(anomalies: &smb1::Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.name_truncated, "name_truncated"),
        (anomalies.data_truncated, "data_truncated"),
        (anomalies.too_many_dialects, "too_many_dialects"),
        (anomalies.chain_truncated, "chain_truncated"),
        (anomalies.unterminated_string, "unterminated_string"),
        (anomalies.short_setup, "short_setup"),
    ])
}
