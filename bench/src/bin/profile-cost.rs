//! What learning costs (issue #14): the profile update per activity beside the whole engine's
//! judgement of the same activity, memory and disk per entity, and the load time of 150,000
//! profiles at start beside reading their rows alone.
//!
//! - Update cost: a synthetic domain (`USERS` users on `COMPUTERS` computers logging on with
//!   Kerberos and NTLM every day for `DAYS` days, time-shifted as a history would be) through a
//!   detection engine at threshold high (baseline: everything it does per activity), and the
//!   same activities through the profile update alone. Medians of `TRIALS`.
//! - Memory: resident memory before and after filling 100,000 user and 50,000 computer
//!   profiles (typical ones: three computers, a VPN device and location and five connections
//!   per user; eight learned items per computer), per entity.
//! - Disk: the same profiles written to the backend's SQLite store, the file per entity.
//! - Load: reading the 150,000 rows back (baseline), and reading plus decoding them into
//!   profiles (what detection does at start).
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{sync::Arc, time::Instant};

use bench::median;
use dcwatch_backend::store::Store;
use dcwatch_detect::{
    Config, Engine, knowledge::Knowledge, observed::Observed, profiles::Profiles, profiling,
    time::DAY,
};
use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Account, Activity, Endpoint, KerberosActivity, NtlmActivity, Outcome, activity::Body,
    kerberos_activity, ntlm_activity, outcome,
};

const USERS: u32 = 4_000;
const COMPUTERS: u32 = 2_000;
const DAYS: i64 = 7;
const TRIALS: usize = 5;
const SCALE_USERS: usize = 100_000;
const SCALE_COMPUTERS: usize = 50_000;
/// 2026-12-01T00:00:00Z.
const T0: i64 = 1_796_083_200_000;

fn endpoint(ip: [u8; 4], port: u32) -> Option<Endpoint> {
    Some(Endpoint {
        ip: ip.to_vec(),
        port,
    })
}

fn computer_ip(computer: u32) -> [u8; 4] {
    let [_, _, high, low] = computer.to_be_bytes();
    [10, 20 + high, low, 10]
}

fn activity(millis: i64, src: [u8; 4], dst: [u8; 4], user: &str, body: Body) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp {
            seconds: millis / 1000,
            nanos: 0,
        }),
        src: endpoint(src, 50_000),
        dst: endpoint(dst, 88),
        account: Some(Account {
            domain: "LAB".to_owned(),
            name: user.to_owned(),
            ..Account::default()
        }),
        outcome: Some(Outcome {
            status: outcome::Status::Success.into(),
            ..Outcome::default()
        }),
        body: Some(body),
        ..Activity::default()
    }
}

/// Each user's day: an AS-REQ and its AS-REP, then an NTLM logon to the DC.
fn history() -> Vec<Activity> {
    const DC: [u8; 4] = [10, 98, 0, 1];
    let mut out = Vec::new();
    for day in 0..DAYS {
        for user in 0..USERS {
            let name = format!("user{user}");
            let client = computer_ip(user % COMPUTERS);
            let at = T0 + day * DAY + i64::from(user) * 10;
            let kerberos = |kind: kerberos_activity::Type| {
                Body::Kerberos(KerberosActivity {
                    r#type: kind.into(),
                    client: name.clone(),
                    client_realm: "LAB.EXAMPLE".to_owned(),
                    etypes: vec![18, 17, 23],
                    timestamp_etype: 18,
                    encrypted_timestamp: true,
                    reply_etype: 18,
                    ticket_etype: 18,
                    service: "krbtgt/LAB.EXAMPLE".to_owned(),
                    ..KerberosActivity::default()
                })
            };
            out.push(activity(
                at,
                client,
                DC,
                &name,
                kerberos(kerberos_activity::Type::AsReq),
            ));
            out.push(activity(
                at + 1,
                DC,
                client,
                &name,
                kerberos(kerberos_activity::Type::AsRep),
            ));
            out.push(activity(
                at + 2,
                client,
                DC,
                &name,
                Body::Ntlm(NtlmActivity {
                    r#type: ntlm_activity::Type::Authenticate.into(),
                    user: name.clone(),
                    domain: "LAB".to_owned(),
                    ..NtlmActivity::default()
                }),
            ));
        }
    }
    out
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1024.0 * 1024.0))
}

