//! Tensor element types: dequantization, activation quantization and dot products.
//!
//! Each weight type gets a [`TypeKernels`] table. `vec_dot` takes the activation already converted to
//! the weight's `vec_dot_type` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), as llama.cpp does, so the
//! conversion happens once per activation row, not once per weight row.
//!
//! These are the scalar reference kernels: byte layouts and arithmetic follow ggml's reference C code
//! (`ggml-quants.c` and the `*_generic` dot products of `ggml-cpu/quants.c`) operation for operation,
//! so results match llama.cpp and faster variants can be tested against them. Data comes straight from
//! an mmap and has no alignment, so blocks are read as bytes (`from_le_bytes`), never cast to structs.

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod bf16;
pub(crate) mod down_block;
mod f16;
mod f32;
mod kquants;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_1;
mod q8_k;
mod tier;
pub use down_block::{nib as nibble_at, pack_nibbles};
#[cfg(target_arch = "x86_64")]
mod x86;

pub use tier::{active_tier, available_tiers, choose_tier, Tier};

/// Kernels for one weight type.
pub struct TypeKernels {
    pub dtype: GgmlType,
    /// Dequantize a whole number of blocks: dst.len() elements from src (dst.len()/block_size*type_size bytes).
    pub dequantize: fn(src: &[u8], dst: &mut [f32]),
    /// Dot product of n weights (type `dtype`, bytes `w`) with n activations already in `vec_dot_type` format (bytes `a`).
    pub vec_dot: fn(n: usize, w: &[u8], a: &[u8]) -> f32,
    /// Format the activations must be converted to (Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32), as llama.cpp's vec_dot_type.
    pub vec_dot_type: GgmlType,
    /// Dot products of one weight row with several activation rows: `out[j] = dot(w, a[j·stride..])`
    /// for `j < out.len()`, letting a batch reuse each weight block while it is in registers.
    /// `None` where a kernel has no batched variant; call it through [`TypeKernels::dot_multi`].
    pub vec_dot_multi: Option<MultiDot>,
}

/// Signature of [`TypeKernels::vec_dot_multi`].
pub type MultiDot = fn(n: usize, w: &[u8], a: &[u8], a_stride: usize, out: &mut [f32]);

impl TypeKernels {
    /// `out[j] = vec_dot(n, w, a[j·a_stride..])` for every `j`, batched where the tier can.
    #[inline]
    pub fn dot_multi(&self, n: usize, w: &[u8], a: &[u8], a_stride: usize, out: &mut [f32]) {
        match self.vec_dot_multi {
            Some(f) => f(n, w, a, a_stride, out),
            None => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = (self.vec_dot)(n, w, &a[j * a_stride..]);
                }
            }
        }
    }
}

/// `down_nib4(out, scales, cols, a, s)`: see [`FloatKernels::down_nib4`].
pub type DownNib4Fn = fn(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32], s: f32);
/// `down_i8(out, scales, cols, a)`: see [`FloatKernels::down_i8`].
pub type DownI8Fn = fn(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32]);

/// Float kernels of the exact path, of attention and of the sparse FFN's down projection.
///
/// The down-block kernels live here rather than in [`TypeKernels`] or a table of their own: their
/// formats are fixed by `sparse::down_cols` (4-bit or 8-bit columns of the model's own quants with
/// f16 scales per block of 32 neurons, whatever the model's weight types) and they write f32, like
/// the other kernels here; and the sparse FFN already holds this table, so a hot loop pays no
/// dispatch per call.
pub struct FloatKernels {
    /// `Σ a[i]·b[i]` over f32.
    pub dot_f32: fn(a: &[f32], b: &[f32]) -> f32,
    /// `Σ a[i]·b[i]` with `b` as IEEE half bits (the f16 KV cache).
    pub dot_f32_f16: fn(a: &[f32], b: &[u16]) -> f32,
    /// `y[i] += alpha · x[i]` with `x` as IEEE half bits.
    pub axpy_f16: fn(y: &mut [f32], alpha: f32, x: &[u16]),
    /// `out[r] += d[r]·Σ a_j·q_j[r] + m[r]·s` for nibble columns sharing scales (`scales` = `d`
    /// then `m`, f16 bits; `s` = `Σ a_j`): a block of active neurons of the sparse FFN. Layout and
    /// bit-for-bit contract in [`down_block`].
    pub down_nib4: DownNib4Fn,
    /// `out[r] += d[r]·Σ a_j·q_j[r]` for signed byte columns sharing scales `d` (f16 bits).
    pub down_i8: DownI8Fn,
}

/// Builds the static table entry for a weight type from its module and activation format (spelled
/// out because `GgmlType::vec_dot_type` is not const; a test checks they agree).
macro_rules! kernels_of {
    ($t:ident, $m:ident, $a:ident) => {
        TypeKernels {
            dtype: GgmlType::$t,
            dequantize: $m::dequantize,
            vec_dot: $m::vec_dot,
            vec_dot_type: GgmlType::$a,
            vec_dot_multi: None,
        }
    };
}

