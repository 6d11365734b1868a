//! What the directory costs: syncing it from a real Samba DC, and loading a large one.
//!
//! 1. Full sync: `dcwatch-sensor directory sync` (LDAPS, paged) against the Samba DC of
//!    tests/lab/tools/sync_dc.sh (namespace dcwsync-dc; brought up here, filled with 5,000
//!    users, 1,000 computers and 120 groups, plus `BENCH_USERS` by tests/lab/tools/add_users.py:
//!    about 10,000 objects; adding them takes minutes the first time), timed from start to exit with its peak RSS,
//!    beside the baseline `ldapsearch` reading the same entries with the same attributes,
//!    controls and page size into /dev/null. `TRIALS` interleaved runs each, medians.
//! 2. Incremental sync, in this process through the sensor's library: after one full sync, an
//!    incremental sync with nothing changed, and one after `CHANGES` accounts changed
//!    (samba-tool), each against the full sync's time.
//! 3. Loading a snapshot of `SNAPSHOT_OBJECTS` generated objects (users in nested groups,
//!    computers, groups) into `entity::Directory` (read, index, transitive groups, tags), in a
//!    child process for its peak RSS, beside the baseline of parsing the same file's lines into
//!    `serde_json::Value`s and dropping them.
//! 4. With `--full` (or alone: `directory-cost sizes`): the full sync of part 1 against DCs of
//!    growing size, each in its own namespace: the directory tests' `--full` DC (5,000 users,
//!    1,000 computers, 100 groups) and a large one filled towards 40,000 users, 9,000 computers
//!    and 400 groups. Filling runs at tens to hundreds of milliseconds an object, so the large
//!    DC's fill is bounded to `BENCH_FILL_MINUTES` (default 30) a run and goes on at the next;
//!    each size is measured as far as it got, and the cost per object of the two largest is
//!    extrapolated to 100,000 objects (a straight line: said so where printed).
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    io::{BufRead as _, BufReader, BufWriter, Write as _},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use bench::{Usage, measure, median};
use dcwatch_entity::{Directory, Domain, Object, ObjectKind, TagConfig, Uac, snapshot};
use sensor_user::directory::{
    LogHealth,
    config::{DirectoryConfig, DomainConfig, TlsMode},
    sync::DomainSync,
};

const TRIALS: usize = 3;
/// A sync DC of tests/lab/tools/sync_dc.sh: its namespace, state folder, address and fill.
#[derive(Clone, Copy, Debug)]
struct Dc {
    namespace: &'static str,
    state: &'static str,
    ip: &'static str,
    fill: &'static str,
}

/// The DC of parts 1-3 (the directory tests' DC, grown by `BENCH_USERS`).
const DEFAULT_DC: Dc = Dc {
    namespace: "dcwsync-dc",
    state: "/tmp/dcwsync",
    ip: "10.97.0.1",
    fill: "5000 1000 120",
};
/// Part 4's DCs: the directory tests' `--full` DC (sensor-user/tests/directory_sync.rs) and a
/// large one of the benchmark's own.
const SIZED_DCS: [Dc; 2] = [
    Dc {
        namespace: "dcwsync-big",
        state: "/tmp/dcwsync-big",
        ip: "10.97.1.1",
        fill: "5000 1000 100",
    },
    Dc {
        namespace: "dcwsync-50k",
        state: "/tmp/dcwsync-50k",
        ip: "10.97.3.1",
        fill: "40000 9000 400",
    },
];
const NAMESPACE: &str = DEFAULT_DC.namespace;
const STATE: &str = DEFAULT_DC.state;
const DC_IP: &str = DEFAULT_DC.ip;
/// What part 4 extrapolates to.
const EXTRAPOLATED_OBJECTS: f64 = 100_000.0;
const BASE_DN: &str = "DC=sync,DC=example";
const USER: &str = "Administrator@sync.example";
const PASSWORD: &str = "Adm1n!Passw0rd";
const PAGE_SIZE: u32 = 500;
/// Accounts changed before the measured incremental sync.
const CHANGES: usize = 10;
const SNAPSHOT_OBJECTS: usize = 200_000;
/// Users added in OU=Bench beyond the fill (tests/lab/tools/add_users.py, idempotent).
const BENCH_USERS: usize = 4000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        // The child modes of part 3.
        Some("load") => return load(Path::new(&args.next().context("load FILE")?)),
        Some("parse") => return parse(Path::new(&args.next().context("parse FILE")?)),
        _ => {}
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let sensor = root.join("target/release/dcwatch-sensor");
    if !sensor.exists() {
        bail!(
            "{} not found: cargo build --release -p sensor-user",
            sensor.display()
        );
    }
    let work = std::env::temp_dir().join("dcwatch-directory-cost");
    drop(std::fs::remove_dir_all(&work));
    std::fs::create_dir_all(&work)?;
    let sizes_only = std::env::args().nth(1).as_deref() == Some("sizes");
    if !sizes_only {
        default_parts(&root, &sensor, &work)?;
    }
    if sizes_only || std::env::args().any(|arg| arg == "--full") {
        sizes(&root, &sensor, &work)?;
    }
    Ok(())
}

