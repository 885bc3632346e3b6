//! Files the engine writes never replace an input or a special file, never mix two writers'
//! data, and never leave a temporary file behind (issue #15, rows 1, 2, 4 and 10), on the tiny
//! `llama-linear` conformance model.

use sparsetop_engine::offload::bundle;
use sparsetop_engine::safe_write::{check_target, write_atomic, AtomicFile, Busy, InPlaceFile};
use sparsetop_engine::sparse::profile::{model_hash, Dims, ProfileData};
use sparsetop_engine::Model;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh scratch folder holding a copy of the tiny model: the folder and the model's path.
fn scratch_with_model(test: &str) -> (PathBuf, PathBuf) {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("safe_write")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let m = d.join("tiny.gguf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/llama-linear.gguf"),
        &m,
    )
    .unwrap();
    (d, m)
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A profile whose order is a rotation by `shift` of each layer's neurons (the only part of a
/// profile a bundle uses; the statistics are placeholders of the right sizes).
fn profile_for(model: &Model, shift: usize) -> ProfileData {
    let c = &model.config;
    let (n_layer, n_ff) = (c.n_layer, c.n_ff);
    let order = (0..n_layer)
        .flat_map(|_| (0..n_ff).map(move |i| ((i + shift) % n_ff) as u32))
        .collect();
    let p = ProfileData {
        dims: Dims {
            n_layer,
            n_ff,
            n_embd: c.n_embd,
            n_levels: 1,
            rank: 0,
        },
        calib_tokens: 0,
        model_hash: model_hash(&model.file, n_layer),
        levels: vec![0.5],
        gate_thresholds: vec![0.0; n_layer],
        act_thresholds: vec![0.0; n_layer],
        mean_abs_act: vec![0.0; n_layer * n_ff],
        freq: vec![0; n_layer * n_ff],
        order,
        pred_a: vec![].into(),
        pred_b: vec![].into(),
        pred_thresholds: vec![0.0; n_layer],
        pred_recall: vec![0.0; n_layer],
    };
    p.validate().unwrap();
    p
}

#[test]
fn a_bundle_or_profile_never_replaces_the_model() {
    // Row 1: `convert -m m.gguf -o m.gguf` replaced the model by its bundle.
    let (dir, m) = scratch_with_model("never_the_model");
    let original = std::fs::read(&m).unwrap();
    let hard = dir.join("hard.gguf");
    std::fs::hard_link(&m, &hard).unwrap();
    let soft = dir.join("soft.gguf");
    std::os::unix::fs::symlink(&m, &soft).unwrap();
    let model = Model::load(&m).unwrap();
    let profile = profile_for(&model, 1);
    for target in [&m, &hard, &soft] {
        let e = bundle::write_bundle(target, &model, &profile, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input") && e.contains("tiny.gguf"), "{e}");
        let e = profile
            .write_with(target, &[&m], Busy::Fail)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is the input"), "{e}");
    }
    // The profile file given to `convert` is an input of the bundle too.
    let p = dir.join("p.sparsity");
    profile.write(&p).unwrap();
    let e = bundle::write_bundle_with(&p, &model, &profile, &[&p], Busy::Fail, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is the input") && e.contains("p.sparsity"),
        "{e}"
    );
    assert_eq!(ProfileData::read(&p).unwrap(), profile);
    assert_eq!(std::fs::read(&m).unwrap(), original, "the model is intact");
    assert_eq!(
        names(&dir),
        ["hard.gguf", "p.sparsity", "soft.gguf", "tiny.gguf"]
    );
}

fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a plain syscall with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn is_fifo(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).unwrap().file_type().is_fifo()
}

#[test]
fn special_files_are_refused_and_left_as_they_are() {
    // Row 2: `convert -o /dev/full` as root replaced the device node with a regular file.
    use std::os::unix::fs::FileTypeExt;
    let (dir, m) = scratch_with_model("special_files");
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    let model = Model::load(&m).unwrap();
    let profile = profile_for(&model, 1);
    let e = bundle::write_bundle(&fifo, &model, &profile, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("a FIFO (named pipe), not a regular file"), "{e}");
    let e = profile.write(&fifo).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    let e = InPlaceFile::create(&fifo, &[], Busy::Fail)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("FIFO"), "{e}");
    assert!(is_fifo(&fifo));
    // Device nodes: refused before anything is created next to them (nothing here is committed,
    // so even a broken check could not replace them).
    for dev in ["/dev/full", "/dev/null"] {
        let dev = Path::new(dev);
        let e = check_target(dev, &[]).unwrap_err().to_string();
        assert!(e.contains("a character device, not a regular file"), "{e}");
        let e = AtomicFile::create(dev, &[], Busy::Fail)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a character device"), "{e}");
        let ft = std::fs::symlink_metadata(dev).unwrap().file_type();
        assert!(ft.is_char_device(), "{} is still a device", dev.display());
    }
    assert_eq!(names(&dir), ["pipe", "tiny.gguf"]);
}

