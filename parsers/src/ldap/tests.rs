//! Fixtures are TCP/UDP payloads in parsers/tests/fixtures/ldap/*.hex, copied out of the
//! captures in /work/shared/pcaps with `tshark -r F -Y 'frame.number==N' -T fields -e
//! tcp.payload` (or udp.payload); SOURCES.tsv there names the capture and frame of each.

use super::*;
use dcwatch_tests::fixture::hex;

macro_rules! fixture {
    ($name:literal) => {
        hex(include_str!(concat!(
            "../../tests/fixtures/ldap/",
            $name,
            ".hex"
        )))
    };
}

fn parse_ok(b: &[u8]) -> LdapMessage<'_> {
    assert_eq!(frame(b), Framing::Pdu(b.len()), "frame");
    assert_eq!(is_pdu_start(b), Start::Yes, "is_pdu_start");
    let m = parse(b).unwrap();
    assert_eq!(m.anomalies, Anomalies::default(), "{m:?}");
    m
}

/// Every proper prefix: no panic, `Truncated` from parse, `NeedMore` or `Pdu` from frame.
fn check_prefixes(b: &[u8]) {
    for n in 0..b.len() {
        let p = &b[..n];
        assert!(
            matches!(parse(p), Err(LdapError::Truncated { .. })),
            "prefix {n}: {:?}",
            parse(p)
        );
        assert!(matches!(frame(p), Framing::NeedMore | Framing::Pdu(_)));
        assert_ne!(is_pdu_start(p), Start::No, "prefix {n}");
    }
}

fn s(x: &str) -> LdapString<'_> {
    LdapString(x.as_bytes())
}

// arkime/tests/pcap/ldap-and-search.pcap: frames 4, 6, 8, 9, 10.
#[test]
fn arkime_bind_search_unbind() {
    let b = fixture!("simple_bind");
    let m = parse_ok(&b);
    assert_eq!(m.message_id, 1);
    assert_eq!(
        m.op,
        ProtocolOp::BindRequest {
            version: 3,
            name: s(""),
            auth: BindAuth::Simple {
                password_present: false
            }
        }
    );

    let b = fixture!("bind_response");
    let ProtocolOp::BindResponse { result, .. } = parse_ok(&b).op else {
        panic!()
    };
    assert_eq!(result.code, ResultCode::SUCCESS);

    let b = fixture!("search_and");
    let m = parse_ok(&b);
    assert_eq!(m.message_id, 2);
    let ProtocolOp::SearchRequest {
        base,
        scope,
        filter,
        attributes,
        ..
    } = m.op
    else {
        panic!()
    };
    assert_eq!((base, scope), (s(""), Scope::WHOLE_SUBTREE));
    assert_eq!(filter, "(&(cn=*fred*)(dn=joe))"); // tshark: same
    assert!(attributes.is_empty());

    let b = fixture!("search_done_nosuchobject");
    let ProtocolOp::SearchResultDone(r) = parse_ok(&b).op else {
        panic!()
    };
    assert_eq!(r.code, ResultCode::NO_SUCH_OBJECT);
    assert_eq!(r.code.name(), Some("noSuchObject"));

    let b = fixture!("unbind");
    let m = parse_ok(&b);
    assert_eq!((m.message_id, m.op), (3, ProtocolOp::UnbindRequest));
}

