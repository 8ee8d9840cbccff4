//! Numbers as the page prints them: bytes in binary units (slabs are 1 MiB and
//! 10 MiB: [`bytes`], the `figures` crate's rule), signed differences, durations,
//! ratios.

pub use figures::bytes::{byte_unit, bytes};

/// A difference in bytes with its sign: `+10.0 MiB`, `-532 B`, `±0 B`.
pub fn signed_bytes(n: i64) -> String {
    match n.signum() {
        0 => "±0 B".to_string(),
        1 => format!("+{}", bytes(n.unsigned_abs())),
        _ => format!("-{}", bytes(n.unsigned_abs())),
    }
}

/// A difference of a count with its sign: `+3`, `-1`, `±0`.
pub fn signed(n: i64) -> String {
    match n.signum() {
        0 => "±0".to_string(),
        1 => format!("+{n}"),
        _ => n.to_string(),
    }
}

/// `b - a` as a signed number, saturating.
pub fn delta(a: u64, b: u64) -> i64 {
    let d = i128::from(b) - i128::from(a);
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// `950 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 && (ms / 1000) % 60 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// How many bytes each referenced byte keeps alive: `16384×`, or `-` when nothing is referenced.
pub fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() => {
            if r >= 100.0 {
                format!("{r:.0}×")
            } else {
                format!("{r:.1}×")
            }
        }
        _ => "-".to_string(),
    }
}

/// `1`, `1.5`, `0.25`: a rate without needless zeros.
pub fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A list of ids, the first `max` of them, then how many more: `4, 5, 6 and 17 more`.
pub fn id_list(ids: &[u64], max: usize) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = ids.iter().take(max).map(|id| format!("#{id}")).collect();
    match ids.len().saturating_sub(max) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// A server's stack as its status shows it: `slab`, `warp`, or `-` when its
/// snapshot says none (`settings.stack` null).
pub fn stack_name(stack: Option<snapshot::Stack>) -> &'static str {
    stack.map(|s| s.as_str()).unwrap_or("-")
}

/// A memory figure of a snapshot's process (`snapshot::figure::RSS`, ...) in bytes,
/// or `unreadable: REASON` with the reason the snapshot gives: never 0 B.
pub fn figure_bytes(process: &snapshot::Process, figure: &str) -> String {
    match process.figure(figure) {
        Some(v) => bytes(v),
        None => format!("unreadable: {}", process.why_unreadable(figure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapshot::figure;

    #[test]
    fn an_unreadable_figure_reads_as_unreadable_with_its_reason() {
        let mut s = crate::logic::fixtures::snapshot(&[], 0);
        assert_eq!(figure_bytes(&s.process, figure::RSS), "50.0 MiB");
        s.process.rss_bytes = None;
        s.process.unreadable = vec![snapshot::Unreadable {
            figure: figure::RSS.into(),
            reason: "reading /proc/self/status: Permission denied".into(),
        }];
        assert_eq!(
            figure_bytes(&s.process, figure::RSS),
            "unreadable: reading /proc/self/status: Permission denied"
        );
        s.process.allocator.resident_bytes = None;
        assert_eq!(
            figure_bytes(&s.process, figure::RESIDENT),
            "unreadable: no reason recorded"
        );
    }

    /// Signed differences in the units of `figures::bytes` (tested there).
    #[test]
    fn signed_bytes_use_binary_units() {
        assert_eq!(signed_bytes(-(10 << 20)), "-10.0 MiB");
        assert_eq!(signed_bytes(1 << 20), "+1.00 MiB");
        assert_eq!(signed_bytes(0), "±0 B");
    }

    #[test]
    fn deltas_and_counts() {
        assert_eq!(delta(5, 3), -2);
        assert_eq!(delta(0, u64::MAX), i64::MAX);
        assert_eq!(signed(3), "+3");
        assert_eq!(signed(-3), "-3");
        assert_eq!(signed(0), "±0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2.0), "2");
        assert_eq!(id_list(&[4, 5, 6], 2), "#4, #5 and 1 more");
        assert_eq!(id_list(&[], 2), "none");
    }

    #[test]
    fn durations_and_ratios() {
        assert_eq!(duration_ms(950), "950 ms");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
        assert_eq!(duration_ms(300_000), "5 min");
        assert_eq!(duration_ms(7_380_000), "2 h 03 min");
        assert_eq!(ratio(Some(16384.0)), "16384×");
        assert_eq!(ratio(Some(1.5)), "1.5×");
        assert_eq!(ratio(None), "-");
    }

    #[test]
    fn stacks_print_by_name_and_null_as_a_dash() {
        assert_eq!(stack_name(Some(snapshot::Stack::Warp)), "warp");
        assert_eq!(stack_name(Some(snapshot::Stack::Slab)), "slab");
        assert_eq!(stack_name(None), "-");
    }
}
