//! The sparsity profile reader. The input is `mode byte + profile file`; unless mode bit 0 is set
//! the harness rewrites the payload checksum so that mutations reach the checks behind it (a
//! random change is otherwise always caught by the sha256 first).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use sparsetop_engine::sparse::ProfileData;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 == 0 && b.len() >= 128 {
        let sum = Sha256::digest(&b[128..]);
        b[72..104].copy_from_slice(&sum);
    }
    let Ok(p) = ProfileData::from_bytes(&b, "fuzz") else {
        return;
    };
    p.validate()
        .expect("a profile read from a file is consistent");
    for l in 0..p.dims.n_layer.min(64) {
        let order = p.order(l);
        assert!(order.iter().all(|&i| (i as usize) < p.dims.n_ff));
        for s in [0.0, 0.05, 0.5, 0.97, 1.0] {
            let _ = (
                p.gate_threshold(l, s),
                p.act_threshold(l, s),
                p.pred_threshold(l, s),
            );
        }
    }
    // What was read can be written and read again.
    let again = p.to_bytes().expect("re-encodes");
    ProfileData::from_bytes(&again, "fuzz, re-encoded").expect("re-reads");
});
