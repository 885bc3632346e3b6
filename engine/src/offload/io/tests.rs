use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::Duration;

/// A file of random bytes in the temp dir (ext4 on the dev VM: direct I/O works there), removed on
/// drop, written through to disk and evicted from the page cache.
struct TestFile {
    path: PathBuf,
    data: Vec<u8>,
}

impl TestFile {
    fn new(size: usize, seed: u64) -> TestFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "sparsetop-offload-io-{}-{}.bin",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut data = vec![0u8; size];
        StdRng::seed_from_u64(seed).fill(&mut data[..]);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        fadvise(&file, 0, 0, libc::POSIX_FADV_DONTNEED);
        TestFile { path, data }
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the temp dir's file system takes `O_DIRECT`: the tests that need it skip otherwise.
fn direct_supported(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .is_ok()
}

/// Whether `O_DIRECT` is set on the engine's open file, as the kernel reports it.
fn fd_has_o_direct(engine: &IoEngine) -> bool {
    // The kernel's flags for the descriptor, through fcntl rather than /proc/self/fdinfo: under
    // qemu's user-mode emulation (the aarch64 tests) fdinfo shows the host's flag bits, which
    // differ from the target's O_DIRECT, while fcntl's answer is translated.
    // SAFETY: F_GETFL on a descriptor the engine keeps open.
    let flags = unsafe { libc::fcntl(engine.raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl(F_GETFL) failed");
    flags & libc::O_DIRECT != 0
}

/// Pages of `path` in the page cache (mincore over a mapping, which itself loads nothing).
fn resident_pages(path: &Path) -> usize {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut vec = vec![0u8; len.div_ceil(page)];
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
        libc::munmap(map, len);
    }
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

fn config(readers: usize) -> IoConfig {
    IoConfig {
        readers,
        ..IoConfig::default()
    }
}

/// Requests with their own destinations and completions. Must be waited for before drop.
struct Batch {
    reqs: Vec<(u64, u32, bool)>,
    dests: Vec<Vec<u8>>,
    done: Vec<Completion>,
}

impl Batch {
    fn new(reqs: &[(u64, u32, bool)]) -> Batch {
        Batch {
            reqs: reqs.to_vec(),
            dests: reqs.iter().map(|r| vec![0xA5; r.1 as usize]).collect(),
            done: reqs.iter().map(|_| Completion::new()).collect(),
        }
    }

    fn submit(&mut self, engine: &IoEngine) {
        let reqs: Vec<ReadRequest> = self
            .reqs
            .iter()
            .zip(&mut self.dests)
            .zip(&self.done)
            .map(|((&(offset, len, prefetch), dest), done)| ReadRequest {
                offset,
                len,
                dest: dest.as_mut_ptr(),
                done,
                prefetch,
            })
            .collect();
        // SAFETY: every destination and completion lives in `self`, which is waited for before
        // it is dropped, and belongs to one request.
        unsafe { engine.submit(&reqs) };
    }

    fn wait(&self, engine: &IoEngine) -> Vec<Result<()>> {
        self.done.iter().map(|d| engine.wait(d)).collect()
    }

    /// Waits and checks that every request succeeded with the file's bytes.
    fn check(&self, engine: &IoEngine, data: &[u8]) {
        for (i, result) in self.wait(engine).into_iter().enumerate() {
            let (offset, len, _) = self.reqs[i];
            if let Err(e) = result {
                panic!("request {i} ({len} bytes at {offset}) failed: {e}");
            }
            let want = &data[offset as usize..offset as usize + len as usize];
            assert!(
                self.dests[i] == want,
                "request {i} ({len} bytes at {offset}) has the wrong bytes"
            );
        }
    }
}

fn run(engine: &IoEngine, data: &[u8], reqs: &[(u64, u32, bool)]) {
    let mut batch = Batch::new(reqs);
    batch.submit(engine);
    batch.check(engine, data);
}

/// A mix of every shape the compute side produces, and some it should not.
fn mixed_requests(size: u64, seed: u64) -> Vec<(u64, u32, bool)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reqs = Vec::new();
    for _ in 0..1500 {
        let len = rng.random_range(1..=3000u32);
        let offset = rng.random_range(0..=size - u64::from(len));
        reqs.push((offset, len, rng.random_bool(0.3)));
    }
    // Records in one page, records back to back across pages, page-aligned records.
    for k in 0..3 {
        reqs.push((10 * 4096 + k * 1300, 1300, false));
    }
    for k in 0..10 {
        reqs.push((20 * 4096 + k * 1300, 1300, k % 3 == 0));
    }
    for k in 0..4 {
        reqs.push((40 * 4096 + k * 4096, 4096, false));
    }
    // The end of the file, a request larger than a read, zero-length ones.
    reqs.push((size - 1300, 1300, false));
    reqs.push((size - 1, 1, true));
    reqs.push((12345, 700_000, false));
    reqs.push((777, 0, false));
    reqs.push((size, 0, true));
    reqs
}

fn check_mixed(engine: &IoEngine, file: &TestFile) {
    let reqs = mixed_requests(file.len(), 7);
    for chunk in reqs.chunks(200) {
        run(engine, &file.data, chunk);
    }
    let s = engine.stats();
    assert_eq!(s.requests, reqs.len() as u64);
    assert_eq!(
        s.prefetch_requests,
        reqs.iter().filter(|r| r.2).count() as u64
    );
    assert!(s.merged > 0, "{s:?}");
    assert!(s.reads < s.requests, "{s:?}");
    assert!(s.bytes_read > 700_000, "{s:?}");
    assert_eq!((s.errors, s.failed_requests), (0, 0), "{s:?}");
    assert_eq!((s.queue_depth, s.in_flight), (0, 0));
    assert!(s.latency_us_sum > 0 && s.read_us_sum > 0, "{s:?}");
    assert_eq!(engine.first_error(), None);
}

#[test]
fn direct_reads_match_the_file() {
    let file = TestFile::new(3 << 20 | 1234, 1);
    let engine = IoEngine::open(&file.path, config(4)).unwrap();
    if direct_supported(&file.path) {
        assert!(engine.direct());
        assert!(fd_has_o_direct(&engine));
    }
    check_mixed(&engine, &file);
    if engine.direct() {
        assert_eq!(
            resident_pages(&file.path),
            0,
            "direct reads filled the page cache"
        );
    }
}

#[test]
fn buffered_reads_match_the_file_and_leave_no_page_cache() {
    let file = TestFile::new(2 << 20 | 77, 2);
    assert_eq!(resident_pages(&file.path), 0);
    let cfg = IoConfig {
        direct: false,
        ..config(3)
    };
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    assert!(!engine.direct());
    assert!(!fd_has_o_direct(&engine));
    check_mixed(&engine, &file);
    assert_eq!(
        resident_pages(&file.path),
        0,
        "buffered reads were not dropped"
    );
}

#[test]
fn direct_refused_at_open_falls_back_to_buffered() {
    let file = TestFile::new(1 << 20, 3);
    let mut cfg = config(2);
    cfg.faults.refuse_direct_at_open = true;
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    assert!(!engine.direct());
    assert!(!fd_has_o_direct(&engine));
    check_mixed(&engine, &file);
    assert_eq!(resident_pages(&file.path), 0);
}

#[test]
fn direct_refused_at_first_read_falls_back_to_buffered() {
    let file = TestFile::new(1 << 20, 4);
    if !direct_supported(&file.path) {
        eprintln!("skipped: the temp dir has no direct I/O");
        return;
    }
    let mut cfg = config(4);
    cfg.faults.refuse_direct_at_read = true;
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    assert!(engine.direct() && fd_has_o_direct(&engine));
    check_mixed(&engine, &file);
    assert!(!engine.direct());
    assert!(!fd_has_o_direct(&engine), "O_DIRECT still set on the file");
    assert_eq!(resident_pages(&file.path), 0);
}

#[test]
fn requests_in_one_page_share_one_read() {
    let file = TestFile::new(1 << 20, 5);
    let engine = IoEngine::open(&file.path, config(1)).unwrap();
    let page = 37 * 4096;
    run(
        &engine,
        &file.data,
        &[
            (page + 2600, 1300, false),
            (page, 1300, false),
            (page + 1300, 1300, true),
        ],
    );
    let s = engine.stats();
    assert_eq!((s.reads, s.merged, s.bytes_read), (1, 2, 4096), "{s:?}");
}

#[test]
fn adjacent_requests_merge_up_to_max_read() {
    let file = TestFile::new(1 << 20, 6);
    let cfg = IoConfig {
        max_read: 16 << 10,
        merge_gap: 0,
        ..config(1)
    };
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    let reqs: Vec<_> = (0..10).map(|k| (8192 + k * 4096, 4096, false)).collect();
    run(&engine, &file.data, &reqs);
    let s = engine.stats();
    // 4 + 4 + 2 pages.
    assert_eq!((s.reads, s.merged, s.bytes_read), (3, 7, 40960), "{s:?}");
}

#[test]
fn merge_gap_decides_whether_near_requests_share_a_read() {
    let file = TestFile::new(1 << 20, 7);
    let reqs = [(4096 + 100, 1000, false), (3 * 4096 + 5, 1300, false)];
    for (gap, reads, merged, bytes) in [(0, 2, 0, 8192), (4096, 1, 1, 12288)] {
        let cfg = IoConfig {
            merge_gap: gap,
            ..config(1)
        };
        let engine = IoEngine::open(&file.path, cfg).unwrap();
        run(&engine, &file.data, &reqs);
        let s = engine.stats();
        assert_eq!(
            (s.reads, s.merged, s.bytes_read),
            (reads, merged, bytes),
            "gap {gap}"
        );
    }
}

#[test]
fn demand_requests_are_served_before_earlier_prefetch() {
    let file = TestFile::new(1 << 20, 8);
    let cfg = IoConfig {
        merge_gap: 0,
        ..config(1)
    };
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    engine.set_paused(true);
    let prefetch: Vec<_> = (0..20).map(|k| (k * 3 * 4096, 2000, true)).collect();
    let mut early = Batch::new(&prefetch);
    early.submit(&engine);
    // A demand read, and a prefetch request in the same page that rides along with it.
    let demand_page = 200 * 4096;
    let mut late = Batch::new(&[
        (demand_page + 10, 1300, false),
        (demand_page + 2000, 1300, true),
        (250 * 4096, 1300, true),
    ]);
    late.submit(&engine);
    assert_eq!(engine.stats().queue_depth, 23);
    engine.set_paused(false);
    early.check(&engine, &file.data);
    late.check(&engine, &file.data);
    let served = lock(&engine.shared.served).clone();
    assert_eq!(served.len(), 22, "{served:?}");
    assert_eq!(served[0], (demand_page, true), "{served:?}");
    assert!(served[1..].iter().all(|&(_, demand)| !demand));
    assert_eq!(
        served[21].0,
        250 * 4096,
        "prefetch stays in submission order"
    );
    assert_eq!(engine.stats().merged, 1);
}

#[test]
fn truncation_fails_reads_clearly_and_the_engine_recovers() {
    let file = TestFile::new(1 << 20, 9);
    let engine = IoEngine::open(&file.path, config(2)).unwrap();
    run(&engine, &file.data, &[(800_000, 1300, false)]);
    OpenOptions::new()
        .write(true)
        .open(&file.path)
        .unwrap()
        .set_len(512 << 10)
        .unwrap();
    let mut gone = Batch::new(&[(800_000, 1300, false), ((512 << 10) - 100, 1300, true)]);
    gone.submit(&engine);
    for (i, result) in gone.wait(&engine).into_iter().enumerate() {
        let msg = result
            .expect_err("read past the new end must fail")
            .to_string();
        assert!(msg.contains(&*file.path.to_string_lossy()), "{msg}");
        assert!(
            msg.contains("short read") && msg.contains("offset"),
            "{msg}"
        );
        assert!(msg.contains("the file is now 524288 bytes"), "{msg}");
        assert_eq!(gone.done[i].state(), CompletionState::Failed);
    }
    let first = engine.first_error().expect("recorded");
    assert!(first.contains("short read"), "{first}");
    // Later requests inside the file still work.
    run(
        &engine,
        &file.data,
        &[(1000, 1300, false), (300_000, 5000, true)],
    );
    let s = engine.stats();
    assert_eq!((s.errors, s.failed_requests), (2, 2), "{s:?}");
}

#[test]
fn reading_past_the_end_is_an_error_not_zeros() {
    let file = TestFile::new(100_000, 10);
    let engine = IoEngine::open(&file.path, config(2)).unwrap();
    let mut batch = Batch::new(&[(100_000 - 10, 100, false), (100_000, 1, false)]);
    batch.submit(&engine);
    for result in batch.wait(&engine) {
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains("short read"), "{msg}");
    }
    run(&engine, &file.data, &[(100_000 - 10, 10, false)]);
}

#[test]
fn an_injected_read_error_fails_only_its_read() {
    let file = TestFile::new(1 << 20, 11);
    let mut cfg = config(1);
    cfg.faults.fail_reads = 1..2;
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    run(&engine, &file.data, &[(5000, 1300, false)]);
    let mut bad = Batch::new(&[(70_000, 1300, false), (70_000 + 1300, 1300, true)]);
    bad.submit(&engine);
    for result in bad.wait(&engine) {
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains("injected read error"), "{msg}");
        assert!(
            msg.contains("at offset 69632") && msg.contains("4096 bytes"),
            "{msg}"
        );
    }
    run(&engine, &file.data, &[(70_000, 1300, false)]);
    let s = engine.stats();
    assert_eq!((s.errors, s.failed_requests, s.reads), (1, 2, 3), "{s:?}");
}

