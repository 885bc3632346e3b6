//! Q6_K: 6-bit quants around 32 in sixteen 16-element groups with signed 8-bit scales.
//!
//! Per 128-element half, `ql` (64 bytes) gives low nibbles of elements 0..64 and high nibbles of
//! 64..128, `qh` (32 bytes) two top bits per element. Term: `d·dy · Σ scale·(q - 32)·q8`.

use super::fp::half_at;
use super::kquants::{KBlock, KQuant};
use core::arch::aarch64::*;

pub(super) struct Q6K;

impl KQuant for Q6K {
    const BYTES: usize = 210;
    const PAIRED: bool = false;
    const HAS_MIN: bool = false;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> KBlock {
        let (m4, m3, m30) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x03), vdupq_n_u8(0x30));
        let mut q = [vdupq_n_s8(0); 16];
        for h in 0..2 {
            let ql = x.add(64 * h);
            let qh = x.add(128 + 32 * h);
            let (l0, l1) = (vld1q_u8(ql), vld1q_u8(ql.add(16)));
            let (l2, l3) = (vld1q_u8(ql.add(32)), vld1q_u8(ql.add(48)));
            let (h0, h1) = (vld1q_u8(qh), vld1q_u8(qh.add(16)));
            let groups = [
                vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8::<4>(vandq_u8(h0, m3))),
                vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8::<4>(vandq_u8(h1, m3))),
                vorrq_u8(vandq_u8(l2, m4), vandq_u8(vshlq_n_u8::<2>(h0), m30)),
                vorrq_u8(vandq_u8(l3, m4), vandq_u8(vshlq_n_u8::<2>(h1), m30)),
                vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(h0, m30)),
                vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(h1, m30)),
                vorrq_u8(vshrq_n_u8::<4>(l2), vandq_u8(vshrq_n_u8::<2>(h0), m30)),
                vorrq_u8(vshrq_n_u8::<4>(l3), vandq_u8(vshrq_n_u8::<2>(h1), m30)),
            ];
            for (g, v) in groups.into_iter().enumerate() {
                q[8 * h + g] = vsubq_s8(vreinterpretq_s8_u8(v), vdupq_n_s8(32));
            }
        }
        let mut scales = [0i32; 16];
        for (g, s) in scales.iter_mut().enumerate() {
            *s = *x.add(192 + g) as i8 as i32;
        }
        KBlock {
            q,
            scales,
            mins: (vdupq_n_s16(0), vdupq_n_s16(0)),
            d: half_at(x.add(208)),
            dmin: 0.0,
        }
    }

    #[inline(always)]
    fn term(b: &KBlock, isum: i32, _msum: i32, dy: f32) -> f32 {
        b.d * dy * isum as f32
    }
}

entry_points!(kquants, Q6K);