// zeek .../ldap/simpleauth.pcap frame 7 (search) and frame 8 (entry + done in one segment).
#[test]
fn simpleauth_search_and_entry() {
    let b = fixture!("search_simpleauth");
    let m = parse_ok(&b);
    let ProtocolOp::SearchRequest {
        base,
        filter,
        attributes,
        ..
    } = m.op
    else {
        panic!()
    };
    assert_eq!(base, s("DC=xx,DC=xxx,DC=xxxxx,DC=net"));
    assert_eq!(filter, "(&(objectclass=*)(sAMAccountName=xxxxxxxx))"); // tshark: same
    assert_eq!(attributes, vec![s("sAMAccountName")]);

    let b = fixture!("entry_and_done");
    let Framing::Pdu(n) = frame(&b) else { panic!() };
    assert!(n < b.len());
    let (entry, rest) = b.split_at(n);
    assert_eq!(
        parse_ok(entry).op,
        ProtocolOp::SearchResultEntry {
            object_name: s("CN=xxxxxxxx,OU=Users,OU=Accounts,DC=xx,DC=xxx,DC=xxxxx,DC=net"),
            attribute_count: 1,
            netlogon: None,
        }
    );
    let ProtocolOp::SearchResultDone(r) = parse_ok(rest).op else {
        panic!()
    };
    assert_eq!(r.code, ResultCode::SUCCESS);
    // The whole segment as one buffer: the second message is trailing data.
    assert!(parse(&b).unwrap().anomalies.trailing_data);
}

fn change<'a>(operation: Option<Operation>, attribute: &'a str, values: &[&'a str]) -> Change<'a> {
    Change {
        operation,
        attribute: s(attribute),
        values: values.iter().map(|value| value.as_bytes()).collect(),
        value_count: values.len(),
    }
}

// zeek .../ldap/ldap-add.pcap frames 8, 9.
#[test]
fn add() {
    let b = fixture!("add_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::AddRequest {
            entry: s("ou=People,dc=example,dc=com"),
            // tshark: objectclass (top, organizationalUnit), ou (People), description
            // (Container for user entries).
            attributes: vec![
                change(None, "objectclass", &["top", "organizationalUnit"]),
                change(None, "ou", &["People"]),
                change(None, "description", &["Container for user entries"]),
            ]
        }
    );
    let b = fixture!("add_response");
    assert!(matches!(parse_ok(&b).op, ProtocolOp::AddResponse(r) if r.code.0 == 0));
}

// zeek .../ldap/ldap-who-am-i.pcap frames 8, 9; suricata-verify ldap-extended frames 4, 6.
#[test]
fn extended() {
    let b = fixture!("whoami_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::ExtendedRequest {
            name: s("1.3.6.1.4.1.4203.1.11.3"),
            value_len: None
        }
    );
    let b = fixture!("whoami_response");
    let ProtocolOp::ExtendedResponse {
        result,
        name,
        value,
    } = parse_ok(&b).op
    else {
        panic!()
    };
    assert_eq!(result.code, ResultCode::SUCCESS);
    assert_eq!(name, None);
    assert_eq!(value, Some(&b"dn:cn=admin,dc=example,dc=com"[..]));

    let b = fixture!("extended_request");
    assert!(matches!(parse_ok(&b).op,
        ProtocolOp::ExtendedRequest { name, .. } if name == s("1.3.6.1.4.1.1466.20037")));
    let b = fixture!("extended_response");
    assert!(matches!(parse_ok(&b).op,
        ProtocolOp::ExtendedResponse { name: Some(n), .. } if n == s("1.3.6.1.4.1.1466.20037")));
}

// zeek .../ldap/issue-32.pcapng frames 1 (extensible filter) and 2 (3 references + done).
#[test]
fn references_and_extensible_filter() {
    let b = fixture!("search_issue32");
    let m = parse_ok(&b);
    let ProtocolOp::SearchRequest { filter, .. } = m.op else {
        panic!()
    };
    // tshark: "(departmentNumber:2.16.840.1.113730.3.3.2.46.1:=>=N4709)", the same.
    assert_eq!(
        filter,
        "(departmentNumber:2.16.840.1.113730.3.3.2.46.1:=>=N4709)"
    );
    assert_eq!(m.controls.len(), 2);

    let b = fixture!("references_and_done");
    let msgs: Vec<_> = messages(&b).map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 4);
    assert_eq!(
        msgs[0].op,
        ProtocolOp::SearchResultReference {
            uris: vec![s(
                "ldap://ForestDnsZones.matrix.local/DC=ForestDnsZones,DC=matrix,DC=local"
            )]
        }
    );
    assert!(matches!(&msgs[3].op, ProtocolOp::SearchResultDone(r) if r.code.0 == 0));
}