/// 100,000 users and 50,000 computers with typical profiles.
fn scale_profiles() -> Profiles {
    let mut profiles = Profiles::default();
    for user in 0..SCALE_USERS {
        let key = profiling::user_key(&format!("user{user}"));
        for day in 0..5 {
            let time = day * DAY + user as i64;
            let computer = format!("10.1.{}.{}", user % 250, day % 3);
            profiles.learn(&key, time, profiling::LOGON, &computer);
            profiles.vpn_connected(&key, time);
        }
        profiles.learn(&key, 0, profiling::VPN_DEVICE, &format!("dev-{user}"));
        profiles.learn(&key, 0, profiling::VPN_LOCATION, "198.51.100.0/24");
    }
    for computer in 0..SCALE_COMPUTERS {
        let key = format!("computer:10.2.{}.{}", computer / 250, computer % 250);
        for item in 0..8 {
            profiles.learn(&key, item, "ldap_recon", &format!("category {item}"));
        }
    }
    profiles
}

fn main() -> anyhow::Result<()> {
    bench::pin_to_cpu(1);
    let activities = history();
    let config = Config {
        dc_addresses: vec!["10.98.0.1".parse()?],
        ..Config::default()
    };
    let directory = Arc::new(Directory::default());
    let mut engine_ns = Vec::new();
    let mut update_ns = Vec::new();
    let mut entities = 0;
    for _ in 0..TRIALS {
        let mut engine = Engine::new(config.clone(), Arc::clone(&directory));
        let start = Instant::now();
        for activity in &activities {
            engine.observe(activity, "");
        }
        engine_ns.push(start.elapsed().as_nanos() as f64 / activities.len() as f64);
        entities = engine.profiles().len();
        // The update alone, on the knowledge the engine learned (it only reads it).
        let mut knowledge = Knowledge::new(&config, Arc::clone(&directory));
        let seen: Vec<Observed<'_>> = activities
            .iter()
            .filter_map(|activity| Observed::new(activity, ""))
            .collect();
        for observed in &seen {
            knowledge.learn(observed);
        }
        let mut profiles = Profiles::default();
        let mut dc_tests = profiling::DcTests::default();
        let start = Instant::now();
        for observed in &seen {
            profiling::learn(&mut profiles, observed, &knowledge, &mut dc_tests);
        }
        update_ns.push(start.elapsed().as_nanos() as f64 / seen.len() as f64);
    }
    let (engine_ns, update_ns) = (median(&mut engine_ns), median(&mut update_ns));
    println!(
        "update: {} activities of {USERS} users on {COMPUTERS} computers over {DAYS} days ({entities} profiles)",
        activities.len()
    );
    println!("  engine per activity (baseline)   {engine_ns:>9.0} ns");
    println!(
        "  profile update per activity      {update_ns:>9.0} ns  ({:.1}% of the engine's)",
        100.0 * update_ns / engine_ns
    );
    drop(activities);

    let before = resident_mib();
    let mut profiles = scale_profiles();
    let resident = resident_mib() - before;
    let count = profiles.len();
    let changes = profiles.take_changes();
    let encoded: usize = changes
        .upserts
        .iter()
        .map(|(key, bytes)| key.len() + bytes.len())
        .sum();
    println!("scale: {SCALE_USERS} users and {SCALE_COMPUTERS} computers ({count} profiles)");
    println!(
        "  memory: {resident:.1} MiB resident, {:.0} bytes per entity",
        resident * 1024.0 * 1024.0 / count as f64
    );
    let dir = tempfile::tempdir()?;
    let mut store = Store::open(dir.path())?;
    let start = Instant::now();
    store.save_profiles(0, &changes)?;
    let written = start.elapsed();
    drop(store);
    let file = std::fs::metadata(dir.path().join(dcwatch_backend::store::FILE_NAME))?.len()
        + std::fs::metadata(
            dir.path()
                .join(format!("{}-wal", dcwatch_backend::store::FILE_NAME)),
        )
        .map_or(0, |wal| wal.len());
    println!(
        "  disk: {:.1} MiB in SQLite, {:.0} bytes per entity ({:.0} encoded), written in {:.2} s",
        file as f64 / (1024.0 * 1024.0),
        file as f64 / count as f64,
        encoded as f64 / count as f64,
        written.as_secs_f64()
    );
    drop(profiles);
    drop(changes);
    let store = Store::open(dir.path())?;
    let mut read_s = Vec::new();
    let mut load_s = Vec::new();
    for _ in 0..TRIALS {
        let start = Instant::now();
        let rows = store.load_profiles(0)?;
        read_s.push(start.elapsed().as_secs_f64());
        drop(rows);
        let start = Instant::now();
        let mut loaded = Profiles::default();
        loaded.load(store.load_profiles(0)?);
        load_s.push(start.elapsed().as_secs_f64());
        assert_eq!(loaded.len(), count);
    }
    let (read_s, load_s) = (median(&mut read_s), median(&mut load_s));
    println!("load at start ({count} profiles):");
    println!("  reading the rows (baseline)      {read_s:>9.3} s");
    println!(
        "  reading and decoding them        {load_s:>9.3} s  ({:.2}x the read alone)",
        load_s / read_s
    );
    Ok(())
}
