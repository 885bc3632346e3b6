//! Q4_K: eight 32-element groups of nibbles with 6-bit scales and mins; chunk c (64 elements) is
//! the low nibbles of `qs[32c..32c + 32]` followed by their high nibbles.
//!
//! Term: `d·dy · Σ scale·q·q8 - dmin·dy · Σ min·bsum`.

use super::fp::half_at;
use super::kquants::{scales_mins_k4, KBlock, KQuant};
use core::arch::aarch64::*;

pub(super) struct Q4K;

impl KQuant for Q4K {
    const BYTES: usize = 144;
    const PAIRED: bool = true;
    const HAS_MIN: bool = true;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> KBlock {
        let (scales, mins) = scales_mins_k4(x.add(4));
        let m4 = vdupq_n_u8(0x0f);
        let mut q = [vdupq_n_s8(0); 16];
        for c in 0..4 {
            let q0 = vld1q_u8(x.add(16 + 32 * c));
            let q1 = vld1q_u8(x.add(32 + 32 * c));
            q[4 * c] = vreinterpretq_s8_u8(vandq_u8(q0, m4));
            q[4 * c + 1] = vreinterpretq_s8_u8(vandq_u8(q1, m4));
            q[4 * c + 2] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q0));
            q[4 * c + 3] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q1));
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

entry_points!(kquants, Q4K);
