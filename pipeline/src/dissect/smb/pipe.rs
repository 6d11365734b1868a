//! The bridge from named pipes to DCE-RPC: pipe bytes handed over, and gaps where they were lost.

use super::{
    Direction, File, FileKey, MAX_DEFERRED_BYTES, RpcPipe, Seen, Sink, SmbSession, Waiting,
};

impl SmbSession {
    /// A request that moved pipe bytes will not be followed up (not awaited, or given up): the
    /// pipes it concerns lose what it wrote (a related write still held) or what its answer
    /// would have read.
    pub(super) fn pipe_bytes_lost(&mut self, waiting: &Waiting, sink: &mut Sink<'_>) {
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
        let Some(File {
            pipe: Some(pipe), ..
        }) = self.files.get_mut(&file)
        else {
            return;
        };
        for direction in directions {
            sink.counters.pipe_gaps += 1;
            pipe.gap(*direction, sink);
        }
    }

    /// Gaps seen since the last PDU, told to the pipes (which need a sink).
    pub(super) fn flush_gaps(&mut self, sink: &mut Sink<'_>) {
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
}

/// Bytes of a pipe: `length` declared, `data` what arrived, `cut` whether the message cut them.
/// What arrived from the start goes to the pipe; anything missing is a gap there, so the
/// DCE-RPC stream in the pipe does not take the next bytes for the rest of a PDU.
pub(super) fn pipe_data(
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
pub(super) fn deferred(data: &[u8]) -> Vec<u8> {
    data.get(..MAX_DEFERRED_BYTES).unwrap_or(data).to_vec()
}
