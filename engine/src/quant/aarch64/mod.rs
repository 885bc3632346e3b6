//! aarch64 kernels: NEON, and `sdot` (dotprod) through inline assembly, since stable Rust lacks the
//! dot-product intrinsics.
//!
//! Each `#[target_feature]` function is wrapped in a safe function that is only placed in a table
//! for a tier whose features were detected at run time.

use super::{FloatKernels, Tier, TypeKernels};
use crate::ggml_type::GgmlType;

/// The tier's kernels for weight type `t`, if this module has any.
pub(super) fn kernels(_tier: Tier, _t: GgmlType) -> Option<&'static TypeKernels> {
    None
}

/// The tier's float kernels, if this module has any.
pub(super) fn float_kernels(_tier: Tier) -> Option<&'static FloatKernels> {
    None
}
