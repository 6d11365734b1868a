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

/// The frames of a classic pcap file (either byte order, micro- or nanosecond timestamps), for
/// sending a capture's frames onto a link. Not a general reader: the sensor has its own.
pub fn read_frames(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    const HEADER_LEN: usize = 24;
    const RECORD_HEADER_LEN: usize = 16;
    let bytes = std::fs::read(path)?;
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let magic = bytes.get(..4).ok_or_else(|| invalid("no pcap header"))?;
    let little_endian = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(invalid("not a classic pcap file")),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let field: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little_endian {
            u32::from_le_bytes(field)
        } else {
            u32::from_be_bytes(field)
        })
    };
    let mut frames = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let captured = u32_at(at + 8).ok_or_else(|| invalid("truncated record header"))? as usize;
        let start = at + RECORD_HEADER_LEN;
        let frame = bytes
            .get(start..start + captured)
            .ok_or_else(|| invalid("truncated record"))?;
        frames.push(frame.to_vec());
        at = start + captured;
    }
    Ok(frames)
}
