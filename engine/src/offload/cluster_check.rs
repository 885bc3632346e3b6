//! What the offload readers check every read of the neuron bundle against: the CRC32 of each
//! cluster the bundle stores in its table.
//!
//! Why on the readers: a reader already holds the bytes it read in its own buffer, and a cluster
//! is a whole number of pages, so the aligned read that fetches any record of a cluster fetches
//! the whole cluster anyway (a record never straddles a cluster). Checking there costs a CRC over
//! bytes already in the reader's cache (crc32fast: several GB/s, ~1 µs per 4 KiB cluster, against
//! tens of microseconds for the read itself), on the I/O threads, while the compute threads work
//! on records that have already landed. A record is handed to compute only after every cluster
//! it lies in passed, so no byte of the bundle reaches the kernels unchecked.
//!
//! The granularity is the cluster, not the record: the format stores one CRC per cluster, and the
//! read brings the whole cluster, so finer CRCs would buy nothing.

use super::bundle::BundleInfo;
use std::fmt;
use std::ops::Range;

/// The clusters of a file's data section and their CRC32s.
pub struct ClusterCheck {
    /// Offset of the first cluster.
    data_offset: u64,
    /// Bytes of a cluster (a multiple of the I/O alignment).
    cluster_bytes: u64,
    clusters_per_layer: usize,
    /// CRC32 of every cluster, layer by layer.
    crcs: Vec<u32>,
}

impl fmt::Debug for ClusterCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCheck")
            .field("data_offset", &self.data_offset)
            .field("cluster_bytes", &self.cluster_bytes)
            .field("clusters_per_layer", &self.clusters_per_layer)
            .field("clusters", &self.crcs.len())
            .finish()
    }
}

impl ClusterCheck {
    /// Clusters of `cluster_bytes` from `data_offset`, `clusters_per_layer` per layer, with the
    /// CRC32 of each (layer-major). `cluster_bytes` must be above 0 and a multiple of 4096.
    pub fn new(
        data_offset: u64,
        cluster_bytes: usize,
        clusters_per_layer: usize,
        crcs: Vec<u32>,
    ) -> Self {
        assert!(
            cluster_bytes > 0 && cluster_bytes.is_multiple_of(super::bundle::PAGE),
            "clusters are whole pages"
        );
        ClusterCheck {
            data_offset,
            cluster_bytes: cluster_bytes as u64,
            clusters_per_layer: clusters_per_layer.max(1),
            crcs,
        }
    }

    /// The check of a bundle's data section, as its header and CRC table describe it.
    pub fn for_bundle(info: &BundleInfo) -> Self {
        let l = &info.layout;
        Self::new(
            l.data_offset,
            l.cluster_bytes,
            l.clusters_per_layer,
            info.cluster_crc.clone(),
        )
    }

    /// Bytes of a cluster.
    pub fn cluster_bytes(&self) -> usize {
        self.cluster_bytes as usize
    }

    /// Bytes held in memory (the CRC table), for the budget's accounting.
    pub fn bytes(&self) -> usize {
        self.crcs.len() * 4
    }

    /// The whole clusters covering `offset..offset + len`, or `None` when any of those bytes lies
    /// outside the data section (nothing there can be checked).
    pub fn span(&self, offset: u64, len: u64) -> Option<Range<u64>> {
        let end = offset.checked_add(len)?;
        let data_end = self
            .data_offset
            .checked_add(self.crcs.len() as u64 * self.cluster_bytes)?;
        if offset < self.data_offset || end > data_end || len == 0 {
            return None;
        }
        let first = (offset - self.data_offset) / self.cluster_bytes;
        let last = (end - self.data_offset).div_ceil(self.cluster_bytes);
        Some(
            self.data_offset + first * self.cluster_bytes
                ..self.data_offset + last * self.cluster_bytes,
        )
    }

    /// Checks the cluster at file offset `at` (a cluster's start, as [`Self::span`] gives), whose
    /// bytes are `bytes`. The error names the layer and the cluster.
    pub fn check(&self, at: u64, bytes: &[u8]) -> Result<(), String> {
        let index = at
            .checked_sub(self.data_offset)
            .filter(|d| d.is_multiple_of(self.cluster_bytes))
            .map(|d| (d / self.cluster_bytes) as usize)
            .filter(|&i| i < self.crcs.len() && bytes.len() as u64 == self.cluster_bytes);
        let Some(index) = index else {
            return Err(format!(
                "{} bytes at offset {at} are not a cluster of the data section",
                bytes.len()
            ));
        };
        let (got, want) = (crc32fast::hash(bytes), self.crcs[index]);
        if got == want {
            return Ok(());
        }
        let (layer, cluster) = (
            index / self.clusters_per_layer,
            index % self.clusters_per_layer,
        );
        Err(format!(
            "layer {layer} cluster {cluster} (bytes {at}..{}) is corrupt: its CRC32 is {got:08x}, \
             the bundle's table says {want:08x}; the data was not used: rerun `sparsetop convert --force`",
            at + self.cluster_bytes
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> (ClusterCheck, Vec<u8>) {
        let data: Vec<u8> = (0..6 * 4096).map(|i| (i * 7 % 251) as u8).collect();
        let crcs = data.chunks(4096).map(crc32fast::hash).collect();
        (ClusterCheck::new(8192, 4096, 3, crcs), data)
    }

    #[test]
    fn spans_are_whole_clusters_inside_the_data() {
        let (c, _) = check();
        assert_eq!(c.span(8192, 1), Some(8192..12288));
        assert_eq!(c.span(8192 + 4000, 200), Some(8192..16384));
        assert_eq!(c.span(8192 + 5 * 4096, 4096), Some(28672..32768));
        assert_eq!(c.span(8191, 2), None, "starts in the tables");
        assert_eq!(c.span(32767, 2), None, "ends past the data");
        assert_eq!(c.span(9000, 0), None);
        assert_eq!(c.span(u64::MAX - 1, 4), None);
    }

    #[test]
    fn a_damaged_cluster_is_named_by_layer_and_cluster() {
        let (c, mut data) = check();
        for k in 0..6 {
            let at = 8192 + k as u64 * 4096;
            c.check(at, &data[k * 4096..(k + 1) * 4096]).unwrap();
        }
        data[4 * 4096 + 17] ^= 0x10;
        let e = c
            .check(8192 + 4 * 4096, &data[4 * 4096..5 * 4096])
            .unwrap_err();
        assert!(e.contains("layer 1 cluster 1 "), "{e}");
        assert!(e.contains("corrupt"), "{e}");
        let e = c.check(8192 + 100, &data[..4096]).unwrap_err();
        assert!(e.contains("not a cluster"), "{e}");
    }
}
