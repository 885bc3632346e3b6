//! Q8_0 × Q8_0: the bytes as they are; term `sumi · (dx · dy)` as `ggml_vec_dot_q8_0_q8_0`'s
//! reference.

use super::fp::{half_at, load_i8};
use super::legacy::{Legacy, Unpacked};

pub(super) struct Q8_0;

impl Legacy for Q8_0 {
    const BYTES: usize = 34;
    const A_BYTES: usize = 34;

    #[inline(always)]
    unsafe fn unpack(x: *const u8) -> Unpacked {
        Unpacked {
            lo: load_i8(x.add(2)),
            hi: load_i8(x.add(18)),
            d: half_at(x),
            m: 0.0,
        }
    }

    #[inline(always)]
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32 {
        sumi as f32 * (w.d * half_at(y))
    }
}

entry_points!(legacy, Q8_0);
