//! The neuron bundle: a model's FFN rewritten neuron by neuron, hot neurons first, for flash
//! offload.
//!
//! Under a memory budget the FFN weights are read from storage as decode needs them. In the GGUF
//! file a neuron's three pieces are far apart (a row of `ffn_gate`, a row of `ffn_up`, a *column* of
//! `ffn_down`, spread over a whole tensor), so reading one active neuron would cost three reads, one
//! of them scattered. Here each neuron is one contiguous **record**:
//!
//! `[gate row i | up row i | down column i]`
//!
//! The gate and up rows are the model's bytes as they are (any supported type: Q4_1, Q8_0, F16...);
//! the down column is the neuron's column of [`DownCols`]: the model's own 4-bit quants for a
//! Q4_0/Q4_1 `down` (8-bit for Q8_0, re-quantized to 8 bits for other types), byte for byte what
//! the in-memory sparse path reads, so decoding from the bundle gives the same results bit for
//! bit. The column's scales, shared by 32 neurons, are not in the records: they stay resident
//! (the engine reads them from the model file once).
//!
//! Records are stored per layer in the profile's hot-first order (rank `k` of layer `l` holds
//! neuron `order(l)[k]`): neurons that fire often sit together, so the pages worth caching are few
//! and contiguous. They are packed into **clusters**: `per_cluster = max(1, 4096 / record_bytes)`
//! records, padded with zeros to `cluster_bytes`, a multiple of 4 KiB, so a cluster is a whole
//! number of pages and can be read with direct I/O. A record larger than 4 KiB gets a cluster of
//! its own. SmolLM2-135M (Q4_1, width 576): 360 + 360 + 288 = 1008 bytes per record, 4 per 4 KiB
//! cluster, 384 clusters (1.5 MiB) per layer, 45 MiB in all.
//!
//! Layout (all little-endian):
//!
//! | offset | contents |
//! |---|---|
//! | 0 | header, 256 bytes (below) |
//! | `orders_offset` (256) | `order` u32[n_layer][n_ff]: per layer, the neuron stored at each rank |
//! | `crc_offset` (64-aligned) | `cluster_crc` u32[n_layer][clusters_per_layer]: CRC32 (IEEE) of each cluster's `cluster_bytes` bytes, padding included |
//! | `data_offset` (4 KiB-aligned) | layer `l` at `data_offset + l·layer_stride`: `clusters_per_layer` clusters of `cluster_bytes` bytes |
//!
//! The record of rank `k` in layer `l` is at
//! `data_offset + l·layer_stride + (k / per_cluster)·cluster_bytes + (k % per_cluster)·record_bytes`.
//! Gaps (between the tables, after the last record of a cluster) are zeros.
//!
//! Header:
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `SPTBNDL1` |
//! | 8 | version u32 (2; version 1 stored Q8_0 down columns) |
//! | 12 | flags u32 (0, reserved) |
//! | 16 | n_layer, n_ff, n_embd (u32 each) |
//! | 28 | gate type, up type (ggml type ids), down column format (1 = 4-bit, 2 = 8-bit; [`ColKind::code`]) (u32 each) |
//! | 40 | gate_bytes, up_bytes, down_bytes, record_bytes, per_cluster, clusters_per_layer (u32 each) |
//! | 64 | cluster_bytes, layer_stride, orders_offset, crc_offset, data_offset, file_bytes (u64 each) |
//! | 112 | model hash (32 bytes: [`profile::model_hash`], sha256 of the FFN tensors) |
//! | 144 | order hash (32 bytes: sha256 of every layer's `order` as u32 LE, what the profile had) |
//! | 176 | tables sha256 (32 bytes: of bytes `orders_offset..data_offset`) |
//! | 208 | header sha256 (32 bytes: of the 256 header bytes, with this field zeroed) |
//! | 240 | reserved, zeros |
//!
//! Every derived field (sizes, offsets) is stored although it follows from the dimensions and
//! types: a reader checks that they agree, so a file from a writer with different rules is refused
//! rather than misread. The checksums cover only the header and tables, read once at load; the
//! data is covered cluster by cluster by the CRC table so a reader can check each read for a few
//! microseconds instead of hashing the whole file up front: the offload readers check every
//! cluster they read before a record of it reaches compute ([`super::cluster_check`]), and
//! `sparsetop convert` checks the whole file ([`verify_file`]).

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::weights::Weights;
use crate::model::Model;
use crate::safe_write::{check_target, AtomicFile, Busy};
use crate::sparse::down_cols::{self, ColKind, DownCols};
use crate::sparse::profile::{self, ProfileData};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"SPTBNDL1";
pub const VERSION: u32 = 2;
/// Extension of bundle files, placed next to the model: `model.gguf` → `model.gguf.bundle`.
pub const EXTENSION: &str = "bundle";
/// The page size clusters are aligned to and sized in (4 KiB: the usual page and the unit of
/// direct I/O on today's drives).
pub const PAGE: usize = 4096;
/// Size of the header.
pub const HEADER: usize = 256;
const TABLE_ALIGN: u64 = 64;

