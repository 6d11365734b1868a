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
    gss,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome, timestamp},
    flow::{Direction, MemoryBudget},
};

/// Requests waiting for their answer on one connection. SMB2 clients keep up to their credits
/// outstanding (Windows grants a few hundred); a client that sends more has the oldest given up.
pub const MAX_PENDING_PER_FLOW: usize = 512;

/// Sessions (logged on or in the middle of a multi-leg setup) remembered per connection. A
/// connection rarely carries more than a few (one per user of a multi-user client).
pub const MAX_SESSIONS_PER_FLOW: usize = 64;

/// Tree connections remembered per connection: shares a client uses at once.
pub const MAX_TREES_PER_FLOW: usize = 256;

/// Open files remembered per connection, for their names and read/write volume. Explorer on a
/// large share keeps a few hundred open; past this bound new opens are reported but not
/// followed.
pub const MAX_FILES_PER_FLOW: usize = 1024;

/// Encrypted messages counted before the count is reported, so a long-lived encrypted
/// connection reports now and then rather than only when it ends.
pub const ENCRYPTED_REPORT_EVERY: u64 = 10_000;

/// The SMB2 FileId that, in a related compounded request, means "the file the previous
/// command opened" ([MS-SMB2] 3.2.4.1.4).
const RELATED_FILE_ID: FileId = FileId {
    persistent: u64::MAX,
    volatile: u64::MAX,
};