// zeek .../ldap/aduser1-ntlm.pcap frames 4, 5, 7: Sicily NTLM bind.
#[test]
fn sicily() {
    let b = fixture!("sicily_negotiate");
    let m = parse_ok(&b);
    assert_eq!(m.message_id, 173_945_320);
    let ProtocolOp::BindRequest { name, auth, .. } = m.op else {
        panic!()
    };
    assert_eq!(name, s("User1"));
    let BindAuth::Sicily { step, token } = auth else {
        panic!()
    };
    assert_eq!(step, SicilyStep::Negotiate);
    assert!(token.starts_with(b"NTLMSSP\0\x01\0\0\0"));

    let b = fixture!("sicily_challenge");
    let ProtocolOp::BindResponse {
        sicily_challenge, ..
    } = parse_ok(&b).op
    else {
        panic!()
    };
    assert!(
        sicily_challenge
            .unwrap()
            .starts_with(b"NTLMSSP\0\x02\0\0\0")
    );

    let b = fixture!("sicily_response");
    let m = parse_ok(&b);
    assert_eq!(m.message_id, 1_489_001_992);
    assert!(matches!(m.op, ProtocolOp::BindRequest {
        auth: BindAuth::Sicily { step: SicilyStep::Response, token }, .. }
        if token.starts_with(b"NTLMSSP\0\x03\0\0\0")));
}

// zeek .../ldap/sasl-ntlm.pcap frames 4, 6; suricata-verify ldap-bind frames 4, 6;
// zeek .../ldap/krb5-sign-seal-01.pcap frame 8 (GSS-SPNEGO, 0x84 long lengths).
#[test]
fn sasl_binds() {
    let b = fixture!("sasl_ntlm_bind");
    let ProtocolOp::BindRequest { auth, .. } = parse_ok(&b).op else {
        panic!()
    };
    let BindAuth::Sasl {
        mechanism,
        credentials,
    } = auth
    else {
        panic!()
    };
    assert_eq!(mechanism, s("NTLM"));
    assert!(credentials.unwrap().starts_with(b"NTLMSSP\0"));

    let b = fixture!("sasl_ntlm_in_progress");
    let ProtocolOp::BindResponse {
        result,
        server_sasl_creds,
        sicily_challenge,
    } = parse_ok(&b).op
    else {
        panic!()
    };
    assert_eq!(result.code, ResultCode::SASL_BIND_IN_PROGRESS);
    assert!(server_sasl_creds.unwrap().starts_with(b"NTLMSSP\0\x02"));
    assert_eq!(sicily_challenge, None);

    let b = fixture!("sasl_cram_md5_bind");
    assert!(matches!(parse_ok(&b).op, ProtocolOp::BindRequest {
        auth: BindAuth::Sasl { mechanism, credentials: None }, .. } if mechanism == s("CRAM-MD5")));
    let b = fixture!("sasl_cram_md5_response");
    assert!(matches!(parse_ok(&b).op, ProtocolOp::BindResponse {
        server_sasl_creds: Some(c), .. } if c.starts_with(b"<10a13c7bf708")));

    let b = fixture!("gss_spnego_bind");
    let m = parse_ok(&b);
    assert_eq!(m.message_id, 215);
    assert!(matches!(m.op, ProtocolOp::BindRequest {
        auth: BindAuth::Sasl { mechanism, credentials: Some(c) }, .. }
        if mechanism == s("GSS-SPNEGO") && c.first() == Some(&0x60)));
}

// zeek .../ldap/ldap_invalid_credentials.pcap frame 4.
#[test]
fn invalid_credentials() {
    let b = fixture!("invalid_credentials");
    let ProtocolOp::BindResponse { result, .. } = parse_ok(&b).op else {
        panic!()
    };
    assert_eq!(result.code, ResultCode::INVALID_CREDENTIALS);
    assert_eq!(result.code.name(), Some("invalidCredentials"));
    assert!(
        result
            .diagnostic_message
            .to_str_lossy()
            .contains("data 52e")
    );
}

