//! Fixtures are UDP payloads (`tshark -T fields -e udp.payload`); the expected values are
//! tshark 4.0's `-V` for the same frames.
use super::*;
use dcwatch_tests::fixture::hex;

/// OTRF covenant_ldap_searchrequest_domainuser.cap frame 171: "NTP Version 3, client", stratum
/// 4, Origin Aug 6 2020 15:56:41.84, Transmit 16:13:45.863574199, Key ID 58040000, then the
/// extended authenticator (Reserved 00, Flags 01, hints 00, hash id 00, 64 zero octets).
const CLIENT: &str = "\
    1b040ae9000000090000029c564d5450e2d6aaa86cf2495ee2d6a6b9d8395307e2d6a6b9d6fe6927e2d6aab9\
    dd1332e258040000000100000000000000000000000000000000000000000000000000000000000000000000\
    0000000000000000000000000000000000000000000000000000000000000000";
/// Frame 172: "NTP Version 3, server", stratum 1, Origin = the request's Transmit, Key ID
/// 58040000, the 64-octet signature.
const SERVER: &str = "\
    1c010ae90000000400000297564d5450e2d6aaaf11b4f971e2d6aab9dd1332e2e2d6aab9ddbcfef9e2d6aab9\
    ddfb2edf5804000001000000163804111ec407f6362f31e15077090f96ae4dfcafb6d23b89a78ccf4479eef9\
    cfdd83d0fb5db547a5730dbea3119e86acf377f2fbb84e90ad951903a1c2b588";
/// corelight-PetitPotam UnPatchedDCOpenFileRaw.pcapng frame 2310: "NTP Version 3, symmetric
/// active", Key ID 56040000.
const SYMMETRIC: &str = "\
    190206e90000001000100000c0a80050e4db63c281551505e4db63a1c6b3298de4db63a1c6f009e8e4db63e1\
    d175fcdc56040000000100000000000000000000000000000000000000000000000000000000000000000000\
    0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn ms_sntp_request_and_answer() {
    let request = parse(&hex(CLIENT)).unwrap();
    assert_eq!(
        (request.version, request.mode, request.stratum),
        (3, Mode::CLIENT, 4)
    );
    assert_eq!(request.transmit, 0xe2d6_aab9_dd13_32e2);
    assert_eq!(request.trailer_len, EXTENDED_AUTHENTICATOR_LEN);
    let auth = request.authenticator.unwrap();
    // Key ID 58 04 00 00, little-endian: RID 0x458 (1112), the current password.
    assert_eq!(
        (auth.key_id, auth.rid(), auth.old_password()),
        (0x458, 1112, false)
    );
    assert_eq!(auth.len, 72);
    assert_eq!(request.anomalies, Anomalies::default());

    let answer = parse(&hex(SERVER)).unwrap();
    assert_eq!((answer.mode, answer.stratum), (Mode::SERVER, 1));
    assert_eq!(answer.origin, request.transmit);
    assert_eq!(answer.authenticator.unwrap().key_id, 0x458);

    let symmetric = parse(&hex(SYMMETRIC)).unwrap();
    assert_eq!(symmetric.mode, Mode::SYMMETRIC_ACTIVE);
    assert_eq!(symmetric.authenticator.unwrap().rid(), 0x456);
}

/// What Timeroasting tools send (the header, then only a key identifier, little-endian, with
/// the top bit for the old password): 48 + 4 octets.
#[test]
fn key_identifier_alone_and_old_password_bit() {
    let mut bytes = hex(CLIENT);
    bytes.truncate(HEADER_LEN);
    bytes.extend_from_slice(&(0x8000_0000u32 | 0x450).to_le_bytes());
    let auth = parse(&bytes).unwrap().authenticator.unwrap();
    assert_eq!((auth.rid(), auth.old_password(), auth.len), (1104, true, 4));
    // The 20-octet form.
    bytes.extend_from_slice(&[0xaa; 16]);
    assert_eq!(
        parse(&bytes).unwrap().authenticator.unwrap().len,
        AUTHENTICATOR_LEN
    );
    // No authenticator, and a trailer of another length.
    bytes.truncate(HEADER_LEN);
    let plain = parse(&bytes).unwrap();
    assert_eq!((plain.authenticator, plain.trailer_len), (None, 0));
    bytes.extend_from_slice(&[0; 24]);
    let other = parse(&bytes).unwrap();
    assert_eq!(other.authenticator, None);
    assert!(other.anomalies.unknown_trailer);
}

#[test]
fn malformed_and_every_prefix() {
    let bytes = hex(SERVER);
    for len in 0..HEADER_LEN {
        assert_eq!(parse(&bytes[..len]), Err(NtpError::TooShort(len)));
    }
    for len in HEADER_LEN..=bytes.len() {
        assert!(parse(&bytes[..len]).is_ok(), "{len} octets");
    }
    let mut bad = bytes.clone();
    bad[0] = 0x04; // version 0, mode 4
    assert_eq!(parse(&bad), Err(NtpError::BadVersion(0)));
    bad[0] = 0x1e; // version 3, mode 6 (control)
    assert_eq!(parse(&bad), Err(NtpError::Unsupported(6)));
    bad[0] = 0x18; // mode 0
    assert_eq!(parse(&bad), Err(NtpError::Unsupported(0)));
    assert_eq!(
        parse(&vec![0x1b; MAX_PACKET_LEN + 1]),
        Err(NtpError::TooLong(MAX_PACKET_LEN + 1))
    );
}
