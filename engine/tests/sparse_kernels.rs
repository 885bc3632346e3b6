//! The sparse FFN's kernels on every tier this CPU has (AVX2 and AVX-512 on x86-64, NEON and
//! dotprod on aarch64; scalar everywhere).
//!
//! * `axpy_q8_0` / `axpy_q8_0_x4` against the scalar reference, bit for bit (every tier forms
//!   `s = d·alpha` and then `y + s·q` with a separate multiply and add), and against an independent
//!   f64 evaluation of `y + alpha·dequant(row)` within f32 rounding;
//! * a composite: a sparse FFN step built from the tier's `vec_dot` (gate, up) and down-block
//!   kernels over [`DownCols`], against a dense scalar reference with the same mask, for Q4_0 /
//!   Q4_1 / Q8_0 / Q4_K gate and up matrices and Q4_0 / Q4_1 / Q8_0 / F32 `down` (the last
//!   re-quantized to 8 bits); the columns are checked against the model's own numbers.

use sparsetop_engine::model::weights::Matrix;
use sparsetop_engine::ops::norm::silu;
use sparsetop_engine::quant::{
    available_tiers, dequantize_row, float_kernels_for, kernels_for, quantize_activations, Tier,
};
use sparsetop_engine::sparse::down_cols::{ColKind, DownCols};
use sparsetop_engine::GgmlType;

/// Bytes of a Q8_0 block (f16 scale, 32 signed quants).
const Q8_0_BYTES: usize = 34;

/// xorshift64*: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next() as u8;
        }
    }
}

/// A random f16 block scale: zero, negative, subnormal, ±65504 and ordinary values.
fn scale(rng: &mut Rng) -> f32 {
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    match rng.below(12) {
        0 => 0.0,
        1 => sign * 65504.0,
        2 => sign * half::f16::from_bits(1 + rng.below(0x3ff) as u16).to_f32(), // subnormal
        3 => sign * 6.1e-5,
        _ => sign * (0.0005 + rng.unit().abs() * 2.0),
    }
}

/// A random multiplier: zero, negative, tiny, large and ordinary values.
fn alpha(rng: &mut Rng) -> f32 {
    match rng.below(10) {
        0 => 0.0,
        1 => rng.unit() * 1e-30,
        2 => rng.unit() * 1e4,
        _ => rng.unit() * 3.0,
    }
}

/// A random Q8_0 row of `nb` blocks: every quant value (-128 included) and awkward scales.
fn q8_0_row(rng: &mut Rng, nb: usize) -> Vec<u8> {
    let mut row = vec![0u8; nb * Q8_0_BYTES];
    rng.fill(&mut row);
    for b in row.chunks_exact_mut(Q8_0_BYTES) {
        let d = half::f16::from_f32(scale(rng)).to_bits();
        b[..2].copy_from_slice(&d.to_le_bytes());
    }
    row
}

/// `bytes` placed `off` bytes into a fresh buffer, so kernels see rows at any alignment, as in an
/// mmap or a `DownT` whose row size (34·nb) is not a multiple of anything useful.
fn misaligned(bytes: &[u8], off: usize) -> Vec<u8> {
    let mut v = vec![0xa5u8; off];
    v.extend_from_slice(bytes);
    v
}

fn dequant(t: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(t, b, &mut out).unwrap();
    out
}

fn assert_same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what} [{j}]: {g} vs scalar {w}");
    }
}

/// `y` after adding `alpha_k · dequant(rows_k)` for each k, in f64, with Σ|terms| per element,
/// to check the scalar reference itself: three roundings per row (s, s·q, y + s·q) of at most
/// 2^-24 relative each bound its error by 1.5·ε·Σ|terms| per row (ε = f32::EPSILON = 2^-23),
/// plus the absolute error of a subnormal `s` times |q| ≤ 128.
fn check_against_f64(what: &str, got: &[f32], y0: &[f32], alphas: &[f32], rows: &[&[u8]]) {
    let n = y0.len();
    let mut want: Vec<f64> = y0.iter().map(|&v| v as f64).collect();
    let mut mag: Vec<f64> = y0.iter().map(|&v| (v as f64).abs()).collect();
    for (&a, row) in alphas.iter().zip(rows) {
        let x = dequant(GgmlType::Q8_0, row, n);
        for j in 0..n {
            let t = a as f64 * x[j] as f64;
            want[j] += t;
            mag[j] += t.abs();
        }
    }
    for j in 0..n {
        let err = (got[j] as f64 - want[j]).abs();
        let tol = 2.0 * rows.len() as f64 * f32::EPSILON as f64 * mag[j]
            + rows.len() as f64 * 128.0 * 1.5e-45;
        assert!(
            err <= tol,
            "{what} [{j}]: {} vs f64 {} (|diff| {err:e}, Σ|terms| {:e})",
            got[j],
            want[j],
            mag[j]
        );
    }
}