// suricata-verify tests/ldap-{modify,modify-dn,compare,delete,abandon}/ldap.pcap frames 4, 6.
#[test]
fn other_operations() {
    let b = fixture!("modify_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::ModifyRequest {
            object: s("uid=jdoe,ou=People,dc=example,dc=com"),
            // tshark: delete givenName John, add givenName Jonathan, replace cn Jonathan Doe.
            changes: vec![
                change(Some(Operation::DELETE), "givenName", &["John"]),
                change(Some(Operation::ADD), "givenName", &["Jonathan"]),
                change(Some(Operation::REPLACE), "cn", &["Jonathan Doe"]),
            ]
        }
    );
    let b = fixture!("moddn_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::ModifyDnRequest {
            entry: s("uid=jdoe,ou=People,dc=example,dc=com"),
            new_rdn: s("uid=john.doe"),
            delete_old_rdn: true,
            new_superior: None
        }
    );
    let b = fixture!("compare_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::CompareRequest {
            entry: s("uid=jdoe,ou=People,dc=example,dc=com"),
            attribute: s("employeeType")
        }
    );
    let b = fixture!("compare_response");
    assert!(matches!(parse_ok(&b).op,
        ProtocolOp::CompareResponse(r) if r.code == ResultCode::COMPARE_TRUE));
    let b = fixture!("del_request");
    assert_eq!(
        parse_ok(&b).op,
        ProtocolOp::DelRequest {
            dn: s("uid=jdoe,ou=People,dc=example,dc=com")
        }
    );
    for (b, ok) in [
        (fixture!("modify_response"), "ModifyResponse"),
        (fixture!("moddn_response"), "ModifyDnResponse"),
        (fixture!("del_response"), "DelResponse"),
    ] {
        assert!(format!("{:?}", parse_ok(&b).op).starts_with(ok));
    }
    let b = fixture!("abandon");
    let m = parse_ok(&b);
    assert_eq!(
        (m.message_id, m.op),
        (6, ProtocolOp::AbandonRequest { id: 5 })
    );
}

// suricata-verify tests/ldap-udp/cldap.pcap frames 1, 2: CLDAP DC locator over UDP 389.
#[test]
fn cldap() {
    let b = fixture!("cldap_search");
    let msgs: Vec<_> = messages(&b).collect();
    assert_eq!(msgs.len(), 1);
    let ProtocolOp::SearchRequest {
        scope,
        filter,
        attributes,
        ..
    } = &msgs[0].as_ref().unwrap().op
    else {
        panic!()
    };
    assert_eq!(*scope, Scope::BASE_OBJECT);
    // tshark: "(&(&(DnsDomain=s4.howto.abartlet.net)(Host=WINDOWS7-3))(NtVer=0x00000016))":
    // tshark nests a 3-term AND pairwise and prints NtVer as a number; RFC 4515 has one
    // AND and the binary value escaped.
    assert_eq!(
        filter,
        "(&(DnsDomain=s4.howto.abartlet.net)(Host=WINDOWS7-3)(NtVer=\\16\\00\\00\\00))"
    );
    assert_eq!(attributes, &vec![s("Netlogon")]);
    let ProtocolOp::SearchRequest { base, .. } = &msgs[0].as_ref().unwrap().op else {
        panic!()
    };
    let ping = ping::request(*base, *scope, attributes, filter).unwrap();
    assert_eq!(ping.domain.as_deref(), Some("s4.howto.abartlet.net"));
    assert_eq!(ping.host.as_deref(), Some("WINDOWS7-3"));
    // tshark: mscldap.ntver.flags 0x00000016.
    assert_eq!(ping.nt_ver, Some(0x16));
    assert_eq!((ping.user, ping.aac), (None, None));

    let b = fixture!("cldap_entry_and_done");
    let msgs: Vec<_> = messages(&b).map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 2);
    let ProtocolOp::SearchResultEntry {
        attribute_count: 1,
        netlogon: Some(netlogon),
        ..
    } = msgs[0].op
    else {
        panic!("{:?}", msgs[0].op)
    };
    // tshark: mscldap.netlogon.opcode 23, LOGON_SAM_LOGON_RESPONSE_EX.
    assert_eq!(ping::response_opcode(netlogon), Some(0x17));
    assert!(matches!(&msgs[1].op, ProtocolOp::SearchResultDone(r) if r.code.0 == 0));
}

