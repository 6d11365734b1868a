//! `dcwatch-sensor replay --backend` against a real `dcwatch-backend serve` (TLS with the CA it
//! generates): the backend ends with exactly the activities `replay --output json` prints,
//! through a connection cut mid-stream, a backend killed and restarted mid-stream, and a
//! corrupted spool record (skipped, counted, the rest delivered).
//!
//! The backend binary is the workspace's: next to `dcwatch-sensor` when the workspace was built,
//! else built here (`cargo build -p dcwatch-backend`).

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use dcwatch_proto::{json::write_json_line, v1::ActivityBatch};
use dcwatch_tests::{backend_process::BackendProcess, corpus};
use prost::Message as _;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const WAIT: Duration = Duration::from_secs(30);
/// 93 AS-REQs and their answers: a couple of hundred activities, dozens of 1 KiB batches.
const CAPTURE: &str = "zeek/testing/btest/Traces/krb/kinit.pcap";
const SENSOR_ID: &str = "sensor-under-test";

/// The backend binary, built once if the workspace build did not make it.
fn backend_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let sensor = Path::new(SENSOR);
        let dir = sensor.parent().expect("the binaries' folder");
        let bin = dir.join("dcwatch-backend");
        if !bin.exists() {
            let target = dir.parent().expect("the target folder");
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "dcwatch-backend", "--bin", "dcwatch-backend"])
                .env("CARGO_TARGET_DIR", target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build");
            assert!(status.success(), "building dcwatch-backend");
        }
        bin
    })
    .clone()
}

