//! `dcwatch-sensor replay` over the captures bundled in testdata/pcaps, compared frame by frame
//! with what tshark makes of the same files (testdata/pcaps/expected, made by
//! testdata/pcaps/make-expected.sh): time, lengths, addresses, ports and transport.

use std::process::Command;

use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// A JSON line in the layout of the expected files.
fn as_expected_row(line: &str) -> String {
    let packet: Value = serde_json::from_str(line).expect("a JSON line");
    let time = humantime::parse_rfc3339(packet["time"].as_str().expect("time")).expect("RFC 3339");
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    let transport = packet["transport"].as_str().unwrap_or("-");
    format!(
        "{micros}\t{}\t{}\t{}\t{}\t{transport}",
        packet["len"],
        packet["captured_len"],
        packet["src"].as_str().expect("src"),
        packet["dst"].as_str().expect("dst"),
    )
}

#[test]
fn every_bundled_capture_replays_as_tshark_reads_it() {
    let captures = corpus::captures().expect("manifest");
    assert!(captures.len() >= 10, "manifest lists {}", captures.len());
    let workdir = tempfile::tempdir().expect("temporary directory");
    for capture in captures {
        let stats = workdir.path().join("stats.json");
        let output = Command::new(SENSOR)
            .args(["replay", "--output", "packets", "--stats-file"])
            .arg(&stats)
            .arg(corpus::dir().join(&capture))
            .output()
            .expect("run the sensor");
        assert!(
            output.status.success(),
            "{capture}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected_file = corpus::dir()
            .join("expected")
            .join(format!("{}.tsv", capture.replace('/', "_")));
        let expected = std::fs::read_to_string(&expected_file).expect("expected file");
        let expected_ip: Vec<&str> = expected
            .lines()
            .filter(|row| !row.contains("non-ip"))
            .collect();
        let non_ip = expected.lines().count() - expected_ip.len();
        let stdout = String::from_utf8(output.stdout).expect("UTF-8");
        let actual: Vec<String> = stdout.lines().map(as_expected_row).collect();
        assert_eq!(actual.len(), expected_ip.len(), "{capture}: frame count");
        for (index, (actual, expected)) in actual.iter().zip(&expected_ip).enumerate() {
            assert_eq!(actual, expected, "{capture}: frame {}", index + 1);
        }
        let stats: Value =
            serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("JSON");
        assert_eq!(
            stats["delivered"],
            expected.lines().count(),
            "{capture}: delivered"
        );
        assert_eq!(stats["decode_errors"], non_ip, "{capture}: decode_errors");
    }
}
