//! A table of 16-bit values (the predictor's f16 factors as raw bits), either owned or left where
//! it lies in a profile file's read-only map.
//!
//! Why a map: the predictor is most of a profile (8 of SmolLM2-135M's 10 MB at rank 64), and
//! decode without the predictor never reads it. Copied out at load, it was anonymous memory the
//! process held beside any memory budget, with nothing to show for it: enough, under an 85 MiB
//! limit, to leave the binary's own pages no room and have the kernel spend whole seconds
//! reclaiming them over and over. In the map it is page cache: pages come in only when used, and
//! the kernel can drop them.

use memmap2::Mmap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// 16-bit values, owned or in a map.
#[derive(Clone)]
pub struct U16Table(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Vec<u16>),
    /// `len` values at byte offset `at` of the map (2-aligned; the host is little-endian).
    Mapped {
        map: Arc<Mmap>,
        at: usize,
        len: usize,
    },
}

impl U16Table {
    /// `len` little-endian values at byte offset `at` of `map`. Copies them when they cannot be
    /// used in place: a big-endian host, or an odd offset.
    ///
    /// Panics if the range lies outside the map (the caller has checked the file's layout).
    pub fn mapped(map: &Arc<Mmap>, at: usize, len: usize) -> Self {
        let bytes = &map[at..at + 2 * len];
        if cfg!(target_endian = "little") && (bytes.as_ptr() as usize).is_multiple_of(2) {
            U16Table(Repr::Mapped {
                map: map.clone(),
                at,
                len,
            })
        } else {
            U16Table(Repr::Owned(le_values(bytes)))
        }
    }

    /// Whether the values are read from the map rather than held on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }
}

/// Little-endian 16-bit values, copied out of `bytes` (an even number of them).
pub fn le_values(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

impl From<Vec<u16>> for U16Table {
    fn from(v: Vec<u16>) -> Self {
        U16Table(Repr::Owned(v))
    }
}

impl Deref for U16Table {
    type Target = [u16];

    fn deref(&self) -> &[u16] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped { map, at, len } => {
                let bytes = &map[*at..*at + 2 * len];
                // SAFETY: `mapped` checked that the range is in the map and 2-aligned, and the
                // map is read-only and lives as long as `self` (it is shared through the Arc);
                // on a little-endian host the bytes are the values.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<u16>(), *len) }
            }
        }
    }
}

impl PartialEq for U16Table {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for U16Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "U16Table({} values{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_table_reads_the_values_in_place() {
        let dir = std::env::temp_dir().join(format!("u16table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.bin");
        let values: Vec<u16> = (0..1000u16).map(|i| i.wrapping_mul(977)).collect();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&[0xAA; 6]).unwrap();
        for v in &values {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        f.write_all(&[0xBB; 1]).unwrap();
        drop(f);
        let map = Arc::new(unsafe { Mmap::map(&std::fs::File::open(&path).unwrap()) }.unwrap());
        let t = U16Table::mapped(&map, 6, values.len());
        assert!(t.is_mapped() == cfg!(target_endian = "little"));
        assert_eq!(&t[..], &values[..]);
        assert_eq!(t, U16Table::from(values.clone()));
        // An odd offset is copied, with the same values.
        let odd = U16Table::mapped(&map, 7, 3);
        assert!(!odd.is_mapped());
        let want: Vec<u16> = (0..3)
            .map(|i| u16::from_le_bytes([map[7 + 2 * i], map[8 + 2 * i]]))
            .collect();
        assert_eq!(&odd[..], &want[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
