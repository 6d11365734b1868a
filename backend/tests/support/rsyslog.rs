//! Debian's rsyslog (`apt install rsyslog rsyslog-gnutls`; `cargo xtask setup` does) on
//! 127.0.0.1: UDP, TCP, and TCP with TLS (gtls, with a CA and server certificate made for the
//! test), every message written to one file as `INPUT<TAB>APP-NAME<TAB>MSGID<TAB>RAW-MESSAGE`.

use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;
use dcwatch_backend::{config::TlsConfig, tls};

use super::eventually;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A message as rsyslog received and parsed it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// `udp`, `tcp` or `tls`.
    pub input: String,
    pub app: String,
    pub msgid: String,
    /// The message as it arrived, framing removed.
    pub raw: String,
}

pub(crate) struct Rsyslog {
    child: Child,
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    /// The CA the TLS listener's certificate chains to.
    pub ca: PathBuf,
    out: PathBuf,
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Rsyslog {
    pub(crate) fn start(dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Path::new(RSYSLOGD).exists(),
            "{RSYSLOGD} is missing: apt-get install rsyslog rsyslog-gnutls (cargo xtask setup \
             installs them)"
        );
        std::fs::create_dir_all(dir)?;
        // The backend's own certificate maker: a CA, and a server certificate for localhost
        // and 127.0.0.1.
        tls::server_identity(&TlsConfig::default(), dir)?;
        let certificates = dir.join("tls");
        let (udp, tcp, tls) = (free_udp_port()?, free_tcp_port()?, free_tcp_port()?);
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        let path = |name: &str| certificates.join(name).display().to_string();
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}" name="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" name="tcp")
input(type="imtcp" address="127.0.0.1" port="{tls}" name="tls"
      StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="received" type="string" string="%inputname%\t%app-name%\t%msgid%\t%rawmsg%\n")
action(type="omfile" file="{out}" template="received")
"#,
                work = dir.display(),
                ca = path("ca.pem"),
                cert = path("server.pem"),
                key = path("server.key"),
                out = out.display(),
            ),
        )?;
        let child = Command::new(RSYSLOGD)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rsyslogd")?;
        let rsyslog = Self {
            child,
            udp,
            tcp,
            tls,
            ca: certificates.join("ca.pem"),
            out,
        };
        // The TCP listeners open with the UDP one.
        eventually("rsyslogd's listeners", || {
            (TcpStream::connect(("127.0.0.1", tcp)).is_ok()
                && TcpStream::connect(("127.0.0.1", tls)).is_ok())
            .then_some(())
        })?;
        Ok(rsyslog)
    }

    /// Everything received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.splitn(4, '\t');
                Some(Received {
                    input: fields.next()?.to_owned(),
                    app: fields.next()?.to_owned(),
                    msgid: fields.next()?.to_owned(),
                    raw: fields.next()?.to_owned(),
                })
            })
            .collect()
    }

    /// Waits until `count` received messages satisfy `matches`; those messages.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        eventually(what, || {
            let found: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|received| matches(received))
                .collect();
            (found.len() >= count).then_some(found)
        })
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
