#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = dcwatch_parsers::ntlm::parse(data) {
        let _ = format!("{msg:?}");
    }
    let _ = format!("{:?}", dcwatch_parsers::ntlm::parse_av_pairs(data));
});
