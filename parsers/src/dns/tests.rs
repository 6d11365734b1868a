//! Fixtures are real captures from /work/shared/pcaps (MANIFEST.tsv), payloads taken with
//! `tshark -r F -Y 'frame.number==N' -T fields -e udp.payload` (or `tcp.payload`). The expected
//! values were compared with tshark's `dns.qry.name dns.qry.type dns.flags.rcode dns.a dns.aaaa
//! dns.srv.* dns.ptr.domain_name dns.cname dns.mx.mail_exchange dns.soa.* dns.tsig.* dns.tkey.*
//! dns.resp.{name,type,class,ttl}` for the same frames (quoted next to each test).

use super::*;
use dcwatch_tests::fixture::hex;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ok(bytes: &[u8]) -> DnsMessage<'_> {
    parse(bytes).expect("parses")
}

fn clean(m: &DnsMessage<'_>) {
    assert_eq!(m.anomalies, Anomalies::default(), "{m:#?}");
}

// arkime/tests/pcap/dns-wiresharkrepo.pcap (Wireshark's dns.cap), UDP payloads.
const WS_TXT_F2: &str = "10328180000100010000000006676f6f676c6503636f6d0000100001c00c001000010000010e00100f763d7370663120707472203f616c6c";
const WS_MX_F4: &str = "f76f8180000100060000000606676f6f676c6503636f6d00000f0001c00c000f000100000228000a002805736d747034c00cc00c000f000100000228000a000a05736d747035c00cc00c000f000100000228000a000a05736d747036c00cc00c000f000100000228000a000a05736d747031c00cc00c000f000100000228000a000a05736d747032c00cc00c000f000100000228000a002805736d747033c00cc02a00010001000002580004d8ef251ac0400001000100000258000440e9a719c0560001000100000258000442660919c06c00010001000002580004d8ef3919c08200010001000002580004d8ef2519c09800010001000002580004d8ef391a";
const WS_PTR_F8: &str = "9bbb818000010001000000000331303401390331393202363607696e2d61646472046172706100000c0001c00c000c00010001512500200c36362d3139322d392d3130340367656e09747774656c65636f6d036e657400";
const WS_AAAA_F12: &str = "f0d48180000100010000000003777777066e6574627364036f726700001c0001c00c001c0001000151800010200104f80004000702e081fffe529a6b";
const WS_CNAME_F16: &str = "8db3818000010001000000000377777706676f6f676c6503636f6d00001c0001c00c0005000100000279000803777777016cc010";
const WS_NXDOMAIN_F22: &str =
    "266d8583000100000000000003777777076578616d706c65076e6f7467696e6800001c0001";
const WS_ANY_F24: &str = "fee3818000010002000000000377777703697363036f72670000ff0001c00c001c0001000002580010200104f800000002000000000000000dc00c00010001000002580004cc98b858";
const WS_NS_F29: &str = "208a8180000100040000000003697363036f72670000020001c00c0002000100000e10000e066e732d657874046e727431c00cc00c0002000100000e10000e066e732d6578740473746831c00cc00c0002000100000e100009066e732d657874c00cc00c0002000100000e10000e066e732d657874046c676131c00c";

// suricata-verify/tests/dns/dns-udp-eve-log-srv/input.pcap, frames 1 (query with EDNS cookie)
// and 2 (response).
const SRV_Q_F1: &str = "eb5601200001000000000001045f736970045f7564700373697005766f69636506676f6f676c6503636f6d0000210001000029100000000000000c000a00085167b8381398824f";
const SRV_R_F2: &str = "eb5681800001000200000001045f736970045f7564700373697005766f69636506676f6f676c6503636f6d0000210001c00c002100010000011300260014000113c40d7369702d616e79636173742d3205766f69636506676f6f676c6503636f6d00c00c00210001000001130026000a000113c40d7369702d616e79636173742d3105766f69636506676f6f676c6503636f6d000000291000000000000000";

