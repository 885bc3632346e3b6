//! What building the tokenizer costs in memory, and how fast it encodes.
//!
//! ```text
//! cargo run -p sparsetop-engine --release --example tokenizer_mem -- [MODEL.gguf] [TEXT_FILE]
//! ```
//!
//! Defaults: the default model (SmolLM2-135M-Instruct) from the cache, and `assets/calibration.txt`.
//! The GGUF metadata is loaded first (`GgufFile::open`, whose own cost is shown for context: it
//! holds every token and merge string again, as `Value::String`s); the figures are what
//! `Tokenizer::from_gguf` adds on top of that, read from `/proc/self/status`:
//! - `VmRSS` / `RssAnon`: resident memory, all and anonymous (heap) only, once the tokenizer is
//!   built. The allocator may keep freed construction scratch mapped; the same figures are shown
//!   again after `malloc_trim` (glibc) to separate what the tokenizer keeps from what the allocator
//!   keeps.
//! - `VmHWM`: the peak RSS while building. The peak is reset (`/proc/self/clear_refs` ← 5) just
//!   before, so the delta is the transient peak of construction alone — what a tight memory limit
//!   must allow, since exceeding it even briefly kills the process.
//!
//! Linux only (it reads `/proc`). Encode timings: the first `encode(text, false, true)` of the whole
//! file, then the best of 20 more runs.

use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::tokenizer::Tokenizer;
use std::time::Instant;

/// `VmRSS`, `RssAnon`, `VmHWM` in KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss: i64,
    anon: i64,
    hwm: i64,
}

fn mem() -> Mem {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| -> i64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Mem {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        hwm: field("VmHWM:"),
    }
}

fn mib(kib: i64) -> String {
    format!("{:+8.2} MiB", kib as f64 / 1024.0)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

fn main() {
    let mut args = std::env::args().skip(1);
    let model = match args.next() {
        Some(p) => std::path::PathBuf::from(p),
        None => sparsetop_engine::fetch::default_model_path().expect("default model path"),
    };
    let text_path = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/calibration.txt").to_string()
    });
    let text = std::fs::read_to_string(&text_path).expect("read the text file");

    let start = mem();
    let file = GgufFile::open(&model).expect("open the model");
    trim();
    let opened = mem();
    // Reset the peak so that VmHWM below is the peak of construction.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = mem();
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(&file.metadata).expect("build the tokenizer");
    let build = t0.elapsed();
    let after = mem();
    let trimmed = trim().then(mem);

    println!(
        "model: {} (n_vocab {}, pre {:?})",
        model.display(),
        tok.n_vocab(),
        tok.pre()
    );
    println!(
        "GgufFile::open (for context; not the tokenizer's): VmRSS {}, RssAnon {}",
        mib(opened.rss - start.rss),
        mib(opened.anon - start.anon)
    );
    println!("build: {:.1} ms", build.as_secs_f64() * 1e3);
    println!("tokenizer built (delta from the loaded metadata):");
    println!("  VmRSS   {}", mib(after.rss - before.rss));
    println!("  RssAnon {}", mib(after.anon - before.anon));
    if let Some(t) = trimmed {
        println!("  after malloc_trim: VmRSS {}", mib(t.rss - before.rss));
        println!("  after malloc_trim: RssAnon {}", mib(t.anon - before.anon));
    }
    if reset {
        println!(
            "  peak (VmHWM - VmRSS before) {}",
            mib(after.hwm - before.rss)
        );
    } else {
        println!("  peak: /proc/self/clear_refs not writable, VmHWM not reset");
    }

    let t = Instant::now();
    let ids = tok.encode(&text, false, true).expect("encode");
    let first = t.elapsed().as_secs_f64();
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let t = Instant::now();
        let again = tok.encode(&text, false, true).expect("encode");
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(again, ids);
    }
    println!(
        "encode: {} bytes -> {} tokens, first {:.3} ms, best of 20: {:.3} ms ({:.1} MB/s)",
        text.len(),
        ids.len(),
        first * 1e3,
        best * 1e3,
        text.len() as f64 / best / 1e6
    );
    assert_eq!(tok.decode(&ids, true), text, "decode(encode(text)) == text");
    let end = mem();
    println!(
        "after encoding: VmRSS {}, RssAnon {} (from before the build)",
        mib(end.rss - before.rss),
        mib(end.anon - before.anon)
    );
}
