//! A real `dcwatch-backend serve` process on 127.0.0.1, fed by the generated tonic client over
//! TLS, read back through `dcwatch-backend activities --json`.

#[expect(
    dead_code,
    reason = "the support module serves the alert tests too: rsyslog and polling are theirs"
)]
mod support;

use std::{ffi::OsString, path::Path};

use anyhow::Context as _;
use dcwatch_proto::{
    json::write_json_line,
    v1::{
        Account, Activity, Compression, Counters, DnsActivity, Endpoint, HealthEvent,
        KerberosActivity, activity::Body, dns_activity, health_event::Severity,
        ingest_client::IngestClient, kerberos_activity, sensor_message,
    },
};
use support::{Backend, Sensor, WAIT, batch, channel, message, run};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn token(dir: &Path, name: &str) -> anyhow::Result<String> {
    let data_dir = dir.to_str().context("UTF-8 path")?;
    Ok(run(&["token", "add", name, "--data-dir", data_dir])?
        .trim()
        .to_owned())
}

/// A backend on the data folder `dir`, writing its counters to `dir/stats.json`; `extra`
/// arguments after.
fn serve(dir: &Path, extra: &[&str]) -> anyhow::Result<Backend> {
    let mut args: Vec<OsString> = vec![
        "--data-dir".into(),
        dir.into(),
        "--stats-file".into(),
        dir.join("stats.json").into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    Backend::serve(args)
}

/// SIGTERM, then the final counters from the stats file.
fn stop(backend: Backend, dir: &Path) -> anyhow::Result<serde_json::Value> {
    backend.stop()?;
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("stats.json"),
    )?)?)
}

fn endpoint(ip: [u8; 4], port: u32) -> Option<Endpoint> {
    Some(Endpoint {
        ip: ip.to_vec(),
        port,
    })
}

fn kerberos(seconds: i64, client: [u8; 4], name: &str) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 5 }),
        src: endpoint(client, 50_000),
        dst: endpoint([10, 0, 0, 1], 88),
        account: Some(Account {
            domain: "CORP".to_owned(),
            name: name.to_owned(),
            sid: String::new(),
            tags: Vec::new(),
        }),
        body: Some(Body::Kerberos(KerberosActivity {
            r#type: kerberos_activity::Type::AsReq.into(),
            ..KerberosActivity::default()
        })),
        ..Activity::default()
    }
}

fn dns(seconds: i64, client: [u8; 4], name: &str) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: endpoint(client, 53_000),
        dst: endpoint([10, 0, 0, 1], 53),
        body: Some(Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: name.to_owned(),
            query_type: "A".to_owned(),
            ..DnsActivity::default()
        })),
        ..Activity::default()
    }
}

fn lines(activities: &[&Activity]) -> String {
    let mut out = Vec::new();
    for activity in activities {
        write_json_line(activity, &mut out, &mut Vec::new()).expect("to a Vec");
    }
    String::from_utf8(out).expect("UTF-8")
}

fn query(dir: &Path, filters: &[&str]) -> anyhow::Result<String> {
    let data_dir = dir.to_str().context("UTF-8 path")?;
    let mut args = vec!["activities", "--data-dir", data_dir, "--json"];
    args.extend_from_slice(filters);
    run(&args)
}