fn run_backend(args: &[&str], data_dir: &Path) -> String {
    let output = Command::new(backend_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("dcwatch-backend");
    assert!(
        output.status.success(),
        "dcwatch-backend {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// A `dcwatch-backend serve` process on 127.0.0.1; killed when dropped.
struct Backend;

impl Backend {
    fn start(data_dir: &Path) -> BackendProcess {
        Self::start_with(Command::new(backend_bin()), data_dir)
    }

    /// `command` runs the backend binary (in a namespace, say).
    fn start_with(command: Command, data_dir: &Path) -> BackendProcess {
        BackendProcess::start(command, "127.0.0.1:0", data_dir).expect("dcwatch-backend serve")
    }
}

/// A TCP relay between the sensor and the backend: counts the bytes the sensor sends, and can
/// cut every connection or point at another backend. TLS passes through it untouched.
struct Relay {
    address: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    uplink: Arc<AtomicU64>,
    /// Connections to cut: each copy loop checks it.
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: Option<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let relay = Self {
            address,
            target: Arc::new(Mutex::new(target)),
            uplink: Arc::new(AtomicU64::new(0)),
            generation: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (target, uplink, generation, stop) = (
            Arc::clone(&relay.target),
            Arc::clone(&relay.uplink),
            Arc::clone(&relay.generation),
            Arc::clone(&relay.stop),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Some(to) = *target.lock().expect("target") else {
                    continue; // nobody behind: the sensor sees the connection closed
                };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let born = generation.load(Ordering::Relaxed);
                for (from, into, counter) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                        Some(Arc::clone(&uplink)),
                    ),
                    (server, client, None),
                ] {
                    let generation = Arc::clone(&generation);
                    thread::spawn(move || copy(from, into, counter, &generation, born));
                }
            }
        });
        relay
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.address.port())
    }

    fn cut_all(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn point_at(&self, target: Option<SocketAddr>) {
        *self.target.lock().expect("target") = target;
    }

    fn wait_for_uplink(&self, bytes: u64) {
        let deadline = Instant::now() + WAIT;
        while self.uplink.load(Ordering::Relaxed) < bytes {
            assert!(
                Instant::now() < deadline,
                "the sensor never sent {bytes} bytes"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
        drop(TcpStream::connect(self.address));
    }
}

fn copy(
    mut from: TcpStream,
    mut into: TcpStream,
    counter: Option<Arc<AtomicU64>>,
    generation: &AtomicU64,
    born: u64,
) {
    drop(from.set_read_timeout(Some(Duration::from_millis(20))));
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        if generation.load(Ordering::Relaxed) != born {
            break;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                if into.write_all(&buffer[..read]).is_err() {
                    break;
                }
                if let Some(counter) = &counter {
                    counter.fetch_add(read as u64, Ordering::Relaxed);
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    drop(from.shutdown(std::net::Shutdown::Both));
    drop(into.shutdown(std::net::Shutdown::Both));
}

/// A backend's data folder with a token for the sensor, and the sensor's side: config, spool,
/// stats file.
struct Setup {
    dir: tempfile::TempDir,
    token: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(dir.path().join("backend")).expect("backend folder");
        let token = run_backend(&["token", "add", SENSOR_ID], &dir.path().join("backend"))
            .trim()
            .to_owned();
        // Small batches: dozens of them from one capture.
        std::fs::write(
            dir.path().join("sensor.toml"),
            format!("[sensor]\nid = \"{SENSOR_ID}\"\n[backend]\nbatch_max_kib = 1\n"),
        )
        .expect("config");
        Self { dir, token }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("backend")
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn stats(&self) -> PathBuf {
        self.dir.path().join("stats.json")
    }

    fn ca(&self) -> PathBuf {
        self.data_dir().join("tls/ca.pem")
    }

    fn replay(&self, capture: &Path, url: &str, token: &str, wait_secs: u64) -> Output {
        Command::new(SENSOR)
            .arg("replay")
            .arg(capture)
            .arg("--config")
            .arg(self.dir.path().join("sensor.toml"))
            .args(["--backend", url, "--token", token, "--ca"])
            .arg(self.ca())
            .arg("--spool-dir")
            .arg(self.spool())
            .arg("--stats-file")
            .arg(self.stats())
            .args(["--wait-secs", &wait_secs.to_string()])
            .output()
            .expect("dcwatch-sensor replay")
    }

    /// A capture with no frames: a replay of it only sends what the spool holds.
    fn empty_capture(&self) -> PathBuf {
        let empty = self.dir.path().join("empty.pcap");
        let mut header = Vec::new();
        header.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        header.extend_from_slice(&2_u16.to_le_bytes());
        header.extend_from_slice(&4_u16.to_le_bytes());
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&65535_u32.to_le_bytes());
        header.extend_from_slice(&1_u32.to_le_bytes());
        std::fs::write(&empty, header).expect("empty capture");
        empty
    }

    fn stats_value(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.stats()).expect("stats file")).expect("JSON")
    }

    fn stored(&self) -> Vec<String> {
        sorted_lines(&run_backend(&["activities", "--json"], &self.data_dir()))
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn capture() -> PathBuf {
    corpus::dir().join(CAPTURE)
}

/// What `replay --output json` prints for the capture, with the test's sensor id.
fn expected() -> Vec<String> {
    let config = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(config.path(), format!("[sensor]\nid = \"{SENSOR_ID}\"\n")).expect("config");
    let output = Command::new(SENSOR)
        .args(["replay", "--output", "json", "--config"])
        .arg(config.path())
        .arg(capture())
        .output()
        .expect("dcwatch-sensor replay");
    assert!(output.status.success());
    let lines = sorted_lines(&String::from_utf8(output.stdout).expect("UTF-8"));
    assert!(lines.len() > 100, "{} activities", lines.len());
    lines
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "the sensor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {stats}"))
}

#[test]
fn replay_streams_exactly_what_it_prints() {
    let expected = expected();
    let setup = Setup::new();
    let backend = Backend::start(&setup.data_dir());
    let url = backend.url();
    let output = setup.replay(&capture(), &url, &setup.token, 60);
    assert_success(&output);
    assert_eq!(setup.stored(), expected, "{}", backend.log());
    let stats = setup.stats_value();
    assert!(counter(&stats, "batches_sent") > 10, "{stats}");
    assert_eq!(
        counter(&stats, "batches_acked"),
        counter(&stats, "batches_sent")
    );
    assert_eq!(counter(&stats, "batches_resent"), 0);
    assert_eq!(counter(&stats, "spool_batches"), 0);
    assert_eq!(counter(&stats, "spool_corrupt_records"), 0);
    assert_eq!(counter(&stats, "backend_connects"), 1);
    // The replay's counters reached the backend too.
    assert!(
        backend.logged("\"batches_sent\""),
        "no counters: {}",
        backend.log()
    );

    // Again: the sequence goes on where it was; the backend stores the second copy too.
    let output = setup.replay(&capture(), &url, &setup.token, 60);
    assert_success(&output);
    let mut twice: Vec<String> = expected.iter().chain(&expected).cloned().collect();
    twice.sort();
    assert_eq!(setup.stored(), twice);
}

/// The lab's directory snapshot and captures where it names accounts and computers.
const LAB_DIRECTORY: &str = "../directory/adlab.jsonl";
const LAB_CAPTURES: [&str; 3] = [
    "adlab/kerberos.pcap",
    "adlab/project-pass-the-hash.pcap",
    "adlab/asreproast.pcap",
];

/// Account enrichment on ingest: a backend holding the lab's directory (imported from its
/// snapshot) stores for the lab's captures exactly what `replay --directory` prints for them,
/// SIDs and tags included, though the sensor that streamed them had no directory.
#[test]
fn the_backend_enriches_what_it_stores_as_replay_with_the_directory_does() {
    let setup = Setup::new();
    let snapshot = corpus::dir().join(LAB_DIRECTORY);
    run_backend(
        &[
            "directory",
            "import",
            snapshot.to_str().expect("UTF-8 path"),
        ],
        &setup.data_dir(),
    );
    let backend = Backend::start(&setup.data_dir());
    let mut expected = Vec::new();
    for capture in LAB_CAPTURES {
        let capture = corpus::dir().join(capture);
        let output = Command::new(SENSOR)
            .args(["replay", "--output", "json", "--config"])
            .arg(setup.dir.path().join("sensor.toml"))
            .arg("--directory")
            .arg(&snapshot)
            .arg(&capture)
            .output()
            .expect("dcwatch-sensor replay --directory");
        assert_success(&output);
        expected.extend(
            String::from_utf8(output.stdout)
                .expect("UTF-8")
                .lines()
                .map(str::to_owned),
        );
        assert_success(&setup.replay(&capture, &backend.url(), &setup.token, 60));
    }
    expected.sort();
    let stored = setup.stored();
    let with_sid = |lines: &[String]| {
        lines
            .iter()
            .filter(|line| line.contains("\"sid\":\"S-1-5-21-"))
            .count()
    };
    // Not vacuous: the lab's accounts are in these captures, and carry their SIDs and tags.
    assert!(with_sid(&expected) > 10, "{} enriched", with_sid(&expected));
    assert!(
        expected
            .iter()
            .any(|line| line.contains("\"name\":\"dont_req_preauth\"")),
        "bob's tag"
    );
    assert_eq!(stored, expected, "{}", backend.log());
}

#[test]
fn an_unreadable_ca_fails_at_start() {
    let setup = Setup::new();
    let output = setup.replay(&capture(), "https://localhost:1", &setup.token, 60);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reading --ca"), "{stderr}");
}

#[test]
fn a_backend_another_ca_signed_is_refused_with_a_clear_error() {
    let setup = Setup::new();
    let backend = Backend::start(&setup.data_dir());
    // A second backend's CA: a valid CA, not the one that signed this backend's certificate.
    let other = tempfile::tempdir().expect("temporary directory");
    Backend::start(other.path()).kill();
    std::fs::copy(other.path().join("tls/ca.pem"), setup.ca()).expect("the wrong CA in place");
    let output = setup.replay(&capture(), &backend.url(), &setup.token, 3);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(
        stderr.contains("not one the CA given with --ca"),
        "{stderr}"
    );
    assert!(stderr.contains("stay in spool"), "{stderr}");
    assert!(setup.stored().is_empty(), "nothing reached the backend");
}

#[test]
fn a_refused_token_fails_at_once() {
    let setup = Setup::new();
    let backend = Backend::start(&setup.data_dir());
    let url = backend.url();
    let started = Instant::now();
    let output = setup.replay(&capture(), &url, "not-the-token", 60);
    assert!(!output.status.success());
    assert!(
        started.elapsed() < WAIT,
        "gave up only after {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused"), "{stderr}");
    // What was read stays spooled for a run with the right token.
    assert!(counter(&setup.stats_value(), "spool_batches") > 0);
}