#[test]
fn a_reader_panic_fails_its_read_and_the_reader_goes_on() {
    let file = TestFile::new(1 << 20, 19);
    let mut cfg = config(1);
    cfg.faults.panic_reads = 0..1;
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    let mut bad = Batch::new(&[(9000, 1300, false)]);
    bad.submit(&engine);
    let msg = engine.wait(&bad.done[0]).unwrap_err().to_string();
    assert!(
        msg.contains("panicked") && msg.contains("offset 8192"),
        "{msg}"
    );
    run(&engine, &file.data, &[(9000, 1300, false)]);
    let s = engine.stats();
    assert_eq!(
        (s.errors, s.failed_requests, s.in_flight),
        (1, 1, 0),
        "{s:?}"
    );
}

#[test]
fn invalid_and_empty_requests_finish_at_once() {
    let file = TestFile::new(10_000, 12);
    let engine = IoEngine::open(&file.path, config(1)).unwrap();
    engine.set_paused(true);
    let mut batch = Batch::new(&[(5, 0, false), (u64::MAX - 10, 100, false)]);
    batch.submit(&engine);
    assert_eq!(batch.done[0].state(), CompletionState::Done);
    let msg = engine.wait(&batch.done[1]).unwrap_err().to_string();
    assert!(msg.contains("largest file offset"), "{msg}");
    assert_eq!(engine.stats().reads, 0);
}

