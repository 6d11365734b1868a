//! A small borrowing reader for X.690 BER, restricted to what LDAP allows.
//!
//! X.690 8.1: every element is identifier octets, length octets, contents octets (TLV):
//!
//! ```text
//! identifier: class (bits 8-7) | constructed (bit 6) | tag (bits 5-1; 31 = high-tag form,
//!             followed by base-128 octets, bit 8 set on all but the last)
//! length:     short form 0xxxxxxx (0..127) | long form 1nnnnnnn + n octets, big-endian
//!             | 0x80 indefinite (contents end with 00 00)
//! ```
//!
//! RFC 4511 5.1 says LDAP uses "only the definite form of length encoding", so this reader
//! rejects the indefinite form ([`BerError::IndefiniteLength`]): accepting it would need an
//! end-of-contents search whose cost depends on nesting, for encodings no LDAP peer sends. The
//! long form is limited to [`MAX_LENGTH_OCTETS`] octets and high-tag numbers to
//! [`MAX_TAG_OCTETS`] octets, so every header is at most 10 bytes and every value fits `u32`.
//!
//! Nothing here recurses: [`Tlv::children`] yields one level at a time. Callers that descend
//! into nested values carry a [`Depth`] and call [`Depth::descend`] at each level.

use thiserror::Error;

/// Most length octets after a long-form length's first octet. Four give lengths up to
/// 4 GiB - 1, beyond any PDU a sensor will buffer; LDAP encoders never use more (a fifth octet
/// would be needed only for values of 4 GiB and above).
pub const MAX_LENGTH_OCTETS: usize = 4;

/// Most octets in a high-tag-number identifier after the first. Four base-128 octets give
/// 28-bit tag numbers, far beyond any tag LDAP, Kerberos or SPNEGO define (all below 31, i.e.
/// the single-octet form), while keeping the tag in a `u32`.
pub const MAX_TAG_OCTETS: usize = 4;

/// BER tag class (X.690 8.1.2.2, bits 8-7 of the identifier octet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Universal,
    Application,
    ContextSpecific,
    Private,
}

impl Class {
    fn from_bits(identifier: u8) -> Self {
        match identifier >> 6 {
            0 => Self::Universal,
            1 => Self::Application,
            2 => Self::ContextSpecific,
            _ => Self::Private,
        }
    }
}

/// Universal tag numbers used by LDAP (X.680 8.4, table 1).
pub mod universal {
    pub const BOOLEAN: u32 = 1;
    pub const INTEGER: u32 = 2;
    pub const OCTET_STRING: u32 = 4;
    pub const NULL: u32 = 5;
    pub const ENUMERATED: u32 = 10;
    pub const SEQUENCE: u32 = 16;
    pub const SET: u32 = 17;
}

/// Why some bytes are not an acceptable BER element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BerError {
    /// The element needs `needed` bytes counted from its first identifier octet, more than the
    /// input holds. For a cut header, `needed` is a lower bound (the header read so far plus
    /// one). Framing turns this into "need more bytes".
    #[error("BER element truncated: {needed} bytes needed")]
    Truncated { needed: usize },
    /// The indefinite length form (0x80), which LDAP forbids (RFC 4511 5.1).
    #[error("indefinite BER length (forbidden in LDAP)")]
    IndefiniteLength,
    /// A long-form length with more than [`MAX_LENGTH_OCTETS`] octets, or the reserved 0xff.
    #[error("BER length form too long")]
    LengthTooLong,
    /// A high-tag-number identifier with more than [`MAX_TAG_OCTETS`] octets.
    #[error("BER tag number too long")]
    TagTooLong,
    /// An element other than the one the grammar requires here.
    #[error("unexpected BER element: class {class:?}, constructed {constructed}, tag {tag}")]
    UnexpectedTag {
        class: Class,
        constructed: bool,
        tag: u32,
    },
    /// An INTEGER or ENUMERATED that is empty, does not fit the target type, or is negative
    /// where only non-negative values are allowed.
    #[error("BER integer empty or out of range")]
    BadInteger,
    /// A BOOLEAN whose contents are not exactly one octet (X.690 8.2.1).
    #[error("BER boolean not one octet")]
    BadBoolean,
    /// Nesting deeper than the caller's [`Depth`] allows.
    #[error("BER nesting too deep")]
    TooDeep,
}

/// The identifier and length of an element, without its contents: what framing needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub class: Class,
    pub constructed: bool,
    pub tag: u32,
    /// Identifier plus length octets.
    pub header_len: usize,
    /// Declared contents length.
    pub value_len: usize,
}

