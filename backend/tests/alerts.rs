//! Alerts end to end: a real `dcwatch-backend serve`, a sensor-like gRPC client streaming a
//! DCSync-like activity (a DRSUAPI DsGetNCChanges request from an address that is not a DC),
//! a real rsyslog receiving the CEF lines over UDP, TCP and TLS, the JSON-lines file, and the
//! `alerts` commands closing the alert and watching the same evidence reopen it.

mod support;

use std::{path::Path, time::SystemTime};

use dcwatch_parsers::winevent::{cef_message, split_header};
use dcwatch_proto::v1::{
    Account, Activity, DceRpcActivity, DnsActivity, Endpoint, HealthEvent, Outcome, activity::Body,
    dce_rpc_activity, dns_activity, health_event, outcome, sensor_message,
};
use support::{Backend, Sensor, eventually, rsyslog::Rsyslog, run};

const SENSOR: &str = "dc1-sensor";
const CLASS: &str = "DirectoryServicesReplicationSecurityAlert";

fn endpoint(ip: [u8; 4], port: u32) -> Option<Endpoint> {
    Some(Endpoint {
        ip: ip.to_vec(),
        port,
    })
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(0))
}

/// mimikatz's lsadump::dcsync from a workstation: DRSUAPI DsGetNCChanges (opnum 3) to the DC,
/// answered, by CORP\mallory.
fn dcsync(seconds: i64, client: [u8; 4]) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: endpoint(client, 50_123),
        dst: endpoint([10, 98, 0, 1], 49_160),
        account: Some(Account {
            domain: "CORP".to_owned(),
            name: "mallory".to_owned(),
            ..Account::default()
        }),
        outcome: Some(Outcome {
            status: outcome::Status::Success.into(),
            ..Outcome::default()
        }),
        body: Some(Body::Dcerpc(DceRpcActivity {
            r#type: dce_rpc_activity::Type::Request.into(),
            interface_name: "drsuapi".to_owned(),
            opnum: 3,
            operation: "DsGetNCChanges".to_owned(),
            answered: true,
            ..DceRpcActivity::default()
        })),
        ..Activity::default()
    }
}

fn dns(seconds: i64) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: endpoint([10, 98, 0, 2], 53_000),
        dst: endpoint([10, 98, 0, 1], 53),
        body: Some(Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: "dc1.corp.example".to_owned(),
            query_type: "A".to_owned(),
            ..DnsActivity::default()
        })),
        ..Activity::default()
    }
}

fn write_config(dir: &Path, rsyslog: &Rsyslog) -> anyhow::Result<std::path::PathBuf> {
    let config = dir.join("backend.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
[stats]
file = "{data}/stats.json"
interval_secs = 1
[outputs]
console_url = "https://dcwatch.example/alerts/"
[[outputs.syslog]]
address = "127.0.0.1:{udp}"
[[outputs.syslog]]
address = "127.0.0.1:{tcp}"
transport = "tcp"
format = "rfc3164"
framing = "newline"
[[outputs.syslog]]
address = "localhost:{tls}"
transport = "tls"
ca = "{ca}"
[outputs.json]
path = "{data}/alerts.jsonl"
"#,
            data = dir.join("data").display(),
            udp = rsyslog.udp,
            tcp = rsyslog.tcp,
            tls = rsyslog.tls,
            ca = rsyslog.ca.display(),
        ),
    )?;
    Ok(config)
}