#[test]
fn a_full_queue_blocks_submit_until_readers_catch_up() {
    let file = TestFile::new(2 << 20, 13);
    let cfg = IoConfig {
        queue_capacity: 4,
        merge_gap: 0,
        ..config(2)
    };
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    // 200 separate reads, and one read of 12 requests, more than the queue holds.
    let mut reqs: Vec<_> = (0..200)
        .map(|k| (k * 8192 + 17, 1300, k % 2 == 0))
        .collect();
    reqs.extend((0..12).map(|k| (1_800_000 + k * 1300, 1300, false)));
    run(&engine, &file.data, &reqs);
    let s = engine.stats();
    assert_eq!((s.requests, s.queue_depth), (212, 0));
}

#[test]
fn queued_prefetch_does_not_block_a_demand_submit() {
    let file = TestFile::new(1 << 20, 18);
    let cfg = IoConfig {
        queue_capacity: 4,
        merge_gap: 0,
        ..config(1)
    };
    let engine = IoEngine::open(&file.path, cfg).unwrap();
    engine.set_paused(true);
    let mut prefetch = Batch::new(&(0..4).map(|k| (k * 8192, 100, true)).collect::<Vec<_>>());
    prefetch.submit(&engine);
    let mut demand = Batch::new(&[(500_000, 1300, false), (600_000, 1300, false)]);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let (engine, demand) = (&engine, &mut demand);
        s.spawn(move || {
            demand.submit(engine);
            tx.send(()).unwrap();
        });
        let submitted = rx.recv_timeout(Duration::from_secs(5));
        engine.set_paused(false);
        submitted.expect("a demand submit waited for prefetch queue space");
    });
    demand.check(&engine, &file.data);
    prefetch.check(&engine, &file.data);
}

