//! DCE-RPC, connection-oriented (C706 chapter 12, MS-RPCE), over TCP and over SMB named pipes.
//!
//! SCAFFOLD: the interface the SMB session uses for named pipes; the DCE-RPC work fills it in.

use dcwatch_proto::v1::Activity;

use super::{DissectCounters, stream::Sink};
use crate::{
    activity::Seen,
    flow::{Direction, MemoryBudget},
};

/// One DCE-RPC association carried by an SMB named pipe (an open file on IPC$): the bytes
/// written to it and read from it, in each direction, are a stream of DCE-RPC PDUs.
#[derive(Debug)]
pub struct RpcPipe {
    budget: MemoryBudget,
}

impl RpcPipe {
    pub fn new(budget: MemoryBudget) -> Self {
        Self { budget }
    }

    /// Bytes written to the pipe (`ToServer`) or read from it (`ToClient`), in order: whole PDUs,
    /// several, or part of one.
    pub fn data(&mut self, direction: Direction, bytes: &[u8], seen: &Seen, sink: &mut Sink<'_>) {
        let _ = (direction, bytes, seen, sink, &self.budget);
    }

    /// Bytes of the pipe were lost in this direction (a read or write the sensor did not see).
    pub fn gap(&mut self, direction: Direction, sink: &mut Sink<'_>) {
        let _ = (direction, sink);
    }

    /// The pipe was closed, or its SMB connection ended.
    pub fn close(self, counters: &mut DissectCounters, out: &mut Vec<Activity>) {
        let _ = (counters, out);
    }
}
