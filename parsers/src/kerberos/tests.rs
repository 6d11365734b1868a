//! Fixtures are in parsers/tests/fixtures/kerberos/<capture>_f<frame>_<what>.hex: one message,
//! record mark removed, taken with
//! `tshark -r F -o tcp.desegment_tcp_streams:TRUE -Y frame.number==N -T fields
//!  -e tcp.reassembled.data -e tcp.payload -e udp.payload`.
//! Expected values are what tshark 4 shows for the same frame with
//! `-T fields -e kerberos.msg_type -e kerberos.name_type -e kerberos.CNameString
//!  -e kerberos.SNameString -e kerberos.realm -e kerberos.crealm -e kerberos.etype
//!  -e kerberos.ENCTYPE -e kerberos.kvno -e kerberos.padata_type -e kerberos.error_code
//!  -e kerberos.kdc_options -e kerberos.nonce -e kerberos.till -e kerberos.rtime
//!  -e kerberos.addr_nb -e kerberos.addr_ip -e kerberos.include_pac -e kerberos.ap_options
//!  -e kerberos.stime -e kerberos.e_text`.
use super::*;
use dcwatch_tests::fixture::hex;

macro_rules! fixture {
    ($name:literal) => {
        hex(include_str!(concat!(
            "../../tests/fixtures/kerberos/",
            $name,
            ".hex"
        )))
    };
}

/// The tshark time `Sep 13, 2037 02:48:05 UTC`, the "no expiry" time Windows asks for.
const Y2037: i64 = 2_136_422_885;

fn kdc_req(msg: &KrbMessage) -> &KdcReq {
    match &msg.body {
        Body::KdcReq(req) => req,
        other => panic!("not a KDC-REQ: {other:?}"),
    }
}

fn kdc_rep(msg: &KrbMessage) -> &KdcRep {
    match &msg.body {
        Body::KdcRep(rep) => rep,
        other => panic!("not a KDC-REP: {other:?}"),
    }
}

fn krb_error(msg: &KrbMessage) -> &KrbError {
    match &msg.body {
        Body::Error(err) => err,
        other => panic!("not a KRB-ERROR: {other:?}"),
    }
}

fn name(p: Option<&Principal>) -> String {
    p.map(ToString::to_string).unwrap_or_default()
}

fn etypes(list: &[i32]) -> Vec<EncryptionType> {
    list.iter().map(|&e| EncryptionType(e)).collect()
}