// zeek/testing/btest/Traces/dns/dynamic-update.pcap: frame 1 (GSS-TSIG signed UPDATE), frame 2
// (its REFUSED response), frame 3 (unsigned UPDATE).
const UPD_F1: &str = "bb50280000010001000300010953747261746f4c6162036f72670000060001054e57696e320953747261746f4c6162036f726700000500fe000000000000c01f001c00ff000000000000c01f000100ff000000000000c01f00010001000004b00004c0a8016a09313036382d6d732d370b3332382d326630323464342437613934363362382d623130392d313165642d323661332d3038303032376632323065350000fa00ff000000000036086773732d7473696700000063f4163c8ca0001c040404ffffffffff000000000677093930fb1c81196247ff4899884fbb5000000000";
const UPD_F2: &str = "bb50a80500010001000300010953747261746f4c6162036f72670000060001054e57696e320953747261746f4c6162036f726700000500fe000000000000c01f001c00ff000000000000c01f000100ff000000000000c01f00010001000004b00004c0a8016a09313036382d6d732d370b3332382d326630323464342437613934363362382d623130392d313165642d323661332d3038303032376632323065350000fa00ff000000000036086773732d7473696700000063f4163c8ca0001c040404ffffffffff000000000677093930fb1c81196247ff4899884fbb5000000000";
const UPD_F3: &str = "ef07280000010001000300000953747261746f4c6162036f72670000060001054e57696e310953747261746f4c6162036f726700000500fe000000000000c01f001c00ff000000000000c01f000100ff000000000000c01f00010001000004b00004c0a80169";

// zeek/testing/btest/Traces/dns-tsig.pcap, frame 1: A query signed with hmac-md5 TSIG.
const TSIG_F1: &str = "25e701000001000000000001076578616d706c6503636f6d00000100010a7365637265742d6b65790000fa00ff00000000003a08686d61632d6d6435077369672d616c670372656703696e7400000054060ed2012c001046bdbf31ef0236b8ebae31752c87db7f25e700000000";

// suricata-verify/tests/dns/dns-tcp-multirequest-buffer/dns-tcp-multirequest-buffer.pcap,
// frame 8: TCP PDU (length prefix included), NXDOMAIN with the zone's SOA in authority.
const TCP_SOA_F8: &str = "0050000081830001000000010000013006676f6f676c6503636f6d0000010001c00e000600010000003c0026036e7332c00e09646e732d61646d696ec00e082d36ed0000038400000384000007080000003c";

// zeek/testing/btest/Traces/dns/long-connection.pcap, frame 4: LOC (type 29) response, no answer.
const LONG_LOC_F4: &str = "49a18180000100000000000006676f6f676c6503636f6d00001d0001";

