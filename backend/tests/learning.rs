//! Learning end to end (Part II): a real `dcwatch-backend serve` judging a synthetic history
//! streamed by a sensor-like client (SAMR queries of a small domain over five weeks, at
//! activity times in the past), restarted in the middle of the DC's four weeks of learning, then
//! an attack; `learning --json` shows the DC learning, then active; closing the alert as B-TP
//! with --exclude teaches the profile: the same query stays quiet, a new one alerts again.

#[expect(
    dead_code,
    reason = "the rsyslog half of the shared support is the alert tests'"
)]
mod support;

use std::time::SystemTime;

use dcwatch_proto::v1::{Activity, DceRpcActivity, Endpoint, activity::Body, dce_rpc_activity};
use support::{Backend, Sensor, eventually, run};

const SENSOR: &str = "dc1-sensor";
const DAY: i64 = 86_400;
const ADMIN: [u8; 4] = [10, 98, 0, 20];
const WS11: [u8; 4] = [10, 98, 0, 11];

fn samr(seconds: i64, client: [u8; 4], opnum: u32, operation: &str) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: Some(Endpoint {
            ip: client.to_vec(),
            port: 50_000,
        }),
        dst: Some(Endpoint {
            ip: vec![10, 98, 0, 1],
            port: 49_667,
        }),
        body: Some(Body::Dcerpc(DceRpcActivity {
            r#type: dce_rpc_activity::Type::Request.into(),
            interface_name: "samr".to_owned(),
            opnum,
            operation: operation.to_owned(),
            answered: true,
            ..DceRpcActivity::default()
        })),
        ..Activity::default()
    }
}

/// The admin workstation's daily user enumeration, days `from..to` after `t0`.
fn benign(t0: i64, days: std::ops::Range<i64>) -> Vec<Activity> {
    days.map(|day| {
        samr(
            t0 + day * DAY + 9 * 3600,
            ADMIN,
            13,
            "SamrEnumerateUsersInDomain",
        )
    })
    .collect()
}

fn json_lines(args: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    run(args)?
        .lines()
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}

