//! How stream protocols tell the sensor's reassembly where their PDUs are.
//!
//! Each stream parser (Kerberos over TCP, LDAP, DNS over TCP, HTTP) offers two functions over the
//! bytes at the front of a direction's stream:
//! - `frame(bytes) -> Framing`: the length of the PDU starting there, from its header alone;
//! - `is_pdu_start(bytes) -> Start`: a stricter test used after a gap or on a connection picked
//!   up mid-stream, where any byte may be the first of a PDU and a loose test would send garbage
//!   to the parser.

/// What the first bytes of a stream say about the PDU that starts there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A PDU of this many bytes, header included, starts here. It may be longer than the bytes
    /// at hand, and longer than the sensor is willing to buffer: the caller decides.
    Pdu(usize),
    /// The header is not complete: more bytes are needed to tell.
    NeedMore,
    /// These bytes do not start a PDU of this protocol.
    NotPdu,
}

/// Whether a PDU plausibly starts at the front of some bytes, for resynchronising.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Yes,
    No,
    /// Too few bytes to tell.
    NeedMore,
}