/// Lengths 32..=2048 in steps of 32, as the test sweeps them.
fn lengths() -> impl Iterator<Item = usize> {
    (1..=64).map(|nb| 32 * nb)
}

#[test]
fn axpy_q8_0_matches_scalar_on_every_tier() {
    let s = float_kernels_for(Tier::Scalar);
    for &tier in available_tiers() {
        let k = float_kernels_for(tier);
        for seed in 0..8u64 {
            let mut rng = Rng::new(1000 + seed);
            for n in lengths() {
                let nb = n / 32;
                let row = q8_0_row(&mut rng, nb);
                let buf = misaligned(&row, (seed as usize + nb) % 4);
                let row = &buf[buf.len() - row.len()..];
                let a = alpha(&mut rng);
                let y0: Vec<f32> = (0..n).map(|_| rng.unit() * 100.0).collect();
                let (mut got, mut want) = (y0.clone(), y0.clone());
                (k.axpy_q8_0)(&mut got, a, row);
                (s.axpy_q8_0)(&mut want, a, row);
                let what = format!("{tier} n={n} seed={seed} alpha={a}");
                assert_same_bits(&what, &got, &want);
                check_against_f64(&what, &want, &y0, &[a], &[row]);
            }
        }
    }
}

#[test]
fn axpy_q8_0_x4_matches_four_scalar_calls_on_every_tier() {
    let s = float_kernels_for(Tier::Scalar);
    for &tier in available_tiers() {
        let k = float_kernels_for(tier);
        for seed in 0..8u64 {
            let mut rng = Rng::new(2000 + seed);
            for n in lengths() {
                let nb = n / 32;
                let bufs: Vec<Vec<u8>> = (0..4)
                    .map(|i| misaligned(&q8_0_row(&mut rng, nb), (i + seed as usize) % 4))
                    .collect();
                let mut rows: [&[u8]; 4] =
                    std::array::from_fn(|i| &bufs[i][bufs[i].len() - nb * Q8_0_BYTES..]);
                if seed == 7 {
                    // The same neuron twice is allowed (and order still matters for rounding).
                    rows[2] = rows[0];
                }
                let alphas = [alpha(&mut rng), alpha(&mut rng), alpha(&mut rng), -1.5];
                let y0: Vec<f32> = (0..n).map(|_| rng.unit() * 100.0).collect();
                let what = format!("{tier} n={n} seed={seed}");

                let mut want = y0.clone();
                for (&a, row) in alphas.iter().zip(rows) {
                    (s.axpy_q8_0)(&mut want, a, row);
                }
                let mut scalar_x4 = y0.clone();
                (s.axpy_q8_0_x4)(&mut scalar_x4, alphas, rows);
                assert_same_bits(&format!("{what} scalar x4"), &scalar_x4, &want);

                let mut got = y0.clone();
                (k.axpy_q8_0_x4)(&mut got, alphas, rows);
                assert_same_bits(&format!("{what} x4"), &got, &want);
                check_against_f64(&what, &got, &y0, &alphas, &rows);
            }
        }
    }
}

