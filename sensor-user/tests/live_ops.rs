//! Running the sensor as an operator would: a SIGHUP reload that opens a port in the XDP filter
//! while the process stays up, `/metrics` scraped and checked line by line against the stats
//! file, and a DC whose clock is off opening `CLOCK_SKEW` until it is set right. The real sensor in its own namespaces (prefix `dcwo`), frames over a veth pair.
//! Needs root.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use dcwatch_tests::{
    exposition,
    frames::{CLIENT_V4, DC_V4, ETHERTYPE_IPV4, Ipv4, PROTO_UDP, ethernet, tcp_v4, udp, udp_v4},
    netns::{self, NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const METRICS: &str = "127.0.0.1:9464";

/// Two namespaces joined by a veth pair, the sensor's end with loopback up (for `/metrics`).
struct Lab {
    peer: NetNs,
    capture: NetNs,
    veth: VethPair,
}

impl Lab {
    fn new() -> Self {
        let peer = NetNs::create("dcwo").expect("sender namespace");
        let capture = NetNs::create("dcwo").expect("capture namespace");
        let veth = VethPair::create(&peer, &capture).expect("veth pair");
        netns::ip(&["-n", capture.name(), "link", "set", "lo", "up"]).expect("loopback up");
        Self {
            peer,
            capture,
            veth,
        }
    }

    fn send(&self, frames: &[Vec<u8>]) {
        send_frames(
            &self.peer,
            &self.veth.sender,
            frames.iter().map(Vec::as_slice),
        )
        .expect("send frames");
    }

    fn start(&self, run: &RunDir) -> SensorProcess {
        let args = run.run_args(&[&self.veth.receiver], &["--mode", "mirror"]);
        SensorProcess::start(&self.capture, Path::new(SENSOR), &args, 1).expect("sensor starts")
    }
}

fn write_config(run: &RunDir, tcp_ports: &[u16], udp_ports: &[u16], extra: &str) {
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::write(
        &run.config,
        format!(
            "[stats]\ninterval_secs = 1\n{extra}\n[capture.ports]\ntcp = [{}]\nudp = [{}]\n",
            list(tcp_ports),
            list(udp_ports)
        ),
    )
    .expect("write the config");
}

#[test]
fn sighup_opens_a_port_in_xdp_and_the_sensor_stays_up() {
    let lab = Lab::new();
    let run = RunDir::create().expect("run directory");
    write_config(&run, &[88], &[53], "[sensor]\nlog_level = \"info\"");
    let mut sensor = lab.start(&run);

    let on_8080 = tcp_v4(8080, b"GET / HTTP/1.1\r\n\r\n");
    lab.send(&[on_8080.clone(), udp_v4(53, b"\0\0")]);
    let stats = stats_file::wait_for(&run.stats, "seen", 2, Duration::from_secs(15))
        .expect("both frames seen");
    assert_eq!(
        stats_file::counter(&stats, "matched"),
        1,
        "only the DNS frame: 8080 is not watched yet"
    );

    write_config(&run, &[88, 8080], &[53], "[sensor]\nlog_level = \"info\"");
    sensor.signal(libc::SIGHUP).expect("SIGHUP");
    // The reload is asynchronous: send on 8080 until a frame is matched (or time runs out).
    let deadline = Instant::now() + Duration::from_secs(20);
    let matched = loop {
        lab.send(std::slice::from_ref(&on_8080));
        let stats = stats_file::read(&run.stats).expect("stats");
        let matched = stats_file::counter(&stats, "matched");
        if matched >= 2 || Instant::now() >= deadline {
            break matched;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(matched >= 2, "a frame on 8080 is captured after the reload");
    assert!(
        sensor.is_running().expect("status"),
        "SIGHUP did not end it"
    );

    let finished = sensor.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:#?}", finished.stderr);
    let logged = |needle: &str| finished.stderr.iter().any(|line| line.contains(needle));
    assert!(
        logged("reload: capture.ports.tcp: applied (+8080)"),
        "{:#?}",
        finished.stderr
    );
    assert!(
        logged("reload: sensor.log_level: unchanged"),
        "{:#?}",
        finished.stderr
    );
    assert!(
        logged("reload: capture.ports.udp: unchanged"),
        "{:#?}",
        finished.stderr
    );
    let stats = stats_file::read(&run.stats).expect("final stats");
    assert_eq!(
        stats_file::counter(&stats, "matched"),
        stats_file::counter(&stats, "copied"),
        "every matched frame reached userspace"
    );
}

/// GET `path` from the sensor's probe listener, inside its namespace: status line and body.
fn get(lab: &Lab, path: &str) -> (String, String) {
    lab.capture
        .run(|| {
            let mut stream = TcpStream::connect(METRICS)?;
            stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: sensor\r\n\r\n").as_bytes())?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            Ok((
                head.lines().next().unwrap_or_default().to_owned(),
                body.to_owned(),
            ))
        })
        .expect("probe request")
}

#[test]
fn metrics_are_valid_exposition_and_equal_the_stats_file() {
    let lab = Lab::new();
    let run = RunDir::create().expect("run directory");
    write_config(
        &run,
        &[88],
        &[53],
        &format!("[metrics]\nlisten = \"{METRICS}\""),
    );
    let sensor = lab.start(&run);
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|index| {
            if index % 2 == 0 {
                udp_v4(53, b"\0\0")
            } else {
                tcp_v4(88, b"\0\0\0\x04abcd")
            }
        })
        .chain([tcp_v4(8080, b"not watched")])
        .collect();
    lab.send(&frames);
    stats_file::wait_for(&run.stats, "seen", 21, Duration::from_secs(15)).expect("frames seen");

    assert_eq!(get(&lab, "/livez").0, "HTTP/1.1 200 OK");
    assert_eq!(get(&lab, "/readyz").0, "HTTP/1.1 200 OK");
    // Nothing arrives any more, so the counters settle; a scrape between the stats file's
    // write and the probes' publication of the same tick shows the previous tick: try again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (stats, samples) = loop {
        let before = stats_file::read(&run.stats).expect("stats");
        let (status, body) = get(&lab, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let samples = exposition::parse(&body).unwrap_or_else(|error| panic!("{error}"));
        let after = stats_file::read(&run.stats).expect("stats");
        let settled = before == after
            && before
                .iter()
                .all(|(name, value)| name == "time" || metric(&samples, name) == value.as_u64());
        if settled || Instant::now() >= deadline {
            break (after, samples);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(stats.len() > 60, "the whole stats file: {}", stats.len());
    for (name, value) in &stats {
        if name != "time" {
            assert_eq!(metric(&samples, name), value.as_u64(), "{name}");
        }
    }
    // The kernel may add its own frames (IPv6 neighbour discovery) to what the test sent.
    assert!(metric(&samples, "seen") >= Some(21));
    assert_eq!(metric(&samples, "matched"), Some(20));
    assert_eq!(
        samples.get(&format!(
            "dcwatch_build_info{{daemon=\"sensor\",version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        Some(&1.0)
    );
    assert_eq!(
        samples.get("dcwatch_sensor_health_issues_open{kind=\"NIC_DOWN\"}"),
        Some(&0.0)
    );
    let finished = sensor.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:#?}", finished.stderr);
}

fn metric(samples: &BTreeMap<String, f64>, name: &str) -> Option<u64> {
    exposition::stat(samples, "dcwatch_sensor", name)
}

/// A real KRB-ERROR (PREAUTH_REQUIRED, suricata-verify's krb5_msg_type capture, frame 9) from
/// the DC over UDP, its stime set to `dc_time` (whole seconds; its susec stays 649488).
fn krb_error_at(dc_time: SystemTime, client_port: u16) -> Vec<u8> {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../parsers/tests/fixtures/kerberos/msgtype_f9_error_preauth_required.hex"
    );
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut message: Vec<u8> = digits
        .chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect();
    // stime: [4] EXPLICIT, a GeneralizedTime of 15 characters (RFC 4120 5.9.1, 5.2.3).
    let at = message
        .windows(4)
        .position(|window| window == [0xa4, 0x11, 0x18, 0x0f])
        .expect("stime")
        + 4;
    // "2021-06-22T09:27:40Z" -> "20210622092740Z".
    let generalized: String = humantime::format_rfc3339_seconds(dc_time)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | 'T'))
        .collect();
    message[at..at + 15].copy_from_slice(generalized.as_bytes());
    let ip = Ipv4::new(DC_V4, CLIENT_V4, PROTO_UDP).packet(&udp(88, client_port, &message));
    ethernet(&[], ETHERTYPE_IPV4, &ip)
}

#[test]
fn a_dc_clock_ten_minutes_behind_opens_clock_skew_until_it_is_set_right() {
    let lab = Lab::new();
    let run = RunDir::create().expect("run directory");
    write_config(
        &run,
        &[88],
        &[88],
        &format!("[sensor]\nlog_level = \"info\"\n[metrics]\nlisten = \"{METRICS}\""),
    );
    let sensor = lab.start(&run);
    let skew_open = |lab: &Lab| {
        let (_, body) = get(lab, "/metrics");
        let samples = exposition::parse(&body).unwrap_or_else(|error| panic!("{error}"));
        samples
            .get("dcwatch_sensor_health_issues_open{kind=\"CLOCK_SKEW\"}")
            .copied()
    };
    let wait_for = |lab: &Lab, open: f64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while skew_open(lab) != Some(open) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(300));
        }
        skew_open(lab)
    };
    let behind = Duration::from_mins(10);
    // Two errors are not yet an estimate; a third is.
    lab.send(&[
        krb_error_at(SystemTime::now() - behind, 50_001),
        krb_error_at(SystemTime::now() - behind, 50_002),
    ]);
    stats_file::wait_for(&run.stats, "activities", 2, Duration::from_secs(15))
        .expect("two KRB-ERRORs dissected");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(skew_open(&lab), Some(0.0), "two errors are not enough");
    lab.send(&[krb_error_at(SystemTime::now() - behind, 50_003)]);
    assert_eq!(wait_for(&lab, 1.0), Some(1.0), "open after the third");
    // The DC's clock set right: one error does not move the median of four...
    lab.send(&[krb_error_at(SystemTime::now(), 50_004)]);
    stats_file::wait_for(&run.stats, "activities", 4, Duration::from_secs(15))
        .expect("four KRB-ERRORs dissected");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(skew_open(&lab), Some(1.0), "one right error of four");
    // ...four of seven do.
    lab.send(&[
        krb_error_at(SystemTime::now(), 50_005),
        krb_error_at(SystemTime::now(), 50_006),
        krb_error_at(SystemTime::now(), 50_007),
    ]);
    assert_eq!(wait_for(&lab, 0.0), Some(0.0), "closed");

    let finished = sensor.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:#?}", finished.stderr);
    let logged = |needle: &str| finished.stderr.iter().any(|line| line.contains(needle));
    assert!(
        logged("health issue: Clock skew with domain controllers (10.99.1.1): the DC's clock is"),
        "{:#?}",
        finished.stderr
    );
    assert!(logged("s behind the sensor's"), "{:#?}", finished.stderr);
    assert!(
        logged("health issue closed: Clock skew with domain controllers (10.99.1.1)"),
        "{:#?}",
        finished.stderr
    );
}
