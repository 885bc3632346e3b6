//! What `sparsetop` writes, as a user (or a careless script) runs it: an output that is the model
//! or a device, two conversions at once, a write that fails, folders that cannot be written
//! (issue #15, rows 1, 2, 4, 10 and the paths of row 11). Every refusal comes before the model
//! is loaded or calibrated, names the path and says why, and leaves nothing behind.

mod common;

use sparsetop_engine::offload::bundle;
use sparsetop_engine::sparse::profile::{Dims, ProfileData};
use sparsetop_engine::Model;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sparsetop");

/// A fresh scratch folder `test` holding a copy of the tiny `llama-linear` model and an empty
/// cache folder (passed as `SPARSETOP_CACHE_DIR`, so nothing goes to the user's cache): the
/// folder, the model's path and the cache's.
fn scratch(test: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli_files")
        .join(test);
    if d.exists() {
        // A previous run may have left folders read-only.
        let _ = Command::new("chmod").arg("-R").arg("u+w").arg(&d).status();
        std::fs::remove_dir_all(&d).unwrap();
    }
    let models = d.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let m = models.join("tiny.gguf");
    std::fs::copy(
        common::project_file("tests/conformance/llama-linear.gguf"),
        &m,
    )
    .unwrap();
    let cache = d.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    (d, m, cache)
}

/// Runs `cmd` (its stdin closed) and gives up after 120 s: a write that blocks (on a FIFO, a
/// lock) fails the test instead of hanging it.
fn finish(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sparsetop");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(o) => o.expect("wait for sparsetop"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("sparsetop (pid {id}) did not finish in 120 s");
        }
    }
}

