//! Throughput of the offload I/O engine on the access pattern of flash offload: ~1.3 KB neuron
//! records, three to a 4 KiB page, read at random pages in per-layer batches that are submitted
//! together and then waited for.
//!
//! ```text
//! cargo run -p sparsetop-engine --profile test --example offload_io -- \
//!     [--file PATH] [--size-mb 64] [--readers 1,2,4,8] [--records 20000] [--batch 128] \
//!     [--record-bytes 1300] [--buffered]
//! ```
//!
//! The file (default: `offload-io-bench.bin` in the temp dir) is created with random bytes if it
//! is missing or of another size, and evicted from the page cache before every run, so the
//! numbers are the device's. Put it on the flash you care about: a tmpfs measures memory.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sparsetop_engine::offload::io::{Completion, IoConfig, IoEngine, ReadRequest};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    file: PathBuf,
    size: u64,
    readers: Vec<usize>,
    records: usize,
    batch: usize,
    record_bytes: u32,
    buffered: bool,
}

fn parse() -> Args {
    let mut a = Args {
        file: std::env::temp_dir().join("offload-io-bench.bin"),
        size: 64 << 20,
        readers: vec![1, 2, 4, 8],
        records: 20_000,
        batch: 128,
        record_bytes: 1300,
        buffered: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--file" => a.file = value().into(),
            "--size-mb" => a.size = value().parse::<u64>().expect("--size-mb") << 20,
            "--readers" => {
                a.readers = value()
                    .split(',')
                    .map(|r| r.parse().expect("--readers"))
                    .collect()
            }
            "--records" => a.records = value().parse().expect("--records"),
            "--batch" => a.batch = value().parse().expect("--batch"),
            "--record-bytes" => a.record_bytes = value().parse().expect("--record-bytes"),
            "--buffered" => a.buffered = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        a.record_bytes > 0 && a.record_bytes <= 4096,
        "--record-bytes in 1..=4096"
    );
    a
}

fn ensure_file(args: &Args) {
    if std::fs::metadata(&args.file).is_ok_and(|m| m.len() == args.size) {
        return;
    }
    eprintln!("writing {} MiB to {}", args.size >> 20, args.file.display());
    let mut f = std::fs::File::create(&args.file).expect("create the bench file");
    let mut rng = StdRng::seed_from_u64(1);
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = args.size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill(&mut chunk[..n]);
        f.write_all(&chunk[..n]).expect("write the bench file");
        left -= n as u64;
    }
    f.sync_all().expect("sync the bench file");
}

fn evict(path: &std::path::Path) {
    let f = std::fs::File::open(path).expect("open the bench file");
    // SAFETY: plain syscall on an fd we own.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn main() {
    let args = parse();
    ensure_file(&args);
    let per_page = (4096 / args.record_bytes) as u64;
    let pages = args.size / 4096;
    println!(
        "{} records of {} B at random pages of a {} MiB file, batches of {}, {}",
        args.records,
        args.record_bytes,
        args.size >> 20,
        args.batch,
        if args.buffered { "buffered" } else { "direct" }
    );
    println!("readers  direct  records/s  record MB/s  device MB/s  reads  merged  avg read us  avg wait us");
    for &readers in &args.readers {
        evict(&args.file);
        let cfg = IoConfig {
            readers,
            direct: !args.buffered,
            ..IoConfig::default()
        };
        let engine = IoEngine::open(&args.file, cfg).expect("open the bench file");
        let mut rng = StdRng::seed_from_u64(readers as u64);
        let len = args.record_bytes as usize;
        let mut dests = vec![0u8; args.batch * len];
        let done: Vec<Completion> = (0..args.batch).map(|_| Completion::new()).collect();
        let mut reqs = Vec::with_capacity(args.batch);
        let start = Instant::now();
        let mut left = args.records;
        while left > 0 {
            let n = left.min(args.batch);
            reqs.clear();
            for (i, (dest, done)) in dests.chunks_mut(len).zip(&done).take(n).enumerate() {
                let page = rng.random_range(0..pages);
                let slot = rng.random_range(0..per_page);
                reqs.push(ReadRequest {
                    offset: page * 4096 + slot * u64::from(args.record_bytes),
                    len: args.record_bytes,
                    dest: dest.as_mut_ptr(),
                    done,
                    prefetch: i % 4 == 3,
                });
            }
            // SAFETY: `dests` and `done` outlive the batch, which is waited for right below, and
            // each request has its own slot and completion.
            unsafe { engine.submit(&reqs) };
            for d in &done[..n] {
                engine.wait(d).expect("bench read");
            }
            left -= n;
        }
        let secs = start.elapsed().as_secs_f64();
        let s = engine.stats();
        let records = args.records as f64;
        println!(
            "{readers:>7}  {:>6}  {:>9.0}  {:>11.1}  {:>11.1}  {:>5}  {:>6}  {:>11.1}  {:>11.1}",
            engine.direct(),
            records / secs,
            records * f64::from(args.record_bytes) / secs / 1e6,
            s.bytes_read as f64 / secs / 1e6,
            s.reads,
            s.merged,
            s.read_us_sum as f64 / s.reads as f64,
            s.latency_us_sum as f64 / s.requests as f64,
        );
    }
}
