//! The NDR reader every stub decoder shares: primitives in the stub's byte order, NDR and NDR64
//! widths, strings, SIDs and GUIDs, each bounded.
//!
//! ```text
//! conformant varying string = max_count offset actual_count (sizes), actual_count units
//! unique pointer            = referent id (a size, 0 = NULL), the pointee follows (at the top
//!                             level) or after the enclosing structure (embedded)
//! RPC_UNICODE_STRING        = Length (u16, bytes) MaximumLength (u16) pointer Buffer, the
//!                             buffer a conformant varying array of Length/2 units
//! RPC_SID                   = SubAuthorityCount (size, the conformance), Revision (u8),
//!                             SubAuthorityCount (u8), IdentifierAuthority (6 bytes, big-endian),
//!                             SubAuthority (u32 each)
//! ```

use super::{ByteOrder, Encoding, MAX_STRING_UNITS};
use crate::dcerpc::Uuid;

/// Sub-authorities of a SID ([MS-DTYP] 2.4.2: at most 15).
const MAX_SUB_AUTHORITIES: usize = 15;

/// Length of an NDR context handle (C706 14.2.3.1 / [MS-RPCE] 2.2.4.1.2).
pub(crate) const CONTEXT_HANDLE_LEN: usize = 20;

/// A context handle's bytes: what an answer hands out and later requests name.
pub type Handle = [u8; CONTEXT_HANDLE_LEN];

/// An NDR reader over a stub, in the PDU's byte order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ndr<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
    pub encoding: Encoding,
    pub order: ByteOrder,
}

impl<'a> Ndr<'a> {
    pub(crate) fn new(bytes: &'a [u8], encoding: Encoding, order: ByteOrder) -> Self {
        Self {
            bytes,
            at: 0,
            encoding,
            order,
        }
    }

    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    pub(crate) fn align(&mut self, to: usize) -> Option<()> {
        let pad = (to - self.at % to) % to;
        self.take(pad).map(|_| ())
    }

    /// The start of a structure holding pointers or sizes: aligned to their width (4 in NDR,
    /// 8 in NDR64, [MS-RPCE] 2.2.5.3.4.1).
    pub(crate) fn structure(&mut self) -> Option<()> {
        self.align(self.width())
    }