/// tshark (frame 4): dns.qry.name google.com, dns.qry.type 15, rcode 0, dns.mx.mail_exchange
/// smtp4..smtp6,smtp1..smtp3.google.com, dns.a 216.239.37.26,64.233.167.25,66.102.9.25,
/// 216.239.57.25,216.239.37.25,216.239.57.26.
#[test]
fn mx_with_additional_a() {
    let b = hex(WS_MX_F4);
    let m = ok(&b);
    clean(&m);
    assert_eq!(
        (m.id, m.is_response, m.opcode, m.rcode),
        (0xf76f, true, Opcode::QUERY, Rcode::NOERROR)
    );
    assert!(m.flags.rd && m.flags.ra && !m.flags.aa);
    assert_eq!(
        m.questions,
        vec![Question {
            name: "google.com".into(),
            qtype: RecordType::MX,
            qclass: RecordClass::IN
        }]
    );
    let mx: Vec<(u16, &str)> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::Mx {
                preference,
                exchange,
            } => (*preference, exchange.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        mx,
        vec![
            (40, "smtp4.google.com"),
            (10, "smtp5.google.com"),
            (10, "smtp6.google.com"),
            (10, "smtp1.google.com"),
            (10, "smtp2.google.com"),
            (40, "smtp3.google.com"),
        ]
    );
    assert_eq!(m.answers[0].ttl, 552);
    let a: Vec<Ipv4Addr> = m
        .additionals
        .iter()
        .map(|r| match r.data {
            RData::A(ip) => ip,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<Ipv4Addr> = [
        "216.239.37.26",
        "64.233.167.25",
        "66.102.9.25",
        "216.239.57.25",
        "216.239.37.25",
        "216.239.57.26",
    ]
    .iter()
    .map(|s| s.parse().expect("ip"))
    .collect();
    assert_eq!(a, want);
    assert_eq!(m.additionals[0].name, "smtp4.google.com");
}

/// tshark: frame 2 TXT "v=spf1 ptr ?all"; frame 8 dns.ptr.domain_name
/// 66-192-9-104.gen.twtelecom.net for 104.9.192.66.in-addr.arpa; frame 12 dns.aaaa
/// 2001:4f8:4:7:2e0:81ff:fe52:9a6b; frame 16 dns.cname www.l.google.com; frame 22 rcode 3;
/// frame 24 (ANY) dns.a 204.152.184.88, dns.aaaa 2001:4f8:0:2::d; frame 29 NS x4.
#[test]
fn wireshark_sample_answers() {
    let b = hex(WS_TXT_F2);
    let m = ok(&b);
    clean(&m);
    assert_eq!(
        m.answers[0].data,
        RData::Txt {
            strings: vec![&b"v=spf1 ptr ?all"[..]],
            truncated: false
        }
    );

    let b = hex(WS_PTR_F8);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.questions[0].name, "104.9.192.66.in-addr.arpa");
    assert_eq!(m.questions[0].qtype, RecordType::PTR);
    assert_eq!(
        m.answers[0].data,
        RData::Ptr("66-192-9-104.gen.twtelecom.net".into())
    );

    let b = hex(WS_AAAA_F12);
    let m = ok(&b);
    clean(&m);
    let want: Ipv6Addr = "2001:4f8:4:7:2e0:81ff:fe52:9a6b".parse().expect("ip");
    assert_eq!(m.answers[0].data, RData::Aaaa(want));
    assert_eq!(m.answers[0].name, "www.netbsd.org");

    let b = hex(WS_CNAME_F16);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.answers[0].rtype, RecordType::CNAME);
    assert_eq!(m.answers[0].data, RData::Cname("www.l.google.com".into()));

    let b = hex(WS_NXDOMAIN_F22);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.rcode, Rcode::NXDOMAIN);
    assert_eq!(m.questions[0].name, "www.example.notginh");
    assert!(m.answers.is_empty());

    let b = hex(WS_ANY_F24);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.questions[0].qtype, RecordType::ANY);
    let want: Ipv6Addr = "2001:4f8:0:2::d".parse().expect("ip");
    assert_eq!(m.answers[0].data, RData::Aaaa(want));
    assert_eq!(
        m.answers[1].data,
        RData::A(Ipv4Addr::new(204, 152, 184, 88))
    );

    let b = hex(WS_NS_F29);
    let m = ok(&b);
    clean(&m);
    let ns: Vec<_> = m.answers.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        ns,
        vec![
            RData::Ns("ns-ext.nrt1.isc.org".into()),
            RData::Ns("ns-ext.sth1.isc.org".into()),
            RData::Ns("ns-ext.isc.org".into()),
            RData::Ns("ns-ext.lga1.isc.org".into()),
        ]
    );

    let b = hex(LONG_LOC_F4);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.questions[0].qtype.to_string(), "LOC");
}

/// tshark: frame 1 dns.qry.name _sip._udp.sip.voice.google.com, type 33, udp_payload_size 4096,
/// dns.opt.code 10 (cookie); frame 2 dns.srv.priority 20,10, weight 1,1, port 5060,5060,
/// target sip-anycast-2.voice.google.com, sip-anycast-1.voice.google.com.
#[test]
fn srv_query_and_response() {
    let b = hex(SRV_Q_F1);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.questions[0].name, "_sip._udp.sip.voice.google.com");
    assert_eq!(m.questions[0].qtype, RecordType::SRV);
    assert!(m.flags.rd && m.flags.ad && !m.is_response);
    let e = m.edns.as_ref().expect("opt");
    assert_eq!(
        (e.udp_payload_size, e.version, e.dnssec_ok, e.options.len()),
        (4096, 0, false, 12)
    );
    assert_eq!(e.options.get(..2), Some(&[0u8, 10][..]));
    assert_eq!(m.additionals[0].name, ".");

    let b = hex(SRV_R_F2);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.answers.len(), 2);
    assert_eq!(
        m.answers[0].data,
        RData::Srv {
            priority: 20,
            weight: 1,
            port: 5060,
            target: "sip-anycast-2.voice.google.com".into()
        }
    );
    assert_eq!(
        m.answers[1].data,
        RData::Srv {
            priority: 10,
            weight: 1,
            port: 5060,
            target: "sip-anycast-1.voice.google.com".into()
        }
    );
    assert_eq!(m.answers[0].ttl, 275);
    assert_eq!(m.rcode, Rcode::NOERROR);
}

