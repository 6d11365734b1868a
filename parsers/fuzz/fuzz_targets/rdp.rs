//! RDP: `frame` / `is_pdu_start` on the bytes as the front of a TCP stream, and `parse` on the
//! framed TPKT record when it is all there (and on the raw bytes).
#![no_main]

use dcwatch_parsers::framing::Framing;
use dcwatch_parsers::rdp;
use libfuzzer_sys::fuzz_target;

fn touch(tpdu: &rdp::Tpdu<'_>) {
    let _ = format!("{tpdu:?}");
    match tpdu {
        rdp::Tpdu::ConnectionRequest(request) => {
            if let Some(negotiation) = request.negotiation {
                let _ = negotiation.requested_protocols.names();
            }
        }
        rdp::Tpdu::ConnectionConfirm(confirm) => {
            let _ = confirm.stays_clear();
            if let Some(rdp::Negotiation::Failure(code)) = confirm.negotiation {
                let _ = code.name();
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = rdp::is_pdu_start(data);
    if let Ok(tpdu) = rdp::parse(data) {
        touch(&tpdu);
    }
    if let Framing::Pdu(n) = rdp::frame(data) {
        if let Some(pdu) = data.get(..n) {
            if let Ok(tpdu) = rdp::parse(pdu) {
                touch(&tpdu);
            }
        }
    }
});
