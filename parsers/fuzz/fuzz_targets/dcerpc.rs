//! DCE-RPC PDUs, then every stub decoder over the same bytes in both encodings and byte orders.
#![no_main]

use dcwatch_parsers::dcerpc::{self, interfaces, stub};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dcerpc::frame(data);
    let _ = dcerpc::is_pdu_start(data);
    if let Ok(pdu) = dcerpc::parse(data) {
        let _ = format!("{pdu:?}");
    }
    for (encoding, order) in [stub::Encoding::Ndr, stub::Encoding::Ndr64]
        .into_iter()
        .flat_map(|encoding| {
            [
                (encoding, stub::ByteOrder::Little),
                (encoding, stub::ByteOrder::Big),
            ]
        })
    {
        for (interface, opnum) in [
            (interfaces::SVCCTL, 12),
            (interfaces::SAMR, 17),
            (interfaces::SAMR, 34),
            (interfaces::NETLOGON, 4),
            (interfaces::NETLOGON, 26),
        ] {
            let _ = format!(
                "{:?}",
                stub::request(interface, opnum, data, encoding, order)
            );
        }
        let _ = format!(
            "{:?}",
            stub::response(interfaces::EPM, 3, data, encoding, order)
        );
    }
});
