//! The range of sparsity levels the engine accepts, in one place: the command line's `--sparsity`,
//! the chat's `/sparsity` and [`super::SparseFfn`] all check against it, so a value is refused the
//! same way wherever it is typed, and before any work (a calibration) is done for it.

use crate::error::{Error, Result};

/// The most sparsity the engine takes (profiles hold thresholds up to 0.95; the engine has
/// always stopped at 0.9, where answers are already much degraded).
pub const MAX_LEVEL: f32 = 0.9;

/// Checks a target share of skipped FFN neurons: 0 (dense and exact) to [`MAX_LEVEL`]. NaN and
/// infinities are refused like any other value outside the range.
pub fn check_level(level: f32) -> Result<()> {
    if !(0.0..=MAX_LEVEL).contains(&level) {
        return Err(Error::Invalid(format!(
            "sparsity {level} is out of range: use a value from 0 (dense, exact) to {MAX_LEVEL}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_range_and_nothing_else() {
        for ok in [0.0, 0.05, 0.5, MAX_LEVEL] {
            assert!(check_level(ok).is_ok(), "{ok}");
        }
        for bad in [
            -0.1,
            0.91,
            1.0,
            1.5,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let e = check_level(bad).unwrap_err().to_string();
            assert!(
                e.contains("out of range") && e.contains("0.9"),
                "{bad}: {e}"
            );
        }
    }
}
