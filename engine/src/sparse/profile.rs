//! The sparsity profile: what calibration learned about a model's FFN neurons, in a versioned,
//! checksummed, memory-mappable file.
//!
//! Layout (all little-endian; every section starts on a 64-byte boundary so it can be used in place
//! from a memory map):
//!
//! | part | contents |
//! |---|---|
//! | header, 128 bytes | magic `SPTPROF1`, version u32, flags u32 (bit 0: predictor present), n_layer, n_ff, n_embd, n_levels, rank, calib_tokens (u32 each), model hash (32 bytes, sha256 of the FFN tensors), payload sha256 (32 bytes) |
//! | `levels` f32[n_levels] | target sparsities the thresholds are for (0.05, 0.10, ... 0.95) |
//! | `gate_thresholds` f32[n_layer][n_levels] | per layer, the quantile of \|act(gate)\| at each level (CATS/TEAL thresholds) |
//! | `act_thresholds` f32[n_layer][n_levels] | per layer, the same quantiles of \|a\| = \|act(gate)·up\| |
//! | `mean_abs_act` f32[n_layer][n_ff] | per neuron, mean \|a_i\| over the calibration tokens |
//! | `freq` u16[n_layer][n_levels][n_ff] | per neuron and level, the share of tokens where it is active (×65535) |
//! | `order` u32[n_layer][n_ff] | per layer, neurons hot-first (by activity at sparsity 0.5) |
//! | `pred_a` f16[n_layer][rank][n_embd] | predictor, first factor (rows are input projections) |
//! | `pred_b` f16[n_layer][n_ff][rank] | predictor, second factor (one row per neuron) |
//! | `pred_thresholds` f32[n_layer][n_levels] | threshold on the predicted \|act(gate)\| that keeps the predictor's recall of active neurons near 99% |
//! | `pred_recall` f32[n_layer][n_levels] | predictor recall on the calibration tokens |
//!
//! The predictor estimates the gate pre-activations as `g ≈ B · (A · x)`.

use super::u16_table::{le_values, U16Table};
use crate::error::{Error, Result};
use crate::safe_write::{check_target, write_atomic, Busy};
use memmap2::Mmap;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"SPTPROF1";
/// Version 2: `freq`, `order` and the predictor thresholds count a neuron active when it passes
/// both decode thresholds (gate screen and |a|), not the gate threshold alone as in version 1.
pub const VERSION: u32 = 2;
const HEADER: usize = 128;
const ALIGN: usize = 64;
/// Extension of profile files, placed next to the model: `model.gguf` → `model.gguf.sparsity`.
pub const EXTENSION: &str = "sparsity";

/// Dimensions of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_embd: usize,
    pub n_levels: usize,
    /// Predictor rank (0 = no predictor).
    pub rank: usize,
}

/// A profile's contents, owned (what calibration produces and the file round-trips to).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileData {
    pub dims: Dims,
    pub calib_tokens: u32,
    pub model_hash: [u8; 32],
    pub levels: Vec<f32>,
    pub gate_thresholds: Vec<f32>,
    pub act_thresholds: Vec<f32>,
    pub mean_abs_act: Vec<f32>,
    pub freq: Vec<u16>,
    pub order: Vec<u32>,
    /// Left in the file's map when read from a file (see [`U16Table`]).
    pub pred_a: U16Table,
    pub pred_b: U16Table,
    pub pred_thresholds: Vec<f32>,
    pub pred_recall: Vec<f32>,
}

/// Byte ranges of the sections, computed from the dimensions with overflow checks.
struct Sections {
    levels: (usize, usize),
    gate_thresholds: (usize, usize),
    act_thresholds: (usize, usize),
    mean_abs_act: (usize, usize),
    freq: (usize, usize),
    order: (usize, usize),
    pred_a: (usize, usize),
    pred_b: (usize, usize),
    pred_thresholds: (usize, usize),
    pred_recall: (usize, usize),
    end: usize,
}