impl Header {
    /// Header plus contents, or `None` if that overflows `usize` (only on 16/32-bit targets).
    pub fn total_len(&self) -> Option<usize> {
        self.header_len.checked_add(self.value_len)
    }
}

/// One BER element borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub class: Class,
    pub constructed: bool,
    pub tag: u32,
    /// Contents octets.
    pub value: &'a [u8],
}

/// Reads identifier and length octets (X.690 8.1.2, 8.1.3) from the front of `bytes`.
///
/// Does not look at the contents, so a header is enough: `Ok` even if the contents are not
/// all there yet (compare [`Header::total_len`] with the input).
pub fn read_header(bytes: &[u8]) -> Result<Header, BerError> {
    let (class, constructed, tag, tag_len) = read_identifier(bytes)?;
    let (value_len, len_len) = read_length(bytes.get(tag_len..).unwrap_or_default(), tag_len)?;
    Ok(Header {
        class,
        constructed,
        tag,
        header_len: tag_len.saturating_add(len_len),
        value_len,
    })
}

/// `(class, constructed, tag, octets used)`.
fn read_identifier(bytes: &[u8]) -> Result<(Class, bool, u32, usize), BerError> {
    let &first = bytes.first().ok_or(BerError::Truncated { needed: 1 })?;
    let class = Class::from_bits(first);
    let constructed = first & 0x20 != 0;
    let low = first & 0x1f;
    if low != 0x1f {
        return Ok((class, constructed, u32::from(low), 1));
    }
    let mut tag: u32 = 0;
    for i in 1..=MAX_TAG_OCTETS {
        let &b = bytes.get(i).ok_or(BerError::Truncated {
            needed: i.saturating_add(1),
        })?;
        // 4 octets of 7 bits = 28 bits: the shift cannot overflow a u32.
        tag = (tag << 7) | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((class, constructed, tag, i.saturating_add(1)));
        }
    }
    Err(BerError::TagTooLong)
}

/// `(value length, octets used)`; `offset` is where the length starts, for `Truncated`.
fn read_length(bytes: &[u8], offset: usize) -> Result<(usize, usize), BerError> {
    let &first = bytes.first().ok_or(BerError::Truncated {
        needed: offset.saturating_add(1),
    })?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    if first == 0x80 {
        return Err(BerError::IndefiniteLength);
    }
    let n = usize::from(first & 0x7f);
    if n > MAX_LENGTH_OCTETS {
        return Err(BerError::LengthTooLong);
    }
    let octets = bytes.get(1..=n).ok_or(BerError::Truncated {
        needed: offset.saturating_add(1).saturating_add(n),
    })?;
    let len = octets
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let len = usize::try_from(len).map_err(|_| BerError::LengthTooLong)?;
    Ok((len, n.saturating_add(1)))
}

/// Reads one whole element from the front of `bytes`; returns it and the bytes after it.
///
/// A declared length beyond the input is [`BerError::Truncated`] with the element's full size.
pub fn read_tlv(bytes: &[u8]) -> Result<(Tlv<'_>, &[u8]), BerError> {
    let h = read_header(bytes)?;
    let total = h.total_len().ok_or(BerError::LengthTooLong)?;
    let (element, rest) = bytes
        .split_at_checked(total)
        .ok_or(BerError::Truncated { needed: total })?;
    let value = element.get(h.header_len..).unwrap_or_default();
    Ok((
        Tlv {
            class: h.class,
            constructed: h.constructed,
            tag: h.tag,
            value,
        },
        rest,
    ))
}

/// Reads one element and checks its identifier.
pub fn read_expected(
    bytes: &[u8],
    class: Class,
    constructed: bool,
    tag: u32,
) -> Result<(Tlv<'_>, &[u8]), BerError> {
    let (tlv, rest) = read_tlv(bytes)?;
    tlv.expect(class, constructed, tag)?;
    Ok((tlv, rest))
}

impl<'a> Tlv<'a> {
    /// Whether this element has the given identifier.
    pub fn is(&self, class: Class, constructed: bool, tag: u32) -> bool {
        self.class == class && self.constructed == constructed && self.tag == tag
    }

    /// `Ok(self)` if this element has the given identifier, else [`BerError::UnexpectedTag`].
    pub fn expect(self, class: Class, constructed: bool, tag: u32) -> Result<Self, BerError> {
        if self.is(class, constructed, tag) {
            Ok(self)
        } else {
            Err(self.unexpected())
        }
    }

