//! The 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): one driver for `vec_dot` and
//! `vec_dot_multi`, each type only saying how to unpack a weight block and how the scalar reference
//! turns a block's integer sum into its float term.
//!
//! Per block the integer sum is exact in any order, and the float term and the running sum are
//! formed exactly as the scalar reference forms them (same operations, same order), so these
//! kernels return the reference's bits, and `vec_dot_multi` returns `vec_dot`'s bits per row.

use super::fp::load_i8;
use super::idot::I8Dot;
use core::arch::aarch64::*;

/// Elements per block.
pub(super) const QK: usize = 32;

/// A weight block unpacked into signed bytes (elements 0..16 in `lo`, 16..32 in `hi`) and its
/// scale and offset (0 for the types without one).
#[derive(Clone, Copy)]
pub(super) struct Unpacked {
    pub lo: int8x16_t,
    pub hi: int8x16_t,
    pub d: f32,
    pub m: f32,
}

/// What a 32-element weight type contributes to the shared driver.
pub(super) trait Legacy {
    /// Bytes per weight block.
    const BYTES: usize;
    /// Bytes per activation block (Q8_0: 34, Q8_1: 36); the quants are its last 32 bytes.
    const A_BYTES: usize;
    /// The weight block at `x`, unpacked.
    ///
    /// # Safety
    /// `x` points at `BYTES` readable bytes.
    unsafe fn unpack(x: *const u8) -> Unpacked;
    /// The block's term of the row sum from its exact integer sum, as the scalar reference has it.
    ///
    /// # Safety
    /// `y` points at the `A_BYTES` of the activation block.
    unsafe fn term(w: &Unpacked, sumi: i32, y: *const u8) -> f32;
}

/// Number of blocks of an `n`-element dot product, after checking the buffers hold them.
fn blocks_of<T: Legacy>(n: usize, w: &[u8], a: &[u8]) -> usize {
    assert_eq!(n % QK, 0, "vec_dot: partial block");
    let nb = n / QK;
    assert!(
        w.len() >= nb * T::BYTES && a.len() >= nb * T::A_BYTES,
        "vec_dot: short buffer"
    );
    nb
}

/// Σ w·q8 over one block, exactly.
#[inline(always)]
unsafe fn block_sum<T: Legacy, D: I8Dot>(w: &Unpacked, y: *const u8) -> i32 {
    let q = y.add(T::A_BYTES - QK);
    let acc = D::dot(vdupq_n_s32(0), w.lo, load_i8(q));
    vaddvq_s32(D::dot(acc, w.hi, load_i8(q.add(16))))
}

/// `vec_dot` for weight type `T` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features (the caller is a `#[target_feature]` function of that tier).
#[inline(always)]
pub(super) unsafe fn vec_dot<T: Legacy, D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = blocks_of::<T>(n, w, a);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut sumf = 0f32;
    for i in 0..nb {
        let x = T::unpack(wp.add(i * T::BYTES));
        let y = ap.add(i * T::A_BYTES);
        sumf += T::term(&x, block_sum::<T, D>(&x, y), y);
    }
    sumf
}

/// Rows handled per pass of [`vec_dot_multi`]: their running sums stay in registers.
const ROWS: usize = 8;

/// `vec_dot_multi`: each weight block is unpacked once and dotted with the same block of up to
/// [`ROWS`] activation rows; each row keeps its own running sum in `vec_dot`'s order.
///
/// # Safety
/// As [`vec_dot`].
#[inline(always)]
pub(super) unsafe fn vec_dot_multi<T: Legacy, D: I8Dot>(
    n: usize,
    w: &[u8],
    a: &[u8],
    a_stride: usize,
    out: &mut [f32],
) {
    if out.is_empty() {
        return;
    }
    assert_eq!(n % QK, 0, "vec_dot: partial block");
    let nb = n / QK;
    assert!(w.len() >= nb * T::BYTES, "vec_dot: short buffer");
    assert!(
        a.len() >= (out.len() - 1) * a_stride + nb * T::A_BYTES,
        "vec_dot_multi: short activations"
    );
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    for (c, out) in out.chunks_mut(ROWS).enumerate() {
        let rows = ap.add(c * ROWS * a_stride);
        let mut sums = [0f32; ROWS];
        for i in 0..nb {
            let x = T::unpack(wp.add(i * T::BYTES));
            for (r, s) in sums[..out.len()].iter_mut().enumerate() {
                let y = rows.add(r * a_stride + i * T::A_BYTES);
                *s += T::term(&x, block_sum::<T, D>(&x, y), y);
            }
        }
        out.copy_from_slice(&sums[..out.len()]);
    }
}

/// The low and high nibbles of the 16 bytes at `p`: elements 0..16 and 16..32 of a 4-bit block.
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let q = vld1q_u8(p);
    (vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(q))
}

/// The fifth bits of a Q5 block as 0x10 per byte: bit j of `qh` belongs to element j, returned for
/// elements 0..16 and 16..32.
#[inline(always)]
pub(super) unsafe fn fifth_bits(qh: u32) -> (uint8x16_t, uint8x16_t) {
    const IDX_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const IDX_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let v = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    let bits = vld1q_u8(BITS.as_ptr());
    let five = vdupq_n_u8(0x10);
    let lo = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(IDX_LO.as_ptr())), bits);
    let hi = vtstq_u8(vqtbl1q_u8(v, vld1q_u8(IDX_HI.as_ptr())), bits);
    (vandq_u8(lo, five), vandq_u8(hi, five))
}