#[test]
fn nothing_lost_nothing_doubled_through_cuts_and_a_backend_restart() {
    let expected = expected();
    let setup = Setup::new();
    let backend = Backend::start(&setup.data_dir());
    let relay = Relay::start(Some(backend.address));
    let url = relay.url();
    let token = setup.token.clone();
    let sensor = {
        let capture = capture();
        let setup_ref = &setup;
        thread::scope(|scope| {
            let sensor = scope.spawn(move || setup_ref.replay(&capture, &url, &token, 120));
            // Mid-stream: the connection is cut...
            relay.wait_for_uplink(6 * 1024);
            relay.cut_all();
            // ...then, once the sensor is back and sending, the backend dies.
            let sent = relay.uplink.load(Ordering::Relaxed);
            relay.wait_for_uplink(sent + 6 * 1024);
            relay.point_at(None);
            backend.kill();
            relay.cut_all();
            thread::sleep(Duration::from_millis(500));
            let backend = Backend::start(&setup_ref.data_dir());
            relay.point_at(Some(backend.address));
            let output = sensor.join().expect("the sensor thread");
            (output, backend)
        })
    };
    let (output, backend) = sensor;
    assert_success(&output);
    assert_eq!(setup.stored(), expected, "{}", backend.log());
    let stats = setup.stats_value();
    assert!(counter(&stats, "backend_connects") >= 3, "{stats}");
    assert!(counter(&stats, "backend_errors") >= 2, "{stats}");
    assert_eq!(counter(&stats, "spool_batches"), 0);
}