/// tshark (frames 1-4): dns.resp.name NWin2.StratoLab.org x4 then the TSIG key name, types
/// 5,28,1,1,250, classes NONE,ANY,ANY,IN,ANY, ttls 0,0,0,1200,0, dns.a 192.168.1.106,
/// dns.tsig.algorithm_name gss-tsig, mac_size 28, original_id 47952; frame 2 rcode 5.
#[test]
fn dynamic_update_with_gss_tsig() {
    let b = hex(UPD_F1);
    let m = ok(&b);
    clean(&m);
    assert_eq!((m.opcode, m.is_response), (Opcode::UPDATE, false));
    assert_eq!(
        m.counts,
        Counts {
            questions: 1,
            answers: 1,
            authorities: 3,
            additionals: 1
        }
    );
    let zone = m.zone().expect("zone");
    assert_eq!(
        (zone.name.as_str(), zone.qtype, zone.qclass),
        ("StratoLab.org", RecordType::SOA, RecordClass::IN)
    );
    let pr = m.prerequisites();
    assert_eq!(pr.len(), 1);
    assert_eq!(
        (pr[0].name.as_str(), pr[0].rtype, pr[0].class),
        ("NWin2.StratoLab.org", RecordType::CNAME, RecordClass::NONE)
    );
    assert_eq!(
        pr[0].prerequisite(zone.qclass),
        Prerequisite::RrsetDoesNotExist
    );
    let ups: Vec<_> = m
        .updates()
        .iter()
        .map(|r| (r.name.as_str(), r.rtype, r.update_action(zone.qclass)))
        .collect();
    assert_eq!(
        ups,
        vec![
            (
                "NWin2.StratoLab.org",
                RecordType::AAAA,
                UpdateAction::DeleteRrset
            ),
            (
                "NWin2.StratoLab.org",
                RecordType::A,
                UpdateAction::DeleteRrset
            ),
            ("NWin2.StratoLab.org", RecordType::A, UpdateAction::Add),
        ]
    );
    assert_eq!(m.updates()[2].ttl, 1200);
    assert_eq!(
        m.updates()[2].data,
        RData::A(Ipv4Addr::new(192, 168, 1, 106))
    );
    assert!(m.tsig_present && !m.tkey_present);
    let t = m.tsig.as_ref().expect("tsig");
    assert_eq!(
        (t.algorithm.as_str(), t.mac.len(), t.original_id, t.fudge),
        ("gss-tsig", 28, 47952, 36000)
    );
    assert_eq!(t.error, Rcode::NOERROR);
    assert_eq!(
        m.additionals[0].name,
        "1068-ms-7.328-2f024d4.7a9463b8-b109-11ed-26a3-080027f220e5"
    );

    let b = hex(UPD_F2);
    let m = ok(&b);
    clean(&m);
    assert_eq!(
        (m.opcode, m.is_response, m.rcode),
        (Opcode::UPDATE, true, Rcode::REFUSED)
    );

    let b = hex(UPD_F3);
    let m = ok(&b);
    clean(&m);
    assert!(!m.tsig_present);
    assert_eq!(
        m.updates()[2].data,
        RData::A(Ipv4Addr::new(192, 168, 1, 105))
    );
}

#[test]
fn update_action_rules() {
    let rec = |class, rtype, ttl, data| Record {
        name: "h.example".into(),
        rtype,
        class,
        ttl,
        data,
    };
    let a = RData::A(Ipv4Addr::new(10, 0, 0, 1));
    let inn = RecordClass::IN;
    assert_eq!(
        rec(RecordClass::ANY, RecordType::ANY, 0, RData::Empty).update_action(inn),
        UpdateAction::DeleteAllRrsets
    );
    assert_eq!(
        rec(RecordClass::NONE, RecordType::A, 0, a.clone()).update_action(inn),
        UpdateAction::DeleteRr
    );
    assert_eq!(
        rec(RecordClass::ANY, RecordType::A, 5, RData::Empty).update_action(inn),
        UpdateAction::Invalid
    );
    assert_eq!(
        rec(RecordClass::ANY, RecordType::A, 0, a.clone()).update_action(inn),
        UpdateAction::Invalid
    );
    assert_eq!(
        rec(RecordClass::CH, RecordType::A, 0, a.clone()).update_action(inn),
        UpdateAction::Invalid
    );
    assert_eq!(
        rec(RecordClass::IN, RecordType::AXFR, 0, a).update_action(inn),
        UpdateAction::Invalid
    );
    assert_eq!(
        rec(RecordClass::ANY, RecordType::ANY, 0, RData::Empty).prerequisite(inn),
        Prerequisite::NameInUse
    );
    assert_eq!(
        rec(RecordClass::NONE, RecordType::ANY, 0, RData::Empty).prerequisite(inn),
        Prerequisite::NameNotInUse
    );
    assert_eq!(
        rec(RecordClass::ANY, RecordType::A, 0, RData::Empty).prerequisite(inn),
        Prerequisite::RrsetExists
    );
}

