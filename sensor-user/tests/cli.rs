//! What a person sees when something is wrong: one clear line on stderr and a failing exit code,
//! never a panic. Needs root (the permission test drops to `nobody`).

use std::{
    path::Path,
    process::{Command, Output},
};

use dcwatch_tests::netns::{NetNs, VethPair, ip};

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

fn sensor(args: &[&str]) -> Output {
    Command::new(SENSOR)
        .args(args)
        .output()
        .expect("run the sensor")
}

/// Fails unless the run failed with exactly one error line containing `expected`.
fn assert_one_error_line(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("ERROR"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains(expected),
        "{:?} lacks {expected:?}",
        errors[0]
    );
}

#[test]
fn a_missing_interface_is_named() {
    let output = sensor(&["run", "--interface", "nosuch0", "--duration", "1"]);
    assert_one_error_line(&output, "interface `nosuch0` not found");
}

#[test]
fn no_interface_at_all_says_how_to_give_one() {
    assert_one_error_line(
        &sensor(&["run"]),
        "pass --interface or set capture.interfaces",
    );
}

#[test]
fn an_unprivileged_user_is_told_what_is_missing() {
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", SENSOR])
        .args(["run", "--interface", "lo", "--duration", "1"])
        .output()
        .expect("setpriv");
    assert_one_error_line(&output, "not permitted to");
    assert_one_error_line(&output, "CAP_BPF");
}

#[test]
fn mirror_mode_is_refused_on_an_interface_with_host_addresses() {
    let peer = NetNs::create("dcwc").expect("namespace");
    let host = NetNs::create("dcwc").expect("namespace");
    let veth = VethPair::create(&peer, &host).expect("veth");
    ip(&[
        "-n",
        host.name(),
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        &veth.receiver,
    ])
    .expect("address");
    let output = host
        .command(SENSOR)
        .args(["run", "-i", &veth.receiver, "--duration", "1"])
        .output()
        .expect("run the sensor");
    assert_one_error_line(&output, "refusing mirror mode");
    let host_mode = host
        .command(SENSOR)
        .args([
            "run",
            "-i",
            &veth.receiver,
            "--mode",
            "host",
            "--duration",
            "1",
        ])
        .output()
        .expect("run the sensor");
    assert!(
        host_mode.status.success(),
        "{}",
        String::from_utf8_lossy(&host_mode.stderr)
    );
}

#[test]
fn a_bad_config_names_the_key() {
    let workdir = tempfile::tempdir().expect("temporary directory");
    let config = workdir.path().join("bad.toml");
    std::fs::write(&config, "[capture]\nring_buffer_mib = 100\n").expect("write");
    let output = sensor(&["run", "-i", "lo", "--config", &config.to_string_lossy()]);
    assert_one_error_line(&output, "key `capture.ring_buffer_mib`");
    let output = sensor(&["run", "-i", "lo", "--config", "/nonexistent/dcwatch.toml"]);
    assert_one_error_line(&output, "cannot read config file /nonexistent/dcwatch.toml");
}

#[test]
fn unreadable_and_malformed_captures_are_clear_errors() {
    let workdir = tempfile::tempdir().expect("temporary directory");
    let output = sensor(&["replay", "/nonexistent/dc.pcap"]);
    assert_one_error_line(&output, "cannot read capture file /nonexistent/dc.pcap");

    let not_a_capture = workdir.path().join("notes.txt");
    std::fs::write(&not_a_capture, "meeting notes\n").expect("write");
    let output = sensor(&["replay", &not_a_capture.to_string_lossy()]);
    assert_one_error_line(&output, "is not a pcap or pcapng capture file");

    let directory = workdir.path().to_string_lossy().into_owned();
    assert_one_error_line(&sensor(&["replay", &directory]), "cannot read capture file");
}

#[test]
fn a_truncated_capture_replays_what_it_holds_then_fails() {
    let whole = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcaps/arkime/tests/pcap/ldap-and-search.pcap");
    let bytes = std::fs::read(&whole).expect("bundled capture");
    let workdir = tempfile::tempdir().expect("temporary directory");
    let cut = workdir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("write");
    let output = sensor(&["replay", "--output", "packets", &cut.to_string_lossy()]);
    assert_one_error_line(&output, "ends in the middle of a record");
    let lines = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(lines, 12, "the 12 whole frames of 13 are printed");
}

#[test]
fn help_teaches() {
    let output = sensor(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for expected in ["mirror", "Examples:", "replay", "CAP_BPF"] {
        assert!(help.contains(expected), "--help lacks {expected:?}");
    }
    let run_help = String::from_utf8_lossy(&sensor(&["run", "--help"]).stdout).into_owned();
    for flag in [
        "--interface",
        "--mode",
        "--attach",
        "--config",
        "--output",
        "--stats-file",
    ] {
        assert!(run_help.contains(flag), "run --help lacks {flag}");
    }
}
