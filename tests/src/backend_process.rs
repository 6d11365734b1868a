//! `dcwatch-backend serve` as a process for the tests, the end-to-end run and the demo: started
//! with a data folder, its listening address read from its log, killed when dropped.

use std::{
    io::{self, BufRead as _, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

/// How long the backend may take to say where it listens (it makes its CA on a first start).
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct BackendProcess {
    child: Child,
    pub address: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl BackendProcess {
    /// Runs `command` (the backend binary, or `ip netns exec NS` followed by it) with
    /// `serve --listen LISTEN --data-dir DATA_DIR` and debug logs.
    pub fn start(command: Command, listen: &str, data_dir: &Path) -> io::Result<Self> {
        Self::start_configured(command, listen, data_dir, None)
    }

    /// As [`BackendProcess::start`], reading the configuration file `config` when one is given
    /// (the listening address and the data folder given here override its own).
    pub fn start_configured(
        command: Command,
        listen: &str,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> io::Result<Self> {
        Self::start_role(command, "all", listen, data_dir, config)
    }

    /// As [`BackendProcess::start_configured`], as `serve --role ROLE`. A role without a
    /// listener (detect, api) is up once it says so; its `address` is then unspecified.
    pub fn start_role(
        mut command: Command,
        role: &str,
        listen: &str,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> io::Result<Self> {
        command.args(["--log-level", "debug", "serve", "--role", role]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        // A process group of its own: a Ctrl-C meant for the sensor (the demo) must not stop
        // the backend first; the guard stops it.
        let mut child = command
            .process_group(0)
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("listening on ") {
                    drop(found.send(address.trim().to_owned()));
                }
                if line.contains("serving as ") {
                    drop(found.send("0.0.0.0:0".to_owned()));
                }
                if let Ok(mut log) = lines.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let Ok(address) = address.recv_timeout(START_TIMEOUT) else {
            drop(child.kill());
            drop(child.wait());
            let log = log.lock().map(|log| log.clone()).unwrap_or_default();
            return Err(io::Error::other(format!(
                "the backend never said where it listens: {log}"
            )));
        };
        let address = address
            .parse()
            .map_err(|error| io::Error::other(format!("{address:?}: {error}")))?;
        Ok(Self {
            child,
            address,
            log,
        })
    }

    /// `https://localhost:PORT`: the name its generated certificate carries.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.address.port())
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Waits (a little) for the backend to log `text`.
    pub fn logged(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.log().contains(text) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGTERM, then waits while the backend ends its streams and judges what it stored: what
    /// detection raised is in the store once this returns.
    pub fn stop(mut self) -> io::Result<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: signalling our own child, which has not been waited for yet.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.child.wait()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye to open streams.
    pub fn kill(mut self) {
        self.reap();
    }

    fn reap(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        self.reap();
    }
}
