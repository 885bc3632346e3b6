//! Q5_0 × Q8_0: nibbles plus the fifth bit, minus 16; term `(dx · dy) · sumi`.

use super::fp::half_at;
use super::legacy::{fifth_bits, nibbles, Legacy, Unpacked};
use core::arch::aarch64::*;

pub(super) struct Q5_0;

impl Legacy for Q5_0 {
    const BYTES: usize = 22;
    const A_BYTES: usize = 34;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> Unpacked {
        let qh = u32::from_le_bytes(*(x.add(2) as *const [u8; 4]));
        let (h0, h1) = fifth_bits(qh);
        let (lo, hi) = nibbles(x.add(6));
        let sixteen = vdupq_n_s8(16);
        Unpacked {
            lo: vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, h0)), sixteen),
            hi: vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, h1)), sixteen),
            d: half_at(x),
            m: 0.0,
        }
    }

    #[inline(always)]
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32 {
        (w.d * half_at(y)) * sumi as f32
    }
}

entry_points!(legacy, Q5_0);
