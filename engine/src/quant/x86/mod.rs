//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL/VNNI).
//!
//! Each `#[target_feature]` function is wrapped in a safe function that is only placed in a table
//! for a tier whose features were detected at run time. Where AVX-512 has nothing better than
//! AVX2 for a type, its table reuses the AVX2 function (the AVX-512 tier implies AVX2/FMA/F16C).
//! Dequantization stays scalar: it only runs in exact mode and tests, never in the decode loop.
//!
//! Coverage: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 have `vec_dot` and `vec_dot_multi` at both tiers
//! (AVX-512: two blocks per register, `vpdpbusd`); Q2_K..Q6_K have AVX2 `vec_dot` and
//! `vec_dot_multi`, used by both tiers; F32 / F16 / BF16 weights have an AVX2 `vec_dot`; the float
//! kernels of attention and exact mode, and the sparse FFN's down-block kernels, exist at both
//! tiers.

pub(crate) mod avx2;
pub(crate) mod avx512;

use super::{bf16, f16, f32, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0};
use super::{FloatKernels, MultiDot, Tier, TypeKernels};
use crate::ggml_type::GgmlType;
use avx2::blocks;

/// A table entry: `$deq` the (scalar) dequantizer, `$dot` / `$multi` the tier's kernels.
macro_rules! table {
    ($t:ident, $a:ident, $deq:path, $dot:expr, $multi:expr) => {
        TypeKernels {
            dtype: GgmlType::$t,
            dequantize: $deq,
            vec_dot: $dot,
            vec_dot_type: GgmlType::$a,
            vec_dot_multi: $multi,
        }
    };
}

/// Kernels of a 32-element block type at a tier whose legacy module is `$m`.
macro_rules! block32 {
    ($t:ident, $a:ident, $deq:path, $m:ident) => {
        table!(
            $t,
            $a,
            $deq,
            $m::legacy::vec_dot::<blocks::$t>,
            Some($m::legacy::vec_dot_multi::<blocks::$t> as MultiDot)
        )
    };
}

/// Kernels of a k-quant (AVX2, also used by the AVX-512 tier).
macro_rules! kquant {
    ($t:ident, $m:ident, $dot:ident, $multi:ident) => {
        table!(
            $t,
            Q8_K,
            $m::dequantize,
            avx2::kquants::$dot,
            Some(avx2::kquants::$multi as MultiDot)
        )
    };
}

mod avx2_tables {
    use super::*;
    pub static F32: TypeKernels = table!(F32, F32, f32::dequantize, avx2::float::vec_dot_f32, None);
    pub static F16: TypeKernels = table!(F16, F16, f16::dequantize, avx2::float::vec_dot_f16, None);
    pub static BF16: TypeKernels = table!(
        BF16,
        BF16,
        bf16::dequantize,
        avx2::float::vec_dot_bf16,
        None
    );
    pub static Q4_0: TypeKernels = block32!(Q4_0, Q8_0, q4_0::dequantize, avx2);
    pub static Q4_1: TypeKernels = block32!(Q4_1, Q8_1, q4_1::dequantize, avx2);
    pub static Q5_0: TypeKernels = block32!(Q5_0, Q8_0, q5_0::dequantize, avx2);
    pub static Q5_1: TypeKernels = block32!(Q5_1, Q8_1, q5_1::dequantize, avx2);
    pub static Q8_0: TypeKernels = block32!(Q8_0, Q8_0, q8_0::dequantize, avx2);
    pub static Q2_K: TypeKernels = kquant!(Q2_K, q2_k, vec_dot_q2_k, vec_dot_multi_q2_k);
    pub static Q3_K: TypeKernels = kquant!(Q3_K, q3_k, vec_dot_q3_k, vec_dot_multi_q3_k);
    pub static Q4_K: TypeKernels = kquant!(Q4_K, q4_k, vec_dot_q4_k, vec_dot_multi_q4_k);
    pub static Q5_K: TypeKernels = kquant!(Q5_K, q5_k, vec_dot_q5_k, vec_dot_multi_q5_k);
    pub static Q6_K: TypeKernels = kquant!(Q6_K, q6_k, vec_dot_q6_k, vec_dot_multi_q6_k);
    pub static FLOAT: FloatKernels = FloatKernels {
        dot_f32: avx2::float::dot_f32,
        dot_f32_f16: avx2::float::dot_f32_f16,
        axpy_f16: avx2::float::axpy_f16,
        down_nib4: avx2::down_block::down_nib4,
        down_i8: avx2::down_block::down_i8,
    };
}

mod avx512_tables {
    use super::*;
    pub static Q4_0: TypeKernels = block32!(Q4_0, Q8_0, q4_0::dequantize, avx512);
    pub static Q4_1: TypeKernels = block32!(Q4_1, Q8_1, q4_1::dequantize, avx512);
    pub static Q5_0: TypeKernels = block32!(Q5_0, Q8_0, q5_0::dequantize, avx512);
    pub static Q5_1: TypeKernels = block32!(Q5_1, Q8_1, q5_1::dequantize, avx512);
    pub static Q8_0: TypeKernels = block32!(Q8_0, Q8_0, q8_0::dequantize, avx512);
    pub static FLOAT: FloatKernels = FloatKernels {
        dot_f32: avx512::float::dot_f32,
        dot_f32_f16: avx512::float::dot_f32_f16,
        axpy_f16: avx512::float::axpy_f16,
        down_nib4: avx512::down_block::down_nib4,
        down_i8: avx512::down_block::down_i8,
    };
}

/// The AVX2 table of `t`, if it has one.
fn avx2_kernels(t: GgmlType) -> Option<&'static TypeKernels> {
    use avx2_tables as k;
    use GgmlType as T;
    Some(match t {
        T::F32 => &k::F32,
        T::F16 => &k::F16,
        T::BF16 => &k::BF16,
        T::Q4_0 => &k::Q4_0,
        T::Q4_1 => &k::Q4_1,
        T::Q5_0 => &k::Q5_0,
        T::Q5_1 => &k::Q5_1,
        T::Q8_0 => &k::Q8_0,
        T::Q2_K => &k::Q2_K,
        T::Q3_K => &k::Q3_K,
        T::Q4_K => &k::Q4_K,
        T::Q5_K => &k::Q5_K,
        T::Q6_K => &k::Q6_K,
        _ => return None,
    })
}

/// The tier's kernels for weight type `t`, if this module has any.
pub(super) fn kernels(tier: Tier, t: GgmlType) -> Option<&'static TypeKernels> {
    use avx512_tables as k;
    use GgmlType as T;
    match tier {
        Tier::Avx2 => avx2_kernels(t),
        Tier::Avx512 => match t {
            T::Q4_0 => Some(&k::Q4_0),
            T::Q4_1 => Some(&k::Q4_1),
            T::Q5_0 => Some(&k::Q5_0),
            T::Q5_1 => Some(&k::Q5_1),
            T::Q8_0 => Some(&k::Q8_0),
            _ => avx2_kernels(t),
        },
        _ => None,
    }
}

/// The tier's float kernels, if this module has any.
pub(super) fn float_kernels(tier: Tier) -> Option<&'static FloatKernels> {
    match tier {
        Tier::Avx2 => Some(&avx2_tables::FLOAT),
        Tier::Avx512 => Some(&avx512_tables::FLOAT),
        _ => None,
    }
}
