//! DCE-RPC found by its content: a capture cut after the endpoint-mapper exchange that
//! announced DRSUAPI's port (testdata/pcaps/adlab/dcsync-after-epm.pcap) gives the same calls as
//! the whole capture, marked `found_by_content`; one cut inside the DRSUAPI connection
//! (dcsync-midstream.pcap) still gives its requests; switched off, neither gives any.

use std::process::Command;

use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// The DCE-RPC activities of the DRSUAPI connection (server port 49153): type, call id,
/// opnum, operation, client and whether found by content.
fn drsuapi_calls(
    capture: &str,
    config: Option<&str>,
) -> Vec<(String, u64, u64, String, String, bool)> {
    let workdir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(SENSOR);
    command.arg("replay").args(["--output", "json"]);
    if let Some(text) = config {
        let path = workdir.path().join("sensor.toml");
        std::fs::write(&path, text).expect("config");
        command.arg("--config").arg(path);
    }
    let output = command
        .arg(corpus::dir().join(capture))
        .output()
        .expect("run the sensor");
    assert!(output.status.success(), "{capture}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|activity| activity["protocol"] == "dcerpc")
        .filter(|activity| {
            activity["dst"]
                .as_str()
                .is_some_and(|dst| dst.ends_with(":49153"))
        })
        .map(|activity| {
            (
                activity["type"].as_str().unwrap_or_default().to_owned(),
                activity["call_id"].as_u64().unwrap_or_default(),
                activity["opnum"].as_u64().unwrap_or_default(),
                activity["operation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                activity["src"].as_str().unwrap_or_default().to_owned(),
                activity["found_by_content"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_capture_cut_after_the_endpoint_mapper_gives_the_same_calls() {
    let whole = drsuapi_calls("adlab/dcsync.pcap", None);
    let cut = drsuapi_calls("adlab/dcsync-after-epm.pcap", None);
    // tshark: a bind, then DsBind, DsGetDomainControllerInfo and 8 DsGetNCChanges (call ids
    // 2-11), from 10.99.0.2:33952.
    assert_eq!(whole.len(), 11, "{whole:?}");
    assert_eq!(
        whole
            .iter()
            .filter(|call| call.3 == "DsGetNCChanges")
            .count(),
        8
    );
    assert!(
        whole.iter().all(|call| !call.5),
        "learned from the ept_map answer"
    );
    assert!(cut.iter().all(|call| call.5), "found by content");
    let strip = |calls: &[(String, u64, u64, String, String, bool)]| {
        calls
            .iter()
            .map(|(kind, id, opnum, operation, src, _)| {
                (kind.clone(), *id, *opnum, operation.clone(), src.clone())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&cut), strip(&whole));
}

#[test]
fn a_connection_picked_up_mid_stream_gives_its_requests() {
    let calls = drsuapi_calls("adlab/dcsync-midstream.pcap", None);
    // Frames 60 on: DsBind (call 2) to the last DsGetNCChanges (call 11); the bind is not in
    // the capture, so the operations are unnamed, but the client is the client.
    let ids: Vec<u64> = calls.iter().map(|call| call.1).collect();
    assert_eq!(ids, (2..=11).collect::<Vec<_>>());
    assert!(
        calls
            .iter()
            .all(|call| call.0 == "REQUEST" && call.4 == "10.99.0.2:33952" && call.5)
    );
}

#[test]
fn switched_off_nothing_is_found_by_content() {
    let off = "[dissect]\nrpc_by_content = false\n";
    assert!(drsuapi_calls("adlab/dcsync-after-epm.pcap", Some(off)).is_empty());
    assert!(drsuapi_calls("adlab/dcsync-midstream.pcap", Some(off)).is_empty());
}
