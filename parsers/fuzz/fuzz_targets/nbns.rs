//! NetBIOS name service: `parse` on the raw bytes (a UDP payload), touching every field.
#![no_main]

use dcwatch_parsers::nbns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = nbns::parse(data) {
        let _ = format!("{m:?} {:?} {:?}", m.opcode.name(), m.rcode.name());
        for q in &m.questions {
            let _ = format!("{} {:?}", q.name, q.qtype.name());
        }
        for r in &m.records {
            let _ = format!("{} {:?} {}", r.name, r.rtype.name(), r.ttl);
        }
        let _ = m.subject().map(ToString::to_string);
        let _ = m.nb_addresses().count();
        if let Some(status) = m.node_status() {
            for name in &status.names {
                let _ = format!("{} {}", name.name, name.is_group());
            }
        }
    }
});