#[test]
fn a_sleeping_waiter_is_woken() {
    let file = TestFile::new(1 << 20, 14);
    // Declared before the engine so it outlives it, even if the test fails.
    let mut dest = vec![0u8; 1300];
    let done = Arc::new(Completion::new());
    let engine = IoEngine::open(&file.path, config(1)).unwrap();
    engine.set_paused(true);
    let req = ReadRequest {
        offset: 123_456,
        len: 1300,
        dest: dest.as_mut_ptr(),
        done: &*done,
        prefetch: false,
    };
    // SAFETY: `dest` and `done` outlive the engine, which finishes every request before drop.
    unsafe { engine.submit(&[req]) };
    let (tx, rx) = mpsc::channel();
    // Not a scoped thread: if the wake-up is lost, the test fails instead of hanging.
    let waiter = Arc::clone(&done);
    std::thread::spawn(move || tx.send(waiter.wait()).unwrap());
    // Long enough for the waiter to give up spinning and sleep.
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    engine.set_paused(false);
    let woken = rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(woken.expect("waiter not woken"), Ok(()));
    assert!(dest == file.data[123_456..][..1300]);
}

#[test]
fn dropping_the_engine_fails_queued_requests_and_hangs_no_waiter() {
    let file = TestFile::new(1 << 20, 15);
    for paused in [true, false] {
        let engine = IoEngine::open(&file.path, config(2)).unwrap();
        engine.set_paused(paused);
        let reqs: Vec<_> = (0..100).map(|k| (k * 8192, 1300, k % 3 == 0)).collect();
        let mut batch = Batch::new(&reqs);
        batch.submit(&engine);
        let done = Arc::new(std::mem::take(&mut batch.done));
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let outcomes: Vec<_> = done.iter().map(|d| d.wait()).collect();
                tx.send(outcomes).unwrap();
            })
        };
        drop(engine);
        let outcomes = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a waiter hung after drop");
        waiter.join().unwrap();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let (offset, len, _) = reqs[i];
            match outcome {
                Ok(()) => assert!(
                    !paused && batch.dests[i] == file.data[offset as usize..][..len as usize]
                ),
                Err(f) => {
                    assert!(f.is_shutdown());
                    assert!(f.to_string().contains("shut down"));
                }
            }
        }
        batch.done = Vec::new(); // Already waited for.
    }
}

