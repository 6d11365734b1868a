//! Writes frames into a classic pcap file (Ethernet, nanosecond timestamps), for replay tests
//! of traffic no public capture has.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

/// pcap with nanosecond timestamps (the `a1b23c4d` magic), version 2.4.
const MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
const SNAP_LEN: u32 = 262_144;

/// Writes `frames` (capture time in nanoseconds since the epoch, Ethernet frame) to `path`.
pub fn write(path: &Path, frames: impl IntoIterator<Item = (u64, Vec<u8>)>) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&MAGIC_NANOSECONDS.to_le_bytes())?;
    out.write_all(&2_u16.to_le_bytes())?;
    out.write_all(&4_u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&SNAP_LEN.to_le_bytes())?;
    out.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
    for (time_ns, frame) in frames {
        let seconds = u32::try_from(time_ns / 1_000_000_000).map_err(io::Error::other)?;
        let nanos = u32::try_from(time_ns % 1_000_000_000).map_err(io::Error::other)?;
        let len = u32::try_from(frame.len()).map_err(io::Error::other)?;
        out.write_all(&seconds.to_le_bytes())?;
        out.write_all(&nanos.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&frame)?;
    }
    out.flush()
}
