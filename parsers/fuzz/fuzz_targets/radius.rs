//! RADIUS: `parse` on the raw bytes (a UDP payload), and both authenticator checks with a fixed
//! secret (they must never panic, whatever the packet).
#![no_main]

use dcwatch_parsers::radius;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = radius::parse(data) {
        let _ = format!("{p:?} {:?}", p.code.name());
        let _ = p.attributes.acct_status_type.and_then(radius::AcctStatusType::name);
        let _ = p.attributes.user_name.map(radius::text);
        let _ = radius::verify_response(data, &p.authenticator, b"testing123");
    }
    let _ = radius::verify_accounting_request(data, b"testing123");
});
