//! The sensor's replay beside tshark and tcpdump on the same capture, in the same run.
//!
//! The input is the bundled capture corpus (testdata/pcaps), its Ethernet frames repeated
//! `COPIES` times with the IP addresses rewritten per copy (and the times shifted), so that each
//! copy is new connections to a reassembler rather than retransmissions of the first. Each tool
//! runs on one CPU (`taskset -c 1`) with its output thrown away, `TRIALS` times, interleaved;
//! the figures are medians of CPU time (user + system, from `wait4`) and peak resident memory.
//!
//! - `dcwatch-replay FILE --output json` (`dcwatch-sensor replay`, built without live capture):
//!   every activity as a JSON line;
//! - `tshark -r FILE -T fields -e ...`: the same fields from tshark's dissectors (every protocol
//!   the sensor reports: Kerberos, NTLM, LDAP, DNS, SMB, DCE-RPC, NetBIOS, RDP, RADIUS);
//! - `tcpdump -nn -r FILE`: a floor that decodes and prints headers only;
//! - with `SURICATA=/path/to/suricata` (the user's own Suricata 8): `suricata -r FILE` with its
//!   parsers for these protocols on and EVE output of their records (`suricata.yaml` here);
//! - `dcwatch-replay FILE --output json --directory adlab.jsonl`: the same with every
//!   activity enriched from the lab's directory snapshot (testdata/directory);
//! - `dcwatch-replay FILE --output json --config F`, F turning `dissect.rpc_by_content`
//!   off: the baseline of DCE-RPC found by its content (issue #11 allows it 5% more CPU).
//!
//! Then, in this process, the cost per activity of name resolution and enrichment beside the
//! cost of producing the activity: `IN_PROCESS_COPIES` copies of the corpus are decoded and
//! dissected once (timed: the baseline), the activities kept, then every one goes through the
//! resolver (`dcwatch_entity::nnr::Resolver::process`, a fresh one per trial) and through
//! enrichment (`dcwatch_entity::enrich::activity`) with and without a directory.
//!
//! For the report (`BENCH_REPORT_DIR`): packets per CPU-second and peak memory of every tool, to
//! tcpdump's. A quick run (`BENCH_QUICK`) uses 2 copies and 3 trials.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use anyhow::{Context as _, bail};
use bench::{
    build_repeated_corpus, measure, median, pin_to_cpu, replay_binary, replay_command,
    report::{self, BenchFigures, Figure, Row, scaled},
};
use dcwatch_entity::{Directory, TagConfig, enrich, snapshot};
use dcwatch_pipeline::{capture_file::CaptureFile, decode::packet, dissect::Dissector};
use dcwatch_proto::v1::Activity;
use sensor_user::config::Config;

/// Copies of the corpus in the input.
const COPIES: u16 = 100;
const QUICK_COPIES: u16 = 2;
const TRIALS: usize = 5;
const QUICK_TRIALS: usize = 3;
/// Copies of the corpus whose activities are held in memory for the in-process figures.
const IN_PROCESS_COPIES: u16 = 10;
const QUICK_IN_PROCESS_COPIES: u16 = 1;
/// Suricata's configuration: the parsers of the protocols the sensor reports, EVE records of them.
const SURICATA_YAML: &str = include_str!("suricata.yaml");
/// The CPU every tool is pinned to.
const CPU: &str = "1";