/// zeek .../ldap/ldap_escaping_test.pcapng frames 8, 34, 47, 60, 86, compared with the
/// `Filter:` line of `tshark -V`. Differences: tshark renders an n-term AND as nested pairs
/// (`(&(&(a)(b))(c))`) where the PDU has one AND of three, and prints values unescaped
/// (`(name=Test()`), which RFC 4515 3 forbids: `(` `)` `*` must be `\28` `\29` `\2a`.
#[test]
fn escaping_matches_rfc4515() {
    let tail = "(mail=*@example.com)(|(dept=accounting)(dept=operations)))";
    for (b, tshark, ours) in [
        (fixture!("escaping_frame8"), "(name=Test)", "(&(name=Test)"),
        (
            fixture!("escaping_frame34"),
            "(name=Test()",
            "(&(name=Test\\28)",
        ),
        (
            fixture!("escaping_frame47"),
            "(name=Test))",
            "(&(name=Test\\29)",
        ),
        (
            fixture!("escaping_frame60"),
            "(name=Test(())",
            "(&(name=Test\\28\\28\\29)",
        ),
        (
            fixture!("escaping_frame86"),
            "(name=Test(with_a_*))",
            "(&(name=Test\\28with_a_\\2a\\29)",
        ),
    ] {
        let ProtocolOp::SearchRequest { filter, .. } = parse_ok(&b).op else {
            panic!()
        };
        assert_eq!(filter, format!("{ours}{tail}"), "tshark: {tshark}");
    }
}

// zeek .../ldap/krb5-sign-seal-01.pcap frame 10 (sealed), modify-request.pcapng frame 12
// (integrity only): SASL buffers after a GSS-SPNEGO bind.
#[test]
fn sasl_framing() {
    for b in [fixture!("sasl_sealed"), fixture!("sasl_integrity_modify")] {
        assert_eq!(frame_sasl(&b), Framing::Pdu(b.len()));
        assert_eq!(is_sasl_start(&b), Start::Yes);
        assert_eq!(frame(&b), Framing::NotPdu);
        assert_eq!(is_pdu_start(&b), Start::No);
        for n in 0..4 {
            assert_eq!(frame_sasl(&b[..n]), Framing::NeedMore);
        }
    }
    assert_eq!(frame_sasl(&[0, 0, 0, 0]), Framing::NotPdu);
    assert_eq!(frame_sasl(&[1, 0, 0, 0]), Framing::NotPdu);
    assert_eq!(
        frame_sasl(&[0, 0xff, 0xff, 0xff]),
        Framing::Pdu(0x0100_0003)
    );
    assert_eq!(is_sasl_start(&[0, 0, 0, 0x20, 0x30, 0x84, 0, 0]), Start::No);
    // LDAP messages are never SASL buffers and vice versa.
    assert_eq!(is_sasl_start(&fixture!("simple_bind")), Start::No);
}

#[test]
fn every_prefix_of_every_fixture() {
    for b in [
        fixture!("search_and"),
        fixture!("search_issue32"),
        fixture!("sicily_response"),
        fixture!("gss_spnego_bind"),
        fixture!("modify_request"),
        fixture!("cldap_search"),
        fixture!("whoami_response"),
        fixture!("abandon"),
    ] {
        check_prefixes(&b);
    }
}

