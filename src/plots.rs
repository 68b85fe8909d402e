//! Small self-contained SVG charts for the reports: line charts (training curves, NDCG per
//! correction step), grouped bar charts (modality weights), scatter maps (users and
//! authors in a 2-D projection) and heatmaps (attention by user group and modality).
//!
//! ```
//! let svg = mspa::plots::line_chart("loss", "epoch", "loss", &[("MSPA".into(), vec![(1.0, 2.0), (2.0, 1.5)])]);
//! assert!(svg.starts_with("<svg"));
//! ```

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A range padded so that a flat series still gets a visible axis.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn header(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 12.0,
        esc(x_label)
    );
    let _ = write!(
        out,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        esc(y_label)
    );
}

fn y_axis(out: &mut String, lo: f64, hi: f64) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let y = TOP + plot_h * (1.0 - i as f64 / 4.0);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            format_tick(v)
        );
    }
}

fn format_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn legend(out: &mut String, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * i as f64;
        let x = WIDTH - RIGHT + 12.0;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 10.0,
            COLORS[i % COLORS.len()],
            x + 18.0,
            y,
            esc(name)
        );
    }
}

/// A line chart of several named series of `(x, y)` points.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let points = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    let (x_lo, x_hi) = padded(x_lo, x_hi);
    let (y_lo, y_hi) = padded(y_lo, y_hi);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let sy = |y: f64| TOP + (1.0 - (y - y_lo) / (y_hi - y_lo)) * plot_h;

    let mut out = String::new();
    header(&mut out, title, x_label, y_label);
    y_axis(&mut out, y_lo, y_hi);
    for i in 0..=4 {
        let v = x_lo + (x_hi - x_lo) * i as f64 / 4.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            sx(v),
            HEIGHT - BOTTOM + 16.0,
            format_tick(v)
        );
    }
    for (i, (_, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A grouped bar chart: one group per category, one bar per series.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> String {
    let y_hi = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut out = String::new();
    header(&mut out, title, "", y_label);
    y_axis(&mut out, 0.0, y_hi);
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (c, cat) in categories.iter().enumerate() {
        let x0 = LEFT + group_w * c as f64 + group_w * 0.1;
        for (s, (_, values)) in series.iter().enumerate() {
            let v = values.get(c).copied().unwrap_or(0.0);
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let h = v / y_hi * plot_h;
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                x0 + bar_w * s as f64,
                TOP + plot_h - h,
                bar_w.max(1.0),
                h,
                COLORS[s % COLORS.len()]
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + group_w * 0.4,
            HEIGHT - BOTTOM + 16.0,
            esc(cat)
        );
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| n.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// One point of a [`scatter_chart`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapPoint {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Index into the chart's classes (its colour).
    pub class: usize,
    /// Drawn as a square instead of a circle (a second kind of point).
    pub square: bool,
}

/// A scatter chart of points coloured by class (the legend names the classes); squares
/// and circles tell two kinds of points apart.
pub fn scatter_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    classes: &[String],
    points: &[MapPoint],
) -> String {
    let finite = || points.iter().filter(|p| p.x.is_finite() && p.y.is_finite());
    let (x_lo, x_hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.x), hi.max(p.x))
    });
    let (y_lo, y_hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.y), hi.max(p.y))
    });
    let (x_lo, x_hi) = padded(x_lo, x_hi);
    let (y_lo, y_hi) = padded(y_lo, y_hi);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut out = String::new();
    header(&mut out, title, x_label, y_label);
    y_axis(&mut out, y_lo, y_hi);
    for p in finite() {
        let x = LEFT + (p.x - x_lo) / (x_hi - x_lo) * plot_w;
        let y = TOP + (1.0 - (p.y - y_lo) / (y_hi - y_lo)) * plot_h;
        let color = COLORS[p.class % COLORS.len()];
        if p.square {
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="6" height="6" fill="{color}" stroke="#333" stroke-width="0.5"/>"##,
                x - 3.0,
                y - 3.0
            );
        } else {
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.2" fill="{color}" fill-opacity="0.6"/>"#
            );
        }
    }
    let names: Vec<&str> = classes.iter().map(String::as_str).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A heatmap of `values[row][column]` in [0, 1] (darker is larger), each cell labelled