    /// The [`BerError::UnexpectedTag`] describing this element.
    pub fn unexpected(&self) -> BerError {
        BerError::UnexpectedTag {
            class: self.class,
            constructed: self.constructed,
            tag: self.tag,
        }
    }

    /// The elements inside this one's contents, one level down, in order.
    ///
    /// Meaningful for constructed elements; on a primitive one it reads the contents as if
    /// they were elements, which callers should not ask for.
    pub fn children(&self) -> Children<'a> {
        Children::new(self.value)
    }
}

/// Iterator over consecutive elements of a byte string (the contents of a SEQUENCE or SET).
///
/// Yields `Err` once at the first malformed element, then stops. The number of items is at
/// most half the input length (every element has at least 2 octets), so the loop is bounded
/// by the input; callers still cap how many they keep.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Children<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Tlv<'a>, BerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match read_tlv(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A recursion budget: the pattern for parsers that descend into nested BER.
///
/// Start with `Depth::new(MAX)` and pass `depth.descend()?` to each nested call; the call
/// that would exceed the budget gets [`BerError::TooDeep`] instead of a deeper stack.
///
/// ```
/// use dcwatch_parsers::ber::{read_tlv, BerError, Depth};
/// fn count_nodes(bytes: &[u8], depth: Depth) -> Result<usize, BerError> {
///     let (tlv, _) = read_tlv(bytes)?;
///     let mut n = 1;
///     if tlv.constructed {
///         let inner = depth.descend()?;
///         for child in tlv.children() {
///             n += count_nodes(child?.value, inner).unwrap_or(0);
///         }
///     }
///     Ok(n)
/// }
/// assert!(count_nodes(&[0x30, 0x00], Depth::new(4)).is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Depth {
    remaining: usize,
}

impl Depth {
    /// A budget of `max` nested levels below the current one.
    pub const fn new(max: usize) -> Self {
        Self { remaining: max }
    }

    /// The budget one level down, or [`BerError::TooDeep`] if none is left.
    pub fn descend(self) -> Result<Self, BerError> {
        match self.remaining.checked_sub(1) {
            Some(remaining) => Ok(Self { remaining }),
            None => Err(BerError::TooDeep),
        }
    }

    /// Levels still allowed below this one.
    pub fn remaining(self) -> usize {
        self.remaining
    }
}

/// INTEGER contents (X.690 8.3: two's complement, big-endian, at least one octet) as `i64`.
pub fn integer_i64(value: &[u8]) -> Result<i64, BerError> {
    let (&first, _) = value.split_first().ok_or(BerError::BadInteger)?;
    // Leading sign-extension octets carry no information: skip them so that a 9-octet
    // encoding of a value that fits is still accepted (X.690 forbids them, encoders slip).
    let mut v = value;
    while let [a, b, ..] = v {
        let redundant = (*a == 0 && b & 0x80 == 0) || (*a == 0xff && b & 0x80 != 0);
        if !redundant {
            break;
        }
        v = v.get(1..).unwrap_or_default();
    }
    if v.len() > 8 {
        return Err(BerError::BadInteger);
    }
    let init: i64 = if first & 0x80 != 0 { -1 } else { 0 };
    Ok(v.iter().fold(init, |acc, &b| (acc << 8) | i64::from(b)))
}

/// INTEGER contents as `u32`: negative or larger values are [`BerError::BadInteger`].
pub fn integer_u32(value: &[u8]) -> Result<u32, BerError> {
    u32::try_from(integer_i64(value)?).map_err(|_| BerError::BadInteger)
}

/// BOOLEAN contents (X.690 8.2: one octet, zero is FALSE, any other value TRUE).
pub fn boolean(value: &[u8]) -> Result<bool, BerError> {
    match value {
        [b] => Ok(*b != 0),
        _ => Err(BerError::BadBoolean),
    }
}

/// Reads a universal INTEGER element and returns it as `u32` and the bytes after it.
pub fn read_u32(bytes: &[u8]) -> Result<(u32, &[u8]), BerError> {
    let (tlv, rest) = read_expected(bytes, Class::Universal, false, universal::INTEGER)?;
    Ok((integer_u32(tlv.value)?, rest))
}

/// Reads a universal INTEGER element as `i64`.
pub fn read_i64(bytes: &[u8]) -> Result<(i64, &[u8]), BerError> {
    let (tlv, rest) = read_expected(bytes, Class::Universal, false, universal::INTEGER)?;
    Ok((integer_i64(tlv.value)?, rest))
}