/// Mismatched sizes are caller bugs: every tier panics before touching memory, rather than
/// reading past the row or writing past `y`.
#[test]
fn axpy_q8_0_rejects_mismatched_sizes_on_every_tier() {
    let row = vec![0u8; 8 * Q8_0_BYTES];
    let cases: [(&str, usize, usize); 4] = [
        ("short row", 128, 3 * Q8_0_BYTES),
        ("long row", 64, 3 * Q8_0_BYTES),
        ("partial block", 80, 3 * Q8_0_BYTES),
        ("row not whole blocks", 96, 3 * Q8_0_BYTES - 1),
    ];
    for &tier in available_tiers() {
        let k = float_kernels_for(tier);
        for (what, n, rb) in cases {
            let mut y = vec![0f32; n];
            let r = &row[..rb];
            let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (k.axpy_q8_0)(&mut y, 1.0, r)
            }));
            assert!(one.is_err(), "{tier} axpy_q8_0 accepted a {what}");
            let ok = &row[..n / 32 * Q8_0_BYTES];
            for bad in 0..4 {
                let mut rows = [ok; 4];
                rows[bad] = r;
                let four = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (k.axpy_q8_0_x4)(&mut y, [1.0; 4], rows)
                }));
                assert!(
                    four.is_err(),
                    "{tier} axpy_q8_0_x4 accepted a {what} in row {bad}"
                );
            }
        }
    }
}

/// Byte offsets of a weight block's f16 fields.
fn half_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match t {
        T::Q4_0 | T::Q5_0 | T::Q8_0 => &[0],
        T::Q4_1 | T::Q5_1 | T::Q4_K | T::Q5_K => &[0, 2],
        _ => unreachable!("{t}"),
    }
}