/// tshark (frame 1): dns.tsig.algorithm_name hmac-md5.sig-alg.reg.int, mac_size 16,
/// original_id 9703, fudge 300, time_signed Sep 2, 2014 18:39:14 UTC.
#[test]
fn hmac_md5_tsig() {
    let b = hex(TSIG_F1);
    let m = ok(&b);
    clean(&m);
    assert_eq!(m.questions[0].name, "example.com");
    let t = m.tsig.as_ref().expect("tsig");
    assert_eq!(t.algorithm, "hmac-md5.sig-alg.reg.int");
    assert_eq!(
        (t.mac.len(), t.original_id, t.fudge, t.time_signed),
        (16, 9703, 300, 0x5406_0ed2)
    );
    assert_eq!(m.additionals[0].name, "secret-key");
}

/// zeek/testing/btest/Traces/dns/tkey.pcap: the query is TCP frames 4, 5 and 7 concatenated
/// (length prefix 0x0cad = 3245), the response frame 8. tshark: dns.tkey.algo_name gss-tsig,
/// mode 3, key_size 3073 (query) and 185 (response), response types 249,250; the query key is
/// SPNEGO negTokenInit (60 82 0b fd 06 06 2b 06 01 05 05 02) around a Kerberos AP-REQ.
#[test]
fn gss_tsig_tkey_over_tcp() {
    let q = include_bytes!("../../tests/fixtures/dns/tkey-query.tcp.bin");
    assert_eq!(frame(q), Framing::Pdu(3247));
    assert_eq!(is_pdu_start(q), Start::Yes);
    let m = ok(&q[2..]);
    clean(&m);
    assert_eq!(m.id, 0xcda0);
    assert_eq!(m.questions[0].qtype, RecordType::TKEY);
    assert_eq!(
        m.questions[0].name,
        "1068-ms-7.309-2c6e448.7a9463b8-b109-11ed-26a3-080027f220e5"
    );
    assert!(m.tkey_present && !m.tsig_present);
    let t = m.tkey.as_ref().expect("tkey");
    assert_eq!(
        (t.algorithm.as_str(), t.mode, t.error),
        ("gss-tsig", Tkey::MODE_GSSAPI, Rcode::NOERROR)
    );
    assert_eq!(t.expiration - t.inception, 86400);
    let key = m.tkey_key_data().expect("key");
    assert_eq!(key.len(), 3073);
    assert_eq!(key.get(..12), Some(&hex("60820bfd06062b0601050502")[..]));
    assert_eq!(m.additionals[0].class, RecordClass::ANY);

    let r = include_bytes!("../../tests/fixtures/dns/tkey-response.tcp.bin");
    assert_eq!(frame(r), Framing::Pdu(r.len()));
    assert_eq!(is_pdu_start(r), Start::Yes);
    let m = ok(&r[2..]);
    clean(&m);
    assert!(m.is_response && !m.flags.aa); // flags 0x8000
    assert!(m.tkey_present && m.tsig_present);
    assert_eq!(m.answers[0].rtype, RecordType::TKEY);
    let key = m.tkey_key_data().expect("key");
    assert_eq!(key.len(), 185);
    assert_eq!(key.get(..3), Some(&[0xa1, 0x81, 0xb6][..]));
    assert_eq!(
        m.tsig.as_ref().map(|t| t.algorithm.as_str()),
        Some("gss-tsig")
    );
}