/// Brings `dc` up (provisioned and filled the first time; a fill bounded by `fill_minutes` may
/// leave it part filled).
fn dc_up(root: &Path, dc: Dc, fill_minutes: Option<u32>) -> anyhow::Result<()> {
    let mut command = Command::new("bash");
    command
        .arg(root.join("tests/lab/tools/sync_dc.sh"))
        .arg("up")
        .env("DCWSYNC_DIR", dc.state)
        .env("DCWSYNC_NS", dc.namespace)
        .env("DCWSYNC_IP", dc.ip)
        .env("DCWSYNC_FILL", dc.fill);
    if let Some(minutes) = fill_minutes {
        command.env("DCWSYNC_FILL_MINUTES", minutes.to_string());
    }
    if !command.status()?.success() {
        bail!("sync_dc.sh up failed for {}", dc.namespace);
    }
    Ok(())
}

/// Parts 1-3.
fn default_parts(root: &Path, sensor: &Path, work: &Path) -> anyhow::Result<()> {
    // The fill applies only to a DC not yet configured; the tests' smaller one stays as it is.
    dc_up(root, DEFAULT_DC, None)?;
    // About 10,000 objects in all with the fill above.
    let status = Command::new("bash")
        .arg(root.join("tests/lab/tools/sync_dc.sh"))
        .arg("exec")
        .arg(format!(
            "/usr/bin/python3 {} {STATE}/dc/etc/smb.conf Bench {BENCH_USERS}",
            root.join("tests/lab/tools/add_users.py").display()
        ))
        .status()?;
    if !status.success() {
        bail!("add_users.py failed");
    }
    let (objects, theirs, ours) = full_sync(DEFAULT_DC, sensor, work)?;
    println!(
        "full sync of {objects} directory objects over LDAPS, pages of {PAGE_SIZE}, median of \
         {TRIALS}:"
    );
    report("ldapsearch to /dev/null (baseline)", &theirs, None);
    report("dcwatch-sensor directory sync --out", &ours, Some(&theirs));
    incremental(root)?;
    snapshot_load(work)?;
    Ok(())
}

/// Part 4: the full sync at each size, and the line through the two largest.
fn sizes(root: &Path, sensor: &Path, work: &Path) -> anyhow::Result<()> {
    let fill_minutes = std::env::var("BENCH_FILL_MINUTES")
        .ok()
        .and_then(|minutes| minutes.parse().ok())
        .unwrap_or(30);
    let mut points = Vec::new();
    for dc in SIZED_DCS {
        dc_up(root, dc, Some(fill_minutes))?;
        let (objects, theirs, ours) = full_sync(dc, sensor, work)?;
        let stat = |runs: &[Usage], of: fn(&Usage) -> f64| {
            median(&mut runs.iter().map(of).collect::<Vec<_>>())
        };
        let wall = |usage: &Usage| usage.wall.as_secs_f64();
        let cpu = |usage: &Usage| usage.cpu.as_secs_f64();
        let rss = |usage: &Usage| usage.peak_rss_kib as f64 / 1024.0;
        println!(
            "full sync of {objects} objects ({}), median of {TRIALS}:",
            dc.namespace
        );
        report("ldapsearch to /dev/null (baseline)", &theirs, None);
        report("dcwatch-sensor directory sync --out", &ours, Some(&theirs));
        points.push((
            objects as f64,
            stat(&ours, wall),
            stat(&ours, cpu),
            stat(&ours, rss),
            stat(&theirs, wall),
        ));
    }
    let [small, large] = points.as_slice() else {
        bail!("one point per DC expected");
    };
    let per_object =
        |at: fn(&(f64, f64, f64, f64, f64)) -> f64| (at(large) - at(small)) / (large.0 - small.0);
    let extrapolate = |at: fn(&(f64, f64, f64, f64, f64)) -> f64| {
        at(large) + per_object(at) * (EXTRAPOLATED_OBJECTS - large.0)
    };
    println!(
        "extrapolated along the line through {:.0} and {:.0} objects (not measured) to {:.0}:",
        small.0, large.0, EXTRAPOLATED_OBJECTS
    );
    println!(
        "  wall {:.1} s ({:.0} us an object; ldapsearch {:.1} s), CPU {:.2} s ({:.1} us an \
         object), peak RSS {:.0} MiB ({:.2} KiB an object)",
        extrapolate(|p| p.1),
        per_object(|p| p.1) * 1e6,
        extrapolate(|p| p.4),
        extrapolate(|p| p.2),
        per_object(|p| p.2) * 1e6,
        extrapolate(|p| p.3),
        per_object(|p| p.3) * 1024.0,
    );
    Ok(())
}