/// Hostile: a declared length of 0xffffffff, the 5-octet length form, indefinite length.
#[test]
fn hostile_lengths() {
    let huge = [
        0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01, 0x42, 0x00,
    ];
    assert_eq!(frame(&huge), Framing::Pdu(6 + 0xffff_ffff));
    assert_eq!(is_pdu_start(&huge), Start::No);
    assert!(matches!(
        parse(&huge),
        Err(LdapError::Truncated { needed }) if needed == 6 + 0xffff_ffff
    ));
    let five = [0x30, 0x85, 0, 0, 0, 0, 5, 0x02, 0x01, 0x01, 0x42, 0x00];
    assert_eq!(frame(&five), Framing::NotPdu);
    assert_eq!(is_pdu_start(&five), Start::No);
    assert!(matches!(
        parse(&five),
        Err(LdapError::Ber {
            source: BerError::LengthTooLong,
            ..
        })
    ));
    let indefinite = [0x30, 0x80, 0x02, 0x01, 0x01, 0x42, 0x00, 0x00, 0x00];
    assert_eq!(frame(&indefinite), Framing::NotPdu);
    assert!(parse(&indefinite).is_err());
    // An inner length running past its parent is malformed, not "need more".
    let inner = [0x30, 0x05, 0x02, 0x01, 0x01, 0x63, 0x7f];
    assert!(matches!(parse(&inner), Err(LdapError::Ber { .. })));
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag, 0x84];
    v.extend(u32::try_from(value.len()).unwrap().to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn search(filter: &[u8], attrs: &[u8]) -> Vec<u8> {
    let mut body = tlv(0x04, b"DC=x");
    body.extend([0x0a, 1, 2, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0]);
    body.extend_from_slice(filter);
    body.extend(tlv(0x30, attrs));
    let mut msg = vec![0x02, 0x01, 0x07];
    msg.extend(tlv(0x63, &body));
    tlv(0x30, &msg)
}

/// Hostile: a search with 100,000 requested attributes keeps [`MAX_LIST_ITEMS`].
#[test]
fn search_with_100k_attributes() {
    let attrs: Vec<u8> = std::iter::repeat_n([0x04, 0x02, b'c', b'n'], 100_000)
        .flatten()
        .collect();
    let b = search(&[0x87, 0x01, b'a'], &attrs);
    let m = parse(&b).unwrap();
    assert!(m.anomalies.list_truncated);
    let ProtocolOp::SearchRequest { attributes, .. } = m.op else {
        panic!()
    };
    assert_eq!(attributes.len(), MAX_LIST_ITEMS);
}

/// Hostile: a filter nested 10,000 deep returns quickly with a cut filter and a flag.
#[test]
fn search_with_filter_10000_deep() {
    let mut f = vec![0x87, 0x01, b'a'];
    for _ in 0..10_000 {
        f = tlv(0xa2, &f);
    }
    let b = search(&f, &[]);
    assert_eq!(is_pdu_start(&b), Start::Yes);
    let m = parse(&b).unwrap();
    assert!(m.anomalies.filter.too_deep);
    let ProtocolOp::SearchRequest { filter, .. } = m.op else {
        panic!()
    };
    assert_eq!(filter.matches("(!").count(), MAX_FILTER_DEPTH + 1);
}

#[test]
fn controls_bounded_and_parsed() {
    let one = tlv(
        0x30,
        &[tlv(0x04, b"1.2.840.113556.1.4.319"), vec![0x01, 1, 0xff]].concat(),
    );
    let many: Vec<u8> = std::iter::repeat_n(one.clone(), 100).flatten().collect();
    let mut b = fixture!("unbind");
    // Rebuild the unbind with controls appended inside the LDAPMessage.
    let mut body = b[2..].to_vec();
    body.extend(tlv(0xa0, &many));
    b = tlv(0x30, &body);
    let m = parse(&b).unwrap();
    assert_eq!(m.controls.len(), MAX_CONTROLS);
    assert!(m.anomalies.too_many_controls);
    assert_eq!(m.controls[0].oid, s("1.2.840.113556.1.4.319"));
    assert!(m.controls[0].critical);
}

#[test]
fn is_pdu_start_rejects_noise() {
    // A cheap xorshift: no new dependency, reproducible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut yes = 0;
    for _ in 0..200_000 {
        let mut buf = [0u8; 16];
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        buf[0] = 0x30; // the worst case: noise that happens to start with SEQUENCE
        if is_pdu_start(&buf) == Start::Yes {
            yes += 1;
        }
    }
    assert!(yes < 20, "{yes} of 200000 noise buffers accepted");
}

#[test]
fn wrong_shapes() {
    // Unknown APPLICATION tag: parses as Unknown.
    let b = [0x30, 0x05, 0x02, 0x01, 0x01, 0x71, 0x00];
    assert_eq!(parse(&b).unwrap().op, ProtocolOp::Unknown { tag: 17 });
    assert_eq!(is_pdu_start(&b), Start::No);
    // Primitive searchRequest, constructed unbind: malformed.
    assert!(parse(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x43, 0x00]).is_err());
    assert!(parse(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x62, 0x00]).is_err());
    // Negative message ID.
    assert!(parse(&[0x30, 0x05, 0x02, 0x01, 0x81, 0x42, 0x00]).is_err());
    // Simple bind with a password: the password is not in the record.
    let b = hex("301302010160 0e 020103 0400 8007 736563726574 21");
    let m = parse(&b).unwrap();
    assert!(matches!(
        m.op,
        ProtocolOp::BindRequest {
            auth: BindAuth::Simple {
                password_present: true
            },
            ..
        }
    ));
    assert!(!format!("{m:?}").contains("secret"));
}

