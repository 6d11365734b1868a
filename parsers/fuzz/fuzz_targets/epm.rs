//! An ept_lookup answer as the sensor's endpoint-mapper query reads it: the PDU, then its stub
//! in both encodings and byte orders, and the bare input as a stub.
#![no_main]

use dcwatch_parsers::dcerpc::{self, epm, stub};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let stub_bytes = match dcerpc::parse(data) {
        Ok(dcerpc::Pdu {
            body: dcerpc::Body::Response(response),
            ..
        }) => response.stub,
        _ => data,
    };
    for encoding in [stub::Encoding::Ndr, stub::Encoding::Ndr64] {
        for order in [stub::ByteOrder::Little, stub::ByteOrder::Big] {
            if let Some(answer) = epm::lookup_response(stub_bytes, encoding, order) {
                assert!(answer.entries <= epm::MAX_ENTRIES);
                assert!(answer.endpoints.len() <= answer.entries);
                let _ = answer.has_more();
            }
        }
    }
});
