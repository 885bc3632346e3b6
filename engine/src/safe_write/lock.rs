//! One writer per target at a time, across processes: an advisory lock on a small lock file next
//! to the target.
//!
//! Why a separate lock file: the target itself is replaced by a rename, so a lock on it would be
//! on the old inode while the next writer locks the new one; the folder could be locked instead,
//! but then a chat's recording would block its own `/save` into the same folder. The lock file
//! `.NAME.lock` holds the pid of its holder (for the waiting writer's message) and is removed
//! by its holder before the lock is let go, so nothing is left behind. A waiter that wakes up
//! holding the lock of a file removed meanwhile sees that the path no longer names the file it
//! locked and starts over with the new one. Only a writer killed outright (SIGKILL, power loss)
//! leaves its lock file; the kernel drops the lock itself, so the next writer simply takes it.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// What to do when another writer holds a target's lock.
pub enum Busy<'a> {
    /// Fail at once with a message naming the other writer (for short, interactive writes: a
    /// `/save` should not freeze the screen).
    Fail,
    /// Tell the callback (once: "waiting for another sparsetop (pid N) writing X"), then wait
    /// for the lock. For long, automatic writes: two `convert`s of one model started together
    /// should both succeed, one after the other.
    Wait(&'a mut dyn FnMut(&str)),
}

/// The exclusive lock on a target; released (and its file removed) on drop.
pub struct TargetLock {
    path: PathBuf,
    /// `None` when the file system offers no locks: then writers are not kept apart, as before.
    file: Option<File>,
}

/// `.NAME.lock` next to `target`.
pub fn lock_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".lock");
    target.with_file_name(name)
}

impl TargetLock {
    /// Takes the lock of `target` (whose folder must exist).
    pub fn acquire(target: &Path, mut busy: Busy) -> Result<TargetLock> {
        let path = lock_path(target);
        let io = |e| Error::io(&path, e);
        let mut told = false;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let holder = holder(&mut file);
                    match &mut busy {
                        Busy::Fail => {
                            return Err(Error::Invalid(format!(
                                "{holder} is writing {}: try again when it is done",
                                target.display()
                            )))
                        }
                        Busy::Wait(tell) => {
                            if !told {
                                tell(&format!(
                                    "waiting for {holder} writing {}",
                                    target.display()
                                ));
                                told = true;
                            }
                            lock_blocking(&file).map_err(io)?;
                        }
                    }
                }
                Err(TryLockError::Error(e)) if unsupported(&e) => {
                    return Ok(TargetLock { path, file: None })
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
            if still_named(&file, &path) {
                // Our pid, for the message of whoever waits next.
                let _ = file
                    .set_len(0)
                    .and_then(|_| file.rewind())
                    .and_then(|_| write!(file, "{}", std::process::id()));
                return Ok(TargetLock {
                    path,
                    file: Some(file),
                });
            }
            // The holder removed this lock file as we waited: lock the current one.
        }
    }
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        // Removed while still held, so no one can lock this file and believe it is current.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Who holds a lock, from the pid its holder wrote.
fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    match s.trim().parse::<u32>() {
        Ok(pid) if pid == std::process::id() => "this sparsetop itself".into(),
        Ok(pid) => format!("another sparsetop (pid {pid})"),
        Err(_) => "another sparsetop".into(),
    }
}

/// A blocking lock, retried when a signal interrupts it.
fn lock_blocking(file: &File) -> std::io::Result<()> {
    loop {
        match file.lock() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A file system without advisory locks (some FUSE and network mounts).
fn unsupported(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    if matches!(
        e.raw_os_error(),
        Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP)
    ) {
        return true;
    }
    false
}

/// Whether `path` still names the file `file` has open (its holder may have removed it).
fn still_named(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => super::target::same_file(&a, &b, path, path),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_or_waits_and_the_lock_file_goes() {
        let d = std::env::temp_dir().join(format!("sparsetop-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("t.bin");
        let first = TargetLock::acquire(&target, Busy::Fail).unwrap();
        assert!(lock_path(&target).is_file());
        let e = TargetLock::acquire(&target, Busy::Fail)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("this sparsetop itself is writing"), "{e}");
        let waiter = std::thread::spawn({
            let target = target.clone();
            move || {
                let mut said = vec![];
                let l = TargetLock::acquire(&target, Busy::Wait(&mut |m| said.push(m.to_string())))
                    .unwrap();
                drop(l);
                said
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(first);
        let said = waiter.join().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("waiting for this sparsetop itself writing"),
            "{said:?}"
        );
        assert!(!lock_path(&target).exists(), "the lock file is removed");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
