//! A figure as a PNG bar chart: one bar per row at its median, a tick at every run's value, the
//! baseline's bar grey. Drawn with plotters' bitmap backend; the text is an 8x8 bitmap font
//! (font8x8) drawn pixel by pixel, so no system font is needed on the machine that makes it.

use std::path::Path;

use font8x8::UnicodeFonts as _;
use plotters::prelude::*;

use crate::report::Figure;

/// Pixels per font pixel: 16-pixel glyphs.
const SCALE: i32 = 2;
const GLYPH: i32 = 8 * SCALE;
const MARGIN: i32 = 16;
const ROW_HEIGHT: i32 = 34;
const BAR_HEIGHT: i32 = 22;
const BARS_WIDTH: i32 = 560;
/// Room right of a bar for "1,234,567 (12.34x)".
const VALUE_WIDTH: i32 = 20 * GLYPH;
const HEADER: i32 = 3 * GLYPH + 2 * MARGIN;
const BASELINE_COLOUR: RGBColor = RGBColor(160, 160, 160);
const BAR_COLOUR: RGBColor = RGBColor(66, 110, 180);

/// Draws `figure` into `path`.
pub fn figure(figure: &Figure, path: &Path) -> anyhow::Result<()> {
    let longest = figure
        .rows
        .iter()
        .map(|row| row.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = i32::try_from(longest).unwrap_or(60).min(60) * GLYPH + MARGIN;
    let title_width = i32::try_from(figure.title.chars().count()).unwrap_or(0) * GLYPH;
    let width = (MARGIN + label_width + BARS_WIDTH + VALUE_WIDTH).max(title_width + 2 * MARGIN);
    let rows = i32::try_from(figure.rows.len()).unwrap_or(0);
    let height = HEADER + rows * ROW_HEIGHT + MARGIN;
    let size = (u32::try_from(width)?, u32::try_from(height)?);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    text(&root, (MARGIN, MARGIN), &figure.title, &BLACK)?;
    let subtitle = format!(
        "{}; median of runs (ticks: each run); ratio to {}",
        figure.unit, figure.baseline
    );
    text(
        &root,
        (MARGIN, MARGIN + 2 * GLYPH),
        &subtitle,
        &RGBColor(80, 80, 80),
    )?;

    let most = figure
        .rows
        .iter()
        .flat_map(|row| row.runs.iter().copied())
        .fold(0.0_f64, f64::max);
    let scale = |value: f64| -> i32 {
        if most <= 0.0 {
            0
        } else {
            (value / most * f64::from(BARS_WIDTH)).round() as i32
        }
    };
    let left = MARGIN + label_width;
    for (index, row) in (0..).zip(&figure.rows) {
        let top = HEADER + index * ROW_HEIGHT;
        let label: String = row.label.chars().take(60).collect();
        text(
            &root,
            (MARGIN, top + (BAR_HEIGHT - GLYPH) / 2),
            &label,
            &BLACK,
        )?;
        let median = row.median();
        let colour = if row.label == figure.baseline {
            BASELINE_COLOUR
        } else {
            BAR_COLOUR
        };
        root.draw(&Rectangle::new(
            [(left, top), (left + scale(median).max(1), top + BAR_HEIGHT)],
            colour.filled(),
        ))
        .map_err(draw_error)?;
        for &run in &row.runs {
            let x = left + scale(run);
            root.draw(&Rectangle::new(
                [(x - 1, top - 3), (x + 1, top + BAR_HEIGHT + 3)],
                BLACK.filled(),
            ))
            .map_err(draw_error)?;
        }
        let value = match figure.ratio(row) {
            Some(ratio) => format!("{} ({ratio:.2}x)", crate::render::number(median)),
            None => crate::render::number(median),
        };
        // Right of the bar and of its last tick.
        let end = row.runs.iter().copied().fold(median, f64::max);
        text(
            &root,
            (
                left + scale(end) + MARGIN / 2,
                top + (BAR_HEIGHT - GLYPH) / 2,
            ),
            &value,
            &BLACK,
        )?;
    }
    // The axis the bars start from.
    root.draw(&Rectangle::new(
        [(left - 1, HEADER - 6), (left, HEADER + rows * ROW_HEIGHT)],
        BLACK.filled(),
    ))
    .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Draws `line` with its top-left corner at `at`; a character the font lacks is drawn as '?'.
fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    at: (i32, i32),
    line: &str,
    colour: &RGBColor,
) -> anyhow::Result<()> {
    for (column, character) in (0..).zip(line.chars()) {
        let glyph = font8x8::BASIC_FONTS
            .get(character)
            .or_else(|| font8x8::LATIN_FONTS.get(character))
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or_default();
        let x0 = at.0 + column * GLYPH;
        for (y, bits) in (0..).zip(glyph) {
            for x in 0..8 {
                if bits & (1 << x) != 0 {
                    let corner = (x0 + x * SCALE, at.1 + y * SCALE);
                    area.draw(&Rectangle::new(
                        [corner, (corner.0 + SCALE - 1, corner.1 + SCALE - 1)],
                        colour.filled(),
                    ))
                    .map_err(draw_error)?;
                }
            }
        }
    }
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing: {error}")
}
