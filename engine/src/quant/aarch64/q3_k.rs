//! Q3_K: 2-bit quants plus an inverted third bit (`hmask`), q ∈ [-4, 3], sixteen 16-element
//! groups with 6-bit signed scales.
//!
//! Element 32·i + l (i < 8) takes bits 2·(i % 4) of `qs[32·(i / 4) + l]` and bit i of `hmask[l]`;
//! it is built as `(low | 4·bit) - 4`. Term: `d·dy · Σ scale·q·q8`.

use super::fp::half_at;
use super::kquants::{KBlock, KQuant};
use crate::quant::kquants::q3k_scales;
use core::arch::aarch64::*;

pub(super) struct Q3K;

impl KQuant for Q3K {
    const BYTES: usize = 110;
    const PAIRED: bool = false;
    const HAS_MIN: bool = false;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> KBlock {
        let (m3, four) = (vdupq_n_u8(3), vdupq_n_u8(4));
        let (hm0, hm1) = (vld1q_u8(x), vld1q_u8(x.add(16)));
        let mut q = [vdupq_n_s8(0); 16];
        for h in 0..2 {
            let qa = vld1q_u8(x.add(32 + 32 * h));
            let qb = vld1q_u8(x.add(48 + 32 * h));
            for j in 0..4 {
                let i = 4 * h + j;
                let shift = vdupq_n_s8(-2 * j as i8);
                let bit = vdupq_n_u8(1 << i);
                let la = vandq_u8(vshlq_u8(qa, shift), m3);
                let lb = vandq_u8(vshlq_u8(qb, shift), m3);
                let ha = vandq_u8(vtstq_u8(hm0, bit), four);
                let hb = vandq_u8(vtstq_u8(hm1, bit), four);
                q[2 * i] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(la, ha)), vdupq_n_s8(4));
                q[2 * i + 1] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lb, hb)), vdupq_n_s8(4));
            }
        }
        KBlock {
            q,
            scales: q3k_scales(&*(x.add(96) as *const [u8; 12])),
            mins: (vdupq_n_s16(0), vdupq_n_s16(0)),
            d: half_at(x.add(108)),
            dmin: 0.0,
        }
    }

    #[inline(always)]
    fn term(b: &KBlock, isum: i32, _msum: i32, dy: f32) -> f32 {
        b.d * dy * isum as f32
    }
}

entry_points!(kquants, Q3K);
