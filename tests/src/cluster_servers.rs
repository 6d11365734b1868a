//! Real PostgreSQL and NATS servers for the backend's cluster tests and benchmark, each on
//! loopback in a temporary directory of its own, stopped and removed when dropped: Debian's
//! `postgresql` (an unprivileged cluster made with its initdb, run with pg_ctl) and
//! `nats-server` (with its own configuration file, JetStream on, clustered when asked for more
//! than one node).

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

const WAIT: Duration = Duration::from_mins(1);
/// initdb refuses root: the servers run as `nobody` when the tests run as root.
const NOBODY: u32 = 65_534;

/// A port free now on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether the tests run as root: /proc/self belongs to the process's effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs `command` as the servers' user; its output when it fails.
fn as_server_user(command: &mut Command) -> &mut Command {
    if is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("{command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// PostgreSQL's programs: the highest version Debian installed.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (cargo xtask setup)")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no /usr/lib/postgresql/*/bin")
}

/// An unprivileged PostgreSQL cluster on a loopback port.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// `durable`: fsync on (the benchmark's settings); off for the tests, whose data dies with
    /// them anyway.
    pub fn start(durable: bool) -> anyhow::Result<Self> {
        Self::start_with(durable, None)
    }

    /// [`Self::start`], serving TLS too (`ssl = on`) with this PEM certificate chain and key.
    pub fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        Self::start_with(false, Some((cert_pem, key_pem)))
    }

    fn start_with(durable: bool, tls: Option<(&[u8], &[u8])>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))?;
        }
        let bin = postgres_bin()?;
        run(as_server_user(
            Command::new(bin.join("initdb"))
                .args([
                    "--auth=trust",
                    "--username=dcwatch",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .arg("-D")
                .arg(dir.path().join("data")),
        ))?;
        let postgres = Self {
            dir,
            bin,
            port: free_port()?,
        };
        let mut settings = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            postgres.port,
            postgres.dir.path().display()
        );
        if !durable {
            settings.push_str(" -c fsync=off -c synchronous_commit=off");
        }
        if let Some((cert_pem, key_pem)) = tls {
            use std::os::unix::fs::PermissionsExt as _;
            let (cert, key) = (
                postgres.dir.path().join("server.crt"),
                postgres.dir.path().join("server.key"),
            );
            std::fs::write(&cert, cert_pem)?;
            std::fs::write(&key, key_pem)?;
            // PostgreSQL refuses a key others may read, or one not its user's.
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            if is_root() {
                for file in [&cert, &key] {
                    std::os::unix::fs::chown(file, Some(NOBODY), Some(NOBODY))?;
                }
            }
            for (name, file) in [("ssl_cert_file", &cert), ("ssl_key_file", &key)] {
                settings.push_str(&[" -c ", name, "=", &file.display().to_string()].concat());
            }
            settings.push_str(" -c ssl=on");
        }
        std::fs::write(postgres.dir.path().join("settings"), &settings)?;
        postgres.pg_ctl("start")?;
        Ok(postgres)
    }

    fn pg_ctl(&self, action: &str) -> anyhow::Result<()> {
        let settings = std::fs::read_to_string(self.dir.path().join("settings"))?;
        run(as_server_user(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-l"])
                .arg(self.dir.path().join("log"))
                .args(["-o", &settings, "-w", "-t", "60", "-m", "fast", action]),
        ))
    }

    /// The URL of `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=dcwatch dbname={database}",
            self.port
        )
    }

    /// A new empty database; its URL.
    pub fn database(&self, name: &str) -> anyhow::Result<String> {
        run(Command::new(self.bin.join("createdb"))
            .args(["--host=127.0.0.1", "--username=dcwatch"])
            .arg(format!("--port={}", self.port))
            .arg(name))?;
        Ok(self.url(name))
    }

    /// Stops and starts the server (its clients' connections break).
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl("restart")
    }

    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> anyhow::Result<u32> {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))?;
        Ok(pid_file
            .lines()
            .next()
            .context("postmaster.pid")?
            .trim()
            .parse()?)
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl("stop")
    }

    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl("start")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
    }
}

/// A NATS server, or a cluster of them, with JetStream.
#[derive(Debug)]
pub struct Nats {
    dir: tempfile::TempDir,
    nodes: Vec<NatsNode>,
}

#[derive(Debug)]
struct NatsNode {
    config: PathBuf,
    port: u16,
    monitor: u16,
    child: Option<Child>,
}

impl Nats {
    pub fn start(count: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ports: Vec<(u16, u16, u16)> = (0..count)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut nodes = Vec::new();
        for (index, (port, route, monitor)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, (_, route, _))| format!("\"nats-route://127.0.0.1:{route}\""))
                .collect();
            let cluster = if count > 1 {
                format!(
                    "cluster {{\n  name: dcwatch\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let store = dir.path().join(format!("n{index}"));
            let config = dir.path().join(format!("n{index}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{index}\nhost: 127.0.0.1\nport: {port}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n{cluster}",
                    store.display()
                ),
            )?;
            nodes.push(NatsNode {
                config,
                port: *port,
                monitor: *monitor,
                child: None,
            });
        }
        let mut nats = Self { dir, nodes };
        for index in 0..count {
            nats.start_node(index)?;
        }
        for index in 0..count {
            nats.wait_ready(index)?;
        }
        Ok(nats)
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port))
            .collect()
    }

    pub fn start_node(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("nats-server (cargo xtask setup installs it)")?;
        node.child = Some(child);
        Ok(())
    }

    /// Stops one node (SIGTERM, as an operator would); the others go on.
    pub fn stop_node(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.nodes[index].child.take() {
            run(Command::new("kill").args(["-TERM", &child.id().to_string()]))?;
            child.wait()?;
        }
        Ok(())
    }

    /// Waits until the node answers its health check with JetStream ready.
    pub fn wait_ready(&self, index: usize) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if health(self.nodes[index].monitor).is_some_and(|body| body.contains("\"ok\"")) {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < WAIT,
                "nats-server n{index} never became healthy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Messages the stream `name` holds, as node `index` reports it (`None`: the node does not
    /// answer or holds no copy).
    pub fn stream_messages(&self, index: usize, name: &str) -> Option<u64> {
        let body = get(self.nodes[index].monitor, "/jsz?streams=true")?;
        let json: serde_json::Value = serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()?;
        json.get("account_details")?
            .as_array()?
            .iter()
            .filter_map(|account| account.get("stream_detail")?.as_array())
            .flatten()
            .find(|stream| stream.get("name").and_then(serde_json::Value::as_str) == Some(name))?
            .get("state")?
            .get("messages")?
            .as_u64()
    }

    /// The running nodes' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|node| node.child.as_ref().map(Child::id))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The monitoring port's `/healthz` answer.
fn health(port: u16) -> Option<String> {
    get(port, "/healthz")
}

/// A monitoring port's answer to `GET path` (headers and body).
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

impl Drop for Nats {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
