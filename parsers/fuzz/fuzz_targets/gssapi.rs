//! Fuzzes `gssapi::parse`, touching every field of the result.
#![no_main]

use dcwatch_parsers::gssapi::{self, GssToken};
use libfuzzer_sys::fuzz_target;

fn touch(token: &GssToken<'_>) {
    let _ = format!("{token:?}");
    match token {
        GssToken::SpnegoInit {
            mech_types,
            mech_token,
            ..
        } => {
            for oid in mech_types {
                let _ = (oid.to_string(), oid.name());
            }
            if let Some(inner) = mech_token {
                touch(inner);
            }
        }
        GssToken::SpnegoResponse {
            supported_mech,
            response_token,
            neg_state,
            ..
        } => {
            let _ = (
                supported_mech.map(|m| m.to_string()),
                neg_state.map(|s| s.name()),
            );
            if let Some(inner) = response_token {
                touch(inner);
            }
        }
        GssToken::Unknown { mech } => {
            let _ = mech.to_string();
        }
        GssToken::Kerberos { .. } | GssToken::Ntlm(_) | GssToken::Opaque(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = gssapi::parse(data) {
        touch(&token);
    }
});