fn judged(data: &std::path::Path) -> u64 {
    std::fs::read(data.join("stats.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|stats| stats["detect_activities"].as_u64())
        .unwrap_or(0)
}

/// Streams `activities` in one batch and waits until detection judged them all.
async fn stream(
    sensor: &mut Sensor,
    sequence: u64,
    activities: &[Activity],
    data: &std::path::Path,
    judged_before: u64,
) -> anyhow::Result<u64> {
    sensor.batch(sequence, activities).await?;
    let total = judged_before + activities.len() as u64;
    eventually("detection to judge the batch", || {
        (judged(data) >= total).then_some(())
    })?;
    Ok(total)
}

fn samr_dc_state(config: &str) -> anyhow::Result<serde_json::Value> {
    let lines = json_lines(&[
        "learning",
        "--config",
        config,
        "--json",
        "--type",
        "samr_recon",
    ])?;
    lines
        .into_iter()
        .find(|line| line["entity"] == "dc:10.98.0.1")
        .ok_or_else(|| anyhow::anyhow!("no samr_recon line for the DC"))
}

fn samr_alerts(config: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    json_lines(&[
        "alerts",
        "--config",
        config,
        "--json",
        "--type",
        "samr_recon",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_survive_a_restart_and_only_new_behaviour_alerts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let config_path = dir.path().join("backend.toml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir = \"{}\"\n[stats]\nfile = \"{}/stats.json\"\ninterval_secs = 1\n[detect]\ndc_addresses = [\"10.98.0.1\"]\n",
            data.display(),
            data.display()
        ),
    )?;
    let config = config_path.to_str().expect("UTF-8");
    let token = run(&["token", "add", SENSOR, "--config", config])?
        .trim()
        .to_owned();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let t0 = i64::try_from(now)? - 40 * DAY;

    // Two weeks, with WS11 enumerating groups once: the DC learns, nothing alerts.
    let backend = Backend::start(&config_path)?;
    let ca = std::fs::read(data.join("tls/ca.pem"))?;
    let (mut sensor, _) = Sensor::open(backend.address, &ca, SENSOR, &token).await?;
    let mut first = benign(t0, 0..14);
    first.push(samr(t0 + 10 * DAY, WS11, 11, "SamrEnumerateGroupsInDomain"));
    stream(&mut sensor, 1, &first, &data, 0).await?;
    assert!(samr_alerts(config)?.is_empty());
    let learning = samr_dc_state(config)?;
    assert_eq!(learning["state"], "learning", "{learning}");
    let until = humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(t0 + 9 * 3600 + 28 * DAY)?),
    )
    .to_string();
    assert_eq!(learning["until"], until.as_str(), "{learning}");
    drop(sensor);
    backend.stop()?;

    // Restarted: three more weeks; WS11's learned enumeration stays quiet, a new one alerts.
    let backend = Backend::start(&config_path)?;
    let (mut sensor, _) = Sensor::open(backend.address, &ca, SENSOR, &token).await?;
    let mut second = benign(t0, 14..35);
    second.push(samr(t0 + 30 * DAY, WS11, 11, "SamrEnumerateGroupsInDomain"));
    let judged_so_far = stream(&mut sensor, 2, &second, &data, 0).await?;
    // The engine is built, with the stored profiles, when its partition's first chunk comes.
    assert!(
        backend.log().contains("profiles restored"),
        "{}",
        backend.log()
    );
    assert!(samr_alerts(config)?.is_empty());
    assert_eq!(samr_dc_state(config)?["state"], "active");
    let attack = [samr(
        t0 + 35 * DAY,
        WS11,
        15,
        "SamrEnumerateAliasesInDomain",
    )];
    let judged_so_far = stream(&mut sensor, 3, &attack, &data, judged_so_far).await?;
    let alerts = samr_alerts(config)?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert["primary_key"], "src:10.98.0.11", "{alert}");
    let description = alert["description"].as_str().unwrap_or_default();
    assert!(
        description
            == ("10.98.0.11 queried 10.98.0.1 over SAMR: enumerated all aliases (local groups); 10.98.0.11 had never enumerated all aliases (local groups) over SAMR on 10.98.0.1 in 25 days of learning"),
        "{description}"
    );

    // B-TP and exclude: the profile learns the query.
    let id = alert["id"].as_str().unwrap_or_default().to_owned();
    let refused = std::process::Command::new(support::BIN)
        .args([
            "alerts",
            "close",
            &id,
            "--classification",
            "fp",
            "--config",
            config,
        ])
        .output()?;
    assert!(!refused.status.success(), "fp without a reason");
    run(&[
        "alerts",
        "close",
        &id,
        "--classification",
        "btp",
        "--exclude",
        "--comment",
        "the helpdesk's audit",
        "--config",
        config,
    ])?;
    let history = json_lines(&["alerts", "history", &id, "--config", config])?;
    assert!(
        history.iter().any(|entry| entry["event"] == "taught"),
        "{history:#?}"
    );
    eventually("the profile to be taught", || {
        backend
            .log()
            .contains("profile learned the behaviour")
            .then_some(())
    })?;
    let again = [samr(
        t0 + 36 * DAY,
        WS11,
        15,
        "SamrEnumerateAliasesInDomain",
    )];
    let judged_so_far = stream(&mut sensor, 4, &again, &data, judged_so_far).await?;
    let alerts = samr_alerts(config)?;
    assert_eq!(alerts[0]["status"], "CLOSED", "{alerts:#?}");
    let new = [samr(
        t0 + 36 * DAY + 60,
        WS11,
        48,
        "SamrQueryDisplayInformation2",
    )];
    stream(&mut sensor, 5, &new, &data, judged_so_far).await?;
    let alerts = samr_alerts(config)?;
    assert_eq!(alerts[0]["status"], "OPEN", "{alerts:#?}");
    drop(sensor);
    backend.stop()?;
    Ok(())
}