/// Header field offsets.
mod field {
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    /// n_layer, n_ff, n_embd, gate type, up type, down type, gate_bytes, up_bytes, down_bytes,
    /// record_bytes, per_cluster, clusters_per_layer: u32 each.
    pub const U32S: usize = 16;
    /// cluster_bytes, layer_stride, orders_offset, crc_offset, data_offset, file_bytes: u64 each.
    pub const U64S: usize = 64;
    pub const MODEL_HASH: usize = 112;
    pub const ORDER_HASH: usize = 144;
    pub const TABLES_SHA: usize = 176;
    pub const HEADER_SHA: usize = 208;
}

/// Where everything is in a bundle file, derived from the FFN's shape and types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLayout {
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_embd: usize,
    pub gate_type: GgmlType,
    pub up_type: GgmlType,
    pub down_kind: ColKind,
    /// Bytes of a gate row, an up row (as in the model) and a down column.
    pub gate_bytes: usize,
    pub up_bytes: usize,
    pub down_bytes: usize,
    /// `gate_bytes + up_bytes + down_bytes`.
    pub record_bytes: usize,
    /// Records per cluster.
    pub per_cluster: usize,
    pub clusters_per_layer: usize,
    /// Bytes of a cluster: a multiple of [`PAGE`].
    pub cluster_bytes: usize,
    pub orders_offset: u64,
    pub crc_offset: u64,
    /// Offset of layer 0's first cluster ([`PAGE`]-aligned).
    pub data_offset: u64,
    /// Bytes from one layer's first cluster to the next layer's.
    pub layer_stride: u64,
}