/// tshark's fields for what the sensor reports of Kerberos, NTLM, LDAP, DNS, SMB, DCE-RPC,
/// NetBIOS, RDP and RADIUS: asking for a field makes tshark build that part of its tree, so
/// every protocol the sensor reports is asked for, for a like-for-like comparison.
const TSHARK_FIELDS: &[&str] = &[
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "kerberos.msg_type",
    "kerberos.CNameString",
    "kerberos.realm",
    "kerberos.SNameString",
    "kerberos.etype",
    "kerberos.error_code",
    "ntlmssp.messagetype",
    "ntlmssp.auth.username",
    "ntlmssp.auth.domain",
    "ntlmssp.auth.hostname",
    "ldap.protocolOp",
    "ldap.name",
    "ldap.baseObject",
    "ldap.scope",
    "ldap.filter",
    "ldap.resultCode",
    "dns.qry.name",
    "dns.qry.type",
    "dns.flags.rcode",
    "dns.a",
    "dns.aaaa",
    "dns.srv.target",
    // SMB 1 and 2/3: commands and status, session setup's account, tree connects, opens.
    "smb.cmd",
    "smb.nt_status",
    "smb.account",
    "smb.primary_domain",
    "smb.native_os",
    "smb.path",
    "smb.file",
    "smb2.cmd",
    "smb2.nt_status",
    "smb2.dialect",
    "smb2.acct",
    "smb2.domain",
    "smb2.host",
    "smb2.tree",
    "smb2.filename",
    // DCE-RPC: binds and requests, and the operations' arguments the sensor reports.
    "dcerpc.pkt_type",
    "dcerpc.cn_bind_to_uuid",
    "dcerpc.cn_ack_result",
    "dcerpc.opnum",
    "dcerpc.auth_type",
    "dcerpc.auth_level",
    "svcctl.binarypathname",
    "netlogon.computer_name",
    "netlogon.acct_name",
    // NetBIOS name service.
    "nbns.name",
    "nbns.flags.opcode",
    "nbns.flags.rcode",
    "nbns.addr",
    // RDP connection setup.
    "rdp.rt_cookie",
    "rdp.negReq.requestedProtocols",
    "rdp.negReq.selectedProtocol",
    "rdp.negFailure.failureCode",
    "rdp.client.name",
    // RADIUS.
    "radius.code",
    "radius.User_Name",
    "radius.Framed_IP_Address",
    "radius.Calling_Station_Id",
    "radius.Called_Station_Id",
    "radius.NAS_IP_Address",
    "radius.NAS_Identifier",
    "radius.Acct_Session_Id",
    "radius.Acct_Status_Type",
    "radius.Reply_Message",
];

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let replay = replay_binary()?;
    let (copies, trials) = (scaled(COPIES, QUICK_COPIES), scaled(TRIALS, QUICK_TRIALS));
    let workdir = std::env::temp_dir().join("dcwatch-replay-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, bytes) = build_repeated_corpus(copies, &input)?;
    println!(
        "input: {copies} copies of the bundled corpus: {frames} frames, {:.1} MB ({})",
        bytes as f64 / 1e6,
        input.display()
    );
    let input_arg = input.display().to_string();

    let mut fields = vec![
        "-r".to_owned(),
        input_arg.clone(),
        "-T".into(),
        "fields".into(),
    ];
    for field in TSHARK_FIELDS {
        fields.push("-e".into());
        fields.push((*field).to_owned());
    }
    let directory = root.join("testdata/directory/adlab.jsonl");
    let directory_arg = directory.display().to_string();
    // One thread, as every other tool here; workers-cost measures more.
    let dcwatch = replay_command(&replay, &["--output", "json", "--workers", "1", &input_arg]);
    let with_directory = [dcwatch.clone(), vec!["--directory".into(), directory_arg]].concat();
    let no_rpc_by_content = workdir.join("no-rpc-by-content.toml");
    std::fs::write(&no_rpc_by_content, "[dissect]\nrpc_by_content = false\n")?;
    let without_rpc_by_content = [
        dcwatch.clone(),
        vec!["--config".into(), no_rpc_by_content.display().to_string()],
    ]
    .concat();
    let mut tools: Vec<(&str, Vec<String>)> = vec![
        (
            "tcpdump",
            vec![
                "tcpdump".into(),
                "-nn".into(),
                "-r".into(),
                input_arg.clone(),
            ],
        ),
        ("dcwatch", dcwatch),
        ("tshark", [vec!["tshark".to_owned()], fields].concat()),
        ("dcwatch+dir", with_directory),
        ("dcwatch-rpc", without_rpc_by_content),
    ];
    let mut notes = Vec::new();
    if let Some(command) = suricata_command(&workdir, &input)? {
        tools.push(("suricata", command));
    } else {
        let note = "Suricata: not measured (set SURICATA to a Suricata 8 binary to compare)";
        println!("{note}");
        notes.push(note.to_owned());
    }
    let by_protocol = count_by_protocol(&tools[1].1)?;
    let activities: u64 = by_protocol.iter().map(|(_, count)| count).sum();
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    for _ in 0..trials {
        for (index, (_, command)) in tools.iter().enumerate() {
            let usage = measure(command, Some(CPU), Stdio::null())?;
            cpu[index].push(usage.cpu.as_secs_f64());
            rss[index].push(usage.peak_rss_kib as f64 / 1024.0);
        }
    }
    let medians: Vec<(f64, f64)> = cpu
        .iter()
        .zip(&rss)
        .map(|(cpu, rss)| (median(&mut cpu.clone()), median(&mut rss.clone())))
        .collect();
    let [tcpdump_cpu, dcwatch_cpu, tshark_cpu] = [medians[0].0, medians[1].0, medians[2].0];
    println!(
        "{:<11} {:>9} {:>12} {:>10} {:>12} {:>9} {:>10} {:>9}",
        "tool", "CPU s", "packets/s", "MB/s", "activities/s", "peak MiB", "/tcpdump", "/tshark"
    );
    for ((name, _), (seconds, peak)) in tools.iter().zip(&medians) {
        let activities_per_second = if name.starts_with("dcwatch") {
            format!("{:.0}", activities as f64 / seconds)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<11} {:>9.3} {:>12.0} {:>10.1} {:>12} {:>9.1} {:>9.2}x {:>8.2}x",
            name,
            seconds,
            frames as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            activities_per_second,
            peak,
            seconds / tcpdump_cpu,
            seconds / tshark_cpu,
        );
    }
    println!(
        "(medians of {trials} runs, each pinned to CPU {CPU}; {activities} activities per dcwatch \
         run; CPU s = user + system; {} tshark fields)",
        TSHARK_FIELDS.len()
    );
    println!(
        "DCE-RPC found by content: {:.3} s on, {:.3} s off (dcwatch-rpc): {:.3}x",
        dcwatch_cpu,
        medians[4].0,
        dcwatch_cpu / medians[4].0
    );
    // One run's CPU time spread over its activities: what each protocol's share of the corpus
    // makes of the whole run's rate, not a per-protocol measurement.
    println!(
        "{:<10} {:>10} {:>7} {:>14}",
        "protocol", "activities", "share", "activities/s"
    );
    for (protocol, count) in &by_protocol {
        println!(
            "{:<10} {:>10} {:>6.1}% {:>14.0}",
            protocol,
            count,
            *count as f64 * 100.0 / activities.max(1) as f64,
            *count as f64 / dcwatch_cpu,
        );
    }
    write_figures(
        &tools, &cpu, &rss, frames, copies, trials, activities, notes,
    )?;
    let small = workdir.join("corpus-in-process.pcap");
    build_repeated_corpus(scaled(IN_PROCESS_COPIES, QUICK_IN_PROCESS_COPIES), &small)?;
    resolution_cost(&small, &directory, trials)
}

