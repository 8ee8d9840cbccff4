//! The audit's chart (`--chart FILE.svg`): RSS against connections, one panel per
//! audited process, one line per step (idle, after one message each, after the
//! traffic, after closing). A small SVG written by hand: every point is a reading
//! of the report, nothing is smoothed or fitted.

use figures::axis::{Scale, Steps};

use super::report::{AuditReport, Step};

const PANEL_W: f64 = 520.0;
const PANEL_H: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 48.0;
/// About this many ticks on each axis, each step 1, 2 or 5 times a power of ten (the
/// `figures` crate's axis rule, the page's charts' too).
const TICKS: usize = 5;
const STEPS: Steps = Steps::OneTwoFive;

/// The steps drawn: colour, stroke width, dashes, legend label. Widest first and
/// narrowing, so that lines lying on one another (a step that changed nothing)
/// all stay visible.
const LINES: [(Step, &str, f64, &str, &str); 4] = [
    (Step::Idle, "#1f77b4", 7.0, "", "idle"),
    (
        Step::AfterMessage,
        "#ff7f0e",
        4.0,
        "",
        "after one message each",
    ),
    (Step::AfterTraffic, "#d62728", 1.8, "", "after the traffic"),
    (
        Step::AfterClose,
        "#2ca02c",
        2.5,
        "6 4",
        "after closing them (at the level closed)",
    ),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The points of one step's line for process `i`: (connections, RSS bytes).
/// The idle line starts at the reading before the first level (0 connections).
pub fn points(r: &AuditReport, i: usize, step: Step) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if step == Step::Idle {
        if let Some(p) = r
            .levels
            .first()
            .and_then(|l| l.processes.get(i))
            .and_then(|p| p.before_rss_bytes)
        {
            out.push((0, p));
        }
    }
    for level in &r.levels {
        if let Some(rss) = level.processes.get(i).and_then(|p| p.rss_at(step)) {
            out.push((level.connections, rss));
        }
    }
    out
}

/// The SVG of the report's chart.
pub fn svg(r: &AuditReport) -> String {
    let n = r.processes.len().max(1);
    let width = PANEL_W * n as f64;
    let height = PANEL_H + 76.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    s.push_str(&format!(
        "<text x=\"12\" y=\"20\" font-size=\"14\" font-weight=\"bold\">RSS against open websockets: audit of {}</text>\n",
        escape(&r.target)
    ));
    for (i, proc_) in r.processes.iter().enumerate() {
        let x0 = PANEL_W * i as f64;
        let all: Vec<(u64, u64)> = LINES
            .iter()
            .flat_map(|(step, ..)| points(r, i, *step))
            .collect();
        let max_x = all.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
        let max_y = all.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64 / 1e6;
        let (y_axis, x_axis) = (
            Scale::new(max_y, TICKS, STEPS),
            Scale::new(max_x, TICKS, STEPS),
        );
        let (top_y, right_x) = (y_axis.top, x_axis.top);
        let (pw, ph) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
        let px = |c: f64| x0 + LEFT + c / right_x * pw;
        let py = |mb: f64| TOP + 24.0 + ph - mb / top_y * ph;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">process {} ({})</text>\n",
            x0 + LEFT,
            TOP + 14.0,
            proc_.pid,
            escape(&proc_.name)
        ));
        // Axes and grid.
        for t in y_axis.ticks() {
            let y = py(t);
            s.push_str(&format!(
                "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                px(0.0),
                px(right_x),
                px(0.0) - 6.0,
                y + 4.0,
                trim(t)
            ));
        }
        for c in x_axis.ticks() {
            let x = px(c);
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                py(0.0),
                py(top_y),
                py(0.0) + 16.0,
                trim(c)
            ));
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">websockets open</text>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">RSS, MB</text>\n",
            px(right_x / 2.0),
            py(0.0) + 34.0,
            x0 + 16.0,
            py(top_y / 2.0),
            x0 + 16.0,
            py(top_y / 2.0)
        ));
        for (step, colour, width, dash, _) in LINES {
            let pts = points(r, i, step);
            let coords: Vec<String> = pts
                .iter()
                .map(|(c, b)| format!("{:.1},{:.1}", px(*c as f64), py(*b as f64 / 1e6)))
                .collect();
            if coords.len() > 1 {
                s.push_str(&format!(
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" \
                     stroke-dasharray=\"{dash}\" stroke-opacity=\"0.85\" points=\"{}\"/>\n",
                    coords.join(" ")
                ));
            }
            for (c, b) in &pts {
                s.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{:.1}\" fill=\"{colour}\"><title>{}: {} connections, {:.1} MB</title></circle>\n",
                    px(*c as f64),
                    py(*b as f64 / 1e6),
                    (width / 2.0 + 1.5),
                    step.name(),
                    c,
                    *b as f64 / 1e6
                ));
            }
        }
    }
    // The legend, under the panels: two entries a row.
    for (k, (_, colour, width, dash, label)) in LINES.iter().enumerate() {
        let x = 12.0 + 260.0 * (k % 2) as f64;
        let y = PANEL_H + 30.0 + 20.0 * (k / 2) as f64;
        s.push_str(&format!(
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" \
             stroke-width=\"{width}\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{}\" y=\"{y}\">{label}</text>\n",
            y - 4.0,
            x + 22.0,
            y - 4.0,
            x + 28.0
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// A tick label without a useless fraction.
fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::measure::{ProcessFigures, Reading, Watched};
    use super::super::report::{AuditReport, AuditSettings};
    use super::*;

    #[test]
    fn one_point_per_reading_and_a_valid_svg() {
        let w = [Watched {
            pid: 9,
            name: "a<b".into(),
        }];
        let settings = AuditSettings {
            levels: vec![10, 20],
            rate: 1.0,
            message_size: 1,
            traffic_bytes: 1,
            traffic_message_size: 1,
            settle_max_secs: 1.0,
            head_probe_header_bytes: None,
        };
        let mut r = AuditReport::new("ws://h/", settings, &w);
        let read = |rss: u64| Reading {
            processes: vec![ProcessFigures {
                pid: 9,
                rss_bytes: rss,
                pss_bytes: None,
                children: 0,
            }],
            sockstat: None,
        };
        for (n, base) in [(10, 5_000_000), (20, 6_000_000)] {
            r.begin_level(n);
            r.record(Step::Before, &read(base), true);
            r.record(Step::Idle, &read(base + 1_000_000), true);
            r.record(Step::AfterMessage, &read(base + 1_100_000), true);
        }
        assert_eq!(
            points(&r, 0, Step::Idle),
            vec![(0, 5_000_000), (10, 6_000_000), (20, 7_000_000)]
        );
        assert_eq!(points(&r, 0, Step::AfterTraffic), vec![]);
        let svg = svg(&r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("process 9 (a&lt;b)"));
        // 3 idle points and 2 after-message points.
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn ticks_are_round() {
        let tick_step = |max| Scale::new(max, TICKS, STEPS).step;
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(5000.0), 1000.0);
        assert_eq!(tick_step(7.3), 2.0);
    }
}
