//! SMB 2/3 messages: requests remembered, answers matched, compounded chains followed.

use super::{
    Body2, Command, CtlCode, Deferred, Direction, FileId, FileKey, NtStatus, RELATED_FILE_ID, Seen,
    SessionFlags, ShareType, Sink, SmbSession, Type, Waiting, activity, dialect_text, len32,
    pipe::deferred, smb2, smb2_anomalies,
};

impl SmbSession {
    pub(super) fn smb2(
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
            if header.flags.contains(smb2::Flags::RELATED_OPERATIONS) {
                if header.session_id != u64::MAX {
                    session = header.session_id;
                }
                if header.tree_id != u32::MAX {
                    tree = header.tree_id;
                }
            } else {
                session = header.session_id;
                tree = header.tree_id;
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
    pub(super) fn smb2_request(
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
                if key.id == RELATED_FILE_ID {
                    let input = Some(Deferred {
                        length: len32(input),
                        data: deferred(input),
                        cut: self.cut,
                        client: *seen,
                    });
                    (Waiting::Transceive { file: key, input }, None)
                } else {
                    self.wrote(key, len32(input), input, self.cut, seen, sink);
                    (
                        Waiting::Transceive {
                            file: key,
                            input: None,
                        },
                        None,
                    )
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

    pub(super) fn smb2_response(
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

/// The file a related command meant: the one its chain's CREATE opened.
pub(super) fn related(file: FileKey, chain_file: Option<FileKey>) -> FileKey {
    match chain_file {
        Some(opened) if file.id == RELATED_FILE_ID => opened,
        _ => file,
    }
}

/// Whether an SMB2 answer is one whose request the session keeps (so that not finding it means
/// the request was not seen): others (QUERY_INFO, a plain WRITE, ...) never wait.
pub(super) fn awaits_answer(body: &Body2<'_>) -> bool {
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
