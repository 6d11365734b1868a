//! The figures behind `cargo xtask bench --report DIR`.
//!
//! A benchmark run with `BENCH_REPORT_DIR` set writes what it measured to
//! `DIR/raw/BENCH.json`: each figure's rows with every run's value (not only their median), so the
//! report's medians and ratios can be checked against them. `BENCH_QUICK` asks for a short run
//! (small inputs, few trials): what the report's own test uses.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::median;

/// Where the figures go, when a report is being made.
pub const DIR_VARIABLE: &str = "BENCH_REPORT_DIR";
/// Set (to anything but empty or 0) for a short run.
pub const QUICK_VARIABLE: &str = "BENCH_QUICK";

/// What one benchmark measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchFigures {
    pub bench: String,
    pub figures: Vec<Figure>,
    /// What the reader must know that is not a figure: a tool that was not there, a loss.
    pub notes: Vec<String>,
}

/// Rows measured in the same run, each compared with the baseline row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// Names the figure's plot (`ID.png`): letters, digits and dashes.
    pub id: String,
    pub title: String,
    /// What a value is, e.g. "ns per packet".
    pub unit: String,
    /// The label of the row every ratio is to.
    pub baseline: String,
    pub rows: Vec<Row>,
    /// How it was measured: input, trials, pinning.
    pub method: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    /// Every trial's value, in the order measured.
    pub runs: Vec<f64>,
}

impl Row {
    pub fn new(label: impl Into<String>, runs: Vec<f64>) -> Self {
        Self {
            label: label.into(),
            runs,
        }
    }

    pub fn median(&self) -> f64 {
        median(&mut self.runs.clone())
    }
}

impl Figure {
    /// A figure whose baseline is its first row.
    pub fn new(
        id: &str,
        title: impl Into<String>,
        unit: &str,
        method: impl Into<String>,
        rows: Vec<Row>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            title: title.into(),
            unit: unit.to_owned(),
            baseline: rows
                .first()
                .map(|row| row.label.clone())
                .unwrap_or_default(),
            rows,
            method: method.into(),
        }
    }

    /// The baseline row's median; none if the baseline is missing or zero.
    pub fn baseline_median(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.label == self.baseline)
            .map(Row::median)
            .filter(|&median| median != 0.0)
    }

    /// `row`'s median over the baseline's.
    pub fn ratio(&self, row: &Row) -> Option<f64> {
        self.baseline_median()
            .map(|baseline| row.median() / baseline)
    }
}

/// Whether a short run was asked for.
pub fn quick() -> bool {
    std::env::var(QUICK_VARIABLE).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// `full` normally, `short` in a quick run.
pub fn scaled<T>(full: T, short: T) -> T {
    if quick() { short } else { full }
}

/// Worker counts to measure: `WORKERS` (comma-separated) or 1 up to the CPUs.
pub fn worker_counts() -> anyhow::Result<Vec<u16>> {
    if let Ok(list) = std::env::var("WORKERS") {
        list.split(',')
            .map(|count| {
                count
                    .trim()
                    .parse()
                    .context("WORKERS: a comma-separated list")
            })
            .collect()
    } else {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Ok((1..=u16::try_from(cpus).unwrap_or(u16::MAX)).collect())
    }
}

/// Writes `figures` to the report's folder when one is being made (`BENCH_REPORT_DIR`).
pub fn write(figures: &BenchFigures) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os(DIR_VARIABLE) else {
        return Ok(());
    };
    for figure in &figures.figures {
        for row in &figure.rows {
            anyhow::ensure!(
                row.runs.iter().all(|run| run.is_finite()),
                "{}: {} has a value that is not a number: {:?}",
                figure.id,
                row.label,
                row.runs
            );
        }
    }
    let path = raw_path(Path::new(&dir), &figures.bench);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(figures)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Where a benchmark's figures are in a report's folder.
pub fn raw_path(dir: &Path, bench: &str) -> PathBuf {
    dir.join("raw").join(format!("{bench}.json"))
}

/// Reads a benchmark's figures back.
pub fn read(path: &Path) -> anyhow::Result<BenchFigures> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_the_baseline_rows_median() {
        let figure = Figure::new(
            "x",
            "x",
            "ns",
            "",
            vec![
                Row::new("base", vec![4.0, 2.0, 3.0]),
                Row::new("other", vec![9.0, 6.0, 7.0, 8.0]),
            ],
        );
        assert_eq!(figure.baseline, "base");
        assert_eq!(figure.ratio(&figure.rows[1]), Some(7.5 / 3.0));
        let zero = Figure::new("z", "z", "ns", "", vec![Row::new("base", vec![0.0])]);
        assert_eq!(zero.ratio(&zero.rows[0]), None);
    }
}
