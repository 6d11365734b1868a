#![no_main]

use dcwatch_parsers::smb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smb::frame(data);
    let _ = smb::is_pdu_start(data);
    if let Ok(packet) = smb::parse(data) {
        let _ = format!("{packet:?}");
    }
    // The message alone (no session header), as a compounded SMB2 chain or an SMB1 AndX chain.
    if let Ok(packet) = smb::parse_message(data) {
        let _ = format!("{packet:?}");
    }
});
