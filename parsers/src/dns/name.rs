//! Domain names on the wire: labels and compression pointers (RFC 1035 3.1, 4.1.4).
//!
//! ```text
//! name    = *label ( root / pointer )
//! label   = len:1 (0b00xxxxxx, 1..=63) octets:len
//! root    = 0x00
//! pointer = 0b11 offset:14          ; offset from the start of the message
//! ```
//! The 0b01 and 0b10 prefixes are reserved (RFC 6891 5 retired 0b01 extended labels): error.
//!
//! Pointers: RFC 1035 4.1.4 has them refer to a *prior* occurrence of a name. A pointer that
//! points at or after itself is followed anyway and flagged ([`DecodedName::forward_pointer`]),
//! because a resolver that accepts it sees that name and the sensor should too; loops (which
//! need such a pointer, or a pointer into the labels that led to it) end in
//! [`DnsError::TooManyPointers`] after [`MAX_POINTER_HOPS`] jumps, or in
//! [`DnsError::NameTooLong`] as soon as they have produced 255 bytes of labels.

use super::DnsError;

/// RFC 1035 2.3.4: a name is at most 255 octets on the wire (length octets and root included).
pub const MAX_NAME_LEN: usize = 255;

/// RFC 1035 2.3.4: a label is at most 63 octets (the length octet's top two bits are the type).
pub const MAX_LABEL_LEN: usize = 63;

/// A 255-octet name holds at most 127 one-octet labels (2 octets each, plus the root).
pub const MAX_LABELS: usize = 127;

/// Jumps followed while decoding one name. An encoder needs at most one pointer per label of the
/// longest legal name (127); real ones use one or two per name. Past this the name is a loop.
pub const MAX_POINTER_HOPS: usize = 127;

/// A name read from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodedName {
    /// Dotted text, `\.`, `\\` and `\DDD` escaped (RFC 4343 2.1); the root is ".".
    pub text: String,
    /// Offset just past the name where it started (after its first pointer, if any).
    pub end: usize,
    /// Some pointer pointed at or after its own position.
    pub forward_pointer: bool,
}

/// Decodes the name at `start` in `msg` (the whole DNS message, which pointers index).
pub(crate) fn read_name(msg: &[u8], start: usize) -> Result<DecodedName, DnsError> {
    let mut text = String::new();
    let mut pos = start;
    let mut end = None;
    let mut hops = 0usize;
    let mut wire_len = 1usize; // the root octet
    let mut forward_pointer = false;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len >> 6 {
            0 if len == 0 => {
                let end = end.unwrap_or(pos.saturating_add(1));
                if text.is_empty() {
                    text.push('.');
                }
                return Ok(DecodedName {
                    text,
                    end,
                    forward_pointer,
                });
            }
            0 => {
                let len = usize::from(len);
                wire_len = wire_len.saturating_add(1 + len);
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                let label = pos
                    .checked_add(1)
                    .and_then(|from| msg.get(from..from.saturating_add(len)))
                    .ok_or(DnsError::Truncated)?;
                if !text.is_empty() {
                    text.push('.');
                }
                push_label(&mut text, label);
                pos = pos.saturating_add(1 + len);
            }
            0b11 => {
                let low = *msg.get(pos.saturating_add(1)).ok_or(DnsError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                end.get_or_insert(pos.saturating_add(2));
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(DnsError::TooManyPointers);
                }
                if target >= msg.len() {
                    return Err(DnsError::PointerOutOfBounds);
                }
                forward_pointer |= target >= pos;
                pos = target;
            }
            _ => return Err(DnsError::BadLabelType(len)),
        }
    }
}

/// Offset just past the name at `start`, without following pointers: for records that are
/// counted but not decoded.
pub(crate) fn skip_name(msg: &[u8], start: usize) -> Result<usize, DnsError> {
    let mut pos = start;
    let mut wire_len = 1usize;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len >> 6 {
            0 if len == 0 => return Ok(pos.saturating_add(1)),
            0 => {
                wire_len = wire_len.saturating_add(1 + usize::from(len));
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                pos = pos.saturating_add(1 + usize::from(len));
            }
            0b11 => {
                let end = pos.saturating_add(2);
                return if end <= msg.len() {
                    Ok(end)
                } else {
                    Err(DnsError::Truncated)
                };
            }
            _ => return Err(DnsError::BadLabelType(len)),
        }
    }
}