/// A random `rows × cols` weight matrix of type `t`: random bytes with every f16 field replaced by
/// a modest value (some zero, some negative), so dot products stay well inside f32 range.
fn weight_matrix(rng: &mut Rng, t: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let rb = t.row_bytes(cols as u64).unwrap() as usize;
    let mut w = vec![0u8; rows * rb];
    rng.fill(&mut w);
    for b in w.chunks_exact_mut(t.type_size()) {
        for &o in half_fields(t) {
            let v = match rng.below(10) {
                0 => 0.0,
                _ => rng.unit() * 0.05,
            };
            b[o..o + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
        }
    }
    w
}

/// One random FFN: gate and up (`n_ff × n_embd`, type `t`), a random `down` (`n_embd × n_ff`, type
/// `dt`) split by neuron as the engine does ([`DownCols`]), an input and a mask.
struct Ffn {
    t: GgmlType,
    n_embd: usize,
    n_ff: usize,
    gate: Vec<u8>,
    up: Vec<u8>,
    down: DownCols,
    x: Vec<f32>,
}

impl Ffn {
    fn new(rng: &mut Rng, t: GgmlType, dt: GgmlType, n_embd: usize, n_ff: usize) -> Ffn {
        let gate = weight_matrix(rng, t, n_ff, n_embd);
        let up = weight_matrix(rng, t, n_ff, n_embd);
        // `down` as a GGUF holds it: n_embd rows of n_ff.
        let bytes = if dt == GgmlType::F32 {
            (0..n_embd * n_ff)
                .flat_map(|_| (rng.unit() * 0.1).to_le_bytes())
                .collect()
        } else {
            weight_matrix(rng, dt, n_embd, n_ff)
        };
        let m = Matrix {
            dtype: dt,
            kernels: kernels_for(dt, Tier::Scalar).unwrap(),
            rows: n_embd,
            cols: n_ff,
            offset: 0,
            row_bytes: dt.row_bytes(n_ff as u64).unwrap() as usize,
        };
        let down = DownCols::build(&m, &bytes, ColKind::for_type(dt), true).unwrap();
        assert_eq!(down.kind, ColKind::for_type(dt));
        // Every column holds the model's numbers: exactly for the types whose blocks share
        // scales across 32 neurons, within half a step of the 8-bit re-quantization otherwise.
        let mut dense = vec![0f32; n_ff];
        let mut col = vec![0f32; n_embd];
        for i in 0..n_ff {
            down.dequantize_col(down.col(i), i, &mut col);
            for (r, &c) in col.iter().enumerate() {
                dequantize_row(
                    dt,
                    &bytes[r * m.row_bytes..(r + 1) * m.row_bytes],
                    &mut dense,
                )
                .unwrap();
                let w = dense[i];
                if dt == GgmlType::F32 {
                    let blk = &dense[i / 32 * 32..i / 32 * 32 + 32];
                    let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
                    assert!(
                        (c - w).abs() <= amax / 127.0 * 0.51 + 1e-7,
                        "{dt} [{r},{i}]: {c} vs {w}"
                    );
                } else {
                    assert_eq!(c, w, "{dt} column {i} row {r}");
                }
            }
        }
        let x = (0..n_embd).map(|_| rng.unit() * 2.0).collect();
        Ffn {
            t,
            n_embd,
            n_ff,
            gate,
            up,
            down,
            x,
        }
    }

    fn w_rows(&self) -> usize {
        self.t.row_bytes(self.n_embd as u64).unwrap() as usize
    }

    /// The input converted to the weight type's activation format, as the sparse FFN does.
    fn activations(&self, tier: Tier) -> Vec<u8> {
        let vdt = kernels_for(self.t, tier).unwrap().vec_dot_type;
        let mut a = vec![0u8; vdt.row_bytes(self.n_embd as u64).unwrap() as usize];
        quantize_activations(vdt, &self.x, &mut a);
        a
    }

    /// The masked neurons' `a_i = silu(g_i)·u_i`, from the tier's `vec_dot` of gate and up.
    fn active(&self, tier: Tier, mask: &[bool]) -> Vec<(usize, f32)> {
        let k = kernels_for(self.t, tier).unwrap();
        let a = self.activations(tier);
        let rb = self.w_rows();
        (0..self.n_ff)
            .filter(|&i| mask[i])
            .map(|i| {
                let g = (k.vec_dot)(self.n_embd, &self.gate[i * rb..(i + 1) * rb], &a);
                let u = (k.vec_dot)(self.n_embd, &self.up[i * rb..(i + 1) * rb], &a);
                (i, silu(g) * u)
            })
            .collect()
    }

    /// `Σ a_i · down[:, i]` over `active` (in neuron order) with the tier's down-block kernels,
    /// one call per block of 32 neurons that has an active one, as the engine does.
    fn accumulate(&self, tier: Tier, active: &[(usize, f32)]) -> Vec<f32> {
        let fk = float_kernels_for(tier);
        let mut y = vec![0f32; self.n_embd];
        for b in 0..self.n_ff / 32 {
            let here: Vec<&(usize, f32)> = active.iter().filter(|(i, _)| i / 32 == b).collect();
            if here.is_empty() {
                continue;
            }
            let a: Vec<f32> = here.iter().map(|x| x.1).collect();
            let cols: Vec<&[u8]> = here.iter().map(|x| self.down.col(x.0)).collect();
            let sc = self.down.block_scales(b);
            match self.down.kind {
                ColKind::Nib4 => (fk.down_nib4)(&mut y, sc, &cols, &a, a.iter().sum()),
                ColKind::I8 => (fk.down_i8)(&mut y, sc, &cols, &a),
            }
        }
        y
    }

    /// The sparse step at `tier`, as the engine's sparse FFN computes it.
    fn sparse(&self, tier: Tier, mask: &[bool]) -> Vec<f32> {
        self.accumulate(tier, &self.active(tier, mask))
    }

    /// The dense scalar reference in f64: everything dequantized (weights, the converted
    /// activations, `down`'s columns), `a = silu(g) ⊙ u` with `a_i = 0` outside the mask, then
    /// `down · a`. Also returns, per output, a bound on the error a correct f32 sparse step can
    /// make: the dot products' rounding (1e-5 of Σ|w·x|, carried through silu, whose slope is
    /// below 1.1) plus the block sums' rounding (1e-5 of Σ|a_i|·(|d|·|q|max + |m|), the scales
    /// being applied to the sum).
    fn dense(&self, tier: Tier, mask: &[bool]) -> (Vec<f64>, Vec<f64>) {
        const REL: f64 = 1e-5;
        let (n, rb) = (self.n_embd, self.w_rows());
        let vdt = kernels_for(self.t, tier).unwrap().vec_dot_type;
        let x = dequant(vdt, &self.activations(tier), n);
        let dot = |w: &[u8]| {
            let w = dequant(self.t, w, n);
            let d: f64 = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum();
            let m: f64 = w
                .iter()
                .zip(&x)
                .map(|(&w, &x)| (w as f64 * x as f64).abs())
                .sum();
            (d, m)
        };
        let silu64 = |v: f64| v / (1.0 + (-v).exp());
        let (mut y, mut bound) = (vec![0f64; n], vec![0f64; n]);
        let mut col = vec![0f32; n];
        for i in (0..self.n_ff).filter(|&i| mask[i]) {
            let (g, gm) = dot(&self.gate[i * rb..(i + 1) * rb]);
            let (u, um) = dot(&self.up[i * rb..(i + 1) * rb]);
            let a = silu64(g) * u;
            let da = REL * (1.1 * gm * u.abs() + silu64(g).abs() * um) + REL * a.abs();
            self.down.dequantize_col(self.down.col(i), i, &mut col);
            let sc = self.down.block_scales(i / 32);
            for j in 0..n {
                y[j] += a * col[j] as f64;
                let d = half::f16::from_bits(sc[j]).to_f64().abs();
                let mag = match self.down.kind {
                    ColKind::Nib4 => d * 15.0 + half::f16::from_bits(sc[n + j]).to_f64().abs(),
                    ColKind::I8 => d * 128.0,
                };
                bound[j] += da * (col[j] as f64).abs() + REL * a.abs() * mag;
            }
        }
        (y, bound)
    }
}

/// Where `got` is further from `want` than `bound` allows (+ a tiny absolute slack), the first
/// such output.
fn compare(got: &[f32], want: &[f64], bound: &[f64]) -> Result<(), String> {
    for j in 0..got.len() {
        let err = (got[j] as f64 - want[j]).abs();
        if err > bound[j] + 1e-30 {
            return Err(format!(
                "[{j}]: {} vs dense {} (|diff| {err:e}, bound {:e})",
                got[j], want[j], bound[j]
            ));
        }
    }
    Ok(())
}

#[test]
fn sparse_ffn_matches_dense_reference_on_every_tier() {
    let cases = [
        (GgmlType::Q4_1, GgmlType::Q4_1, 96, 64),
        (GgmlType::Q4_1, GgmlType::Q4_1, 576, 224),
        (GgmlType::Q8_0, GgmlType::Q8_0, 96, 64),
        (GgmlType::Q8_0, GgmlType::Q8_0, 576, 224),
        (GgmlType::Q4_0, GgmlType::Q4_0, 96, 64),
        (GgmlType::Q4_0, GgmlType::Q4_0, 576, 224),
        (GgmlType::Q4_K, GgmlType::F32, 512, 160),
    ];
    let mut drops_checked = 0;
    for (ci, &(t, dt, n_embd, n_ff)) in cases.iter().enumerate() {
        let mut rng = Rng::new(3000 + ci as u64);
        let ffn = Ffn::new(&mut rng, t, dt, n_embd, n_ff);
        for density in [0u64, 1, 3, 10] {
            // density/10 of the neurons active: none, a few, about a third, all.
            let mask: Vec<bool> = (0..n_ff).map(|_| rng.below(10) < density).collect();
            for &tier in available_tiers() {
                let (want, bound) = ffn.dense(tier, &mask);
                let what = format!("{t}/{dt} {n_embd}x{n_ff} {tier} density={density}/10");
                let got = ffn.sparse(tier, &mask);
                if let Err(e) = compare(&got, &want, &bound) {
                    panic!("{what}: {e}");
                }
                // The comparison can fail: without the neuron that adds the most, the answer
                // is another one (checked where that neuron's share exceeds the error bound).
                let active = ffn.active(tier, &mask);
                if let Some(&(big, ab)) =
                    active.iter().max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
                {
                    let mut col = vec![0f32; n_embd];
                    ffn.down.dequantize_col(ffn.down.col(big), big, &mut col);
                    let visible = (0..n_embd)
                        .any(|j| (ab as f64 * col[j] as f64).abs() > 2.0 * bound[j] + 1e-30);
                    if visible {
                        drops_checked += 1;
                        let mut wrong = mask.clone();
                        wrong[big] = false;
                        let got = ffn.sparse(tier, &wrong);
                        assert!(
                            compare(&got, &want, &bound).is_err(),
                            "{what}: dropping neuron {big} went unnoticed"
                        );
                    }
                }
            }
        }
    }
    assert!(
        drops_checked >= cases.len() * available_tiers().len(),
        "only {drops_checked} dropped-neuron checks ran"
    );
}