fn ca(dir: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(dir.join("tls/ca.pem"))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_stored_once_queried_back_and_kept_across_restarts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-a")?;
    let backend = serve(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    assert!(backend.log().contains("--ca "), "{}", backend.log());

    let first = [
        kerberos(1_700_000_020, [10, 0, 0, 5], "alice"),
        dns(1_700_000_010, [10, 0, 0, 6], "dc1.corp.example"),
    ];
    let second = [kerberos(1_700_000_030, [10, 0, 0, 6], "bob")];
    let (mut sensor, stored_through) =
        Sensor::open(backend.address, &ca, "sensor-a", &token).await?;
    assert_eq!(stored_through, 0);
    assert_eq!(sensor.batch(1, &first).await?, 1);
    assert_eq!(sensor.batch(2, &second).await?, 2);
    // A resend after a lost ack: acknowledged again, not stored again.
    assert_eq!(sensor.batch(1, &first).await?, 1);
    sensor
        .outbound
        .send(message(sensor_message::Message::Health(HealthEvent {
            time: None,
            severity: Severity::Warning.into(),
            kind: "SPOOL_EVICTED".to_owned(),
            message: "the spool evicted 3 batches".to_owned(),
            ..Default::default()
        })))
        .await?;
    sensor
        .outbound
        .send(message(sensor_message::Message::Counters(Counters {
            time: None,
            values: [("delivered".to_owned(), 7)].into(),
        })))
        .await?;
    // Health events and counters are not acknowledged: the next ack shows they were read.
    assert_eq!(sensor.batch(2, &second).await?, 2);
    drop(sensor);

    let everything = lines(&[&first[1], &first[0], &second[0]]);
    assert_eq!(query(dir.path(), &[])?, everything, "by time");
    assert_eq!(
        query(dir.path(), &["--protocol", "kerberos"])?,
        lines(&[&first[0], &second[0]])
    );
    assert_eq!(
        query(dir.path(), &["--ip", "10.0.0.6"])?,
        lines(&[&first[1], &second[0]])
    );
    assert_eq!(
        query(dir.path(), &["--account", "corp\\ALICE"])?,
        lines(&[&first[0]])
    );
    assert_eq!(
        query(
            dir.path(),
            &[
                "--since",
                "2023-11-14T22:13:35Z",
                "--until",
                "2023-11-14T22:13:51Z"
            ]
        )?,
        lines(&[&first[0], &second[0]])
    );

    let backend_log = backend.log();
    let stats = stop(backend, dir.path())?;
    assert_eq!(stats["batches_received"], 4, "{stats}");
    assert_eq!(stats["activities_stored"], 3, "{stats}");
    assert_eq!(stats["duplicates"], 2, "{stats}");
    assert_eq!(stats["health_events"], 1, "{stats}");
    assert!(
        backend_log.contains("sensor \"sensor-a\": SPOOL_EVICTED: the spool evicted 3 batches"),
        "{backend_log}"
    );

    // A restarted backend remembers what it stored.
    let backend = serve(dir.path(), &[])?;
    let (mut sensor, stored_through) =
        Sensor::open(backend.address, &ca, "sensor-a", &token).await?;
    assert_eq!(stored_through, 2);
    assert_eq!(sensor.batch(2, &second).await?, 2);
    let third = [dns(1_700_000_040, [10, 0, 0, 7], "x.corp.example")];
    assert_eq!(sensor.batch(3, &third).await?, 3);
    drop(sensor);
    assert_eq!(query(dir.path(), &[])?, everything + &lines(&[&third[0]]));
    let stats = stop(backend, dir.path())?;
    assert_eq!(stats["duplicates"], 1, "{stats}");
    assert_eq!(stats["activities_stored"], 1, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_missing_tokens_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-b")?;
    let backend = serve(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let wrong = "0".repeat(64);
    for presented in [wrong.as_str(), ""] {
        let refused = Sensor::open(backend.address, &ca, "sensor-b", presented)
            .await
            .err()
            .context("an unknown token was let in")?;
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    // A stream that does not start with a hello.
    let (outbound, requests) = mpsc::channel(1);
    outbound
        .send(message(sensor_message::Message::Batch(batch(1, &[]))))
        .await?;
    let refused = IngestClient::new(channel(backend.address, &ca).await?)
        .stream(ReceiverStream::new(requests))
        .await
        .err()
        .context("a stream without a hello was let in")?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // A revoked token is refused from then on.
    let data_dir = dir.path().to_str().context("UTF-8")?;
    run(&["token", "revoke", "sensor-b", "--data-dir", data_dir])?;
    let refused = Sensor::open(backend.address, &ca, "sensor-b", &token)
        .await
        .err()
        .context("a revoked token was let in")?;
    assert_eq!(refused.code(), Code::Unauthenticated);

    let log = backend.log();
    assert!(
        log.contains("refused sensor \"sensor-b\" from 127.0.0.1:"),
        "{log}"
    );
    assert!(
        !log.contains(&wrong) && !log.contains(&token),
        "a token was logged: {log}"
    );
    let stats = stop(backend, dir.path())?;
    assert_eq!(stats["refused_streams"], 4, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_admits_only_the_sensor_it_was_made_for() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mine = token(dir.path(), "sensor-e")?;
    let other = token(dir.path(), "sensor-f")?;
    let backend = serve(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];
    let (mut owner, _) = Sensor::open(backend.address, &ca, "sensor-f", &other).await?;
    assert_eq!(owner.batch(1, &good).await?, 1);
    // sensor-e's token, claiming to be sensor-f: refused, and sensor-f's stream goes on.
    let refused = Sensor::open(backend.address, &ca, "sensor-f", &mine)
        .await
        .err()
        .context("a token was let in for another sensor")?;
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(owner.batch(2, &good).await?, 2);
    let (_, stored_through) = Sensor::open(backend.address, &ca, "sensor-e", &mine).await?;
    assert_eq!(stored_through, 0);

    let log = backend.log();
    assert!(
        log.contains("refused sensor \"sensor-f\" from 127.0.0.1:")
            && log.contains("made for sensor \"sensor-e\""),
        "{log}"
    );
    assert!(
        !log.contains(&mine) && !log.contains(&other),
        "a token was logged: {log}"
    );
    let stats = stop(backend, dir.path())?;
    assert_eq!(stats["refused_streams"], 1, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_fails_on_the_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backend = serve(dir.path(), &[])?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&key)?.pem();
    let failure = channel(backend.address, other_ca.as_bytes())
        .await
        .err()
        .context("connected through a CA that did not sign the server's certificate")?;
    let text = format!("{failure:?}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("invalid peer certificate"),
        "not a clear TLS error: {text}"
    );
    backend.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_counted_and_refused_and_the_stream_goes_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-c")?;
    let config = dir.path().join("backend.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_batch_bytes = 4096\nmax_uncompressed_bytes = 65536\nmax_activities = 100\n",
    )?;
    let config = config.to_str().context("UTF-8")?;
    let backend = serve(dir.path(), &["--config", config])?;
    let ca = ca(dir.path())?;
    let (mut sensor, _) = Sensor::open(backend.address, &ca, "sensor-c", &token).await?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];

    let mut corrupt = batch(1, &good);
    corrupt
        .payload
        .iter_mut()
        .skip(4)
        .for_each(|byte| *byte ^= 0x5a);
    let mut understated = batch(2, &good);
    understated.uncompressed_len -= 1;
    let mut too_big = batch(3, &good);
    too_big.uncompressed_len = 1 << 20;
    let mut miscounted = batch(4, &good);
    miscounted.activity_count = 2;
    let mut oversized = batch(5, &good);
    oversized.compression = Compression::None.into();
    oversized.payload = vec![0; 5000];
    oversized.uncompressed_len = 5000;
    for bad in [corrupt, understated, too_big, miscounted, oversized] {
        let sequence = bad.sequence;
        sensor.send(sensor_message::Message::Batch(bad)).await?;
        // Refused batches are acknowledged: the same bytes would be refused again.
        assert_eq!(sensor.ack().await?, sequence);
    }
    assert_eq!(sensor.batch(6, &good).await?, 6, "the stream goes on");

    // A message beyond what gRPC will decode (twice the batch limit) ends that stream; the
    // server goes on and the sensor reconnects.
    let mut huge = batch(7, &good);
    huge.payload = vec![0; 10_000];
    sensor.send(sensor_message::Message::Batch(huge)).await?;
    let ended = tokio::time::timeout(WAIT, sensor.inbound.message()).await?;
    assert_eq!(
        ended.as_ref().err().map(tonic::Status::code),
        Some(Code::OutOfRange),
        "{ended:?}"
    );
    let (mut sensor, stored_through) =
        Sensor::open(backend.address, &ca, "sensor-c", &token).await?;
    assert_eq!(stored_through, 6);
    assert_eq!(sensor.batch(7, &good).await?, 7);
    drop(sensor);
    assert_eq!(query(dir.path(), &[])?, lines(&[&good[0], &good[0]]));

    let log = backend.log();
    assert!(log.contains("batch 3 refused"), "{log}");
    let stats = stop(backend, dir.path())?;
    assert_eq!(stats["bad_batches"], 6, "{stats}");
    assert_eq!(stats["activities_stored"], 2, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_from_the_same_sensor_replaces_the_older() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = token(dir.path(), "sensor-d")?;
    let backend = serve(dir.path(), &[])?;
    let ca = ca(dir.path())?;
    let good = [dns(1_700_000_000, [10, 0, 0, 9], "ok.corp.example")];
    let (mut older, _) = Sensor::open(backend.address, &ca, "sensor-d", &token).await?;
    assert_eq!(older.batch(1, &good).await?, 1);
    let (mut newer, stored_through) =
        Sensor::open(backend.address, &ca, "sensor-d", &token).await?;
    assert_eq!(stored_through, 1);
    let ended = tokio::time::timeout(WAIT, older.inbound.message()).await?;
    assert_eq!(
        ended.err().map(|status| status.code()),
        Some(Code::Aborted),
        "the older stream ends"
    );
    assert_eq!(newer.batch(2, &good).await?, 2);
    // Stopping does not wait for a sensor that never hangs up: its stream ends.
    let stop = tokio::task::spawn_blocking(move || backend.stop());
    let ended = tokio::time::timeout(WAIT, newer.inbound.message()).await?;
    assert_eq!(
        ended.err().map(|status| status.code()),
        Some(Code::Unavailable),
        "the open stream ends when the backend stops"
    );
    tokio::time::timeout(WAIT, stop).await???;
    Ok(())
}
