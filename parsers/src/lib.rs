//! Protocol parsers for dcwatch: pure functions from bytes to borrowed records.
//!
//! Every parser here follows the same rules, so that hostile traffic costs a counter and never a
//! crash: no I/O and no `unsafe`; every length read from the wire is checked against the input
//! before use; every loop, list and recursion is bounded by a named constant; anything unexpected
//! that still parses becomes a flag on the record rather than an error.
//!
//! Stream protocols also say where their PDUs end ([`framing`]), so that the sensor's reassembly
//! can hand them over whole and find the next PDU after a gap.
#![forbid(unsafe_code)]

pub mod ber;
pub mod dcerpc;
pub mod dns;
pub mod framing;
pub mod gssapi;
pub mod http;
pub mod kerberos;
pub mod ldap;
pub mod nbns;
pub mod ntlm;
pub mod ntp;
pub mod radius;
pub mod rdp;
pub mod sasl;
pub mod smb;
pub mod winevent;
