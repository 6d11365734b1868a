//! The few DER header reads done by hand: Kerberos framing, and the GSS-API/SPNEGO walk in
//! [`crate::gssapi`], which borrows from its input where rasn would copy.

/// Length octets accepted in the long form: four cover any length up to 4 GiB, far beyond every
/// limit in these parsers, so a fifth octet only ever comes from garbage.
pub(crate) const MAX_LENGTH_OCTETS: usize = 4;

/// The identifier and length octets of one value (X.690 8.1.2, 8.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The whole identifier octet: class, constructed bit and a tag number below 31.
    pub tag: u8,
    /// Identifier and length octets.
    pub header_len: usize,
    /// Contents octets announced by the length octets.
    pub content_len: usize,
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The bytes end inside the header.
    NeedMore,
    /// High tag number form, indefinite length, or a length beyond [`MAX_LENGTH_OCTETS`]: none
    /// occurs in the DER these protocols use.
    Invalid,
}

/// Reads the header of the value at the front of `bytes`, without requiring its contents.
pub(crate) fn header(bytes: &[u8]) -> Result<Header, HeaderError> {
    let (&tag, rest) = bytes.split_first().ok_or(HeaderError::NeedMore)?;
    if tag & 0x1F == 0x1F {
        return Err(HeaderError::Invalid);
    }
    let (&first, rest) = rest.split_first().ok_or(HeaderError::NeedMore)?;
    if first < 0x80 {
        return Ok(Header {
            tag,
            header_len: 2,
            content_len: usize::from(first),
        });
    }
    let count = usize::from(first & 0x7F);
    if count == 0 || count > MAX_LENGTH_OCTETS {
        return Err(HeaderError::Invalid);
    }
    let octets = rest.get(..count).ok_or(HeaderError::NeedMore)?;
    let content_len = octets
        .iter()
        .fold(0usize, |len, &octet| (len << 8) | usize::from(octet));
    Ok(Header {
        tag,
        header_len: 2 + count,
        content_len,
    })
}

/// Splits the value at the front of `bytes` into its identifier octet, its contents and what
/// follows it; `None` when the header is unreadable or the contents run past the input.
pub(crate) fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let h = header(bytes).ok()?;
    let rest = bytes.get(h.header_len..)?;
    let (contents, rest) = rest.split_at_checked(h.content_len)?;
    Some((h.tag, contents, rest))
}

/// Like [`tlv`], but requires the identifier octet `tag`.
pub(crate) fn expect(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(bytes)? {
        (t, contents, rest) if t == tag => Some((contents, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms() {
        assert_eq!(
            header(&[0x30, 0x05]),
            Ok(Header {
                tag: 0x30,
                header_len: 2,
                content_len: 5
            })
        );
        assert_eq!(
            header(&[0x6a, 0x82, 0x01, 0x2a]),
            Ok(Header {
                tag: 0x6a,
                header_len: 4,
                content_len: 0x12a
            })
        );
        assert_eq!(header(&[0x6a, 0x82, 0x01]), Err(HeaderError::NeedMore));
        assert_eq!(header(&[0x6a]), Err(HeaderError::NeedMore));
        assert_eq!(header(&[]), Err(HeaderError::NeedMore));
    }

    #[test]
    fn rejects_what_der_never_sends() {
        assert_eq!(header(&[0x30, 0x80]), Err(HeaderError::Invalid));
        assert_eq!(
            header(&[0x30, 0x85, 1, 2, 3, 4, 5]),
            Err(HeaderError::Invalid)
        );
        assert_eq!(header(&[0x7f, 0x81, 0x01]), Err(HeaderError::Invalid));
        // Declared length far beyond the input: the header reads, the value does not.
        assert!(header(&[0x04, 0x84, 0x7f, 0xff, 0xff, 0xff]).is_ok());
        assert_eq!(tlv(&[0x04, 0x84, 0x7f, 0xff, 0xff, 0xff, 0]), None);
    }
}
