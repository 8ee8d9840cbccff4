//! Bytes in binary units (slabs are 1 MiB and 10 MiB): the unit that suits a
//! magnitude, and a figure printed in it with two or three significant digits.

/// The binary units, each 1024 times the one before.
pub const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// The binary unit that suits a magnitude (the largest of [`UNITS`] it reaches one
/// of), with that unit's size in bytes: `(MiB, 1048576.0)` for 35 MiB.
pub fn byte_unit(magnitude: f64) -> (&'static str, f64) {
    let mut i = 0;
    let mut size = 1.0;
    while i + 1 < UNITS.len() && magnitude.abs() >= size * 1024.0 {
        i += 1;
        size *= 1024.0;
    }
    (UNITS[i], size)
}

/// `532 B`, `1.00 KiB`, `64.0 KiB`, `10.0 MiB`, `1.25 GiB`: whole bytes below
/// 1 KiB, then two decimals below 10 of a unit and one above.
pub fn bytes(n: u64) -> String {
    let (unit, size) = byte_unit(n as f64);
    if size == 1.0 {
        return format!("{n} B");
    }
    let v = n as f64 / size;
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(532), "532 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(64 << 10), "64.0 KiB");
        assert_eq!(bytes(10 << 20), "10.0 MiB");
        assert_eq!(bytes(1_342_177_280), "1.25 GiB");
        assert_eq!(bytes(u64::MAX), "16777216.0 TiB", "TiB is the last unit");
    }

    #[test]
    fn the_unit_is_the_largest_the_magnitude_reaches() {
        assert_eq!(byte_unit(0.0), ("B", 1.0));
        assert_eq!(byte_unit(1023.0), ("B", 1.0));
        assert_eq!(byte_unit(1024.0), ("KiB", 1024.0));
        assert_eq!(byte_unit(35.0 * 1048576.0), ("MiB", 1048576.0));
        assert_eq!(byte_unit(-2048.0), ("KiB", 1024.0), "by magnitude");
    }
}