/// What each tool's command line is, as the report names it.
fn tool_label(name: &str) -> &'static str {
    match name {
        "tcpdump" => "tcpdump -nn -r (headers only)",
        "dcwatch" => "dcwatch-replay --output json, 1 worker",
        "tshark" => "tshark -T fields (68 fields, 9 protocols)",
        "dcwatch+dir" => "dcwatch-replay, with the lab's directory",
        "dcwatch-rpc" => "dcwatch-replay, rpc_by_content off",
        "suricata" => "Suricata, these protocols' parsers, EVE",
        _ => "?",
    }
}

/// The report's figures: packets per CPU-second and peak memory, each tool against tcpdump.
#[expect(clippy::too_many_arguments, reason = "the run's figures, written once")]
fn write_figures(
    tools: &[(&str, Vec<String>)],
    cpu: &[Vec<f64>],
    rss: &[Vec<f64>],
    frames: u64,
    copies: u16,
    trials: usize,
    activities: u64,
    notes: Vec<String>,
) -> anyhow::Result<()> {
    let method = format!(
        "The bundled corpus repeated {copies} times, addresses rewritten per copy: {frames} \
         frames; {activities} activities per dcwatch run. Each tool pinned to CPU {CPU}, output \
         to /dev/null, {trials} runs interleaved; CPU = user + system from `wait4`, peak memory \
         its `ru_maxrss`."
    );
    let rate = tools
        .iter()
        .zip(cpu)
        .map(|((name, _), runs)| {
            let runs = runs.iter().map(|seconds| frames as f64 / seconds).collect();
            Row::new(tool_label(name), runs)
        })
        .collect();
    let memory = tools
        .iter()
        .zip(rss)
        .map(|((name, _), runs)| Row::new(tool_label(name), runs.clone()))
        .collect();
    report::write(&BenchFigures {
        bench: "replay-cost".to_owned(),
        figures: vec![
            Figure::new(
                "replay-tools",
                "Replay of a capture, one CPU: packets per CPU-second beside tcpdump, tshark (and Suricata)",
                "packets per CPU-second",
                method.clone(),
                rate,
            ),
            Figure::new(
                "replay-memory",
                "Replay of a capture: peak memory",
                "MiB (peak resident)",
                method,
                memory,
            ),
        ],
        notes,
    })
}

/// Suricata on `input`, when `SURICATA` names its binary: one packet thread, checksums not
/// checked (the rewritten addresses break them), the configuration of [`SURICATA_YAML`], its EVE
/// records into `workdir/suricata`.
fn suricata_command(workdir: &Path, input: &Path) -> anyhow::Result<Option<Vec<String>>> {
    let Some(binary) = std::env::var_os("SURICATA").filter(|path| !path.is_empty()) else {
        return Ok(None);
    };
    let binary = PathBuf::from(binary);
    if !binary.exists() {
        bail!("SURICATA={}: no such file", binary.display());
    }
    let logs = workdir.join("suricata");
    std::fs::create_dir_all(&logs)?;
    let config = workdir.join("suricata.yaml");
    std::fs::write(&config, SURICATA_YAML)?;
    Ok(Some(vec![
        binary.display().to_string(),
        "-c".into(),
        config.display().to_string(),
        "-l".into(),
        logs.display().to_string(),
        "-k".into(),
        "none".into(),
        "--runmode".into(),
        "single".into(),
        "-r".into(),
        input.display().to_string(),
    ]))
}

