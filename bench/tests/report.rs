//! `report DIR --quick` (what `cargo xtask bench --report DIR --quick` runs): the real
//! benchmarks, short, then the report. Checks that every figure is in report.md with the median
//! and ratio of the runs the benchmarks wrote (raw JSON and CSV), and that each plot is a PNG
//! with something drawn on it. No timing is judged. Needs root (XDP programs, namespaces),
//! tcpdump and tshark, and the daemons built in target/release (as the workspace's test run
//! builds them).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use serde_json::Value;

const REPORT: &str = env!("CARGO_BIN_EXE_report");

/// Every figure the report must hold.
const FIGURES: &[&str] = &[
    "xdp-cost",
    "xdp-decap",
    "veth-rate",
    "veth-cpu",
    "replay-tools",
    "replay-memory",
    "workers-wall",
    "workers-packets-cpu",
    "workers-activities-cpu",
    "detect-rate",
    "backend-ingest",
    "backend-ingest-cpu",
];

fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        f64::midpoint(sorted[middle - 1], sorted[middle])
    }
}

/// A number as the report prints it ("1,234", "84.3", "4.13", "2.50x") back to a value.
fn parse(text: &str) -> f64 {
    text.trim()
        .trim_end_matches('x')
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

/// Whether `printed` is `value` rounded as printed: to the decimals it shows.
fn agrees(printed: &str, value: f64) -> bool {
    let decimals = printed
        .trim()
        .trim_end_matches('x')
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    let tolerance = 0.5 * 10_f64.powi(-i32::try_from(decimals).unwrap_or(0)) + 1e-9;
    (parse(printed) - value).abs() <= tolerance
}

/// The table rows after `<!-- figure: ID -->`: label, median, ratio, runs.
fn table(report: &str, id: &str) -> Vec<[String; 4]> {
    let marker = format!("<!-- figure: {id} -->");
    let start = report
        .find(&marker)
        .unwrap_or_else(|| panic!("{id} not in report.md"));
    report[start..]
        .lines()
        .skip(3)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect();
            cells.try_into().expect("four cells")
        })
        .collect()
}

/// raw/figures.csv as (figure, row) to its runs' values, in order.
fn csv(path: &Path) -> BTreeMap<(String, String), Vec<f64>> {
    let text = std::fs::read_to_string(path).expect("figures.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("bench,figure,row,run,value"));
    let mut runs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in lines {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(character) = chars.next() {
            match character {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                other => field.push(other),
            }
        }
        fields.push(field);
        assert_eq!(fields.len(), 5, "{line}");
        runs.entry((fields[1].clone(), fields[2].clone()))
            .or_default()
            .push(fields[4].parse().expect("value"));
    }
    runs
}

/// Decodes a PNG; its size and how many colours it uses.
fn png(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).unwrap_or_else(|_| panic!("{} missing", path.display())),
    ));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("buffer size")];
    let frame = reader.next_frame(&mut pixels).expect("PNG data");
    let bytes = frame.color_type.samples();
    let colours: BTreeSet<&[u8]> = pixels[..frame.buffer_size()].chunks(bytes).collect();
    (frame.width, frame.height, colours.len())
}

#[test]
fn a_quick_report_holds_every_figure_as_its_raw_runs_say() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(REPORT)
        .arg(dir.path())
        .arg("--quick")
        .env_remove("SURICATA")
        .env_remove("WORKERS")
        .output()
        .expect("run report");
    assert!(
        output.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read_to_string(dir.path().join("report.md")).expect("report.md");
    assert!(report.contains("**Quick run**"));
    assert!(report.contains("Suricata: not measured"));
    let csv = csv(&dir.path().join("raw/figures.csv"));
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("raw")).expect("raw/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let bench: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        for figure in bench["figures"].as_array().expect("figures") {
            let id = figure["id"].as_str().expect("id");
            seen.push(id.to_owned());
            let baseline = figure["baseline"].as_str().expect("baseline");
            let rows = figure["rows"].as_array().expect("rows");
            assert!(rows.len() >= 2, "{id}: {} rows", rows.len());
            let runs: Vec<(&str, Vec<f64>)> = rows
                .iter()
                .map(|row| {
                    let values: Vec<f64> = row["runs"]
                        .as_array()
                        .expect("runs")
                        .iter()
                        .map(|value| value.as_f64().expect("a number"))
                        .collect();
                    (row["label"].as_str().expect("label"), values)
                })
                .collect();
            let base = runs
                .iter()
                .find(|(label, _)| *label == baseline)
                .map_or_else(
                    || panic!("{id}: no baseline row {baseline}"),
                    |(_, values)| median_of(values),
                );
            let printed = table(&report, id);
            assert_eq!(printed.len(), runs.len(), "{id}: rows in report.md");
            for ((label, values), [cell, median, ratio, listed]) in runs.iter().zip(&printed) {
                // detect-cost leaves out (and says so) a trial where the detectors' share of CPU
                // was not positive.
                let least = if *label == "detectors alone" { 1 } else { 3 };
                assert!(values.len() >= least, "{id}/{label}: {} runs", values.len());
                assert!(
                    values.iter().all(|value| value.is_finite() && *value > 0.0),
                    "{id}/{label}: {values:?}"
                );
                assert_eq!(
                    csv.get(&(id.to_owned(), (*label).to_owned())),
                    Some(values),
                    "{id}/{label}: CSV against JSON"
                );
                assert_eq!(cell.trim_end_matches(" (baseline)"), *label);
                assert_eq!(cell.ends_with(" (baseline)"), *label == baseline);
                let expected = median_of(values);
                assert!(
                    agrees(median, expected),
                    "{id}/{label}: {median} for {expected}"
                );
                assert!(
                    agrees(ratio, expected / base),
                    "{id}/{label}: {ratio} for {}",
                    expected / base
                );
                let listed: Vec<&str> = listed.split(", ").collect();
                assert_eq!(listed.len(), values.len(), "{id}/{label}: runs listed");
                for (text, value) in listed.iter().zip(values) {
                    assert!(agrees(text, *value), "{id}/{label}: run {text} for {value}");
                }
            }
            assert!(
                report.contains(&format!("({id}.png)")),
                "{id}: plot not linked"
            );
            let (width, height, colours) = png(&dir.path().join(format!("{id}.png")));
            assert!(width >= 400 && height >= 100, "{id}.png: {width}x{height}");
            // White, black text and ticks, the baseline's grey bar and the others' blue.
            assert!(colours >= 4, "{id}.png: {colours} colours");
        }
    }
    seen.sort();
    let mut expected: Vec<String> = FIGURES.iter().map(|id| (*id).to_owned()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}
