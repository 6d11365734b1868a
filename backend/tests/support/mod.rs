//! What the backend's process tests share (ingest, alerts): a real `dcwatch-backend serve`
//! process, a sensor-like gRPC client, and a real rsyslog from Debian listening on loopback.

pub(crate) mod rsyslog;

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use dcwatch_proto::v1::{
    ActivityBatch, BackendMessage, Batch, Compression, Hello, SensorMessage, backend_message,
    ingest_client::IngestClient, sensor_message,
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Streaming,
    transport::{Certificate, Channel, ClientTlsConfig},
};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_dcwatch-backend");
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary to completion; its standard output.
pub(crate) fn run(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(BIN).args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "dcwatch-backend {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Polls `check` every 100 ms until it gives a value, for at most [`WAIT`].
pub(crate) fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        anyhow::ensure!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `dcwatch-backend serve` process, killed when dropped.
pub(crate) struct Backend {
    pub child: Child,
    pub address: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Backend {
    /// `serve` with the configuration file `config`.
    pub(crate) fn start(config: &Path) -> anyhow::Result<Self> {
        Self::serve([OsStr::new("--config"), config.as_os_str()])
    }

    /// `serve --listen 127.0.0.1:0 ARGS`.
    pub(crate) fn serve(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> anyhow::Result<Self> {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
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
                if line.contains("serving as ") {
                    let _ = found.send("0.0.0.0:0".to_owned());
                }
                let mut log = lines.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = match address.recv_timeout(WAIT) {
            Ok(address) => address.parse()?,
            Err(_) => anyhow::bail!(
                "the backend never said where it listens: {}",
                log.lock().expect("log")
            ),
        };
        Ok(Self {
            child,
            address,
            log,
        })
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    pub(crate) fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal}");
        Ok(())
    }

    /// SIGTERM; fails unless the backend exits cleanly.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.signal("-TERM")?;
        let exit = self.child.wait()?;
        anyhow::ensure!(
            exit.success(),
            "the backend exited with {exit}: {}",
            self.log()
        );
        Ok(())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn channel(
    address: SocketAddr,
    ca_pem: &[u8],
) -> Result<Channel, tonic::transport::Error> {
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

/// One sensor's stream, as the sensor side drives it.
pub(crate) struct Sensor {
    pub outbound: mpsc::Sender<SensorMessage>,
    pub inbound: Streaming<BackendMessage>,
}

impl Sensor {
    /// Opens a stream and says hello; the stream and the welcome's `stored_through`.
    pub(crate) async fn open(
        address: SocketAddr,
        ca_pem: &[u8],
        sensor_id: &str,
        token: &str,
    ) -> Result<(Self, u64), tonic::Status> {
        let channel = channel(address, ca_pem)
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

    pub(crate) async fn send(&self, message: sensor_message::Message) -> anyhow::Result<()> {
        self.outbound
            .send(SensorMessage {
                message: Some(message),
            })
            .await
            .context("the stream closed")
    }

    /// The next acknowledgement.
    pub(crate) async fn ack(&mut self) -> anyhow::Result<u64> {
        match tokio::time::timeout(WAIT, self.inbound.message()).await?? {
            Some(BackendMessage {
                message: Some(backend_message::Message::Ack(ack)),
            }) => Ok(ack.through),
            other => anyhow::bail!("expected an ack, got {other:?}"),
        }
    }

    /// Sends a batch and waits for its acknowledgement.
    pub(crate) async fn batch(
        &mut self,
        sequence: u64,
        activities: &[dcwatch_proto::v1::Activity],
    ) -> anyhow::Result<u64> {
        self.send(sensor_message::Message::Batch(batch(sequence, activities)))
            .await?;
        self.ack().await
    }
}

pub(crate) fn message(message: sensor_message::Message) -> SensorMessage {
    SensorMessage {
        message: Some(message),
    }
}

pub(crate) fn batch(sequence: u64, activities: &[dcwatch_proto::v1::Activity]) -> Batch {
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
