//! GGUF v2/v3 reader over a memory map.
//!
//! The header (metadata and tensor infos) is parsed once into owned structures; tensor data stays in
//! the map and is handed out as zero-copy byte slices. The file is untrusted: every count, length,
//! dimension, offset and size is checked with overflow-checked arithmetic before use.

mod cursor;
mod value;

pub use value::{Metadata, Value};

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use cursor::Cursor;
use std::path::{Path, PathBuf};

/// "GGUF" as the first four bytes, read little-endian.
const MAGIC: &[u8; 4] = b"GGUF";
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's limit on tensor dimensions.
pub const MAX_DIMS: usize = 4;
/// Nesting limit for arrays of arrays, so a hostile file cannot exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 8;

/// Where a tensor's bytes are and how to read them.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, fastest-varying first (ggml's `ne`).
    pub dims: Vec<u64>,
    pub dtype: GgmlType,
    /// Offset of the data from the start of the file (already made absolute).
    pub offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Number of rows: all dimensions but the first.
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }

    /// Elements per row (the first dimension).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.size / self.n_rows().max(1)
    }
}

/// A borrowed tensor: its description and its bytes in the map.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An open GGUF file.
pub struct GgufFile {
    storage: Storage,
    path: Option<PathBuf>,
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: usize,
    by_name: std::collections::HashMap<String, usize>,
    read_through_file: bool,
}