impl BundleLayout {
    /// The layout for an FFN of `n_layer × n_ff` neurons of width `n_embd` whose gate and up rows
    /// are of the given types. Errors when a row of `n_embd` elements is not a whole number of
    /// blocks of a type (the down column needs `n_embd` to be a multiple of 32 for Q8_0) or the
    /// sizes overflow.
    pub fn new(
        n_layer: usize,
        n_ff: usize,
        n_embd: usize,
        gate_type: GgmlType,
        up_type: GgmlType,
        down_kind: ColKind,
    ) -> Result<Self> {
        let bad = |m: String| Error::Model(format!("cannot make a neuron bundle: {m}"));
        if n_layer == 0 || n_ff == 0 || n_embd == 0 {
            return Err(bad(format!(
                "empty FFN ({n_layer} layers × {n_ff} neurons, width {n_embd})"
            )));
        }
        if [n_layer, n_ff, n_embd]
            .iter()
            .any(|&d| u32::try_from(d).is_err())
        {
            return Err(bad("dimensions do not fit 32 bits".into()));
        }
        let row = |t: GgmlType, what: &str| -> Result<usize> {
            if !t.is_supported() {
                return Err(bad(format!(
                    "{what} rows are {t}, a type sparsetop cannot compute with"
                )));
            }
            t.row_bytes(n_embd as u64)
                .and_then(|b| usize::try_from(b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{what} rows of {n_embd} elements are not a whole number of {t} blocks of {}",
                        t.block_size()
                    ))
                })
        };
        let gate_bytes = row(gate_type, "gate")?;
        let up_bytes = row(up_type, "up")?;
        down_cols::check_shape(n_embd, n_ff).map_err(|e| bad(e.to_string()))?;
        let down_bytes = down_kind.col_bytes(n_embd);
        let overflow = || bad("sizes overflow".into());
        let record_bytes = gate_bytes + up_bytes + down_bytes;
        let per_cluster = (PAGE / record_bytes).max(1);
        let cluster_bytes = (per_cluster * record_bytes)
            .checked_next_multiple_of(PAGE)
            .ok_or_else(overflow)?;
        let clusters_per_layer = n_ff.div_ceil(per_cluster);
        let layer_stride = (clusters_per_layer as u64)
            .checked_mul(cluster_bytes as u64)
            .ok_or_else(overflow)?;
        if u32::try_from(record_bytes).is_err() {
            return Err(bad(format!(
                "records of {record_bytes} bytes do not fit 32 bits"
            )));
        }
        let orders_offset = HEADER as u64;
        let table_end = |entries: usize, start: u64, align: u64| {
            (n_layer as u64)
                .checked_mul(entries as u64)
                .and_then(|n| n.checked_mul(4))
                .and_then(|b| b.checked_add(start))
                .and_then(|e| e.checked_next_multiple_of(align))
        };
        let crc_offset = table_end(n_ff, orders_offset, TABLE_ALIGN).ok_or_else(overflow)?;
        let data_offset =
            table_end(clusters_per_layer, crc_offset, PAGE as u64).ok_or_else(overflow)?;
        let layout = BundleLayout {
            n_layer,
            n_ff,
            n_embd,
            gate_type,
            up_type,
            down_kind,
            gate_bytes,
            up_bytes,
            down_bytes,
            record_bytes,
            per_cluster,
            clusters_per_layer,
            cluster_bytes,
            orders_offset,
            crc_offset,
            data_offset,
            layer_stride,
        };
        // Every other offset is below the file's end, so this one check covers them all.
        layout.checked_file_bytes().ok_or_else(overflow)?;
        Ok(layout)
    }

    /// The layout for a model's FFN. All layers must share one gate type and one up type (a
    /// record has one size); so must `down`'s column format.
    pub fn for_model(weights: &Weights) -> Result<Self> {
        let bad = |m: String| Error::Model(format!("cannot make a neuron bundle: {m}"));
        let l0 = weights
            .layers
            .first()
            .ok_or_else(|| bad("the model has no layers".into()))?;
        let (n_ff, n_embd) = (l0.gate.rows, l0.gate.cols);
        for (i, l) in weights.layers.iter().enumerate() {
            for (name, m, first) in [("gate", &l.gate, &l0.gate), ("up", &l.up, &l0.up)] {
                if m.dtype != first.dtype {
                    return Err(bad(format!(
                        "layer {i}'s ffn_{name} is {}, layer 0's is {}: records need one type per matrix across layers",
                        m.dtype, first.dtype
                    )));
                }
                if (m.rows, m.cols) != (n_ff, n_embd) {
                    return Err(bad(format!(
                        "layer {i}'s ffn_{name} is {}×{}, layer 0's gate is {n_ff}×{n_embd}",
                        m.rows, m.cols
                    )));
                }
            }
            if (l.down.rows, l.down.cols) != (n_embd, n_ff) {
                return Err(bad(format!(
                    "layer {i}'s ffn_down is {}×{}, expected {n_embd}×{n_ff}",
                    l.down.rows, l.down.cols
                )));
            }
        }
        let layout = Self::new(
            weights.layers.len(),
            n_ff,
            n_embd,
            l0.gate.dtype,
            l0.up.dtype,
            ColKind::for_types(weights.layers.iter().map(|l| l.down.dtype)),
        )?;
        if layout.gate_bytes != l0.gate.row_bytes || layout.up_bytes != l0.up.row_bytes {
            return Err(bad(format!(
                "the model's gate/up rows take {}/{} bytes, their type calls for {}/{}",
                l0.gate.row_bytes, l0.up.row_bytes, layout.gate_bytes, layout.up_bytes
            )));
        }
        Ok(layout)
    }

    fn checked_file_bytes(&self) -> Option<u64> {
        (self.n_layer as u64)
            .checked_mul(self.layer_stride)?
            .checked_add(self.data_offset)
    }

    /// Size of the whole file.
    pub fn file_bytes(&self) -> u64 {
        self.data_offset + self.n_layer as u64 * self.layer_stride
    }

    /// The cluster holding rank `rank`.
    #[inline]
    pub fn cluster_of(&self, rank: usize) -> usize {
        rank / self.per_cluster
    }

    /// Byte offset of rank `rank`'s record inside its cluster.
    #[inline]
    pub fn offset_in_cluster(&self, rank: usize) -> usize {
        (rank % self.per_cluster) * self.record_bytes
    }

    /// Ranks stored in cluster `cluster` (the last cluster of a layer may be partly empty).
    pub fn ranks_of(&self, cluster: usize) -> std::ops::Range<usize> {
        (cluster * self.per_cluster).min(self.n_ff)
            ..((cluster + 1) * self.per_cluster).min(self.n_ff)
    }

    /// File offset of layer `layer`'s first cluster.
    #[inline]
    pub fn layer_offset(&self, layer: usize) -> u64 {
        self.data_offset + layer as u64 * self.layer_stride
    }

    /// File offset of a cluster (a multiple of [`PAGE`]).
    #[inline]
    pub fn cluster_offset(&self, layer: usize, cluster: usize) -> u64 {
        self.layer_offset(layer) + (cluster * self.cluster_bytes) as u64
    }

    /// File offset of the record of rank `rank` in layer `layer`.
    #[inline]
    pub fn record_offset(&self, layer: usize, rank: usize) -> u64 {
        self.cluster_offset(layer, self.cluster_of(rank)) + self.offset_in_cluster(rank) as u64
    }

    /// Splits a record into its gate row, up row and down column.
    #[inline]
    pub fn split_record<'a>(&self, record: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8]) {
        let (gate, rest) = record[..self.record_bytes].split_at(self.gate_bytes);
        let (up, down) = rest.split_at(self.up_bytes);
        (gate, up, down)
    }
}

/// What a bundle's header and tables say: read at load ([`read_info`]) or returned by the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInfo {
    /// The file these were read from or written to (named in errors).
    pub path: PathBuf,
    pub layout: BundleLayout,
    /// [`profile::model_hash`] of the model the bundle was made from.
    pub model_hash: [u8; 32],
    /// sha256 of the hot-first order the records follow ([`order_hash`]).
    pub order_hash: [u8; 32],
    /// Per layer, the neuron at each rank: `n_layer × n_ff`.
    pub orders: Vec<u32>,
    /// CRC32 of each cluster: `n_layer × clusters_per_layer`.
    pub cluster_crc: Vec<u32>,
}

