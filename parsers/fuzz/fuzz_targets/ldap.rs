//! LDAP: framing (plain and SASL), the resync test, and the message parser, on arbitrary bytes.
#![no_main]

use dcwatch_parsers::{framing::Framing, ldap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ldap::frame_sasl(data);
    let _ = ldap::is_sasl_start(data);
    let _ = ldap::is_pdu_start(data);
    // Parse what frame says is a PDU, as the sensor does, and the whole input as CLDAP.
    if let Framing::Pdu(n) = ldap::frame(data)
        && let Some(pdu) = data.get(..n)
    {
        if let Ok(m) = ldap::parse(pdu) {
            touch(&m);
        }
    }
    for m in ldap::messages(data).flatten() {
        touch(&m);
    }
});

fn touch(m: &ldap::LdapMessage<'_>) {
    let s = format!("{m:?}");
    assert!(!s.is_empty());
    if let ldap::ProtocolOp::SearchRequest { filter, .. } = &m.op {
        assert!(filter.len() <= ldap::MAX_FILTER_LEN);
    }
}