fn sparsetop(cache: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("SPARSETOP_CACHE_DIR", cache);
    finish(cmd)
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run with a clear message naming `needle`, no panic, and no calibration started.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure; stderr: {err}");
    assert!(err.contains(needle), "stderr should say {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!err.contains("calibrating on"), "calibrated first: {err}");
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

/// Whether this test runs as root (who writes in read-only folders).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli_files-uid-{}", std::process::id()));
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid == 0
}

/// `sparsetop args` as a user for whom a folder without write permission is read-only: as root,
/// through `setpriv` without the capabilities that bypass file permissions.
fn sparsetop_unprivileged(cache: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.arg("--bounding-set=-dac_override,-dac_read_search,-fowner")
            .arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args(args).env("SPARSETOP_CACHE_DIR", cache);
    finish(cmd)
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A profile of `model` whose order rotates each layer's neurons by `shift` (all a bundle uses of
/// a profile; the statistics are placeholders of the right sizes), written to `path`.
fn write_profile(model: &Model, shift: usize, path: &Path) -> ProfileData {
    let c = &model.config;
    let (n_layer, n_ff) = (c.n_layer, c.n_ff);
    let p = ProfileData {
        dims: Dims {
            n_layer,
            n_ff,
            n_embd: c.n_embd,
            n_levels: 1,
            rank: 0,
        },
        calib_tokens: 0,
        model_hash: model.ffn_hash(),
        levels: vec![0.5],
        gate_thresholds: vec![0.0; n_layer],
        act_thresholds: vec![0.0; n_layer],
        mean_abs_act: vec![0.0; n_layer * n_ff],
        freq: vec![0; n_layer * n_ff],
        order: (0..n_layer)
            .flat_map(|_| (0..n_ff).map(move |i| ((i + shift) % n_ff) as u32))
            .collect(),
        pred_a: vec![].into(),
        pred_b: vec![].into(),
        pred_thresholds: vec![0.0; n_layer],
        pred_recall: vec![0.0; n_layer],
    };
    p.write(path).unwrap();
    p
}

#[test]
fn an_output_that_is_an_input_is_refused_before_any_work() {
    // Row 1: `convert -m m.gguf -o m.gguf` exited 0 and the model was gone.
    let (d, m, cache) = scratch("output_is_input");
    let original = std::fs::read(&m).unwrap();
    let link = d.join("link.gguf");
    std::os::unix::fs::symlink(&m, &link).unwrap();
    let hard = d.join("hard.gguf");
    std::fs::hard_link(&m, &hard).unwrap();
    for o in [&m, &link, &hard] {
        let out = sparsetop(&cache, &["convert", "-m", arg(&m), "-o", arg(o)]);
        assert_refused(&out, "is the input");
        assert_refused(&out, &m.display().to_string());
        let out = sparsetop(&cache, &["calibrate", "-m", arg(&m), "-o", arg(o)]);
        assert_refused(&out, "is the input");
    }
    // The profile given to `convert` and the text given to `calibrate` are inputs too.
    let model = Model::load(&m).unwrap();
    let p = d.join("p.sparsity");
    let profile = write_profile(&model, 1, &p);
    let out = sparsetop(
        &cache,
        &[
            "convert",
            "-m",
            arg(&m),
            "--profile",
            arg(&p),
            "-o",
            arg(&p),
        ],
    );
    assert_refused(&out, "is the input");
    assert_eq!(ProfileData::read(&p).unwrap(), profile);
    let text = d.join("text.txt");
    std::fs::write(&text, "Some calibration text.").unwrap();
    let out = sparsetop(
        &cache,
        &[
            "calibrate",
            "-m",
            arg(&m),
            "-f",
            arg(&text),
            "-o",
            arg(&text),
        ],
    );
    assert_refused(&out, "is the input");
    assert_eq!(
        std::fs::read_to_string(&text).unwrap(),
        "Some calibration text."
    );
    assert_eq!(std::fs::read(&m).unwrap(), original, "the model is intact");
    assert_eq!(names(m.parent().unwrap()), ["tiny.gguf"]);
    assert!(names(&cache).is_empty());
}

#[test]
fn a_device_or_a_fifo_is_never_replaced() {
    // Row 2: as root, `convert -o /dev/full` replaced the device node with a 47 MB file.
    use std::os::unix::fs::FileTypeExt;
    let (d, m, cache) = scratch("special_files");
    let fifo = d.join("pipe");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    for (o, what) in [
        (fifo.as_path(), "a FIFO (named pipe)"),
        (Path::new("/dev/full"), "a character device"),
        (Path::new("/dev/null"), "a character device"),
    ] {
        for cmd in ["convert", "calibrate"] {
            let out = sparsetop(&cache, &[cmd, "-m", arg(&m), "-o", arg(o)]);
            assert_refused(&out, &format!("{}: it is {what}", o.display()));
        }
        let ft = std::fs::symlink_metadata(o).unwrap().file_type();
        assert!(
            ft.is_fifo() || ft.is_char_device(),
            "{} is left as it was",
            o.display()
        );
    }
    assert_eq!(names(&d), ["cache", "models", "pipe"]);
    assert_eq!(names(m.parent().unwrap()), ["tiny.gguf"]);
}

#[test]
fn two_converts_at_once_take_turns_and_leave_one_whole_bundle() {
    // Row 4: two `convert`s of one model shared one `.part` name: a misleading "No such file"
    // error, or a bundle with one profile's header and both profiles' data, which `run` used.
    // The real model, whose 45 MB bundle takes long enough to write that the two overlap.
    let (d, _, cache) = scratch("concurrent_converts");
    let model_path = common::model_path();
    let model = common::model();
    let profiles = [d.join("a.sparsity"), d.join("b.sparsity")];
    let data: Vec<_> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| write_profile(&model, 1 + 100 * i, p))
        .collect();
    let out = d.join("out").join("smol.bundle");
    let children: Vec<_> = profiles
        .iter()
        .map(|p| {
            Command::new(BIN)
                .args(["convert", "--force", "-m"])
                .args([
                    model_path.as_path(),
                    Path::new("--profile"),
                    p,
                    Path::new("-o"),
                    &out,
                ])
                .env("SPARSETOP_CACHE_DIR", &cache)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "both succeed: {}", stderr(o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("written in"));
    }
    let waited = outputs
        .iter()
        .filter(|o| stderr(o).contains("waiting for another sparsetop (pid"))
        .count();
    assert_eq!(waited, 1, "one waited for the other, and said so");
    let info = bundle::read_info(&out).unwrap();
    bundle::verify_file(&info, &mut |_, _| {}).unwrap();
    let whose = data
        .iter()
        .filter(|p| bundle::check_matches(&info, &model.ffn_hash(), p).is_ok())
        .count();
    assert_eq!(whose, 1, "the bundle is one profile's, whole");
    assert_eq!(names(out.parent().unwrap()), ["smol.bundle"]);
}

#[test]
fn a_failed_write_leaves_no_temporary_file_and_the_old_file_intact() {
    // Row 10: a failed profile write (disk full, `-o` a directory) left a `*.tmpPID` file of
    // 4-10 MB behind.
    let (d, m, cache) = scratch("failed_writes");
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let o = sparsetop(&cache, &["calibrate", "-m", arg(&m), "-o", arg(&out)]);
    assert_refused(&o, "it is a directory");
    // A full disk, as `ulimit -f` makes one: writes past 16 KiB fail (EFBIG).
    let model = Model::load(&m).unwrap();
    let p = d.join("p.sparsity");
    write_profile(&model, 3, &p);
    let bundle_path = out.join("tiny.bundle");
    std::fs::write(&bundle_path, b"the previous bundle").unwrap();
    let full_disk = |args: &[&str]| {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg("trap '' XFSZ; ulimit -f 16; exec \"$@\"")
            .arg("bash")
            .arg(BIN)
            .args(args)
            .env("SPARSETOP_CACHE_DIR", &cache);
        finish(cmd)
    };
    let o = full_disk(&[
        "convert",
        "--force",
        "-m",
        arg(&m),
        "--profile",
        arg(&p),
        "-o",
        arg(&bundle_path),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("File too large"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&bundle_path).unwrap(), b"the previous bundle");
    let o = full_disk(&[
        "calibrate",
        "-m",
        arg(&m),
        "--tokens",
        "64",
        "-t",
        "2",
        "-o",
        arg(&out.join("tiny.sparsity")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("File too large"), "{}", stderr(&o));
    assert_eq!(names(&out), ["tiny.bundle"], "no temporary or lock file");
    assert_eq!(names(&d), ["cache", "models", "out", "p.sparsity"]);
}

#[test]
fn unwritable_places_are_refused_before_calibration() {
    // Row 11: a profile path that is a directory, or read-only model and cache folders, were
    // refused only after a 90-second calibration.
    let (_, m, cache) = scratch("unwritable");
    let models = m.parent().unwrap().to_path_buf();
    // `-o` a folder, on the real model: refused at once, not after its calibration.
    let t0 = Instant::now();
    let o = sparsetop(
        &cache,
        &[
            "calibrate",
            "-m",
            arg(&common::model_path()),
            "-o",
            arg(&cache),
        ],
    );
    assert_refused(&o, "it is a directory");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // The model's folder read-only: the profile and the bundle go to the cache, as before.
    chmod(&models, 0o555);
    let o = sparsetop_unprivileged(&cache, &["convert", "-m", arg(&m), "-t", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cache.join("profiles/tiny.gguf.sparsity").is_file());
    assert!(cache.join("bundles/tiny.gguf.bundle").is_file());
    // The cache read-only too (and empty): nowhere to write, said at once.
    chmod(&models, 0o755);
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o555);
    chmod(&models, 0o555);
    let bundle_err = "no place to write the neuron bundle: cannot write to";
    let profile_err = "no place to write the sparsity profile: cannot write to";
    let t0 = Instant::now();
    let o = sparsetop_unprivileged(&cache, &["convert", "-m", arg(&m), "-t", "2"]);
    assert_refused(&o, bundle_err);
    assert_refused(&o, &models.display().to_string());
    assert_refused(&o, &cache.display().to_string());
    let o = sparsetop_unprivileged(&cache, &["calibrate", "-m", arg(&m), "-t", "2"]);
    assert_refused(&o, profile_err);
    let o = sparsetop_unprivileged(
        &cache,
        &[
            "run",
            "-m",
            arg(&m),
            "-t",
            "2",
            "--sparsity",
            "0.5",
            "-p",
            "hi",
            "-n",
            "1",
        ],
    );
    assert_refused(&o, profile_err);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // A folder where the profile would go next to the model: the cache is used instead, or,
    // when it is read-only, the run is refused naming both.
    chmod(&models, 0o755);
    std::fs::create_dir(models.join("tiny.gguf.sparsity")).unwrap();
    let o = sparsetop_unprivileged(&cache, &["calibrate", "-m", arg(&m), "-t", "2"]);
    assert_refused(&o, "tiny.gguf.sparsity: it is a directory");
    assert_refused(&o, "profiles");
    chmod(&cache, 0o755);
    let o = sparsetop_unprivileged(
        &cache,
        &["calibrate", "-m", arg(&m), "-t", "2", "--tokens", "64"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cache.join("profiles/tiny.gguf.sparsity").is_file());
    // Files made earlier in a folder now read-only, the cache read-only: nothing needs writing,
    // so nothing is refused.
    std::fs::remove_dir(models.join("tiny.gguf.sparsity")).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let o = sparsetop(&cache, &["convert", "-m", arg(&m), "-t", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    chmod(&models, 0o555);
    chmod(&cache, 0o555);
    let o = sparsetop_unprivileged(&cache, &["convert", "-m", arg(&m)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("up to date, checked"));
    chmod(&models, 0o755);
    chmod(&cache, 0o755);
}

/// `sparsetop chat ARGS` in a tmux pane (the full-screen UI needs a terminal): its exit code and
/// what it printed.
fn chat_in_tmux(dir: &Path, args: &[&str]) -> (i32, String) {
    let socket = format!("cli_files-{}", std::process::id());
    let log = dir.join("chat.log");
    let code = dir.join("chat.code");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "'{BIN}' chat {} 2>'{}'; echo $? >'{}'",
        quoted.join(" "),
        log.display(),
        code.display()
    );
    let ok = Command::new("tmux")
        .args([
            "-L",
            &socket,
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            &script,
        ])
        .status()
        .expect("tmux is needed by this test");
    assert!(ok.success());
    let t0 = Instant::now();
    while !code.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .output();
    let c = std::fs::read_to_string(&code).expect("the chat ended within 60 s");
    let _ = std::fs::remove_file(&code);
    (
        c.trim().parse().unwrap(),
        std::fs::read_to_string(&log).unwrap(),
    )
}

#[test]
fn a_recording_never_replaces_an_input_or_a_fifo() {
    // Checked before the model is loaded: the chat ends at once with the reason.
    let (d, m, _) = scratch("recording");
    let original = std::fs::read(&m).unwrap();
    let (code, err) = chat_in_tmux(&d, &["-m", arg(&m), "--record", arg(&m)]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("is the input"), "{err}");
    assert_eq!(std::fs::read(&m).unwrap(), original);
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, err) = chat_in_tmux(&d, &["-m", arg(&m), "--record", arg(&fifo)]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("a FIFO (named pipe)"), "{err}");
    assert_eq!(names(&d), ["cache", "chat.log", "models", "pipe"]);
    assert_eq!(names(m.parent().unwrap()), ["tiny.gguf"]);
}
