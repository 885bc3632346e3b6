//! What the fuzz targets (`fuzz/`, run by `scripts/fuzz`) established, kept as plain tests:
//! inputs a fuzzer found or that guard the limits it checks, and the seed corpora still being
//! valid files of the current formats (a format change must come with new seeds:
//! `cargo test -p sparsetop-engine --test fuzz_seeds -- --ignored`).

mod common;

use common::gguf_builder::{put_str, ty, GgufBuilder};
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::offload::bundle;
use sparsetop_engine::sparse::ProfileData;
use sparsetop_engine::tokenizer::Tokenizer;
use sparsetop_engine::{GgmlType, Model};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the bytes live on the heap and their peak, so tests can show that a file claiming huge
/// sizes is refused without allocating them (the fuzz runs enforce the same with
/// `-rss_limit_mb`/`-malloc_limit_mb`).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the most heap bytes it had live at once above what was
/// live before. Tests run in parallel threads: the figure includes theirs, so bounds are loose.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

const MIB: usize = 1 << 20;

#[test]
fn a_tensor_claiming_1e12_elements_is_an_error_not_an_allocation() {
    let mut b = GgufBuilder::new().tensor_raw(
        b"huge",
        &[1_000_000, 1_000_000],
        GgmlType::F32.id(),
        vec![0; 64],
        None,
    );
    b.trailing_padding = true;
    let bytes = b.build();
    assert!(bytes.len() < 1024);
    let (r, peak) = peak_of(|| GgufFile::from_bytes(bytes));
    let e = r.unwrap_err().to_string();
    assert!(e.contains("'huge'") && e.contains("past the end"), "{e}");
    assert!(peak < 64 * MIB, "parsing allocated {peak} bytes");
}

#[test]
fn arrays_and_strings_claiming_1e12_items_are_errors_not_allocations() {
    // An array of 1e12 u64s, an array of 1e12 strings, a string of 1e12 bytes: each header is a
    // few bytes, so no allocation may follow the claimed count.
    let claims: [(u32, Vec<u8>); 3] = [
        (ty::ARRAY, {
            let mut p = ty::U64.to_le_bytes().to_vec();
            p.extend_from_slice(&1_000_000_000_000u64.to_le_bytes());
            p
        }),
        (ty::ARRAY, {
            let mut p = ty::STRING.to_le_bytes().to_vec();
            p.extend_from_slice(&1_000_000_000_000u64.to_le_bytes());
            p.extend_from_slice(&[0; 64]);
            p
        }),
        (ty::STRING, 1_000_000_000_000u64.to_le_bytes().to_vec()),
    ];
    for (t, payload) in claims {
        let bytes = GgufBuilder::new().kv_raw(b"k", t, payload).build();
        let (r, peak) = peak_of(|| GgufFile::from_bytes(bytes));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("'k'"), "{e}");
        assert!(peak < 64 * MIB, "parsing allocated {peak} bytes");
    }
    // And a vocabulary of many empty-looking tokens costs about what the file holds.
    let mut payload = ty::STRING.to_le_bytes().to_vec();
    payload.extend_from_slice(&100_000u64.to_le_bytes());
    for i in 0..100_000u32 {
        put_str(&mut payload, format!("t{i}").as_bytes());
    }
    let bytes = GgufBuilder::new()
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv_raw(b"tokenizer.ggml.tokens", ty::ARRAY, payload)
        .build();
    let n = bytes.len();
    let (r, peak) = peak_of(|| {
        let f = GgufFile::from_bytes(bytes).unwrap();
        Tokenizer::from_gguf(&f.metadata).map(|_| ())
    });
    assert!(r.unwrap_err().to_string().contains("merges"));
    assert!(peak < 64 * n, "{peak} bytes for a {n}-byte file");
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The seeds exercise the real formats only while they are valid files of them: a format change
/// that leaves the seeds stale would make the fuzzers start from rejected inputs.
#[test]
fn seed_corpora_are_valid_files_of_the_current_formats() {
    let model = Model::from_gguf(GgufFile::from_bytes(seed("gguf", "tiny-llama.gguf")).unwrap())
        .expect("the tiny model seed loads");
    for v in ["llama-spm-vocab.gguf", "qwen2-bpe-vocab.gguf"] {
        let f = GgufFile::from_bytes(seed("tokenizer", v)).unwrap();
        Tokenizer::from_gguf(&f.metadata).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    // Bundle and profile seeds: a mode byte, then the file.
    let p = seed("profile", "tiny-rank4");
    let profile = ProfileData::from_bytes(&p[1..], "seed").expect("the profile seed parses");
    assert_eq!(profile.model_hash, model.ffn_hash());
    let b = seed("bundle", "tiny");
    let dir = std::env::temp_dir().join(format!("sparsetop-fuzz-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("tiny.bundle");
    std::fs::write(&path, &b[1..]).unwrap();
    let info = bundle::read_info(&path).expect("the bundle seed parses");
    bundle::check_matches(&info, &model.ffn_hash(), &profile).expect("made from the seeds");
    bundle::verify_file(&info, &mut |_, _| {}).expect("its clusters match their CRCs");
    std::fs::remove_dir_all(&dir).unwrap();
}