#[test]
fn many_threads_can_submit_at_once() {
    let file = TestFile::new(2 << 20, 16);
    let engine = IoEngine::open(&file.path, config(4)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (engine, file) = (&engine, &file);
            s.spawn(move || {
                let reqs = mixed_requests(file.len(), 100 + t);
                for chunk in reqs.chunks(64) {
                    run(engine, &file.data, chunk);
                }
            });
        }
    });
    assert_eq!(engine.stats().errors, 0);
}

#[test]
fn open_reports_clear_errors() {
    let missing = std::env::temp_dir().join("sparsetop-offload-io-no-such-file.bin");
    let err = IoEngine::open(&missing, IoConfig::default()).err().unwrap();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("no-such-file"), "{err}");
    let dir = std::env::temp_dir();
    let err = IoEngine::open(&dir, IoConfig::default()).err().unwrap();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let file = TestFile::new(4096, 17);
    for cfg in [
        config(0),
        IoConfig {
            queue_capacity: 0,
            ..config(1)
        },
        IoConfig {
            max_read: 0,
            ..config(1)
        },
    ] {
        let err = IoEngine::open(&file.path, cfg).err().unwrap();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }
    // max_read rounds up to whole pages.
    let cfg = IoConfig {
        max_read: 5000,
        ..config(1)
    };
    assert_eq!(
        IoEngine::open(&file.path, cfg).unwrap().shared.max_read,
        8192
    );
}

/// A file of `clusters` clusters of `cluster_bytes` from offset 8192 (after 8 KiB of "tables"),
/// 4 clusters per layer, and the check of its CRCs as written; then the byte at `damage` is
/// flipped on disk (and the page cache dropped, so the reads see it).
fn checked_file(cluster_bytes: usize, clusters: usize, damage: u64) -> (TestFile, ClusterCheck) {
    let file = TestFile::new(8192 + cluster_bytes * clusters, 23);
    let crcs = file.data[8192..]
        .chunks(cluster_bytes)
        .map(crc32fast::hash)
        .collect();
    let f = OpenOptions::new().write(true).open(&file.path).unwrap();
    f.write_at(&[file.data[damage as usize] ^ 0x40], damage)
        .unwrap();
    f.sync_all().unwrap();
    fadvise(&f, 0, 0, libc::POSIX_FADV_DONTNEED);
    (file, ClusterCheck::new(8192, cluster_bytes, 4, crcs))
}

fn checked_config(check: ClusterCheck, max_read: usize) -> IoConfig {
    IoConfig {
        readers: 2,
        max_read,
        check: Some(Arc::new(check)),
        ..IoConfig::default()
    }
}