/// with its value; `row_notes` (as many as rows, may be empty) are printed after the
/// row names.
pub fn heatmap(
    title: &str,
    rows: &[String],
    row_notes: &[String],
    columns: &[String],
    values: &[Vec<f64>],
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let label_w = 110.0;
    let cell_w = (plot_w + RIGHT - label_w - 20.0) / columns.len().max(1) as f64;
    let cell_h = plot_h / rows.len().max(1) as f64;
    let mut out = String::new();
    header(&mut out, title, "", "");
    for (c, name) in columns.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + label_w + cell_w * (c as f64 + 0.5),
            HEIGHT - BOTTOM + 16.0,
            esc(name)
        );
    }
    for (r, name) in rows.iter().enumerate() {
        let y = TOP + cell_h * r as f64;
        let note = row_notes.get(r).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} {}</text>"#,
            LEFT + label_w - 6.0,
            y + cell_h / 2.0 + 4.0,
            esc(name),
            esc(note)
        );
        for c in 0..columns.len() {
            let v = values
                .get(r)
                .and_then(|row| row.get(c))
                .copied()
                .unwrap_or(f64::NAN);
            let shade = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            // White to dark blue.
            let channel = |full: f64| (255.0 - (255.0 - full) * shade).round() as u8;
            let fill = format!(
                "#{:02x}{:02x}{:02x}",
                channel(31.0),
                channel(70.0),
                channel(140.0)
            );
            let text = if shade > 0.5 { "white" } else { "black" };
            let label = if v.is_finite() {
                format!("{v:.3}")
            } else {
                "n/a".into()
            };
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#fff"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{text}">{label}</text>"##,
                LEFT + label_w + cell_w * c as f64,
                cell_w,
                cell_h,
                LEFT + label_w + cell_w * (c as f64 + 0.5),
                y + cell_h / 2.0 + 4.0,
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_and_escape_text() {
        let svg = line_chart(
            "a < b",
            "x",
            "y",
            &[("s&t".into(), vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)])],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("s&amp;t"));
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "the NaN point is left out"
        );
        let bars = bar_chart(
            "w",
            "weight",
            &["MSPA".into()],
            &[("visual".into(), vec![0.5]), ("audio".into(), vec![0.2])],
        );
        assert_eq!(
            bars.matches("<rect").count(),
            1 + 2 + 2,
            "background, two bars, two legend keys"
        );
    }

    #[test]
    fn maps_and_heatmaps_draw_every_point_and_cell() {
        let points = [
            MapPoint {
                x: 0.0,
                y: 1.0,
                class: 0,
                square: false,
            },
            MapPoint {
                x: 2.0,
                y: -1.0,
                class: 1,
                square: true,
            },
            MapPoint {
                x: f64::NAN,
                y: 0.0,
                class: 1,
                square: false,
            },
        ];
        let svg = scatter_chart("map", "pc 1", "pc 2", &["a".into(), "b<".into()], &points);
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "the NaN point is left out"
        );
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 1 + 2,
            "background, square, legend"
        );
        assert!(svg.contains("b&lt;"));
        let heat = heatmap(
            "attention",
            &["audio".into(), "visuals".into()],
            &["(n = 3)".into(), "(n = 4)".into()],
            &["visual".into(), "audio".into(), "text".into()],
            &[vec![0.1, 0.8, 0.1], vec![0.5, f64::NAN, 0.2]],
        );
        assert_eq!(heat.matches("<rect").count(), 1 + 6);
        assert!(heat.contains("0.800") && heat.contains("n/a") && heat.contains("(n = 4)"));
        assert!(heat.trim_end().ends_with("</svg>"));
    }
}