#[test]
fn a_sensor_killed_with_its_spool_full_sends_everything_at_its_next_start() {
    let expected = expected();
    let setup = Setup::new();
    Backend::start(&setup.data_dir()).kill(); // makes the CA
    let closed = Relay::start(None);
    let mut sensor = Command::new(SENSOR)
        .arg("replay")
        .arg(capture())
        .arg("--config")
        .arg(setup.dir.path().join("sensor.toml"))
        .args(["--backend", &closed.url(), "--token", &setup.token, "--ca"])
        .arg(setup.ca())
        .arg("--spool-dir")
        .arg(setup.spool())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dcwatch-sensor replay");
    let stderr = sensor.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("replayed ") {
            break;
        }
    }
    // The file is read and its batches queued: once the writer has spooled them all, kill -9.
    let deadline = Instant::now() + WAIT;
    while spooled_activities(&setup.spool()) < expected.len() {
        assert!(Instant::now() < deadline, "the spool never filled");
        thread::sleep(Duration::from_millis(10));
    }
    sensor.kill().expect("kill -9");
    sensor.wait().expect("reaped");

    let backend = Backend::start(&setup.data_dir());
    let url = backend.url();
    let output = setup.replay(&setup.empty_capture(), &url, &setup.token, 60);
    assert_success(&output);
    assert_eq!(setup.stored(), expected, "{}", backend.log());
    let stats = setup.stats_value();
    assert_eq!(counter(&stats, "spool_corrupt_records"), 0);
    assert_eq!(counter(&stats, "spool_batches"), 0);
}

