//! The tree and file tables: shares connected, files opened with their read/write volume,
//! and the memory each entry is charged.

use super::{
    Activity, Direction, ENTRY_OVERHEAD, File, FileKey, Framing, MAX_FILES_PER_FLOW,
    MAX_TREES_PER_FLOW, NtStatus, RELATED_FILE_ID, RpcPipe, Seen, ShareType, Sink, SmbActivity,
    SmbSession, Start, Tree, Type, activity, admin_share, executable, finish, join_path,
    pipe::pipe_data, share_type_value, swapped, with_outcome,
};

impl SmbSession {
    pub(super) fn body(&self, kind: Type, session: u64) -> SmbActivity {
        SmbActivity {
            r#type: kind.into(),
            version: if self.version == 0 { 2 } else { self.version },
            session_id: session,
            ..SmbActivity::default()
        }
    }

    pub(super) fn describe_file(&self, body: &mut SmbActivity, tree: (u64, u32), name: &str) {
        body.file_name = name.to_owned();
        if let Some(tree) = self.trees.get(&tree) {
            body.share.clone_from(&tree.share);
            body.share_type = share_type_value(tree.share_type).into();
            body.is_pipe = tree.is_pipe();
        }
        body.path = join_path(&body.share, name);
        body.admin_share = admin_share(&body.share);
        body.executable = executable(name);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one answered tree connect, read once"
    )]
    pub(super) fn tree_answered(
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
                body.admin_share = admin_share(&body.share);
                body.is_pipe = self
                    .trees
                    .get(&(session, tree_id))
                    .is_some_and(Tree::is_pipe);
            }
            sink.out.push(finish(activity, status, seen));
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one answered create, read once")]
    pub(super) fn create_answered(
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
    pub(super) fn new_file(
        &self,
        key: FileKey,
        name: String,
        pipe: Option<bool>,
        client: Seen,
    ) -> File {
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

    pub(super) fn insert_file(&mut self, key: FileKey, mut file: File, sink: &mut Sink<'_>) {
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
    pub(super) fn file(
        &mut self,
        key: FileKey,
        client: Seen,
        sink: &mut Sink<'_>,
    ) -> Option<&mut File> {
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
    pub(super) fn wrote(
        &mut self,
        key: FileKey,
        length: u32,
        data: &[u8],
        cut: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let budget = self.budget.clone();
        let Some(file) = self.file(key, *seen, sink) else {
            return;
        };
        file.bytes_written = file.bytes_written.saturating_add(u64::from(length));
        // A file on a tree whose connection was not seen (a connection picked up mid-stream)
        // is a named pipe when what is written to it is DCE-RPC: a PDU header that passes the
        // strict start test and frames the whole write.
        if file.pipe.is_none()
            && file.share_type == ShareType::UNKNOWN
            && file.share.is_empty()
            && starts_rpc(data)
        {
            file.is_pipe = true;
            file.pipe = Some(RpcPipe::new(budget));
            sink.counters.rpc_found_by_content += 1;
        }
        if let Some(pipe) = &mut file.pipe {
            pipe_data(pipe, Direction::ToServer, (length, data, cut), seen, sink);
        }
    }

    /// `length` bytes read from a file, of which `data` arrived (`cut`: the message cut it).
    pub(super) fn read(
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

    pub(super) fn close_file(
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
            announced: sink.announced,
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
    pub(super) fn report_close(
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
        body.admin_share = admin_share(&file.share);
        body.executable = executable(&file.name);
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

    pub(super) fn forget_tree(&mut self, tree: (u64, u32)) {
        if let Some(gone) = self.trees.remove(&tree) {
            self.release_entry(gone.share.len());
        }
    }

    pub(super) fn charge_entry(&mut self, strings: usize) -> bool {
        let charge = ENTRY_OVERHEAD + strings;
        if self.budget.try_reserve(charge) {
            self.charged += charge;
            true
        } else {
            false
        }
    }

    pub(super) fn release_entry(&mut self, strings: usize) {
        let charge = (ENTRY_OVERHEAD + strings).min(self.charged);
        self.charged -= charge;
        self.budget.release(charge);
    }
}

/// Whether `data` is one or more whole DCE-RPC PDUs, each passing the strict start test.
fn starts_rpc(data: &[u8]) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        if dcwatch_parsers::dcerpc::is_pdu_start(rest) != Start::Yes {
            return false;
        }
        match dcwatch_parsers::dcerpc::frame(rest) {
            Framing::Pdu(len) if len <= rest.len() => rest = &rest[len..],
            _ => return false,
        }
    }
    data.len() >= dcwatch_parsers::dcerpc::HEADER_LEN
}