fn alerts_json(config: &str, filters: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut args = vec!["alerts", "--config", config, "--json"];
    args.extend_from_slice(filters);
    run(&args)?
        .lines()
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn stat(data: &Path, name: &str) -> u64 {
    std::fs::read(data.join("stats.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|stats| stats[name].as_u64())
        .unwrap_or(0)
}

/// The CEF alert lines rsyslog received for `id` with trigger `trigger`, one per input.
fn check_cef(rsyslog: &Rsyslog, id: &str, trigger: &str) -> anyhow::Result<()> {
    let received = rsyslog.wait_for(&format!("{trigger} CEF lines for {id}"), 3, |received| {
        received.raw.contains(&format!("cs4={id}"))
            && received.raw.contains(&format!("cs2={trigger}"))
    })?;
    let mut inputs: Vec<&str> = received.iter().map(|line| line.input.as_str()).collect();
    inputs.sort_unstable();
    assert_eq!(inputs, ["tcp", "tls", "udp"]);
    for line in &received {
        // rsyslog's own reading of the header: APP-NAME CEF; MSGID (RFC 5424 only) the class
        // cut to 32 characters.
        assert_eq!(line.app, "CEF", "{line:?}");
        if line.input != "tcp" {
            assert_eq!(line.msgid, &CLASS[..32], "{line:?}");
        }
        let (_, message) = split_header(&line.raw);
        let cef = cef_message(message).expect("CEF");
        assert_eq!(cef.header[4], CLASS);
        assert_eq!(cef.header[6], "10");
        assert_eq!(cef.get("externalId"), Some("2006"));
        assert_eq!(cef.get("app"), Some("Drsr"));
        assert_eq!(
            cef.get("suser").map(str::to_lowercase),
            Some("corp\\mallory".to_owned())
        );
        assert_eq!(cef.get("shost"), Some("10.98.0.2"));
        assert_eq!(cef.get("outcome"), Some("Success"));
        assert!(
            cef.get("msg").is_some_and(|msg| msg.contains("10.98.0.2")),
            "{message}"
        );
        assert_eq!(
            cef.custom("url"),
            Some(format!("https://dcwatch.example/alerts/{id}").as_str())
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dcsync_is_stored_printed_sent_closed_and_reopened() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rsyslog = Rsyslog::start(&dir.path().join("rsyslog"))?;
    let config_path = write_config(dir.path(), &rsyslog)?;
    let config = config_path.to_str().expect("UTF-8");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let token = run(&["token", "add", SENSOR, "--config", config])?
        .trim()
        .to_owned();

    // Before serving: the test message reaches every destination.
    let report = run(&["alerts", "test-syslog", "--config", config])?;
    assert_eq!(report.lines().count(), 3, "{report}");
    assert!(report.contains("TLS handshake verified"), "{report}");
    rsyslog.wait_for("three test messages", 3, |received| {
        received.raw.contains("|DcwatchTestMessage|")
    })?;

    let backend = Backend::start(&config_path)?;
    let ca = std::fs::read(data.join("tls/ca.pem"))?;
    let (mut sensor, _) = Sensor::open(backend.address, &ca, SENSOR, &token).await?;
    let t0 = now_seconds();
    assert_eq!(
        sensor
            .batch(1, &[dns(t0 - 1), dcsync(t0, [10, 98, 0, 2]), dns(t0 + 1)])
            .await?,
        1
    );

    // The store holds one open alert, printed by `alerts`.
    let alerts = eventually("the DCSync alert", || {
        alerts_json(config, &[])
            .ok()
            .filter(|alerts| !alerts.is_empty())
    })?;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    let id = alert["id"].as_str().expect("an id").to_owned();
    assert_eq!(alert["type"], "dcsync");
    assert_eq!(alert["external_id"], 2006);
    assert_eq!(alert["class"], CLASS);
    assert_eq!(alert["status"], "OPEN");
    assert_eq!(alert["trigger"], "NEW");
    // The evidence names the stored activity: sensor, batch, position in the batch.
    assert_eq!(
        alert["evidence"][0]["activity_ref"],
        format!("{SENSOR}:1:1"),
        "{alert}"
    );
    let listed = run(&[
        "alerts", "--config", config, "--status", "open", "--type", "dcsync",
    ])?;
    assert!(
        listed.starts_with(&format!("{id}\tOPEN\tHIGH\tdcsync\t")),
        "{listed}"
    );
    assert_eq!(
        run(&["alerts", "--config", config, "--status", "closed"])?,
        ""
    );

    // The JSON file and rsyslog (UDP, TCP, TLS) got it.
    let written = eventually("the JSON line", || {
        Some(json_lines(&data.join("alerts.jsonl"))).filter(|lines| !lines.is_empty())
    })?;
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["id"], id.as_str());
    assert_eq!(written[0]["type"], "dcsync");
    check_cef(&rsyslog, &id, "new")?;

    // A health event goes the same way.
    sensor
        .send(sensor_message::Message::Health(HealthEvent {
            time: None,
            severity: health_event::Severity::Error.into(),
            kind: "CAPTURE_LOSS".to_owned(),
            message: "the ring dropped packets".to_owned(),
            ..Default::default()
        }))
        .await?;
    rsyslog.wait_for("the health event", 3, |received| {
        received
            .raw
            .contains("|DcwatchHealthEvent|CAPTURE_LOSS|10|")
    })?;

    // Closed from the CLI (another process); the running backend applies it.
    run(&[
        "alerts",
        "close",
        &id,
        "--classification",
        "tp",
        "--comment",
        "mimikatz from WS02",
        "--config",
        config,
    ])?;
    let closed = alerts_json(config, &["--status", "closed"])?;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["classification"], "TP");
    assert!(closed[0]["closed"].is_string());
    eventually("the close applied by serve", || {
        (stat(&data, "alerts_closes_applied") == 1).then_some(())
    })?;
    assert!(
        run(&[
            "alerts",
            "close",
            &id,
            "--classification",
            "fp",
            "--config",
            config
        ])
        .is_err(),
        "closing twice"
    );

    // The same evidence again within 24 hours reopens it: same id, count 2, emitted.
    assert_eq!(
        sensor.batch(2, &[dcsync(t0 + 60, [10, 98, 0, 2])]).await?,
        2
    );
    let reopened = eventually("the reopened alert", || {
        alerts_json(config, &["--status", "open"])
            .ok()
            .filter(|alerts| !alerts.is_empty())
    })?;
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["id"], id.as_str());
    assert_eq!(reopened[0]["count"], "2", "{}", reopened[0]);
    assert!(
        reopened[0].get("classification").is_none(),
        "{}",
        reopened[0]
    );
    let history: Vec<String> = run(&["alerts", "history", &id, "--config", config])?
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("JSON");
            entry["event"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(history, ["raised", "closed", "reopened"]);
    check_cef(&rsyslog, &id, "update")?;
    let written = eventually("the update's JSON line", || {
        Some(json_lines(&data.join("alerts.jsonl"))).filter(|lines| lines.len() == 2)
    })?;
    assert_eq!(written[1]["trigger"], "UPDATE");
    assert_eq!(written[1]["status"], "OPEN");

    // logrotate: the file moved away, SIGHUP, and the next alert goes to a new file; the
    // backend lives on.
    std::fs::rename(data.join("alerts.jsonl"), data.join("alerts.jsonl.1"))?;
    backend.signal("-HUP")?;
    eventually("the reopen", || {
        (stat(&data, "json_reopened") == 1).then_some(())
    })?;
    assert_eq!(
        sensor.batch(3, &[dcsync(t0 + 120, [10, 98, 0, 7])]).await?,
        3
    );
    let rotated = eventually("a line in the new file", || {
        Some(json_lines(&data.join("alerts.jsonl"))).filter(|lines| !lines.is_empty())
    })?;
    assert_eq!(rotated.len(), 1);
    assert_ne!(rotated[0]["id"], id.as_str());
    assert_eq!(json_lines(&data.join("alerts.jsonl.1")).len(), 2);

    // Exclusions from the CLI reach the running engine: a third source, excluded, raises
    // nothing.
    run(&[
        "alerts",
        "exclude",
        "--type",
        "dcsync",
        "--subnet",
        "10.98.0.64/26",
        "--config",
        config,
    ])?;
    eventually("the exclusion applied by serve", || {
        (stat(&data, "detect_engine_rebuilds") == 1).then_some(())
    })?;
    assert_eq!(
        sensor
            .batch(4, &[dcsync(t0 + 180, [10, 98, 0, 70])])
            .await?,
        4
    );
    eventually("batch 4 judged", || {
        (stat(&data, "detect_findings_excluded") == 1).then_some(())
    })?;
    assert_eq!(alerts_json(config, &[])?.len(), 2);
    drop(sensor);
    backend.stop()?;

    // After a restart the open alert is restored: more evidence updates it.
    let backend = Backend::start(&config_path)?;
    let (mut sensor, _) = Sensor::open(backend.address, &ca, SENSOR, &token).await?;
    assert_eq!(
        sensor.batch(5, &[dcsync(t0 + 240, [10, 98, 0, 2])]).await?,
        5
    );
    let updated = eventually("the restored alert updated", || {
        alerts_json(config, &["--id", &id])
            .ok()
            .filter(|alerts| alerts.first().is_some_and(|alert| alert["count"] == "3"))
    })?;
    assert_eq!(updated[0]["status"], "OPEN");
    assert_eq!(alerts_json(config, &[])?.len(), 2);
    drop(sensor);
    backend.stop()?;
    Ok(())
}
