//! AVX-512 (F/BW/VL/VNNI) kernels.
//!
//! The 32-element block types process two blocks per 512-bit register and multiply with
//! `vpdpbusd` (u8 × i8, four products summed into an i32 lane in one instruction); block decoding
//! is shared with AVX2 ([`super::avx2::blocks`]).

pub(crate) mod down_block;
pub(crate) mod float;
pub(crate) mod legacy;
