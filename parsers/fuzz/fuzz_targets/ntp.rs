//! NTP: one UDP payload through the MS-SNTP-aware parser.
#![no_main]

use dcwatch_parsers::ntp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ntp::parse(data) {
        assert!(packet.trailer_len + ntp::HEADER_LEN == data.len());
        if let Some(auth) = packet.authenticator {
            assert!(auth.rid() <= 0x7fff_ffff);
            assert_eq!(auth.old_password(), auth.key_id >> 31 == 1);
            assert_eq!(auth.len, packet.trailer_len);
        }
        assert!(!format!("{packet:?}").is_empty());
    }
});
