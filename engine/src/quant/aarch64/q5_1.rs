//! Q5_1 × Q8_1: nibbles plus the fifth bit; term `(dx · dy) · sumi + mx · sy` as Q4_1.

use super::fp::half_at;
use super::legacy::{fifth_bits, nibbles, Legacy, Unpacked};
use core::arch::aarch64::*;

pub(super) struct Q5_1;

impl Legacy for Q5_1 {
    const BYTES: usize = 24;
    const A_BYTES: usize = 36;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> Unpacked {
        let qh = u32::from_le_bytes(*(x.add(4) as *const [u8; 4]));
        let (h0, h1) = fifth_bits(qh);
        let (lo, hi) = nibbles(x.add(8));
        Unpacked {
            lo: vreinterpretq_s8_u8(vorrq_u8(lo, h0)),
            hi: vreinterpretq_s8_u8(vorrq_u8(hi, h1)),
            d: half_at(x),
            m: half_at(x.add(2)),
        }
    }

    #[inline(always)]
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32 {
        (w.d * half_at(y)) * sumi as f32 + w.m * half_at(y.add(2))
    }
}

entry_points!(legacy, Q5_1);
