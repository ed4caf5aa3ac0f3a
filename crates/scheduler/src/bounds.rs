//! Integer bounds and totals: one rule for every caller and every backend.
//!
//! Every integer the scheduler takes (ids, sizes, fSeqs, block ids, counts, limits, times) lies in
//! the range of a signed 64-bit integer; unsigned values go from 0 to [`MAX`] = 2^63-1. The
//! scheduler core checks them once, at its entry points and in the catalogue's validation
//! ([`crate::catalogue::CatalogueSnapshot::apply`] and `validate`), before any backend sees them: a
//! larger value is `invalid_argument` naming the field, the same on every backend, and no backend
//! keeps a limit of its own.
//!
//! Totals (bytes and files queued per queue, per pool, per mount, disk-space reservations) are
//! sums of bounded values and may pass [`MAX`]. They are kept exactly in a wider type (`u128` in
//! Rust, `numeric` in SQL), so that removing what was added is exact, and shown clamped to [`MAX`]
//! ([`clamp`]): they never wrap and never fail.

use crate::error::{Error, Result};

/// The largest unsigned value the scheduler accepts and shows: 2^63-1.
pub const MAX: u64 = i64::MAX as u64;

/// Checks that `value` of `field` is at most [`MAX`].
pub fn check(field: &str, value: u64) -> Result<()> {
    if value > MAX {
        return Err(Error::invalid(format!(
            "{field} {value} is larger than 2^63-1 ({MAX}), the largest value accepted"
        )));
    }
    Ok(())
}

/// [`check`] for an optional value.
pub fn check_opt(field: &str, value: Option<u64>) -> Result<()> {
    value.map_or(Ok(()), |v| check(field, v))
}

/// A total as shown: the exact sum, or [`MAX`] when it passes it.
pub fn clamp(total: u128) -> u64 {
    total.min(MAX as u128) as u64
}

/// The sum of `values`, exact, shown with [`clamp`].
pub fn total(values: impl IntoIterator<Item = u64>) -> u64 {
    clamp(values.into_iter().map(u128::from).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_totals() {
        assert!(check("size", MAX).is_ok());
        let e = check("size", MAX + 1).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(e.message.starts_with("size 9223372036854775808 is larger than 2^63-1"), "{e}");
        assert!(check_opt("archive file id", None).is_ok());
        assert_eq!(total([MAX, MAX, MAX]), MAX);
        assert_eq!(total([1, 2, 3]), 6);
        assert_eq!(clamp(u128::from(u64::MAX) * 3), MAX);
    }
}
