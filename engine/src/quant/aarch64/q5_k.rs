//! Q5_K: Q4_K's layout plus a fifth bit per weight from `qh`.
//!
//! Chunk c (64 elements) takes bit 2c of `qh[l]` for its low-nibble half and bit 2c + 1 for its
//! high-nibble half; `qh` is shifted right by two per chunk so the bits sit at 0 and 1.

use super::fp::half_at;
use super::kquants::{scales_mins_k4, KBlock, KQuant};
use core::arch::aarch64::*;

pub(super) struct Q5K;

impl KQuant for Q5K {
    const BYTES: usize = 176;
    const PAIRED: bool = true;
    const HAS_MIN: bool = true;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> KBlock {
        let (scales, mins) = scales_mins_k4(x.add(4));
        let m4 = vdupq_n_u8(0x0f);
        let (one, two) = (vdupq_n_u8(1), vdupq_n_u8(2));
        let mut qh0 = vld1q_u8(x.add(16));
        let mut qh1 = vld1q_u8(x.add(32));
        let mut q = [vdupq_n_s8(0); 16];
        for c in 0..4 {
            let q0 = vld1q_u8(x.add(48 + 32 * c));
            let q1 = vld1q_u8(x.add(64 + 32 * c));
            let lo0 = vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8::<4>(vandq_u8(qh0, one)));
            let lo1 = vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8::<4>(vandq_u8(qh1, one)));
            let hi0 = vorrq_u8(vshrq_n_u8::<4>(q0), vshlq_n_u8::<3>(vandq_u8(qh0, two)));
            let hi1 = vorrq_u8(vshrq_n_u8::<4>(q1), vshlq_n_u8::<3>(vandq_u8(qh1, two)));
            qh0 = vshrq_n_u8::<2>(qh0);
            qh1 = vshrq_n_u8::<2>(qh1);
            q[4 * c] = vreinterpretq_s8_u8(lo0);
            q[4 * c + 1] = vreinterpretq_s8_u8(lo1);
            q[4 * c + 2] = vreinterpretq_s8_u8(hi0);
            q[4 * c + 3] = vreinterpretq_s8_u8(hi1);
        }
        KBlock {
            q,
            scales,
            mins,
            d: half_at(x),
            dmin: half_at(x.add(2)),
        }
    }

    #[inline(always)]
    fn term(b: &KBlock, isum: i32, msum: i32, dy: f32) -> f32 {
        (b.d * dy) * isum as f32 - (b.dmin * dy) * msum as f32
    }
}

entry_points!(kquants, Q5K);
