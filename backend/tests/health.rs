//! Health issues end to end, and the backend run as an operator would: a real
//! `dcwatch-backend serve` with `/metrics` and a real rsyslog; a sensor-like client opens an
//! issue, sends it again, reconnects without it (the backend closes it); the CEF lines, the
//! `health` command, `/metrics` against the stats file, and a SIGHUP reload that keeps the
//! process up.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    time::Duration,
};

use dcwatch_proto::v1::{
    Activity, DnsActivity, HealthIssues, activity::Body, dns_activity, sensor_message,
};
use dcwatch_telemetry::health::{Issue, IssueKind};
use dcwatch_tests::exposition;
use support::{Backend, Sensor, eventually, rsyslog::Rsyslog, run};

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn write_config(
    path: &Path,
    data: &Path,
    metrics: SocketAddr,
    rsyslog: &Rsyslog,
    log_level: &str,
) -> anyhow::Result<()> {
    std::fs::write(
        path,
        format!(
            r#"data_dir = "{data}"
log_level = "{log_level}"
[stats]
file = "{data}/stats.json"
interval_secs = 1
[metrics]
listen = "{metrics}"
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
"#,
            data = data.display(),
            udp = rsyslog.udp,
            tcp = rsyslog.tcp,
            tls = rsyslog.tls,
            ca = rsyslog.ca.display(),
        ),
    )?;
    Ok(())
}

/// A DNS query, to give the counters something to count.
fn dns() -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        body: Some(Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: "dc1.corp.example".to_owned(),
            ..DnsActivity::default()
        })),
        ..Activity::default()
    }
}

fn get(address: SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: backend\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_are_stored_sent_listed_counted_and_reloads_keep_the_backend_up()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rsyslog = Rsyslog::start(&dir.path().join("rsyslog"))?;
    let data = dir.path().join("data");
    let config = dir.path().join("backend.toml");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    write_config(&config, &data, metrics, &rsyslog, "info")?;
    let config_arg = config.to_str().expect("UTF-8");
    std::fs::create_dir_all(&data)?;
    let token = run(&["token", "add", "s1", "--config", config_arg])?;
    let backend = Backend::start(&config)?;
    let ca = std::fs::read(data.join("tls/ca.pem"))?;

    let start_ns = 1_700_000_000_000_000_000;
    let down = Issue {
        kind: IssueKind::NicDown,
        subject: "eth1".to_owned(),
        detail: "eth1 is down".to_owned(),
        start_ns,
        end_ns: None,
    };
    let (mut sensor, _) = Sensor::open(backend.address, &ca, "s1", token.trim()).await?;
    assert_eq!(sensor.batch(1, &[dns()]).await?, 1);
    // Opened, then sent again (after a reconnection the sensor's queue may repeat it).
    for _ in 0..2 {
        sensor
            .send(sensor_message::Message::Health(down.to_event()))
            .await?;
    }
    // On each destination: UDP and TLS in RFC 5424 (the class as MSGID), TCP in RFC 3164.
    let opened = rsyslog.wait_for("the opened issue", 3, |received| {
        received.raw.contains("|DcwatchHealthEvent|NIC_DOWN|10|")
    })?;
    let mut inputs: Vec<&str> = opened.iter().map(|line| line.input.as_str()).collect();
    inputs.sort_unstable();
    assert_eq!(inputs, ["tcp", "tls", "udp"]);
    for line in &opened {
        assert_eq!(line.app, "CEF", "{line:?}");
        if line.input != "tcp" {
            assert_eq!(line.msgid, "DcwatchHealthEvent", "{line:?}");
        }
        assert!(line.raw.contains("cs2Label=state cs2=open"), "{line:?}");
        assert!(line.raw.contains("cs3Label=subject cs3=eth1"), "{line:?}");
        assert!(line.raw.contains("start=2023-11-14T22:13:20"), "{line:?}");
    }
    drop(sensor);

    // Back without it: the link came up while the sensor was away.
    let (sensor, _) = Sensor::open(backend.address, &ca, "s1", token.trim()).await?;
    sensor
        .send(sensor_message::Message::OpenIssues(HealthIssues {
            open: Vec::new(),
        }))
        .await?;
    let closed = rsyslog.wait_for("the closed issue", 3, |received| {
        received.raw.contains("|NIC_DOWN|") && received.raw.contains("cs2=closed")
    })?;
    assert!(
        closed.iter().all(|line| line.raw.contains(" end=")),
        "{closed:#?}"
    );
    let sent = rsyslog.wait_for("every line", 6, |received| {
        received.raw.contains("|NIC_DOWN|")
    })?;
    assert_eq!(sent.len(), 6, "the repeat was not sent again: {sent:#?}");

    let listed = run(&["health", "--config", config_arg, "--json"])?;
    let issues: Vec<serde_json::Value> = listed
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(issues.len(), 1, "{listed}");
    assert_eq!(issues[0]["sensor"], "s1");
    assert_eq!(issues[0]["kind"], "NIC_DOWN");
    assert_eq!(issues[0]["subject"], "eth1");
    assert_eq!(issues[0]["state"], "closed");
    assert_eq!(issues[0]["start"], "2023-11-14T22:13:20Z");
    assert!(issues[0]["end"].is_string(), "{listed}");
    assert_eq!(run(&["health", "--config", config_arg, "--open"])?, "");

    // /metrics: valid, and each counter equal to the stats file's once nothing moves.
    assert_eq!(get(metrics, "/livez")?.0, "HTTP/1.1 200 OK");
    eventually("ready", || {
        get(metrics, "/readyz")
            .ok()
            .filter(|(status, _)| status == "HTTP/1.1 200 OK")
    })?;
    let (stats, samples) = eventually("/metrics equal to the stats file", || {
        let before = std::fs::read_to_string(data.join("stats.json")).ok()?;
        let (_, body) = get(metrics, "/metrics").ok()?;
        let samples = exposition::parse(&body).unwrap_or_else(|error| panic!("{error}"));
        let stats: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&before).ok()?;
        let equal = stats.iter().all(|(name, value)| {
            name == "time" || exposition::stat(&samples, "dcwatch_backend", name) == value.as_u64()
        });
        // Published after both events were counted (the first tick's zeros would match too).
        let counted = exposition::stat(&samples, "dcwatch_backend", "health_events") == Some(2);
        (equal && counted).then_some((stats, samples))
    })?;
    assert!(stats.len() > 10, "{stats:?}");
    assert_eq!(
        exposition::stat(&samples, "dcwatch_backend", "health_events"),
        Some(2)
    );
    assert_eq!(
        samples.get("dcwatch_backend_health_issues_open{kind=\"NIC_DOWN\"}"),
        Some(&0.0)
    );

    // SIGHUP with a new log level: applied, the rest reported, the backend still serving.
    write_config(&config, &data, metrics, &rsyslog, "debug")?;
    backend.signal("-HUP")?;
    eventually("the reload logged", || {
        backend
            .log()
            .contains("reload: log_level: applied (debug)")
            .then_some(())
    })?;
    let log = backend.log();
    assert!(log.contains("reload: metrics: unchanged"), "{log}");
    assert!(log.contains("reload: stats: unchanged"), "{log}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(metrics, "/livez")?.0, "HTTP/1.1 200 OK", "still up");
    drop(sensor);
    backend.stop()
}
