//! Fuzzes `kerberos::parse` on the whole input, and the TCP framing functions, then `parse` on
//! the record that `frame` delimits.
#![no_main]

use dcwatch_parsers::framing::Framing;
use dcwatch_parsers::kerberos::{self, Body};
use libfuzzer_sys::fuzz_target;

fn touch(bytes: &[u8]) {
    if let Ok(msg) = kerberos::parse(bytes) {
        let _ = format!("{msg:?} {}", msg.msg_type);
        match &msg.body {
            Body::KdcReq(req) => {
                let _ = format!(
                    "{:?} {:?}",
                    req.cname.as_ref().map(ToString::to_string),
                    req.sname.as_ref().map(ToString::to_string)
                );
                for etype in &req.etypes {
                    let _ = (etype.name(), etype.is_weak());
                }
            }
            Body::KdcRep(rep) => {
                let _ = format!("{} {}", rep.cname, rep.ticket.sname);
            }
            Body::Error(err) => {
                let _ = format!("{} {}", err.error_code, err.sname);
            }
            Body::ApReq(_) | Body::ApRep(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    touch(data);
    let _ = kerberos::is_pdu_start(data);
    if let Framing::Pdu(total) = kerberos::frame(data) {
        if let Some(record) = data.get(kerberos::RECORD_MARK_LEN..total) {
            touch(record);
        }
    }
});