/// Reads a universal ENUMERATED element (encoded like INTEGER, X.690 8.4) as `u32`.
pub fn read_enumerated(bytes: &[u8]) -> Result<(u32, &[u8]), BerError> {
    let (tlv, rest) = read_expected(bytes, Class::Universal, false, universal::ENUMERATED)?;
    Ok((integer_u32(tlv.value)?, rest))
}

/// Reads a universal BOOLEAN element.
pub fn read_boolean(bytes: &[u8]) -> Result<(bool, &[u8]), BerError> {
    let (tlv, rest) = read_expected(bytes, Class::Universal, false, universal::BOOLEAN)?;
    Ok((boolean(tlv.value)?, rest))
}

/// Reads a universal OCTET STRING element in primitive form (the only form LDAP allows,
/// RFC 4511 5.1) and returns its contents.
pub fn read_octet_string(bytes: &[u8]) -> Result<(&[u8], &[u8]), BerError> {
    let (tlv, rest) = read_expected(bytes, Class::Universal, false, universal::OCTET_STRING)?;
    Ok((tlv.value, rest))
}

/// Reads a universal SEQUENCE element (always constructed) and returns it.
pub fn read_sequence(bytes: &[u8]) -> Result<(Tlv<'_>, &[u8]), BerError> {
    read_expected(bytes, Class::Universal, true, universal::SEQUENCE)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let (t, rest) = read_tlv(&[0x04, 0x02, b'h', b'i', 0xaa]).unwrap();
        assert_eq!(t.value, b"hi");
        assert_eq!(rest, &[0xaa]);
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(0u8, 256));
        let (t, rest) = read_tlv(&long).unwrap();
        assert_eq!(t.value.len(), 256);
        assert!(rest.is_empty());
    }

    #[test]
    fn hostile_lengths() {
        assert_eq!(
            read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(BerError::Truncated {
                needed: 6 + 0xffff_ffff
            })
        );
        assert_eq!(
            read_tlv(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]),
            Err(BerError::LengthTooLong)
        );
        assert_eq!(read_tlv(&[0x30, 0xff]), Err(BerError::LengthTooLong));
        assert_eq!(
            read_tlv(&[0x30, 0x80, 0, 0]),
            Err(BerError::IndefiniteLength)
        );
        assert_eq!(
            read_tlv(&[0x30, 0x82, 0x01]),
            Err(BerError::Truncated { needed: 4 })
        );
        assert_eq!(read_tlv(&[]), Err(BerError::Truncated { needed: 1 }));
        assert_eq!(read_tlv(&[0x30]), Err(BerError::Truncated { needed: 2 }));
    }

    #[test]
    fn high_tags() {
        let (t, _) = read_tlv(&[0x9f, 0x81, 0x00, 0x00]).unwrap();
        assert_eq!((t.class, t.tag), (Class::ContextSpecific, 128));
        assert_eq!(
            read_tlv(&[0x1f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00]),
            Err(BerError::TagTooLong)
        );
        assert_eq!(
            read_tlv(&[0x1f, 0x81]),
            Err(BerError::Truncated { needed: 3 })
        );
    }

    #[test]
    fn integers() {
        assert_eq!(integer_i64(&[0x00]), Ok(0));
        assert_eq!(integer_i64(&[0xff]), Ok(-1));
        assert_eq!(integer_i64(&[0x00, 0x80]), Ok(128));
        assert_eq!(integer_i64(&[0x80]), Ok(-128));
        assert_eq!(integer_i64(&[0x7f; 9]), Err(BerError::BadInteger));
        assert_eq!(integer_i64(&[]), Err(BerError::BadInteger));
        assert_eq!(
            integer_i64(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]),
            Ok(1),
            "redundant leading zeros"
        );
        assert_eq!(integer_u32(&[0x00, 0xff, 0xff, 0xff, 0xff]), Ok(u32::MAX));
        assert_eq!(integer_u32(&[0x01, 0, 0, 0, 0]), Err(BerError::BadInteger));
        assert_eq!(integer_u32(&[0xff]), Err(BerError::BadInteger));
        assert_eq!(boolean(&[0xff]), Ok(true));
        assert_eq!(boolean(&[]), Err(BerError::BadBoolean));
    }

    #[test]
    fn children_stop_at_first_error() {
        let t = Tlv {
            class: Class::Universal,
            constructed: true,
            tag: 16,
            value: &[0x02, 0x01, 0x05, 0x04, 0x05, 0x00],
        };
        let items: Vec<_> = t.children().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }

    #[test]
    fn depth_budget() {
        let d = Depth::new(1);
        let d = d.descend().unwrap();
        assert_eq!(d.descend(), Err(BerError::TooDeep));
    }
}