/// Nanoseconds per activity of `work` over `activities`, median of TRIALS.
fn per_activity(
    activities: &mut [Activity],
    trials: usize,
    mut work: impl FnMut(&mut [Activity]),
) -> f64 {
    let mut runs: Vec<f64> = (0..trials)
        .map(|_| {
            let start = Instant::now();
            work(activities);
            start.elapsed().as_nanos() as f64 / activities.len().max(1) as f64
        })
        .collect();
    median(&mut runs)
}

/// Resolution and enrichment per activity, beside decoding and dissection per activity.
fn resolution_cost(input: &Path, directory_path: &Path, trials: usize) -> anyhow::Result<()> {
    pin_to_cpu(CPU.parse()?);
    let config = Config::default();
    let mut dissect = Vec::new();
    let mut activities = Vec::new();
    for trial in 0..trials {
        let mut file = CaptureFile::open(input)?;
        let mut dissector = Dissector::new(config.dissect_limits());
        let mut out: Vec<Activity> = Vec::new();
        let mut last = 0;
        let start = Instant::now();
        while let Some(record) = file.next_frame()? {
            last = record.timestamp_ns;
            if let Ok(decoded) = packet(record.link, record.data) {
                dissector.packet(record.timestamp_ns, &decoded, &mut out);
            }
        }
        dissector.finish(last, &mut out);
        dissect.push(start.elapsed().as_nanos() as f64 / out.len().max(1) as f64);
        if trial == 0 {
            activities = out;
        }
    }
    let dissect = median(&mut dissect);
    let (domains, objects) = snapshot::read(std::io::BufReader::new(
        std::fs::File::open(directory_path)
            .with_context(|| format!("opening {}", directory_path.display()))?,
    ))?;
    let directory = Directory::new(domains, objects, &TagConfig::default(), 0);
    let empty = Directory::default();
    let mut resolver_counters = HashMap::new();
    let resolve = per_activity(&mut activities, trials, |activities| {
        let mut resolver = config.resolver();
        for activity in activities.iter_mut() {
            resolver.process(activity);
        }
        resolver_counters = resolver
            .snapshot()
            .pairs()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
    });
    let enrich_empty = per_activity(&mut activities, trials, |activities| {
        for activity in activities.iter_mut() {
            enrich::activity(&empty, activity);
        }
    });
    let enrich_lab = per_activity(&mut activities, trials, |activities| {
        for activity in activities.iter_mut() {
            enrich::activity(&directory, activity);
        }
    });
    let enriched = activities
        .iter()
        .filter(|activity| {
            activity
                .account
                .as_ref()
                .is_some_and(|account| !account.sid.is_empty())
        })
        .count();
    println!(
        "in process, {} activities (medians of {trials}, CPU {CPU}):",
        activities.len()
    );
    println!("{:<34} {:>12} {:>12}", "step", "ns/activity", "/dissection");
    for (step, cost) in [
        ("decode + dissect (baseline)", dissect),
        ("name resolution (Resolver)", resolve),
        ("enrichment, no directory", enrich_empty),
        ("enrichment, lab directory", enrich_lab),
    ] {
        println!("{step:<34} {cost:>12.0} {:>11.3}x", cost / dissect);
    }
    let counter = |name: &str| resolver_counters.get(name).copied().unwrap_or(0);
    println!(
        "(resolution: {} high, {} low, {} unresolved, {} addresses; {enriched} accounts matched \
         in the lab directory)",
        counter("nnr_resolved_high"),
        counter("nnr_resolved_low"),
        counter("nnr_unresolved"),
        counter("nnr_addresses"),
    );
    Ok(())
}

/// JSON lines a command prints, counted by their `protocol`. Most frequent first.
fn count_by_protocol(command: &[String]) -> anyhow::Result<Vec<(String, u64)>> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    bench::each_line(command, |line| {
        *counts.entry(protocol_of(line)).or_default() += 1;
    })?;
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(counts)
}

/// The `"protocol":"..."` value of a JSON line (the sensor writes it near the start).
fn protocol_of(line: &[u8]) -> String {
    const KEY: &[u8] = b"\"protocol\":\"";
    line.windows(KEY.len())
        .position(|window| window == KEY)
        .and_then(|at| {
            let rest = line.get(at + KEY.len()..)?;
            let end = rest.iter().position(|&byte| byte == b'"')?;
            Some(String::from_utf8_lossy(rest.get(..end)?).into_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}
