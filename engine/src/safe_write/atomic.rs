//! A whole file written under a temporary name and renamed over its target once complete.

use super::folder_of;
use super::lock::{Busy, TargetLock};
use super::target::{check_existing, check_target};
use crate::error::{Error, Result};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file being written: a unique temporary file next to the target, written with [`Write`] and
/// [`Seek`] (or through [`AtomicFile::file`]), put in place by [`AtomicFile::commit`]. Dropped
/// without a commit (an error returned, a panic unwinding), it removes its temporary file. It
/// holds the target's [`TargetLock`] from creation to commit or drop.
pub struct AtomicFile {
    /// The file that will be replaced (a symbolic link's destination, not the link).
    target: PathBuf,
    inputs: Vec<PathBuf>,
    temp: PathBuf,
    file: Option<File>,
    // Dropped after `Drop::drop` has removed the temporary file: the next writer of the target
    // never meets it.
    _lock: TargetLock,
}

impl AtomicFile {
    /// Checks `target` as [`check_target`] does, creates its folder if needed, takes its lock
    /// (`busy` says what to do when another writer has it), removes temporary files that writers
    /// of it killed outright left behind, and creates this writer's temporary file.
    pub fn create(target: &Path, inputs: &[&Path], busy: Busy) -> Result<AtomicFile> {
        let resolved = check_target(target, inputs)?;
        let folder = folder_of(&resolved);
        std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        let lock = TargetLock::acquire(&resolved, busy)?;
        // Checked again under the lock: the target may have changed while we waited for it.
        let resolved = check_target(&resolved, inputs)?;
        remove_stale_temps(&resolved);
        let (temp, file) = create_temp(&resolved)?;
        Ok(AtomicFile {
            target: resolved,
            inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
            temp,
            file: Some(file),
            _lock: lock,
        })
    }

    /// The path that [`commit`](Self::commit) replaces.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file's path (for messages about write errors).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The temporary file, e.g. to sync it or drop its pages from the page cache.
    pub fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("an uncommitted AtomicFile has its file")
    }

    /// Syncs the file, checks the target once more (it must still not be an input or a special
    /// file), renames the file over it and syncs the folder, so the new file survives a crash.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("commit runs once");
        file.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        drop(file);
        match std::fs::metadata(&self.target) {
            Ok(m) => {
                let inputs: Vec<&Path> = self.inputs.iter().map(|p| p.as_path()).collect();
                check_existing(&self.target, &m, &inputs)?;
                // A replaced file keeps its permissions (a private transcript stays private).
                let _ = std::fs::set_permissions(&self.temp, m.permissions());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&self.target, e)),
        }
        std::fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        // The temporary name is gone: nothing for `Drop` to remove.
        self.temp = PathBuf::new();
        sync_folder(&self.target);
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile has its file")
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file
            .as_mut()
            .expect("an uncommitted AtomicFile has its file")
            .seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `target` through an [`AtomicFile`].
pub fn write_atomic(target: &Path, bytes: &[u8], inputs: &[&Path], busy: Busy) -> Result<()> {
    let mut f = AtomicFile::create(target, inputs, busy)?;
    let temp = f.temp_path().to_path_buf();
    f.write_all(bytes).map_err(|e| Error::io(temp, e))?;
    f.commit()
}

/// `.NAME.tmp-`: the start of every temporary file of `target`.
fn temp_prefix(target: &Path) -> OsString {
    let mut p = OsString::from(".");
    p.push(target.file_name().unwrap_or_default());
    p.push(".tmp-");
    p
}

/// Creates `.NAME.tmp-PID-N` with `O_EXCL`: a name no other writer has, in this process or any.
fn create_temp(target: &Path) -> Result<(PathBuf, File)> {
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut name = temp_prefix(target);
        name.push(format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = target.with_file_name(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(f) => return Ok((temp, f)),
            // Left by a killed process that had our pid: take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&temp, e)),
        }
    }
}

/// Removes the temporary files of `target` left by writers killed outright. Called under the
/// target's lock, which every writer holds for as long as its temporary file exists: any such
/// file found then is an orphan (a bundle's is as big as the bundle).
fn remove_stale_temps(target: &Path) {
    let prefix = temp_prefix(target);
    let Ok(entries) = std::fs::read_dir(folder_of(target)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let orphan = name
            .to_str()
            .zip(prefix.to_str())
            .and_then(|(n, p)| n.strip_prefix(p))
            .is_some_and(|rest| {
                let mut parts = rest.split('-');
                let pid_and_n = (parts.next(), parts.next(), parts.next());
                matches!(pid_and_n, (Some(a), Some(b), None)
                    if a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok())
            });
        if orphan && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Makes a rename durable: syncs the folder holding `path` (best effort; unix only).
fn sync_folder(path: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(folder_of(path)) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sparsetop-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_replaces_and_drop_discards() {
        let d = scratch("commit");
        let t = d.join("out.bin");
        std::fs::write(&t, b"old").unwrap();
        let mut f = AtomicFile::create(&t, &[], Busy::Fail).unwrap();
        f.write_all(b"new!").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"N").unwrap();
        assert_eq!(
            std::fs::read(&t).unwrap(),
            b"old",
            "not in place before commit"
        );
        f.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"New!");
        let mut f = AtomicFile::create(&t, &[], Busy::Fail).unwrap();
        f.write_all(b"abandoned").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&t).unwrap(), b"New!");
        assert_eq!(names(&d), ["out.bin"], "no temporary or lock file left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn orphaned_temporaries_of_the_target_are_removed() {
        let d = scratch("orphans");
        let t = d.join("out.bin");
        std::fs::write(d.join(".out.bin.tmp-4000000-3"), b"orphan").unwrap();
        std::fs::write(d.join(".out.bin.tmp-notes"), b"not ours").unwrap();
        std::fs::write(d.join(".other.bin.tmp-4000000-3"), b"another target's").unwrap();
        write_atomic(&t, b"x", &[], Busy::Fail).unwrap();
        assert_eq!(
            names(&d),
            [".other.bin.tmp-4000000-3", ".out.bin.tmp-notes", "out.bin"]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