/// dns-tcp-multirequest-buffer frame 4: twenty pipelined A queries in one segment,
/// tshark dns.qry.name 0.google.com .. 19.google.com, dns.qry.type 1.
#[test]
fn tcp_pipelined_queries() {
    let buf = include_bytes!("../../tests/fixtures/dns/tcp-multirequest.bin");
    let mut at = 0;
    let mut starts = Vec::new();
    let mut names = Vec::new();
    while at < buf.len() {
        let Framing::Pdu(n) = frame(&buf[at..]) else {
            panic!("no PDU at {at}")
        };
        starts.push(at);
        let m = ok(&buf[at + 2..at + n]);
        clean(&m);
        assert_eq!(m.questions[0].qtype, RecordType::A);
        names.push(m.questions[0].name.clone());
        at += n;
    }
    assert_eq!(at, buf.len());
    let want: Vec<String> = (0..20).map(|i| format!("{i}.google.com")).collect();
    assert_eq!(names, want);
    // Resynchronising: is_pdu_start says Yes exactly at the message boundaries.
    let yes: Vec<usize> = (0..buf.len())
        .filter(|&i| is_pdu_start(&buf[i..]) == Start::Yes)
        .collect();
    assert_eq!(yes, starts);
    assert_eq!(frame(&buf[..1]), Framing::NeedMore);
    assert_eq!(is_pdu_start(&buf[..13]), Start::NeedMore);
}

/// Same capture, frame 8: tshark rcode 3, dns.soa.mname ns2.google.com, rname
/// dns-admin.google.com, serial 137180909, refresh 900, retry 900, expire 1800, minimum 60.
#[test]
fn tcp_nxdomain_with_soa() {
    let b = hex(TCP_SOA_F8);
    assert_eq!(frame(&b), Framing::Pdu(b.len()));
    assert_eq!(is_pdu_start(&b), Start::Yes);
    let m = ok(&b[2..]);
    clean(&m);
    assert_eq!(m.rcode, Rcode::NXDOMAIN);
    assert_eq!(m.authorities[0].name, "google.com");
    assert_eq!(
        m.authorities[0].data,
        RData::Soa(Soa {
            mname: "ns2.google.com".into(),
            rname: "dns-admin.google.com".into(),
            serial: 137_180_909,
            refresh: 900,
            retry: 900,
            expire: 1800,
            minimum: 60,
        })
    );
}

