//! The decode-vs-context plot (`decode_vs_context.svg`): a panel per model, a line per
//! engine and dtype, and the floors.

use std::fmt::Write as _;

use crate::bench::report::{ModelRun, Point, Report, OURS};

impl Report {
    /// Decode tokens/s against context length, one panel per model, as a standalone SVG.
    pub fn svg(&self) -> String {
        let mut models: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
        }
        let (pw, ph) = (560.0, 380.0);
        let width = pw * models.len().max(1) as f64;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{ph}\" viewBox=\"0 0 {width} {ph}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for (i, model) in models.iter().enumerate() {
            let runs: Vec<&ModelRun> = self.runs.iter().filter(|r| r.model == *model).collect();
            panel(&mut s, i as f64 * pw, pw, ph, model, &runs);
        }
        s.push_str("</svg>\n");
        s
    }
}

/// An engine's colour, a shade of it for its `nth` variant.
pub(super) fn color(engine: &str, nth: usize) -> &'static str {
    let shades: &[&str] = match engine {
        OURS => &["#d62728", "#ff7f0e", "#8c564b"],
        "transformers" => &["#1f77b4"],
        "llama.cpp" => &["#2ca02c", "#17becf", "#bcbd22"],
        _ => &["#9467bd"],
    };
    shades[nth % shades.len()]
}

fn dash(dtype: &str) -> &'static str {
    if dtype == "f32" {
        " stroke-dasharray=\"7 4\""
    } else {
        ""
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum and tick step covering `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn panel(s: &mut String, x0: f64, w: f64, h: f64, model: &str, runs: &[&ModelRun]) {
    // Series: (label, color, dash, points); an engine's variants in the order first seen.
    let mut series: Vec<(String, &str, &str, &[Point])> = Vec::new();
    let mut variants: Vec<(&str, Option<&str>)> = Vec::new();
    for run in runs {
        for e in run.engines.iter().filter(|e| !e.sweep.is_empty()) {
            let key = (e.engine.as_str(), e.variant.as_deref());
            if !variants.contains(&key) {
                variants.push(key);
            }
            let nth = variants
                .iter()
                .filter(|(engine, _)| *engine == key.0)
                .position(|&k| k == key)
                .unwrap_or(0);
            series.push((
                format!("{} {}", e.label(), run.dtype),
                color(&e.engine, nth),
                dash(&run.dtype),
                &e.sweep,
            ));
        }
        if run.bandwidth_bound && !run.sweep_floor.is_empty() {
            series.push((
                format!("floor {}", run.dtype),
                "#7f7f7f",
                dash(&run.dtype),
                &run.sweep_floor,
            ));
        }
    }
    // The legend's column fits the longest label (about 7 px a character).
    let longest = series.iter().map(|(l, _, _, _)| l.chars().count()).max();
    let legend = (50.0 + 7.0 * longest.unwrap_or(0) as f64).max(150.0);
    let (left, right, top, bottom) = (x0 + 64.0, x0 + w - legend, 36.0, h - 48.0);
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Gemma 3 {}: decode tokens/s against context</text>",
        x0 + 16.0,
        escape(model)
    );
    let points = series.iter().flat_map(|(_, _, _, p)| p.iter());
    let (mut cmin, mut cmax, mut ymax) = (usize::MAX, 0usize, 0f64);
    for p in points {
        cmin = cmin.min(p.context.max(1));
        cmax = cmax.max(p.context.max(1));
        if p.decode_tok_s.is_finite() {
            ymax = ymax.max(p.decode_tok_s);
        }
    }
    if cmax == 0 {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">no sweep measured</text>",
            left,
            (top + bottom) / 2.0
        );
        return;
    }
    let (lmin, mut lmax) = ((cmin as f64).log2(), (cmax as f64).log2());
    if lmax - lmin < 1e-9 {
        lmax = lmin + 1.0;
    }
    let (ytop, ystep) = nice_axis(ymax);
    let px = |c: usize| left + ((c.max(1) as f64).log2() - lmin) / (lmax - lmin) * (right - left);
    let py = |v: f64| bottom - v.max(0.0) / ytop * (bottom - top);
    // Axes, grid and ticks.
    let _ = writeln!(
        s,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#333\"/>",
        right - left,
        bottom - top
    );
    let mut v = 0.0;
    while v <= ytop + ystep * 1e-6 {
        let y = py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 4.0,
            trim_number(v)
        );
        v += ystep;
    }
    let mut ticks: Vec<usize> = series
        .iter()
        .flat_map(|(_, _, _, p)| p.iter().map(|p| p.context))
        .collect();
    ticks.sort_unstable();
    ticks.dedup();
    for c in ticks {
        let x = px(c);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>",
            bottom + 5.0,
            bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">context (tokens before the decoded ones, log scale)</text>",
        (left + right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate({:.1},{:.1}) rotate(-90)\" text-anchor=\"middle\">decode tokens/s</text>",
        x0 + 16.0,
        (top + bottom) / 2.0
    );
    // Lines and the legend.
    for (i, (label, col, dash, pts)) in series.iter().enumerate() {
        let mut sorted: Vec<&Point> = pts.iter().filter(|p| p.decode_tok_s.is_finite()).collect();
        sorted.sort_by_key(|p| p.context);
        let path: Vec<String> = sorted
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.context), py(p.decode_tok_s)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"{dash}/>",
            path.join(" ")
        );
        for p in &sorted {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{col}\"><title>{} at {}: {:.2} tok/s</title></circle>",
                px(p.context),
                py(p.decode_tok_s),
                escape(label),
                p.context,
                p.decode_tok_s
            );
        }
        let ly = top + 8.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{col}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            right + 10.0,
            right + 34.0,
            right + 40.0,
            ly + 4.0,
            escape(label)
        );
    }
}

fn trim_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_cover_the_maximum_with_round_steps() {
        assert_eq!(nice_axis(23.0), (25.0, 5.0));
        assert_eq!(nice_axis(1.3), (1.5, 0.5));
        assert_eq!(nice_axis(0.9), (1.0, 0.2));
        assert_eq!(nice_axis(980.0), (1000.0, 200.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
    }
}
