//! The chart of a comparison: goodput and p99 latency against offered rate, one line per
//! server, drawn from the CSV rows the generator appended (`--csv`) into a PNG.
//!
//! Text is drawn with `ab_glyph` from a TrueType font read at run time (`DejaVu` Sans, Debian's
//! `fonts-dejavu-core`, or `--font`); without one the chart is drawn without text and the
//! legend is printed on stdout instead.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use serde::Deserialize;

/// The CSV columns the chart reads.
#[derive(Debug, Deserialize)]
struct Row {
    label: String,
    target_rate: u64,
    phase: String,
    answered_per_s: f64,
    p99_ms: f64,
}

/// One server's points: (target rate, median goodput, median p99 ms), by rate.
type Series = Vec<(f64, f64, f64)>;

/// Reads `csv_path` and groups `phase` rows by label; repeated runs at a rate give the median.
pub fn load(csv_path: &Path, phase: &str) -> Result<BTreeMap<String, Series>> {
    let mut r =
        csv::Reader::from_path(csv_path).with_context(|| format!("{}", csv_path.display()))?;
    let mut by: BTreeMap<String, BTreeMap<u64, Vec<(f64, f64)>>> = BTreeMap::new();
    for row in r.deserialize::<Row>() {
        let row = row?;
        if row.phase == phase && row.target_rate > 0 {
            by.entry(row.label)
                .or_default()
                .entry(row.target_rate)
                .or_default()
                .push((row.answered_per_s, row.p99_ms));
        }
    }
    Ok(by
        .into_iter()
        .map(|(label, rates)| {
            let series = rates
                .into_iter()
                .map(|(rate, mut runs)| {
                    let g = median(runs.iter_mut().map(|r| r.0).collect());
                    let p = median(runs.iter_mut().map(|r| r.1).collect());
                    (rate as f64, g, p)
                })
                .collect();
            (label, series)
        })
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for text; false if none was found.
fn register_font(font: Option<&Path>) -> bool {
    let candidates: Vec<&Path> =
        font.map_or_else(|| FONT_PATHS.iter().map(Path::new).collect(), |f| vec![f]);
    for p in candidates {
        if let Ok(bytes) = std::fs::read(p) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// Draws the chart of `data` into `out` (PNG, 1000×900).
pub fn draw(
    data: &BTreeMap<String, Series>,
    out: &Path,
    font: Option<&Path>,
    title: &str,
) -> Result<()> {
    let text = register_font(font);
    if !text {
        println!("no font found: chart drawn without text");
    }
    let max_rate = data.values().flatten().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let max_good = data.values().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_p99 = data
        .values()
        .flatten()
        .map(|p| p.2)
        .fold(1.0, f64::max)
        .max(0.1)
        * 2.0;
    let root = BitMapBackend::new(out, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(450);
    let colors: Vec<RGBColor> = (0..data.len())
        .map(|i| Palette99::pick(i).to_rgba().rgb())
        .map(|(r, g, b)| RGBColor(r, g, b))
        .collect();

    let mut c = ChartBuilder::on(&top);
    c.margin(15);
    if text {
        c.caption(title, ("sans-serif", 22))
            .x_label_area_size(35)
            .y_label_area_size(70);
    }
    let mut chart = c
        .build_cartesian_2d(0f64..max_rate, 0f64..max_good)
        .map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("offered DORA/s")
            .y_desc("ACKs/s (goodput)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"));
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    for ((label, series), color) in data.iter().zip(&colors) {
        let pts: Vec<(f64, f64)> = series.iter().map(|p| (p.0, p.1)).collect();
        let s = chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?;
        if text {
            let color = *color;
            s.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }

    let mut c = ChartBuilder::on(&bottom);
    c.margin(15);
    if text {
        c.x_label_area_size(35).y_label_area_size(70);
    }
    let mut chart = c
        .build_cartesian_2d(0f64..max_rate, (0.01f64..max_p99).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("offered DORA/s")
            .y_desc("p99 DORA latency, ms (log)");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    for (series, color) in data.values().zip(&colors) {
        let pts: Vec<(f64, f64)> = series.iter().map(|p| (p.0, p.2.max(0.011))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    if !text {
        for (label, color) in data.keys().zip(&colors) {
            println!("{label}: rgb({}, {}, {})", color.0, color.1, color.2);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_repeats_by_label_and_rate_then_a_png() {
        let dir = std::env::temp_dir().join(format!("peregrine-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("runs.csv");
        std::fs::write(
            &csv,
            "label,target_rate,phase,answered_per_s,p99_ms\n\
             kea,1000,dora,990,2.0\nkea,1000,dora,1000,1.0\nkea,1000,dora,980,3.0\n\
             kea,1000,discover-offer,5,5\nkea,2000,dora,1900,4.0\npg,1000,dora,1000,0.5\n",
        )
        .unwrap();
        let data = load(&csv, "dora").unwrap();
        assert_eq!(
            data["kea"],
            vec![(1000.0, 990.0, 2.0), (2000.0, 1900.0, 4.0)]
        );
        assert_eq!(data["pg"], vec![(1000.0, 1000.0, 0.5)]);
        let png = dir.join("chart.png");
        draw(&data, &png, None, "test").unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
