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