/// Reads `len` bytes at `offset` of `path` in 1 MiB pieces, handing each to `f` and dropping it
/// from the page cache right after.
fn read_range_uncached(
    path: &Path,
    offset: u64,
    len: usize,
    f: &mut dyn FnMut(&[u8]),
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; (1 << 20).min(len.max(1))];
    let mut done = 0usize;
    while done < len {
        let n = buf.len().min(len - done);
        file.read_exact_at(&mut buf[..n], offset + done as u64)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid descriptor; advice only.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    (offset + done as u64) as i64,
                    n as i64,
                    libc::POSIX_FADV_DONTNEED,
                );
            }
        }
        f(&buf[..n]);
        done += n;
    }
    Ok(())
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates a GGUF file, mapping it read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::Gguf(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        // SAFETY: the map is read-only and private; we never hand out references that outlive it.
        // A file truncated by another process while mapped raises SIGBUS, as for every mmap reader.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut f = Self::parse(Storage::Mmap(mmap)).map_err(|e| match e {
            Error::Gguf(m) => Error::Gguf(format!("{}: {m}", path.display())),
            e => e,
        })?;
        f.path = Some(path.to_path_buf());
        Ok(f)
    }

    /// Parses a GGUF image held in memory (tests, small generated files).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Storage::Owned(bytes))
    }

    fn parse(storage: Storage) -> Result<Self> {
        let bytes = storage.bytes();
        let mut c = Cursor::new(bytes);
        let magic = c.take(4, "magic")?;
        if magic != MAGIC {
            return Err(Error::Gguf(format!(
                "bad magic {:02x?} (expected \"GGUF\"): not a GGUF file",
                magic
            )));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            if (2..=3).contains(&version.swap_bytes()) {
                return Err(Error::Gguf(format!(
                    "unsupported GGUF version {version}: this looks like a big-endian GGUF \
                     (version {}), which is not supported",
                    version.swap_bytes()
                )));
            }
            return Err(Error::Gguf(format!(
                "unsupported GGUF version {version} (supported: 2 and 3)"
            )));
        }
        // Both counts are read before either is checked, so a file cut inside the header says
        // which field it was cut in.
        let n_tensors_at = c.pos();
        let n_tensors = c.u64("tensor count")?;
        let n_kv_at = c.pos();
        let n_kv = c.u64("metadata count")?;
        // A tensor info takes at least 8 (name len) + 4 (n_dims) + 8 (one dim) + 4 (type) +
        // 8 (offset) bytes.
        let n_tensors = c.check_count(n_tensors, n_tensors_at, 32, "tensor count")?;
        // A key/value takes at least 8 (key len) + 4 (type) + 1 byte.
        let n_kv = c.check_count(n_kv, n_kv_at, 13, "metadata count")?;

        let mut entries = Vec::with_capacity(c.capacity_for::<(String, Value)>(n_kv));
        for i in 0..n_kv {
            let key = c.string(format_args!("metadata key #{i}"))?;
            let ty = c.u32(format_args!("type of metadata '{key}'"))?;
            let v = read_value(&mut c, ty, &key, 0)?;
            entries.push((key, v));
        }
        let metadata = Metadata::from_entries(entries)?;

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                let a = v.as_u64().ok_or_else(|| {
                    Error::Gguf(format!(
                        "general.alignment must be an unsigned integer, found {} {v:?}",
                        v.type_name()
                    ))
                })?;
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(Error::Gguf(format!(
                        "general.alignment {a} is not a power of two up to 1 MiB"
                    )));
                }
                a
            }
        };

        let mut raw =
            Vec::with_capacity(c.capacity_for::<(String, Vec<u64>, GgmlType, u64)>(n_tensors));
        for i in 0..n_tensors {
            let name = c.string(format_args!("name of tensor #{i}"))?;
            let n_dims = c.u32(format_args!("dimension count of tensor '{name}'"))? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::Gguf(format!(
                    "tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for d in 0..n_dims {
                let v = c.u64(format_args!("dimension {d} of tensor '{name}'"))?;
                if v == 0 || v > i64::MAX as u64 {
                    return Err(Error::Gguf(format!(
                        "tensor '{name}' dimension {d} is {v}: must be between 1 and 2^63-1"
                    )));
                }
                dims.push(v);
            }
            let ty_id = c.u32(format_args!("type of tensor '{name}'"))?;
            let dtype = GgmlType::from_id(ty_id)
                .map_err(|_| Error::Gguf(format!("tensor '{name}' has unknown type id {ty_id}")))?;
            let offset = c.u64(format_args!("offset of tensor '{name}'"))?;
            raw.push((name, dims, dtype, offset));
        }

        let header_end = c.pos() as u64;
        let file_len = bytes.len() as u64;
        let data_offset = match header_end.checked_next_multiple_of(alignment) {
            Some(o) if o <= file_len => o,
            // A file without tensors (vocab-only, metadata-only) need not pad its header: llama.cpp
            // accepts these, and there is no data to align.
            _ if raw.is_empty() => file_len,
            _ => {
                return Err(Error::Gguf(format!(
                    "tensor data section (at byte {header_end}, aligned to {alignment}) starts past the end of the file ({file_len} bytes)"
                )))
            }
        };
        let data_len = file_len - data_offset;

        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = std::collections::HashMap::with_capacity(raw.len());
        for (name, dims, dtype, offset) in raw {
            let n_el = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Error::Gguf(format!("tensor '{name}' element count overflows")))?;
            if dims[0] % dtype.block_size() as u64 != 0 {
                return Err(Error::Gguf(format!(
                    "tensor '{name}' row length {} is not a multiple of the {dtype} block size {}",
                    dims[0],
                    dtype.block_size()
                )));
            }
            let size = dtype
                .row_bytes(n_el)
                .ok_or_else(|| Error::Gguf(format!("tensor '{name}' byte size overflows")))?;
            if offset % alignment != 0 {
                return Err(Error::Gguf(format!(
                    "tensor '{name}' offset {offset} is not aligned to {alignment}"
                )));
            }
            let end = offset.checked_add(size);
            if end.is_none_or(|e| e > data_len) {
                return Err(Error::Gguf(format!(
                    "tensor '{name}' data (offset {offset}, {size} bytes) extends past the end of the file (data section is {data_len} bytes)"
                )));
            }
            if by_name.insert(name.clone(), tensors.len()).is_some() {
                return Err(Error::Gguf(format!("duplicate tensor name '{name}'")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset: (data_offset + offset) as usize,
                size: size as usize,
            });
        }

        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset: data_offset as usize,
            by_name,
            read_through_file: false,
            path: None,
            storage,
        })
    }

    /// Whether reads should go through the file rather than the map: under a memory budget the
    /// map's pages must not be touched (they would fill the page cache the budget counts).
    pub fn read_through_file(&self) -> bool {
        self.read_through_file
    }

    /// Passes a tensor's bytes to `f` in pieces. With [`GgufFile::set_read_through_file`], they
    /// are read from the file and dropped from the page cache as they go; otherwise they come
    /// from the map.
    pub fn stream_tensor(&self, t: &TensorInfo, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.stream_range(t.offset, t.size, f)
    }

    /// [`GgufFile::stream_tensor`] for any byte range of the file (a range the caller checked,
    /// such as a matrix of validated tensors).
    pub fn stream_range(&self, offset: usize, size: usize, f: &mut dyn FnMut(&[u8])) -> Result<()> {
        match (&self.path, self.read_through_file) {
            (Some(p), true) => {
                read_range_uncached(p, offset as u64, size, f).map_err(|e| Error::io(p, e))
            }
            _ => {
                f(&self.storage.bytes()[offset..offset + size]);
                Ok(())
            }
        }
    }

    /// Makes [`GgufFile::stream_tensor`] and [`GgufFile::make_resident`] read from the file.
    pub fn set_read_through_file(&mut self, on: bool) {
        self.read_through_file = on;
    }

    /// Replaces the map of the file by an anonymous image of the same size holding only the tensors
    /// `keep` accepts (the header is parsed already), then drops the file's pages from the page cache. Offsets stay
    /// valid; the bytes of the other tensors read as zeros and must not be used (the engine reads
    /// them from the file through its offload path). Returns the bytes copied.
    pub fn make_resident(&mut self, keep: &dyn Fn(&TensorInfo) -> bool) -> Result<usize> {
        let src = self.storage.bytes();
        let mut img = memmap2::MmapMut::map_anon(src.len().max(1))
            .map_err(|e| Error::Invalid(format!("cannot reserve {} bytes: {e}", src.len())))?;
        // Kept tensors alternate with dropped ones layer by layer: with transparent huge pages a
        // write would allocate 2 MiB around it, dropped neighbours included, and the image would
        // cost as much as the file. Small pages keep it to what is written.
        #[cfg(target_os = "linux")]
        // SAFETY: advice on a mapping this function owns.
        unsafe {
            libc::madvise(img.as_mut_ptr().cast(), img.len(), libc::MADV_NOHUGEPAGE);
        }
        // The header is parsed already: only tensor bytes are kept.
        let mut kept = 0;
        for t in self.tensors.iter().filter(|t| keep(t)) {
            let r = t.offset..t.offset + t.size;
            let mut at = t.offset;
            self.stream_tensor(t, &mut |b| {
                img[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            })?;
            debug_assert_eq!(at, r.end);
            kept += t.size;
        }
        let img = img
            .make_read_only()
            .map_err(|e| Error::Invalid(format!("cannot protect the model image: {e}")))?;
        self.storage = Storage::Mmap(img);
        if let Some(p) = &self.path {
            crate::offload::evict_from_page_cache(p);
        }
        Ok(kept)
    }

    /// The path the file was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> usize {
        self.bytes().len()
    }

    /// Looks up a tensor's info by name.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A zero-copy view of a tensor (bounds were checked at open).
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let info = self.tensor_info(name)?;
        Some(TensorView {
            info,
            data: &self.bytes()[info.offset..info.offset + info.size],
        })
    }

    /// A tensor that must exist, with an error naming it otherwise.
    pub fn require(&self, name: &str) -> Result<TensorView<'_>> {
        self.tensor(name)
            .ok_or_else(|| Error::Model(format!("missing tensor '{name}'")))
    }
}

