//! A bounded reader for pcap and pcapng capture files, for `replay`.
//!
//! Formats: pcap (libpcap, microsecond and nanosecond magics, either byte order) and pcapng
//! (sections in either byte order; interface description, enhanced, simple and obsolete packet
//! blocks; other blocks skipped). Every length read from the file is checked against a named
//! limit before anything is allocated, so a hostile file gets an error, never a panic or a huge
//! allocation.

use std::{
    fs::File,
    io::{self, BufReader, Read},
    path::{Path, PathBuf},
};

use crate::decode::LinkType;

/// Largest packet record accepted (pcap `incl_len`): far above any link's frame size.
pub const MAX_RECORD_LEN: usize = 256 * 1024;
/// Largest pcapng block accepted.
pub const MAX_BLOCK_LEN: usize = 16 * 1024 * 1024;
/// Interfaces per pcapng section.
pub const MAX_INTERFACES: usize = 1024;

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_SECTION_HEADER: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_INTERFACE_DESCRIPTION: u32 = 1;
const PCAPNG_OBSOLETE_PACKET: u32 = 2;
const PCAPNG_SIMPLE_PACKET: u32 = 3;
const PCAPNG_ENHANCED_PACKET: u32 = 6;
const PCAPNG_OPTION_END: u16 = 0;
const PCAPNG_OPTION_IF_TSRESOL: u16 = 9;

#[derive(Debug, thiserror::Error)]
pub enum CaptureFileError {
    #[error("cannot read capture file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a pcap or pcapng capture file")]
    NotACapture { path: PathBuf },
    #[error("capture file {path} is malformed at byte {offset}: {reason}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("capture file {path} ends in the middle of a record at byte {offset}")]
    Truncated { path: PathBuf, offset: u64 },
    #[error(
        "capture file {path}: link type {link_type} is not supported (dcwatch replays Ethernet, \
         Linux cooked, raw IP and loopback captures)"
    )]
    UnsupportedLinkType { path: PathBuf, link_type: u32 },
}

/// A frame read from a capture file, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct FileFrame<'a> {
    pub link: LinkType,
    pub timestamp_ns: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, bytes: &[u8]) -> u16 {
        let bytes = [bytes[0], bytes[1]];
        match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: &[u8]) -> u32 {
        let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
        match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        }
    }
}

/// How to read an interface's packets and turn its raw timestamps into nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Interface {
    /// The link type, or its number when dcwatch cannot decode it: a pcapng file may describe
    /// interfaces it never uses, so only a packet on such an interface is an error.
    link: Result<LinkType, u32>,
    /// Timestamp units per second.
    units_per_second: u64,
}

impl Interface {
    fn nanos(&self, units: u64) -> u64 {
        let nanos = u128::from(units) * 1_000_000_000 / u128::from(self.units_per_second);
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        endian: Endian,
        interface: Interface,
    },
    PcapNg {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// Reads frames one at a time from a capture file.
#[derive(Debug)]
pub struct CaptureFile<R> {
    path: PathBuf,
    input: R,
    /// Bytes consumed so far, for error messages.
    offset: u64,
    format: Format,
    buffer: Vec<u8>,
}

impl CaptureFile<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, CaptureFileError> {
        let file = File::open(path).map_err(|source| CaptureFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(BufReader::with_capacity(1 << 20, file), path)
    }
}

impl<R: Read> CaptureFile<R> {
    /// Reads the file header from `input`; `path` only names the file in errors.
    pub fn new(mut input: R, path: &Path) -> Result<Self, CaptureFileError> {
        let path = path.to_owned();
        let mut magic = [0_u8; 4];
        match read_exact_or_eof(&mut input, &mut magic) {
            Ok(true) => {}
            Ok(false) => return Err(CaptureFileError::NotACapture { path }),
            Err(source) => return Err(CaptureFileError::Io { path, source }),
        }
        let mut reader = Self {
            path,
            input,
            offset: 4,
            format: Format::PcapNg {
                endian: Endian::Little,
                interfaces: Vec::new(),
            },
            buffer: Vec::new(),
        };
        let little = u32::from_le_bytes(magic);
        let big = u32::from_be_bytes(magic);
        if little == PCAPNG_SECTION_HEADER {
            reader.read_section_header()?;
        } else {
            let (endian, magic) = if matches!(little, PCAP_MAGIC_MICROS | PCAP_MAGIC_NANOS) {
                (Endian::Little, little)
            } else if matches!(big, PCAP_MAGIC_MICROS | PCAP_MAGIC_NANOS) {
                (Endian::Big, big)
            } else {
                return Err(CaptureFileError::NotACapture { path: reader.path });
            };
            let header = reader.read_bytes(20)?;
            // The top bits of the link-type field carry FCS information.
            let link_type = endian.u32(&header[16..20]) & 0x0fff_ffff;
            let units_per_second = if magic == PCAP_MAGIC_NANOS {
                1_000_000_000
            } else {
                1_000_000
            };
            let interface = Interface {
                link: Ok(reader.link_type(link_type)?),
                units_per_second,
            };
            reader.format = Format::Pcap { endian, interface };
        }
        Ok(reader)
    }

    /// The next frame, `None` at the clean end of the file.
    pub fn next_frame(&mut self) -> Result<Option<FileFrame<'_>>, CaptureFileError> {
        match self.format {
            Format::Pcap { endian, interface } => self.next_pcap_frame(endian, interface),
            Format::PcapNg { .. } => self.next_pcapng_frame(),
        }
    }

    fn next_pcap_frame(
        &mut self,
        endian: Endian,
        interface: Interface,
    ) -> Result<Option<FileFrame<'_>>, CaptureFileError> {
        let mut header = [0_u8; 16];
        if !self.read_header_or_eof(&mut header)? {
            return Ok(None);
        }
        let seconds = u64::from(endian.u32(&header[0..4]));
        let fraction = u64::from(endian.u32(&header[4..8]));
        let captured = endian.u32(&header[8..12]) as usize;
        let orig_len = endian.u32(&header[12..16]);
        if captured > MAX_RECORD_LEN {
            return Err(self.malformed(format!(
                "record of {captured} bytes, more than the {MAX_RECORD_LEN} accepted"
            )));
        }
        self.read_bytes(captured)?;
        let timestamp_ns = seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(interface.nanos(fraction));
        Ok(Some(FileFrame {
            link: self.supported(interface)?,
            timestamp_ns,
            orig_len: orig_len.max(u32::try_from(captured).unwrap_or(u32::MAX)),
            data: &self.buffer[..captured],
        }))
    }

