//! Q2_K: 2-bit quants in sixteen 16-element groups, each with a 4-bit scale (low nibble of its
//! scale byte) and 4-bit min (high nibble).
//!
//! Element 32·j + l of half h is bits 2j..2j + 1 of `qs[32·h + l]`. Term, with the scalar
//! reference's float expression: `(dy·d) · Σ scale·q·q8 - (dy·dmin) · Σ min·bsum`.

use super::fp::half_at;
use super::kquants::{KBlock, KQuant};
use core::arch::aarch64::*;

pub(super) struct Q2K;

impl KQuant for Q2K {
    const BYTES: usize = 84;
    const PAIRED: bool = false;
    const HAS_MIN: bool = true;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> KBlock {
        let m3 = vdupq_n_u8(3);
        let mut q = [vdupq_n_s8(0); 16];
        for h in 0..2 {
            let qa = vld1q_u8(x.add(16 + 32 * h));
            let qb = vld1q_u8(x.add(32 + 32 * h));
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                q[8 * h + 2 * j] = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qa, shift), m3));
                q[8 * h + 2 * j + 1] = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qb, shift), m3));
            }
        }
        let mut scales = [0i32; 16];
        for (g, s) in scales.iter_mut().enumerate() {
            *s = (*x.add(g) & 15) as i32;
        }
        let mins = vshrq_n_u8::<4>(vld1q_u8(x));
        KBlock {
            q,
            scales,
            mins: (
                vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins))),
                vreinterpretq_s16_u16(vmovl_high_u8(mins)),
            ),
            d: half_at(x.add(80)),
            dmin: half_at(x.add(82)),
        }
    }

    #[inline(always)]
    fn term(b: &KBlock, isum: i32, msum: i32, dy: f32) -> f32 {
        (dy * b.d) * isum as f32 - (dy * b.dmin) * msum as f32
    }
}

entry_points!(kquants, Q2K);
