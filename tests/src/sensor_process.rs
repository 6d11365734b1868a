//! The real `dcwatch-sensor` binary run in a namespace, as a person would run it.

use std::{
    ffi::OsStr,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::netns::{NetNs, unique_suffix};

/// What the sensor logs once per interface when its XDP program is attached.
const READY_MARKER: &str = "capturing on";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A thread collecting the lines of one output stream.
type LineReader = JoinHandle<Vec<String>>;

/// A running sensor whose output is being collected.
#[derive(Debug)]
pub struct SensorProcess {
    child: Child,
    /// Taken by `wait`; `None` afterwards.
    readers: Option<(LineReader, LineReader)>,
}

/// How the sensor ended and everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl SensorProcess {
    /// Starts `binary ARGS` in `namespace` and waits until it has attached to `interfaces`
    /// interfaces. Standard output is collected line by line.
    pub fn start(
        namespace: &NetNs,
        binary: &Path,
        args: &[impl AsRef<OsStr>],
        interfaces: usize,
    ) -> io::Result<Self> {
        let mut command = namespace.command(&binary.to_string_lossy());
        command.args(args);
        Self::spawn(command, interfaces)
    }

    /// Starts `command` (a sensor, wrapped as the caller needs: in a namespace made elsewhere,
    /// say) and waits until it has attached to `interfaces` interfaces.
    pub fn spawn(mut command: Command, interfaces: usize) -> io::Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect()
        });
        let stderr = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(READY_MARKER) {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        let mut process = Self {
            child,
            readers: Some((stdout, stderr)),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        for _ in 0..interfaces {
            let left = deadline.saturating_duration_since(Instant::now());
            if ready_rx.recv_timeout(left).is_err() {
                let _ = process.child.kill();
                let finished = process.finish()?;
                return Err(io::Error::other(format!(
                    "sensor did not start ({}): {}",
                    finished.status,
                    finished.stderr.join("\n")
                )));
            }
        }
        Ok(process)
    }

    /// Sends `signal` and lets the sensor run on (SIGHUP: a reload).
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: signalling our own child, which has not been waited for yet.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// CPU time the sensor's running threads have spent so far, in nanoseconds: the sum of
    /// each thread's `/proc/PID/task/TID/schedstat` (finer than `/proc/PID/stat`'s clock ticks).
    pub fn cpu_time(&self) -> io::Result<Duration> {
        let mut total = 0_u64;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
                // The thread ended meanwhile.
                continue;
            };
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other(format!("unexpected schedstat: {stat}")))?;
        }
        Ok(Duration::from_nanos(total))
    }

    /// Whether the sensor is still running.
    pub fn is_running(&mut self) -> io::Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// Sends SIGINT, as Ctrl-C would, and waits for the sensor to finish.
    pub fn stop(self) -> io::Result<Finished> {
        self.stop_with(libc::SIGINT)
    }

    /// Sends `signal` and waits for the sensor to finish.
    pub fn stop_with(mut self, signal: libc::c_int) -> io::Result<Finished> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: signalling our own child, which has not been waited for yet.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.finish()
    }

    fn finish(&mut self) -> io::Result<Finished> {
        let status = self.child.wait()?;
        let (stdout, stderr) = self
            .readers
            .take()
            .ok_or_else(|| io::Error::other("already finished"))?;
        let join_error = |_| io::Error::other("output reader panicked");
        Ok(Finished {
            status,
            stdout: stdout.join().map_err(join_error)?,
            stderr: stderr.join().map_err(join_error)?,
        })
    }
}

impl Drop for SensorProcess {
    fn drop(&mut self) {
        if self.readers.is_some() {
            // A test bailed out before stopping the sensor.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A scratch directory for one sensor run, removed on drop: a config that has the sensor write
/// its stats file every second, and that file's path.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    pub config: PathBuf,
    pub stats: PathBuf,
}

impl RunDir {
    /// The folder itself, removed with everything in it when the guard drops.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn create() -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("dcwatch-run-{}", unique_suffix()));
        std::fs::create_dir_all(&path)?;
        let run = Self {
            config: path.join("dcwatch.toml"),
            stats: path.join("stats.json"),
            path,
        };
        std::fs::write(&run.config, "[stats]\ninterval_secs = 1\n")?;
        Ok(run)
    }

    /// `run` on `interfaces` with this directory's config and stats file, then `extra` flags.
    pub fn run_args(&self, interfaces: &[&str], extra: &[&str]) -> Vec<String> {
        let mut args = vec!["run".to_owned()];
        for interface in interfaces {
            args.extend(["--interface".to_owned(), (*interface).to_owned()]);
        }
        args.extend([
            "--config".to_owned(),
            self.config.to_string_lossy().into_owned(),
            "--stats-file".to_owned(),
            self.stats.to_string_lossy().into_owned(),
        ]);
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        args
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