impl BundleInfo {
    /// The neuron at each rank of layer `layer`.
    pub fn order(&self, layer: usize) -> &[u32] {
        let n = self.layout.n_ff;
        &self.orders[layer * n..(layer + 1) * n]
    }

    /// The stored CRC32 of a cluster.
    pub fn crc(&self, layer: usize, cluster: usize) -> u32 {
        self.cluster_crc[layer * self.layout.clusters_per_layer + cluster]
    }
}

/// sha256 of a profile's hot-first orders (every layer's, as u32 LE): identifies which order a
/// bundle's records follow.
pub fn order_hash(order: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    for &i in order {
        h.update(i.to_le_bytes());
    }
    h.finalize().into()
}

/// Where a model's bundle lives by default: next to the model (`MODEL.bundle`).
pub fn default_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(EXTENSION);
    model.with_file_name(name)
}

/// The fallback location in the cache directory (when the model's folder is not writable), keyed
/// by the model's file name.
pub fn cache_path(model: &Path) -> Result<PathBuf> {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(EXTENSION);
    Ok(crate::fetch::cache_dir()?.join("bundles").join(name))
}

/// Checks that each layer's order is a permutation of `0..n_ff`.
fn check_orders(orders: &[u32], n_layer: usize, n_ff: usize) -> std::result::Result<(), String> {
    if orders.len() != n_layer * n_ff {
        return Err(format!(
            "{} order entries, expected {n_layer} × {n_ff}",
            orders.len()
        ));
    }
    let mut seen = vec![false; n_ff];
    for (l, order) in orders.chunks_exact(n_ff).enumerate() {
        seen.fill(false);
        for &i in order {
            match seen.get_mut(i as usize) {
                Some(s) if !*s => *s = true,
                Some(_) => return Err(format!("layer {l}'s order lists neuron {i} twice")),
                None => {
                    return Err(format!(
                        "layer {l}'s order names neuron {i}, past the FFN width {n_ff}"
                    ))
                }
            }
        }
    }
    Ok(())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header's u32 fields, in file order.
fn header_u32s(l: &BundleLayout) -> [u32; 12] {
    [
        l.n_layer as u32,
        l.n_ff as u32,
        l.n_embd as u32,
        l.gate_type.id(),
        l.up_type.id(),
        l.down_kind.code(),
        l.gate_bytes as u32,
        l.up_bytes as u32,
        l.down_bytes as u32,
        l.record_bytes as u32,
        l.per_cluster as u32,
        l.clusters_per_layer as u32,
    ]
}

const U32_NAMES: [&str; 12] = [
    "n_layer",
    "n_ff",
    "n_embd",
    "gate type",
    "up type",
    "down column format",
    "gate_bytes",
    "up_bytes",
    "down_bytes",
    "record_bytes",
    "per_cluster",
    "clusters_per_layer",
];

/// The header's u64 fields, in file order.
fn header_u64s(l: &BundleLayout) -> [u64; 6] {
    [
        l.cluster_bytes as u64,
        l.layer_stride,
        l.orders_offset,
        l.crc_offset,
        l.data_offset,
        l.file_bytes(),
    ]
}

const U64_NAMES: [&str; 6] = [
    "cluster_bytes",
    "layer_stride",
    "orders_offset",
    "crc_offset",
    "data_offset",
    "file_bytes",
];

/// sha256 of a header with its own checksum field read as zeros.
fn header_sha(h: &[u8]) -> [u8; 32] {
    let mut c = [0u8; HEADER];
    c.copy_from_slice(&h[..HEADER]);
    c[field::HEADER_SHA..field::HEADER_SHA + 32].fill(0);
    Sha256::digest(c).into()
}

fn encode_header(info: &BundleInfo, tables_sha: &[u8; 32]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    put_u32(&mut h, field::VERSION, VERSION);
    put_u32(&mut h, field::FLAGS, 0);
    for (i, v) in header_u32s(&info.layout).into_iter().enumerate() {
        put_u32(&mut h, field::U32S + 4 * i, v);
    }
    for (i, v) in header_u64s(&info.layout).into_iter().enumerate() {
        put_u64(&mut h, field::U64S + 8 * i, v);
    }
    h[field::MODEL_HASH..field::MODEL_HASH + 32].copy_from_slice(&info.model_hash);
    h[field::ORDER_HASH..field::ORDER_HASH + 32].copy_from_slice(&info.order_hash);
    h[field::TABLES_SHA..field::TABLES_SHA + 32].copy_from_slice(tables_sha);
    let sum = header_sha(&h);
    h[field::HEADER_SHA..field::HEADER_SHA + 32].copy_from_slice(&sum);
    h
}

/// The tables (`orders_offset..data_offset`) as bytes.
fn encode_tables(info: &BundleInfo) -> Vec<u8> {
    let l = &info.layout;
    let base = l.orders_offset as usize;
    let mut t = vec![0u8; l.data_offset as usize - base];
    for (i, v) in info.orders.iter().enumerate() {
        put_u32(&mut t, 4 * i, *v);
    }
    let crc_at = l.crc_offset as usize - base;
    for (i, v) in info.cluster_crc.iter().enumerate() {
        put_u32(&mut t, crc_at + 4 * i, *v);
    }
    t
}

/// Writes the bundle of `model` with the hot-first order of `profile` to `path`, as
/// [`write_bundle_with`] does with no inputs but the model's file, failing if another writer is
/// writing `path`.
pub fn write_bundle(
    path: &Path,
    model: &Model,
    profile: &ProfileData,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BundleInfo> {
    write_bundle_with(path, model, profile, &[], Busy::Fail, progress)
}

/// Writes the bundle of `model` with the hot-first order of `profile` to `path`.
///
/// The file goes through an [`AtomicFile`]: `path` must not be the model's file or one of
/// `inputs` (the profile's file, say) nor a special file; the bundle is written to a temporary
/// file of its own with ordinary buffered writes, one layer in memory at a time, then synced,
/// dropped from the page cache (so a memory-limited process is not charged for the file it just
/// wrote) and renamed into place: a reader never sees a partial bundle, and two writers of one
/// path take turns (`busy` says whether to wait) instead of mixing their data.
/// `progress(done, total)` is called with layers done. Refuses a profile of another model or
/// shape.
pub fn write_bundle_with(
    path: &Path,
    model: &Model,
    profile: &ProfileData,
    inputs: &[&Path],
    busy: Busy,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BundleInfo> {
    let layout = BundleLayout::for_model(&model.weights)?;
    let model_hash = profile::model_hash(&model.file, layout.n_layer);
    check_profile(profile, &layout, &model_hash)?;
    let out = AtomicFile::create(path, &with_model(model, inputs), busy)?;
    write_hashed(out, model, profile, layout, model_hash, progress)
}

/// `inputs` and the model's own file, if it was read from one.
fn with_model<'a>(model: &'a Model, inputs: &[&'a Path]) -> Vec<&'a Path> {
    inputs.iter().copied().chain(model.file.path()).collect()
}

/// Refuses a profile of another model or shape, or with orders that are not permutations.
fn check_profile(
    profile: &ProfileData,
    layout: &BundleLayout,
    model_hash: &[u8; 32],
) -> Result<()> {
    profile.validate()?;
    let d = &profile.dims;
    if (d.n_layer, d.n_ff, d.n_embd) != (layout.n_layer, layout.n_ff, layout.n_embd) {
        return Err(Error::Invalid(format!(
            "the sparsity profile is for a model with {} layers × {} neurons (width {}), this one has {} × {} (width {})",
            d.n_layer, d.n_ff, d.n_embd, layout.n_layer, layout.n_ff, layout.n_embd
        )));
    }
    if &profile.model_hash != model_hash {
        return Err(Error::Invalid(
            "the sparsity profile was made for a different model (its FFN weights differ): run `sparsetop calibrate` for this model".into(),
        ));
    }
    check_orders(&profile.order, layout.n_layer, layout.n_ff)
        .map_err(|m| Error::Invalid(format!("sparsity profile: {m}")))
}

/// Writes the bundle into `out` and commits it (a failure drops `out`, which removes its
/// temporary file).
fn write_hashed(
    mut out: AtomicFile,
    model: &Model,
    profile: &ProfileData,
    layout: BundleLayout,
    model_hash: [u8; 32],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BundleInfo> {
    let mut info = BundleInfo {
        path: out.target().to_path_buf(),
        layout,
        model_hash,
        order_hash: order_hash(&profile.order),
        orders: profile.order.clone(),
        cluster_crc: Vec::with_capacity(layout.n_layer * layout.clusters_per_layer),
    };
    write_data(&mut out, model, &mut info, progress)?;
    out.commit()?;
    Ok(info)
}

/// Writes the data, then the header and tables, to `out`; fills `info.cluster_crc`.
fn write_data(
    out: &mut AtomicFile,
    model: &Model,
    info: &mut BundleInfo,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let temp = out.temp_path().to_path_buf();
    let io = |e| Error::io(&temp, e);
    let l = info.layout;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    // Placeholder for the header and tables: the CRCs are known only once the data is written.
    w.write_all(&vec![0u8; l.data_offset as usize])
        .map_err(io)?;
    let bytes = model.file.bytes();
    let mut buf = vec![0u8; l.layer_stride as usize];
    progress(0, l.n_layer);
    for (li, lw) in model.weights.layers.iter().enumerate() {
        // The very code the in-memory sparse path uses, so the bytes are the same.
        let data = lw.down.rows_data(bytes, 0, lw.down.rows);
        let down = DownCols::build(&lw.down, data, l.down_kind, true)?;
        assert_eq!(down.col_bytes, l.down_bytes, "down column size");
        buf.fill(0);
        for (rank, &neuron) in info.order(li).iter().enumerate() {
            let i = neuron as usize;
            let at = l.cluster_of(rank) * l.cluster_bytes + l.offset_in_cluster(rank);
            let rec = &mut buf[at..at + l.record_bytes];
            let (gate, rest) = rec.split_at_mut(l.gate_bytes);
            let (up, dn) = rest.split_at_mut(l.up_bytes);
            gate.copy_from_slice(lw.gate.rows_data(bytes, i, i + 1));
            up.copy_from_slice(lw.up.rows_data(bytes, i, i + 1));
            dn.copy_from_slice(down.col(i));
        }
        info.cluster_crc
            .extend(buf.chunks_exact(l.cluster_bytes).map(crc32fast::hash));
        w.write_all(&buf).map_err(io)?;
        // Each layer goes to disk and out of the page cache as it is written: dirty pages count
        // against a memory limit until written back, and the whole file would not fit in a small
        // one (the first run under an 85 MiB limit was OOM-killed writing it).
        w.flush().map_err(io)?;
        w.get_ref().file().sync_data().map_err(io)?;
        drop_page_cache(w.get_ref().file());
        progress(li + 1, l.n_layer);
    }
    let tables = encode_tables(info);
    let tables_sha: [u8; 32] = Sha256::digest(&tables).into();
    let header = encode_header(info, &tables_sha);
    w.seek(SeekFrom::Start(0)).map_err(io)?;
    w.write_all(&header).map_err(io)?;
    w.write_all(&tables).map_err(io)?;
    let out = w.into_inner().map_err(|e| io(e.into_error()))?;
    out.file().sync_all().map_err(io)?;
    drop_page_cache(out.file());
    Ok(())
}

/// Asks the kernel to drop a file's pages from the page cache (best effort: only on Linux, and
/// only clean pages go, hence after `sync_all`).
pub fn drop_page_cache(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor we own; it reads and writes no memory.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Reads and validates a bundle's header and tables (not the data, which [`verify_cluster`]
/// checks read by read): magic, version, header checksum, agreement of every size and offset with
/// the dimensions and of the file's length with them, tables checksum, orders that are
/// permutations and match their hash.
pub fn read_info(path: &Path) -> Result<BundleInfo> {
    let bad = |m: String| Error::Invalid(format!("neuron bundle {}: {m}", path.display()));
    let rerun = "rerun `sparsetop convert`";
    let io = |e| Error::io(path, e);
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len < HEADER as u64 {
        return Err(bad(format!(
            "truncated ({len} bytes, the header alone is {HEADER}): {rerun}"
        )));
    }
    let mut h = [0u8; HEADER];
    f.read_exact(&mut h).map_err(io)?;
    if &h[..8] != MAGIC {
        return Err(bad("bad magic: not a sparsetop neuron bundle".into()));
    }
    let version = get_u32(&h, field::VERSION);
    if version != VERSION {
        return Err(bad(format!(
            "version {version}, this sparsetop reads version {VERSION}: {rerun}"
        )));
    }
    if header_sha(&h)[..] != h[field::HEADER_SHA..field::HEADER_SHA + 32] {
        return Err(bad(format!(
            "header checksum mismatch: the file is corrupt: {rerun}"
        )));
    }
    // From here on the header is as written; what remains are checks against a writer with other
    // rules (or a hand-made file) and against damage to the rest of the file.
    let u32s: Vec<u32> = (0..12).map(|i| get_u32(&h, field::U32S + 4 * i)).collect();
    let u64s: Vec<u64> = (0..6).map(|i| get_u64(&h, field::U64S + 8 * i)).collect();
    let ty = |id: u32, what: &str| {
        GgmlType::from_id(id).map_err(|_| bad(format!("unknown {what} type id {id}")))
    };
    let layout = BundleLayout::new(
        u32s[0] as usize,
        u32s[1] as usize,
        u32s[2] as usize,
        ty(u32s[3], "gate")?,
        ty(u32s[4], "up")?,
        ColKind::from_code(u32s[5])
            .ok_or_else(|| bad(format!("unknown down column format {}: {rerun}", u32s[5])))?,
    )
    .map_err(|e| bad(format!("inconsistent header: {e}")))?;
    for (i, want) in header_u32s(&layout).into_iter().enumerate() {
        if u32s[i] != want {
            return Err(bad(format!(
                "inconsistent header: {} is {}, the dimensions call for {want}: {rerun}",
                U32_NAMES[i], u32s[i]
            )));
        }
    }
    for (i, want) in header_u64s(&layout).into_iter().enumerate() {
        if u64s[i] != want {
            return Err(bad(format!(
                "inconsistent header: {} is {}, the dimensions call for {want}: {rerun}",
                U64_NAMES[i], u64s[i]
            )));
        }
    }
    let file_bytes = layout.file_bytes();
    if len < file_bytes {
        return Err(bad(format!(
            "truncated ({len} bytes, the header calls for {file_bytes}; an interrupted copy?): {rerun}"
        )));
    }
    if len > file_bytes {
        return Err(bad(format!(
            "size {len} bytes, the header calls for {file_bytes}: the file is corrupt: {rerun}"
        )));
    }
    let base = layout.orders_offset as usize;
    let mut tables = vec![0u8; layout.data_offset as usize - base];
    f.seek(SeekFrom::Start(layout.orders_offset))
        .and_then(|_| f.read_exact(&mut tables))
        .map_err(io)?;
    if Sha256::digest(&tables)[..] != h[field::TABLES_SHA..field::TABLES_SHA + 32] {
        return Err(bad(format!(
            "checksum mismatch in the order and CRC tables: the file is corrupt: {rerun}"
        )));
    }
    let n_orders = layout.n_layer * layout.n_ff;
    let orders: Vec<u32> = (0..n_orders).map(|i| get_u32(&tables, 4 * i)).collect();
    check_orders(&orders, layout.n_layer, layout.n_ff).map_err(bad)?;
    let mut model_hash = [0u8; 32];
    model_hash.copy_from_slice(&h[field::MODEL_HASH..field::MODEL_HASH + 32]);
    let mut stored_order_hash = [0u8; 32];
    stored_order_hash.copy_from_slice(&h[field::ORDER_HASH..field::ORDER_HASH + 32]);
    if order_hash(&orders) != stored_order_hash {
        return Err(bad(format!(
            "the order hash does not match the stored orders: {rerun}"
        )));
    }
    let crc_at = layout.crc_offset as usize - base;
    let cluster_crc = (0..layout.n_layer * layout.clusters_per_layer)
        .map(|i| get_u32(&tables, crc_at + 4 * i))
        .collect();
    Ok(BundleInfo {
        path: path.to_path_buf(),
        layout,
        model_hash,
        order_hash: stored_order_hash,
        orders,
        cluster_crc,
    })
}

/// Checks that a bundle belongs to this model and this profile's neuron order.
pub fn check_matches(
    info: &BundleInfo,
    model_hash: &[u8; 32],
    profile: &ProfileData,
) -> Result<()> {
    let bad = |m: &str| {
        Error::Invalid(format!(
            "neuron bundle {}: {m}: rerun `sparsetop convert`",
            info.path.display()
        ))
    };
    if &info.model_hash != model_hash {
        return Err(bad("made for a different model (its FFN weights differ)"));
    }
    let (l, d) = (&info.layout, &profile.dims);
    if (l.n_layer, l.n_ff) != (d.n_layer, d.n_ff) || order_hash(&profile.order) != info.order_hash {
        return Err(bad(
            "made with a different sparsity profile (its hot-first neuron order differs)",
        ));
    }
    Ok(())
}

/// Checks a cluster read from the file against its CRC.
pub fn verify_cluster(info: &BundleInfo, layer: usize, cluster: usize, bytes: &[u8]) -> Result<()> {
    let l = &info.layout;
    let bad = |m: String| Error::Invalid(format!("neuron bundle {}: {m}", info.path.display()));
    if layer >= l.n_layer || cluster >= l.clusters_per_layer {
        return Err(bad(format!(
            "no cluster {cluster} in layer {layer} ({} layers of {} clusters)",
            l.n_layer, l.clusters_per_layer
        )));
    }
    if bytes.len() != l.cluster_bytes {
        return Err(bad(format!(
            "layer {layer} cluster {cluster}: {} bytes read, a cluster is {}",
            bytes.len(),
            l.cluster_bytes
        )));
    }
    let (got, want) = (crc32fast::hash(bytes), info.crc(layer, cluster));
    if got != want {
        return Err(bad(format!(
            "layer {layer} cluster {cluster} is corrupt (CRC32 {got:08x}, stored {want:08x}): rerun `sparsetop convert --force`"
        )));
    }
    Ok(())
}

/// Reads the whole data section and checks every cluster's CRC (one layer in memory at a time; the
/// pages read are dropped from the cache afterwards). `progress(done, total)` counts layers.
pub fn verify_file(info: &BundleInfo, progress: &mut dyn FnMut(usize, usize)) -> Result<()> {
    let l = &info.layout;
    let io = |e| Error::io(&info.path, e);
    let mut f = File::open(&info.path).map_err(io)?;
    let mut buf = vec![0u8; l.layer_stride as usize];
    f.seek(SeekFrom::Start(l.data_offset)).map_err(io)?;
    progress(0, l.n_layer);
    for layer in 0..l.n_layer {
        f.read_exact(&mut buf).map_err(io)?;
        for (c, bytes) in buf.chunks_exact(l.cluster_bytes).enumerate() {
            verify_cluster(info, layer, c, bytes)?;
        }
        progress(layer + 1, l.n_layer);
    }
    drop_page_cache(&f);
    Ok(())
}

/// A valid bundle for this model and profile at the default location or in the cache, if any.
/// Files that fail to read or match are passed over (they will be rebuilt).
pub fn find_bundle(
    model_path: &Path,
    model_hash: &[u8; 32],
    profile: &ProfileData,
) -> Option<BundleInfo> {
    let candidates = [Some(default_path(model_path)), cache_path(model_path).ok()];
    candidates.into_iter().flatten().find_map(|p| {
        let info = read_info(&p).ok()?;
        check_matches(&info, model_hash, profile).ok()?;
        Some(info)
    })
}

/// Where a new bundle for the model goes: next to it when that path can be written (see
/// [`check_target`]), else in the cache directory; an error naming both paths and what is wrong
/// with each when neither can. Cheap: commands call it before loading or calibrating anything.
pub fn destination(model_path: &Path) -> Result<PathBuf> {
    let next_to = default_path(model_path);
    let first = match check_target(&next_to, &[model_path]) {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    let cache = cache_path(model_path)?;
    check_target(&cache, &[model_path]).map_err(|second| {
        Error::Invalid(format!(
            "no place to write the neuron bundle: {first}; and in the cache directory: {second}"
        ))
    })
}

/// The bundle of `model` (loaded from `model_path`) for `profile`'s order: an existing valid,
/// matching file is reused; otherwise one is (re)built at [`destination`], with `progress` as in
/// [`write_bundle`]. When another sparsetop is writing it, `notice` hears so and this one waits,
/// then uses that writer's bundle if it matches.
pub fn ensure_bundle(
    model_path: &Path,
    model: &Model,
    profile: &ProfileData,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(PathBuf, BundleInfo)> {
    let layout = BundleLayout::for_model(&model.weights)?;
    let model_hash = profile::model_hash(&model.file, layout.n_layer);
    if let Some(info) = find_bundle(model_path, &model_hash, profile) {
        return Ok((info.path.clone(), info));
    }
    check_profile(profile, &layout, &model_hash)?;
    let dest = destination(model_path)?;
    let out = AtomicFile::create(&dest, &with_model(model, &[model_path]), Busy::Wait(notice))?;
    // Another writer may have made it while this one waited for the lock.
    if let Some(info) = find_bundle(model_path, &model_hash, profile) {
        return Ok((info.path.clone(), info));
    }
    let dest = out.target().to_path_buf();
    let info = write_hashed(out, model, profile, layout, model_hash, progress)?;
    Ok((dest, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_layout() {
        let l = BundleLayout::new(30, 1536, 576, GgmlType::Q4_1, GgmlType::Q4_1, ColKind::Nib4)
            .unwrap();
        assert_eq!((l.gate_bytes, l.up_bytes, l.down_bytes), (360, 360, 288));
        assert_eq!(l.record_bytes, 1008);
        assert_eq!((l.per_cluster, l.cluster_bytes), (4, 4096));
        assert_eq!(l.clusters_per_layer, 384);
        assert_eq!(l.layer_stride, 384 * 4096);
        assert_eq!(l.data_offset % PAGE as u64, 0);
        assert_eq!(l.crc_offset, 256 + 30 * 1536 * 4);
        assert_eq!(l.file_bytes(), l.data_offset + 30 * 384 * 4096);
        assert_eq!(l.record_offset(0, 0), l.data_offset);
        assert_eq!(l.record_offset(0, 2), l.data_offset + 2 * 1008);
        assert_eq!(
            l.record_offset(1, 5),
            l.data_offset + 384 * 4096 + 4096 + 1008
        );
        assert_eq!(l.ranks_of(383), 1532..1536);
    }

    #[test]
    fn big_records_get_a_cluster_each() {
        // F32 rows of 1024: 4096 + 4096 + 1024 bytes.
        let l = BundleLayout::new(2, 32, 1024, GgmlType::F32, GgmlType::F32, ColKind::I8).unwrap();
        assert_eq!(l.record_bytes, 9216);
        assert_eq!((l.per_cluster, l.cluster_bytes), (1, 12288));
        assert_eq!(l.clusters_per_layer, 32);
        assert_eq!(
            l.record_offset(1, 4),
            l.data_offset + 32 * 12288 + 4 * 12288
        );
        // A partial last cluster.
        let l =
            BundleLayout::new(1, 32, 256, GgmlType::Q4_0, GgmlType::Q4_0, ColKind::Nib4).unwrap();
        assert_eq!(l.record_bytes, 144 + 144 + 128);
        assert_eq!(l.per_cluster, 9);
        assert_eq!(l.ranks_of(0), 0..9);
        assert_eq!(l.ranks_of(3), 27..32);
    }

    #[test]
    fn unbundlable_shapes_are_refused() {
        let k = ColKind::I8;
        let e = BundleLayout::new(2, 32, 48, GgmlType::F16, GgmlType::F16, k).unwrap_err();
        assert!(e.to_string().contains("multiples of 32"), "{e}");
        let e = BundleLayout::new(2, 8, 256, GgmlType::F16, GgmlType::F16, k).unwrap_err();
        assert!(e.to_string().contains("multiples of 32"), "{e}");
        let e = BundleLayout::new(2, 32, 320, GgmlType::Q4_K, GgmlType::Q4_K, k).unwrap_err();
        assert!(e.to_string().contains("whole number of Q4_K blocks"), "{e}");
        let e = BundleLayout::new(0, 8, 256, GgmlType::Q4_0, GgmlType::Q4_0, k).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn orders_must_be_permutations() {
        assert!(check_orders(&[1, 0, 2, 2, 0, 1], 2, 3).is_ok());
        assert!(check_orders(&[1, 1, 2, 2, 0, 1], 2, 3)
            .unwrap_err()
            .contains("twice"));
        assert!(check_orders(&[1, 0, 3, 2, 0, 1], 2, 3)
            .unwrap_err()
            .contains("past the FFN width"));
    }
}
