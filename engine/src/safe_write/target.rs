//! The checks on an output path, cheap enough to run before any long work: is it an input, is
//! it something other than a regular file, can its folder be written.

use super::folder_of;
use crate::error::{Error, Result};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Checks that `target` may be written: it is not one of `inputs` (compared by device and inode,
/// so links to an input count), it is a regular file or does not exist yet, and its folder exists
/// and is writable or can be created. Returns the path to write: `target`, or the file a symbolic
/// link `target` points to (the link is kept, its file replaced).
///
/// Nothing is created or changed (the writability probe's file is removed at once).
pub fn check_target(target: &Path, inputs: &[&Path]) -> Result<PathBuf> {
    let resolved = resolve(target)?;
    match std::fs::metadata(&resolved) {
        Ok(m) => check_existing(target, &m, inputs)?,
        // A missing folder on the way (or a file where one should be): the folder check says.
        Err(e) if missing(&e) => {}
        Err(e) => return Err(Error::io(&resolved, e)),
    }
    check_folder(target, folder_of(&resolved))?;
    Ok(resolved)
}

/// `target`, or where it points when it is a symbolic link. A name ending in `/` and a link to
/// nothing are refused: either would make a file where the user did not mean one.
fn resolve(target: &Path) -> Result<PathBuf> {
    let bad = |m: String| Error::Invalid(format!("cannot write to {}: {m}", target.display()));
    if target.as_os_str().is_empty() {
        return Err(Error::Invalid("an output path is empty".into()));
    }
    if target
        .as_os_str()
        .to_string_lossy()
        .ends_with(std::path::MAIN_SEPARATOR)
    {
        return Err(bad(
            "the path ends with a separator, so it names a folder: give a file name".into(),
        ));
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(target).map_err(|_| {
            let to = std::fs::read_link(target).unwrap_or_default();
            bad(format!(
                "it is a symbolic link to {}, which does not exist",
                to.display()
            ))
        }),
        _ => Ok(target.to_path_buf()),
    }
}

/// An existing target must be a regular file and none of the inputs.
pub(crate) fn check_existing(target: &Path, m: &Metadata, inputs: &[&Path]) -> Result<()> {
    if !m.is_file() {
        return Err(Error::Invalid(format!(
            "cannot write to {}: it is {}, not a regular file (sparsetop writes only regular files and will not replace it)",
            target.display(),
            kind(m)
        )));
    }
    for input in inputs {
        if let Ok(im) = std::fs::metadata(input) {
            if same_file(m, &im, target, input) {
                return Err(Error::Invalid(format!(
                    "cannot write to {}: it is the input {}{}; writing there would destroy it: choose another output path",
                    target.display(),
                    input.display(),
                    if Path::new(target) == *input { "" } else { " (the same file, through a link)" }
                )));
            }
        }
    }
    Ok(())
}

/// What a non-regular file is, for messages.
fn kind(m: &Metadata) -> &'static str {
    let ft = m.file_type();
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Whether two files are one: same device and inode on unix, same canonical path elsewhere.
pub(crate) fn same_file(a: &Metadata, b: &Metadata, pa: &Path, pb: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (pa, pb);
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        matches!((std::fs::canonicalize(pa), std::fs::canonicalize(pb)), (Ok(x), Ok(y)) if x == y)
    }
}

/// The folder must exist and be writable, or its nearest existing ancestor must be a writable
/// folder (the writer creates the missing ones).
fn check_folder(target: &Path, folder: &Path) -> Result<()> {
    let bad = |m: String| Error::Invalid(format!("cannot write to {}: {m}", target.display()));
    let mut dir = folder;
    loop {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(bad(format!("{} is not a folder", dir.display()))),
            Err(e) if missing(&e) => match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir = p,
                _ => {
                    return Err(bad(format!(
                        "its folder {} does not exist",
                        folder.display()
                    )))
                }
            },
            Err(e) => return Err(bad(format!("cannot look at {}: {e}", dir.display()))),
        }
    }
    probe_writable(dir).map_err(|e| {
        let what = if dir == folder {
            format!("its folder {} is not writable ({e})", dir.display())
        } else {
            format!(
                "its folder {} cannot be made: {} is not writable ({e})",
                folder.display(),
                dir.display()
            )
        };
        bad(what)
    })
}

fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Creates and removes a uniquely named empty file in `dir`: the only test of writability that
/// holds for root, read-only mounts, ACLs and network file systems alike.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    static N: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".sparsetop-probe-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sparsetop-target-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_new_file_in_a_missing_folder_is_fine() {
        let d = scratch("new");
        let t = d.join("a/b/out.bin");
        assert_eq!(check_target(&t, &[]).unwrap(), t);
        assert!(!d.join("a").exists(), "the check creates nothing");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn inputs_directories_and_bad_names_are_refused() {
        let d = scratch("refused");
        let model = d.join("m.gguf");
        std::fs::write(&model, b"model").unwrap();
        let e = check_target(&model, &[&model]).unwrap_err().to_string();
        assert!(e.contains("is the input") && e.contains("m.gguf"), "{e}");
        let e = check_target(&d, &[]).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let e = check_target(&model.join("x"), &[]).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
        let e = check_target(Path::new(""), &[]).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let slash = PathBuf::from(format!("{}/", d.join("new").display()));
        let e = check_target(&slash, &[]).unwrap_err().to_string();
        assert!(e.contains("names a folder"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_to_an_input_are_the_input_and_links_elsewhere_are_followed() {
        let d = scratch("links");
        let model = d.join("m.gguf");
        std::fs::write(&model, b"model").unwrap();
        let hard = d.join("hard.gguf");
        std::fs::hard_link(&model, &hard).unwrap();
        let soft = d.join("soft.gguf");
        std::os::unix::fs::symlink(&model, &soft).unwrap();
        for t in [&hard, &soft] {
            let e = check_target(t, &[&model]).unwrap_err().to_string();
            assert!(e.contains("through a link"), "{e}");
        }
        let other = d.join("other.bin");
        std::fs::write(&other, b"x").unwrap();
        let link = d.join("link.bin");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        assert_eq!(
            check_target(&link, &[&model]).unwrap(),
            std::fs::canonicalize(&other).unwrap()
        );
        let dangling = d.join("dangling.bin");
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        let e = check_target(&dangling, &[]).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
