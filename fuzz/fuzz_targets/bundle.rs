//! The neuron-bundle reader: header and tables parse and validation (`read_info`), then the CRC
//! check of every cluster (`verify_file`).
//!
//! The input is `mode byte + bundle file`. A random change to a bundle is caught by its header
//! sha256 before anything else is looked at, so unless the mode says otherwise the harness repairs
//! what a careful forger would: (bit 0 clear) the file is cut or zero-padded to the size its
//! header claims when that is at most 1 MiB, (bit 1 clear) the order hash, the tables sha256 and
//! the header sha256 are recomputed. The checks behind the checksums are then reachable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use sparsetop_engine::offload::bundle;
use std::path::PathBuf;
use std::sync::OnceLock;

const HEADER: usize = 256;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64
}

fn repair(b: &mut Vec<u8>, mode: u8) {
    if b.len() < HEADER {
        return;
    }
    if mode & 1 == 0 {
        let file_bytes = u64_at(b, 64 + 40);
        if (HEADER as u64..=1 << 20).contains(&file_bytes) {
            b.resize(file_bytes as usize, 0);
        }
    }
    if mode & 2 == 0 {
        let (orders, data) = (u64_at(b, 64 + 16) as usize, u64_at(b, 64 + 32) as usize);
        let n_orders = (u32_at(b, 16) * u32_at(b, 20)).saturating_mul(4) as usize;
        if let Some(o) = b.get(orders..orders.saturating_add(n_orders)) {
            let h = Sha256::digest(o);
            b[144..176].copy_from_slice(&h);
        }
        if orders <= data {
            if let Some(t) = b.get(orders..data) {
                let h = Sha256::digest(t);
                b[176..208].copy_from_slice(&h);
            }
        }
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&b[..HEADER]);
        h[208..240].fill(0);
        let sum = Sha256::digest(h);
        b[208..240].copy_from_slice(&sum);
    }
}

/// The reader takes a path: one scratch file per process, in memory when /dev/shm exists.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = PathBuf::from("/dev/shm");
        let dir = if dir.is_dir() {
            dir
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("sparsetop-fuzz-bundle-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    repair(&mut b, mode);
    let path = scratch();
    std::fs::write(path, &b).expect("write the scratch file");
    let Ok(info) = bundle::read_info(path) else {
        return;
    };
    let l = info.layout;
    assert_eq!(l.file_bytes(), b.len() as u64);
    assert_eq!(info.orders.len(), l.n_layer * l.n_ff);
    for layer in 0..l.n_layer {
        assert_eq!(info.order(layer).len(), l.n_ff);
        let last = l.n_ff - 1;
        assert!(l.record_offset(layer, last) + l.record_bytes as u64 <= l.file_bytes());
    }
    let _ = bundle::verify_file(&info, &mut |_, _| {});
});
