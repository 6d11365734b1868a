//! DNS: `parse` on the raw bytes (a UDP payload), and `frame` / `is_pdu_start` on the same bytes
//! as the front of a TCP stream, parsing the framed PDU when it is all there.
#![no_main]

use dcwatch_parsers::dns;
use dcwatch_parsers::framing::Framing;
use libfuzzer_sys::fuzz_target;

fn touch(m: &dns::DnsMessage<'_>) {
    let _ = format!("{m:?} {} {}", m.opcode, m.rcode);
    let zone_class = m.zone().map_or(dns::RecordClass::IN, |z| z.qclass);
    for q in &m.questions {
        let _ = format!("{} {} {}", q.name, q.qtype, q.qclass);
    }
    for r in m.answers.iter().chain(&m.authorities).chain(&m.additionals) {
        let _ = format!(
            "{} {} {} {:?} {:?}",
            r.rtype,
            r.class,
            r.ttl,
            r.update_action(zone_class),
            r.prerequisite(zone_class)
        );
    }
    let _ = m.tkey_key_data().map(<[u8]>::len);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dns::parse(data) {
        touch(&m);
    }
    let _ = dns::is_pdu_start(data);
    if let Framing::Pdu(n) = dns::frame(data) {
        if let Some(pdu) = data.get(2..n) {
            if let Ok(m) = dns::parse(pdu) {
                touch(&m);
            }
        }
    }
});