fn private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn domain_config(password_file: &Path) -> DomainConfig {
    DomainConfig {
        base_dn: BASE_DN.into(),
        dcs: vec!["dc1.sync.example".into()],
        dc_addresses: vec![DC_IP.into()],
        tls: TlsMode::Ldaps,
        ca: Some(format!("{STATE}/dc/tls/ca.pem").into()),
        user: USER.into(),
        password_file: Some(password_file.to_owned()),
        sync: true,
        ..DomainConfig::default()
    }
}

/// `TRIALS` interleaved runs each of ldapsearch and the sensor's full sync from `dc`: the
/// objects synced, then ldapsearch's usage and the sensor's.
fn full_sync(
    dc: Dc,
    sensor: &Path,
    work: &Path,
) -> anyhow::Result<(usize, Vec<Usage>, Vec<Usage>)> {
    let Dc {
        namespace,
        state,
        ip,
        ..
    } = dc;
    let password = work.join("password");
    private_file(&password, &format!("{PASSWORD}\n"))?;
    // ldapsearch -y sends the file's bytes as they are: no newline.
    let raw_password = work.join("password.raw");
    private_file(&raw_password, PASSWORD)?;
    let config = work.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[directory]\npage_size = {PAGE_SIZE}\n[[directory.domains]]\nbase_dn = \"{BASE_DN}\"\n\
             dcs = [\"dc1.sync.example\"]\ndc_addresses = [\"{ip}\"]\n\
             ca = \"{state}/dc/tls/ca.pem\"\nuser = \"{USER}\"\npassword_file = \"{}\"\nsync = true\n",
            password.display()
        ),
    )?;
    let out = work.join("snapshot.jsonl");
    let in_namespace = |command: &[&str]| -> Vec<String> {
        ["ip", "netns", "exec", namespace]
            .iter()
            .chain(command)
            .map(|part| (*part).to_owned())
            .collect()
    };
    let sync = in_namespace(&[
        &sensor.to_string_lossy(),
        "--log-level",
        "warn",
        "directory",
        "sync",
        "--config",
        &config.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
    ]);
    let filter = dcwatch_entity::ldap::FILTER;
    let page = format!("pr={PAGE_SIZE}/noprompt");
    let show_deleted = format!("!{}", sensor_user::directory::client::SHOW_DELETED_OID);
    let ca = format!("LDAPTLS_CACERT={state}/dc/tls/ca.pem");
    let url = format!("ldaps://{ip}");
    let raw = raw_password.to_string_lossy();
    let mut search = vec![
        "env",
        &ca,
        "ldapsearch",
        "-x",
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-H",
        &url,
        "-D",
        USER,
        "-y",
        &raw,
        "-b",
        BASE_DN,
        "-E",
        &page,
        "-E",
        &show_deleted,
        filter,
    ];
    search.extend(dcwatch_entity::ldap::ATTRIBUTES);
    let search = in_namespace(&search);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        theirs.push(measure(&search, None, Stdio::null())?);
        ours.push(measure(&sync, None, Stdio::null())?);
    }
    let objects = BufReader::new(std::fs::File::open(&out)?)
        .lines()
        .filter(|line| {
            line.as_ref()
                .is_ok_and(|line| line.starts_with("{\"object\""))
        })
        .count();
    Ok((objects, theirs, ours))
}

fn report(name: &str, runs: &[Usage], baseline: Option<&[Usage]>) {
    let wall = |runs: &[Usage]| {
        median(
            &mut runs
                .iter()
                .map(|u| u.wall.as_secs_f64())
                .collect::<Vec<_>>(),
        )
    };
    let cpu =
        |runs: &[Usage]| median(&mut runs.iter().map(|u| u.cpu.as_secs_f64()).collect::<Vec<_>>());
    let rss = |runs: &[Usage]| {
        median(
            &mut runs
                .iter()
                .map(|u| u.peak_rss_kib as f64 / 1024.0)
                .collect::<Vec<_>>(),
        )
    };
    let ratio = |ours: f64, theirs: f64| {
        if theirs > 0.0 {
            format!(" ({:.2}x)", ours / theirs)
        } else {
            String::new()
        }
    };
    let (w, c, r) = (wall(runs), cpu(runs), rss(runs));
    match baseline {
        Some(base) => println!(
            "  {name}: {w:.2} s{}, CPU {c:.2} s{}, peak RSS {r:.1} MiB{}",
            ratio(w, wall(base)),
            ratio(c, cpu(base)),
            ratio(r, rss(base))
        ),
        None => println!("  {name}: {w:.2} s, CPU {c:.2} s, peak RSS {r:.1} MiB"),
    }
}