static F32: TypeKernels = kernels_of!(F32, f32, F32);
static F16: TypeKernels = kernels_of!(F16, f16, F16);
static BF16: TypeKernels = kernels_of!(BF16, bf16, BF16);
static Q4_0: TypeKernels = kernels_of!(Q4_0, q4_0, Q8_0);
static Q4_1: TypeKernels = kernels_of!(Q4_1, q4_1, Q8_1);
static Q5_0: TypeKernels = kernels_of!(Q5_0, q5_0, Q8_0);
static Q5_1: TypeKernels = kernels_of!(Q5_1, q5_1, Q8_1);
static Q8_0: TypeKernels = kernels_of!(Q8_0, q8_0, Q8_0);
static Q2_K: TypeKernels = kernels_of!(Q2_K, q2_k, Q8_K);
static Q3_K: TypeKernels = kernels_of!(Q3_K, q3_k, Q8_K);
static Q4_K: TypeKernels = kernels_of!(Q4_K, q4_k, Q8_K);
static Q5_K: TypeKernels = kernels_of!(Q5_K, q5_k, Q8_K);
static Q6_K: TypeKernels = kernels_of!(Q6_K, q6_k, Q8_K);

/// Kernels for a weight type at the active tier (see [`active_tier`]);
/// `Err(Error::UnsupportedType)` for types the engine does not support.
pub fn kernels(t: GgmlType) -> Result<&'static TypeKernels> {
    kernels_for(t, active_tier())
}

/// Kernels for a weight type at a given tier (falling back to lower tiers where the tier has no
/// variant of its own). Tests use it to compare every tier with the scalar reference.
///
/// # Panics
/// If the tier is not available on this CPU: running its kernels would be undefined behaviour.
pub fn kernels_for(t: GgmlType, tier: Tier) -> Result<&'static TypeKernels> {
    assert!(
        tier.is_available(),
        "tier {tier} is not available on this CPU"
    );
    let simd: Option<&'static TypeKernels> = match tier {
        Tier::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::Avx512 => x86::kernels(tier, t),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::Dotprod => aarch64::kernels(tier, t),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    match simd {
        Some(k) => Ok(k),
        None => scalar_kernels(t),
    }
}

/// Float kernels at the active tier.
pub fn float_kernels() -> &'static FloatKernels {
    float_kernels_for(active_tier())
}

/// Float kernels at a given tier (see [`kernels_for`]).
pub fn float_kernels_for(tier: Tier) -> &'static FloatKernels {
    assert!(
        tier.is_available(),
        "tier {tier} is not available on this CPU"
    );
    let simd: Option<&'static FloatKernels> = match tier {
        Tier::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::Avx512 => x86::float_kernels(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::Dotprod => aarch64::float_kernels(tier),
        #[allow(unreachable_patterns)]
        _ => None,
    };
    simd.unwrap_or(&SCALAR_FLOAT)
}

static SCALAR_FLOAT: FloatKernels = FloatKernels {
    dot_f32: f32::dot,
    dot_f32_f16: f16::dot_f32_f16,
    axpy_f16: f16::axpy_f16,
    down_nib4: down_block::down_nib4,
    down_i8: down_block::down_i8,
};

/// The scalar reference kernels of a weight type.
pub fn scalar_kernels(t: GgmlType) -> Result<&'static TypeKernels> {
    use GgmlType as T;
    Ok(match t {
        T::F32 => &F32,
        T::F16 => &F16,
        T::BF16 => &BF16,
        T::Q4_0 => &Q4_0,
        T::Q4_1 => &Q4_1,
        T::Q5_0 => &Q5_0,
        T::Q5_1 => &Q5_1,
        T::Q8_0 => &Q8_0,
        T::Q2_K => &Q2_K,
        T::Q3_K => &Q3_K,
        T::Q4_K => &Q4_K,
        T::Q5_K => &Q5_K,
        T::Q6_K => &Q6_K,
        _ => return Err(Error::UnsupportedType(t.name())),
    })
}

/// Convert f32 activations to an activation format (Q8_0, Q8_1, Q8_K, F16, BF16, F32 as raw little-endian bytes). src.len() is a multiple of the format's block size; dst.len() == row bytes.
///
/// # Panics
/// On any other format or on sizes that disagree: both are bugs in the caller, which picks the format
/// from [`TypeKernels::vec_dot_type`] and sizes `dst` with [`GgmlType::row_bytes`].
pub fn quantize_activations(t: GgmlType, src: &[f32], dst: &mut [u8]) {
    use GgmlType as T;
    match t {
        T::Q8_0 => q8_0::quantize(src, dst),
        T::Q8_1 => q8_1::quantize(src, dst),
        T::Q8_K => q8_k::quantize(src, dst),
        T::F16 => f16::quantize(src, dst),
        T::BF16 => bf16::quantize(src, dst),
        T::F32 => f32::quantize(src, dst),
        _ => panic!("{t} is not an activation format"),
    }
}

