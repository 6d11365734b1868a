#![no_main]

use dcwatch_parsers::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = http::frame(data);
    let _ = http::frame_response(data, true);
    let _ = http::is_pdu_start(data);
    if let Ok(head) = http::parse_head(data) {
        let _ = format!("{head:?}");
        for token in &head.auth {
            if token.is_ntlmssp()
                && let Some(Ok(msg)) = token.token.bytes().map(dcwatch_parsers::ntlm::parse)
            {
                let _ = format!("{msg:?}");
            }
        }
    }
});
