//! Q4_0 × Q8_0: nibbles minus 8; term `sumi · dx · dy` as `ggml_vec_dot_q4_0_q8_0`'s reference.

use super::fp::half_at;
use super::legacy::{nibbles, Legacy, Unpacked};
use core::arch::aarch64::*;

pub(super) struct Q4_0;

impl Legacy for Q4_0 {
    const BYTES: usize = 18;
    const A_BYTES: usize = 34;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> Unpacked {
        let (lo, hi) = nibbles(x.add(2));
        let eight = vdupq_n_s8(8);
        Unpacked {
            lo: vsubq_s8(vreinterpretq_s8_u8(lo), eight),
            hi: vsubq_s8(vreinterpretq_s8_u8(hi), eight),
            d: half_at(x),
            m: 0.0,
        }
    }

    #[inline(always)]
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32 {
        sumi as f32 * w.d * half_at(y)
    }
}

entry_points!(legacy, Q4_0);
