//! The sensor as its systemd unit runs it: an unprivileged user holding exactly CAP_BPF,
//! CAP_NET_ADMIN, CAP_PERFMON and CAP_NET_BIND_SERVICE (granted with setpriv, as the unit's
//! AmbientCapabilities= does) attaches and captures; without CAP_BPF it fails with the error
//! that says what to grant. Needs root (to hand out the capabilities) and setpriv.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    process::Command,
    time::Duration,
};

use dcwatch_tests::{
    frames,
    netns::{NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
/// The unit's AmbientCapabilities=.
const UNIT_CAPABILITIES: &str = "+bpf,+net_admin,+perfmon,+net_bind_service";
/// nobody: any user without privileges of its own.
const UNPRIVILEGED: &str = "65534";

/// The sensor inside `namespace` as user nobody holding exactly `capabilities` (setpriv's
/// syntax), in its effective, permitted, inheritable, ambient and bounding sets alike.
fn as_nobody(namespace: &NetNs, capabilities: &str, args: &[String]) -> Command {
    let mut command = namespace.command("setpriv");
    command.args([
        &format!("--reuid={UNPRIVILEGED}"),
        &format!("--regid={UNPRIVILEGED}"),
        "--clear-groups",
        &format!("--inh-caps=-all,{capabilities}"),
        &format!("--ambient-caps=-all,{capabilities}"),
        &format!("--bounding-set=-all,{capabilities}"),
        "--",
        SENSOR,
    ]);
    command.args(args);
    command
}

/// A run directory the unprivileged sensor can write its stats file in.
fn open_run_dir() -> RunDir {
    let run = RunDir::create().expect("run directory");
    std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::set_permissions(&run.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    run
}

#[test]
fn the_units_capabilities_are_enough_to_capture() {
    let peer = NetNs::create("dcwcap").expect("sender namespace");
    let capture = NetNs::create("dcwcap").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = open_run_dir();
    let args = run.run_args(&[&veth.receiver], &["--output", "packets"]);
    let process = SensorProcess::spawn(as_nobody(&capture, UNIT_CAPABILITIES, &args), 1)
        .expect("the unprivileged sensor attaches");
    let kerberos = frames::udp_v4(88, &[0x6a; 60]);
    send_frames(&peer, &veth.sender, [kerberos.as_slice(); 5]).expect("send");
    let stats = stats_file::wait_for(&run.stats, "delivered", 5, Duration::from_secs(15))
        .expect("stats file");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    assert_eq!(stats_file::counter(&stats, "delivered"), 5, "{stats:?}");
    assert_eq!(finished.stdout.len(), 5, "one packet line a frame");
    let owner = std::fs::metadata(&run.stats).expect("stats file").uid();
    assert_eq!(
        owner.to_string(),
        UNPRIVILEGED,
        "written by the unprivileged user"
    );
}

#[test]
fn without_cap_bpf_it_says_what_to_grant() {
    let peer = NetNs::create("dcwcap").expect("sender namespace");
    let capture = NetNs::create("dcwcap").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = open_run_dir();
    let args = run.run_args(&[&veth.receiver], &["--duration", "5"]);
    let output = as_nobody(&capture, "+net_admin,+perfmon,+net_bind_service", &args)
        .output()
        .expect("setpriv runs");
    assert!(!output.status.success(), "it must not run without CAP_BPF");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not permitted to") && stderr.contains("grant CAP_BPF"),
        "{stderr}"
    );
}
