//! How each 32-element block type turns into 32 bytes of quants for the shared dot loops of both
//! x86 tiers (see [`Block32`]).

use super::{bits32, nibbles32};
use std::arch::x86_64::*;

/// A weight type with 32-element blocks whose dot product against Q8_0 / Q8_1 activations is
/// `dx · dy · Σ qx·qy` (plus `mx · sy` for the types with an offset).
pub(crate) trait Block32 {
    /// Bytes of a weight block; `d` is the f16 at offset 0 (and `m` the f16 at 2 if `OFFSET`).
    const WS: usize;
    /// Bytes of the activation block: 34 (Q8_0) or 36 (Q8_1, whose `s` is the f16 at offset 2);
    /// the 32 activation quants are its last 32 bytes.
    const AS: usize;
    /// Whether [`Block32::quants`] are signed (i8) rather than unsigned (u8).
    const SIGNED: bool;
    /// Whether the block has an offset `m` whose term is `m · s` with the Q8_1 sum `s`.
    const OFFSET: bool;
    /// The block's 32 quants at `x`, in element order.
    ///
    /// # Safety
    /// `x` points at `WS` readable bytes; the CPU has AVX2.
    unsafe fn quants(x: *const u8) -> __m256i;

    /// The quants of blocks `x` and `x + WS` in one 512-bit register (first block low).
    ///
    /// # Safety
    /// `x` points at `2 · WS` readable bytes; the CPU has the AVX-512 tier's features.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn quants_pair(x: *const u8) -> __m512i {
        _mm512_inserti64x4(
            _mm512_castsi256_si512(Self::quants(x)),
            Self::quants(x.add(Self::WS)),
            1,
        )
    }
}

/// The nibbles of the 16 bytes at `p0` and at `p1` in one register: low then high nibbles of
/// `p0` (its 32 elements in order), then those of `p1`. One shift with per-lane counts replaces
/// two 256-bit splits.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn nibbles64(p0: *const u8, p1: *const u8) -> __m512i {
    let v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(p0 as *const __m128i)),
        _mm_loadu_si128(p1 as *const __m128i),
        1,
    );
    let z = _mm512_castsi256_si512(v);
    // 128-bit lanes [p0, p0, p1, p1], the second copy of each shifted down a nibble.
    let z = _mm512_shuffle_i64x2(z, z, 0b01_01_00_00);
    let z = _mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(z, _mm512_set1_epi8(0x0f))
}

/// Q4_0: nibbles minus 8.
pub(crate) struct Q4_0;
impl Block32 for Q4_0 {
    const WS: usize = 18;
    const AS: usize = 34;
    const SIGNED: bool = true;
    const OFFSET: bool = false;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn quants(x: *const u8) -> __m256i {
        _mm256_sub_epi8(nibbles32(x.add(2)), _mm256_set1_epi8(8))
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn quants_pair(x: *const u8) -> __m512i {
        _mm512_sub_epi8(
            nibbles64(x.add(2), x.add(Self::WS + 2)),
            _mm512_set1_epi8(8),
        )
    }
}

/// Q4_1: plain nibbles.
pub(crate) struct Q4_1;
impl Block32 for Q4_1 {
    const WS: usize = 20;
    const AS: usize = 36;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn quants(x: *const u8) -> __m256i {
        nibbles32(x.add(4))
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn quants_pair(x: *const u8) -> __m512i {
        nibbles64(x.add(4), x.add(Self::WS + 4))
    }
}

/// Q5_0: nibbles with the fifth bit from `qh`, minus 16.
pub(crate) struct Q5_0;
impl Block32 for Q5_0 {
    const WS: usize = 22;
    const AS: usize = 34;
    const SIGNED: bool = true;
    const OFFSET: bool = false;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn quants(x: *const u8) -> __m256i {
        // q - 16 = nibble | 0xf0 where the fifth bit is clear (as i8), the nibble where it is set.
        let high = _mm256_andnot_si256(bits32(x.add(2)), _mm256_set1_epi8(0xf0u8 as i8));
        _mm256_or_si256(nibbles32(x.add(6)), high)
    }
}

/// Q5_1: nibbles with the fifth bit from `qh`.
pub(crate) struct Q5_1;
impl Block32 for Q5_1 {
    const WS: usize = 24;
    const AS: usize = 36;
    const SIGNED: bool = false;
    const OFFSET: bool = true;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn quants(x: *const u8) -> __m256i {
        let high = _mm256_and_si256(bits32(x.add(4)), _mm256_set1_epi8(0x10));
        _mm256_or_si256(nibbles32(x.add(8)), high)
    }
}

/// Q8_0: the bytes themselves.
pub(crate) struct Q8_0;
impl Block32 for Q8_0 {
    const WS: usize = 34;
    const AS: usize = 34;
    const SIGNED: bool = true;
    const OFFSET: bool = false;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn quants(x: *const u8) -> __m256i {
        _mm256_loadu_si256(x.add(2) as *const __m256i)
    }
}
