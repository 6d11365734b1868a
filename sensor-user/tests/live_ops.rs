//! Running the sensor as an operator would: a SIGHUP reload that opens a port in the XDP filter
//! while the process stays up, and `/metrics` scraped and checked line by line against the
//! stats file. The real sensor in its own namespaces (prefix `dcwo`), frames over a veth pair.
//! Needs root.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

use dcwatch_tests::{
    exposition,
    frames::{tcp_v4, udp_v4},
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

fn write_config(run: &RunDir, tcp_ports: &[u16], extra: &str) {
    let ports: Vec<String> = tcp_ports.iter().map(u16::to_string).collect();
    std::fs::write(
        &run.config,
        format!(
            "[stats]\ninterval_secs = 1\n{extra}\n[capture.ports]\ntcp = [{}]\nudp = [53]\n",
            ports.join(", ")
        ),
    )
    .expect("write the config");
}

#[test]
fn sighup_opens_a_port_in_xdp_and_the_sensor_stays_up() {
    let lab = Lab::new();
    let run = RunDir::create().expect("run directory");
    write_config(&run, &[88], "[sensor]\nlog_level = \"info\"");
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

    write_config(&run, &[88, 8080], "[sensor]\nlog_level = \"info\"");
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
    write_config(&run, &[88], &format!("[metrics]\nlisten = \"{METRICS}\""));
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
