//! The sparse FFN's kernels on every tier this CPU has (AVX2 and AVX-512 on x86-64, NEON and
//! dotprod on aarch64; scalar everywhere), put together as the engine uses them: a sparse FFN step
//! built from the tier's `vec_dot` (gate, up) and down-block kernels (`down_nib4`, `down_i8`) over
//! [`DownCols`] (each neuron's `down` column as the model's own quants, scales per block of 32
//! neurons), against a dense scalar reference with the same mask, for Q4_0 / Q4_1 / Q8_0 / Q4_K
//! gate and up matrices and Q4_0 / Q4_1 / Q8_0 / F32 `down` (the last re-quantized to 8 bits); the
//! columns are checked against the model's own numbers. The down-block kernels alone, bit for bit
//! against the scalar reference, are in `down_block.rs`.

mod common;

use common::rng::Rng;
use sparsetop_engine::model::weights::Matrix;
use sparsetop_engine::ops::norm::silu;
use sparsetop_engine::quant::{
    available_tiers, dequantize_row, float_kernels_for, kernels_for, quantize_activations, Tier,
};
use sparsetop_engine::sparse::down_cols::{ColKind, DownCols};
use sparsetop_engine::GgmlType;

fn dequant(t: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(t, b, &mut out).unwrap();
    out
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
