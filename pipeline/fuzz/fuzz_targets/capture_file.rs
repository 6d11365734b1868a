//! The whole input is a capture file: read every frame `replay` would, and decode each one.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use dcwatch_pipeline::{
    capture_file::CaptureFile,
    decode,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = CaptureFile::new(data, Path::new("fuzz.pcap")) else {
        return;
    };
    while let Ok(Some(frame)) = file.next_frame() {
        let _ = decode::decode(frame.link, frame.data);
    }
});
