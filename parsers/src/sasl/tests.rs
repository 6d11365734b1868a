//! Fixtures: parsers/tests/fixtures/ldap/sasl_*.hex, whole SASL buffers (length included);
//! SOURCES.tsv there names each one's capture and frame, or how it was crafted.
use super::*;
use dcwatch_tests::fixture::hex;

macro_rules! token {
    ($name:literal) => {
        hex(include_str!(concat!(
            "../../tests/fixtures/ldap/",
            $name,
            ".hex"
        )))[4..]
            .to_vec()
    };
}

// modify-request.pcapng frame 12, tshark "SASL GSS-API Integrity: modifyRequest(8)":
// 05 04 | flags 04 (AcceptorSubkey; Sealed clear) | ff | EC 000c | RRC 000c | SND_SEQ
// 000000005cd0f0c9 | the 12-octet checksum rotated to the front | 30 84 000000ab ... (the
// modifyRequest, 177 octets).
#[test]
fn rfc4121_signed_token_is_unrotated() {
    let token = token!("sasl_integrity_modify");
    let Wrap::Signed(plaintext) = unwrap(&token) else {
        panic!("{:?}", unwrap(&token))
    };
    assert_eq!(plaintext.len(), token.len() - 16 - 12);
    assert_eq!(plaintext[..6], [0x30, 0x84, 0, 0, 0, 0xab]);
    assert_eq!(plaintext[..], token[16 + 12..]);
    // tshark frame 14: unbindRequest(9), 30 84 00000005 02 01 09 42 00.
    let token = token!("sasl_integrity_unbind");
    assert_eq!(
        unwrap(&token),
        Wrap::Signed(Cow::Owned(hex("3084000000050201094200")))
    );
}

#[test]
fn rfc4121_rotation_and_checksum_length() {
    // Plaintext "abc", checksum "XY" (EC 2), rotated right by 1: "Y" "abcX".
    let mut token = hex("050400ff00020001 0000000000000001");
    token.extend_from_slice(b"YabcX");
    assert_eq!(unwrap(&token), Wrap::Signed(Cow::Owned(b"abc".to_vec())));
    // No rotation: borrowed.
    token[7] = 0;
    token.truncate(16);
    token.extend_from_slice(b"abcXY");
    assert_eq!(unwrap(&token), Wrap::Signed(Cow::Borrowed(&b"abc"[..])));
    // A checksum longer than the data, a filler other than ff: not a token.
    token[5] = 9;
    assert_eq!(unwrap(&token), Wrap::Unknown);
    token[5] = 2;
    token[3] = 0;
    assert_eq!(unwrap(&token), Wrap::Unknown);
}

// adlab/ldap.pcap frame 196, tshark "SASL GSS-API Privacy": flags 06 (Sealed, AcceptorSubkey).
#[test]
fn rfc4121_sealed_token() {
    let token = token!("sasl_cfx_sealed");
    assert_eq!(token[2], 0x06);
    assert_eq!(unwrap(&token), Wrap::Sealed);
}

// krb5-sign-seal-01.pcap frame 10, tshark "SASL GSS-API Privacy": RFC 1964 framing, TOK_ID
// 02 01, SGN_ALG 11 00 (HMAC), SEAL_ALG 10 00 (RC4).
#[test]
fn rfc1964_sealed_and_signed_tokens() {
    assert_eq!(unwrap(&token!("sasl_sealed")), Wrap::Sealed);
    // The same token with SEAL_ALG ff ff: the plaintext after the confounder, its pad gone.
    let token = token!("sasl_rfc1964_signed");
    assert_eq!(
        unwrap(&token),
        Wrap::Signed(Cow::Borrowed(&hex("3084000000050201094200")[..]))
    );
    // A pad octet that does not match the padding is not trusted.
    let mut bad = token.clone();
    *bad.last_mut().unwrap() = 9;
    assert_eq!(unwrap(&bad), Wrap::Unknown);
}

// adlab/asreproast.pcap frame 72, tshark "SASL GSS-API Privacy": NTLMSSP signature version 1.
#[test]
fn ntlm_tokens_leave_the_decision_to_the_caller() {
    let token = token!("sasl_ntlm_sealed");
    assert_eq!(unwrap(&token), Wrap::Ntlm(&token[16..]));
    let token = token!("sasl_ntlm_signed");
    assert_eq!(unwrap(&token), Wrap::Ntlm(&token[16..]));
}

#[test]
fn every_prefix_and_junk_is_harmless() {
    for token in [
        token!("sasl_integrity_modify"),
        token!("sasl_rfc1964_signed"),
        token!("sasl_ntlm_signed"),
        token!("sasl_sealed"),
    ] {
        for len in 0..token.len() {
            let _ = unwrap(&token[..len]);
        }
    }
    assert_eq!(unwrap(&[]), Wrap::Unknown);
    assert_eq!(unwrap(&[0x30, 0x05]), Wrap::Unknown);
    // RFC 1964 framing around another mechanism's OID.
    assert_eq!(unwrap(&hex("6006 0604 2b060105 0201")), Wrap::Unknown);
}

// A buffer held only in part: the plaintext's front is still there to read.
#[test]
fn signed_prefix_of_a_cut_token() {
    let token = token!("sasl_integrity_modify");
    let whole = match unwrap(&token) {
        Wrap::Signed(plaintext) => plaintext.into_owned(),
        other => panic!("{other:?}"),
    };
    // Cut after 60 octets: header, the 12 rotated checksum octets, 32 of plaintext.
    assert_eq!(signed_prefix(&token[..60], token.len()), Some(&whole[..32]));
    // Whole, it is the whole plaintext.
    assert_eq!(signed_prefix(&token, token.len()), Some(&whole[..]));
    let rfc1964 = token!("sasl_rfc1964_signed");
    let prefix = signed_prefix(&rfc1964[..rfc1964.len() - 3], rfc1964.len()).unwrap();
    assert!(prefix.starts_with(&hex("30840000000502")));
    // Sealed and NTLMSSP tokens give nothing.
    for sealed in [
        token!("sasl_cfx_sealed"),
        token!("sasl_sealed"),
        token!("sasl_ntlm_signed"),
    ] {
        assert_eq!(signed_prefix(&sealed[..40], sealed.len()), None);
    }
    // A rotation past the checksum would split the plaintext: not read.
    let mut rotated = token.clone();
    rotated[7] = 13;
    assert_eq!(signed_prefix(&rotated, rotated.len()), None);
}
