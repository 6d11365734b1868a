//! SASL security layer buffers: the wrap-token reader, the clear front of a cut signed token,
//! and LDAP's decision between clear and sealed on the same bytes (as a whole buffer, its
//! 4-byte length in front).
#![no_main]

use dcwatch_parsers::{ldap, sasl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The token alone, and after the 4-byte length the seeds carry.
    for token in [data, data.get(4..).unwrap_or_default()] {
        let wrap = sasl::unwrap(token);
        if let sasl::Wrap::Signed(plaintext) = &wrap {
            assert!(plaintext.len() <= token.len());
        }
        assert!(!format!("{wrap:?}").is_empty());
    }
    // As if the buffer had been cut to what the input holds, whatever its length says.
    if let Some(prefix) = ldap::sasl_clear_prefix(data) {
        assert!(prefix.len() <= data.len());
    }
    let token = data.get(4..).unwrap_or_default();
    for total in [token.len(), token.len().saturating_mul(2), usize::MAX] {
        if let Some(prefix) = sasl::signed_prefix(token, total) {
            assert!(prefix.len() <= token.len());
        }
    }
    if let ldap::SaslPayload::Clear(plaintext) = ldap::sasl_payload(data) {
        assert!(plaintext.len() <= data.len());
        for message in ldap::messages(&plaintext).flatten() {
            assert!(!format!("{message:?}").is_empty());
        }
    }
});
