//! Fixtures written as hex dumps.

/// The bytes of a hex dump as tshark, xxd or a specification prints it: every character that is
/// not a hex digit (spaces, line breaks, colons, offsets' separators) is skipped, so a fixture can
/// be pasted with its layout kept.
///
/// # Panics
/// On an odd number of hex digits: a fixture cut in the middle of a byte is a typo.
pub fn hex(dump: &str) -> Vec<u8> {
    let digits: Vec<u8> = dump.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "hex fixture with an odd number of digits ({})",
        digits.len()
    );
    digits
        .chunks_exact(2)
        .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
        .collect()
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

// The first 32 bytes of DCE-RPC segments of a real DCSync (testdata/pcaps/adlab/dcsync.pcap, the
// lab's Samba DC on its DRSUAPI port; tshark -e tcp.payload), for the XDP program's DCE-RPC header
// test.
/// Frame 53, client to DC: BIND of DRSUAPI (frag_length 112, auth_length 32).
pub const DCSYNC_BIND: &str = "05000b03100000007000200001000000b810b810000000000100000000000100";
/// Frame 60, client to DC: REQUEST, call 2 (frag_length 132, auth_length 16, sealed stub).
pub const DCSYNC_REQUEST: &str = "050000031000000084001000020000005400000000000000b59c08b9c38dae43";
/// Frame 62, DC to client: RESPONSE, call 2 (frag_length 144, auth_length 16).
pub const DCSYNC_RESPONSE: &str =
    "050002031000000090001000020000005400000000000000794cd52bf51fa838";
/// The DC's DRSUAPI port in that capture.
pub const DRSUAPI_PORT: u16 = 49_153;

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn skips_layout_and_reads_both_cases() {
        assert_eq!(hex("0a FF\n10:7e"), [0x0a, 0xff, 0x10, 0x7e]);
        assert_eq!(hex(""), Vec::<u8>::new());
    }

    #[test]
    #[should_panic(expected = "odd number of digits")]
    fn refuses_half_a_byte() {
        hex("abc");
    }
}
