//! Q4_1 × Q8_1: plain nibbles; term `(dx · dy) · sumi + mx · sy` (the offset meets the activation
//! block sum `s`), as `ggml_vec_dot_q4_1_q8_1`'s reference.

use super::fp::half_at;
use super::legacy::{nibbles, Legacy, Unpacked};
use core::arch::aarch64::*;

pub(super) struct Q4_1;

impl Legacy for Q4_1 {
    const BYTES: usize = 20;
    const A_BYTES: usize = 36;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> Unpacked {
        let (lo, hi) = nibbles(x.add(4));
        Unpacked {
            lo: vreinterpretq_s8_u8(lo),
            hi: vreinterpretq_s8_u8(hi),
            d: half_at(x),
            m: half_at(x.add(2)),
        }
    }

    #[inline(always)]
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32 {
        (w.d * half_at(y)) * sumi as f32 + w.m * half_at(y.add(2))
    }
}

entry_points!(legacy, Q4_1);