fn sections(d: &Dims) -> Option<Sections> {
    let mut at = HEADER;
    let mut next = |elems: Option<usize>, size: usize| -> Option<(usize, usize)> {
        let bytes = elems?.checked_mul(size)?;
        let start = at.checked_next_multiple_of(ALIGN)?;
        at = start.checked_add(bytes)?;
        Some((start, bytes))
    };
    let (l, f, e, v, r) = (d.n_layer, d.n_ff, d.n_embd, d.n_levels, d.rank);
    let lv = l.checked_mul(v);
    let lf = l.checked_mul(f);
    let s = Sections {
        levels: next(Some(v), 4)?,
        gate_thresholds: next(lv, 4)?,
        act_thresholds: next(lv, 4)?,
        mean_abs_act: next(lf, 4)?,
        freq: next(lv.and_then(|x| x.checked_mul(f)), 2)?,
        order: next(lf, 4)?,
        pred_a: next(l.checked_mul(r).and_then(|x| x.checked_mul(e)), 2)?,
        pred_b: next(lf.and_then(|x| x.checked_mul(r)), 2)?,
        pred_thresholds: next(lv, 4)?,
        pred_recall: next(lv, 4)?,
        end: 0,
    };
    Some(Sections {
        end: at.checked_next_multiple_of(ALIGN)?,
        ..s
    })
}

/// Where a model's profile lives by default: next to the model, or in the cache directory when
/// the model's folder is not writable.
pub fn default_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(EXTENSION);
    model.with_file_name(name)
}

/// The fallback location in the cache directory, keyed by the model's file name.
pub fn cache_path(model: &Path) -> Result<PathBuf> {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(EXTENSION);
    Ok(crate::fetch::cache_dir()?.join("profiles").join(name))
}

