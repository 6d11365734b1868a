//! The report's files from the benchmarks' figures: `report.md`, a PNG per figure, and
//! `raw/figures.csv` (every run's value, beside the benchmarks' own `raw/BENCH.json`).

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context as _;

use crate::report::{BenchFigures, Figure};

/// One benchmark's run, as the report's summary lists it.
#[derive(Debug)]
pub struct BenchRun {
    pub bench: String,
    pub wall: Duration,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Its figures, if it wrote them.
    pub figures: Option<BenchFigures>,
}

/// What the report says of where and how it was made.
#[derive(Debug)]
pub struct Context {
    pub quick: bool,
    pub machine: Vec<String>,
    pub started: String,
    pub total: Duration,
}

/// Writes `report.md`, the PNGs and `raw/figures.csv` into `dir`.
pub fn report(dir: &Path, context: &Context, runs: &[BenchRun]) -> anyhow::Result<()> {
    let mut csv = String::from("bench,figure,row,run,value\n");
    let mut md = String::new();
    writeln!(md, "# dcwatch performance report\n")?;
    writeln!(
        md,
        "Made by `cargo xtask bench --report{}` on {}, in {:.0} s.\n",
        if context.quick { " --quick" } else { "" },
        context.started,
        context.total.as_secs_f64()
    )?;
    if context.quick {
        writeln!(
            md,
            "**Quick run**: small inputs and three trials, to check the report is made; its \
             figures mean little.\n"
        )?;
    }
    for line in &context.machine {
        writeln!(md, "- {line}")?;
    }
    writeln!(
        md,
        "\nEach figure is the median of repeated runs of one benchmark, with its ratio to a \
         baseline measured in the same run (interleaved with it where the benchmark can). \
         Compare ratios, not absolute figures across runs or machines. Every run's value is in \
         `raw/figures.csv` and `raw/BENCH.json`; each benchmark's printed output in \
         `raw/BENCH.txt`.\n"
    )?;
    writeln!(md, "| benchmark | wall time | result |\n|---|---:|---|")?;
    for run in runs {
        writeln!(
            md,
            "| {} | {:.0} s | {} |",
            run.bench,
            run.wall.as_secs_f64(),
            run.failure.as_deref().unwrap_or("ok")
        )?;
    }
    for run in runs {
        writeln!(md, "\n## {}\n", run.bench)?;
        if let Some(failure) = &run.failure {
            writeln!(md, "**Failed**: {failure}\n")?;
        }
        let Some(figures) = &run.figures else {
            writeln!(md, "No figures.")?;
            continue;
        };
        for note in &figures.notes {
            writeln!(md, "- {note}")?;
        }
        for figure in &figures.figures {
            section(&mut md, figure)?;
            crate::plot::figure(figure, &dir.join(format!("{}.png", figure.id)))
                .with_context(|| format!("plotting {}", figure.id))?;
            for row in &figure.rows {
                for (index, value) in row.runs.iter().enumerate() {
                    writeln!(
                        csv,
                        "{},{},{},{},{value}",
                        figures.bench,
                        figure.id,
                        csv_field(&row.label),
                        index + 1
                    )?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir.join("raw"))?;
    std::fs::write(dir.join("raw/figures.csv"), csv)?;
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

/// A figure's heading, table and plot. The marker comment names the figure for readers of the
/// raw files (and the report's test).
fn section(md: &mut String, figure: &Figure) -> anyhow::Result<()> {
    writeln!(md, "\n### {}\n", figure.title)?;
    writeln!(md, "<!-- figure: {} -->", figure.id)?;
    writeln!(
        md,
        "| {} | median | ratio to baseline | runs |\n|---|---:|---:|---|",
        figure.unit
    )?;
    for row in &figure.rows {
        let ratio = figure
            .ratio(row)
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x"));
        let runs: Vec<String> = row.runs.iter().map(|&run| number(run)).collect();
        let label = if row.label == figure.baseline {
            format!("{} (baseline)", row.label)
        } else {
            row.label.clone()
        };
        writeln!(
            md,
            "| {} | {} | {ratio} | {} |",
            label.replace('|', "\\|"),
            number(row.median()),
            runs.join(", ")
        )?;
    }
    writeln!(md, "\n![{}]({}.png)\n", figure.title, figure.id)?;
    if !figure.method.is_empty() {
        writeln!(md, "{}", figure.method)?;
    }
    Ok(())
}

/// A value as the report prints it: thousands separated, decimals only for small values.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        let whole = format!("{magnitude:.0}");
        let mut grouped = String::new();
        for (index, digit) in whole.chars().enumerate() {
            if index > 0 && (whole.len() - index) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if value < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded_by_size() {
        assert_eq!(number(20_874_842.4), "20,874,842");
        assert_eq!(number(-1234.0), "-1,234");
        assert_eq!(number(100.0), "100");
        assert_eq!(number(84.26), "84.3");
        assert_eq!(number(4.126), "4.13");
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("UDP/88, 300 B"), "\"UDP/88, 300 B\"");
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
    }
}