#[test]
fn a_damaged_cluster_fails_only_the_requests_it_holds_and_names_its_layer() {
    // Cluster 5 (layer 1, cluster 1) is damaged; records of 1000 bytes, 4 per cluster, demand
    // and prefetch, all merged into one read with their neighbours.
    let (file, check) = checked_file(4096, 12, 8192 + 5 * 4096 + 2100);
    let engine = IoEngine::open(&file.path, checked_config(check, 256 << 10)).unwrap();
    let reqs: Vec<(u64, u32, bool)> = (0..12u64)
        .flat_map(|c| (0..4u64).map(move |r| (8192 + c * 4096 + r * 1000, 1000, r % 2 == 1)))
        .collect();
    let mut batch = Batch::new(&reqs);
    batch.submit(&engine);
    for (i, result) in batch.wait(&engine).into_iter().enumerate() {
        let (offset, len, _) = reqs[i];
        if i / 4 == 5 {
            let msg = result.unwrap_err().to_string();
            assert!(msg.contains(&file.path.display().to_string()), "{msg}");
            assert!(msg.contains("layer 1 cluster 1 "), "{msg}");
            assert!(msg.contains("corrupt"), "{msg}");
            // The damaged bytes were never copied out.
            assert!(batch.dests[i].iter().all(|&b| b == 0xA5));
        } else {
            result.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
            let want = &file.data[offset as usize..(offset + u64::from(len)) as usize];
            assert!(batch.dests[i] == want, "request {i} has the wrong bytes");
        }
    }
    let s = engine.stats();
    assert_eq!((s.errors, s.failed_requests), (1, 4), "{s:?}");
    // Read again, the damage is found again: nothing was cached as good.
    let mut again = Batch::new(&[(8192 + 5 * 4096 + 3000, 1000, false)]);
    again.submit(&engine);
    assert!(again.wait(&engine)[0].is_err());
}

#[test]
fn reads_of_several_page_clusters_are_checked_whole_across_pieces() {
    // Clusters of 3 pages; max_read 16 KiB becomes one cluster (12 KiB) per piece, so a read of
    // many clusters is checked piece by piece. A record of 9000 bytes starts each cluster; the
    // damage is in the last page of cluster 6, which its record does not even reach: the whole
    // cluster is checked, as its CRC covers it.
    let cb = 12288usize;
    let (file, check) = checked_file(cb, 8, 8192 + 6 * cb as u64 + 12000);
    let engine = IoEngine::open(&file.path, checked_config(check, 16 << 10)).unwrap();
    let reqs: Vec<(u64, u32, bool)> = (0..8u64)
        .map(|c| (8192 + c * cb as u64, 9000, false))
        .collect();
    let mut batch = Batch::new(&reqs);
    batch.submit(&engine);
    for (i, result) in batch.wait(&engine).into_iter().enumerate() {
        if i == 6 {
            let msg = result.unwrap_err().to_string();
            assert!(msg.contains("layer 1 cluster 2 "), "{msg}");
        } else {
            result.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
            let o = reqs[i].0 as usize;
            assert!(batch.dests[i] == file.data[o..o + 9000]);
        }
    }
    assert!(engine.stats().reads >= 8, "one piece per cluster");
}

#[test]
fn checked_requests_outside_the_data_section_fail_at_once() {
    let (file, check) = checked_file(4096, 4, 8192 + 10);
    let engine = IoEngine::open(&file.path, checked_config(check, 256 << 10)).unwrap();
    engine.set_paused(true);
    let mut batch = Batch::new(&[(100, 1000, false), (8192 + 3 * 4096 + 100, 4096, false)]);
    batch.submit(&engine);
    for result in batch.wait(&engine) {
        let msg = result.unwrap_err().to_string();
        assert!(msg.contains("outside the checked data section"), "{msg}");
    }
    assert_eq!(engine.stats().reads, 0);
}

#[test]
fn without_a_check_the_damaged_bytes_are_read_as_they_are() {
    // What the check guards against: the same damage goes through unnoticed without it.
    let (file, _) = checked_file(4096, 4, 8192 + 2 * 4096 + 5);
    let engine = IoEngine::open(&file.path, config(1)).unwrap();
    let mut batch = Batch::new(&[(8192 + 2 * 4096, 1000, false)]);
    batch.submit(&engine);
    batch.wait(&engine)[0].as_ref().unwrap();
    assert_ne!(
        batch.dests[0][..],
        file.data[8192 + 2 * 4096..8192 + 2 * 4096 + 1000]
    );
}