/// The spool's segment files, in order.
fn segments(spool: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(spool)
        .expect("spool")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

/// Activities in the spool's records, read as the sensor wrote them (good CRC or not).
fn spooled_activities(spool: &Path) -> usize {
    let mut total = 0;
    for segment in segments(spool) {
        let Ok(bytes) = std::fs::read(&segment) else {
            continue;
        };
        let mut offset = 32;
        while bytes.len() >= offset + 32
            && bytes[offset..offset + 4] == 0x5243_5744_u32.to_le_bytes()
        {
            let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
            total += u32_at(offset + 16) as usize;
            offset += (32 + u32_at(offset + 4) as usize).div_ceil(8) * 8;
        }
    }
    total
}

/// The JSON lines of the record at `offset` in a segment, and where the next record starts.
fn record_lines(segment: &[u8], offset: usize) -> (Vec<String>, usize) {
    let u32_at = |at: usize| u32::from_le_bytes(segment[at..at + 4].try_into().expect("4"));
    assert_eq!(u32_at(offset), 0x5243_5744, "a record at {offset}");
    let length = u32_at(offset + 4) as usize;
    let uncompressed = u32_at(offset + 20) as usize;
    let payload = &segment[offset + 32..offset + 32 + length];
    let encoded = zstd::bulk::decompress(payload, uncompressed).expect("zstd");
    let batch = ActivityBatch::decode(encoded.as_slice()).expect("a batch");
    let mut lines = Vec::new();
    for activity in &batch.activities {
        let mut line = Vec::new();
        write_json_line(activity, &mut line, &mut Vec::new()).expect("JSON");
        lines.push(
            String::from_utf8(line)
                .expect("UTF-8")
                .trim_end()
                .to_owned(),
        );
    }
    (lines, offset + (32 + length).div_ceil(8) * 8)
}

#[test]
fn a_corrupted_spool_record_is_skipped_counted_and_the_rest_arrives() {
    let expected = expected();
    let setup = Setup::new();
    // The backend's first start makes the CA; then it is gone and everything stays spooled.
    Backend::start(&setup.data_dir()).kill();
    let closed = Relay::start(None);
    let output = setup.replay(&capture(), &closed.url(), &setup.token, 1);
    assert!(!output.status.success(), "nothing can be acknowledged");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not acknowledged"), "{stderr}");
    assert!(stderr.contains("last error: connecting"), "{stderr}");
    let spooled = counter(&setup.stats_value(), "spool_batches");
    assert!(spooled > 10, "{spooled} batches spooled");

    // Flip a byte in the third record's payload.
    let segment = segments(&setup.spool()).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("segment");
    let (_, second) = record_lines(&bytes, 32);
    let (_, third) = record_lines(&bytes, second);
    let (lost, _) = record_lines(&bytes, third);
    bytes[third + 40] ^= 0x55;
    std::fs::write(&segment, &bytes).expect("corrupt it");

    let empty = setup.empty_capture();
    let backend = Backend::start(&setup.data_dir());
    let url = backend.url();
    let output = setup.replay(&empty, &url, &setup.token, 60);
    assert_success(&output);

    let mut rest = expected.clone();
    for line in &lost {
        let index = rest
            .iter()
            .position(|kept| kept == line)
            .expect("a lost line");
        rest.remove(index);
    }
    assert!(!lost.is_empty());
    assert_eq!(setup.stored(), rest, "{}", backend.log());
    let stats = setup.stats_value();
    assert_eq!(counter(&stats, "spool_corrupt_records"), 1, "{stats}");
    assert!(backend.logged("SPOOL_CORRUPT"), "{}", backend.log());
    assert_eq!(counter(&stats, "spool_batches"), 0);
    assert_eq!(counter(&stats, "batches_sent"), spooled - 1);
}

/// `run` on a veth pair (XDP, mirror mode) streaming to a backend in the same namespace: the
/// backend ends with exactly the lines the sensor printed. Needs root.
#[test]
fn live_run_streams_what_it_prints() {
    use dcwatch_tests::{
        netns::{NetNs, VethPair},
        sender::send_frames,
        sensor_process::{RunDir, SensorProcess},
        stats_file,
    };

    let setup = Setup::new();
    let peer = NetNs::create("dcwt").expect("sender namespace");
    let capture_ns = NetNs::create("dcwt").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture_ns).expect("veth pair");
    let backend = Backend::start_with(
        capture_ns.command(&backend_bin().to_string_lossy()),
        &setup.data_dir(),
    );
    let run = RunDir::create().expect("run directory");
    std::fs::write(
        &run.config,
        format!(
            "[sensor]\nid = \"{SENSOR_ID}\"\n[stats]\ninterval_secs = 1\n[backend]\nbatch_max_kib = 1\n"
        ),
    )
    .expect("config");
    let url = backend.url();
    let ca = setup.ca().to_string_lossy().into_owned();
    let spool = setup.spool().to_string_lossy().into_owned();
    let args = run.run_args(
        &[&veth.receiver],
        &[
            "--mode",
            "mirror",
            "--output",
            "json",
            "--backend",
            &url,
            "--token",
            &setup.token,
            "--ca",
            &ca,
            "--spool-dir",
            &spool,
        ],
    );
    let process =
        SensorProcess::start(&capture_ns, Path::new(SENSOR), &args, 1).expect("the sensor starts");
    let mut file = dcwatch_pipeline::capture_file::CaptureFile::open(
        &corpus::dir().join("adlab/kerberos.pcap"),
    )
    .expect("capture");
    let mut frames = Vec::new();
    while let Some(frame) = file.next_frame().expect("a frame") {
        frames.push(frame.data.to_vec());
    }
    send_frames(&peer, &veth.sender, frames.iter().map(Vec::as_slice)).expect("send");
    stats_file::wait_for(&run.stats, "seen", frames.len() as u64, WAIT).expect("every frame seen");
    let finished = process.stop().expect("the sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let printed: Vec<String> = {
        let mut lines = finished.stdout.clone();
        lines.sort();
        lines
    };
    assert!(printed.len() > 20, "{} activities", printed.len());
    assert_eq!(setup.stored(), printed, "{}", backend.log());
    let stats = stats_file::read(&run.stats).expect("final stats");
    assert_eq!(stats_file::counter(&stats, "spool_batches"), 0);
    assert_eq!(stats_file::counter(&stats, "spool_queue_full_batches"), 0);
    assert!(stats_file::counter(&stats, "batches_acked") > 0);
}
