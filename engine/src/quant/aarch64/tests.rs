//! Every aarch64 kernel against the scalar reference, on every tier this CPU has.
//!
//! Random blocks use every quant value and scales from a list of awkward values (zero, negative,
//! subnormal, ±65504) chosen so that no infinity can arise. The 32-element types, Q2_K and the
//! float kernels must return the reference's bits; the other k-quants and the F16/F32 weight dot
//! products sum in another order and must agree to 1e-5 of Σ|w·a|. "Exact" cases use power-of-two
//! scales and small activations so that every partial sum is representable: there every kernel
//! must return the exact value, bit for bit.

use crate::ggml_type::GgmlType;
use crate::quant::{
    available_tiers, dequantize_row, float_kernels_for, kernels_for, scalar_kernels, Tier,
};
use half::f16;

/// xorshift64*: reproducible and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// The tiers to test besides the reference.
fn simd_tiers() -> Vec<Tier> {
    assert!(Tier::Neon.is_available(), "every aarch64 CPU has NEON");
    available_tiers()
        .iter()
        .copied()
        .filter(|&t| t != Tier::Scalar)
        .collect()
}

const TYPES: [GgmlType; 12] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Types whose kernels must return the reference's bits on any input.
fn bit_exact(t: GgmlType) -> bool {
    matches!(
        t,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
    )
}

/// Byte offsets of the f16 fields (scales, offsets) of a weight block.
fn half_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match t {
        T::Q4_0 | T::Q5_0 | T::Q8_0 => &[0],
        T::Q4_1 | T::Q5_1 | T::Q4_K | T::Q5_K => &[0, 2],
        T::Q2_K => &[80, 82],
        T::Q3_K => &[108],
        T::Q6_K => &[208],
        _ => &[],
    }
}

/// Random data is either "wild" (every quant, awkward scales) or "exact" (see the module doc).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Wild,
    Exact,
    Zero,
}