/// Names a field of a metadata entry in error messages ("value of metadata 'k'") without formatting
/// a `String` for every value read.
#[derive(Clone, Copy)]
struct Field<'a>(&'static str, &'a str);

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} '{}'", self.0, self.1)
    }
}

fn read_value(c: &mut Cursor<'_>, ty: u32, key: &str, depth: usize) -> Result<Value> {
    let what = Field("value of metadata", key);
    Ok(match ty {
        0 => Value::U8(c.u8(what)?),
        1 => Value::I8(c.u8(what)? as i8),
        2 => Value::U16(c.u16(what)?),
        3 => Value::I16(c.u16(what)? as i16),
        4 => Value::U32(c.u32(what)?),
        5 => Value::I32(c.u32(what)? as i32),
        6 => Value::F32(c.f32(what)?),
        7 => {
            let b = c.u8(what)?;
            if b > 1 {
                return Err(Error::Gguf(format!(
                    "metadata '{key}': bool value {b} is not 0 or 1"
                )));
            }
            Value::Bool(b == 1)
        }
        8 => Value::String(c.string(Field("string value of", key))?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(Error::Gguf(format!(
                    "metadata '{key}': arrays nested too deeply"
                )));
            }
            let elem_ty = c.u32(Field("array element type of", key))?;
            let min = min_value_size(elem_ty).ok_or_else(|| {
                Error::Gguf(format!(
                    "metadata '{key}': unknown array element type {elem_ty}"
                ))
            })?;
            let n = c.count(min, Field("array length of", key))?;
            let mut v = Vec::with_capacity(c.capacity_for::<Value>(n));
            for i in 0..n {
                let item = read_value(c, elem_ty, key, depth + 1).map_err(|e| match e {
                    Error::Gguf(m) => Error::Gguf(format!("{m} (element {i} of {n})")),
                    e => e,
                })?;
                v.push(item);
            }
            Value::Array(v)
        }
        10 => Value::U64(c.u64(what)?),
        11 => Value::I64(c.u64(what)? as i64),
        12 => Value::F64(c.f64(what)?),
        _ => {
            return Err(Error::Gguf(format!(
                "metadata '{key}' has unknown value type {ty}"
            )))
        }
    })
}

/// The fewest bytes a value of GGUF type `ty` occupies.
fn min_value_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}