/// Bytes of a related compounded write or transceive kept until the chain's CREATE answer
/// names the file: a pipe call (a DCE-RPC request) fits; larger writes are counted, their bytes
/// beyond this not handed to the pipe.
pub const MAX_DEFERRED_BYTES: usize = 64 * 1024;

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
pub struct SmbSession {
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
    pub fn new(budget: MemoryBudget) -> Self {
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
            Packet::Compressed { .. } | Packet::Control(_) => {}
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

// ---- SMB2 -----------------------------------------------------------------------------------

impl SmbSession {
    fn smb2(
        &mut self,
        direction: Direction,
        message: &smb2::Message<'_>,
        truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        if self.version == 0 {
            self.version = 2;
        }
        let last = message.commands.len().saturating_sub(1);
        // Related compounded commands take the session, tree and file of the one before.
        let mut session = 0;
        let mut tree = 0;
        let mut chain_file = None;
        for (index, pdu) in message.commands.iter().enumerate() {
            // Only the last command of a cut message runs into the cut.
            self.cut = pdu.anomalies.data_truncated || (truncated && index == last);
            let header = &pdu.header;
            if !header.flags.contains(smb2::Flags::RELATED_OPERATIONS) {
                session = header.session_id;
                tree = header.tree_id;
            } else {
                if header.session_id != u64::MAX {
                    session = header.session_id;
                }
                if header.tree_id != u32::MAX {
                    tree = header.tree_id;
                }
            }
            let anomalies = smb2_anomalies(&pdu.anomalies);
            if header.is_response() && direction == Direction::ToClient {
                self.smb2_response(pdu, session, &mut chain_file, seen, sink);
            } else if !header.is_response() && direction == Direction::ToServer {
                self.smb2_request(pdu, session, tree, &mut chain_file, anomalies, seen, sink);
            } else {
                sink.counters.orphan_responses += 1;
            }
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one command's context, read once"
    )]
    fn smb2_request(
        &mut self,
        pdu: &smb2::Pdu<'_>,
        session: u64,
        tree: u32,
        chain_file: &mut Option<FileKey>,
        anomalies: Vec<String>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let file_key = |id: FileId, chain_file: &Option<FileKey>| {
            if id == RELATED_FILE_ID {
                chain_file.unwrap_or(FileKey { session, tree, id })
            } else {
                FileKey { session, tree, id }
            }
        };
        let (waiting, activity) = match &pdu.body {
            Body2::NegotiateRequest { dialects } => {
                let mut body = self.body(Type::Negotiate, session);
                body.dialects = dialects.iter().map(|d| dialect_text(*d)).collect();
                body.anomalies = anomalies;
                self.wait_negotiate(Vec::new(), seen.activity(activity::Body::Smb(body)), sink);
                return;
            }
            Body2::SessionSetupRequest {
                security_buffer, ..
            } => {
                let (logon, carried) = self.tokens(security_buffer, seen, sink);
                let mut body = self.body(Type::SessionSetup, session);
                body.anomalies = anomalies;
                body.user.clone_from(&logon.user);
                body.domain.clone_from(&logon.domain);
                body.mechanism = logon.mechanism.into();
                (
                    Waiting::SessionSetup {
                        logon,
                        native_os: String::new(),
                        carried,
                    },
                    Some(seen.activity(activity::Body::Smb(body))),
                )
            }
            Body2::TreeConnectRequest { path } => {
                let mut body = self.body(Type::TreeConnect, session);
                body.share.clone_from(path);
                body.anomalies = anomalies;
                (
                    Waiting::TreeConnect {
                        share: path.clone(),
                    },
                    Some(self.with_account(seen.activity(activity::Body::Smb(body)), session)),
                )
            }
            Body2::CreateRequest {
                name,
                desired_access,
                create_disposition,
                create_options,
                ..
            } => {
                let mut body = self.body(Type::Create, session);
                self.describe_file(&mut body, (session, tree), name);
                body.desired_access = *desired_access;
                body.create_disposition = *create_disposition;
                body.create_options = *create_options;
                body.anomalies = anomalies;
                (
                    Waiting::Create {
                        tree: (session, tree),
                        name: name.clone(),
                    },
                    Some(self.with_account(seen.activity(activity::Body::Smb(body)), session)),
                )
            }
            Body2::CloseRequest { file_id } => (
                Waiting::Close {
                    file: file_key(*file_id, chain_file),
                },
                None,
            ),
            Body2::ReadRequest { file_id, .. } => (
                Waiting::Read {
                    file: file_key(*file_id, chain_file),
                },
                None,
            ),
            Body2::WriteRequest {
                file_id,
                data_length,
                data,
                ..
            } => {
                let key = file_key(*file_id, chain_file);
                if key.id != RELATED_FILE_ID {
                    self.wrote(key, *data_length, data, self.cut, seen, sink);
                    return;
                }
                // The file a related write names is known once the chain's CREATE is answered.
                (
                    Waiting::Write {
                        file: key,
                        length: *data_length,
                        data: deferred(data),
                        cut: self.cut,
                        client: *seen,
                    },
                    None,
                )
            }
            Body2::IoctlRequest {
                ctl_code,
                file_id,
                input,
            } if *ctl_code == CtlCode::PIPE_TRANSCEIVE => {
                let key = file_key(*file_id, chain_file);
                if key.id != RELATED_FILE_ID {
                    self.wrote(key, len32(input), input, self.cut, seen, sink);
                    (
                        Waiting::Transceive {
                            file: key,
                            input: None,
                        },
                        None,
                    )
                } else {
                    let input = Some(Deferred {
                        length: len32(input),
                        data: deferred(input),
                        cut: self.cut,
                        client: *seen,
                    });
                    (Waiting::Transceive { file: key, input }, None)
                }
            }
            Body2::TreeDisconnect => {
                self.forget_tree((session, tree));
                return;
            }
            Body2::LogoffRequest => {
                let body = self.body(Type::Logoff, session);
                (
                    Waiting::Logoff,
                    Some(self.with_account(seen.activity(activity::Body::Smb(body)), session)),
                )
            }
            _ => (Waiting::Other, None),
        };
        self.wait(pdu.header.message_id, waiting, activity, sink);
    }

    fn smb2_response(
        &mut self,
        pdu: &smb2::Pdu<'_>,
        session: u64,
        chain_file: &mut Option<FileKey>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let header = &pdu.header;
        if header.status == NtStatus::PENDING {
            // An interim answer (async, or a server that left ASYNC_COMMAND out): the final
            // one follows with the same message id.
            return;
        }
        if header.command == Command::NEGOTIATE {
            if let Body2::NegotiateResponse { dialect, .. } = &pdu.body {
                self.version = u32::from(dialect.major());
            }
            let chosen = match &pdu.body {
                Body2::NegotiateResponse { dialect, .. } => dialect_text(*dialect),
                _ => "-".to_owned(),
            };
            self.answer_negotiate(chosen, header.status, seen, sink);
            return;
        }
        let Some(pending) = self.take(header.message_id) else {
            if awaits_answer(&pdu.body) {
                sink.counters.orphan_responses += 1;
            }
            return;
        };
        let status = header.status;
        match (pending.waiting, &pdu.body) {
            (
                Waiting::SessionSetup {
                    logon,
                    native_os,
                    carried,
                },
                body,
            ) => {
                let flags = match body {
                    Body2::SessionSetupResponse { session_flags, .. } => *session_flags,
                    _ => SessionFlags::default(),
                };
                let mut server = Vec::new();
                if let Body2::SessionSetupResponse {
                    security_buffer, ..
                } = body
                {
                    self.server_tokens(security_buffer, seen, &mut server, sink);
                }
                self.setup_answered(
                    header.session_id,
                    logon,
                    native_os,
                    carried,
                    pending.activity,
                    (
                        status,
                        flags.contains(SessionFlags::IS_GUEST),
                        flags.contains(SessionFlags::IS_NULL),
                        flags.contains(SessionFlags::ENCRYPT_DATA),
                    ),
                    seen,
                    sink,
                );
                sink.out.extend(server);
            }
            (Waiting::TreeConnect { share }, body) => {
                let share_type = match body {
                    Body2::TreeConnectResponse { share_type, .. } => *share_type,
                    _ => ShareType::UNKNOWN,
                };
                self.tree_answered(
                    session,
                    header.tree_id,
                    share,
                    share_type,
                    status,
                    pending.activity,
                    seen,
                    sink,
                );
            }
            (Waiting::Create { tree, name }, body) => {
                let response = match body {
                    Body2::CreateResponse {
                        file_id,
                        create_action,
                        ..
                    } => Some((*file_id, *create_action)),
                    _ => None,
                };
                let key = response.map(|(id, _)| FileKey {
                    session: tree.0,
                    tree: tree.1,
                    id,
                });
                if key.is_some() {
                    *chain_file = key;
                }
                self.create_answered(
                    key,
                    name,
                    None,
                    response.map_or(0, |(_, action)| action),
                    status,
                    pending.activity,
                    seen,
                    sink,
                );
            }
            (Waiting::Read { file }, Body2::ReadResponse { data_length, data }) => {
                let cut = self.cut;
                self.read(
                    related(file, *chain_file),
                    *data_length,
                    data,
                    cut,
                    seen,
                    sink,
                );
            }
            (
                Waiting::Write {
                    file,
                    length,
                    data,
                    cut,
                    client,
                },
                _,
            ) => {
                self.wrote(
                    related(file, *chain_file),
                    length,
                    &data,
                    cut,
                    &client,
                    sink,
                );
            }
            (Waiting::Transceive { file, input }, body) => {
                let file = related(file, *chain_file);
                if let Some(input) = input {
                    self.wrote(
                        file,
                        input.length,
                        &input.data,
                        input.cut,
                        &input.client,
                        sink,
                    );
                }
                if let Body2::IoctlResponse { output, .. } = body {
                    let cut = self.cut;
                    self.read(file, len32(output), output, cut, seen, sink);
                }
            }
            (Waiting::Close { file }, _) => {
                self.close_file(related(file, *chain_file), Some(status), seen, sink);
            }
            (Waiting::Logoff, _) => {
                if !status.is_error() {
                    self.forget_logon(session);
                }
                self.answered(pending.activity, status, seen, sink);
            }
            (_, _) => {}
        }
    }
}

// ---- SMB1 -----------------------------------------------------------------------------------

impl SmbSession {
    fn smb1(&mut self, message: &smb1::Message<'_>, seen: &Seen, sink: &mut Sink<'_>) {
        if self.version == 0 {
            self.version = 1;
        }
        let header = &message.header;
        let key = 1 << 63 | u64::from(header.pid) << 16 | u64::from(header.mid);
        let session = u64::from(header.uid);
        let tree = u32::from(header.tid);
        let anomalies = smb1_anomalies(&message.anomalies);
        if header.is_response() {
            let status = header.nt_status();
            for block in &message.commands {
                self.smb1_response(key, &block.body, header, status, seen, sink);
            }
            return;
        }
        for block in &message.commands {
            self.smb1_request(
                key,
                &block.body,
                session,
                tree,
                anomalies.clone(),
                seen,
                sink,
            );
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one command's context, read once"
    )]
    fn smb1_request(
        &mut self,
        key: u64,
        body: &Body1<'_>,
        session: u64,
        tree: u32,
        anomalies: Vec<String>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let fid_key = |fid: u16| FileKey {
            session,
            tree,
            id: FileId {
                persistent: 0,
                volatile: u64::from(fid),
            },
        };
        // An AndX chain has one mid for all its commands: each waits under its own key.
        let (waiting, activity, slot) =
            match body {
                Body1::NegotiateRequest { dialects } => {
                    let mut activity_body = self.body(Type::Negotiate, session);
                    activity_body.version = 1;
                    activity_body.dialects.clone_from(dialects);
                    activity_body.anomalies = anomalies;
                    self.wait_negotiate(
                        dialects.clone(),
                        seen.activity(activity::Body::Smb(activity_body)),
                        sink,
                    );
                    return;
                }
                Body1::SessionSetupRequest {
                    security_blob,
                    account,
                    primary_domain,
                    native_os,
                } => {
                    let (logon, carried) = match security_blob {
                        Some(blob) => self.tokens(blob, seen, sink),
                        None => (
                            Logon {
                                mechanism: if account.is_empty() {
                                    Mechanism::Anonymous
                                } else {
                                    Mechanism::Legacy
                                },
                                user: account.clone(),
                                domain: primary_domain.clone(),
                            },
                            Vec::new(),
                        ),
                    };
                    let mut activity_body = self.body(Type::SessionSetup, session);
                    activity_body.anomalies = anomalies;
                    activity_body.user.clone_from(&logon.user);
                    activity_body.domain.clone_from(&logon.domain);
                    activity_body.mechanism = logon.mechanism.into();
                    activity_body.native_os.clone_from(native_os);
                    (
                        Waiting::SessionSetup {
                            logon,
                            native_os: native_os.clone(),
                            carried,
                        },
                        Some(seen.activity(activity::Body::Smb(activity_body))),
                        0,
                    )
                }
                Body1::TreeConnectRequest { path, .. } => {
                    let mut activity_body = self.body(Type::TreeConnect, session);
                    activity_body.share.clone_from(path);
                    activity_body.anomalies = anomalies;
                    (
                        Waiting::TreeConnect {
                            share: path.clone(),
                        },
                        Some(self.with_account(
                            seen.activity(activity::Body::Smb(activity_body)),
                            session,
                        )),
                        1,
                    )
                }
                Body1::NtCreateRequest {
                    name,
                    desired_access,
                    create_disposition,
                    create_options,
                } => {
                    let name = name.trim_start_matches('\\').to_owned();
                    let mut activity_body = self.body(Type::Create, session);
                    self.describe_file(&mut activity_body, (session, tree), &name);
                    activity_body.desired_access = *desired_access;
                    activity_body.create_disposition = *create_disposition;
                    activity_body.create_options = *create_options;
                    activity_body.anomalies = anomalies;
                    (
                        Waiting::Create {
                            tree: (session, tree),
                            name,
                        },
                        Some(self.with_account(
                            seen.activity(activity::Body::Smb(activity_body)),
                            session,
                        )),
                        2,
                    )
                }
                Body1::CloseRequest { fid } => (
                    Waiting::Close {
                        file: fid_key(*fid),
                    },
                    None,
                    3,
                ),
                Body1::ReadRequest { fid, .. } => (
                    Waiting::Read {
                        file: fid_key(*fid),
                    },
                    None,
                    4,
                ),
                Body1::WriteRequest {
                    fid,
                    data_length,
                    data,
                } => {
                    self.wrote(fid_key(*fid), *data_length, data, self.cut, seen, sink);
                    return;
                }
                body @ Body1::TransactionRequest { data, .. } => {
                    let Some(fid) = body.transact_pipe_fid() else {
                        return;
                    };
                    let file = fid_key(fid);
                    self.wrote(file, len32(data), data, self.cut, seen, sink);
                    (Waiting::Transceive { file, input: None }, None, 5)
                }
                Body1::TreeDisconnect => {
                    self.forget_tree((session, tree));
                    return;
                }
                Body1::LogoffRequest => {
                    let activity_body = self.body(Type::Logoff, session);
                    (
                        Waiting::Logoff,
                        Some(self.with_account(
                            seen.activity(activity::Body::Smb(activity_body)),
                            session,
                        )),
                        6,
                    )
                }
                _ => return,
            };
        self.wait(key | slot << 48, waiting, activity, sink);
    }

    fn smb1_response(
        &mut self,
        key: u64,
        body: &Body1<'_>,
        header: &smb1::Header,
        status: NtStatus,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let session = u64::from(header.uid);
        if let Body1::NegotiateResponse { dialect_index, .. } = body {
            let index = *dialect_index;
            let chosen = self
                .negotiate
                .as_ref()
                .and_then(|pending| match &pending.waiting {
                    Waiting::Negotiate { offered } => offered.get(usize::from(index)).cloned(),
                    _ => None,
                })
                .unwrap_or_else(|| "-".to_owned());
            self.answer_negotiate(chosen, status, seen, sink);
            return;
        }
        // An error answers the whole chain: the first command waiting under this mid.
        let slots: &[u64] = match body {
            Body1::SessionSetupResponse { .. } => &[0],
            Body1::TreeConnectResponse { .. } => &[1],
            Body1::NtCreateResponse { .. } => &[2],
            Body1::CloseResponse => &[3],
            Body1::ReadResponse { .. } => &[4],
            Body1::TransactionResponse { .. } => &[5],
            Body1::LogoffResponse => &[6],
            Body1::Error => &[0, 1, 2, 3, 4, 5, 6],
            _ => return,
        };
        let Some(pending) = slots.iter().find_map(|slot| self.take(key | slot << 48)) else {
            // An error answers any command, tracked or not.
            if *body != Body1::Error {
                sink.counters.orphan_responses += 1;
            }
            return;
        };
        match (pending.waiting, body) {
            (
                Waiting::SessionSetup {
                    logon,
                    native_os,
                    carried,
                },
                body,
            ) => {
                let mut server = Vec::new();
                let mut guest = false;
                if let Body1::SessionSetupResponse {
                    action,
                    security_blob,
                    ..
                } = body
                {
                    guest = action & 1 != 0;
                    if let Some(blob) = security_blob {
                        self.server_tokens(blob, seen, &mut server, sink);
                    }
                }
                self.setup_answered(
                    session,
                    logon,
                    native_os,
                    carried,
                    pending.activity,
                    (status, guest, false, false),
                    seen,
                    sink,
                );
                sink.out.extend(server);
            }
            (Waiting::TreeConnect { share }, body) => {
                let share_type = match body {
                    Body1::TreeConnectResponse { service } => service_type(service),
                    _ => ShareType::UNKNOWN,
                };
                self.tree_answered(
                    session,
                    u32::from(header.tid),
                    share,
                    share_type,
                    status,
                    pending.activity,
                    seen,
                    sink,
                );
            }
            (Waiting::Create { tree, name }, body) => {
                let response = match body {
                    Body1::NtCreateResponse {
                        fid,
                        create_action,
                        resource_type,
                        ..
                    } => Some((*fid, *create_action, matches!(resource_type, 2 | 3))),
                    _ => None,
                };
                let key = response.map(|(fid, _, _)| FileKey {
                    session: tree.0,
                    tree: tree.1,
                    id: FileId {
                        persistent: 0,
                        volatile: u64::from(fid),
                    },
                });
                self.create_answered(
                    key,
                    name,
                    response.map(|(_, _, pipe)| pipe),
                    response.map_or(0, |(_, action, _)| action),
                    status,
                    pending.activity,
                    seen,
                    sink,
                );
            }
            (Waiting::Read { file }, Body1::ReadResponse { data_length, data }) => {
                self.read(file, *data_length, data, self.cut, seen, sink);
            }
            (Waiting::Transceive { file, .. }, Body1::TransactionResponse { data }) => {
                self.read(file, len32(data), data, self.cut, seen, sink);
            }
            (Waiting::Close { file }, _) => self.close_file(file, Some(status), seen, sink),
            (Waiting::Logoff, _) => {
                if !status.is_error() {
                    self.forget_logon(session);
                }
                self.answered(pending.activity, status, seen, sink);
            }
            (_, _) => {}
        }
    }
}

fn service_type(service: &str) -> ShareType {
    match service {
        "IPC" => ShareType::PIPE,
        "A:" => ShareType::DISK,
        "LPT1:" => ShareType::PRINT,
        _ => ShareType::UNKNOWN,
    }
}

// ---- what both versions share -----------------------------------------------------------

impl SmbSession {
    fn body(&self, kind: Type, session: u64) -> SmbActivity {
        SmbActivity {
            r#type: kind.into(),
            version: if self.version == 0 { 2 } else { self.version },
            session_id: session,
            ..SmbActivity::default()
        }
    }

    fn with_account(&self, mut activity: Activity, session: u64) -> Activity {
        if let Some(logon) = self.logons.get(&session)
            && !logon.user.is_empty()
        {
            activity.account = Some(Account {
                domain: logon.domain.clone(),
                name: logon.user.clone(),
                sid: String::new(),
                tags: Vec::new(),
            });
        }
        activity
    }

    fn describe_file(&self, body: &mut SmbActivity, tree: (u64, u32), name: &str) {
        body.file_name = name.to_owned();
        if let Some(tree) = self.trees.get(&tree) {
            body.share.clone_from(&tree.share);
            body.share_type = share_type_value(tree.share_type).into();
            body.is_pipe = tree.is_pipe();
        }
        body.path = join_path(&body.share, name);
    }

    /// The activities of a session setup's token, and what they say about the logon.
    fn tokens(&self, token: &[u8], seen: &Seen, sink: &mut Sink<'_>) -> (Logon, Vec<Activity>) {
        let mut carried = Vec::new();
        if !gss::token(token, seen, Carrier::Smb, &mut carried) {
            sink.counters.unreadable_tokens += 1;
        }
        let mut logon = Logon::default();
        for activity in &carried {
            match &activity.body {
                Some(activity::Body::Ntlm(ntlm)) => {
                    logon.mechanism = Mechanism::Ntlm;
                    if ntlm.r#type
                        == i32::from(dcwatch_proto::v1::ntlm_activity::Type::Authenticate)
                    {
                        logon.user.clone_from(&ntlm.user);
                        logon.domain.clone_from(&ntlm.domain);
                        if ntlm.user.is_empty() {
                            logon.mechanism = Mechanism::Anonymous;
                        }
                    }
                }
                Some(activity::Body::Kerberos(_)) => logon.mechanism = Mechanism::Kerberos,
                _ => {}
            }
        }
        (logon, carried)
    }

    fn server_tokens(
        &self,
        token: &[u8],
        seen: &Seen,
        out: &mut Vec<Activity>,
        sink: &mut Sink<'_>,
    ) {
        if !gss::token(token, seen, Carrier::Smb, out) {
            sink.counters.unreadable_tokens += 1;
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one answered setup leg, read once"
    )]
    fn setup_answered(
        &mut self,
        session: u64,
        mut logon: Logon,
        native_os: String,
        mut carried: Vec<Activity>,
        activity: Option<Activity>,
        (status, guest, null, encrypt): (NtStatus, bool, bool, bool),
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        // What earlier legs learnt (an NTLM NEGOTIATE says NTLM before the AUTHENTICATE names
        // the user).
        if let Some(earlier) = self.setups.remove(&session) {
            if logon.mechanism == Mechanism::Unspecified {
                logon.mechanism = earlier.mechanism;
            }
            self.release_entry(earlier.user.len() + earlier.domain.len());
            if logon.user.is_empty() {
                logon.user = earlier.user;
                logon.domain = earlier.domain;
            }
        }
        let step = status == NtStatus::MORE_PROCESSING_REQUIRED;
        let mut result = outcome(!status.is_error(), status.0, status.name());
        if step {
            result.status = Status::Unspecified.into();
        }
        let time = timestamp(seen.time_ns);
        for token in &mut carried {
            token.outcome = Some(result.clone());
            token.time = Some(time);
        }
        sink.out.extend(carried);
        if step {
            if self.setups.len() < MAX_SESSIONS_PER_FLOW
                && self.charge_entry(logon.user.len() + logon.domain.len())
            {
                self.setups.insert(session, logon);
            }
            return;
        }
        if guest {
            logon.mechanism = Mechanism::Guest;
        } else if null {
            logon.mechanism = Mechanism::Anonymous;
        }
        let Some(mut activity) = activity else {
            return;
        };
        if let Some(activity::Body::Smb(body)) = &mut activity.body {
            body.session_id = session;
            body.mechanism = logon.mechanism.into();
            body.user.clone_from(&logon.user);
            body.domain.clone_from(&logon.domain);
            body.guest = guest;
            body.null_session = null;
            body.encrypt_data = encrypt;
            body.native_os = native_os;
        }
        if !logon.user.is_empty() {
            activity.account = Some(Account {
                domain: logon.domain.clone(),
                name: logon.user.clone(),
                sid: String::new(),
                tags: Vec::new(),
            });
        }
        if !status.is_error() {
            // A logon replaced gives its charge back before the new one is charged.
            let charge = logon.user.len() + logon.domain.len();
            let replaced = self.logons.remove(&session);
            if let Some(old) = &replaced {
                self.release_entry(old.user.len() + old.domain.len());
            }
            if (replaced.is_some() || self.logons.len() < MAX_SESSIONS_PER_FLOW)
                && self.charge_entry(charge)
            {
                self.logons.insert(session, logon);
            }
        }
        sink.out.push(finish(activity, status, seen));
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one answered tree connect, read once"
    )]
    fn tree_answered(
        &mut self,
        session: u64,
        tree_id: u32,
        share: String,
        share_type: ShareType,
        status: NtStatus,
        activity: Option<Activity>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        if !status.is_error() {
            // A tree replaced gives its charge back before the new one is charged.
            let replaced = self.trees.remove(&(session, tree_id));
            if let Some(old) = &replaced {
                self.release_entry(old.share.len());
            }
            if (replaced.is_some() || self.trees.len() < MAX_TREES_PER_FLOW)
                && self.charge_entry(share.len())
            {
                self.trees
                    .insert((session, tree_id), Tree { share, share_type });
            }
        }
        if let Some(mut activity) = activity {
            if let Some(activity::Body::Smb(body)) = &mut activity.body {
                body.share_type = share_type_value(share_type).into();
                body.is_pipe = self
                    .trees
                    .get(&(session, tree_id))
                    .is_some_and(Tree::is_pipe);
            }
            sink.out.push(finish(activity, status, seen));
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one answered create, read once")]
    fn create_answered(
        &mut self,
        key: Option<FileKey>,
        name: String,
        pipe: Option<bool>,
        create_action: u32,
        status: NtStatus,
        activity: Option<Activity>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let mut is_pipe = false;
        if let Some(key) = key
            && !status.is_error()
        {
            let file = self.new_file(key, name, pipe, swapped(seen));
            is_pipe = file.is_pipe;
            self.insert_file(key, file, sink);
        }
        if let Some(mut activity) = activity {
            if let Some(activity::Body::Smb(body)) = &mut activity.body {
                body.create_action = create_action;
                body.is_pipe |= is_pipe;
            }
            sink.out.push(finish(activity, status, seen));
        }
    }

    /// A file entry; `client` is a message of the client's (its endpoints are the activity's).
    fn new_file(&self, key: FileKey, name: String, pipe: Option<bool>, client: Seen) -> File {
        let tree = self.trees.get(&(key.session, key.tree));
        let is_pipe = pipe.unwrap_or(false) || tree.is_some_and(Tree::is_pipe);
        File {
            session: key.session,
            share: tree.map(|tree| tree.share.clone()).unwrap_or_default(),
            share_type: tree.map_or(ShareType::UNKNOWN, |tree| tree.share_type),
            name,
            is_pipe,
            bytes_read: 0,
            bytes_written: 0,
            pipe: is_pipe.then(|| RpcPipe::new(self.budget.clone())),
            charge: 0,
            seen: client,
        }
    }

    fn insert_file(&mut self, key: FileKey, mut file: File, sink: &mut Sink<'_>) {
        if let Some(previous) = self.files.remove(&key) {
            // The server reused an id we still held: the old file is gone.
            self.budget.release(previous.charge);
            self.report_close(previous, None, false, file.seen, sink);
        }
        let charge = ENTRY_OVERHEAD + file.share.len() + file.name.len();
        if self.files.len() >= MAX_FILES_PER_FLOW || !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            return;
        }
        file.charge = charge;
        self.files.insert(key, file);
    }

    /// The file a read or write names: known, or (picked up mid-stream) a nameless entry.
    fn file(&mut self, key: FileKey, client: Seen, sink: &mut Sink<'_>) -> Option<&mut File> {
        if key.id == RELATED_FILE_ID {
            // A related command whose chain's CREATE failed: there is no file.
            return None;
        }
        if !self.files.contains_key(&key) {
            let file = self.new_file(key, String::new(), None, client);
            self.insert_file(key, file, sink);
        }
        self.files.get_mut(&key)
    }

    /// `length` bytes written to a file, of which `data` arrived (`cut`: the message cut it).
    fn wrote(
        &mut self,
        key: FileKey,
        length: u32,
        data: &[u8],
        cut: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(file) = self.file(key, *seen, sink) else {
            return;
        };
        file.bytes_written = file.bytes_written.saturating_add(u64::from(length));
        if let Some(pipe) = &mut file.pipe {
            pipe_data(pipe, Direction::ToServer, (length, data, cut), seen, sink);
        }
    }

    /// `length` bytes read from a file, of which `data` arrived (`cut`: the message cut it).
    fn read(
        &mut self,
        key: FileKey,
        length: u32,
        data: &[u8],
        cut: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(file) = self.file(key, swapped(seen), sink) else {
            return;
        };
        file.bytes_read = file.bytes_read.saturating_add(u64::from(length));
        if let Some(pipe) = &mut file.pipe {
            pipe_data(pipe, Direction::ToClient, (length, data, cut), seen, sink);
        }
    }

    /// A request that moved pipe bytes will not be followed up (not awaited, or given up): the
    /// pipes it concerns lose what it wrote (a related write still held) or what its answer
    /// would have read.
    fn pipe_bytes_lost(&mut self, waiting: &Waiting, sink: &mut Sink<'_>) {
        let (file, directions): (FileKey, &[Direction]) = match waiting {
            Waiting::Read { file }
            | Waiting::Transceive {
                file, input: None, ..
            } => (*file, &[Direction::ToClient]),
            Waiting::Transceive {
                file,
                input: Some(_),
            } => (*file, &[Direction::ToServer, Direction::ToClient]),
            Waiting::Write { file, .. } => (*file, &[Direction::ToServer]),
            _ => return,
        };
        let pipe = match self.files.get_mut(&file) {
            Some(File {
                pipe: Some(pipe), ..
            }) => pipe,
            _ => return,
        };
        for direction in directions {
            sink.counters.pipe_gaps += 1;
            pipe.gap(*direction, sink);
        }
    }

    fn close_file(
        &mut self,
        key: FileKey,
        status: Option<NtStatus>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        if key.id == RELATED_FILE_ID {
            // A related close whose chain's CREATE failed: nothing was open.
            return;
        }
        let Some(file) = self.files.remove(&key) else {
            // Opened before the capture: nothing known to report but the close itself.
            let mut body = self.body(Type::Close, key.session);
            body.answered = status.is_some();
            let client = swapped(seen);
            let activity =
                self.with_account(client.activity(activity::Body::Smb(body)), key.session);
            sink.out.push(match status {
                Some(status) => finish(activity, status, seen),
                None => activity,
            });
            return;
        };
        self.budget.release(file.charge);
        let at = Seen {
            time_ns: seen.time_ns,
            ..file.seen
        };
        let session = key.session;
        let mut activities = Vec::new();
        let mut inner = Sink {
            out: &mut activities,
            counters: sink.counters,
        };
        self.report_close(file, status, false, at, &mut inner);
        for mut activity in activities {
            if matches!(&activity.body, Some(activity::Body::Smb(_))) {
                activity = self.with_account(activity, session);
            }
            sink.out.push(activity);
        }
    }

    /// The CLOSE activity of a file, and its pipe closed.
    fn report_close(
        &self,
        file: File,
        status: Option<NtStatus>,
        open_at_end: bool,
        at: Seen,
        sink: &mut Sink<'_>,
    ) {
        if let Some(pipe) = file.pipe {
            pipe.close(sink.counters, sink.out);
        }
        let mut body = self.body(Type::Close, file.session);
        body.share = file.share.clone();
        body.share_type = share_type_value(file.share_type).into();
        body.path = join_path(&file.share, &file.name);
        body.file_name = file.name;
        body.is_pipe = file.is_pipe;
        body.bytes_read = file.bytes_read;
        body.bytes_written = file.bytes_written;
        body.open_at_end = open_at_end;
        body.answered = status.is_some();
        let activity = at.activity(activity::Body::Smb(body));
        sink.out.push(match status {
            Some(status) => with_outcome(activity, status),
            None => activity,
        });
    }

    /// One transform message; `client` has the client's endpoints as source.
    fn encrypted(&mut self, session_id: u64, size: u32, client: &Seen, sink: &mut Sink<'_>) {
        let encrypted = &mut self.encrypted;
        if encrypted.messages == 0 {
            encrypted.session_id = session_id;
        }
        encrypted.messages = encrypted.messages.saturating_add(1);
        encrypted.bytes = encrypted.bytes.saturating_add(u64::from(size));
        encrypted.seen.get_or_insert(*client);
        if encrypted.messages >= ENCRYPTED_REPORT_EVERY {
            self.report_encrypted(client.time_ns, sink.out);
        }
    }

    fn report_encrypted(&mut self, time_ns: u64, out: &mut Vec<Activity>) {
        let encrypted = std::mem::take(&mut self.encrypted);
        let Some(seen) = encrypted.seen else {
            return;
        };
        let mut body = self.body(Type::Encrypted, encrypted.session_id);
        body.version = 3;
        body.encrypted_messages = encrypted.messages;
        body.encrypted_bytes = encrypted.bytes;
        let activity = Seen { time_ns, ..seen }.activity(activity::Body::Smb(body));
        out.push(self.with_account(activity, encrypted.session_id));
    }

    fn wait_negotiate(&mut self, offered: Vec<String>, activity: Activity, sink: &mut Sink<'_>) {
        if let Some(previous) = self.negotiate.take() {
            self.budget.release(previous.charge);
            sink.out.extend(previous.activity);
        }
        let offered_len: usize = offered.iter().map(String::capacity).sum();
        let charge = activity.encoded_len() + ENTRY_OVERHEAD + offered_len;
        if !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            sink.out.push(activity);
            return;
        }
        self.negotiate = Some(Pending {
            waiting: Waiting::Negotiate { offered },
            activity: Some(activity),
            charge,
        });
    }

    fn answer_negotiate(
        &mut self,
        chosen: String,
        status: NtStatus,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(pending) = self.negotiate.take() else {
            sink.counters.orphan_responses += 1;
            return;
        };
        self.budget.release(pending.charge);
        if let Some(mut activity) = pending.activity {
            if let Some(activity::Body::Smb(body)) = &mut activity.body {
                body.dialect = chosen;
                if self.version != 0 {
                    body.version = self.version;
                }
            }
            sink.out.push(finish(activity, status, seen));
        }
    }

    fn wait(&mut self, id: u64, waiting: Waiting, activity: Option<Activity>, sink: &mut Sink<'_>) {
        if matches!(waiting, Waiting::Other) {
            return;
        }
        if self.pending.len() >= MAX_PENDING_PER_FLOW
            && let Some(oldest) = self.pending.keys().min().copied()
            && let Some(evicted) = self.take(oldest)
        {
            sink.counters.requests_not_awaited += 1;
            self.pipe_bytes_lost(&evicted.waiting, sink);
            self.give_up(evicted, sink.out);
        }
        let carried: usize = match &waiting {
            Waiting::SessionSetup { carried, .. } => {
                carried.iter().map(Activity::encoded_len).sum()
            }
            Waiting::Write { data, .. }
            | Waiting::Transceive {
                input: Some(Deferred { data, .. }),
                ..
            } => data.capacity(),
            Waiting::Create { name, .. } => name.capacity(),
            Waiting::TreeConnect { share } => share.capacity(),
            _ => 0,
        };
        let charge = ENTRY_OVERHEAD + carried + activity.as_ref().map_or(0, Activity::encoded_len);
        let pending = Pending {
            waiting,
            activity,
            charge,
        };
        if !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            self.pipe_bytes_lost(&pending.waiting, sink);
            self.give_up(pending, sink.out);
            return;
        }
        if let Some(replaced) = self.pending.insert(id, pending) {
            self.budget.release(replaced.charge);
            self.pipe_bytes_lost(&replaced.waiting, sink);
            self.give_up(replaced, sink.out);
        }
    }

