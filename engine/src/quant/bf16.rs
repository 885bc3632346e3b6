//! BF16: the top 16 bits of an f32.
//!
//! Widening is a shift. Narrowing follows `ggml_compute_fp32_to_bf16`: round to nearest even, and
//! NaNs keep their top bits with the quiet bit forced so a signalling NaN cannot round into an
//! infinity. The dot product sums f32 products in f64, as ggml's scalar `ggml_vec_dot_bf16`.

use super::dequant_blocks;

/// The f32 whose top 16 bits are the bf16 in `b`.
#[inline(always)]
fn bf16_to_f32(b: &[u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(*b) as u32) << 16)
}

/// `ggml_compute_fp32_to_bf16`: nearest even, NaNs made quiet.
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    // Cannot overflow: the largest non-NaN pattern is 0xff80_0000.
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Widens each bf16 to f32 (exact).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<2, 1>(src, dst) {
        y[0] = bf16_to_f32(b);
    }
}

/// Σ w·a with f32 products summed in f64.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in super::dot_blocks::<2, 2>(n, 1, w, a) {
        sum += (bf16_to_f32(x) * bf16_to_f32(y)) as f64;
    }
    sum as f32
}

/// Narrows each activation to bf16.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<1, 2>(src, dst) {
        *b = f32_to_bf16(x[0]).to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::f32_to_bf16;

    #[test]
    fn rounding_and_nan() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        // Just above halfway rounds up.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        // Odd lower neighbour: the tie rounds up to even.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80);
        // A signalling NaN whose payload lives only in the low bits stays a NaN.
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16(f32::from_bits(0xffc1_2345)), 0xffc1);
    }
}
