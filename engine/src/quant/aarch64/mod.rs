//! aarch64 kernels: NEON, and `sdot` (dotprod) through inline assembly, since stable Rust lacks the
//! dot-product intrinsics.
//!
//! Each `#[target_feature]` function is wrapped in a safe function that is only placed in a table
//! for a tier whose features were detected at run time. The integer kernels are written once,
//! generic over [`idot::I8Dot`], and instantiated per tier; the float kernels need only NEON and
//! serve both tiers.
//!
//! Results: the 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), Q2_K and the float kernels return
//! the scalar reference's bits; Q3_K..Q6_K and the F16/F32 weight dot products sum in another order
//! and differ from it only in float rounding (see `kquants`, `f16`, `f32`). Every `vec_dot_multi`
//! returns its `vec_dot`'s bits per row.

use super::{FloatKernels, Tier, TypeKernels};
use crate::ggml_type::GgmlType;

/// Safe per-tier entry points `neon` / `dotprod` (and the `_multi` variants) of a weight type
/// `$ty` implementing the block trait of driver module `$driver` (`legacy` or `kquants`).
macro_rules! entry_points {
    ($driver:ident, $ty:ident) => {
        /// NEON `vec_dot`.
        pub(super) fn neon(n: usize, w: &[u8], a: &[u8]) -> f32 {
            #[target_feature(enable = "neon")]
            unsafe fn imp(n: usize, w: &[u8], a: &[u8]) -> f32 {
                super::$driver::vec_dot::<$ty, super::idot::Neon>(n, w, a)
            }
            // SAFETY: only the Neon and Dotprod tables hold this function, and `kernels_for`
            // hands those out only when the CPU has NEON.
            unsafe { imp(n, w, a) }
        }

        /// Dotprod `vec_dot`.
        pub(super) fn dotprod(n: usize, w: &[u8], a: &[u8]) -> f32 {
            #[target_feature(enable = "neon,dotprod")]
            unsafe fn imp(n: usize, w: &[u8], a: &[u8]) -> f32 {
                super::$driver::vec_dot::<$ty, super::idot::Sdot>(n, w, a)
            }
            // SAFETY: only the Dotprod table holds this function, and `kernels_for` hands it out
            // only when the CPU has NEON and the dot-product extension.
            unsafe { imp(n, w, a) }
        }

        /// NEON `vec_dot_multi`.
        pub(super) fn neon_multi(n: usize, w: &[u8], a: &[u8], a_stride: usize, out: &mut [f32]) {
            #[target_feature(enable = "neon")]
            unsafe fn imp(n: usize, w: &[u8], a: &[u8], a_stride: usize, out: &mut [f32]) {
                super::$driver::vec_dot_multi::<$ty, super::idot::Neon>(n, w, a, a_stride, out)
            }
            // SAFETY: as `neon`.
            unsafe { imp(n, w, a, a_stride, out) }
        }

        /// Dotprod `vec_dot_multi`.
        pub(super) fn dotprod_multi(
            n: usize,
            w: &[u8],
            a: &[u8],
            a_stride: usize,
            out: &mut [f32],
        ) {
            #[target_feature(enable = "neon,dotprod")]
            unsafe fn imp(n: usize, w: &[u8], a: &[u8], a_stride: usize, out: &mut [f32]) {
                super::$driver::vec_dot_multi::<$ty, super::idot::Sdot>(n, w, a, a_stride, out)
            }
            // SAFETY: as `dotprod`.
            unsafe { imp(n, w, a, a_stride, out) }
        }
    };
}

mod down_block;
mod f16;
mod f32;
mod fp;
mod idot;
mod kquants;
mod legacy;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod sdot;
#[cfg(test)]
mod tests;

/// A table entry: the scalar `dequantize` (not a hot path) with this module's `vec_dot`
/// (and `vec_dot_multi` where given).
macro_rules! entry {
    ($t:ident, $m:ident, $a:ident, $dot:ident) => {
        TypeKernels {
            dtype: GgmlType::$t,
            dequantize: super::$m::dequantize,
            vec_dot: $m::$dot,
            vec_dot_type: GgmlType::$a,
            vec_dot_multi: None,
        }
    };
    ($t:ident, $m:ident, $a:ident, $dot:ident, $multi:ident) => {
        TypeKernels {
            dtype: GgmlType::$t,
            dequantize: super::$m::dequantize,
            vec_dot: $m::$dot,
            vec_dot_type: GgmlType::$a,
            vec_dot_multi: Some($m::$multi),
        }
    };
}

static NEON: [TypeKernels; 12] = [
    entry!(F32, f32, F32, vec_dot),
    entry!(F16, f16, F16, vec_dot),
    entry!(Q4_0, q4_0, Q8_0, neon, neon_multi),
    entry!(Q4_1, q4_1, Q8_1, neon, neon_multi),
    entry!(Q5_0, q5_0, Q8_0, neon, neon_multi),
    entry!(Q5_1, q5_1, Q8_1, neon, neon_multi),
    entry!(Q8_0, q8_0, Q8_0, neon, neon_multi),
    entry!(Q2_K, q2_k, Q8_K, neon, neon_multi),
    entry!(Q3_K, q3_k, Q8_K, neon, neon_multi),
    entry!(Q4_K, q4_k, Q8_K, neon, neon_multi),
    entry!(Q5_K, q5_k, Q8_K, neon, neon_multi),
    entry!(Q6_K, q6_k, Q8_K, neon, neon_multi),
];

static DOTPROD: [TypeKernels; 12] = [
    entry!(F32, f32, F32, vec_dot),
    entry!(F16, f16, F16, vec_dot),
    entry!(Q4_0, q4_0, Q8_0, dotprod, dotprod_multi),
    entry!(Q4_1, q4_1, Q8_1, dotprod, dotprod_multi),
    entry!(Q5_0, q5_0, Q8_0, dotprod, dotprod_multi),
    entry!(Q5_1, q5_1, Q8_1, dotprod, dotprod_multi),
    entry!(Q8_0, q8_0, Q8_0, dotprod, dotprod_multi),
    entry!(Q2_K, q2_k, Q8_K, dotprod, dotprod_multi),
    entry!(Q3_K, q3_k, Q8_K, dotprod, dotprod_multi),
    entry!(Q4_K, q4_k, Q8_K, dotprod, dotprod_multi),
    entry!(Q5_K, q5_k, Q8_K, dotprod, dotprod_multi),
    entry!(Q6_K, q6_k, Q8_K, dotprod, dotprod_multi),
];

/// The tier's kernels for weight type `t`, if this module has any (BF16 has none yet).
pub(super) fn kernels(tier: Tier, t: GgmlType) -> Option<&'static TypeKernels> {
    let table: &'static [TypeKernels] = match tier {
        Tier::Neon => &NEON,
        Tier::Dotprod => &DOTPROD,
        _ => return None,
    };
    table.iter().find(|k| k.dtype == t)
}

/// The float kernels need only NEON: both aarch64 tiers share them.
static FLOAT: FloatKernels = FloatKernels {
    dot_f32: f32::dot,
    dot_f32_f16: f16::dot_f32_f16,
    axpy_f16: f16::axpy_f16,
    down_nib4: down_block::down_nib4,
    down_i8: down_block::down_i8,
};

/// The tier's float kernels, if this module has any.
pub(super) fn float_kernels(tier: Tier) -> Option<&'static FloatKernels> {
    match tier {
        Tier::Neon | Tier::Dotprod => Some(&FLOAT),
        _ => None,
    }
}