/// Where a new profile for the model goes: next to it when that path can be written (see
/// [`check_target`]), else in the cache directory; an error naming both paths and what is wrong
/// with each when neither can. Cheap: run it before a calibration, not after.
pub fn destination(model: &Path) -> Result<PathBuf> {
    let first = match check_target(&default_path(model), &[model]) {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    check_target(&cache_path(model)?, &[model]).map_err(|second| {
        Error::Invalid(format!(
            "no place to write the sparsity profile: {first}; and in the cache directory: {second}"
        ))
    })
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl ProfileData {
    /// Checks that every array has the length its dimensions call for.
    pub fn validate(&self) -> Result<()> {
        let d = &self.dims;
        let checks = [
            ("levels", self.levels.len(), d.n_levels),
            (
                "gate_thresholds",
                self.gate_thresholds.len(),
                d.n_layer * d.n_levels,
            ),
            (
                "act_thresholds",
                self.act_thresholds.len(),
                d.n_layer * d.n_levels,
            ),
            ("mean_abs_act", self.mean_abs_act.len(), d.n_layer * d.n_ff),
            ("freq", self.freq.len(), d.n_layer * d.n_levels * d.n_ff),
            ("order", self.order.len(), d.n_layer * d.n_ff),
            ("pred_a", self.pred_a.len(), d.n_layer * d.rank * d.n_embd),
            ("pred_b", self.pred_b.len(), d.n_layer * d.n_ff * d.rank),
            (
                "pred_thresholds",
                self.pred_thresholds.len(),
                d.n_layer * d.n_levels,
            ),
            (
                "pred_recall",
                self.pred_recall.len(),
                d.n_layer * d.n_levels,
            ),
        ];
        for (name, got, want) in checks {
            if got != want {
                return Err(Error::Invalid(format!(
                    "profile section {name} has {got} values, expected {want}"
                )));
            }
        }
        Ok(())
    }

    /// Serialises the profile.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let d = &self.dims;
        let s = sections(d).ok_or_else(|| Error::Invalid("profile dimensions overflow".into()))?;
        let mut b = vec![0u8; s.end];
        b[..8].copy_from_slice(MAGIC);
        put_u32(&mut b, 8, VERSION);
        put_u32(&mut b, 12, (d.rank > 0) as u32);
        for (i, v) in [d.n_layer, d.n_ff, d.n_embd, d.n_levels, d.rank]
            .into_iter()
            .enumerate()
        {
            put_u32(&mut b, 16 + 4 * i, v as u32);
        }
        put_u32(&mut b, 36, self.calib_tokens);
        b[40..72].copy_from_slice(&self.model_hash);
        fn f32s(b: &mut [u8], (at, _): (usize, usize), v: &[f32]) {
            for (i, x) in v.iter().enumerate() {
                b[at + 4 * i..at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        fn u16s(b: &mut [u8], (at, _): (usize, usize), v: &[u16]) {
            for (i, x) in v.iter().enumerate() {
                b[at + 2 * i..at + 2 * i + 2].copy_from_slice(&x.to_le_bytes());
            }
        }
        f32s(&mut b, s.levels, &self.levels);
        f32s(&mut b, s.gate_thresholds, &self.gate_thresholds);
        f32s(&mut b, s.act_thresholds, &self.act_thresholds);
        f32s(&mut b, s.mean_abs_act, &self.mean_abs_act);
        u16s(&mut b, s.freq, &self.freq);
        for (i, x) in self.order.iter().enumerate() {
            let at = s.order.0 + 4 * i;
            b[at..at + 4].copy_from_slice(&x.to_le_bytes());
        }
        u16s(&mut b, s.pred_a, &self.pred_a);
        u16s(&mut b, s.pred_b, &self.pred_b);
        f32s(&mut b, s.pred_thresholds, &self.pred_thresholds);
        f32s(&mut b, s.pred_recall, &self.pred_recall);
        let sum = Sha256::digest(&b[HEADER..]);
        b[72..104].copy_from_slice(&sum);
        Ok(b)
    }

    /// Writes the profile as [`ProfileData::write_with`] does, with no inputs to protect and
    /// failing if another writer is writing `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.write_with(path, &[], Busy::Fail)
    }

    /// Writes the profile through an [`AtomicFile`](crate::safe_write::AtomicFile): refused when
    /// `path` is one of `inputs` (the model) or a special file, written to a temporary file of its
    /// own that every failure removes, then renamed into place; `busy` says whether to wait for
    /// another writer of `path`.
    pub fn write_with(&self, path: &Path, inputs: &[&Path], busy: Busy) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes, inputs, busy)
    }

    /// Parses and verifies a profile image; `what` names it in errors.
    pub fn from_bytes(b: &[u8], what: &str) -> Result<Self> {
        Self::parse(b, what, None)
    }

    /// As [`ProfileData::from_bytes`]; with `map` (the map `b` is), the predictor's tables stay
    /// in it instead of being copied.
    fn parse(b: &[u8], what: &str, map: Option<&Arc<Mmap>>) -> Result<Self> {
        let bad = |m: String| Error::Invalid(format!("sparsity profile {what}: {m}"));
        if b.len() < HEADER {
            return Err(bad(format!(
                "truncated ({} bytes, header is {HEADER})",
                b.len()
            )));
        }
        if &b[..8] != MAGIC {
            return Err(bad("bad magic: not a sparsetop sparsity profile".into()));
        }
        let version = get_u32(b, 8);
        if version != VERSION {
            return Err(bad(format!(
                "version {version}, this sparsetop reads version {VERSION}: run `sparsetop calibrate` again"
            )));
        }
        let flags = get_u32(b, 12);
        let dim = |i: usize| get_u32(b, 16 + 4 * i) as usize;
        let dims = Dims {
            n_layer: dim(0),
            n_ff: dim(1),
            n_embd: dim(2),
            n_levels: dim(3),
            rank: dim(4),
        };
        if (flags & 1 == 1) != (dims.rank > 0) {
            return Err(bad("predictor flag and rank disagree".into()));
        }
        let s = sections(&dims).ok_or_else(|| bad("dimensions overflow".into()))?;
        if s.end != b.len() {
            return Err(bad(format!(
                "size {} bytes, its dimensions call for {} (truncated or corrupt)",
                b.len(),
                s.end
            )));
        }
        if Sha256::digest(&b[HEADER..])[..] != b[72..104] {
            return Err(bad("checksum mismatch: the file is corrupt".into()));
        }
        let f32s = |(at, n): (usize, usize)| -> Vec<f32> {
            b[at..at + n]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        };
        let u16s = |(at, n): (usize, usize)| -> Vec<u16> { le_values(&b[at..at + n]) };
        let table = |(at, n): (usize, usize)| -> U16Table {
            match map {
                Some(m) => U16Table::mapped(m, at, n / 2),
                None => u16s((at, n)).into(),
            }
        };
        let order: Vec<u32> = b[s.order.0..s.order.0 + s.order.1]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if order.iter().any(|&i| i as usize >= dims.n_ff) {
            return Err(bad("neuron order names a neuron past the FFN width".into()));
        }
        let mut model_hash = [0u8; 32];
        model_hash.copy_from_slice(&b[40..72]);
        let p = ProfileData {
            dims,
            calib_tokens: get_u32(b, 36),
            model_hash,
            levels: f32s(s.levels),
            gate_thresholds: f32s(s.gate_thresholds),
            act_thresholds: f32s(s.act_thresholds),
            mean_abs_act: f32s(s.mean_abs_act),
            freq: u16s(s.freq),
            order,
            pred_a: table(s.pred_a),
            pred_b: table(s.pred_b),
            pred_thresholds: f32s(s.pred_thresholds),
            pred_recall: f32s(s.pred_recall),
        };
        if p.levels
            .windows(2)
            .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            || p.levels.iter().any(|l| !(0.0..1.0).contains(l))
        {
            return Err(bad(
                "sparsity levels are not increasing values in [0, 1)".into()
            ));
        }
        Ok(p)
    }

    /// Reads a profile file: the small tables are copied out, the predictor's stay in the map.
    pub fn read(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: a read-only map of a file sparsetop writes whole and renames into place (a
        // profile is never rewritten in place); a file truncated under it by someone else would
        // fault, as the model's own map would.
        let map = Arc::new(unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?);
        Self::parse(&map, &path.display().to_string(), Some(&map))
    }

    /// Threshold on |act(gate)| of `layer` for target sparsity `s`, interpolated between levels.
    pub fn gate_threshold(&self, layer: usize, s: f32) -> f32 {
        interp(
            &self.levels,
            &self.gate_thresholds[layer * self.dims.n_levels..(layer + 1) * self.dims.n_levels],
            s,
        )
    }

    /// Threshold on |a| = |act(gate)·up| of `layer` for target sparsity `s`.
    pub fn act_threshold(&self, layer: usize, s: f32) -> f32 {
        let n = self.dims.n_levels;
        interp(
            &self.levels,
            &self.act_thresholds[layer * n..(layer + 1) * n],
            s,
        )
    }

    /// Threshold on the predictor's |act(gate)| estimate of `layer` for target sparsity `s`.
    pub fn pred_threshold(&self, layer: usize, s: f32) -> f32 {
        let n = self.dims.n_levels;
        interp(
            &self.levels,
            &self.pred_thresholds[layer * n..(layer + 1) * n],
            s,
        )
    }

    /// Whether the profile carries a predictor.
    pub fn has_predictor(&self) -> bool {
        self.dims.rank > 0
    }

    /// The hot-first neuron order of a layer.
    pub fn order(&self, layer: usize) -> &[u32] {
        &self.order[layer * self.dims.n_ff..(layer + 1) * self.dims.n_ff]
    }
}

/// Piecewise-linear interpolation of `ys` over increasing `xs`, clamped at both ends (a
/// sparsity below the first level gets a threshold scaled down toward 0 at sparsity 0).
pub(crate) fn interp(xs: &[f32], ys: &[f32], x: f32) -> f32 {
    if x <= 0.0 || xs.is_empty() {
        return 0.0;
    }
    if x <= xs[0] {
        return ys[0] * x / xs[0];
    }
    for i in 1..xs.len() {
        if x <= xs[i] {
            let t = (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
            return ys[i - 1] + t * (ys[i] - ys[i - 1]);
        }
    }
    *ys.last().expect("non-empty")
}

/// sha256 over the FFN tensors (names, shapes, types and bytes) of a model: what a profile
/// depends on.
pub fn model_hash(file: &crate::gguf::GgufFile, n_layer: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    for l in 0..n_layer {
        for part in ["ffn_norm", "ffn_gate", "ffn_up", "ffn_down"] {
            let name = format!("blk.{l}.{part}.weight");
            if let Some(t) = file.tensor(&name) {
                h.update(name.as_bytes());
                for d in &t.info.dims {
                    h.update(d.to_le_bytes());
                }
                h.update(t.info.dtype.id().to_le_bytes());
                // A read error leaves a hash no profile matches, which is reported as a mismatch.
                let _ = file.stream_tensor(t.info, &mut |b| h.update(b));
            }
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(rank: usize) -> ProfileData {
        let dims = Dims {
            n_layer: 2,
            n_ff: 8,
            n_embd: 4,
            n_levels: 3,
            rank,
        };
        let n = |k: usize| (0..k).map(|i| i as f32 * 0.5).collect::<Vec<f32>>();
        ProfileData {
            dims,
            calib_tokens: 77,
            model_hash: [7; 32],
            levels: vec![0.25, 0.5, 0.75],
            gate_thresholds: n(6),
            act_thresholds: n(6),
            mean_abs_act: n(16),
            freq: (0..48).map(|i| i as u16 * 1000).collect(),
            order: (0..16).map(|i| (i % 8) as u32).collect(),
            pred_a: (0..2 * rank * 4)
                .map(|i| i as u16)
                .collect::<Vec<_>>()
                .into(),
            pred_b: (0..2 * 8 * rank)
                .map(|i| i as u16)
                .collect::<Vec<_>>()
                .into(),
            pred_thresholds: vec![0.1; 6],
            pred_recall: vec![0.9; 6],
        }
    }

    #[test]
    fn round_trip() {
        for rank in [0, 3] {
            let p = sample(rank);
            let b = p.to_bytes().unwrap();
            assert_eq!(b.len() % ALIGN, 0);
            assert_eq!(ProfileData::from_bytes(&b, "t").unwrap(), p);
        }
    }

    #[test]
    fn corruption_is_detected() {
        let b = sample(2).to_bytes().unwrap();
        let err = |b: &[u8]| ProfileData::from_bytes(b, "t").unwrap_err().to_string();
        assert!(err(&b[..100]).contains("truncated"));
        assert!(err(&b[..b.len() - 64]).contains("size"));
        let mut c = b.clone();
        c[0] = b'X';
        assert!(err(&c).contains("bad magic"));
        let mut c = b.clone();
        c[8] = 9;
        assert!(err(&c).contains("version 9"));
        let mut c = b.clone();
        let last = c.len() - 70;
        c[last] ^= 1;
        assert!(err(&c).contains("checksum"));
        let mut c = b.clone();
        c[16] = 0xff;
        c[17] = 0xff;
        assert!(err(&c).contains("size"));
    }

    #[test]
    fn thresholds_interpolate() {
        let p = sample(0);
        // Layer 1 thresholds are 1.5, 2.0, 2.5 at 0.25, 0.5, 0.75.
        assert_eq!(p.gate_threshold(1, 0.5), 2.0);
        assert!((p.gate_threshold(1, 0.625) - 2.25).abs() < 1e-6);
        assert_eq!(p.gate_threshold(1, 0.9), 2.5);
        assert_eq!(p.gate_threshold(1, 0.0), 0.0);
    }
}
