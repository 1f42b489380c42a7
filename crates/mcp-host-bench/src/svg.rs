//! The charts, written by hand as SVG: latency (log scale) by percentile (tail scale: 0, 90, 99, 99.9), and figures by size on log-log axes (`scale`).

use std::fmt::Write as _;

use crate::report::Series;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: &[&str] = &[
    "#555555", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
];

/// The chart of every series: one line each, with a legend.
pub(crate) fn latency_chart(title: &str, series: &[Series]) -> String {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut min_us, mut max_us) = (f64::MAX, f64::MIN);
    let mut max_tail: f64 = 1.0;
    for &(percentile, us) in points {
        if us > 0.0 {
            min_us = min_us.min(us);
            max_us = max_us.max(us);
        }
        max_tail = max_tail.max(tail(percentile));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_width() / 2.0,
        escape(title)
    );
    if min_us > max_us {
        out.push_str("</svg>\n");
        return out;
    }
    // Steps of 1, 2 and 5 per decade bound the latency axis.
    let low = step_at_or_below(min_us);
    let high = step_at_or_above(max_us);
    let y = |us: f64| {
        TOP + plot_height() * (1.0 - (us.log10() - low.log10()) / (high.log10() - low.log10()))
    };
    let x = |percentile: f64| LEFT + plot_width() * tail(percentile) / max_tail;

    let mut decade = 10f64.powf(low.log10().floor());
    while decade <= high * 1.0001 {
        for step in [1.0, 2.0, 5.0] {
            let value = decade * step;
            if value < low * 0.9999 || value > high * 1.0001 {
                continue;
            }
            let y_pos = y(value);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y_pos:.1}" x2="{:.1}" y2="{y_pos:.1}" stroke="#e0e0e0"/>"##,
                LEFT + plot_width()
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y_pos + 4.0,
                format_us(value)
            );
        }
        decade *= 10.0;
    }
    for (percentile, label) in [
        (0.0, "0"),
        (50.0, "50"),
        (90.0, "90"),
        (99.0, "99"),
        (99.9, "99.9"),
    ] {
        if tail(percentile) > max_tail + 1e-9 {
            continue;
        }
        let x_pos = x(percentile);
        let _ = writeln!(
            out,
            r##"<line x1="{x_pos:.1}" y1="{TOP}" x2="{x_pos:.1}" y2="{:.1}" stroke="#e0e0e0"/>"##,
            TOP + plot_height()
        );
        let _ = writeln!(
            out,
            r#"<text x="{x_pos:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + plot_height() + 16.0
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#888888"/>"##,
        plot_width(),
        plot_height()
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile of sequential tools/call latency</text>"#,
        LEFT + plot_width() / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">latency (µs, log scale)</text>"#,
        TOP + plot_height() / 2.0,
        TOP + plot_height() / 2.0
    );
    for (series_idx, series) in series.iter().enumerate() {
        let color = COLORS[series_idx % COLORS.len()];
        let mut path = String::new();
        for &(percentile, us) in &series.points {
            if us <= 0.0 {
                continue;
            }
            let command = if path.is_empty() { 'M' } else { 'L' };
            let _ = write!(path, "{command}{:.1},{:.1} ", x(percentile), y(us));
        }
        let _ = writeln!(
            out,
            r#"<path d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.trim_end()
        );
        let legend_y = TOP + 10.0 + 22.0 * series_idx as f64;
        let legend_x = LEFT + plot_width() + 16.0;
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/>"#,
            legend_x + 24.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 30.0,
            legend_y + 4.0,
            escape(&series.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Figures by size on log-log axes: one line with dots per series, and for each series marked
/// `linear` a dashed line from its first point with slope 1 (what linear growth would give).
pub(crate) fn scale_chart(
    title: &str,
    x_label: &str,
    series: &[Series],
    linear: &[bool],
) -> String {
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
    };
    let (mut min_x, mut max_x, mut min_y, mut max_y) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points() {
        min_x = min_x.min(x);
        max_x = max_x.max(x);
        min_y = min_y.min(y);
        max_y = max_y.max(y);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_width() / 2.0,
        escape(title)
    );
    if min_x >= max_x {
        out.push_str("</svg>\n");
        return out;
    }
    // The linear references may reach above the data.
    for (series, linear) in series.iter().zip(linear) {
        if let (true, Some(&(x0, y0))) = (*linear, series.points.first()) {
            if x0 > 0.0 && y0 > 0.0 {
                max_y = max_y.max(y0 * max_x / x0);
            }
        }
    }
    let (low_x, high_x) = (step_at_or_below(min_x), step_at_or_above(max_x));
    let (low_y, high_y) = (step_at_or_below(min_y), step_at_or_above(max_y));
    let x = |value: f64| {
        LEFT + plot_width() * (value.log10() - low_x.log10()) / (high_x.log10() - low_x.log10())
    };
    let y = |value: f64| {
        TOP + plot_height()
            * (1.0 - (value.log10() - low_y.log10()) / (high_y.log10() - low_y.log10()))
    };
    let mut decade = 10f64.powf(low_y.log10().floor());
    while decade <= high_y * 1.0001 {
        for step in [1.0, 2.0, 5.0] {
            let value = decade * step;
            if value < low_y * 0.9999 || value > high_y * 1.0001 {
                continue;
            }
            let y_pos = y(value);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y_pos:.1}" x2="{:.1}" y2="{y_pos:.1}" stroke="#e0e0e0"/>"##,
                LEFT + plot_width()
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y_pos + 4.0,
                format_number(value)
            );
        }
        decade *= 10.0;
    }
    let mut sizes: Vec<f64> = points().map(|(x, _)| *x).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    for size in sizes {
        let x_pos = x(size);
        let _ = writeln!(
            out,
            r##"<line x1="{x_pos:.1}" y1="{TOP}" x2="{x_pos:.1}" y2="{:.1}" stroke="#e0e0e0"/>"##,
            TOP + plot_height()
        );
        let _ = writeln!(
            out,
            r#"<text x="{x_pos:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_height() + 16.0,
            format_number(size)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#888888"/>"##,
        plot_width(),
        plot_height()
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log scale)</text>"#,
        LEFT + plot_width() / 2.0,
        HEIGHT - 12.0,
        escape(x_label)
    );
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">each figure in its unit (log scale)</text>"#,
        TOP + plot_height() / 2.0,
        TOP + plot_height() / 2.0
    );
    for (series_idx, (series, linear)) in series.iter().zip(linear).enumerate() {
        let color = COLORS[series_idx % COLORS.len()];
        let mut path = String::new();
        for &(x_value, y_value) in &series.points {
            if x_value <= 0.0 || y_value <= 0.0 {
                continue;
            }
            let command = if path.is_empty() { 'M' } else { 'L' };
            let _ = write!(path, "{command}{:.1},{:.1} ", x(x_value), y(y_value));
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(x_value),
                y(y_value)
            );
        }
        let _ = writeln!(
            out,
            r#"<path d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.trim_end()
        );
        if let (true, Some(&(x0, y0))) = (*linear, series.points.first()) {
            if x0 > 0.0 && y0 > 0.0 {
                let _ = writeln!(
                    out,
                    r#"<path d="M{:.1},{:.1} L{:.1},{:.1}" fill="none" stroke="{color}" stroke-width="1" stroke-dasharray="4 4"/>"#,
                    x(x0),
                    y(y0),
                    x(max_x),
                    y(y0 * max_x / x0)
                );
            }
        }
        let legend_y = TOP + 10.0 + 22.0 * series_idx as f64;
        let legend_x = LEFT + plot_width() + 16.0;
        let _ = writeln!(
            out,
            r#"<line x1="{legend_x:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/>"#,
            legend_x + 24.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 30.0,
            legend_y + 4.0,
            escape(&series.name)
        );
    }
    let legend_y = TOP + 10.0 + 22.0 * series.len() as f64;
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}">dashed: linear growth</text>"#,
        LEFT + plot_width() + 16.0,
        legend_y + 4.0
    );
    out.push_str("</svg>\n");
    out
}

