//! The active name resolution probes against real responders in a namespace of the test's own
//! (dcwprb*, removed on drop): a DNS server answering one PTR record, a host answering node
//! status and, on TCP 135, an NTLM-over-RPC bind, an address where nothing answers, one outside
//! the probed subnets, and the rate. The responders are written from RFC 1035 4.1, RFC 1002
//! 4.2.18, C706 12.6 and [MS-NLMP] 2.2 (dcwatch_tests::ntlm_rpc), not from the prober's code.
//! Needs root.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    sync::atomic::Ordering,
    thread,
    time::{Duration, Instant},
};

use dcwatch_entity::nnr::{NnrConfig, Resolver};
use dcwatch_proto::v1::{
    Activity, Certainty, Endpoint, NtlmActivity, ResolutionMethod, activity::Body, ntlm_activity,
};
use dcwatch_tests::{
    netns::{NetNs, ip},
    ntlm_rpc::{self, HostNames},
};
use sensor_user::probe::{ProbeCounters, ProbeSettings, Prober};

const DNS: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const NAMED: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 5);
const SILENT: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 6);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn namespace() -> NetNs {
    let ns = NetNs::create("dcwprb").expect("namespace (root needed)");
    // A veth pair with both ends inside (no dummy module on every kernel): the addresses are
    // local, so every datagram stays in the namespace.
    let link = |args: &[&str]| {
        let mut all = vec!["-n", ns.name()];
        all.extend_from_slice(args);
        ip(&all).expect("ip");
    };
    link(&[
        "link", "add", "prb0", "type", "veth", "peer", "name", "prb1",
    ]);
    for address in [
        "10.98.0.1/24",
        "10.98.0.5/24",
        "10.98.0.6/24",
        "10.99.0.1/24",
    ] {
        link(&["addr", "add", address, "dev", "prb0"]);
    }
    link(&["link", "set", "prb0", "up"]);
    link(&["link", "set", "prb1", "up"]);
    ns
}

/// A DNS server that knows one PTR record, 5.0.98.10.in-addr.arpa -> ws05.probe.example, and
/// answers NXDOMAIN to anything else; until its socket times out.
fn dns_server(socket: UdpSocket) {
    const OWNER: &[u8] = b"\x015\x010\x0298\x0210\x07in-addr\x04arpa\x00";
    let mut buffer = [0u8; 512];
    while let Ok((len, from)) = socket.recv_from(&mut buffer) {
        let query = &buffer[..len];
        // The question: from the header's end to the end of the (only) question.
        let question = &query[12..];
        let known = question.starts_with(OWNER);
        let mut answer = Vec::new();
        answer.extend_from_slice(&query[..2]);
        answer.extend_from_slice(&[0x85, if known { 0x80 } else { 0x83 }]);
        answer.extend_from_slice(&[0, 1, 0, u8::from(known), 0, 0, 0, 0]);
        answer.extend_from_slice(question);
        if known {
            let target = b"\x04ws05\x05probe\x07example\x00";
            answer.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0x0e, 0x10, 0]);
            answer.push(u8::try_from(target.len()).expect("short"));
            answer.extend_from_slice(target);
        }
        socket.send_to(&answer, from).expect("answer");
    }
}

/// A NetBIOS host answering node status: its domain's group name first, then its own unique
/// workstation name, then its MAC.
fn netbios_host(socket: UdpSocket) {
    let mut buffer = [0u8; 512];
    while let Ok((len, from)) = socket.recv_from(&mut buffer) {
        let query = &buffer[..len];
        let mut answer = Vec::new();
        answer.extend_from_slice(&query[..2]);
        answer.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0]);
        // The question's name (34 octets) as the record's name, type NBSTAT, class IN, TTL 0.
        answer.extend_from_slice(&query[12..46]);
        answer.extend_from_slice(&[0, 0x21, 0, 1, 0, 0, 0, 0]);
        let mut rdata = vec![2];
        rdata.extend_from_slice(b"PROBE          \x00\x84\x00");
        rdata.extend_from_slice(b"WS05-NB        \x00\x04\x00");
        rdata.extend_from_slice(&[0x52, 0x54, 0, 1, 2, 3]);
        rdata.extend_from_slice(&[0; 40]);
        answer.extend_from_slice(&u16::try_from(rdata.len()).expect("short").to_be_bytes());
        answer.extend_from_slice(&rdata);
        socket.send_to(&answer, from).expect("answer");
    }
}

/// What the host at NAMED says of itself over RPC: a DNS name apart from its PTR record's, so
/// the test sees which probe gave which name.
const RPC_NAMES: HostNames = HostNames {
    nb_computer: "WS05-RPC",
    nb_domain: "PROBE",
    dns_computer: "WS05-RPC.probe.example",
    dns_domain: "probe.example",
};