/// Runs `body` on a thread inside the DC's namespace.
fn in_namespace<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    std::thread::spawn(move || -> anyhow::Result<T> {
        let netns = std::fs::File::open(format!("/run/netns/{NAMESPACE}"))?;
        // SAFETY: setns on this thread only, with a namespace file descriptor held open.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(body())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

fn incremental(root: &Path) -> anyhow::Result<()> {
    let password = std::env::temp_dir().join("dcwatch-directory-cost/password");
    let settings = DirectoryConfig {
        page_size: PAGE_SIZE,
        ..DirectoryConfig::default()
    };
    let config = domain_config(&password);
    let run = |sync: DomainSync, settings: DirectoryConfig| {
        in_namespace(move || {
            let mut sync = sync;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let started = Instant::now();
            let report = runtime.block_on(sync.sync(&settings, &LogHealth));
            let elapsed = started.elapsed();
            let changed = sync
                .take_deltas()
                .iter()
                .map(|d| d.objects.len())
                .sum::<usize>();
            (
                sync,
                report.map(|report| (report.full, report.entries, changed, elapsed)),
            )
        })
    };
    let (mut sync, first) = run(DomainSync::new(config), settings.clone())?;
    let Some((true, _, _, full)) = first else {
        bail!("the first sync was not a full one");
    };
    let mut quiet = Vec::new();
    for _ in 0..TRIALS {
        let (next, report) = run(sync, settings.clone())?;
        sync = next;
        let Some((false, _, _, elapsed)) = report else {
            bail!("an incremental sync failed");
        };
        quiet.push(elapsed.as_secs_f64());
    }
    let mut busy = Vec::new();
    let mut changed_counts = Vec::new();
    for trial in 0..TRIALS {
        let names: Vec<String> = (0..CHANGES).map(|i| format!("u{:05}", i * 7)).collect();
        // A new accountExpires each trial (a FILETIME around 2105 plus whole seconds: the sync keeps
        // milliseconds, so a smaller step would be no change to it): changes the
        // next sync must carry.
        let script = format!(
            "/usr/bin/python3 {} {STATE}/dc/etc/smb.conf {} {}",
            root.join("tests/lab/tools/touch_users.py").display(),
            159_000_000_000_000_000_u64 + 10_000_000 * u64::try_from(trial + 1).unwrap_or(0),
            names.join(" ")
        );
        let status = Command::new("bash")
            .arg(root.join("tests/lab/tools/sync_dc.sh"))
            .arg("exec")
            .arg(&script)
            .status()?;
        if !status.success() {
            bail!("changing accounts failed");
        }
        let (next, report) = run(sync, settings.clone())?;
        sync = next;
        let Some((false, _, changed, elapsed)) = report else {
            bail!("an incremental sync failed");
        };
        changed_counts.push(changed);
        busy.push(elapsed.as_secs_f64());
    }
    let full = full.as_secs_f64();
    let (quiet, busy) = (median(&mut quiet), median(&mut busy));
    println!(
        "incremental sync (uSNChanged) of the same directory, in process, median of {TRIALS}:"
    );
    println!("  full sync (baseline): {full:.2} s");
    println!(
        "  nothing changed: {:.0} ms ({:.3}x)",
        quiet * 1000.0,
        quiet / full
    );
    println!(
        "  {CHANGES} accounts changed: {:.0} ms ({:.3}x), {changed_counts:?} objects in the deltas",
        busy * 1000.0,
        busy / full
    );
    Ok(())
}

/// A generated directory: users in groups nested ten deep, computers, groups.
fn generated(total: usize) -> (Vec<Domain>, Vec<Object>) {
    const SID: &str = "S-1-5-21-1000-2000-3000";
    let groups = total / 20;
    let computers = total * 3 / 20;
    let users = total - groups - computers;
    let group_dn = |i: usize| format!("CN=group{i:05},OU=Groups,DC=big,DC=example");
    let mut objects = Vec::with_capacity(total);
    let now = 1_800_000_000_000_i64;
    for i in 0..groups {
        objects.push(Object {
            kind: ObjectKind::Group,
            domain: "big.example".into(),
            dn: group_dn(i),
            guid: format!("00000000-0000-0000-0001-{i:012x}"),
            sid: format!("{SID}-{}", 10_000 + i),
            sam_account_name: format!("group{i:05}"),
            // Chains ten deep; group 0 is Domain Admins, so its chain's members are sensitive.
            member_of: if i % 10 != 0 {
                vec![group_dn(i - 1)]
            } else {
                Vec::new()
            },
            when_created: Some(now),
            ..Object::default()
        });
    }
    objects[0].sid = format!("{SID}-512");
    objects[0].sam_account_name = "Domain Admins".into();
    for i in 0..users {
        objects.push(Object {
            kind: ObjectKind::User,
            domain: "big.example".into(),
            dn: format!("CN=user{i:06},OU=Users,DC=big,DC=example"),
            guid: format!("00000000-0000-0000-0002-{i:012x}"),
            sid: format!("{SID}-{}", 100_000 + i),
            sam_account_name: format!("user{i:06}"),
            upn: format!("user{i:06}@big.example"),
            uac: Uac(Uac::NORMAL_ACCOUNT),
            member_of: vec![group_dn(i % groups), group_dn((i * 7) % groups)],
            primary_group_id: Some(513),
            spns: if i % 100 == 0 {
                vec![format!("http/web{i}.big.example")]
            } else {
                Vec::new()
            },
            when_created: Some(now),
            pwd_last_set: Some(now),
            ..Object::default()
        });
    }
    for i in 0..computers {
        objects.push(Object {
            kind: ObjectKind::Computer,
            domain: "big.example".into(),
            dn: format!("CN=WS{i:06},OU=Computers,DC=big,DC=example"),
            guid: format!("00000000-0000-0000-0003-{i:012x}"),
            sid: format!("{SID}-{}", 400_000 + i),
            sam_account_name: format!("WS{i:06}$"),
            dns_host_name: format!("ws{i:06}.big.example"),
            uac: Uac(Uac::WORKSTATION_TRUST_ACCOUNT),
            spns: vec![
                format!("HOST/ws{i:06}.big.example"),
                format!("HOST/WS{i:06}"),
            ],
            primary_group_id: Some(515),
            ..Object::default()
        });
    }
    let domain = Domain {
        name: "big.example".into(),
        netbios_name: "BIG".into(),
        sid: SID.into(),
        ..Domain::default()
    };
    (vec![domain], objects)
}

fn snapshot_load(work: &Path) -> anyhow::Result<()> {
    let file = work.join("generated.jsonl");
    {
        let (domains, objects) = generated(SNAPSHOT_OBJECTS);
        let mut out = BufWriter::new(std::fs::File::create(&file)?);
        snapshot::write(&mut out, &domains, &objects)?;
        out.flush()?;
    }
    let size = std::fs::metadata(&file)?.len();
    let me = std::env::current_exe()?.to_string_lossy().into_owned();
    let path = file.to_string_lossy().into_owned();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        theirs.push(measure(
            &[me.clone(), "parse".into(), path.clone()],
            None,
            Stdio::null(),
        )?);
        ours.push(measure(
            &[me.clone(), "load".into(), path.clone()],
            None,
            Stdio::null(),
        )?);
    }
    println!(
        "a snapshot of {SNAPSHOT_OBJECTS} objects ({:.1} MB) loaded, median of {TRIALS}:",
        size as f64 / 1e6
    );
    report(
        "lines parsed into serde_json::Value (baseline)",
        &theirs,
        None,
    );
    report(
        "snapshot::read + Directory::new (tags, transitive groups)",
        &ours,
        Some(&theirs),
    );
    Ok(())
}

fn load(file: &Path) -> anyhow::Result<()> {
    let (domains, objects) = snapshot::read(BufReader::new(std::fs::File::open(file)?))?;
    let directory = Directory::new(domains, objects, &TagConfig::default(), 1_800_000_000_000);
    // Something the optimiser cannot drop: lookups answered.
    let found = directory.account("BIG\\user000123").is_some()
        && directory.spn_owner("HOST/ws000042.big.example").is_some();
    if !found || directory.live_account_count() == 0 {
        bail!("the loaded directory does not answer");
    }
    Ok(())
}

fn parse(file: &Path) -> anyhow::Result<()> {
    let mut count = 0_usize;
    for line in BufReader::new(std::fs::File::open(file)?).lines() {
        let value: serde_json::Value = serde_json::from_str(&line?)?;
        count += usize::from(value.is_object());
    }
    if count == 0 {
        bail!("nothing parsed");
    }
    Ok(())
}
