//! SMB1 messages, AndX chains included.

use super::{
    Body1, FileId, FileKey, Logon, Mechanism, NtStatus, Seen, ShareType, Sink, SmbSession, Type,
    Waiting, activity, len32, smb1, smb1_anomalies,
};

impl SmbSession {
    pub(super) fn smb1(&mut self, message: &smb1::Message<'_>, seen: &Seen, sink: &mut Sink<'_>) {
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
    pub(super) fn smb1_request(
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

    pub(super) fn smb1_response(
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

pub(super) fn service_type(service: &str) -> ShareType {
    match service {
        "IPC" => ShareType::PIPE,
        "A:" => ShareType::DISK,
        "LPT1:" => ShareType::PRINT,
        _ => ShareType::UNKNOWN,
    }
}
