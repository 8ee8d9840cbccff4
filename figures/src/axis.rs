//! The value axis of a chart, from 0 up: one rule for the page's live charts and the
//! audit's SVG chart (`client audit --chart`).
//!
//! The step between two ticks is the smallest round number (1, 2 or 5 times a power
//! of ten; on the page's charts 2.5 too) at least `max / target`, so an axis has
//! about `target` steps; the axis ends at the first multiple of the step at or above
//! `max`, and has at least one step.

/// The multiples of a power of ten a step may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// 1, 2 and 5: the audit's SVG chart.
    OneTwoFive,
    /// 1, 2, 2.5 and 5: the page's charts (100 in four steps of 25).
    WithTwoAndAHalf,
}

impl Steps {
    fn multiples(self) -> &'static [f64] {
        match self {
            Steps::OneTwoFive => &[1.0, 2.0, 5.0],
            Steps::WithTwoAndAHalf => &[1.0, 2.0, 2.5, 5.0],
        }
    }
}

/// A multiple within this fraction above a round one is taken as that round one:
/// float error (`0.6 / 3`) does not push a step up to the next.
const TOLERANCE: f64 = 1e-9;

/// The smallest step of `steps` at least `raw`; 1 for a `raw` that is not a
/// positive number.
pub fn nice_step(raw: f64, steps: Steps) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = steps
        .multiples()
        .iter()
        .copied()
        .find(|m| fraction <= m + TOLERANCE)
        .unwrap_or(10.0);
    nice * power
}

/// A value axis from 0: the step between its ticks and its top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub step: f64,
    /// The first multiple of the step at or above the highest value; at least one step.
    pub top: f64,
}

impl Scale {
    /// About `target` steps of `steps` up to `max` (a `max` that is not a positive
    /// number gives one step of 1).
    pub fn new(max: f64, target: usize, steps: Steps) -> Scale {
        let max = positive(max);
        Scale::with_step(max, nice_step(max / target.max(1) as f64, steps))
    }

    /// Steps of `step` (a positive number) up to `max`.
    pub fn with_step(max: f64, step: f64) -> Scale {
        let top = ((positive(max) / step).ceil() * step).max(step);
        Scale { step, top }
    }

    /// The ticks' values: 0, step, 2 step, ... up to the top.
    pub fn ticks(&self) -> impl Iterator<Item = f64> {
        let step = self.step;
        let n = (self.top / step).round() as usize;
        (0..=n).map(move |i| i as f64 * step)
    }

    /// Decimals needed to print every tick exactly (at most 6): 0 for a step of 5,
    /// 1 for 0.5, 2 for 0.25.
    pub fn decimals(&self) -> usize {
        let step = self.step;
        let mut d = 0;
        let mut s = step;
        while d < 6 && (s - s.round()).abs() > 1e-6 * step.max(1.0) {
            s *= 10.0;
            d += 1;
        }
        d
    }
}

/// `v` if it is a positive number, else 0.
fn positive(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Steps = Steps::WithTwoAndAHalf;
    const AUDIT: Steps = Steps::OneTwoFive;

    fn ticks(s: Scale) -> Vec<f64> {
        s.ticks().collect()
    }

    #[test]
    fn steps_are_one_two_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.7, PAGE), 1.0);
        assert_eq!(nice_step(1.0, PAGE), 1.0);
        assert_eq!(nice_step(1.3, PAGE), 2.0);
        assert_eq!(nice_step(2.2, PAGE), 2.5);
        assert_eq!(nice_step(3.0, PAGE), 5.0);
        assert_eq!(nice_step(7.0, PAGE), 10.0);
        assert_eq!(nice_step(8.75, PAGE), 10.0);
        assert_eq!(nice_step(130.0, PAGE), 200.0);
        assert!((nice_step(0.03, PAGE) - 0.05).abs() < 1e-12);
        assert_eq!(nice_step(0.0, PAGE), 1.0);
        assert_eq!(nice_step(-3.0, PAGE), 1.0);
        assert_eq!(nice_step(f64::NAN, PAGE), 1.0);
        assert_eq!(nice_step(f64::INFINITY, PAGE), 1.0);
    }

    #[test]
    fn the_audit_chart_never_steps_by_two_and_a_half() {
        assert_eq!(nice_step(2.2, AUDIT), 5.0);
        assert_eq!(nice_step(22.0, AUDIT), 50.0);
        assert_eq!(nice_step(2.0, AUDIT), 2.0);
        // The audit chart's own cases (client/src/audit/chart.rs).
        assert_eq!(Scale::new(100.0, 5, AUDIT).step, 20.0);
        assert_eq!(Scale::new(5000.0, 5, AUDIT).step, 1000.0);
        assert_eq!(Scale::new(7.3, 5, AUDIT).step, 2.0);
    }

    #[test]
    fn float_error_does_not_push_a_step_up() {
        assert_eq!(nice_step(0.6 / 3.0, AUDIT), 0.2, "0.19999999999999998");
        assert_eq!(nice_step(2.0 + 1e-12, AUDIT), 2.0);
        assert_eq!(nice_step(2.0 + 1e-6, AUDIT), 5.0);
    }

    #[test]
    fn the_top_is_the_first_tick_at_or_above_the_max() {
        let s = Scale::new(35.0, 4, PAGE);
        assert_eq!((s.step, s.top), (10.0, 40.0));
        assert_eq!(ticks(s), [0.0, 10.0, 20.0, 30.0, 40.0]);
        let s = Scale::new(40.0, 4, PAGE);
        assert_eq!((s.step, s.top), (10.0, 40.0), "a max on a tick is the top");
        let s = Scale::new(100.0, 4, PAGE);
        assert_eq!(ticks(s), [0.0, 25.0, 50.0, 75.0, 100.0]);
        let s = Scale::new(7.3, 5, AUDIT);
        assert_eq!(ticks(s), [0.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn an_empty_axis_has_one_step() {
        for max in [0.0, -1.0, f64::NAN] {
            let s = Scale::new(max, 4, PAGE);
            assert_eq!((s.step, s.top), (1.0, 1.0));
            assert_eq!(ticks(s), [0.0, 1.0]);
        }
        let s = Scale::with_step(0.0, 5.0);
        assert_eq!((s.step, s.top), (5.0, 5.0));
        let s = Scale::with_step(12.0, 5.0);
        assert_eq!(ticks(s), [0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn decimals_print_every_tick_exactly() {
        let d = |max, target| Scale::new(max, target, PAGE).decimals();
        assert_eq!(d(35.0, 4), 0);
        assert_eq!(d(1.2, 4), 1, "steps of 0.5");
        assert_eq!(d(0.9, 4), 2, "steps of 0.25");
        assert_eq!(d(0.003, 3), 3, "steps of 0.001");
    }
}
