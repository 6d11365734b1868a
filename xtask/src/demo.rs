//! `cargo xtask demo`: the sensor on the mirror port of a real Samba AD domain controller, no
//! hardware needed. The lab (tests/lab/lab.sh) comes up in network namespaces, every scenario
//! plays (logons, file access, roasting, DCSync, brute force, reconnaissance, ...) with a
//! summary of what the sensor saw in each; then the sensor keeps watching, one activity per
//! line, until Ctrl-C, and the lab is taken down.
//!
//! `--captures` needs no Samba: first the capture: a sender namespace puts a known mix of frames (every watched AD service,
//! IPv6, VLANs, and frames that must not match) on one end of a veth pair; the sensor runs in
//! mirror mode on the other end, in its own namespace, and prints one JSON line per captured
//! packet; then the counters, beside what the mix should give.
//!
//! Then what the sensor understands: the frames of captures from a real Samba AD domain
//! controller (testdata/pcaps/adlab: Kerberos logons, AS-REP roasting, Kerberoasting, LDAP
//! reconnaissance, DNS) are sent over the link the same way, and the sensor prints one JSON line
//! per activity, then a count of them by protocol and type.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use dcwatch_tests::{
    netns::{NetNs, VethPair},
    pcap,
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file, traffic,
};

use crate::{
    e2e,
    lab::{self, LabTask},
    shell,
};

/// Lab captures whose activities the demo shows.
const LAB_CAPTURES: [&str; 5] = [
    "kerberos.pcap",
    "asreproast.pcap",
    "kerberoast.pcap",
    "ldap.pcap",
    "dns.pcap",
];

pub(crate) fn run(rounds: u32, live_lab: bool) -> anyhow::Result<()> {
    let sensor = shell::build_sensor("demo")?;
    if live_lab {
        return watch_the_lab(&sensor);
    }
    capture_the_mix(&sensor, rounds)?;
    activities_of_the_lab(&sensor)
}

/// The sensor on the running lab's mirror port while every scenario plays, a summary
/// of each, then the sensor left watching until Ctrl-C, and the lab taken down.
fn watch_the_lab(sensor: &Path) -> anyhow::Result<()> {
    shell::require_root("demo")?;
    lab::run(LabTask::Up)?;
    let watched = play_then_watch(sensor);
    let down = lab::run(LabTask::Down);
    watched.and(down)
}

/// Where the demo backend's console listens inside the sensor's namespace, and the port on this
/// host's loopback that leads to it (another when that one is taken).
const CONSOLE_IN_LAB: &str = "127.0.0.1:8443";
const CONSOLE_HERE: &str = "127.0.0.1:8443";
/// The console account the demo makes.
const ANALYST: &str = "analyst";

fn play_then_watch(sensor: &Path) -> anyhow::Result<()> {
    let backend = e2e::LabBackend::start_with(
        sensor,
        &format!("[console]\nlisten = \"{CONSOLE_IN_LAB}\"\n"),
    )?;
    println!(
        "dcwatch-backend is up in the sensor's namespace; the sensor streams every activity to it, \
         and its detectors judge them"
    );
    let mut known = BTreeMap::new();
    for scenario in lab::scenario_names()? {
        let played = e2e::play(sensor, &scenario, &backend, None)?;
        println!(
            "\n== {scenario}: {} activities from {} frames",
            played.activities.len(),
            played.frames
        );
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for activity in &played.activities {
            let field = |key: &str| activity[key].as_str().unwrap_or_default().to_owned();
            *kinds
                .entry(format!("{} {}", field("protocol"), field("type")))
                .or_default() += 1;
        }
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{kind} x{count}"))
            .collect();
        println!("   {}", kinds.join(", "));
        for activity in played
            .activities
            .iter()
            .filter(|activity| notable(activity))
            .take(5)
        {
            println!("   {}", describe(activity));
        }
        for alert in raised_since(&backend, &mut known)? {
            println!("   ALERT {}", headline(&alert));
        }
    }
    println!(
        "\nThe backend stored {} activities and holds these alerts (`dcwatch-backend alerts \
         --data-dir {}`):\n",
        backend.stored()?.len(),
        backend.data_dir().display()
    );
    for alert in backend.alerts()? {
        println!("  {}", headline(&alert));
    }
    show_the_console(&backend)?;
    println!(
        "\nThe lab stays up and the sensor keeps watching its mirror, one activity per line, \
         streaming to the backend: play with `cargo xtask lab exec client '...'` in another \
         terminal, and watch the alerts in the console. Ctrl-C stops the sensor and takes the \
         lab down."
    );
    // Ctrl-C is for the sensor: this process waits for it, then tears the lab down.
    // SAFETY: SIG_IGN is a valid disposition for SIGINT; no handler of ours is replaced.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = Command::new("ip")
        .args(["netns", "exec", e2e::SENSOR_NAMESPACE])
        .arg(sensor)
        .args([
            "run",
            "--interface",
            e2e::MIRROR_INTERFACE,
            "--mode",
            "mirror",
            "--output",
            "json",
        ])
        .arg("--config")
        .arg(backend.sensor_config()?)
        .args(backend.sensor_args())
        .status()
        .context("running the sensor")?;
    if !status.success() {
        bail!("the sensor exited with {status}");
    }
    println!(
        "\nThe backend stored {} activities in all.",
        backend.stored()?.len()
    );
    Ok(())
}

