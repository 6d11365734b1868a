use std::os::fd::{AsRawFd, RawFd};

use aya::maps::{MapData, RingBuf};
use sensor_common::RecordHeader;
use tokio::io::unix::AsyncFd;

use super::CaptureError;
use dcwatch_pipeline::frame::{Frame, WallClock};

/// A ring-buffer record that does not hold what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring-buffer record of {len} bytes is shorter than its header says")]
pub struct InvalidRecord {
    pub len: usize,
}

/// The ring buffer the program writes frames into, read synchronously.
pub struct FrameRing {
    ring: RingBuf<MapData>,
    clock: WallClock,
}

impl FrameRing {
    pub(super) fn new(ring: RingBuf<MapData>) -> Self {
        Self {
            ring,
            clock: WallClock::now(),
        }
    }

    /// Hands every record in the ring to `handle`, oldest first; returns how many there were.
    pub fn drain(&mut self, mut handle: impl FnMut(Result<Frame<'_>, InvalidRecord>)) -> u64 {
        let mut records = 0;
        while let Some(record) = self.ring.next() {
            records += 1;
            handle(parse_record(&record, &self.clock));
        }
        records
    }
}

fn parse_record<'a>(record: &'a [u8], clock: &WallClock) -> Result<Frame<'a>, InvalidRecord> {
    let invalid = InvalidRecord { len: record.len() };
    let header = RecordHeader::parse(record).ok_or(invalid)?;
    let data = usize::try_from(header.cap_len)
        .ok()
        .and_then(|cap_len| record.get(RecordHeader::SIZE..RecordHeader::SIZE + cap_len))
        .ok_or(invalid)?;
    Ok(Frame {
        timestamp_ns: clock.unix_ns(header.timestamp_ns),
        ifindex: header.ifindex,
        orig_len: header.orig_len,
        data,
        rpc_port: u16::try_from(header.rpc_port)
            .ok()
            .filter(|&port| port != 0),
    })
}

impl std::fmt::Debug for FrameRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameRing")
            .field("fd", &self.ring.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl AsRawFd for FrameRing {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// The ring buffer read as the kernel fills it, through tokio's reactor.
#[derive(Debug)]
pub struct FrameReader {
    inner: AsyncFd<FrameRing>,
}

impl FrameReader {
    /// Registers the ring with the current tokio runtime.
    pub fn new(ring: FrameRing) -> Result<Self, CaptureError> {
        // SAFETY: the ring owns its map fd, which stays open and the same for as long as the
        // AsyncFd owns the ring.
        let inner = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|error| CaptureError::Ring(error.into()))?;
        Ok(Self { inner })
    }

    /// Waits until the kernel has written records, then hands them all to `handle`.
    pub async fn read(
        &mut self,
        handle: impl FnMut(Result<Frame<'_>, InvalidRecord>),
    ) -> Result<u64, CaptureError> {
        let mut guard = self
            .inner
            .readable_mut()
            .await
            .map_err(CaptureError::Ring)?;
        let records = guard.get_inner_mut().drain(handle);
        guard.clear_ready();
        Ok(records)
    }

    /// Hands whatever is in the ring now to `handle`, without waiting.
    pub fn drain(&mut self, handle: impl FnMut(Result<Frame<'_>, InvalidRecord>)) -> u64 {
        self.inner.get_mut().drain(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cap_len: u32, data_len: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&5_u64.to_ne_bytes());
        bytes.extend_from_slice(&3_u32.to_ne_bytes());
        bytes.extend_from_slice(&100_u32.to_ne_bytes());
        bytes.extend_from_slice(&cap_len.to_ne_bytes());
        bytes.extend_from_slice(&0_u32.to_ne_bytes());
        bytes.resize(bytes.len() + data_len, 0xab);
        bytes
    }

    #[test]
    fn parses_a_record_and_rejects_short_ones() {
        let clock = WallClock::now();
        let bytes = record(60, 64);
        let frame = parse_record(&bytes, &clock).expect("valid record");
        assert_eq!(
            (frame.ifindex, frame.orig_len, frame.data.len()),
            (3, 100, 60)
        );
        assert!(parse_record(&record(60, 59), &clock).is_err());
        assert!(parse_record(&bytes[..10], &clock).is_err());
        assert!(parse_record(&record(u32::MAX, 8), &clock).is_err());
    }
}
