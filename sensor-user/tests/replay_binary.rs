//! `dcwatch-replay`: the sensor's replay on its own, which builds without the eBPF toolchain.

use std::process::Command;

use dcwatch_tests::corpus;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const REPLAY: &str = env!("CARGO_BIN_EXE_dcwatch-replay");

#[test]
fn dcwatch_replay_prints_what_dcwatch_sensor_replay_prints() {
    let captures = [
        "adlab/dcsync.pcap",
        "adlab/kerberoast.pcap",
        "adlab/lateral.pcap",
    ]
    .map(|capture| corpus::dir().join(capture));
    let config = corpus::dir().join("alerts/adlab.toml");
    let args = ["--output", "json", "--alerts", "json", "--config"];
    let sensor = Command::new(SENSOR)
        .arg("replay")
        .args(args)
        .arg(&config)
        .args(&captures)
        .output()
        .expect("run dcwatch-sensor");
    let replay = Command::new(REPLAY)
        .args(args)
        .arg(&config)
        .args(&captures)
        .output()
        .expect("run dcwatch-replay");
    assert!(sensor.status.success() && replay.status.success());
    let lines = String::from_utf8_lossy(&sensor.stdout).lines().count();
    // Activities and the alerts raised on them (dcsync.pcap raises one).
    assert!(lines > 100, "dcwatch-sensor replay printed {lines} lines");
    assert!(
        String::from_utf8_lossy(&sensor.stdout).contains("\"type\":\"dcsync\""),
        "no DCSync alert"
    );
    assert_eq!(
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&sensor.stdout)
    );
}

/// The normal and build dependencies of `package` with `features`, as `cargo tree` lists them.
fn dependencies(package: &str, features: &[&str]) -> String {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "tree",
            "--offline",
            "--manifest-path",
            manifest,
            "-p",
            package,
        ])
        .args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .args(features)
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn replay_and_its_benchmarks_build_without_the_ebpf_object() {
    let builds_ebpf = |tree: &str| {
        tree.lines()
            .any(|line| line.starts_with("sensor-ebpf ") || line.starts_with("aya-build "))
    };
    // What the build script needs to build the eBPF object is there by default...
    assert!(builds_ebpf(&dependencies("sensor-user", &[])));
    assert!(builds_ebpf(&dependencies("bench", &[])));
    // ...and not without the features that ask for live capture.
    for package in ["sensor-user", "bench"] {
        let tree = dependencies(package, &["--no-default-features"]);
        assert!(tree.contains("dcwatch-pipeline "), "{package}: {tree}");
        assert!(
            !builds_ebpf(&tree),
            "{package} without default features: {tree}"
        );
        assert!(
            !tree.lines().any(|line| line.starts_with("aya ")),
            "{package} without default features still loads XDP programs: {tree}"
        );
    }
}
