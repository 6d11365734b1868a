#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = dcwatch_parsers::winevent::parse(data) {
        let _ = format!("{event:?}");
        let _ = event.event_id.name();
        let _ = event.header.bsd_time.map(|time| time.unix_ms(2026));
    }
    let _ = dcwatch_parsers::winevent::octet_counted_frame(data);
    let _ = dcwatch_parsers::winevent::newline_frame(data);
});