// SASL buffers whose LDAP is in clear (SOURCES.tsv): tshark decodes frames 12 to 14 of
// modify-request.pcapng as "SASL GSS-API Integrity" modifyRequest(8), modifyResponse(8)
// success, unbindRequest(9); the sealed ones as "Privacy".
#[test]
fn sasl_payloads_in_clear_and_sealed() {
    let clear = |b: &[u8]| -> Vec<u8> {
        match sasl_payload(b) {
            SaslPayload::Clear(bytes) => bytes.into_owned(),
            SaslPayload::Opaque => panic!("opaque"),
        }
    };
    let b = fixture!("sasl_integrity_modify");
    let inner = clear(&b);
    let message = parse(&inner).unwrap();
    assert_eq!(message.message_id, 8);
    let ProtocolOp::ModifyRequest { object, changes } = message.op else {
        panic!()
    };
    assert_eq!(
        object,
        s("CN=DESKTOP-6AJTBQM,CN=Computers,DC=ad2024,DC=weberlab,DC=de")
    );
    assert!(!changes.is_empty());
    let inner = clear(&fixture!("sasl_integrity_modify_response"));
    assert!(matches!(parse(&inner).unwrap().op, ProtocolOp::ModifyResponse(r) if r.code.0 == 0));
    let inner = clear(&fixture!("sasl_integrity_unbind"));
    assert_eq!(parse(&inner).unwrap().op, ProtocolOp::UnbindRequest);
    let inner = clear(&fixture!("sasl_ntlm_signed"));
    assert!(matches!(
        parse(&inner).unwrap().op,
        ProtocolOp::SearchRequest { .. }
    ));
    let inner = clear(&fixture!("sasl_rfc1964_signed"));
    assert_eq!(parse(&inner).unwrap().op, ProtocolOp::UnbindRequest);
    for sealed in [
        fixture!("sasl_sealed"),
        fixture!("sasl_cfx_sealed"),
        fixture!("sasl_ntlm_sealed"),
    ] {
        assert_eq!(sasl_payload(&sealed), SaslPayload::Opaque);
    }
    // An NTLM-signed message with a byte more, or one less, is not taken for clear text.
    let mut longer = fixture!("sasl_ntlm_signed");
    longer.push(0);
    assert_eq!(sasl_payload(&longer), SaslPayload::Opaque);
    let shorter = fixture!("sasl_ntlm_signed");
    assert_eq!(
        sasl_payload(&shorter[..shorter.len() - 1]),
        SaslPayload::Opaque
    );
}
