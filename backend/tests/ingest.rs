//! A real `dcwatch-backend serve` process on 127.0.0.1, fed by the generated tonic client over
//! TLS, read back through `dcwatch-backend activities --json`.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use dcwatch_proto::{
    json::write_json_line,
    v1::{
        Account, Activity, ActivityBatch, BackendMessage, Batch, Compression, Counters,
        DnsActivity, Endpoint, HealthEvent, Hello, KerberosActivity, SensorMessage, activity::Body,
        backend_message, dns_activity, health_event::Severity, ingest_client::IngestClient,
        kerberos_activity, sensor_message,
    },
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Streaming,
    transport::{Certificate, Channel, ClientTlsConfig},
};

const BIN: &str = env!("CARGO_BIN_EXE_dcwatch-backend");
const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary to completion; its standard output.
fn run(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(BIN).args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "dcwatch-backend {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

fn token(dir: &Path, name: &str) -> anyhow::Result<String> {
    let data_dir = dir.to_str().context("UTF-8 path")?;
    Ok(run(&["token", "add", name, "--data-dir", data_dir])?
        .trim()
        .to_owned())
}

/// A `dcwatch-backend serve` process, stopped with SIGTERM when dropped.
struct Backend {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
    stats: PathBuf,
}

impl Backend {
    fn start(dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let stats = dir.join("stats.json");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--stats-file")
            .arg(&stats)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("listening on ") {
                    let _ = found.send(address.trim().to_owned());
                }
                let mut log = lines.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = address
            .recv_timeout(WAIT)
            .context("the backend never said where it listens")?
            .parse()?;
        Ok(Self {
            child,
            address,
            log,
            stats: stats.clone(),
        })
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// SIGTERM, then the final counters from the stats file.
    fn stop(mut self) -> anyhow::Result<serde_json::Value> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill");
        let exit = self.child.wait()?;
        anyhow::ensure!(
            exit.success(),
            "the backend exited with {exit}: {}",
            self.log()
        );
        Ok(serde_json::from_slice(&std::fs::read(&self.stats)?)?)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn channel(address: SocketAddr, ca_pem: &[u8]) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://localhost:{}", address.port()))
        .expect("a URI")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name("localhost"),
        )?
        .connect_timeout(WAIT)
        .connect()
        .await
}

/// One sensor's stream, as the sensor side would drive it.
struct Sensor {
    outbound: mpsc::Sender<SensorMessage>,
    inbound: Streaming<BackendMessage>,
}

impl Sensor {
    /// Opens a stream and says hello; the stream and the welcome's `stored_through`.
    async fn open(
        backend: &Backend,
        ca: &[u8],
        sensor_id: &str,
        token: &str,
    ) -> Result<(Self, u64), tonic::Status> {
        let channel = channel(backend.address, ca)
            .await
            .map_err(|failure| tonic::Status::unavailable(format!("{failure:?}")))?;
        let (outbound, requests) = mpsc::channel(16);
        let hello = Hello {
            sensor_id: sensor_id.to_owned(),
            version: "test".to_owned(),
            token: token.to_owned(),
            spool_instance: format!("spool-of-{sensor_id}"),
        };
        outbound
            .send(message(sensor_message::Message::Hello(hello)))
            .await
            .map_err(|_| tonic::Status::internal("send"))?;
        let mut inbound = IngestClient::new(channel)
            .stream(ReceiverStream::new(requests))
            .await?
            .into_inner();
        let Some(BackendMessage {
            message: Some(backend_message::Message::Welcome(welcome)),
        }) = inbound.message().await?
        else {
            return Err(tonic::Status::internal("no welcome"));
        };
        Ok((Self { outbound, inbound }, welcome.stored_through))
    }

    async fn send(&self, batch: Batch) -> anyhow::Result<()> {
        self.outbound
            .send(message(sensor_message::Message::Batch(batch)))
            .await
            .context("the stream closed")
    }

    async fn ack(&mut self) -> anyhow::Result<u64> {
        match tokio::time::timeout(WAIT, self.inbound.message()).await?? {
            Some(BackendMessage {
                message: Some(backend_message::Message::Ack(ack)),
            }) => Ok(ack.through),
            other => anyhow::bail!("expected an ack, got {other:?}"),
        }
    }

    async fn batch(&mut self, sequence: u64, activities: &[Activity]) -> anyhow::Result<u64> {
        self.send(batch(sequence, activities)).await?;
        self.ack().await
    }
}

fn message(message: sensor_message::Message) -> SensorMessage {
    SensorMessage {
        message: Some(message),
    }
}

fn batch(sequence: u64, activities: &[Activity]) -> Batch {
    let plain = ActivityBatch {
        activities: activities.to_vec(),
        ..ActivityBatch::default()
    }
    .encode_to_vec();
    Batch {
        sequence,
        compression: Compression::Zstd.into(),
        payload: zstd::bulk::compress(&plain, 3).expect("compress"),
        activity_count: u32::try_from(activities.len()).expect("small"),
        uncompressed_len: u32::try_from(plain.len()).expect("small"),
    }
}

fn endpoint(ip: [u8; 4], port: u32) -> Option<Endpoint> {
    Some(Endpoint {
        ip: ip.to_vec(),
        port,
    })
}

fn kerberos(seconds: i64, client: [u8; 4], name: &str) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 5 }),
        src: endpoint(client, 50_000),
        dst: endpoint([10, 0, 0, 1], 88),
        account: Some(Account {
            domain: "CORP".to_owned(),
            name: name.to_owned(),
            sid: String::new(),
            tags: Vec::new(),
        }),
        body: Some(Body::Kerberos(KerberosActivity {
            r#type: kerberos_activity::Type::AsReq.into(),
            ..KerberosActivity::default()
        })),
        ..Activity::default()
    }
}