fn responder(address: Ipv4Addr, port: u16, serve: fn(UdpSocket)) -> thread::JoinHandle<()> {
    let socket = UdpSocket::bind((address, port)).expect("responder socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    thread::spawn(move || serve(socket))
}

fn settings(rate_per_sec: u32, timeout: Duration, dns: bool) -> ProbeSettings {
    ProbeSettings {
        subnets: vec!["10.98.0.0/24".parse().expect("subnet")],
        dns_server: dns.then(|| SocketAddr::new(IpAddr::V4(DNS), 53)),
        netbios_port: 137,
        rpc_port: 135,
        rate_per_sec,
        retry: Duration::from_hours(1),
        timeout,
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Waits until `done` holds of the counters (at most 20 s).
fn wait_for(counters: &ProbeCounters, done: impl Fn(&ProbeCounters) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(counters) {
        assert!(Instant::now() < deadline, "{counters:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn ntlm_from(address: Ipv4Addr, seconds: i64) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: Some(Endpoint {
            ip: address.octets().to_vec(),
            port: 50_000,
        }),
        dst: Some(Endpoint {
            ip: DNS.octets().to_vec(),
            port: 445,
        }),
        body: Some(Body::Ntlm(NtlmActivity {
            r#type: ntlm_activity::Type::Authenticate.into(),
            workstation: "WS05-NB".into(),
            ..NtlmActivity::default()
        })),
        ..Activity::default()
    }
}

#[test]
fn probes_name_what_answers_count_what_does_not_and_keep_to_their_subnets() {
    let ns = namespace();
    let (answers, counters) = ns
        .run(|| {
            let dns = responder(DNS, 53, dns_server);
            let host = responder(NAMED, 137, netbios_host);
            let rpc_listener = TcpListener::bind((NAMED, 135))?;
            let until = Instant::now() + Duration::from_secs(20);
            let rpc = thread::spawn(move || ntlm_rpc::serve(&rpc_listener, RPC_NAMES, 1, until));
            let prober = Prober::start(settings(100, Duration::from_millis(500), true))?;
            for address in [NAMED, SILENT, OUTSIDE, NAMED] {
                prober.ask(IpAddr::V4(address));
            }
            let counters = prober.counters();
            wait_for(counters, |c| {
                load(&c.probes_answered) + load(&c.probes_no_name) + load(&c.probes_timed_out) == 6
                    && load(&c.probes_skipped) == 2
            });
            let answers: Vec<_> = prober.answers().collect();
            let seen = (
                load(&counters.probes_sent),
                load(&counters.probes_answered),
                load(&counters.probes_no_name),
                load(&counters.probes_timed_out),
                load(&counters.probes_failed),
                load(&counters.probes_rate_limited),
            );
            drop(prober);
            drop((dns, host, rpc));
            Ok((answers, seen))
        })
        .expect("in the namespace");
    // Three probes per address probed: .5 named all three ways; .6 has no PTR record, no
    // NetBIOS host (a time-out) and refuses TCP 135.
    assert_eq!(counters, (6, 3, 2, 1, 0, 0));
    let mut found: Vec<(IpAddr, String, ResolutionMethod, bool)> = answers
        .iter()
        .map(|(evidence, _)| {
            (
                evidence.address,
                evidence.name.clone(),
                evidence.method,
                evidence.strong,
            )
        })
        .collect();
    found.sort_by_key(|(_, _, method, _)| *method as i32);
    assert_eq!(
        found,
        [
            (
                IpAddr::V4(NAMED),
                "WS05-NB".to_owned(),
                ResolutionMethod::NetbiosNodeStatus,
                true
            ),
            (
                IpAddr::V4(NAMED),
                "ws05.probe.example".to_owned(),
                ResolutionMethod::ReverseDns,
                false
            ),
            (
                IpAddr::V4(NAMED),
                "ws05-rpc.probe.example".to_owned(),
                ResolutionMethod::NtlmRpcProbe,
                true
            ),
        ]
    );

    // Recorded like passive evidence: the NTLM workstation name alone is LOW; with the node
    // status answer it is HIGH.
    let mut resolver = Resolver::new(NnrConfig::default(), [IpAddr::V4(DNS)]);
    let mut alone = ntlm_from(NAMED, 1_000);
    resolver.process(&mut alone);
    assert_eq!(
        alone
            .source_computer
            .as_ref()
            .map(dcwatch_proto::v1::Computer::certainty),
        Some(Certainty::Low)
    );
    let node_status = answers
        .iter()
        .find(|(evidence, _)| evidence.method == ResolutionMethod::NetbiosNodeStatus)
        .expect("the node status answer");
    resolver.record(&node_status.0, 1_001_000);
    let mut probed = ntlm_from(NAMED, 1_002);
    resolver.process(&mut probed);
    let computer = probed.source_computer.expect("named");
    assert_eq!(
        (computer.name.as_str(), computer.certainty()),
        ("WS05-NB", Certainty::High)
    );
}

#[test]
fn probes_beyond_the_rate_are_not_sent_and_are_counted() {
    let ns = namespace();
    let counters = ns
        .run(|| {
            // One address a second, and probing a silent address takes 100 ms (node status
            // unanswered, TCP 135 refused): of three asked at once, the first is probed, the
            // other two find no token.
            let prober = Prober::start(settings(1, Duration::from_millis(100), false))?;
            for last in [6, 7, 8] {
                prober.ask(IpAddr::V4(Ipv4Addr::new(10, 98, 0, last)));
            }
            let counters = prober.counters();
            wait_for(counters, |c| {
                load(&c.probes_timed_out) + load(&c.probes_no_name) + load(&c.probes_rate_limited)
                    == 4
            });
            let seen = (
                load(&counters.probes_sent),
                load(&counters.probes_timed_out),
                load(&counters.probes_no_name),
                load(&counters.probes_rate_limited),
            );
            Ok(seen)
        })
        .expect("in the namespace");
    assert_eq!(counters, (2, 1, 1, 2));
}