/// The alerts opened or updated since `known` (id to count), which is brought up to date.
fn raised_since(
    backend: &e2e::LabBackend,
    known: &mut BTreeMap<String, String>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut changed = Vec::new();
    for alert in backend.settled_alerts()? {
        let id = alert["id"].as_str().unwrap_or_default().to_owned();
        let count = alert["count"].to_string();
        if known.get(&id) != Some(&count) {
            known.insert(id, count);
            changed.push(alert);
        }
    }
    Ok(changed)
}

/// `SEVERITY type: description`.
fn headline(alert: &serde_json::Value) -> String {
    let field = |key: &str| alert[key].as_str().unwrap_or_default();
    format!(
        "{:<6} {}: {}",
        field("severity")
            .trim_start_matches("SEVERITY_")
            .to_lowercase(),
        field("type"),
        field("description")
    )
}

/// Makes the analyst's account, its password in a file only root reads, and opens the console
/// on this host's loopback.
fn show_the_console(backend: &e2e::LabBackend) -> anyhow::Result<()> {
    let password_file = backend.data_dir().join("analyst-password");
    let mut random = [0_u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut random))
        .context("reading /dev/urandom")?;
    let password = hex::encode(random);
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&password_file)
            .with_context(|| format!("making {}", password_file.display()))?;
        std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())?;
    }
    shell::run(
        Command::new(backend.bin())
            .args([
                "user",
                "add",
                ANALYST,
                "--role",
                "analyst",
                "--password-file",
            ])
            .arg(&password_file)
            .arg("--data-dir")
            .arg(backend.data_dir()),
    )?;
    let here = crate::forward::start(
        CONSOLE_HERE.parse()?,
        e2e::SENSOR_NAMESPACE,
        CONSOLE_IN_LAB.parse()?,
    )?;
    println!(
        "\nThe analyst's console: https://localhost:{}/ (user {ANALYST}, password in {}; the \
         certificate is signed by the backend's CA, {}).",
        here.port(),
        password_file.display(),
        backend.data_dir().join("tls/ca.pem").display()
    );
    Ok(())
}

/// Activities worth a line of their own in the summary: failures, and the attacks' tell-tales.
/// RPC operations an attack leaves: replication (DCSync), service creation (psexec), account
/// enumeration, Netlogon authentication (Zerologon), DPAPI backup keys, coercion.
const TELL_TALE_OPERATIONS: &[&str] = &[
    "DsGetNCChanges",
    "DsReplicaAdd",
    "DsAddEntry",
    "RCreateServiceW",
    "RCreateServiceWOW64W",
    "RStartServiceW",
    "SamrEnumerateUsersInDomain",
    "SamrLookupNamesInDomain",
    "NetrServerAuthenticate3",
    "NetrServerPasswordSet2",
    "LsarRetrievePrivateData",
    "EfsRpcOpenFileRaw",
    "RpcRemoteFindFirstPrinterChangeNotificationEx",
];

fn notable(activity: &serde_json::Value) -> bool {
    activity["outcome"]["status"] == "FAILURE"
        || activity["ticket_etype"] == 23
        || activity["type"] == "AXFR"
        || activity["operation"]
            .as_str()
            .is_some_and(|operation| TELL_TALE_OPERATIONS.contains(&operation))
}