fn half_bits(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

/// A weight scale: awkward values in wild mode.
fn weight_scale(rng: &mut Rng, mode: Mode) -> f32 {
    match mode {
        Mode::Wild => {
            let special = [
                0.0,
                -0.0,
                1.0,
                -1.0,
                5.960_464_5e-8,
                -6.1e-5,
                65504.0,
                -65504.0,
            ];
            if rng.below(3) == 0 {
                rng.pick(&special)
            } else {
                rng.unit() * 2f32.powi(rng.below(16) as i32 - 10)
            }
        }
        Mode::Exact => rng.pick(&[0.0, 1.0, -1.0, 2.0, -2.0]),
        Mode::Zero => 0.0,
    }
}

/// An activation scale small enough that a Q8_1 block sum `d · Σq` stays a finite f16.
fn act_scale(rng: &mut Rng, mode: Mode) -> f32 {
    match mode {
        Mode::Wild => {
            if rng.below(4) == 0 {
                rng.pick(&[0.0, 1.0, -1.0, 5.960_464_5e-8, 8.0, -8.0])
            } else {
                rng.unit() * 2f32.powi(rng.below(8) as i32 - 5)
            }
        }
        Mode::Exact => rng.pick(&[1.0, 2.0, -1.0]),
        Mode::Zero => 0.0,
    }
}

/// An activation quant: every i8 in wild mode, [-4, 3] in exact mode.
fn act_quant(rng: &mut Rng, mode: Mode) -> i8 {
    match mode {
        Mode::Wild => rng.next() as i8,
        Mode::Exact => rng.below(8) as i8 - 4,
        Mode::Zero => 0,
    }
}

/// A float element of F16/F32 data.
fn element(rng: &mut Rng, mode: Mode) -> f32 {
    match mode {
        Mode::Wild => {
            if rng.below(8) == 0 {
                rng.pick(&[0.0, -0.0, 5.960_464_5e-8, 65504.0, -65504.0, 1e-3])
            } else {
                rng.unit() * 2f32.powi(rng.below(12) as i32 - 6)
            }
        }
        Mode::Exact => rng.below(9) as f32 - 4.0,
        Mode::Zero => 0.0,
    }
}

/// `nb` random weight blocks of type `t`.
fn weights(rng: &mut Rng, t: GgmlType, nb: usize, mode: Mode) -> Vec<u8> {
    let (_, ts) = t.block_geometry();
    let mut w: Vec<u8> = (0..nb * ts).map(|_| rng.next() as u8).collect();
    match t {
        GgmlType::F32 => {
            for c in w.chunks_exact_mut(4) {
                c.copy_from_slice(&element(rng, mode).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in w.chunks_exact_mut(2) {
                c.copy_from_slice(&half_bits(element(rng, mode)));
            }
        }
        _ if mode == Mode::Zero => w.fill(0),
        _ => {
            for b in w.chunks_exact_mut(ts) {
                for &at in half_fields(t) {
                    b[at..at + 2].copy_from_slice(&half_bits(weight_scale(rng, mode)));
                }
            }
        }
    }
    w
}

/// `nb` blocks of `t`'s activation format, valid as `quantize_activations` would make them.
fn activations(rng: &mut Rng, t: GgmlType, nb: usize, mode: Mode) -> Vec<u8> {
    let at = t.vec_dot_type();
    let (bs, ts) = at.block_geometry();
    let blocks = nb * t.block_size() / bs;
    let mut a = vec![0u8; blocks * ts];
    for b in a.chunks_exact_mut(ts) {
        match at {
            GgmlType::F32 => b.copy_from_slice(&element(rng, mode).to_le_bytes()),
            GgmlType::F16 => b.copy_from_slice(&half_bits(element(rng, mode))),
            GgmlType::Q8_0 | GgmlType::Q8_1 => {
                let d = act_scale(rng, mode);
                let start = if at == GgmlType::Q8_0 { 2 } else { 4 };
                let mut sum = 0i32;
                for q in &mut b[start..] {
                    let v = act_quant(rng, mode);
                    sum += v as i32;
                    *q = v as u8;
                }
                let d = f16::from_f32(d);
                b[..2].copy_from_slice(&d.to_bits().to_le_bytes());
                if at == GgmlType::Q8_1 {
                    b[2..4].copy_from_slice(&half_bits(d.to_f32() * sum as f32));
                }
            }
            GgmlType::Q8_K => {
                let d = match mode {
                    Mode::Wild if rng.below(5) == 0 => 0.0,
                    Mode::Wild => rng.unit() * 2f32.powi(rng.below(10) as i32 - 9),
                    _ => act_scale(rng, mode),
                };
                b[..4].copy_from_slice(&d.to_le_bytes());
                for q in &mut b[4..260] {
                    *q = act_quant(rng, mode) as u8;
                }
                for g in 0..16 {
                    let s: i32 = b[4 + 16 * g..20 + 16 * g]
                        .iter()
                        .map(|&q| q as i8 as i32)
                        .sum();
                    b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
                }
            }
            _ => unreachable!("{at}"),
        }
    }
    a
}

/// Σ|w·a| (and Σ w·a) in f64 over the dequantized values: the scale of the rounding errors.
fn magnitude(t: GgmlType, n: usize, w: &[u8], a: &[u8]) -> (f64, f64) {
    let mut wf = vec![0f32; n];
    let mut af = vec![0f32; n];
    (scalar_kernels(t).unwrap().dequantize)(w, &mut wf);
    dequantize_row(t.vec_dot_type(), a, &mut af).unwrap();
    let abs = wf
        .iter()
        .zip(&af)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum();
    let sum = wf.iter().zip(&af).map(|(&x, &y)| x as f64 * y as f64).sum();
    (abs, sum)
}

/// Checks every tier's `vec_dot` for `t` on one row.
fn check_row(t: GgmlType, n: usize, w: &[u8], a: &[u8], mode: Mode) {
    let want = (scalar_kernels(t).unwrap().vec_dot)(n, w, a);
    let (abs, exact) = magnitude(t, n, w, a);
    if mode != Mode::Wild {
        assert_eq!(want as f64, exact, "{t} n={n}: the exact case is not exact");
    }
    for tier in simd_tiers() {
        let k = kernels_for(t, tier).unwrap();
        assert_eq!(k.dtype, t);
        assert_eq!(k.vec_dot_type, t.vec_dot_type());
        let got = (k.vec_dot)(n, w, a);
        if mode != Mode::Wild || bit_exact(t) {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{t} {tier} n={n} {mode:?}: {got} vs {want}"
            );
        } else {
            let err = (got as f64 - want as f64).abs();
            assert!(
                err <= 1e-5 * abs.max(want.abs() as f64),
                "{t} {tier} n={n}: {got} vs {want} (Σ|w·a| = {abs})"
            );
        }
    }
}

/// Block counts: one, odd ones, even ones.
const BLOCK_COUNTS: [usize; 6] = [1, 2, 3, 5, 8, 13];

#[test]
fn vec_dot_matches_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for t in TYPES {
        let bs = t.block_size();
        // F16/F32 "blocks" are single elements: test lengths around the vector widths too.
        let counts: Vec<usize> = if bs == 1 {
            (0..=40).chain([63, 64, 65, 100, 257, 1000]).collect()
        } else {
            BLOCK_COUNTS.to_vec()
        };
        for &nb in &counts {
            for mode in [
                Mode::Wild,
                Mode::Wild,
                Mode::Wild,
                Mode::Exact,
                Mode::Exact,
                Mode::Zero,
            ] {
                let w = weights(&mut rng, t, nb, mode);
                let a = activations(&mut rng, t, nb, mode);
                check_row(t, nb * bs, &w, &a, mode);
            }
            // Zero weights against wild activations.
            let w = weights(&mut rng, t, nb, Mode::Zero);
            let a = activations(&mut rng, t, nb, Mode::Wild);
            check_row(t, nb * bs, &w, &a, Mode::Zero);
        }
    }
}

/// Data at odd addresses: kernels must not assume any alignment.
#[test]
fn vec_dot_unaligned() {
    let mut rng = Rng(7);
    for t in TYPES {
        let bs = t.block_size();
        let nb = if bs == 1 { 37 } else { 3 };
        let w = weights(&mut rng, t, nb, Mode::Wild);
        let a = activations(&mut rng, t, nb, Mode::Wild);
        for shift in 1..4 {
            let mut ws = vec![0u8; shift];
            ws.extend_from_slice(&w);
            let mut as_ = vec![0u8; shift + 1];
            as_.extend_from_slice(&a);
            for tier in simd_tiers() {
                let k = kernels_for(t, tier).unwrap();
                let got = (k.vec_dot)(nb * bs, &ws[shift..], &as_[shift + 1..]);
                assert_eq!(
                    got.to_bits(),
                    (k.vec_dot)(nb * bs, &w, &a).to_bits(),
                    "{t} {tier}"
                );
            }
        }
    }
}

#[test]
fn vec_dot_multi_matches_rows() {
    let mut rng = Rng(42);
    for t in TYPES {
        let bs = t.block_size();
        let nb = if bs == 1 { 19 } else { 3 };
        let n = nb * bs;
        let w = weights(&mut rng, t, nb, Mode::Wild);
        let row = activations(&mut rng, t, nb, Mode::Wild).len();
        for rows in 1..=9 {
            for stride in [row, row + 7] {
                let mut a = vec![0u8; (rows - 1) * stride + row];
                for r in 0..rows {
                    let ar = activations(&mut rng, t, nb, Mode::Wild);
                    a[r * stride..r * stride + row].copy_from_slice(&ar);
                }
                for tier in simd_tiers() {
                    let k = kernels_for(t, tier).unwrap();
                    if t.block_size() > 1 {
                        assert!(k.vec_dot_multi.is_some(), "{t} {tier} has no multi");
                    }
                    let mut out = vec![f32::NAN; rows];
                    k.dot_multi(n, &w, &a, stride, &mut out);
                    for (r, o) in out.iter().enumerate() {
                        let ar = &a[r * stride..];
                        let own = (k.vec_dot)(n, &w, ar);
                        assert_eq!(o.to_bits(), own.to_bits(), "{t} {tier} row {r}/{rows}");
                        if bit_exact(t) {
                            let want = (scalar_kernels(t).unwrap().vec_dot)(n, &w, ar);
                            assert_eq!(o.to_bits(), want.to_bits(), "{t} {tier} row {r}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn float_kernels_match_reference() {
    let mut rng = Rng(3);
    let scalar = float_kernels_for(Tier::Scalar);
    for tier in simd_tiers() {
        let k = float_kernels_for(tier);
        for len in (0..=70).chain([127, 128, 129, 1000]) {
            let a: Vec<f32> = (0..len).map(|_| element(&mut rng, Mode::Wild)).collect();
            let b: Vec<f32> = (0..len).map(|_| element(&mut rng, Mode::Wild)).collect();
            let h: Vec<u16> = b.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
            let want = (scalar.dot_f32)(&a, &b);
            assert_eq!(
                (k.dot_f32)(&a, &b).to_bits(),
                want.to_bits(),
                "{tier} dot_f32 {len}"
            );
            let want = (scalar.dot_f32_f16)(&a, &h);
            let got = (k.dot_f32_f16)(&a, &h);
            assert_eq!(got.to_bits(), want.to_bits(), "{tier} dot_f32_f16 {len}");
            let alpha = rng.unit() * 3.0;
            let (mut y0, mut y1) = (a.clone(), a.clone());
            (scalar.axpy_f16)(&mut y0, alpha, &h);
            (k.axpy_f16)(&mut y1, alpha, &h);
            for (i, (p, q)) in y0.iter().zip(&y1).enumerate() {
                assert_eq!(p.to_bits(), q.to_bits(), "{tier} axpy_f16 {len} at {i}");
            }
        }
    }
}

/// Every half (subnormals, infinities, NaNs) widens as the scalar kernels widen it.
#[test]
fn axpy_f16_widens_every_half() {
    let scalar = float_kernels_for(Tier::Scalar);
    let x: Vec<u16> = (0..=u16::MAX).collect();
    let mut want = vec![0f32; x.len()];
    (scalar.axpy_f16)(&mut want, 1.0, &x);
    for tier in simd_tiers() {
        let mut got = vec![0f32; x.len()];
        (float_kernels_for(tier).axpy_f16)(&mut got, 1.0, &x);
        for (h, (p, q)) in want.iter().zip(&got).enumerate() {
            assert_eq!(p.to_bits(), q.to_bits(), "{tier} half {h:#06x}");
        }
    }
}