    /// Bytes of a pointer or a size.
    pub(crate) fn width(&self) -> usize {
        match self.encoding {
            Encoding::Ndr => 4,
            Encoding::Ndr64 => 8,
        }
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|bytes| bytes.first().copied())
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.align(2)?;
        self.take(2)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u16(bytes))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.align(4)?;
        self.take(4)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u32(bytes))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.align(8)?;
        self.take(8)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u64(bytes))
    }

    /// A conformance, variance or count: 4 bytes in NDR, 8 in NDR64.
    pub(crate) fn size(&mut self) -> Option<usize> {
        let value = match self.encoding {
            Encoding::Ndr => u64::from(self.u32()?),
            Encoding::Ndr64 => self.u64()?,
        };
        usize::try_from(value).ok()
    }

    /// A pointer's referent id (0 = NULL): the same width as a size.
    pub(crate) fn pointer(&mut self) -> Option<usize> {
        self.size()
    }

    /// An enum: 2 bytes in NDR, 4 in NDR64.
    pub(crate) fn enumeration(&mut self) -> Option<u16> {
        match self.encoding {
            Encoding::Ndr => self.u16(),
            Encoding::Ndr64 => self.u32().and_then(|value| u16::try_from(value).ok()),
        }
    }

    /// A context handle: 20 bytes, aligned to 4.
    pub(crate) fn handle(&mut self) -> Option<Handle> {
        self.align(4)?;
        self.take(CONTEXT_HANDLE_LEN)?.try_into().ok()
    }

    /// A GUID (aligned to 4; its first three fields in the stub's byte order).
    pub(crate) fn uuid(&mut self) -> Option<Uuid> {
        self.align(4)?;
        let bytes = self.take(16)?.try_into().ok()?;
        Some(Uuid::from_wire(bytes, self.order == ByteOrder::Little))
    }

    /// A conformant varying string of UTF-16 units ([string] wchar_t*), its NUL dropped.
    pub(crate) fn wstring(&mut self) -> Option<String> {
        self.wstring_up_to(MAX_STRING_UNITS)
    }

    /// A conformant varying string of at most `limit` units.
    pub(crate) fn wstring_up_to(&mut self, limit: usize) -> Option<String> {
        let _max_count = self.size()?;
        let offset = self.size()?;
        let actual = self.size()?;
        if offset != 0 || actual > limit {
            return None;
        }
        let bytes = self.take(actual.checked_mul(2)?)?;
        Some(utf16(bytes, self.order))
    }

    /// A conformant varying string of 8-bit characters ([string] char*), its NUL dropped.
    pub(crate) fn string(&mut self) -> Option<String> {
        let _max_count = self.size()?;
        let offset = self.size()?;
        let actual = self.size()?;
        if offset != 0 || actual > MAX_STRING_UNITS {
            return None;
        }
        let bytes = self.take(actual)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A unique pointer to a string: `Some(None)` for NULL.
    pub(crate) fn unique_wstring(&mut self) -> Option<Option<String>> {
        match self.pointer()? {
            0 => Some(None),
            _ => self.wstring().map(Some),
        }
    }

    /// A conformant array of bytes (a pointee of `[size_is(n)] byte*`): its count, then the
    /// bytes.
    pub(crate) fn conformant_bytes(&mut self) -> Option<&'a [u8]> {
        let count = self.size()?;
        self.take(count)
    }

    /// A conformant array of UTF-16 units (`[size_is(n)] wchar_t*`, a multi-string).
    pub(crate) fn conformant_units(&mut self) -> Option<&'a [u8]> {
        let count = self.size()?;
        if count > MAX_STRING_UNITS {
            return None;
        }
        self.align(2)?;
        self.take(count.checked_mul(2)?)
    }

    /// An RPC_UNICODE_STRING passed by reference at the top level: the structure, then its
    /// buffer (`None` inside for a NULL buffer).
    pub(crate) fn unicode_string(&mut self) -> Option<Option<String>> {
        self.structure()?;
        let _length = self.u16()?;
        let _maximum = self.u16()?;
        match self.pointer()? {
            0 => Some(None),
            _ => self.unicode_buffer().map(Some),
        }
    }

    /// The deferred buffer of an RPC_UNICODE_STRING: a conformant varying array of units.
    pub(crate) fn unicode_buffer(&mut self) -> Option<String> {
        self.wstring()
    }

    /// An RPC_SID, its conformance first ([MS-DTYP] 2.4.2.3), as text (S-1-5-21-...).
    pub(crate) fn sid(&mut self) -> Option<String> {
        let count = self.size()?;
        let _revision = self.u8()?;
        let declared = usize::from(self.u8()?);
        if count != declared || count > MAX_SUB_AUTHORITIES {
            return None;
        }
        let authority = self.take(6)?;
        let mut subs = Vec::with_capacity(count);
        for _ in 0..count {
            subs.push(self.u32()?);
        }
        Some(sid_text(authority, &subs))
    }
}

/// A SID as text: the authority (48-bit big-endian) and the sub-authorities.
pub(super) fn sid_text(authority: &[u8], subs: &[u32]) -> String {
    let authority = authority
        .iter()
        .fold(0_u64, |value, byte| value << 8 | u64::from(*byte));
    let mut text = format!("S-1-{authority}");
    for sub in subs {
        text.push('-');
        text.push_str(&sub.to_string());
    }
    text
}

/// A SID in its binary form ([MS-DTYP] 2.4.2.2, little-endian sub-authorities), as in a DSNAME.
pub(super) fn binary_sid(bytes: &[u8]) -> Option<String> {
    let (&_revision, rest) = bytes.split_first()?;
    let (&count, rest) = rest.split_first()?;
    let count = usize::from(count);
    if count > MAX_SUB_AUTHORITIES {
        return None;
    }
    let authority = rest.get(..6)?;
    let subs: Vec<u32> = rest
        .get(6..6 + 4 * count)?
        .chunks_exact(4)
        .map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect();
    Some(sid_text(authority, &subs))
}

/// UTF-16 (wchar_t units in the stub's byte order) to text, a trailing NUL dropped, unpaired
/// surrogates replaced.
pub(super) fn utf16(bytes: &[u8], order: ByteOrder) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| order.u16([pair[0], pair[1]]))
        .collect();
    let units = units.strip_suffix(&[0]).unwrap_or(&units);
    String::from_utf16_lossy(units)
}