#[test]
fn concurrent_writers_of_one_bundle_take_turns() {
    // Row 4: two `convert`s of one model shared one `.part` file: a "No such file" error for
    // one, or a bundle with one profile's header and a mix of both profiles' data.
    let (dir, m) = scratch_with_model("concurrent_bundles");
    let model = Model::load(&m).unwrap();
    let out = dir.join("tiny.gguf.bundle");
    let profiles = [
        Arc::new(profile_for(&model, 1)),
        Arc::new(profile_for(&model, 7)),
    ];
    let model = Arc::new(model);
    let writers: Vec<_> = profiles
        .iter()
        .map(|p| {
            let (model, p, out) = (model.clone(), p.clone(), out.clone());
            std::thread::spawn(move || {
                let mut said = vec![];
                let r = bundle::write_bundle_with(
                    &out,
                    &model,
                    &p,
                    &[],
                    Busy::Wait(&mut |m| said.push(m.to_string())),
                    // Slow enough that the two writers overlap.
                    &mut |done, _| {
                        if done == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(300))
                        }
                    },
                );
                (r.map_err(|e| e.to_string()), said)
            })
        })
        .collect();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for (r, _) in &results {
        assert!(r.is_ok(), "both writers succeed: {r:?}");
    }
    let waited: Vec<_> = results.iter().flat_map(|(_, s)| s).collect();
    assert_eq!(
        waited.len(),
        1,
        "one writer waited, and said so: {waited:?}"
    );
    assert!(
        waited[0].contains("waiting for") && waited[0].contains("tiny.gguf.bundle"),
        "{waited:?}"
    );
    let info = bundle::read_info(&out).unwrap();
    bundle::verify_file(&info, &mut |_, _| {}).unwrap();
    let hash = model.ffn_hash();
    let matching = profiles
        .iter()
        .filter(|p| bundle::check_matches(&info, &hash, p).is_ok())
        .count();
    assert_eq!(matching, 1, "the bundle is one profile's, whole");
    assert_eq!(names(&dir), ["tiny.gguf", "tiny.gguf.bundle"]);
}

#[test]
fn concurrent_whole_file_writes_are_never_mixed() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("safe_write/concurrent_files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.bin");
    let writers: Vec<_> = (1..=4u8)
        .map(|b| {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut f = AtomicFile::create(&out, &[], Busy::Wait(&mut |_| {})).unwrap();
                for _ in 0..64 {
                    f.write_all(&[b; 4096]).unwrap();
                    std::thread::yield_now();
                }
                f.commit().unwrap();
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), 64 * 4096);
    assert!(got.iter().all(|&x| x == got[0]), "one writer's bytes only");
    assert_eq!(names(&dir), ["out.bin"]);
}

#[test]
fn a_failed_write_leaves_no_temporary_file() {
    // Row 10: a failed profile write left a `*.tmpPID` file of 4-10 MB behind.
    let (dir, m) = scratch_with_model("failed_writes");
    let model = Model::load(&m).unwrap();
    let profile = profile_for(&model, 3);
    // The target is a folder.
    let sub = dir.join("tiny.gguf.sparsity");
    std::fs::create_dir(&sub).unwrap();
    let e = profile.write(&sub).unwrap_err().to_string();
    assert!(e.contains("a directory"), "{e}");
    let e = bundle::write_bundle(&sub, &model, &profile, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("a directory"), "{e}");
    // The target becomes a folder while the file is written: the commit fails, cleanly.
    let late = dir.join("late.bin");
    let mut f = AtomicFile::create(&late, &[], Busy::Fail).unwrap();
    f.write_all(&[7; 100_000]).unwrap();
    std::fs::create_dir(&late).unwrap();
    let e = f.commit().unwrap_err().to_string();
    assert!(e.contains("a directory"), "{e}");
    std::fs::remove_dir(&late).unwrap();
    // A writer that gives up (an error returned) or panics part way.
    let mut f = AtomicFile::create(&dir.join("given_up.bin"), &[], Busy::Fail).unwrap();
    f.write_all(b"part").unwrap();
    drop(f);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bundle::write_bundle(
            &dir.join("tiny.gguf.bundle"),
            &model,
            &profile,
            &mut |done, _| assert_eq!(done, 0, "an injected failure after the first layer"),
        )
    }));
    assert!(panicked.is_err());
    assert_eq!(names(&dir), ["tiny.gguf", "tiny.gguf.sparsity"]);
    // The temporary file of a writer killed outright is removed by the next writer of the target.
    let orphan = dir.join(".tiny.gguf.bundle.tmp-999999-0");
    std::fs::write(&orphan, b"left by a killed convert").unwrap();
    bundle::write_bundle(
        &dir.join("tiny.gguf.bundle"),
        &model,
        &profile,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        names(&dir),
        ["tiny.gguf", "tiny.gguf.bundle", "tiny.gguf.sparsity"]
    );
}

#[test]
fn a_log_is_checked_through_its_open_file_before_it_is_emptied() {
    let (dir, m) = scratch_with_model("in_place");
    let original = std::fs::read(&m).unwrap();
    let e = InPlaceFile::create(&m, &[&m], Busy::Fail)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is the input"), "{e}");
    assert_eq!(std::fs::read(&m).unwrap(), original);
    let log = dir.join("rec.jsonl");
    std::fs::write(&log, b"an older recording\n").unwrap();
    let mut f = InPlaceFile::create(&log, &[&m], Busy::Fail).unwrap();
    f.write_all(b"{\"t\":0}\n").unwrap();
    f.flush().unwrap();
    // Visible at its path as it is written; a second writer is refused while it is open.
    assert_eq!(std::fs::read(&log).unwrap(), b"{\"t\":0}\n");
    let e = InPlaceFile::create(&log, &[], Busy::Fail)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is writing") && e.contains("rec.jsonl"), "{e}");
    let e = write_atomic(&log, b"x", &[], Busy::Fail)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is writing"), "{e}");
    drop(f);
    assert_eq!(names(&dir), ["rec.jsonl", "tiny.gguf"]);
}
