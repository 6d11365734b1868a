//! Every stub decoder: the first byte picks an interface dcwatch names, the second an opnum,
//! the third the encoding, byte order and direction; the rest is the stub.
#![no_main]

use dcwatch_parsers::dcerpc::{interfaces, stub};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [interface, opnum, mode, stub_bytes @ ..] = data else {
        return;
    };
    let interfaces = interfaces::INTERFACES;
    let interface = interfaces[usize::from(*interface) % interfaces.len()].uuid;
    let opnum = u16::from(*opnum % 100);
    let encoding = if mode & 1 == 0 {
        stub::Encoding::Ndr
    } else {
        stub::Encoding::Ndr64
    };
    let order = if mode & 2 == 0 {
        stub::ByteOrder::Little
    } else {
        stub::ByteOrder::Big
    };
    let decoded = if mode & 4 == 0 {
        stub::request(interface, opnum, stub_bytes, encoding, order)
    } else {
        stub::response(interface, opnum, stub_bytes, encoding, order)
    };
    let _ = format!("{decoded:?}");
});
