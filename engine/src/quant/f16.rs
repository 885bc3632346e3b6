//! F16: IEEE half floats.
//!
//! Conversion to f16 rounds to nearest even (the `half` crate, like `GGML_FP32_TO_FP16`); the dot
//! product widens both sides to f32, multiplies in f32 and sums in f64, as ggml's scalar
//! `ggml_vec_dot_f16`.
//!
//! Widening in the hot loops uses [`widen`], a branch-free bit conversion: `half` decides between
//! F16C and software on every call, which made these loops ten times slower than the others.

use super::{dequant_blocks, put_f16};

/// All ones if `c`, else zero: a select LLVM will not turn back into a branch.
#[inline(always)]
fn mask(c: bool) -> u32 {
    (c as u32).wrapping_neg()
}

/// f16 bits to f32, exactly (NaNs are quieted, as `half` and F16C do), with selects instead of
/// branches so loops over it vectorize.
#[inline(always)]
pub(crate) fn widen(b: &[u8; 2]) -> f32 {
    let h = u16::from_le_bytes(*b) as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    // Normal: move exponent and mantissa up and rebias the exponent from 15 to 127.
    let normal = (em << 13) + ((127 - 15) << 23);
    // Subnormal (m · 2^-24): build 2^-14 · (1 + m/1024) and subtract the 2^-14.
    let magic = 113 << 23;
    let sub = (f32::from_bits((em << 13) | magic) - f32::from_bits(magic)).to_bits();
    // Infinity or NaN: all-ones exponent; a NaN gets the quiet bit.
    let special = (em << 13) | 0x7f80_0000 | (mask(em > 0x7c00) & 0x0040_0000);
    let (is_special, is_sub) = (mask(em >= 0x7c00), mask(em < 0x0400));
    let finite = (sub & is_sub) | (normal & !is_sub);
    let bits = (special & is_special) | (finite & !is_special);
    f32::from_bits(sign | bits)
}

/// Widens each half to f32 (exact).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<2, 1>(src, dst) {
        y[0] = widen(b);
    }
}

/// Σ w·a with f32 products summed in f64, in element order.
///
/// The products are formed a chunk at a time into a buffer so the widening vectorizes; only the
/// ordered f64 sum, which fixes the result's rounding, stays sequential.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    const CHUNK: usize = 64;
    let (w, a) = (&w[..2 * n], &a[..2 * n]);
    let mut sum = 0f64;
    let mut products = [0f32; CHUNK];
    for (w, a) in w.chunks(2 * CHUNK).zip(a.chunks(2 * CHUNK)) {
        let products = &mut products[..w.len() / 2];
        for ((p, x), y) in products
            .iter_mut()
            .zip(w.chunks_exact(2))
            .zip(a.chunks_exact(2))
        {
            *p = widen(x.try_into().unwrap()) * widen(y.try_into().unwrap());
        }
        for &p in products.iter() {
            sum += p as f64;
        }
    }
    sum as f32
}

/// Rounds each activation to the nearest f16 (ties to even; overflow gives ±inf).
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<1, 2>(src, dst) {
        put_f16(b, 0, x[0]);
    }
}

/// `Σ a[i]·b[i]` with `b` as half bits: attention's query·key product over the f16 KV cache.
/// Sixteen f32 lanes, reduced in a fixed order (the SIMD tiers are tested against this).
pub(crate) fn dot_f32_f16(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32_f16: lengths differ");
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, &y)| x * widen(&y.to_le_bytes()))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * widen(&y[i].to_le_bytes());
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y[i] += alpha · x[i]` with `x` as half bits: attention's weighted sum of f16 values.
pub(crate) fn axpy_f16(y: &mut [f32], alpha: f32, x: &[u16]) {
    assert_eq!(y.len(), x.len(), "axpy_f16: lengths differ");
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * widen(&x.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::widen;

    /// All 65536 halves widen to the same bits as the `half` crate gives.
    #[test]
    fn widen_is_exact_for_every_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32().to_bits();
            assert_eq!(widen(&h.to_le_bytes()).to_bits(), want, "{h:#06x}");
        }
    }
}
