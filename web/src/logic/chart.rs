//! Chart scaling and geometry: value axes (counts, and bytes in binary units) on the
//! `figures` crate's axis rule, the time axis of the window, and the SVG polyline
//! points of a series (broken where the server was not answering).

use figures::axis::{Scale, Steps};

use super::format::{self, byte_unit};
use super::series::{Sample, GAP_MS};

/// One tick of an axis: where it is (in the axis's values) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

/// A value axis from 0 to `max`, with its ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub max: f64,
    pub ticks: Vec<Tick>,
    /// The unit the labels are in (`MiB`, `connections`...), for the axis title.
    pub unit: String,
}

/// The page's charts step by 1, 2, 2.5 or 5 times a power of ten (the `figures`
/// crate's axis rule, which the audit's SVG chart follows with 1, 2 and 5).
const STEPS: Steps = Steps::WithTwoAndAHalf;

/// An axis for counts (slabs, connections): whole-number ticks from 0.
pub fn count_axis(max: f64, target: usize, unit: &str) -> Axis {
    let mut scale = Scale::new(max, target, STEPS);
    if scale.step < 1.0 {
        scale = Scale::with_step(max, 1.0);
    }
    if scale.step.fract() > 0.0 {
        // 2.5 would print half connections: 5 instead.
        scale = Scale::with_step(max, scale.step * 2.0);
    }
    Axis {
        max: scale.top,
        ticks: scale
            .ticks()
            .map(|v| Tick {
                value: v,
                label: format!("{v:.0}"),
            })
            .collect(),
        unit: unit.to_string(),
    }
}

/// An axis for bytes: a binary unit chosen from `max`, nice ticks in that unit.
pub fn bytes_axis(max: f64, target: usize) -> Axis {
    let (unit, size) = byte_unit(max.max(1024.0));
    let scale = Scale::new(max / size, target, STEPS);
    let d = scale.decimals();
    Axis {
        max: scale.top * size,
        ticks: scale
            .ticks()
            .enumerate()
            .map(|(i, v)| Tick {
                value: v * size,
                label: if i == 0 {
                    "0".to_string()
                } else {
                    format!("{v:.d$} {unit}")
                },
            })
            .collect(),
        unit: unit.to_string(),
    }
}

/// Ticks of the time axis over the last `window_ms`: values are ms before now
/// (negative), labelled `-5 min` ... `now`, about `target` of them.
pub fn time_ticks(window_ms: f64, target: usize) -> Vec<Tick> {
    const STEPS_S: [f64; 9] = [5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];
    let window_s = (window_ms / 1000.0).max(1.0);
    let raw = window_s / target.max(1) as f64;
    let step = STEPS_S
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or(3600.0);
    let n = (window_s / step).floor() as usize;
    (0..=n)
        .rev()
        .map(|i| {
            let s = i as f64 * step;
            Tick {
                value: -s * 1000.0,
                label: if i == 0 {
                    "now".to_string()
                } else if step >= 60.0 {
                    format!("-{} min", format::number(s / 60.0))
                } else if s >= 60.0 && s % 60.0 == 0.0 {
                    format!("-{} min", s / 60.0)
                } else {
                    format!("-{s:.0} s")
                },
            }
        })
        .collect()
}

/// The plotting area of a chart panel, in SVG user units, and the values it spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    /// Times at the left and right edges, ms since the Unix epoch.
    pub t_start: f64,
    pub t_end: f64,
    /// The value at the top edge (the bottom is 0).
    pub y_max: f64,
}

impl Frame {
    pub fn x(&self, t_ms: f64) -> f64 {
        let span = (self.t_end - self.t_start).max(1.0);
        self.left + ((t_ms - self.t_start) / span).clamp(0.0, 1.0) * self.width
    }

    pub fn y(&self, v: f64) -> f64 {
        let max = if self.y_max > 0.0 { self.y_max } else { 1.0 };
        self.top + self.height - (v / max).clamp(0.0, 1.0) * self.height
    }

    pub fn bottom(&self) -> f64 {
        self.top + self.height
    }

    pub fn right(&self) -> f64 {
        self.left + self.width
    }
}