fn describe(activity: &serde_json::Value) -> String {
    let field = |key: &str| activity[key].as_str().unwrap_or_default();
    let what = match field("protocol") {
        "kerberos" => format!(
            "{}@{} -> {} {}",
            field("client"),
            field("client_realm"),
            field("service"),
            if activity["ticket_etype"] == 23 {
                "(RC4 ticket)"
            } else {
                ""
            },
        ),
        "ldap" => format!(
            "{} {} {}",
            field("bind_name"),
            field("filter"),
            field("result_name")
        ),
        "dns" => format!(
            "{} {} {}",
            field("query_name"),
            field("query_type"),
            field("rcode_name")
        ),
        "ntlm" => format!(
            "{}\\{} from {}",
            field("domain"),
            field("user"),
            field("workstation")
        ),
        "smb" => format!(
            "{}{} {}{} {}",
            field("domain"),
            if field("domain").is_empty() { "" } else { "\\" },
            field("user"),
            field("share"),
            field("file_name")
        ),
        "dcerpc" => format!(
            "{} {} {}{}",
            field("interface_name"),
            field("operation"),
            field("service_name"),
            if field("binary_path").is_empty() {
                String::new()
            } else {
                format!(" ({})", field("binary_path"))
            }
        ),
        _ => String::new(),
    };
    let outcome = activity["outcome"]["name"].as_str().unwrap_or_default();
    format!(
        "{} {} {} -> {}: {} {}",
        field("protocol"),
        field("type"),
        field("src"),
        field("dst"),
        what.trim(),
        outcome
    )
    .trim_end()
    .to_owned()
}

fn capture_the_mix(sensor: &Path, rounds: u32) -> anyhow::Result<()> {
    let peer = NetNs::create("dcwdemo")?;
    let capture = NetNs::create("dcwdemo")?;
    let veth = VethPair::create(&peer, &capture)?;
    let run = RunDir::create()?;
    let stats = &run.stats;
    eprintln!(
        "demo: sensor on {} (namespace {}), traffic from {} (namespace {})",
        veth.receiver,
        capture.name(),
        veth.sender,
        peer.name()
    );
    let args = run.run_args(
        &[&veth.receiver],
        &["--mode", "mirror", "--output", "packets"],
    );
    let process = SensorProcess::start(&capture, sensor, &args, 1)?;

    let samples = traffic::mix();
    let expected = traffic::expected(&samples, u64::from(rounds));
    traffic::send(&peer, &veth.sender, &samples, u64::from(rounds))
        .context("sending the traffic mix")?;
    stats_file::wait_for(
        stats,
        "delivered",
        expected.matched,
        Duration::from_secs(10),
    )?;
    let finished = process.stop()?;
    for line in &finished.stdout {
        println!("{line}");
    }
    let counters = stats_file::read(stats)?;
    println!();
    println!("{:<14} {:>10} {:>10}", "counter", "sensor", "expected");
    for (name, want) in [
        ("seen", expected.seen),
        ("bytes", expected.bytes),
        ("matched", expected.matched),
        ("copied", expected.matched),
        ("delivered", expected.matched),
        ("non_ip", expected.non_ip),
        ("malformed", expected.malformed),
        ("ringbuf_full", 0),
        ("truncated", 0),
        ("decode_errors", 0),
    ] {
        println!(
            "{name:<14} {:>10} {want:>10}",
            stats_file::counter(&counters, name)
        );
    }
    if !finished.status.success() {
        bail!(
            "the sensor exited with {}: {}",
            finished.status,
            finished.stderr.join("\n")
        );
    }
    Ok(())
}

fn activities_of_the_lab(sensor: &Path) -> anyhow::Result<()> {
    let lab = shell::workspace_root().join("testdata/pcaps/adlab");
    let mut frames = Vec::new();
    for capture in LAB_CAPTURES {
        frames.extend(pcap::read_frames(&lab.join(capture))?);
    }
    let peer = NetNs::create("dcwdemo")?;
    let capture = NetNs::create("dcwdemo")?;
    let veth = VethPair::create(&peer, &capture)?;
    let run = RunDir::create()?;
    eprintln!(
        "\ndemo: {} frames of the Samba AD lab's captures ({}) over {}: one line per activity",
        frames.len(),
        LAB_CAPTURES.join(", "),
        veth.receiver
    );
    let args = run.run_args(&[&veth.receiver], &["--mode", "mirror", "--output", "json"]);
    let process = SensorProcess::start(&capture, sensor, &args, 1)?;
    send_frames(&peer, &veth.sender, frames.iter().map(Vec::as_slice))
        .context("sending the lab's frames")?;
    stats_file::wait_for(
        &run.stats,
        "seen",
        frames.len() as u64,
        Duration::from_secs(10),
    )?;
    let finished = process.stop()?;
    let mut kinds: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in &finished.stdout {
        println!("{line}");
        let activity: serde_json::Value = serde_json::from_str(line)?;
        let field = |key: &str| activity[key].as_str().unwrap_or_default().to_owned();
        *kinds.entry((field("protocol"), field("type"))).or_default() += 1;
    }
    println!();
    println!("{:<10} {:<16} {:>10}", "protocol", "type", "activities");
    for ((protocol, kind), count) in &kinds {
        println!("{protocol:<10} {kind:<16} {count:>10}");
    }
    if !finished.status.success() {
        bail!(
            "the sensor exited with {}: {}",
            finished.status,
            finished.stderr.join("\n")
        );
    }
    Ok(())
}