    fn take(&mut self, id: u64) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.budget.release(pending.charge);
        Some(pending)
    }

    /// A request reported without its answer.
    fn give_up(&self, pending: Pending, out: &mut Vec<Activity>) {
        if let Waiting::SessionSetup { carried, .. } = pending.waiting {
            out.extend(carried);
        }
        out.extend(pending.activity);
    }

    fn answered(
        &self,
        activity: Option<Activity>,
        status: NtStatus,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        if let Some(activity) = activity {
            sink.out.push(finish(activity, status, seen));
        }
    }

    fn forget_logon(&mut self, session: u64) {
        if let Some(logon) = self.logons.remove(&session) {
            self.release_entry(logon.user.len() + logon.domain.len());
        }
    }

    fn forget_tree(&mut self, tree: (u64, u32)) {
        if let Some(gone) = self.trees.remove(&tree) {
            self.release_entry(gone.share.len());
        }
    }

    fn charge_entry(&mut self, strings: usize) -> bool {
        let charge = ENTRY_OVERHEAD + strings;
        if self.budget.try_reserve(charge) {
            self.charged += charge;
            true
        } else {
            false
        }
    }

    fn release_entry(&mut self, strings: usize) {
        let charge = (ENTRY_OVERHEAD + strings).min(self.charged);
        self.charged -= charge;
        self.budget.release(charge);
    }

    /// Gaps seen since the last PDU, told to the pipes (which need a sink).
    fn flush_gaps(&mut self, sink: &mut Sink<'_>) {
        for (index, direction) in [Direction::ToServer, Direction::ToClient]
            .into_iter()
            .enumerate()
        {
            if std::mem::take(&mut self.gapped[index]) {
                for file in self.files.values_mut() {
                    if let Some(pipe) = &mut file.pipe {
                        pipe.gap(direction, sink);
                    }
                }
            }
        }
    }

    /// The connection is gone: requests never answered are reported as such (at the time of
    /// the last message, so a flow's activities stay in time order), then files still open,
    /// then the encrypted count.
    pub fn close(mut self, counters: &mut DissectCounters, out: &mut Vec<Activity>) {
        let time_ns = self.last_seen.map_or(0, |seen| seen.time_ns);
        let restamp = |mut activity: Activity| {
            if self.last_seen.is_some() {
                activity.time = Some(timestamp(time_ns));
            }
            activity
        };
        let mut unanswered = Vec::new();
        if let Some(pending) = self.negotiate.take() {
            self.budget.release(pending.charge);
            self.give_up(pending, &mut unanswered);
        }
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, pending) in pending {
            self.budget.release(pending.charge);
            self.give_up(pending, &mut unanswered);
        }
        out.extend(unanswered.into_iter().map(restamp));
        let mut files: Vec<_> = self.files.drain().collect();
        files.sort_by_key(|(key, _)| key.id);
        for (key, file) in files {
            self.budget.release(file.charge);
            let at = Seen {
                time_ns,
                ..file.seen
            };
            let mut activities = Vec::new();
            let mut sink = Sink {
                out: &mut activities,
                counters,
            };
            self.report_close(file, None, true, at, &mut sink);
            for activity in activities {
                out.push(if matches!(&activity.body, Some(activity::Body::Smb(_))) {
                    self.with_account(activity, key.session)
                } else {
                    activity
                });
            }
        }
        if self.encrypted.messages > 0 {
            self.report_encrypted(time_ns, out);
        }
    }
}