fn dns(seconds: i64, client: [u8; 4], name: &str) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: endpoint(client, 53_000),
        dst: endpoint([10, 0, 0, 1], 53),
        body: Some(Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: name.to_owned(),
            query_type: "A".to_owned(),
            ..DnsActivity::default()
        })),
        ..Activity::default()
    }
}

fn lines(activities: &[&Activity]) -> String {
    let mut out = Vec::new();
    for activity in activities {
        write_json_line(activity, &mut out, &mut Vec::new()).expect("to a Vec");
    }
    String::from_utf8(out).expect("UTF-8")
}

fn query(dir: &Path, filters: &[&str]) -> anyhow::Result<String> {
    let data_dir = dir.to_str().context("UTF-8 path")?;
    let mut args = vec!["activities", "--data-dir", data_dir, "--json"];
    args.extend_from_slice(filters);
    run(&args)
}

fn ca(dir: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(dir.join("tls/ca.pem"))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_stored_once_queried_back_and_kept_across_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-a")?;
    let backend = Backend::start(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    assert!(backend.log().contains("--ca "), "{}", backend.log());

    let first = [
        kerberos(1_700_000_020, [10, 0, 0, 5], "alice"),
        dns(1_700_000_010, [10, 0, 0, 6], "dc1.corp.example"),
    ];
    let second = [kerberos(1_700_000_030, [10, 0, 0, 6], "bob")];
    let (mut sensor, stored_through) = Sensor::open(&backend, &ca, "sensor-a", &token).await?;
    assert_eq!(stored_through, 0);
    assert_eq!(sensor.batch(1, &first).await?, 1);
    assert_eq!(sensor.batch(2, &second).await?, 2);
    // A resend after a lost ack: acknowledged again, not stored again.
    assert_eq!(sensor.batch(1, &first).await?, 1);
    sensor
        .outbound
        .send(message(sensor_message::Message::Health(HealthEvent {
            time: None,
            severity: Severity::Warning.into(),
            kind: "SPOOL_EVICTED".to_owned(),
            message: "the spool evicted 3 batches".to_owned(),
            ..Default::default()
        })))
        .await?;
    sensor
        .outbound
        .send(message(sensor_message::Message::Counters(Counters {
            time: None,
            values: [("delivered".to_owned(), 7)].into(),
        })))
        .await?;
    // Health events and counters are not acknowledged: the next ack shows they were read.
    assert_eq!(sensor.batch(2, &second).await?, 2);
    drop(sensor);

    let everything = lines(&[&first[1], &first[0], &second[0]]);
    assert_eq!(query(dir.path(), &[])?, everything, "by time");
    assert_eq!(
        query(dir.path(), &["--protocol", "kerberos"])?,
        lines(&[&first[0], &second[0]])
    );
    assert_eq!(
        query(dir.path(), &["--ip", "10.0.0.6"])?,
        lines(&[&first[1], &second[0]])
    );
    assert_eq!(
        query(dir.path(), &["--account", "corp\\ALICE"])?,
        lines(&[&first[0]])
    );
    assert_eq!(
        query(
            dir.path(),
            &[
                "--since",
                "2023-11-14T22:13:35Z",
                "--until",
                "2023-11-14T22:13:51Z"
            ]
        )?,
        lines(&[&first[0], &second[0]])
    );

    let backend_log = backend.log();
    let stats = backend.stop()?;
    assert_eq!(stats["batches_received"], 4, "{stats}");
    assert_eq!(stats["activities_stored"], 3, "{stats}");
    assert_eq!(stats["duplicates"], 2, "{stats}");
    assert_eq!(stats["health_events"], 1, "{stats}");
    assert!(
        backend_log.contains("sensor \"sensor-a\": SPOOL_EVICTED: the spool evicted 3 batches"),
        "{backend_log}"
    );

    // A restarted backend remembers what it stored.
    let backend = Backend::start(dir.path(), &[])?;
    let (mut sensor, stored_through) = Sensor::open(&backend, &ca, "sensor-a", &token).await?;
    assert_eq!(stored_through, 2);
    assert_eq!(sensor.batch(2, &second).await?, 2);
    let third = [dns(1_700_000_040, [10, 0, 0, 7], "x.corp.example")];
    assert_eq!(sensor.batch(3, &third).await?, 3);
    drop(sensor);
    assert_eq!(query(dir.path(), &[])?, everything + &lines(&[&third[0]]));
    let stats = backend.stop()?;
    assert_eq!(stats["duplicates"], 1, "{stats}");
    assert_eq!(stats["activities_stored"], 1, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_missing_tokens_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-b")?;
    let backend = Backend::start(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let wrong = "0".repeat(64);
    for presented in [wrong.as_str(), ""] {
        let refused = Sensor::open(&backend, &ca, "sensor-b", presented)
            .await
            .err()
            .context("an unknown token was let in")?;
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    // A stream that does not start with a hello.
    let (outbound, requests) = mpsc::channel(1);
    outbound
        .send(message(sensor_message::Message::Batch(batch(1, &[]))))
        .await?;
    let refused = IngestClient::new(channel(backend.address, &ca).await?)
        .stream(ReceiverStream::new(requests))
        .await
        .err()
        .context("a stream without a hello was let in")?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // A revoked token is refused from then on.
    let data_dir = dir.path().to_str().context("UTF-8")?;
    run(&["token", "revoke", "sensor-b", "--data-dir", data_dir])?;
    let refused = Sensor::open(&backend, &ca, "sensor-b", &token)
        .await
        .err()
        .context("a revoked token was let in")?;
    assert_eq!(refused.code(), Code::Unauthenticated);

    let log = backend.log();
    assert!(
        log.contains("refused sensor \"sensor-b\" from 127.0.0.1:"),
        "{log}"
    );
    assert!(
        !log.contains(&wrong) && !log.contains(&token),
        "a token was logged: {log}"
    );
    let stats = backend.stop()?;
    assert_eq!(stats["refused_streams"], 4, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_admits_only_the_sensor_it_was_made_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mine = token(dir.path(), "sensor-e")?;
    let other = token(dir.path(), "sensor-f")?;
    let backend = Backend::start(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];
    let (mut owner, _) = Sensor::open(&backend, &ca, "sensor-f", &other).await?;
    assert_eq!(owner.batch(1, &good).await?, 1);
    // sensor-e's token, claiming to be sensor-f: refused, and sensor-f's stream goes on.
    let refused = Sensor::open(&backend, &ca, "sensor-f", &mine)
        .await
        .err()
        .context("a token was let in for another sensor")?;
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(owner.batch(2, &good).await?, 2);
    let (_, stored_through) = Sensor::open(&backend, &ca, "sensor-e", &mine).await?;
    assert_eq!(stored_through, 0);

    let log = backend.log();
    assert!(
        log.contains("refused sensor \"sensor-f\" from 127.0.0.1:")
            && log.contains("made for sensor \"sensor-e\""),
        "{log}"
    );
    assert!(
        !log.contains(&mine) && !log.contains(&other),
        "a token was logged: {log}"
    );
    let stats = backend.stop()?;
    assert_eq!(stats["refused_streams"], 1, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_fails_on_the_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backend = Backend::start(dir.path(), &[])?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&key)?.pem();
    let failure = channel(backend.address, other_ca.as_bytes())
        .await
        .err()
        .context("connected through a CA that did not sign the server's certificate")?;
    let text = format!("{failure:?}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("invalid peer certificate"),
        "not a clear TLS error: {text}"
    );
    backend.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_counted_and_refused_and_the_stream_goes_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-c")?;
    let config = dir.path().join("backend.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_batch_bytes = 4096\nmax_uncompressed_bytes = 65536\nmax_activities = 100\n",
    )?;
    let config = config.to_str().context("UTF-8")?;
    let backend = Backend::start(dir.path(), &["--config", config])?;
    let ca = ca(dir.path())?;
    let (mut sensor, _) = Sensor::open(&backend, &ca, "sensor-c", &token).await?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];

    let mut corrupt = batch(1, &good);
    corrupt
        .payload
        .iter_mut()
        .skip(4)
        .for_each(|byte| *byte ^= 0x5a);
    let mut understated = batch(2, &good);
    understated.uncompressed_len -= 1;
    let mut too_big = batch(3, &good);
    too_big.uncompressed_len = 1 << 20;
    let mut miscounted = batch(4, &good);
    miscounted.activity_count = 2;
    let mut oversized = batch(5, &good);
    oversized.compression = Compression::None.into();
    oversized.payload = vec![0; 5000];
    oversized.uncompressed_len = 5000;
    for bad in [corrupt, understated, too_big, miscounted, oversized] {
        let sequence = bad.sequence;
        sensor.send(bad).await?;
        // Refused batches are acknowledged: the same bytes would be refused again.
        assert_eq!(sensor.ack().await?, sequence);
    }
    assert_eq!(sensor.batch(6, &good).await?, 6, "the stream goes on");

    // A message beyond what gRPC will decode (twice the batch limit) ends that stream; the
    // server goes on and the sensor reconnects.
    let mut huge = batch(7, &good);
    huge.payload = vec![0; 10_000];
    sensor.send(huge).await?;
    let ended = tokio::time::timeout(WAIT, sensor.inbound.message()).await?;
    assert_eq!(
        ended.as_ref().err().map(tonic::Status::code),
        Some(Code::OutOfRange),
        "{ended:?}"
    );
    let (mut sensor, stored_through) = Sensor::open(&backend, &ca, "sensor-c", &token).await?;
    assert_eq!(stored_through, 6);
    assert_eq!(sensor.batch(7, &good).await?, 7);
    drop(sensor);
    assert_eq!(query(dir.path(), &[])?, lines(&[&good[0], &good[0]]));

    let log = backend.log();
    assert!(log.contains("batch 3 refused"), "{log}");
    let stats = backend.stop()?;
    assert_eq!(stats["bad_batches"], 6, "{stats}");
    assert_eq!(stats["activities_stored"], 2, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_from_the_same_sensor_replaces_the_older() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-d")?;
    let backend = Backend::start(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];
    let (mut older, _) = Sensor::open(&backend, &ca, "sensor-d", &token).await?;
    assert_eq!(older.batch(1, &good).await?, 1);
    let (mut newer, stored_through) = Sensor::open(&backend, &ca, "sensor-d", &token).await?;
    assert_eq!(stored_through, 1);
    let ended = tokio::time::timeout(WAIT, older.inbound.message()).await?;
    assert_eq!(
        ended.err().map(|status| status.code()),
        Some(Code::Aborted),
        "the older stream ends"
    );
    assert_eq!(newer.batch(2, &good).await?, 2);
    // Stopping does not wait for a sensor that never hangs up: its stream ends.
    let stop = tokio::task::spawn_blocking(move || backend.stop());
    let ended = tokio::time::timeout(WAIT, newer.inbound.message()).await?;
    assert_eq!(
        ended.err().map(|status| status.code()),
        Some(Code::Unavailable),
        "the open stream ends when the backend stops"
    );
    tokio::time::timeout(WAIT, stop).await???;
    Ok(())
}