fn name_wire(out: &mut Vec<u8>, dotted: &str) {
    for l in dotted.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

fn rr(out: &mut Vec<u8>, owner: &[u8], t: RecordType, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&t.0.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

fn tcp(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// No AXFR/IXFR in the capture corpus (`tshark -Y 'dns.qry.type==252 || dns.qry.type==251'`
/// finds none), so this AXFR exchange is built by hand per RFC 5936 2.2: request = one question
/// (example.com AXFR IN); response = SOA, the zone's records, SOA again, names compressed.
#[test]
fn axfr_built_by_hand() {
    let mut q = hex("1234 0000 0001 0000 0000 0000");
    name_wire(&mut q, "example.com");
    q.extend_from_slice(&hex("00fc 0001"));
    let qt = tcp(&q);
    assert_eq!(is_pdu_start(&qt), Start::Yes);
    assert_eq!(frame(&qt), Framing::Pdu(qt.len()));
    let m = ok(&q);
    clean(&m);
    assert_eq!(m.questions[0].qtype, RecordType::AXFR);
    assert_eq!(m.questions[0].qtype.to_string(), "AXFR");

    let mut r = hex("1234 8400 0001 0003 0000 0000");
    r.extend_from_slice(&q[12..]);
    let mut soa = hex("036e7331 c00c 0a686f73746d6173746572 c00c"); // ns1.@ hostmaster.@
    for v in [2_024_010_101u32, 7200, 3600, 1_209_600, 300] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    rr(&mut r, &hex("c00c"), RecordType::SOA, 3600, &soa);
    rr(
        &mut r,
        &hex("03777777 c00c"),
        RecordType::A,
        300,
        &[192, 0, 2, 1],
    );
    rr(&mut r, &hex("c00c"), RecordType::SOA, 3600, &soa);
    let rt = tcp(&r);
    assert_eq!(is_pdu_start(&rt), Start::Yes);
    let m = ok(&r);
    clean(&m);
    assert!(m.is_response && m.flags.aa);
    assert_eq!(m.answers.len(), 3);
    let RData::Soa(s) = &m.answers[0].data else {
        panic!("{:?}", m.answers[0])
    };
    assert_eq!(
        (s.mname.as_str(), s.rname.as_str(), s.serial),
        ("ns1.example.com", "hostmaster.example.com", 2_024_010_101)
    );
    assert_eq!(m.answers[1].name, "www.example.com");
    assert_eq!(m.answers[1].data, RData::A(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(m.answers[2].data, m.answers[0].data);
}

#[test]
fn opt_extends_rcode() {
    // Response, header rcode 0, OPT with extended rcode 1: 16 = BADVERS (RFC 6891 6.1.3).
    let mut b = hex("0001 8000 0000 0000 0000 0001");
    b.extend_from_slice(&hex("00 0029 0200 01000000 0000"));
    let m = ok(&b);
    assert_eq!(m.rcode, Rcode::BADVERS);
    assert_eq!(m.rcode.to_string(), "BADVERS");
    assert_eq!(m.edns.as_ref().map(|e| e.udp_payload_size), Some(512));
    clean(&m);
    // Two OPTs, one owned by a non-root name.
    let mut b = hex("0001 8000 0000 0000 0000 0002");
    b.extend_from_slice(&hex("00 0029 0200 00000000 0000"));
    b.extend_from_slice(&hex("0161 00 0029 0200 00000000 0000"));
    assert!(ok(&b).anomalies.opt_misplaced);
}

// ---- hostile and malformed input ----

#[test]
fn short_header() {
    assert_eq!(parse(&[]), Err(DnsError::TooShort { len: 0 }));
    assert_eq!(parse(&[0; 11]), Err(DnsError::TooShort { len: 11 }));
}

#[test]
fn max_counts_in_a_bare_header() {
    let b = hex("abcd 0100 ffff ffff ffff ffff");
    let m = ok(&b);
    assert_eq!(m.counts.questions, 65535);
    assert!(m.questions.is_empty() && m.answers.is_empty());
    assert!(m.anomalies.missing_records);
    assert_eq!(is_pdu_start(&tcp(&b)), Start::No);
}

#[test]
fn every_prefix_of_a_response() {
    for fixture in [WS_MX_F4, SRV_R_F2, UPD_F1] {
        let b = hex(fixture);
        for n in 0..b.len() {
            match parse(&b[..n]) {
                Err(DnsError::TooShort { .. }) => assert!(n < HEADER_LEN),
                Err(e) => panic!("prefix {n}: {e:?}"),
                // Every declared count is non-zero, so a proper prefix always misses something.
                Ok(m) => assert!(m.anomalies.missing_records, "prefix {n}"),
            }
        }
        assert_eq!(frame(&tcp(&b)[..1]), Framing::NeedMore);
    }
}

#[test]
fn pointer_loops_fail() {
    // Question name is a pointer to itself (offset 12).
    let mut b = hex("0001 0100 0001 0000 0000 0000 c00c 0001 0001");
    assert_eq!(parse(&b), Err(DnsError::TooManyPointers));
    // Two pointers pointing at each other.
    b = hex("0001 0100 0001 0000 0000 0000 c00e c00c 0001 0001");
    assert_eq!(parse(&b), Err(DnsError::TooManyPointers));
    // Owner name of an answer pointing back at its own label: grows to 255, then fails.
    b = hex("0001 8100 0000 0001 0000 0000 0161 c00c 0001 0001 00000000 0000");
    assert_eq!(parse(&b), Err(DnsError::NameTooLong));
}

#[test]
fn three_hundred_byte_name_via_pointers() {
    // After the question, five 59-octet labels, each followed by a pointer to the previous one;
    // the question's name is a (forward) pointer to the last: 5 * 60 + 1 = 301 octets.
    let mut msg = hex("0001 0100 0001 0000 0000 0000 0000 0001 0001");
    let mut prev: Option<usize> = None;
    for _ in 0..5 {
        let at = msg.len();
        msg.push(59);
        msg.extend_from_slice(&[b'y'; 59]);
        match prev {
            Some(p) => msg.extend_from_slice(&[0xc0 | (p >> 8) as u8, p as u8]),
            None => msg.push(0),
        }
        prev = Some(at);
    }
    let last = prev.expect("five blocks");
    msg[12] = 0xc0 | (last >> 8) as u8;
    msg[13] = last as u8;
    assert_eq!(parse(&msg), Err(DnsError::NameTooLong));
    // Pointing at the fourth block instead (4 * 60 + 1 = 241 octets) is fine.
    let fourth = last - 62;
    msg[12] = 0xc0 | (fourth >> 8) as u8;
    msg[13] = fourth as u8;
    let m = ok(&msg);
    assert_eq!(m.questions[0].name.len(), 4 * 59 + 3);
    assert!(m.anomalies.forward_pointer && m.anomalies.trailing_bytes);
}

#[test]
fn forward_pointer_is_followed_and_flagged() {
    // Question name points forward to "a" stored after the question.
    let b = hex("0001 0100 0001 0000 0000 0000 c012 0001 0001 0161 00");
    let m = ok(&b);
    assert_eq!(m.questions[0].name, "a");
    assert!(m.anomalies.forward_pointer);
    assert!(m.anomalies.trailing_bytes);
}

#[test]
fn caps_on_questions_and_records() {
    // 65535 root questions: MAX_QUESTIONS kept, the rest skipped.
    let mut b = hex("0001 0000 ffff 0000 0000 0000");
    for _ in 0..65535 {
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
    }
    let m = ok(&b);
    assert_eq!(m.questions.len(), MAX_QUESTIONS);
    assert!(m.anomalies.questions_not_decoded && !m.anomalies.missing_records);

    // 1000 answers then a TSIG: MAX_RECORDS stored, the TSIG still found.
    let mut b = hex("0002 8000 0000 03e8 0000 0001");
    for _ in 0..1000 {
        rr(&mut b, &[0], RecordType::A, 1, &[10, 0, 0, 1]);
    }
    let mut tsig = Vec::new();
    name_wire(&mut tsig, "hmac-sha256");
    tsig.extend_from_slice(&hex("000000000001 012c 0002 abcd 0002 0000 0000"));
    rr(&mut b, &hex("016b00"), RecordType::TSIG, 0, &tsig);
    let m = ok(&b);
    assert_eq!(m.answers.len(), MAX_RECORDS);
    assert!(m.additionals.is_empty());
    assert!(m.anomalies.records_not_decoded && !m.anomalies.tsig_not_last);
    assert!(m.tsig_present);
    assert_eq!(m.tsig.as_ref().map(|t| t.mac), Some(&[0xab, 0xcd][..]));
}

#[test]
fn tsig_not_last_and_bad_rdata() {
    let mut b = hex("0003 8000 0000 0000 0000 0002");
    let mut tsig = Vec::new();
    name_wire(&mut tsig, "x");
    tsig.extend_from_slice(&hex("000000000001 012c 0000 0003 0000 0000"));
    rr(&mut b, &[0], RecordType::TSIG, 0, &tsig);
    rr(&mut b, &[0], RecordType::A, 0, &[1, 2, 3]);
    let m = ok(&b);
    assert!(m.tsig_present && m.anomalies.tsig_not_last && m.anomalies.bad_rdata);
    assert_eq!(
        m.additionals[1].data,
        RData::Malformed {
            len: 3,
            error: DnsError::BadRdata
        }
    );
}

#[test]
fn tcp_lengths_zero_and_one() {
    assert_eq!(frame(&[0, 0]), Framing::NotPdu);
    assert_eq!(frame(&[0, 1, 0]), Framing::NotPdu);
    assert_eq!(frame(&[0, 11]), Framing::NotPdu);
    assert_eq!(frame(&[0, 12]), Framing::Pdu(14));
    assert_eq!(frame(&[]), Framing::NeedMore);
    assert_eq!(frame(&[0]), Framing::NeedMore);
    let mut zero = vec![0, 0];
    zero.extend_from_slice(&hex("0001 0100 0001 0000 0000 0000"));
    assert_eq!(is_pdu_start(&zero), Start::No);
    zero[1] = 1;
    assert_eq!(is_pdu_start(&zero), Start::No);
}

#[test]
fn is_pdu_start_rejects_random_bytes() {
    // xorshift64: deterministic noise.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = [0u8; 64];
    let mut yes = 0;
    for _ in 0..100_000 {
        for b in &mut buf {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = s as u8;
        }
        if is_pdu_start(&buf) == Start::Yes {
            yes += 1;
        }
    }
    assert!(yes < 10, "{yes} random buffers accepted");
}