/// The largest of 1, 2 or 5 times a power of ten that is at most `value`.
fn step_at_or_below(value: f64) -> f64 {
    let decade = 10f64.powf(value.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|step| step * decade)
        .find(|candidate| *candidate <= value * 1.0001)
        .unwrap_or(decade)
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `value`.
fn step_at_or_above(value: f64) -> f64 {
    let decade = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * decade)
        .find(|candidate| *candidate >= value * 0.9999)
        .unwrap_or(10.0 * decade)
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// The tail scale: 0 at percentile 0, 1 at 90, 2 at 99, 3 at 99.9.
fn tail(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    -rest.log10()
}

fn format_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", us / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn format_number(value: f64) -> String {
    if value >= 1.0 {
        format!("{value}")
    } else {
        format!("{value:.3}").trim_end_matches('0').to_owned()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_path_per_series() {
        let series = vec![
            Series {
                name: "a".to_owned(),
                points: vec![(0.0, 10.0), (90.0, 20.0), (99.0, 50.0)],
            },
            Series {
                name: "b<c>".to_owned(),
                points: vec![(0.0, 12.0), (90.0, 30.0), (99.0, 80.0)],
            },
        ];
        let svg = latency_chart("t", &series);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<path ").count(), 2);
        assert!(svg.contains("b&lt;c&gt;"));
    }

    #[test]
    fn scale_chart_has_dots_and_references() {
        let series = vec![
            Series {
                name: "start (ms)".to_owned(),
                points: vec![(1.0, 2.0), (10.0, 15.0), (100.0, 300.0)],
            },
            Series {
                name: "p50 (µs)".to_owned(),
                points: vec![(1.0, 30.0), (10.0, 31.0), (100.0, 35.0)],
            },
        ];
        let svg = scale_chart("t", "servers", &series, &[true, false]);
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle ").count(), 6);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
    }

    #[test]
    fn axis_steps() {
        assert!((step_at_or_below(37.0) - 20.0).abs() < 1e-9);
        assert!((step_at_or_below(10.0) - 10.0).abs() < 1e-9);
        assert!((step_at_or_above(210.0) - 500.0).abs() < 1e-9);
        assert!((step_at_or_above(180.0) - 200.0).abs() < 1e-9);
        assert!((step_at_or_above(100.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn tail_scale() {
        assert!(tail(0.0).abs() < 1e-9);
        assert!((tail(90.0) - 1.0).abs() < 1e-9);
        assert!((tail(99.0) - 2.0).abs() < 1e-9);
    }
}