/// Bytes of a pipe: `length` declared, `data` what arrived, `cut` whether the message cut them.
/// What arrived from the start goes to the pipe; anything missing is a gap there, so the
/// DCE-RPC stream in the pipe does not take the next bytes for the rest of a PDU.
fn pipe_data(
    pipe: &mut RpcPipe,
    direction: Direction,
    (length, data, cut): (u32, &[u8], bool),
    seen: &Seen,
    sink: &mut Sink<'_>,
) {
    pipe.data(direction, data, seen, sink);
    if cut || data.len() < usize::try_from(length).unwrap_or(usize::MAX) {
        sink.counters.pipe_gaps += 1;
        pipe.gap(direction, sink);
    }
}

/// A copy of a related command's data, at most [`MAX_DEFERRED_BYTES`].
fn deferred(data: &[u8]) -> Vec<u8> {
    data.get(..MAX_DEFERRED_BYTES).unwrap_or(data).to_vec()
}

/// The file a related command meant: the one its chain's CREATE opened.
fn related(file: FileKey, chain_file: Option<FileKey>) -> FileKey {
    match chain_file {
        Some(opened) if file.id == RELATED_FILE_ID => opened,
        _ => file,
    }
}

/// Whether an SMB2 answer is one whose request the session keeps (so that not finding it means
/// the request was not seen): others (QUERY_INFO, a plain WRITE, ...) never wait.
fn awaits_answer(body: &Body2<'_>) -> bool {
    match body {
        Body2::NegotiateResponse { .. }
        | Body2::SessionSetupResponse { .. }
        | Body2::TreeConnectResponse { .. }
        | Body2::CreateResponse { .. }
        | Body2::CloseResponse
        | Body2::ReadResponse { .. }
        | Body2::LogoffResponse => true,
        Body2::IoctlResponse { ctl_code, .. } => *ctl_code == CtlCode::PIPE_TRANSCEIVE,
        _ => false,
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

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::outcome::Status;

    use super::*;
    use crate::dissect::stream::Duplex;

    const SUCCESS: u32 = 0;

    /// One SMB2 command, header and body, unframed.
    fn command(
        command: u16,
        message_id: u64,
        status: Option<u32>,
        tree: u32,
        body: &[u8],
    ) -> Vec<u8> {
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

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

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
}
