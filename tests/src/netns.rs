//! Network namespaces and veth pairs as guards: made on creation, removed on drop.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A suffix unique to this process and call.
pub fn unique_suffix() -> String {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{}x{id}", std::process::id() % 100_000)
}

/// A name unique to this process and call, short enough for an interface (15 bytes): keep
/// `prefix` to four characters, or uniqueness is cut off.
pub fn unique_name(prefix: &str) -> String {
    let name = format!("{prefix}{}", unique_suffix());
    debug_assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A network namespace, deleted (with its interfaces) on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a namespace named `prefix` plus a unique suffix, with loopback up and IPv6 off, so
    /// no traffic of the kernel's own (router solicitations, DAD) mixes with what a test sends.
    pub fn create(prefix: &str) -> io::Result<Self> {
        let namespace = Self {
            name: format!("{prefix}{}", unique_suffix()),
        };
        ip(&["netns", "add", &namespace.name])?;
        ip(&["-n", &namespace.name, "link", "set", "lo", "up"])?;
        namespace.run(|| {
            for key in ["all", "default"] {
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6"), "1")?;
            }
            Ok(())
        })?;
        Ok(namespace)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `work` on a new thread that has entered the namespace; sockets it opens belong there.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        let handle = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on a valid namespace fd affects only this thread, which ends
                    // when `work` returns.
                    if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    work()
                })
                .join()
                .map_err(|_| io::Error::other("namespace thread panicked"))?
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair between two namespaces, both ends up. It goes away with its namespaces.
#[derive(Debug)]
pub struct VethPair {
    pub sender: String,
    pub receiver: String,
}

impl VethPair {
    /// `sender` end in `sender_ns`, `receiver` end (where XDP attaches) in `receiver_ns`.
    pub fn create(sender_ns: &NetNs, receiver_ns: &NetNs) -> io::Result<Self> {
        let pair = Self {
            sender: unique_name("dcws"),
            receiver: unique_name("dcwr"),
        };
        ip(&[
            "link",
            "add",
            &pair.sender,
            "netns",
            sender_ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            &pair.receiver,
            "netns",
            receiver_ns.name(),
        ])?;
        ip(&["-n", sender_ns.name(), "link", "set", &pair.sender, "up"])?;
        ip(&[
            "-n",
            receiver_ns.name(),
            "link",
            "set",
            &pair.receiver,
            "up",
        ])?;
        Ok(pair)
    }
}