/// SVG `points` of a figure of the samples within the frame, one string per run of
/// samples without a gap longer than [`GAP_MS`] and without a sample that lacks the
/// figure (unreadable: a gap in the line, never a point at 0).
pub fn polylines<'a>(
    samples: impl IntoIterator<Item = &'a Sample>,
    frame: &Frame,
    figure: impl Fn(&Sample) -> Option<u64>,
) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut last_t: Option<f64> = None;
    for s in samples {
        if s.t_ms < frame.t_start - GAP_MS {
            continue;
        }
        if last_t.is_some_and(|t| s.t_ms - t > GAP_MS) && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        let Some(value) = figure(s) else {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            last_t = Some(s.t_ms);
            continue;
        };
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&format!(
            "{:.1},{:.1}",
            frame.x(s.t_ms),
            frame.y(value as f64)
        ));
        last_t = Some(s.t_ms);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fixtures::sample;

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn count_axes_have_whole_ticks_covering_the_max() {
        let a = count_axis(0.0, 4, "slabs");
        assert_eq!(labels(&a), ["0", "1"]);
        let a = count_axis(3.0, 4, "slabs");
        assert_eq!(labels(&a), ["0", "1", "2", "3"]);
        let a = count_axis(100.0, 4, "connections");
        assert_eq!(labels(&a), ["0", "25", "50", "75", "100"]);
        let a = count_axis(10.0, 4, "slabs");
        assert_eq!(labels(&a), ["0", "5", "10"]);
        let a = count_axis(101.0, 4, "connections");
        assert_eq!(a.max, 150.0);
        assert_eq!(a.unit, "connections");
        assert!(a.ticks.len() <= 8);
    }

    #[test]
    fn byte_axes_pick_a_binary_unit() {
        let mib = 1024.0 * 1024.0;
        let a = bytes_axis(35.0 * mib, 4);
        assert_eq!(labels(&a), ["0", "10 MiB", "20 MiB", "30 MiB", "40 MiB"]);
        assert_eq!(a.max, 40.0 * mib);
        assert_eq!(a.unit, "MiB");
        let a = bytes_axis(1.2 * 1024.0 * mib, 4);
        assert_eq!(labels(&a), ["0", "0.5 GiB", "1.0 GiB", "1.5 GiB"]);
        let a = bytes_axis(0.0, 4);
        assert_eq!(a.unit, "KiB");
        assert_eq!(labels(&a), ["0", "1 KiB"]);
        let a = bytes_axis(3000.0, 3);
        assert_eq!(labels(&a), ["0", "1 KiB", "2 KiB", "3 KiB"]);
    }

    #[test]
    fn the_time_axis_counts_back_to_now() {
        let t = time_ticks(300_000.0, 5);
        let l: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(l, ["-5 min", "-4 min", "-3 min", "-2 min", "-1 min", "now"]);
        assert_eq!(t[0].value, -300_000.0);
        let t = time_ticks(60_000.0, 4);
        let l: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(l, ["-1 min", "-45 s", "-30 s", "-15 s", "now"]);
    }

    #[test]
    fn frames_map_time_and_value_to_the_area() {
        let f = Frame {
            left: 50.0,
            top: 10.0,
            width: 300.0,
            height: 100.0,
            t_start: 0.0,
            t_end: 300_000.0,
            y_max: 200.0,
        };
        assert_eq!(f.x(0.0), 50.0);
        assert_eq!(f.x(150_000.0), 200.0);
        assert_eq!(f.x(999_999.0), 350.0, "clamped to the area");
        assert_eq!(f.y(0.0), 110.0);
        assert_eq!(f.y(200.0), 10.0);
        assert_eq!(f.y(100.0), 60.0);
        assert_eq!((f.right(), f.bottom()), (350.0, 110.0));
    }

    /// A 100 × 100 frame over 100 s and 0..100.
    fn square() -> Frame {
        Frame {
            left: 0.0,
            top: 0.0,
            width: 100.0,
            height: 100.0,
            t_start: 0.0,
            t_end: 100_000.0,
            y_max: 100.0,
        }
    }

    #[test]
    fn polylines_break_where_the_server_did_not_answer() {
        let f = square();
        let samples = [
            sample(0.0, 0),
            sample(1000.0, 50),
            sample(2000.0, 100),
            sample(60_000.0, 100),
            sample(61_000.0, 0),
        ];
        let lines = polylines(&samples, &f, |s| Some(s.retained_bytes));
        assert_eq!(lines, ["0.0,100.0 1.0,50.0 2.0,0.0", "60.0,0.0 61.0,100.0"]);
        assert!(polylines(&[], &f, |s| Some(s.retained_bytes)).is_empty());
    }

    #[test]
    fn polylines_leave_a_gap_where_the_figure_was_unreadable() {
        let f = square();
        let samples: Vec<Sample> = [Some(50), Some(100), None, Some(100), Some(0)]
            .into_iter()
            .enumerate()
            .map(|(i, rss)| Sample {
                rss_bytes: rss,
                ..sample(i as f64 * 1000.0, 0)
            })
            .collect();
        let lines = polylines(&samples, &f, |s| s.rss_bytes);
        assert_eq!(lines, ["0.0,50.0 1.0,0.0", "3.0,0.0 4.0,100.0"]);
        let none = [Sample {
            rss_bytes: None,
            ..sample(0.0, 0)
        }];
        assert!(polylines(&none, &f, |s| s.rss_bytes).is_empty());
    }
}
