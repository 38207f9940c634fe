//! `--plot FILE.svg`: one panel per workload, one bar per contender on a log scale, procshare's
//! bars highlighted and the physical limit (memcpy, else the OS pipe) marked with a line; the
//! same picture as a PNG next to the SVG.

use super::{Kind, Row, Unit};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const COLUMNS: usize = 2;
const PANEL_W: u32 = 900;
const BAR_H: u32 = 26;
const PANEL_EXTRA: u32 = 90;
const LEGEND_H: u32 = 70;

fn colour(kind: Kind) -> RGBColor {
    match kind {
        Kind::Procshare => RGBColor(230, 97, 0),
        Kind::Peer => RGBColor(70, 120, 180),
        Kind::Limit => RGBColor(60, 60, 60),
        Kind::Threads => RGBColor(170, 170, 170),
        Kind::Python => RGBColor(120, 175, 120),
    }
}

fn legend_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Procshare => "procshare",
        Kind::Peer => "Rust peer (other processes)",
        Kind::Limit => "kernel / hardware limit",
        Kind::Threads => "threads of one process (reference)",
        Kind::Python => "CPython multiprocessing",
    }
}

/// A short axis label: 3k, 20M, 1.5 µs, 2 GiB/s.
fn compact(unit: Unit, v: f64) -> String {
    let si = |v: f64| {
        let (x, s) = match v {
            v if v >= 1e9 => (v / 1e9, "G"),
            v if v >= 1e6 => (v / 1e6, "M"),
            v if v >= 1e3 => (v / 1e3, "k"),
            v => (v, ""),
        };
        if x >= 10.0 || x.fract() == 0.0 {
            format!("{x:.0}{s}")
        } else {
            format!("{x:.1}{s}")
        }
    };
    match unit {
        Unit::BytesPerSec => {
            let g = v / (1u64 << 30) as f64;
            if g >= 1.0 {
                format!("{g:.0} GiB/s")
            } else {
                format!("{:.0} MiB/s", v / (1u64 << 20) as f64)
            }
        }
        Unit::Micros if v >= 1000.0 => format!("{} ms", si(v / 1e3)),
        Unit::Micros => format!("{} µs", si(v)),
        _ => si(v),
    }
}

/// The panels: each workload's rows, in report order.
fn panels(rows: &[Row]) -> Vec<Vec<&Row>> {
    let mut out: Vec<Vec<&Row>> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(p) if p[0].workload == r.workload => p.push(r),
            _ => out.push(vec![r]),
        }
    }
    out
}

fn err(e: impl std::fmt::Display) -> procshare::Error {
    procshare::Error::Io(std::io::Error::other(format!("plot: {e}")))
}

/// A font for the text: the bitmap backend draws glyphs itself and needs one.
fn register_font() -> bool {
    const CANDIDATES: [&str; 4] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    for path in CANDIDATES {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, bytes);
                return true;
            }
        }
    }
    false
}

/// Draws `rows` to `svg` and a PNG beside it; returns the files written.
pub fn plot(rows: &[Row], svg: &Path) -> procshare::Result<Vec<PathBuf>> {
    if !register_font() {
        return Err(err("no TrueType font found (DejaVu Sans or Liberation Sans) for the labels"));
    }
    let panels = panels(rows);
    let grid_rows = panels.len().div_ceil(COLUMNS);
    // Each grid row is as tall as its tallest panel.
    let heights: Vec<u32> = (0..grid_rows)
        .map(|g| {
            let tallest = panels[g * COLUMNS..((g + 1) * COLUMNS).min(panels.len())]
                .iter()
                .map(|p| p.len() as u32)
                .max()
                .unwrap_or(1);
            PANEL_EXTRA + BAR_H * tallest
        })
        .collect();
    let size = (PANEL_W * COLUMNS as u32, LEGEND_H + heights.iter().sum::<u32>());
    draw(SVGBackend::new(svg, size).into_drawing_area(), &panels, &heights)?;
    let png = svg.with_extension("png");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), &panels, &heights)?;
    Ok(vec![svg.to_path_buf(), png])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[Vec<&Row>],
    heights: &[u32],
) -> procshare::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let title = "procshare bench: each bar one contender, log scale (medians; see the caption for \
                 which way is better)";
    root.draw(&Text::new(title, (16, 12), ("sans-serif", 22).into_font())).map_err(err)?;
    let mut x = 16;
    for kind in [Kind::Procshare, Kind::Peer, Kind::Limit, Kind::Threads, Kind::Python] {
        root.draw(&Rectangle::new([(x, 44), (x + 18, 60)], colour(kind).filled())).map_err(err)?;
        let name = legend_name(kind);
        root.draw(&Text::new(name, (x + 24, 44), ("sans-serif", 16).into_font())).map_err(err)?;
        x += 34 + 8 * name.len() as i32;
    }
    let mut top = LEGEND_H;
    for (g, h) in heights.iter().enumerate() {
        for col in 0..COLUMNS {
            let Some(panel) = panels.get(g * COLUMNS + col) else { continue };
            let area =
                root.clone().shrink(((col as u32 * PANEL_W) as i32, top as i32), (PANEL_W, *h));
            draw_panel(&area, panel)?;
        }
        top += h;
    }
    root.present().map_err(err)?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[&Row],
) -> procshare::Result<()> {
    let unit = rows[0].unit;
    let n = rows.len();
    let lo_v = rows.iter().map(|r| r.median).fold(f64::INFINITY, f64::min);
    let hi_v = rows.iter().map(|r| r.median).fold(0.0f64, f64::max);
    // Room on the right for the value written after the longest bar.
    let (lo, hi) = (lo_v / 4.0, hi_v * 6.0);
    let dir = if unit.higher_is_better() { "longer is better" } else { "shorter is better" };
    let caption = format!("{} ({}, {dir})", rows[0].workload, unit.label());
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18).into_font())
        .margin(10)
        .margin_right(24)
        .x_label_area_size(28)
        .y_label_area_size(290)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
        .map_err(err)?;
    let label = |i: usize| {
        n.checked_sub(i + 1)
            .and_then(|k| rows.get(k))
            .map(|r| r.contender.clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(6)
        .x_label_formatter(&|v| compact(unit, *v))
        .y_labels(n)
        .y_label_style(("sans-serif", 14).into_font())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => label(*i),
            _ => String::new(),
        })
        .draw()
        .map_err(err)?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let y = n - 1 - i;
            let mut bar = Rectangle::new(
                [(lo, SegmentValue::Exact(y)), (r.median, SegmentValue::Exact(y + 1))],
                colour(r.kind).filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(err)?;
    // The figure after each bar, bold for procshare.
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let style = if r.kind == Kind::Procshare {
                ("sans-serif", 14).into_font().style(FontStyle::Bold)
            } else {
                ("sans-serif", 14).into_font()
            };
            Text::new(
                format!(" {}", unit.human(r.median)),
                (r.median, SegmentValue::CenterOf(n - 1 - i)),
                TextStyle::from(style).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            )
        }))
        .map_err(err)?;
    // The physical limit: memcpy where it was measured, else the OS pipe.
    let limit = rows
        .iter()
        .find(|r| r.kind == Kind::Limit && r.contender.starts_with("memcpy"))
        .or_else(|| rows.iter().find(|r| r.kind == Kind::Limit));
    if let Some(l) = limit {
        chart
            .draw_series(DashedLineSeries::new(
                [(l.median, SegmentValue::Exact(0)), (l.median, SegmentValue::Exact(n))],
                6,
                4,
                BLACK.stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}