/// Appends one label in presentation form (RFC 4343 2.1: `\.` and `\\`, `\DDD` for the rest of
/// what is not a visible ASCII character, space included, so the text splits on dots unambiguously).
fn push_label(text: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                text.push('\\');
                text.push(char::from(b));
            }
            0x21..=0x7e => text.push(char::from(b)),
            _ => {
                text.push('\\');
                text.push(char::from(b'0' + b / 100));
                text.push(char::from(b'0' + (b / 10) % 10));
                text.push(char::from(b'0' + b % 10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(msg: &[u8], at: usize) -> Result<String, DnsError> {
        read_name(msg, at).map(|n| n.text)
    }

    #[test]
    fn plain_root_and_escapes() {
        assert_eq!(
            name(b"\x03www\x07example\x03com\x00", 0).as_deref(),
            Ok("www.example.com")
        );
        assert_eq!(name(b"\x00", 0).as_deref(), Ok("."));
        assert_eq!(
            name(b"\x04a.b\\\x03\x00 \xff\x00", 0).as_deref(),
            Ok("a\\.b\\\\.\\000\\032\\255")
        );
    }

    #[test]
    fn compression_end_and_forward() {
        // "example.com" at 0, then "www" + pointer to 0 at 13.
        let msg = b"\x07example\x03com\x00\x03www\xc0\x00";
        let n = read_name(msg, 13).expect("name");
        assert_eq!(n.text, "www.example.com");
        assert_eq!(n.end, 19);
        assert!(!n.forward_pointer);
        // A pointer to a later name: followed, flagged.
        let fwd = b"\xc0\x02\x01a\x00";
        let n = read_name(fwd, 0).expect("name");
        assert_eq!((n.text.as_str(), n.end, n.forward_pointer), ("a", 2, true));
        assert_eq!(skip_name(msg, 13), Ok(19));
        assert_eq!(skip_name(msg, 0), Ok(13));
    }

    #[test]
    fn hostile_names() {
        // Self-pointer.
        assert_eq!(name(b"\xc0\x00", 0), Err(DnsError::TooManyPointers));
        // Two-pointer cycle.
        assert_eq!(name(b"\xc0\x02\xc0\x00", 0), Err(DnsError::TooManyPointers));
        // A label that points back at itself grows the name until 255.
        assert_eq!(name(b"\x01a\xc0\x00", 0), Err(DnsError::NameTooLong));
        // Pointer past the end; reserved label types; cut label.
        assert_eq!(name(b"\xc0\x09", 0), Err(DnsError::PointerOutOfBounds));
        assert_eq!(name(b"\x40", 0), Err(DnsError::BadLabelType(0x40)));
        assert_eq!(name(b"\x80", 0), Err(DnsError::BadLabelType(0x80)));
        assert_eq!(name(b"\x05ab", 0), Err(DnsError::Truncated));
        assert_eq!(name(b"\xc0", 0), Err(DnsError::Truncated));
        assert_eq!(name(b"", 0), Err(DnsError::Truncated));
    }

    #[test]
    fn three_hundred_bytes_via_pointers() {
        // Five 60-octet labels chained by backward pointers: 5 * 61 + 1 = 306 > 255.
        let mut msg = Vec::new();
        let mut prev: Option<usize> = None;
        for _ in 0..5 {
            let at = msg.len();
            msg.push(60);
            msg.extend_from_slice(&[b'x'; 60]);
            match prev {
                Some(p) => msg.extend_from_slice(&[0xc0 | (p >> 8) as u8, p as u8]),
                None => msg.push(0),
            }
            prev = Some(at);
        }
        let last = prev.expect("five labels");
        assert_eq!(name(&msg, last), Err(DnsError::NameTooLong));
        // Four of them (245 octets) are fine.
        let fourth = last - 63;
        assert_eq!(name(&msg, fourth).map(|t| t.len()), Ok(4 * 60 + 3));
        // A single 64-octet label is not a label.
        assert_eq!(name(b"\x41", 0), Err(DnsError::BadLabelType(0x41)));
    }
}
