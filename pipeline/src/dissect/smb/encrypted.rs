//! Encrypted (SMB3 transform) messages: counted, one activity per connection.

use super::{Activity, ENCRYPTED_REPORT_EVERY, Seen, Sink, SmbSession, Type, activity};

impl SmbSession {
    /// One transform message; `client` has the client's endpoints as source.
    pub(super) fn encrypted(
        &mut self,
        session_id: u64,
        size: u32,
        client: &Seen,
        sink: &mut Sink<'_>,
    ) {
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

    pub(super) fn report_encrypted(&mut self, time_ns: u64, out: &mut Vec<Activity>) {
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
}