fn padata(list: &[i32]) -> Vec<PaDataType> {
    list.iter().map(|&p| PaDataType(p)).collect()
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frame 8, AS-REQ without pre-auth.
// tshark: msg_type 10, name_type 1,2, CNameString robin, SNameString krbtgt,CYLERA.LAB,
// realm CYLERA.LAB, ENCTYPE 18,23,-133,-128,24,-135, padata_type 128, kdc_options 40810010,
// nonce 1493830583, till/rtime Sep 13 2037 02:48:05, addr_nb WS01, include_pac 1.
#[test]
fn as_req_windows() {
    let msg = parse(&fixture!("msgtype_f8_as_req")).unwrap();
    assert_eq!(msg.msg_type, MessageType::AS_REQ);
    assert_eq!(msg.anomalies, Anomalies::default());
    let req = kdc_req(&msg);
    let cname = req.cname.as_ref().unwrap();
    assert_eq!(cname.name_type, NameType::NT_PRINCIPAL);
    assert_eq!(cname.to_string(), "robin");
    assert_eq!(req.sname.as_ref().unwrap().name_type, NameType::NT_SRV_INST);
    assert_eq!(name(req.sname.as_ref()), "krbtgt/CYLERA.LAB");
    assert_eq!(req.realm, "CYLERA.LAB");
    assert_eq!(req.etypes, etypes(&[18, 23, -133, -128, 24, -135]));
    assert_eq!(req.padata_types, padata(&[128]));
    assert_eq!(req.kdc_options, KdcOptions(0x4081_0010));
    assert!(
        req.kdc_options
            .contains(KdcOptions::FORWARDABLE | KdcOptions::CANONICALIZE)
    );
    assert_eq!(req.nonce, 1_493_830_583);
    assert_eq!(
        (req.from, req.till, req.rtime),
        (None, Some(Y2037), Some(Y2037))
    );
    assert_eq!(req.addresses, ["WS01"]);
    assert_eq!(req.pac_request, Some(true));
    assert!(!req.enc_timestamp && !req.fast_armor && req.ap_req.is_none());
    assert_eq!(req.additional_tickets, 0);
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frame 16, AS-REQ with PA-ENC-TIMESTAMP.
// tshark: etype 18 (the timestamp's), padata_type 2,128, nonce 1493830576.
#[test]
fn as_req_enc_timestamp() {
    let msg = parse(&fixture!("msgtype_f16_as_req_enc_ts")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(
        req.padata_types,
        [PaDataType::PA_ENC_TIMESTAMP, PaDataType::PA_PAC_REQUEST]
    );
    assert!(req.enc_timestamp);
    assert_eq!(
        req.enc_timestamp_etype,
        Some(EncryptionType::AES256_CTS_HMAC_SHA1_96)
    );
    assert_eq!(req.nonce, 1_493_830_576);
    assert_eq!(req.pac_request, Some(true));
}

// arkime/tests/pcap/krb5-udp.pcap: frame 1, AS-REQ over UDP with PA-ENC-TIMESTAMP.
// tshark: CNameString xxxxxxxx$, SNameString krbtgt,xx.xxx.xxxxx.NET, etype 18,
// ENCTYPE 18,17,16,23, padata_type 2,149, kdc_options 40000000, nonce 741142704,
// till Jun 18 2016 22:14:15.
#[test]
fn as_req_udp_machine_account() {
    let msg = parse(&fixture!("arkime_udp_f1_as_req")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(name(req.cname.as_ref()), "xxxxxxxx$");
    assert_eq!(name(req.sname.as_ref()), "krbtgt/xx.xxx.xxxxx.NET");
    assert_eq!(req.etypes, etypes(&[18, 17, 16, 23]));
    assert_eq!(req.padata_types, padata(&[2, 149]));
    assert_eq!(req.enc_timestamp_etype, Some(EncryptionType(18)));
    assert_eq!(req.kdc_options.0, 0x4000_0000);
    assert_eq!(req.nonce, 741_142_704);
    assert_eq!(req.till, Some(1_466_288_055));
    assert_eq!(req.pac_request, None);
}

// zeek/testing/btest/Traces/krb/kinit.pcap: frame 73, MIT AS-REQ with an IPv4 address.
// tshark: CNameString valid_client_principal, ENCTYPE 18,17,16,23,25,26, padata_type 149,
// kdc_options 40000010, nonce 1153654627, addr_ip 192.168.2.158.
#[test]
fn as_req_mit_ipv4_address() {
    let msg = parse(&fixture!("kinit_f73_as_req_ipv4")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(name(req.cname.as_ref()), "valid_client_principal");
    assert_eq!(req.etypes, etypes(&[18, 17, 16, 23, 25, 26]));
    assert_eq!(req.padata_types, padata(&[149]));
    assert_eq!(req.kdc_options.0, 0x4000_0010);
    assert_eq!(req.nonce, 1_153_654_627);
    assert_eq!(req.addresses, ["192.168.2.158"]);
}

// zeek/testing/btest/Traces/krb/optional-service-name.pcap: frame 3, AS-REQ with neither cname
// nor sname, and its KRB-ERROR (frame 4).
// tshark f3: realm kerberos_realm_time.nasl, ENCTYPE 11, kdc_options 40000010, nonce 26069.
// tshark f4: error_code 60, SNameString krbtgt,HEC.NET, realm HEC.NET, stime Mar 16 2012 17:29:46.
#[test]
fn as_req_without_sname() {
    let msg = parse(&fixture!("optsname_f3_as_req")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!((req.cname.as_ref(), req.sname.as_ref()), (None, None));
    assert_eq!(req.realm, "kerberos_realm_time.nasl");
    assert_eq!(req.etypes, etypes(&[11]));
    assert!(req.padata_types.is_empty());
    assert_eq!(req.nonce, 26069);
    assert_eq!(req.kdc_options.0, 0x4000_0010);

    let msg = parse(&fixture!("optsname_f4_error")).unwrap();
    let err = krb_error(&msg);
    assert_eq!(err.error_code, ErrorCode::KRB_ERR_GENERIC);
    assert_eq!(err.sname.to_string(), "krbtgt/HEC.NET");
    assert_eq!(err.realm, "HEC.NET");
    assert_eq!(err.stime, Some(1_331_918_986));
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frame 9, KRB-ERROR PREAUTH_REQUIRED.
// tshark: error_code 25, SNameString krbtgt,CYLERA.LAB, realm CYLERA.LAB,
// padata_type (e-data) 19,2,16,15, stime Jun 22 2021 09:27:40, susec 649488.
#[test]
fn error_preauth_required() {
    let msg = parse(&fixture!("msgtype_f9_error_preauth_required")).unwrap();
    assert_eq!(msg.msg_type, MessageType::KRB_ERROR);
    let err = krb_error(&msg);
    assert_eq!(err.error_code, ErrorCode::KDC_ERR_PREAUTH_REQUIRED);
    assert_eq!(err.error_code.name(), Some("KDC_ERR_PREAUTH_REQUIRED"));
    assert_eq!(err.sname.to_string(), "krbtgt/CYLERA.LAB");
    assert_eq!(err.realm, "CYLERA.LAB");
    assert_eq!((err.crealm.as_deref(), err.cname.as_ref()), (None, None));
    assert!(err.e_data_present);
    assert_eq!(err.e_data_padata_types, padata(&[19, 2, 16, 15]));
    // tshark: kerberos.etype 18,23,-133,-128 in PA-ETYPE-INFO2.
    assert_eq!(err.offered_etypes, etypes(&[18, 23, -133, -128]));
    assert_eq!(err.stime, Some(1_624_354_060));
    assert_eq!(err.susec, Some(649_488));
    assert_eq!(msg.anomalies, Anomalies::default());
}

// zeek/testing/btest/Traces/krb/kinit.pcap: frame 139, MIT KRB-ERROR with cname and e-text.
// tshark: error_code 25, CNameString requires_preauth_client_principal, crealm VLADG.NET,
// padata_type 136,19,16,14,15,147,2,133, stime Jan 19 2015 22:54:09, e_text NEEDED_PREAUTH.
#[test]
fn error_mit_method_data() {
    let msg = parse(&fixture!("kinit_f139_error_method_data")).unwrap();
    let err = krb_error(&msg);
    assert_eq!(err.error_code, ErrorCode(25));
    assert_eq!(
        name(err.cname.as_ref()),
        "requires_preauth_client_principal"
    );
    assert_eq!(err.crealm.as_deref(), Some("VLADG.NET"));
    assert_eq!(err.e_text.as_deref(), Some("NEEDED_PREAUTH"));
    assert_eq!(
        err.e_data_padata_types,
        padata(&[136, 19, 16, 14, 15, 147, 2, 133])
    );
    // tshark: kerberos.etype 18,17,16,23, all in PA-ETYPE-INFO2.
    assert_eq!(err.offered_etypes, etypes(&[18, 17, 16, 23]));
    assert_eq!(err.stime, Some(1_421_708_049));
}

// nDPI/tests/cfgs/default/pcap/kerberos-error.pcap: frame 2, KRB-ERROR RESPONSE_TOO_BIG (UDP).
// tshark: error_code 52, SNameString krbtgt,LINUX.SHELL.COM, realm LINUX.SHELL.COM,
// stime Feb 22 2022 07:46:04.
#[test]
fn error_response_too_big() {
    let msg = parse(&fixture!("ndpi_f2_error_too_big")).unwrap();
    let err = krb_error(&msg);
    assert_eq!(err.error_code, ErrorCode::KRB_ERR_RESPONSE_TOO_BIG);
    assert_eq!(err.realm, "LINUX.SHELL.COM");
    assert_eq!(err.sname.to_string(), "krbtgt/LINUX.SHELL.COM");
    assert_eq!(err.stime, Some(1_645_515_964));
    assert!(!err.e_data_present && err.e_data_padata_types.is_empty());
    assert!(err.offered_etypes.is_empty());
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frame 18, AS-REP (two TCP segments).
// tshark: CNameString robin, crealm CYLERA.LAB, SNameString krbtgt,CYLERA.LAB, realm CYLERA.LAB,
// etype 18,18,18 (PA-ETYPE-INFO2, ticket, enc-part), kvno 2,2, padata_type 19.
#[test]
fn as_rep() {
    let msg = parse(&fixture!("msgtype_f18_as_rep")).unwrap();
    assert_eq!(msg.msg_type, MessageType::AS_REP);
    let rep = kdc_rep(&msg);
    assert_eq!(rep.cname.to_string(), "robin");
    assert_eq!(rep.crealm, "CYLERA.LAB");
    assert_eq!(rep.ticket.sname.to_string(), "krbtgt/CYLERA.LAB");
    assert_eq!(rep.ticket.realm, "CYLERA.LAB");
    assert_eq!(rep.ticket.etype, EncryptionType::AES256_CTS_HMAC_SHA1_96);
    assert_eq!(rep.ticket.kvno, Some(2));
    assert_eq!(rep.enc_part_etype, EncryptionType(18));
    assert_eq!(rep.enc_part_kvno, Some(2));
    assert_eq!(rep.padata_types, padata(&[19]));
    assert_eq!(msg.anomalies, Anomalies::default());
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frames 26 (TGS-REQ) and 29 (TGS-REP).
// tshark f26: msg_type 12,14, SNameString krbtgt,CYLERA.LAB,ldap,dc01 (ticket, request),
// realm CYLERA.LAB,CYLERA.LAB, etype 18,18,18, ENCTYPE 18,17,23,24,-135, kvno 2,
// padata_type 1,167, kdc_options 40810000, nonce 1493830541, ap_options 00000000.
// tshark f29: CNameString robin, SNameString ldap,dc01, etype 18,18, kvno 3.
#[test]
fn tgs_req_and_rep() {
    let msg = parse(&fixture!("msgtype_f26_tgs_req")).unwrap();
    assert_eq!(msg.msg_type, MessageType::TGS_REQ);
    let req = kdc_req(&msg);
    assert_eq!(req.cname, None);
    assert_eq!(name(req.sname.as_ref()), "ldap/dc01");
    assert_eq!(req.realm, "CYLERA.LAB");
    assert_eq!(req.etypes, etypes(&[18, 17, 23, 24, -135]));
    assert_eq!(
        req.padata_types,
        [PaDataType::PA_TGS_REQ, PaDataType::PA_PAC_OPTIONS]
    );
    assert_eq!(req.kdc_options.0, 0x4081_0000);
    assert_eq!(req.nonce, 1_493_830_541);
    let ap = req.ap_req.as_ref().unwrap();
    assert_eq!(ap.ap_options, ApOptions(0));
    assert_eq!(ap.ticket.sname.to_string(), "krbtgt/CYLERA.LAB");
    assert_eq!(ap.ticket.realm, "CYLERA.LAB");
    assert_eq!(ap.ticket.etype, EncryptionType(18));
    assert_eq!(ap.ticket.kvno, Some(2));
    assert_eq!(ap.authenticator_etype, EncryptionType(18));

    // The TGT presented here is the one the AS-REP of frame 18 issued: same hash.
    let as_rep = parse(&fixture!("msgtype_f18_as_rep")).unwrap();
    assert_eq!(ap.ticket.hash, kdc_rep(&as_rep).ticket.hash);
    assert_eq!(ap.ticket.cipher_len, kdc_rep(&as_rep).ticket.cipher_len);
    // tshark: the first kerberos.cipher of both frames (the TGT's) is 964 bytes.
    assert_eq!(ap.ticket.cipher_len, 964);
    assert_eq!(req.s4u_user, None);
    assert!(!req.is_s4u2proxy() && !req.key_list_request);

    let msg = parse(&fixture!("msgtype_f29_tgs_rep")).unwrap();
    assert_eq!(msg.msg_type, MessageType::TGS_REP);
    let rep = kdc_rep(&msg);
    assert_eq!(rep.cname.to_string(), "robin");
    assert_eq!(rep.ticket.sname.to_string(), "ldap/dc01");
    assert_eq!(rep.ticket.etype, EncryptionType(18));
    assert_eq!(rep.ticket.kvno, Some(3));
    assert_eq!(rep.enc_part_etype, EncryptionType(18));
    assert_ne!(rep.ticket.hash, ap.ticket.hash);
}

// suricata-verify/tests/krb5-kerberoasting/kerberoast.pcap: frames 4 (TGS-REQ) and 7 (TGS-REP).
// tshark f4: SNameString krbtgt,OFFENSE.LOCAL,HTTP,dc-mantvydas.offense.local,
// ENCTYPE 18,17,23,24,-135, padata_type 1, kdc_options 40810000, nonce 1608899909, kvno 2.
// tshark f7: CNameString spotless, SNameString HTTP,dc-mantvydas.offense.local, etype 23,18
// (ticket RC4, enc-part AES256), kvno 2.
#[test]
fn kerberoasting_rc4_service_ticket() {
    let msg = parse(&fixture!("kerberoast_f4_tgs_req")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(name(req.sname.as_ref()), "HTTP/dc-mantvydas.offense.local");
    assert_eq!(req.realm, "OFFENSE.LOCAL");
    assert_eq!(req.etypes, etypes(&[18, 17, 23, 24, -135]));
    assert_eq!(req.nonce, 1_608_899_909);
    let ap = req.ap_req.as_ref().unwrap();
    assert_eq!(ap.ticket.sname.to_string(), "krbtgt/OFFENSE.LOCAL");
    assert_eq!(ap.ticket.kvno, Some(2));

    let msg = parse(&fixture!("kerberoast_f7_tgs_rep")).unwrap();
    let rep = kdc_rep(&msg);
    assert_eq!(rep.cname.to_string(), "spotless");
    assert_eq!(rep.crealm, "OFFENSE.LOCAL");
    assert_eq!(
        rep.ticket.sname.to_string(),
        "HTTP/dc-mantvydas.offense.local"
    );
    assert_eq!(rep.ticket.etype, EncryptionType::RC4_HMAC);
    assert!(rep.ticket.etype.is_weak());
    assert_eq!(rep.ticket.kvno, Some(2));
    assert_eq!(rep.enc_part_etype, EncryptionType::AES256_CTS_HMAC_SHA1_96);
}

// zeek/testing/btest/Traces/krb/kinit.pcap: frame 71, TGS-REQ armoured with FAST.
// tshark: padata_type 1,136, ENCTYPE 18,17,16,23,25,26, kdc_options 00000002, kvno 1,
// SNameString krbtgt,VLADG.NET (ticket and request).
#[test]
fn tgs_req_fast_armour() {
    let msg = parse(&fixture!("kinit_f71_tgs_req_fast")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(
        req.padata_types,
        [PaDataType::PA_TGS_REQ, PaDataType::PA_FX_FAST]
    );
    assert!(req.fast_armor);
    assert_eq!(req.etypes, etypes(&[18, 17, 16, 23, 25, 26]));
    assert_eq!(req.kdc_options, KdcOptions(KdcOptions::RENEW));
    assert_eq!(name(req.sname.as_ref()), "krbtgt/VLADG.NET");
    let ap = req.ap_req.as_ref().unwrap();
    assert_eq!(ap.ticket.kvno, Some(1));
    assert_eq!(ap.ticket.sname.to_string(), "krbtgt/VLADG.NET");
}

// zeek/testing/btest/Traces/krb/auth.pcap: frame 1, TGS-REQ with the AP-REQ in PA-TGS-REQ.
// tshark: msg_type 12,14, name_type 2,1, SNameString krbtgt,VLADG.NET (ticket and request),
// etype 18,18, ENCTYPE 18,17,16,23, kvno 1, padata_type 1, kdc_options 60000000,
// nonce 1777012557, till Jan 1 1970 00:00:00.
#[test]
fn tgs_req_ap_req_in_padata() {
    let msg = parse(&fixture!("auth_f1_tgs_req")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(req.padata_types, padata(&[1]));
    assert_eq!(
        req.sname.as_ref().unwrap().name_type,
        NameType::NT_PRINCIPAL
    );
    assert_eq!(name(req.sname.as_ref()), "krbtgt/VLADG.NET");
    assert_eq!(req.etypes, etypes(&[18, 17, 16, 23]));
    assert_eq!(req.kdc_options.0, 0x6000_0000);
    assert_eq!(req.nonce, 1_777_012_557);
    assert_eq!(req.till, Some(0));
    let ap = req.ap_req.as_ref().unwrap();
    assert_eq!(ap.ticket.sname.name_type, NameType::NT_SRV_INST);
    assert_eq!(ap.ticket.etype, EncryptionType(18));
    assert_eq!(ap.ticket.kvno, Some(1));
    assert_eq!(ap.authenticator_etype, EncryptionType(18));
}

// The crafted fixtures below are real messages with PA-DATA or e-data put in by
// tests/fixtures/kerberos/make-crafted.py (no public capture has them); tshark 4.0 decodes each,
// sent to UDP 88, without an expert warning, as the comments say.

// crafted_tgs_req_s4u2self: auth.pcap frame 1's TGS-REQ with PA-TGS-REQ, PA-FOR-USER and
// PA-FOR-X509-USER. tshark: padata_type 1,129,130; PA-FOR-USER name-type 10 KerberosString
// alice@vladg.net, realm VLADG.NET, cksumtype -138, auth Kerberos; user-id nonce 123456789,
// cname bob, crealm VLADG.NET; kdc-options 40810000 (constrained-delegation False).
#[test]
fn tgs_req_s4u2self() {
    let msg = parse(&fixture!("crafted_tgs_req_s4u2self")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(req.padata_types, padata(&[1, 129, 130]));
    let user = req.s4u_user.as_ref().unwrap();
    assert_eq!(user.realm, "VLADG.NET");
    let name = user.name.as_ref().unwrap();
    assert_eq!(name.name_type, NameType::NT_ENTERPRISE);
    assert_eq!(name.to_string(), "alice@vladg.net");
    assert!(!req.is_s4u2proxy() && !req.key_list_request);
    assert_eq!(msg.anomalies, Anomalies::default());

    // PA-FOR-X509-USER alone names its cname.
    let msg = parse(&fixture!("crafted_tgs_req_s4u_x509")).unwrap();
    let user = kdc_req(&msg).s4u_user.clone().unwrap();
    assert_eq!(
        (user.realm.as_str(), self::name(user.name.as_ref()).as_str()),
        ("VLADG.NET", "bob")
    );
    assert_eq!(msg.anomalies, Anomalies::default());
}

// crafted_tgs_req_s4u2proxy: the same TGS-REQ with PA-PAC-OPTIONS, sname cifs/fs01.vladg.net
// and the TGT again as additional ticket. tshark: kdc-options 40830000 "constrained-delegation:
// True", additional-tickets: 1 item (sname krbtgt,VLADG.NET, etype 18).
#[test]
fn tgs_req_s4u2proxy() {
    let msg = parse(&fixture!("crafted_tgs_req_s4u2proxy")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(req.kdc_options.0, 0x4083_0000);
    assert!(req.kdc_options.contains(KdcOptions::CNAME_IN_ADDL_TKT));
    assert_eq!(req.additional_tickets, 1);
    assert!(req.is_s4u2proxy());
    assert_eq!(req.s4u_user, None);
    assert_eq!(name(req.sname.as_ref()), "cifs/fs01.vladg.net");

    // The option without a ticket, or a ticket without the option (user-to-user), is not.
    let mut without_ticket = req.clone();
    without_ticket.additional_tickets = 0;
    assert!(!without_ticket.is_s4u2proxy());
    let mut without_option = req.clone();
    without_option.kdc_options = KdcOptions(0x4081_0008);
    assert!(!without_option.is_s4u2proxy());
}

// crafted_tgs_req_key_list: the TGS-REQ for krbtgt/VLADG.NET with PA-DATA 161. tshark:
// padata_type 1,161 "pA-KERB-KEY-LIST-REQ", its ENCTYPE 23.
#[test]
fn tgs_req_key_list() {
    let msg = parse(&fixture!("crafted_tgs_req_key_list")).unwrap();
    let req = kdc_req(&msg);
    assert_eq!(req.padata_types, padata(&[1, 161]));
    assert_eq!(req.padata_types[1].name(), Some("KERB-KEY-LIST-REQ"));
    assert!(req.key_list_request);
    assert!(!req.is_s4u2proxy());
}

// crafted_error_etype_info[_both]: msgtype frame 9's KRB-ERROR with its e-data replaced.
// tshark: padata_type 11,2 with PA-ETYPE-INFO etypes 23,1; then 11,19,2 with PA-ETYPE-INFO2
// etypes 18,23 after the same PA-ETYPE-INFO.
#[test]
fn error_offered_etypes_prefer_etype_info2() {
    let msg = parse(&fixture!("crafted_error_etype_info")).unwrap();
    let err = krb_error(&msg);
    assert_eq!(err.e_data_padata_types, padata(&[11, 2]));
    assert_eq!(err.offered_etypes, etypes(&[23, 1]));
    let msg = parse(&fixture!("crafted_error_etype_info_both")).unwrap();
    let err = krb_error(&msg);
    assert_eq!(err.e_data_padata_types, padata(&[11, 19, 2]));
    assert_eq!(err.offered_etypes, etypes(&[18, 23]));
}

// A PA-FOR-USER whose value is not one is flagged, and the request still parses.
#[test]
fn undecodable_s4u_user_is_flagged() {
    let mut bytes = fixture!("crafted_tgs_req_s4u_x509");
    // After padata-type 130 (02 02 00 82) come [2] and the OCTET STRING; the value's SEQUENCE
    // tag (0x30) becomes an INTEGER's.
    let type_at = bytes.windows(4).position(|w| w == [2, 2, 0, 0x82]).unwrap();
    let at = type_at + bytes[type_at..].iter().position(|&b| b == 0x30).unwrap();
    bytes[at] = 0x02;
    let msg = parse(&bytes).unwrap();
    assert_eq!(kdc_req(&msg).s4u_user, None);
    assert!(msg.anomalies.bad_s4u_user);
}

/// rasn-kerberos' GeneralString refuses octets 0x80..=0xA0, which UTF-8 names contain: the
/// reason this module declares its own ASN.1 types.
#[test]
fn utf8_principal_names() {
    let mut bytes = fixture!("msgtype_f8_as_req");
    let at = bytes.windows(5).position(|w| w == b"robin").unwrap();
    // "рbin": Cyrillic er is D1 80, so the length is unchanged.
    bytes[at..at + 5].copy_from_slice(&[0xd1, 0x80, b'b', b'i', b'n']);
    let msg = parse(&bytes).unwrap();
    assert_eq!(name(kdc_req(&msg).cname.as_ref()), "рbin");
    assert!(rasn::der::decode::<rasn_kerberos::AsReq>(&bytes).is_err());
    assert!(rasn::der::decode::<rasn_kerberos::AsReq>(&fixture!("msgtype_f8_as_req")).is_ok());
}

#[test]
fn code_names() {
    assert_eq!(
        ErrorCode::KDC_ERR_PREAUTH_FAILED.name(),
        Some("KDC_ERR_PREAUTH_FAILED")
    );
    assert_eq!(ErrorCode(24).to_string(), "KDC_ERR_PREAUTH_FAILED");
    assert_eq!(ErrorCode(9999).name(), None);
    assert_eq!(ErrorCode(9999).to_string(), "9999");
    assert_eq!(ErrorCode::KDC_ERR_WRONG_REALM.0, 68);
    assert_eq!(EncryptionType::RC4_HMAC.name(), Some("rc4-hmac"));
    assert_eq!(EncryptionType(-135).name(), None);
    assert_eq!(PaDataType(136).name(), Some("PA-FX-FAST"));
    assert_eq!(MessageType(14).to_string(), "AP-REQ");
}

// ---- malformed and hostile input ----

/// Re-encodes DER with every constructed value in the indefinite-length form (valid BER).
fn to_indefinite(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, contents, next) = der::tlv(rest).unwrap();
        if tag & 0x20 != 0 {
            out.extend([tag, 0x80]);
            out.extend(to_indefinite(contents));
            out.extend([0, 0]);
        } else {
            let h = der::header(rest).unwrap();
            out.extend(&rest[..h.header_len + h.content_len]);
        }
        rest = next;
    }
    out
}

#[test]
fn every_proper_prefix_is_an_error() {
    for bytes in [
        fixture!("crafted_tgs_req_s4u2self"),
        fixture!("crafted_tgs_req_s4u2proxy"),
        fixture!("crafted_error_etype_info_both"),
    ] {
        for len in 0..bytes.len() {
            assert!(
                parse(&bytes[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
    }
    let bytes = fixture!("msgtype_f16_as_req_enc_ts");
    for len in 0..bytes.len() {
        assert!(
            parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    assert_eq!(parse(&bytes[..0]), Err(KerberosError::Empty));
    assert_eq!(
        parse(&bytes[..100]),
        Err(KerberosError::Truncated(MessageType::AS_REQ))
    );
    // The BER form cut anywhere, too.
    let ber = to_indefinite(&bytes);
    for len in 0..ber.len() {
        assert!(
            parse(&ber[..len]).is_err(),
            "BER prefix of {len} bytes parsed"
        );
    }
}

#[test]
fn ber_indefinite_lengths_parse_and_are_flagged() {
    let der = fixture!("msgtype_f26_tgs_req");
    let ber = to_indefinite(&der);
    let (a, b) = (parse(&der).unwrap(), parse(&ber).unwrap());
    assert!(b.anomalies.non_der && !a.anomalies.non_der);
    assert_eq!(a.body, b.body);
}

#[test]
fn trailing_data_and_wrong_msg_type_are_flagged() {
    let mut bytes = fixture!("msgtype_f8_as_req");
    bytes.extend([0, 0, 0]);
    assert!(parse(&bytes).unwrap().anomalies.trailing_data);

    // msg-type [2] INTEGER 10 changed to 12 inside an AS-REQ.
    let mut bytes = fixture!("msgtype_f8_as_req");
    let at = bytes
        .windows(5)
        .position(|w| w == [0xa2, 3, 2, 1, 10])
        .unwrap();
    bytes[at + 4] = 12;
    let msg = parse(&bytes).unwrap();
    assert_eq!(msg.msg_type, MessageType::AS_REQ);
    assert!(msg.anomalies.msg_type_mismatch);
}

#[test]
fn not_kerberos() {
    assert_eq!(parse(&[0x30, 0]), Err(KerberosError::NotKerberos(0x30)));
    assert_eq!(
        parse(&[0x6a, 0]),
        Err(KerberosError::Truncated(MessageType::AS_REQ))
    );
    assert_eq!(
        parse(&[0x6a, 2, 2, 0]),
        Err(KerberosError::Malformed(MessageType::AS_REQ))
    );
    assert_eq!(
        parse(&[0x75, 0]),
        Err(KerberosError::Unsupported(MessageType::KRB_PRIV))
    );
    let big = vec![0x6a; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        parse(&big),
        Err(KerberosError::TooLong(MAX_MESSAGE_LEN + 1))
    );
}

/// Runs `f` on a thread with a small stack, to show that hostile nesting does not recurse.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    on_small_stack(|| {
        // 100,000 nested SEQUENCEs in the indefinite form, then in the definite form.
        let depth = 100_000;
        let mut indefinite = vec![0x6a, 0x80];
        indefinite.extend((0..depth).flat_map(|_| [0x30, 0x80]));
        indefinite.extend((0..=depth).flat_map(|_| [0, 0]));
        assert!(parse(&indefinite).is_err());

        let mut definite = vec![0x05, 0x00];
        for _ in 0..20_000 {
            let len = definite.len() as u32;
            let mut outer = vec![0x30, 0x84];
            outer.extend(len.to_be_bytes());
            outer.extend(definite);
            definite = outer;
        }
        let len = definite.len() as u32;
        let mut msg = vec![0x6a, 0x84];
        msg.extend(len.to_be_bytes());
        msg.extend(definite);
        assert!(parse(&msg).is_err());

        // The realm of a real AS-REQ as a BER constructed string (X.690 8.23.6: a GeneralString
        // is an [UNIVERSAL 27] IMPLICIT OCTET STRING, so its segments are OCTET STRINGs) nested
        // 10 and 10,000 deep: rasn concatenates the first and stops the second at its depth limit.
        let ber = to_indefinite(&fixture!("msgtype_f8_as_req"));
        let realm = [&[0x1b, 10][..], b"CYLERA.LAB"].concat();
        let at = ber.windows(realm.len()).position(|w| w == realm).unwrap();
        for (depth, parses) in [(10, true), (10_000, false)] {
            let mut nested = ber[..at].to_vec();
            nested.extend([0x3b, 0x80]);
            nested.extend((1..depth).flat_map(|_| [0x24, 0x80]));
            nested.extend([0x04, 10]);
            nested.extend(b"CYLERA.LAB");
            nested.extend((0..depth).flat_map(|_| [0, 0]));
            nested.extend(&ber[at + realm.len()..]);
            let result = parse(&nested);
            assert_eq!(result.is_ok(), parses, "{depth}: {result:?}");
            if let Ok(msg) = result {
                assert_eq!(kdc_req(&msg).realm, "CYLERA.LAB");
            }
        }
    });
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    on_small_stack(|| {
        // Outer value, inner SEQUENCE, and an OCTET STRING deep inside claiming 0x7fffffff.
        assert_eq!(
            parse(&[0x6a, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00]),
            Err(KerberosError::Truncated(MessageType::AS_REQ))
        );
        assert!(parse(&[0x6a, 0x06, 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(
            parse(&[
                0x6a, 0x89, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_err()
        );
        // The ticket cipher of a real AP-REQ inside a TGS-REQ, re-declared as 0x7fffffff long.
        let mut ber = to_indefinite(&fixture!("msgtype_f26_tgs_req"));
        let at = ber
            .windows(4)
            .position(|w| w == [0xa2, 0x80, 0x04, 0x82])
            .unwrap();
        ber.splice(at + 3..at + 6, [0x84, 0x7f, 0xff, 0xff, 0xff]);
        let msg = parse(&ber);
        // The padata value is itself an OCTET STRING: the lie surfaces as a bad PA-TGS-REQ or
        // a malformed message, never as an allocation.
        assert!(msg.is_err() || msg.as_ref().is_ok_and(|m| m.anomalies.bad_tgs_ap_req));
    });
}

#[test]
fn lists_and_strings_are_capped() {
    use rasn::types::{OctetString, SequenceOf};
    let kstring = |s: &[u8]| asn1::KString(OctetString::from_slice(s));
    let ktime = asn1::KTime(OctetString::from_static(b"20370913024805Z"));
    let long = vec![b'a'; MAX_STRING_LEN + 10];
    let req = asn1::AsReq(asn1::KdcReq {
        pvno: 5,
        msg_type: 10,
        padata: Some(
            (0..MAX_PADATA as i32 + 5)
                .map(|t| asn1::PaData {
                    padata_type: 1000 + t,
                    padata_value: OctetString::from_slice(&[]),
                })
                .chain([asn1::PaData {
                    padata_type: 136,
                    padata_value: OctetString::from_slice(&[]),
                }])
                .collect(),
        ),
        req_body: asn1::KdcReqBody {
            kdc_options: BitString::repeat(false, 32),
            cname: Some(asn1::PrincipalName {
                name_type: 1,
                name_string: (0..MAX_NAME_COMPONENTS + 3)
                    .map(|_| kstring(&long))
                    .collect(),
            }),
            realm: kstring(b"EXAMPLE.COM"),
            sname: None,
            from: None,
            till: ktime.clone(),
            rtime: Some(asn1::KTime(OctetString::from_static(b"20371313024805Z"))),
            nonce: -1,
            etype: (0..MAX_ETYPES as i32 * 100).collect::<SequenceOf<i32>>(),
            addresses: Some(
                (0..=MAX_ADDRESSES)
                    .map(|_| asn1::HostAddress {
                        addr_type: 99,
                        address: OctetString::from_slice(&[0xab; 100]),
                    })
                    .collect(),
            ),
            enc_authorization_data: None,
            additional_tickets: None,
        },
    });
    let bytes = rasn::der::encode(&req).unwrap();
    let msg = parse(&bytes).unwrap();
    let out = kdc_req(&msg);
    assert!(msg.anomalies.truncated_lists && msg.anomalies.truncated_strings);
    assert!(msg.anomalies.bad_time);
    assert_eq!(out.etypes.len(), MAX_ETYPES);
    assert_eq!(out.padata_types.len(), MAX_PADATA);
    // Derived flags see every entry, not only the copied ones.
    assert!(out.fast_armor);
    let cname = out.cname.as_ref().unwrap();
    assert_eq!(cname.components.len(), MAX_NAME_COMPONENTS);
    assert!(cname.components.iter().all(|c| c.len() == MAX_STRING_LEN));
    assert_eq!(out.addresses.len(), MAX_ADDRESSES);
    assert_eq!(
        out.addresses[0],
        format!("type 99:{}", "ab".repeat(MAX_ADDRESS_LEN))
    );
    assert_eq!((out.till, out.rtime), (Some(Y2037), None));
    assert_eq!(out.nonce, u32::MAX);
}

#[test]
fn kerberos_times() {
    assert_eq!(unix_time(b"19700101000000Z"), Some(0));
    assert_eq!(unix_time(b"20370913024805Z"), Some(Y2037));
    assert_eq!(unix_time(b"20000229120000.123Z"), Some(951_825_600));
    assert_eq!(unix_time(b"20010229120000Z"), None);
    assert_eq!(unix_time(b"20370913024805"), None);
    assert_eq!(unix_time(b"2037091302480Z"), None);
    assert_eq!(unix_time(b"20370913024805+0100"), None);
    assert_eq!(unix_time(b"20370913244805Z"), None);
    assert_eq!(unix_time(b"20370913024805.Z"), None);
    assert_eq!(unix_time(b""), None);
}

// ---- TCP framing ----

fn with_mark(message: &[u8]) -> Vec<u8> {
    let mut out = (message.len() as u32).to_be_bytes().to_vec();
    out.extend(message);
    out
}

// suricata-verify/tests/krb5-krb5_msg_type/input.pcap: frame 8 as sent on TCP (000000de 6a81db...).
#[test]
fn frames_tcp_records() {
    let record = with_mark(&fixture!("msgtype_f8_as_req"));
    assert_eq!(&record[..4], [0, 0, 0, 0xde]);
    assert_eq!(frame(&record), Framing::Pdu(226));
    assert_eq!(frame(&record[..4]), Framing::Pdu(226));
    assert_eq!(frame(&record[..3]), Framing::NeedMore);
    assert_eq!(frame(&[]), Framing::NeedMore);
    assert_eq!(frame(&[0x80, 0, 0, 1]), Framing::NotPdu);
    assert_eq!(frame(&[0x80]), Framing::NotPdu);
    assert_eq!(frame(&[0, 0, 0, 0]), Framing::NotPdu);
    assert_eq!(frame(&[0x7f, 0xff, 0xff, 0xff]), Framing::Pdu(0x8000_0003));
}

#[test]
fn recognises_record_starts() {
    for message in [
        fixture!("msgtype_f8_as_req"),
        fixture!("msgtype_f9_error_preauth_required"),
        fixture!("msgtype_f18_as_rep"),
        fixture!("msgtype_f26_tgs_req"),
        fixture!("msgtype_f29_tgs_rep"),
        fixture!("optsname_f3_as_req"),
    ] {
        let record = with_mark(&message);
        assert_eq!(is_pdu_start(&record), Start::Yes);
        // Cut anywhere, the answer is "need more" until it is "yes": never "no".
        for len in 0..record.len() {
            assert_ne!(is_pdu_start(&record[..len]), Start::No, "cut at {len}");
        }
        assert_eq!(is_pdu_start(&record[..24]), Start::Yes);
        // Without the mark (UDP), or with a mark one off, it is not a record start.
        assert_eq!(is_pdu_start(&message), Start::No);
        let mut off = record.clone();
        off[3] = off[3].wrapping_add(1);
        assert_eq!(is_pdu_start(&off), Start::No);
        // pvno 4.
        let mut bad = record.clone();
        let at = bad.windows(3).position(|w| w == [2, 1, 5]).unwrap();
        bad[at + 2] = 4;
        assert_eq!(is_pdu_start(&bad), Start::No);
    }
    let big = [0, 0x04, 0, 1, 0x6a, 0x83, 0x04, 0, 0];
    assert_eq!(is_pdu_start(&big), Start::No);
}

#[test]
fn random_bytes_are_not_record_starts() {
    // xorshift: deterministic noise, with the first octets biased towards plausible values to
    // exercise the later checks.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut yes = 0;
    for i in 0..200_000 {
        let mut buf: Vec<u8> = (0..4).flat_map(|_| next().to_le_bytes()).collect();
        if i % 2 == 0 {
            buf[0] = 0;
            buf[1] = 0;
            buf[4] = [0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x7e][i % 7];
        }
        yes += usize::from(is_pdu_start(&buf) == Start::Yes);
    }
    assert_eq!(yes, 0);
}