/// Convenience: dequantize a row of any supported type.
///
/// Besides the weight types this accepts the activation formats Q8_1 and Q8_K, which is what tests
/// and debugging tools need to look at converted activations. `dst.len()` must be a whole number of
/// blocks and `src` exactly that many blocks' bytes, else `Error::Invalid`.
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let dequantize = match t {
        GgmlType::Q8_1 => q8_1::dequantize,
        GgmlType::Q8_K => q8_k::dequantize,
        _ => kernels(t)?.dequantize,
    };
    let (bs, ts) = t.block_geometry();
    if !dst.len().is_multiple_of(bs) || src.len() != dst.len() / bs * ts {
        return Err(Error::Invalid(format!(
            "dequantize {t}: {} bytes for {} elements",
            src.len(),
            dst.len()
        )));
    }
    dequantize(src, dst);
    Ok(())
}

/// Reads a little-endian IEEE half at `b[0..2]` as f32 (exact: every f16 is an f32).
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    ::half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Writes `v` rounded to nearest-even f16 at `b[at..at+2]`, as `GGML_FP32_TO_FP16`.
#[inline(always)]
fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&::half::f16::from_f32(v).to_bits().to_le_bytes());
}

/// Splits `src` into the `n_blocks` blocks of `TS` bytes a kernel works on.
///
/// The length check happens once here; the fixed-size array references let the kernels index inside a
/// block without bounds checks. A short buffer is a caller bug and panics.
#[inline(always)]
fn blocks<const TS: usize>(src: &[u8], n_blocks: usize) -> impl Iterator<Item = &[u8; TS]> {
    src[..n_blocks * TS]
        .chunks_exact(TS)
        .map(|c| c.try_into().expect("chunks_exact yields TS bytes"))
}

/// Mutable counterpart of [`blocks`] for output buffers.
#[inline(always)]
fn blocks_mut<const TS: usize>(
    dst: &mut [u8],
    n_blocks: usize,
) -> impl Iterator<Item = &mut [u8; TS]> {
    dst[..n_blocks * TS]
        .chunks_exact_mut(TS)
        .map(|c| c.try_into().expect("chunks_exact yields TS bytes"))
}

/// Iterates over the `BS`-element output blocks of `dst` and as many `TS`-byte blocks from the start
/// of `src` (which may run on, e.g. to the end of a tensor): the common prologue of every `dequantize`.
#[inline(always)]
fn dequant_blocks<'a, const TS: usize, const BS: usize>(
    src: &'a [u8],
    dst: &'a mut [f32],
) -> impl Iterator<Item = (&'a [u8; TS], &'a mut [f32; BS])> {
    assert_eq!(dst.len() % BS, 0, "dequantize: partial block");
    let nb = dst.len() / BS;
    assert!(src.len() >= nb * TS, "dequantize: short source");
    blocks::<TS>(src, nb).zip(
        dst.chunks_exact_mut(BS)
            .map(|c| c.try_into().expect("chunks_exact yields BS elements")),
    )
}

/// Pairs the weight and activation blocks of an `n`-element dot product, checking both buffers hold
/// `n` elements' worth: the common prologue of every `vec_dot`.
#[inline(always)]
fn dot_blocks<'a, const WS: usize, const AS: usize>(
    n: usize,
    block: usize,
    w: &'a [u8],
    a: &'a [u8],
) -> impl Iterator<Item = (&'a [u8; WS], &'a [u8; AS])> {
    assert_eq!(n % block, 0, "vec_dot: partial block");
    let nb = n / block;
    assert!(
        w.len() >= nb * WS && a.len() >= nb * AS,
        "vec_dot: short buffer"
    );
    blocks::<WS>(w, nb).zip(blocks::<AS>(a, nb))
}

/// Iterates over the `BS`-element input blocks and `TS`-byte output blocks of an activation
/// conversion, checking sizes: the common prologue of every `quantize`.
#[inline(always)]
fn quant_blocks<'a, const BS: usize, const TS: usize>(
    src: &'a [f32],
    dst: &'a mut [u8],
) -> impl Iterator<Item = (&'a [f32; BS], &'a mut [u8; TS])> {
    assert_eq!(src.len() % BS, 0, "quantize: partial block");
    let nb = src.len() / BS;
    assert_eq!(dst.len(), nb * TS, "quantize: destination size");
    src.chunks_exact(BS)
        .map(|c| c.try_into().expect("chunks_exact yields BS elements"))
        .zip(blocks_mut::<TS>(dst, nb))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every supported type has kernels whose activation format is the type table's.
    #[test]
    fn table_matches_type_table() {
        for id in 0..40 {
            let Ok(t) = GgmlType::from_id(id) else {
                continue;
            };
            match kernels(t) {
                Ok(k) => {
                    assert!(t.is_supported(), "{t}");
                    assert_eq!(k.dtype, t);
                    assert_eq!(k.vec_dot_type, t.vec_dot_type(), "{t}");
                }
                Err(Error::UnsupportedType(_)) => assert!(!t.is_supported(), "{t}"),
                Err(e) => panic!("{t}: {e}"),
            }
        }
    }
}
