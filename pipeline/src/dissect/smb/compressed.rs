//! SMB2 compressed messages (SMB 3.1.1, [MS-SMB2] 2.2.42): each compression transform header is
//! checked against its message. One that contradicts it (CVE-2020-0796, SMBGhost) is always
//! reported; otherwise the first of a connection is, so that compression in use is visible
//! without an activity per message.

use super::{Seen, Sink, SmbSession, Type, activity, smb2};

impl SmbSession {
    /// One compressed message; `client` has the client's endpoints as source.
    pub(super) fn compressed(
        &mut self,
        header: &smb2::CompressionHeader,
        client: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let overflow = header.overflows();
        if !overflow && self.compression_reported {
            return;
        }
        self.compression_reported = true;
        let mut body = self.body(Type::Compressed, 0);
        body.version = 3;
        body.compressed_original_size = header.original_size;
        body.compressed_offset = header.offset_or_length;
        body.compressed_payload_len = header.payload_len;
        body.compression_overflow = overflow;
        if overflow {
            body.anomalies.push("compression_overflow".to_owned());
        }
        sink.out.push(client.activity(activity::Body::Smb(body)));
    }
}