    fn next_pcapng_frame(&mut self) -> Result<Option<FileFrame<'_>>, CaptureFileError> {
        loop {
            let mut header = [0_u8; 8];
            if !self.read_header_or_eof(&mut header)? {
                return Ok(None);
            }
            let Format::PcapNg { endian, .. } = self.format else {
                unreachable!("pcapng reader in pcap state");
            };
            let block_type = endian.u32(&header[0..4]);
            if block_type == PCAPNG_SECTION_HEADER {
                self.read_section_header_after_type(&header[4..8])?;
                continue;
            }
            let body_len = self.block_body_len(endian.u32(&header[4..8]))?;
            self.read_bytes(body_len)?;
            // Drop the trailing copy of the block length.
            self.buffer.truncate(body_len - 4);
            match block_type {
                PCAPNG_INTERFACE_DESCRIPTION => self.add_interface(endian)?,
                PCAPNG_ENHANCED_PACKET | PCAPNG_OBSOLETE_PACKET | PCAPNG_SIMPLE_PACKET => {
                    let (interface, timestamp, orig_len, data) =
                        self.packet_fields(block_type, endian)?;
                    return Ok(Some(FileFrame {
                        link: self.supported(interface)?,
                        timestamp_ns: interface.nanos(timestamp),
                        orig_len,
                        data: &self.buffer[data.0..data.1],
                    }));
                }
                _ => {}
            }
        }
    }

    /// Interface, raw timestamp, original length and data range of a packet block in `buffer`.
    fn packet_fields(
        &self,
        block_type: u32,
        endian: Endian,
    ) -> Result<(Interface, u64, u32, (usize, usize)), CaptureFileError> {
        let body = &self.buffer;
        let need = |len: usize| {
            if body.len() < len {
                Err(self.malformed(format!("packet block body of {} bytes", body.len())))
            } else {
                Ok(())
            }
        };
        let (interface_id, timestamp, captured, orig_len, data_start) =
            if block_type == PCAPNG_SIMPLE_PACKET {
                need(4)?;
                let orig_len = endian.u32(&body[0..4]);
                let captured = (orig_len as usize).min(body.len() - 4);
                (0, 0, captured, orig_len, 4)
            } else {
                need(20)?;
                let interface_id = if block_type == PCAPNG_OBSOLETE_PACKET {
                    u32::from(endian.u16(&body[0..2]))
                } else {
                    endian.u32(&body[0..4])
                };
                let timestamp =
                    u64::from(endian.u32(&body[4..8])) << 32 | u64::from(endian.u32(&body[8..12]));
                let captured = endian.u32(&body[12..16]) as usize;
                (
                    interface_id,
                    timestamp,
                    captured,
                    endian.u32(&body[16..20]),
                    20,
                )
            };
        if captured > body.len() - data_start {
            return Err(self.malformed(format!(
                "packet of {captured} bytes in a block body of {} bytes",
                body.len()
            )));
        }
        let Format::PcapNg { interfaces, .. } = &self.format else {
            unreachable!("pcapng reader in pcap state");
        };
        let interface = *interfaces.get(interface_id as usize).ok_or_else(|| {
            self.malformed(format!(
                "packet names interface {interface_id}, not described"
            ))
        })?;
        let orig_len = orig_len.max(u32::try_from(captured).unwrap_or(u32::MAX));
        Ok((
            interface,
            timestamp,
            orig_len,
            (data_start, data_start + captured),
        ))
    }

    fn add_interface(&mut self, endian: Endian) -> Result<(), CaptureFileError> {
        if self.buffer.len() < 8 {
            return Err(self.malformed("interface description shorter than 8 bytes".into()));
        }
        let link_type = u32::from(endian.u16(&self.buffer[0..2]));
        let link = self.link_type(link_type).map_err(|_| link_type);
        let mut units_per_second = 1_000_000;
        let mut options = &self.buffer[8..];
        while options.len() >= 4 {
            let code = endian.u16(&options[0..2]);
            let len = usize::from(endian.u16(&options[2..4]));
            let padded = len.div_ceil(4) * 4;
            if code == PCAPNG_OPTION_END || options.len() < 4 + padded {
                break;
            }
            if code == PCAPNG_OPTION_IF_TSRESOL && len >= 1 {
                units_per_second = timestamp_units(options[4])
                    .ok_or_else(|| self.malformed(format!("if_tsresol {:#x}", options[4])))?;
            }
            options = &options[4 + padded..];
        }
        let Format::PcapNg { interfaces, .. } = &mut self.format else {
            unreachable!("pcapng reader in pcap state");
        };
        if interfaces.len() >= MAX_INTERFACES {
            return Err(self.malformed(format!("more than {MAX_INTERFACES} interfaces")));
        }
        interfaces.push(Interface {
            link,
            units_per_second,
        });
        Ok(())
    }

    fn read_section_header(&mut self) -> Result<(), CaptureFileError> {
        let length = self.read_bytes(4)?;
        let length = [length[0], length[1], length[2], length[3]];
        self.read_section_header_after_type(&length)
    }

    /// Reads a section header whose type (and raw length field, `length`) were just read; a new
    /// section resets the byte order and the interfaces.
    fn read_section_header_after_type(&mut self, length: &[u8]) -> Result<(), CaptureFileError> {
        let magic = self.read_bytes(4)?;
        let endian = match u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) {
            PCAPNG_BYTE_ORDER_MAGIC => Endian::Little,
            magic if magic.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => Endian::Big,
            _ => return Err(self.malformed("section header without byte-order magic".into())),
        };
        let body_len = self.block_body_len(endian.u32(length))?;
        // The byte-order magic was part of the body.
        let rest = body_len
            .checked_sub(4)
            .ok_or_else(|| self.malformed("section header too short".into()))?;
        self.read_bytes(rest)?;
        self.format = Format::PcapNg {
            endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// Validates a block's total length and returns the length left to read after the 8 bytes
    /// of type and length: the body plus the trailing copy of the length.
    fn block_body_len(&self, total: u32) -> Result<usize, CaptureFileError> {
        let total = total as usize;
        if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK_LEN {
            return Err(self.malformed(format!("block length {total}")));
        }
        Ok(total - 8)
    }

    fn supported(&self, interface: Interface) -> Result<LinkType, CaptureFileError> {
        interface
            .link
            .map_err(|link_type| CaptureFileError::UnsupportedLinkType {
                path: self.path.clone(),
                link_type,
            })
    }

    fn link_type(&self, link_type: u32) -> Result<LinkType, CaptureFileError> {
        match link_type {
            0 | 108 => Ok(LinkType::Loopback),
            1 => Ok(LinkType::Ethernet),
            113 => Ok(LinkType::LinuxSll),
            276 => Ok(LinkType::LinuxSll2),
            // DLT_RAW in its three numberings, LINKTYPE_IPV4, LINKTYPE_IPV6.
            12 | 14 | 101 | 228 | 229 => Ok(LinkType::RawIp),
            _ => Err(CaptureFileError::UnsupportedLinkType {
                path: self.path.clone(),
                link_type,
            }),
        }
    }

    /// Fills `buffer` with the next `len` bytes.
    fn read_bytes(&mut self, len: usize) -> Result<&[u8], CaptureFileError> {
        self.buffer.clear();
        self.buffer.resize(len, 0);
        match read_exact_or_eof(&mut self.input, &mut self.buffer) {
            Ok(true) => {
                self.offset += len as u64;
                Ok(&self.buffer)
            }
            Ok(false) => Err(CaptureFileError::Truncated {
                path: self.path.clone(),
                offset: self.offset,
            }),
            Err(source) => Err(CaptureFileError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Fills `header`, or returns `false` at a clean end of file (no byte of it present).
    fn read_header_or_eof(&mut self, header: &mut [u8]) -> Result<bool, CaptureFileError> {
        let mut filled = 0;
        while filled < header.len() {
            match self.input.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(CaptureFileError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset + filled as u64,
                    });
                }
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureFileError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        self.offset += header.len() as u64;
        Ok(true)
    }

    fn malformed(&self, reason: String) -> CaptureFileError {
        CaptureFileError::Malformed {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }
}

/// `if_tsresol`: the top bit chooses powers of two over powers of ten.
fn timestamp_units(resolution: u8) -> Option<u64> {
    let exponent = u32::from(resolution & 0x7f);
    if resolution & 0x80 == 0 {
        10_u64.checked_pow(exponent)
    } else {
        2_u64.checked_pow(exponent)
    }
}

/// `read_exact`, but `Ok(false)` when the input ends first.
fn read_exact_or_eof(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(records: &[&[u8]]) -> Vec<u8> {
        let mut file = Vec::new();
        for word in [PCAP_MAGIC_MICROS, 0x0004_0002, 0, 0, 65535, 1] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        for (index, data) in records.iter().enumerate() {
            let len = data.len() as u32;
            for word in [1_700_000_000, index as u32 * 10, len, len] {
                file.extend_from_slice(&word.to_le_bytes());
            }
            file.extend_from_slice(data);
        }
        file
    }

    fn frames(bytes: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, CaptureFileError> {
        let mut reader = CaptureFile::new(bytes, Path::new("test.pcap"))?;
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame()? {
            frames.push((frame.timestamp_ns, frame.data.to_vec()));
        }
        Ok(frames)
    }

    #[test]
    fn reads_pcap_records() {
        let frames = frames(&pcap(&[b"first", b"second"])).expect("valid pcap");
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].0, 1_700_000_000_000_000_000 + 10_000);
        assert_eq!(frames[1].1, b"second");
    }

    #[test]
    fn truncated_and_hostile_files_are_errors() {
        let file = pcap(&[b"first", b"second"]);
        let cut = &file[..file.len() - 3];
        assert!(matches!(
            frames(cut),
            Err(CaptureFileError::Truncated { .. })
        ));
        let mut huge = pcap(&[b"x"]);
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            frames(&huge),
            Err(CaptureFileError::Malformed { .. })
        ));
        assert!(matches!(
            frames(b"GIF89a"),
            Err(CaptureFileError::NotACapture { .. })
        ));
        assert!(matches!(
            frames(b""),
            Err(CaptureFileError::NotACapture { .. })
        ));
    }

    #[test]
    fn every_prefix_of_a_pcapng_file_is_handled() {
        let mut file = Vec::new();
        let block = |file: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let total = 12 + body.len() as u32;
            file.extend_from_slice(&kind.to_le_bytes());
            file.extend_from_slice(&total.to_le_bytes());
            file.extend_from_slice(body);
            file.extend_from_slice(&total.to_le_bytes());
        };
        let mut section = PCAPNG_BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        section.extend_from_slice(&[1, 0, 0, 0]);
        section.extend_from_slice(&(-1_i64).to_le_bytes());
        block(&mut file, PCAPNG_SECTION_HEADER, &section);
        // Ethernet, nanosecond timestamps (if_tsresol = 9).
        let interface = [1, 0, 0, 0, 0, 0, 4, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0];
        block(&mut file, PCAPNG_INTERFACE_DESCRIPTION, &interface);
        let mut packet = Vec::new();
        for word in [0_u32, 0, 1_000_000_123, 4, 60] {
            packet.extend_from_slice(&word.to_le_bytes());
        }
        packet.extend_from_slice(b"abcd");
        block(&mut file, PCAPNG_ENHANCED_PACKET, &packet);

        let whole = frames(&file).expect("valid pcapng");
        assert_eq!(whole, [(1_000_000_123, b"abcd".to_vec())]);
        for cut in 0..file.len() {
            // Must end in an error or fewer frames, never a panic.
            if let Ok(partial) = frames(&file[..cut]) {
                assert!(partial.is_empty(), "prefix of {cut} bytes gave {partial:?}");
            }
        }
    }
}
