//! The GGUF reader against valid files (round trips of every value type, tensor layout, alignment,
//! versions) and against corrupt ones: each corruption must give an `Error::Gguf` naming what is
//! wrong, never a panic and never an allocation sized by an untrusted count.

mod common;

use common::gguf_builder::{put_array, put_str, put_value, ty, GgufBuilder};
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::{Error, GgmlType};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---------------------------------------------------------------------------------------------
// A global allocator that records the largest single allocation made by the current thread, so
// tests can check that lying counts do not turn into huge pre-allocations.

struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| {
        if size > p.get() {
            p.set(size)
        }
    });
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn largest_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    PEAK.with(|p| p.set(0));
    let r = f();
    (r, PEAK.with(|p| p.get()))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Parses `bytes`, turning a panic into a test failure.
fn parse(bytes: Vec<u8>) -> sparsetop_engine::Result<GgufFile> {
    match catch_unwind(AssertUnwindSafe(|| GgufFile::from_bytes(bytes))) {
        Ok(r) => r,
        Err(_) => panic!("GgufFile::from_bytes panicked"),
    }
}

/// Parses `bytes`, which must fail with `Error::Gguf`; returns the message.
fn gguf_err(bytes: Vec<u8>) -> String {
    match parse(bytes) {
        Ok(f) => panic!("expected a GGUF error, the file parsed: {f:?}"),
        Err(Error::Gguf(m)) => m,
        Err(e) => panic!("expected Error::Gguf, got {e:?}"),
    }
}

/// Parses `bytes`, which must fail with an `Error::Gguf` whose message contains every needle.
#[track_caller]
fn assert_err(bytes: Vec<u8>, needles: &[&str]) -> String {
    let m = gguf_err(bytes);
    for n in needles {
        assert!(m.contains(n), "error message {m:?} does not mention {n:?}");
    }
    m
}

fn patch_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn patch_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Header field positions.
const N_TENSORS_AT: usize = 8;
const N_KV_AT: usize = 16;
const FIRST_KV_AT: usize = 24;

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// One metadata entry of every value type, arrays of each, nested and empty arrays.
fn all_values() -> Vec<(String, Value)> {
    use Value::*;
    let v: Vec<(&str, Value)> = vec![
        ("t.u8", U8(200)),
        ("t.i8", I8(-100)),
        ("t.u16", U16(60_000)),
        ("t.i16", I16(-30_000)),
        ("t.u32", U32(4_000_000_000)),
        ("t.i32", I32(-2_000_000_000)),
        ("t.f32", F32(3.5)),
        ("t.bool_true", Bool(true)),
        ("t.bool_false", Bool(false)),
        ("t.string", s("héllo ✓ wörld")),
        ("t.empty_string", s("")),
        ("t.u64", U64(u64::MAX)),
        ("t.i64", I64(i64::MIN)),
        ("t.f64", F64(-1.25e300)),
        ("a.u8", Array(vec![U8(0), U8(1), U8(255)])),
        ("a.i8", Array(vec![I8(-128), I8(127)])),
        ("a.u16", Array(vec![U16(1), U16(65535)])),
        ("a.i16", Array(vec![I16(-32768), I16(32767)])),
        ("a.u32", Array(vec![U32(7), U32(u32::MAX)])),
        ("a.i32", Array(vec![I32(i32::MIN), I32(0), I32(i32::MAX)])),
        ("a.f32", Array(vec![F32(1.5), F32(-0.25), F32(f32::MAX)])),
        ("a.bool", Array(vec![Bool(true), Bool(false), Bool(true)])),
        ("a.string", Array(vec![s("a"), s(""), s("ünïcödé")])),
        ("a.u64", Array(vec![U64(0), U64(u64::MAX)])),
        ("a.i64", Array(vec![I64(i64::MIN), I64(-1)])),
        ("a.f64", Array(vec![F64(std::f64::consts::PI), F64(-0.5)])),
        (
            "a.nested",
            Array(vec![
                Array(vec![U32(1), U32(2)]),
                Array(vec![U32(3)]),
                Array(vec![]),
            ]),
        ),
        (
            "a.nested3",
            Array(vec![Array(vec![Array(vec![s("deep")])])]),
        ),
        (
            "a.nested_mixed",
            Array(vec![Array(vec![Bool(true)]), Array(vec![F64(2.0)])]),
        ),
        ("a.empty", Array(vec![])),
    ];
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn builder_with_all_values() -> GgufBuilder {
    all_values()
        .into_iter()
        .fold(GgufBuilder::new(), |b, (k, v)| b.kv(&k, v))
}

/// A small valid file with metadata and three tensors.
fn small_file() -> GgufBuilder {
    GgufBuilder::new()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("llama.block_count", Value::U32(2))
        .kv("x.flag", Value::Bool(true))
        .kv("x.scale", Value::F32(0.5))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(vec![s("<s>"), s("a"), s("b")]),
        )
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(vec![Value::F32(0.0), Value::F32(-1.0), Value::F32(-2.0)]),
        )
        .kv(
            "x.nested",
            Value::Array(vec![Value::Array(vec![Value::I16(-3)])]),
        )
        .tensor_filled("token_embd.weight", &[4, 3], GgmlType::F32, 1)
        .tensor_filled("blk.0.attn_q.weight", &[32, 2], GgmlType::Q4_0, 2)
        .tensor_filled("output_norm.weight", &[5], GgmlType::F16, 3)
}

// ---------------------------------------------------------------------------------------------
// Valid files.

#[test]
fn round_trips_every_value_type_v3() {
    let want = all_values();
    let f = GgufFile::from_bytes(builder_with_all_values().build()).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.metadata.entries(), &want[..]);
    assert_eq!(f.metadata.len(), want.len());
    for (k, v) in &want {
        assert_eq!(f.metadata.get(k), Some(v), "key {k}");
    }
    assert!(f.tensors.is_empty());
    assert_eq!(f.alignment, 32);
}

#[test]
fn round_trips_every_value_type_v2() {
    let want = all_values();
    let f = GgufFile::from_bytes(builder_with_all_values().version(2).build()).unwrap();
    assert_eq!(f.version, 2);
    assert_eq!(f.metadata.entries(), &want[..]);
}

#[test]
fn typed_empty_arrays_and_accessors() {
    let f = GgufFile::from_bytes(
        GgufBuilder::new()
            .kv_array("e.i32", ty::I32, &[])
            .kv_array("e.string", ty::STRING, &[])
            .kv_array("e.array", ty::ARRAY, &[])
            .kv("n", Value::I32(-1))
            .kv("names", Value::Array(vec![s("x"), s("y")]))
            .build(),
    )
    .unwrap();
    let m = &f.metadata;
    assert_eq!(m.array("e.i32").unwrap(), Some(&[][..]));
    assert_eq!(m.array("e.string").unwrap(), Some(&[][..]));
    assert_eq!(m.array("e.array").unwrap(), Some(&[][..]));
    assert_eq!(m.str_array("names").unwrap(), Some(vec!["x", "y"]));
    let e = m.u64("n").unwrap_err();
    assert!(e.to_string().contains("'n'"), "{e}");
    assert!(m
        .req_str("absent")
        .unwrap_err()
        .to_string()
        .contains("absent"));
}

#[test]
fn tensor_infos_offsets_and_zero_copy_views() {
    let b = GgufBuilder::new()
        .kv("general.architecture", s("llama"))
        .tensor_filled("a.f32", &[3, 2], GgmlType::F32, 10)
        .tensor_filled("b.f16", &[7], GgmlType::F16, 20)
        .tensor_filled("c.q4_0", &[64, 3], GgmlType::Q4_0, 30)
        .tensor_filled("d.q8_0", &[32, 1, 2], GgmlType::Q8_0, 40)
        .tensor_filled("e.q4_k", &[256, 2, 1, 2], GgmlType::Q4_K, 50)
        .tensor_filled("f.i8", &[5], GgmlType::I8, 60);
    let (bytes, layout) = b.build_with_layout();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(f.data_offset, layout.data_offset);
    assert_eq!(f.data_offset % 32, 0);
    assert_eq!(f.file_size(), bytes.len());
    assert_eq!(f.bytes(), &bytes[..]);

    let want: [(&str, &[u64], GgmlType); 6] = [
        ("a.f32", &[3, 2], GgmlType::F32),
        ("b.f16", &[7], GgmlType::F16),
        ("c.q4_0", &[64, 3], GgmlType::Q4_0),
        ("d.q8_0", &[32, 1, 2], GgmlType::Q8_0),
        ("e.q4_k", &[256, 2, 1, 2], GgmlType::Q4_K),
        ("f.i8", &[5], GgmlType::I8),
    ];
    assert_eq!(f.tensors.len(), want.len());
    for (i, (name, dims, dtype)) in want.iter().enumerate() {
        let t = &f.tensors[i];
        assert_eq!(t.name, *name);
        assert_eq!(t.dims, *dims);
        assert_eq!(t.dtype, *dtype);
        let n: u64 = dims.iter().product();
        assert_eq!(t.n_elements(), n);
        assert_eq!(t.size as u64, dtype.row_bytes(n).unwrap());
        assert_eq!(
            t.offset, layout.tensor_data_pos[i],
            "{name}: offset made absolute"
        );
        assert_eq!(t.offset % 32, 0);
        assert_eq!(t.row_len() as u64, dims[0]);
        assert_eq!(t.n_rows() as u64, n / dims[0]);
        assert_eq!(t.row_bytes() as u64, dtype.row_bytes(dims[0]).unwrap());

        let view = f.tensor(name).unwrap();
        assert_eq!(view.info.name, *name);
        let start = layout.tensor_data_pos[i];
        assert_eq!(view.data, &bytes[start..start + t.size]);
        // Zero copy: the view points into the file image.
        let base = f.bytes().as_ptr() as usize;
        assert_eq!(view.data.as_ptr() as usize - base, t.offset);
        assert!(std::ptr::eq(f.tensor_info(name).unwrap(), t));
        assert_eq!(f.require(name).unwrap().data, view.data);
    }
    assert!(f.tensor("nope").is_none());
    match f.require("nope") {
        Err(Error::Model(m)) => assert!(m.contains("nope"), "{m}"),
        other => panic!("expected Error::Model, got {other:?}"),
    }
}

#[test]
fn custom_alignment_is_honoured() {
    for align in [1u32, 8, 64, 4096] {
        let (bytes, layout) = GgufBuilder::new()
            .alignment(align)
            .tensor_filled("x", &[3], GgmlType::F32, 1)
            .tensor_filled("y", &[5], GgmlType::F16, 2)
            .tensor_filled("z", &[1], GgmlType::F32, 3)
            .build_with_layout();
        let f = GgufFile::from_bytes(bytes.clone()).unwrap();
        assert_eq!(f.alignment, align as u64);
        assert_eq!(f.data_offset, layout.data_offset);
        assert_eq!(f.data_offset % align as usize, 0);
        for (i, t) in f.tensors.iter().enumerate() {
            assert_eq!(
                t.offset, layout.tensor_data_pos[i],
                "align {align} tensor {}",
                t.name
            );
            assert_eq!((t.offset - f.data_offset) % align as usize, 0);
            let v = f.tensor(&t.name).unwrap();
            assert_eq!(v.data, &bytes[t.offset..t.offset + t.size]);
        }
    }
}

#[test]
fn alignment_of_any_unsigned_width_is_accepted() {
    for v in [
        Value::U8(64),
        Value::U16(64),
        Value::U64(64),
        Value::I32(64),
    ] {
        let mut b = GgufBuilder::new()
            .kv("general.alignment", v.clone())
            .tensor_filled("x", &[3], GgmlType::F32, 1)
            .tensor_filled("y", &[3], GgmlType::F32, 1);
        b.align = 64;
        let f = GgufFile::from_bytes(b.build()).unwrap();
        assert_eq!(f.alignment, 64, "{v:?}");
        assert_eq!(f.tensors[1].offset - f.data_offset, 64);
    }
}

#[test]
fn trailing_padding_after_the_last_tensor_is_accepted() {
    let mut b = small_file();
    b.trailing_padding = true;
    let bytes = b.build();
    assert_eq!(bytes.len() % 32, 0);
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.tensors.len(), 3);
}

#[test]
fn tensorless_file_needs_no_padding() {
    // A metadata-only file (e.g. vocab-only) whose header does not end on an alignment boundary,
    // and that has no padding after it: llama.cpp accepts these.
    let b = GgufBuilder::new().kv("general.name", s("vocab only"));
    let (bytes, layout) = b.build_with_layout();
    assert_ne!(
        layout.header_end % 32,
        0,
        "test needs an unaligned header end"
    );
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert!(f.tensors.is_empty());
    assert!(f.data_offset <= bytes.len());
    // With padding it is fine too.
    let mut b = GgufBuilder::new().kv("general.name", s("vocab only"));
    b.trailing_padding = true;
    assert!(GgufFile::from_bytes(b.build()).is_ok());
    // And the empty file (no tensors, no metadata) too.
    assert!(GgufFile::from_bytes(GgufBuilder::new().build()).is_ok());
}

#[test]
fn versions_other_than_2_and_3_are_rejected() {
    for v in [0u32, 1, 4, 1000, u32::MAX] {
        let m = assert_err(
            small_file().version(v).build(),
            &["version", &v.to_string()],
        );
        assert!(m.contains("2 and 3"), "{m}");
    }
    // A big-endian file: version 3 byte-swapped.
    let m = assert_err(
        small_file().version(3u32.swap_bytes()).build(),
        &["version"],
    );
    assert!(m.contains("big-endian"), "{m}");
    for v in [2u32, 3] {
        assert_eq!(
            GgufFile::from_bytes(small_file().version(v).build())
                .unwrap()
                .version,
            v
        );
    }
}

#[test]
fn open_reads_a_file_from_disk() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("gguf_reader_open_{}.gguf", std::process::id()));
    let bytes = small_file().build();
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.path(), Some(path.as_path()));
    assert_eq!(f.bytes(), &bytes[..]);
    let mem = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(f.metadata.entries(), mem.metadata.entries());
    for t in &mem.tensors {
        assert_eq!(
            f.tensor(&t.name).unwrap().data,
            mem.tensor(&t.name).unwrap().data
        );
    }
    drop(f);

    // A corrupt file on disk: the error names the path too.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    match GgufFile::open(&path) {
        Err(Error::Gguf(m)) => {
            assert!(m.contains(&path.display().to_string()), "{m}");
            assert!(m.contains("output_norm.weight"), "{m}");
        }
        other => panic!("expected Error::Gguf, got {other:?}"),
    }

    // An empty file.
    std::fs::write(&path, b"").unwrap();
    match GgufFile::open(&path) {
        Err(Error::Gguf(m)) => assert!(m.contains("magic"), "{m}"),
        other => panic!("expected Error::Gguf, got {other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn opening_a_missing_path_is_an_io_error_naming_it() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no/such/model.gguf");
    match GgufFile::open(&path) {
        Err(e @ Error::Io { .. }) => {
            let Error::Io { path: p, cause } = &e else {
                unreachable!()
            };
            assert_eq!(p, &path);
            assert_eq!(cause.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("model.gguf"), "{e}");
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn opening_a_directory_is_an_error() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let e = GgufFile::open(dir).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(
        msg.contains("not a regular file") || matches!(e, Error::Io { .. }),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Truncation.

#[test]
fn every_prefix_of_a_valid_file_is_an_error() {
    for (what, bytes) in [
        ("small file", small_file().build()),
        ("all values", builder_with_all_values().build()),
        (
            "aligned 64",
            small_file()
                .alignment(64)
                .tensor_filled("t", &[2], GgmlType::F32, 0)
                .build(),
        ),
    ] {
        assert!(GgufFile::from_bytes(bytes.clone()).is_ok(), "{what}");
        for len in 0..bytes.len() {
            let m = gguf_err(bytes[..len].to_vec());
            assert!(
                m.contains("truncated") || m.contains("past the end") || m.contains("can hold"),
                "{what} cut at {len}: {m}"
            );
        }
    }
}

#[test]
fn truncation_errors_name_the_field() {
    let bytes = small_file().build();
    assert_err(bytes[..2].to_vec(), &["truncated", "magic"]);
    assert_err(bytes[..6].to_vec(), &["truncated", "version"]);
    assert_err(bytes[..12].to_vec(), &["truncated", "tensor count"]);
    assert_err(bytes[..20].to_vec(), &["truncated", "metadata count"]);
    // Cut so early that the tensor count cannot fit in what is left.
    assert_err(
        bytes[..FIRST_KV_AT + 3].to_vec(),
        &["tensor count", "is 3", "bytes left"],
    );
    // Without tensors, cuts inside the metadata name the entry.
    let bytes = GgufBuilder::new()
        .kv("general.architecture", s("llama"))
        .kv("a.list", Value::Array(vec![s("ab"), s("cd")]))
        .build();
    assert_err(
        bytes[..FIRST_KV_AT + 3].to_vec(),
        &["metadata count", "is 2", "bytes left"],
    );
    let long = GgufBuilder::new().kv(&"k".repeat(40), Value::U8(1)).build();
    assert_err(
        long[..FIRST_KV_AT + 8 + 20].to_vec(),
        &["metadata key #0", "length 40", "past the end"],
    );
    let key = b"general.architecture";
    let type_at = FIRST_KV_AT + 8 + key.len();
    assert_err(
        bytes[..type_at + 1].to_vec(),
        &["truncated", "type of metadata 'general.architecture'"],
    );
    // Cut inside the "llama" string.
    assert_err(
        bytes[..type_at + 4 + 8 + 2].to_vec(),
        &["string value of 'general.architecture'", "past the end"],
    );
    // Cut inside the second element of the array.
    assert_err(
        bytes[..bytes.len() - 1].to_vec(),
        &["string value of 'a.list'", "past the end", "element 1 of 2"],
    );
    // Cut inside a scalar value: the u32 of llama.block_count.
    let b = GgufBuilder::new().kv("k.u32", Value::U32(5)).build();
    assert_err(b[..b.len() - 1].to_vec(), &["truncated", "'k.u32'"]);
    // Cut inside a tensor info.
    let (bytes, layout) = small_file().build_with_layout();
    let at = layout.tensor_info_pos[1] + 8 + 3;
    assert_err(bytes[..at].to_vec(), &["name of tensor #1"]);
    let at = layout.tensor_offset_field[2] + 4;
    assert_err(
        bytes[..at].to_vec(),
        &["truncated", "offset of tensor 'output_norm.weight'"],
    );
    // Cut in the padding before the data section.
    assert_err(
        bytes[..layout.header_end + 1].to_vec(),
        &["data section", "past the end"],
    );
}

#[test]
fn tensor_data_past_end_of_file() {
    let bytes = small_file().build();
    assert_err(
        bytes[..bytes.len() - 1].to_vec(),
        &["output_norm.weight", "past the end"],
    );
    // An offset far past the end, and one whose end overflows u64.
    for off in [1u64 << 20, !31u64, (i64::MAX as u64) & !31] {
        let b = GgufBuilder::new()
            .tensor_raw(b"w", &[4], GgmlType::F32.id(), vec![0; 16], Some(off))
            .build();
        assert_err(b, &["'w'", "past the end", &off.to_string()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Header corruption.

#[test]
fn bad_magic() {
    for magic in [*b"GGUG", *b"FUGG", *b"\0\0\0\0", *b"GGML", *b"gguf"] {
        let mut b = small_file();
        b.magic = magic;
        assert_err(b.build(), &["magic", "not a GGUF file"]);
    }
}

#[test]
fn absurd_dimension_counts() {
    let m = assert_err(
        GgufBuilder::new()
            .tensor_raw(b"w0", &[], GgmlType::F32.id(), vec![], None)
            .build(),
        &["'w0'", "0 dimensions"],
    );
    assert!(m.contains("1 to 4"), "{m}");
    assert_err(
        GgufBuilder::new()
            .tensor_raw(
                b"w5",
                &[1, 1, 1, 1, 1],
                GgmlType::F32.id(),
                vec![0; 4],
                None,
            )
            .build(),
        &["'w5'", "5 dimensions"],
    );
    let (mut b, l) = GgufBuilder::new()
        .tensor_filled("wmax", &[1], GgmlType::F32, 0)
        .build_with_layout();
    patch_u32(&mut b, l.tensor_info_pos[0] + 8 + 4, u32::MAX);
    assert_err(b, &["'wmax'", "4294967295 dimensions"]);
}

#[test]
fn zero_or_huge_dimension() {
    assert_err(
        GgufBuilder::new()
            .tensor_raw(b"z", &[4, 0, 2], GgmlType::F32.id(), vec![], None)
            .build(),
        &["'z'", "dimension 1 is 0"],
    );
    assert_err(
        GgufBuilder::new()
            .tensor_raw(b"h", &[1u64 << 63], GgmlType::F32.id(), vec![], None)
            .build(),
        &["'h'", "dimension 0 is 9223372036854775808"],
    );
}

#[test]
fn element_count_overflow() {
    // Each dimension is valid, the product is 2^64.
    assert_err(
        GgufBuilder::new()
            .tensor_raw(
                b"big",
                &[1 << 32, 1 << 32],
                GgmlType::F32.id(),
                vec![],
                None,
            )
            .build(),
        &["'big'", "element count", "overflow"],
    );
    assert_err(
        GgufBuilder::new()
            .tensor_raw(b"big4", &[1 << 16; 4], GgmlType::F32.id(), vec![], None)
            .build(),
        &["'big4'", "element count", "overflow"],
    );
    // The element count fits, its size in bytes does not.
    assert_err(
        GgufBuilder::new()
            .tensor_raw(b"wide", &[1 << 62, 2], GgmlType::F32.id(), vec![], None)
            .build(),
        &["'wide'", "overflow"],
    );
}

#[test]
fn absurd_tensor_and_kv_counts_do_not_allocate() {
    let bytes = small_file().build();
    for n in [1u64 << 63, u64::MAX, 1 << 40, bytes.len() as u64] {
        let mut b = bytes.clone();
        patch_u64(&mut b, N_TENSORS_AT, n);
        let len = b.len();
        let (r, peak) = largest_alloc(|| gguf_err(b));
        assert!(
            r.contains("tensor count") && r.contains(&n.to_string()),
            "{r}"
        );
        assert!(
            peak <= len,
            "tensor count {n}: allocated {peak} bytes for a {len}-byte file"
        );

        let mut b = bytes.clone();
        patch_u64(&mut b, N_KV_AT, n);
        let (r, peak) = largest_alloc(|| gguf_err(b));
        assert!(
            r.contains("metadata count") && r.contains(&n.to_string()),
            "{r}"
        );
        assert!(
            peak <= len,
            "kv count {n}: allocated {peak} bytes for a {len}-byte file"
        );
    }
}

/// A count that the remaining bytes could just about hold, followed by garbage: the reader may
/// believe the count, but must not pre-allocate more than the file's size on its word.
#[test]
fn plausible_but_lying_counts_do_not_overallocate() {
    const N: usize = 64 * 1024;

    // Metadata count: one entry per 13 bytes left, the first of which has an unknown type.
    let mut b = GgufBuilder::new().kv_raw(b"k", 99, vec![]).build();
    b.resize(N, 0);
    patch_u64(&mut b, N_KV_AT, ((N - FIRST_KV_AT) / 13) as u64);
    let (m, peak) = largest_alloc(|| gguf_err(b));
    assert!(m.contains("unknown value type 99"), "{m}");
    assert!(
        peak <= N,
        "metadata: allocated {peak} bytes for a {N}-byte file"
    );

    // Tensor count: one tensor per 32 bytes left, the first with 9 dimensions.
    let mut b = GgufBuilder::new()
        .tensor_raw(b"t", &[1; 9], 0, vec![], None)
        .build();
    b.resize(N, 0);
    patch_u64(&mut b, N_TENSORS_AT, ((N - FIRST_KV_AT) / 32) as u64);
    let (m, peak) = largest_alloc(|| gguf_err(b));
    assert!(m.contains("9 dimensions"), "{m}");
    assert!(
        peak <= N,
        "tensors: allocated {peak} bytes for a {N}-byte file"
    );

    // Array length: one element per remaining byte, the first bool being 2.
    let mut payload = Vec::new();
    payload.extend_from_slice(&ty::BOOL.to_le_bytes());
    payload.extend_from_slice(&0u64.to_le_bytes());
    let mut b = GgufBuilder::new()
        .kv_raw(b"flags", ty::ARRAY, payload)
        .build();
    let len_at = b.len() - 8;
    b.resize(N, 2);
    patch_u64(&mut b, len_at, (N - len_at - 8) as u64);
    let (m, peak) = largest_alloc(|| gguf_err(b));
    assert!(m.contains("'flags'") && m.contains("bool value 2"), "{m}");
    assert!(
        peak <= N,
        "array: allocated {peak} bytes for a {N}-byte file"
    );

    // Nested: an array of N/12 arrays, the first with an unknown element type.
    let mut payload = Vec::new();
    payload.extend_from_slice(&ty::ARRAY.to_le_bytes());
    payload.extend_from_slice(&0u64.to_le_bytes());
    payload.extend_from_slice(&77u32.to_le_bytes());
    let mut b = GgufBuilder::new()
        .kv_raw(b"nest", ty::ARRAY, payload)
        .build();
    let len_at = b.len() - 12;
    b.resize(N, 0);
    patch_u64(&mut b, len_at, ((N - len_at - 8) / 12) as u64);
    let (m, peak) = largest_alloc(|| gguf_err(b));
    assert!(m.contains("'nest'") && m.contains("element type 77"), "{m}");
    assert!(
        peak <= N,
        "nested array: allocated {peak} bytes for a {N}-byte file"
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata corruption.

#[test]
fn string_lengths_past_the_end() {
    // Key length.
    for len in [1000u64, 1 << 40, u64::MAX] {
        let mut b = GgufBuilder::new().kv("abc", Value::U8(1)).build();
        patch_u64(&mut b, FIRST_KV_AT, len);
        assert_err(b, &["metadata key #0", &len.to_string(), "past the end"]);
    }
    // Second key.
    let mut b = GgufBuilder::new()
        .kv("a", Value::U8(1))
        .kv("b", Value::U8(2))
        .build();
    patch_u64(&mut b, FIRST_KV_AT + 8 + 1 + 4 + 1, u64::MAX);
    assert_err(b, &["metadata key #1", "past the end"]);
    // String value length.
    for len in [6u64, 1 << 33, u64::MAX] {
        let mut b = GgufBuilder::new().kv("name", s("hello")).build();
        patch_u64(&mut b, FIRST_KV_AT + 8 + 4 + 4, len);
        assert_err(b, &["string value of 'name'", "past the end"]);
    }
    // A string inside an array.
    let mut b = GgufBuilder::new()
        .kv("toks", Value::Array(vec![s("ab"), s("cd")]))
        .build();
    let last_len_at = b.len() - 2 - 8;
    patch_u64(&mut b, last_len_at, 3);
    assert_err(b, &["'toks'", "past the end"]);
    // Tensor name length.
    let (mut b, l) = small_file().build_with_layout();
    patch_u64(&mut b, l.tensor_info_pos[1], u64::MAX - 1);
    assert_err(b, &["name of tensor #1", "past the end"]);
}

#[test]
fn array_lengths_past_the_end() {
    let key = "arr";
    let len_at = FIRST_KV_AT + 8 + key.len() + 4 + 4;
    let cases: [(u32, Vec<Value>); 5] = [
        (ty::U8, vec![Value::U8(1); 3]),
        (ty::BOOL, vec![Value::Bool(true); 3]),
        (ty::U64, vec![Value::U64(1); 3]),
        (ty::STRING, vec![s("x"); 3]),
        (ty::ARRAY, vec![Value::Array(vec![]); 3]),
    ];
    for (elem, items) in cases {
        for n in [4u64, 1000, 1 << 32, 1 << 61, 1 << 62, 1 << 63, u64::MAX] {
            let mut b = GgufBuilder::new().kv_array(key, elem, &items).build();
            patch_u64(&mut b, len_at, n);
            let len = b.len();
            let (m, peak) = largest_alloc(|| gguf_err(b));
            assert!(
                m.contains("array length of 'arr'") || (n == 4 && m.contains("truncated")),
                "elem type {elem}, length {n}: {m}"
            );
            assert!(m.contains("'arr'"), "{m}");
            assert!(
                peak <= len.max(256),
                "elem type {elem}, length {n}: allocated {peak}"
            );
        }
    }
}

#[test]
fn arrays_nested_too_deeply() {
    let mut v = Value::U8(1);
    for _ in 0..20 {
        v = Value::Array(vec![v]);
    }
    assert_err(
        GgufBuilder::new().kv("deep", v).build(),
        &["'deep'", "nested too deeply"],
    );
}

#[test]
fn unknown_value_type() {
    for t in [13u32, 100, u32::MAX] {
        assert_err(
            GgufBuilder::new().kv_raw(b"k.x", t, vec![0; 16]).build(),
            &["'k.x'", "unknown value type", &t.to_string()],
        );
        let mut payload = Vec::new();
        payload.extend_from_slice(&t.to_le_bytes());
        payload.extend_from_slice(&1u64.to_le_bytes());
        payload.extend_from_slice(&[0; 16]);
        assert_err(
            GgufBuilder::new()
                .kv_raw(b"k.arr", ty::ARRAY, payload)
                .build(),
            &["'k.arr'", "unknown array element type", &t.to_string()],
        );
    }
}

#[test]
fn bool_value_other_than_0_or_1() {
    for v in [2u8, 255] {
        assert_err(
            GgufBuilder::new()
                .kv_raw(b"flag", ty::BOOL, vec![v])
                .build(),
            &["'flag'", &format!("bool value {v}")],
        );
        let mut payload = Vec::new();
        put_array(
            &mut payload,
            ty::BOOL,
            &[Value::Bool(true), Value::Bool(false)],
        );
        let n = payload.len();
        payload[n - 1] = v;
        assert_err(
            GgufBuilder::new()
                .kv_raw(b"flags", ty::ARRAY, payload)
                .build(),
            &["'flags'", &format!("bool value {v}")],
        );
    }
}

#[test]
fn duplicate_keys() {
    assert_err(
        GgufBuilder::new()
            .kv("a", Value::U8(1))
            .kv("b", Value::U8(2))
            .kv("a", s("again"))
            .build(),
        &["duplicate metadata key 'a'"],
    );
}

#[test]
fn invalid_utf8() {
    assert_err(
        GgufBuilder::new()
            .kv("ok", Value::U8(1))
            .kv_raw(b"bad\xff\xfekey", ty::U8, vec![1])
            .build(),
        &["metadata key #1", "UTF-8"],
    );
    let mut payload = Vec::new();
    put_str(&mut payload, b"\xc3\x28");
    assert_err(
        GgufBuilder::new()
            .kv_raw(b"str", ty::STRING, payload)
            .build(),
        &["'str'", "UTF-8"],
    );
    assert_err(
        GgufBuilder::new()
            .tensor_raw(b"ten\x80sor", &[1], GgmlType::F32.id(), vec![0; 4], None)
            .build(),
        &["name of tensor #0", "UTF-8"],
    );
}

// ---------------------------------------------------------------------------------------------
// Tensor info corruption.

#[test]
fn unknown_tensor_type_id() {
    for id in [4u32, 5, 31, 36, 40, 1000, u32::MAX] {
        assert_err(
            GgufBuilder::new()
                .tensor_raw(b"w", &[32], id, vec![0; 128], None)
                .build(),
            &["'w'", "unknown type id", &id.to_string()],
        );
    }
}

#[test]
fn misaligned_tensor_offset() {
    for off in [1u64, 4, 16, 31] {
        assert_err(
            GgufBuilder::new()
                .tensor_raw(b"w", &[4], GgmlType::F32.id(), vec![0; 64], Some(off))
                .build(),
            &["'w'", &format!("offset {off}"), "not aligned to 32"],
        );
    }
    let b = GgufBuilder::new()
        .alignment(64)
        .tensor_raw(b"w", &[4], GgmlType::F32.id(), vec![0; 128], Some(32))
        .build();
    assert_err(b, &["'w'", "offset 32", "not aligned to 64"]);
}

#[test]
fn bad_general_alignment() {
    for a in [0u32, 3, 48, 1 << 21, u32::MAX] {
        let mut b = GgufBuilder::new()
            .kv("general.alignment", Value::U32(a))
            .tensor_filled("w", &[4], GgmlType::F32, 0);
        b.align = 32;
        assert_err(
            b.build(),
            &["general.alignment", &a.to_string(), "power of two"],
        );
    }
    for v in [
        s("32"),
        Value::F32(32.0),
        Value::I32(-32),
        Value::Bool(true),
    ] {
        let name = v.type_name();
        let b = GgufBuilder::new().kv("general.alignment", v).tensor_filled(
            "w",
            &[4],
            GgmlType::F32,
            0,
        );
        assert_err(b.build(), &["general.alignment", "unsigned integer", name]);
    }
}

#[test]
fn duplicate_tensor_names() {
    assert_err(
        GgufBuilder::new()
            .tensor_filled("w", &[4], GgmlType::F32, 0)
            .tensor_filled("v", &[4], GgmlType::F32, 0)
            .tensor_filled("w", &[8], GgmlType::F16, 0)
            .build(),
        &["duplicate tensor name 'w'"],
    );
}

#[test]
fn row_length_not_a_multiple_of_the_block_size() {
    for (dtype, cols) in [
        (GgmlType::Q4_0, 33u64),
        (GgmlType::Q4_0, 16),
        (GgmlType::Q8_0, 1),
        (GgmlType::Q4_K, 32),
        (GgmlType::Q6_K, 257),
    ] {
        let m = assert_err(
            GgufBuilder::new()
                .tensor_raw(b"q", &[cols, 2], dtype.id(), vec![0; 4096], None)
                .build(),
            &["'q'", &format!("row length {cols}"), &dtype.to_string()],
        );
        assert!(m.contains(&dtype.block_size().to_string()), "{m}");
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz-lite.

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Exercises what a caller would do with a file that parsed.
fn touch_everything(f: &GgufFile) -> usize {
    let mut sum = 0usize;
    for (k, v) in f.metadata.entries() {
        sum += k.len() + v.type_name().len();
        let _ = (v.as_u64(), v.as_i64(), v.as_f64(), v.as_str(), v.as_array());
    }
    for t in &f.tensors {
        let v = f.tensor(&t.name).expect("listed tensor must be found");
        assert_eq!(v.data.len(), t.size);
        assert!(t.offset >= f.data_offset && t.offset + t.size <= f.file_size());
        sum += t.n_elements() as usize % 7 + t.n_rows() + t.row_len() + t.row_bytes();
    }
    sum
}

#[test]
fn fuzz_lite_random_corruption_never_panics() {
    let mut base = small_file().kv("z.all", Value::Array(vec![Value::I64(-5); 3]));
    base = all_values()
        .into_iter()
        .take(12)
        .fold(base, |b, (k, v)| b.kv(&k, v));
    let base = base.build();
    assert!(GgufFile::from_bytes(base.clone()).is_ok());
    let interesting: [u64; 8] = [
        0,
        1,
        2,
        u64::MAX,
        1 << 63,
        (1 << 32) - 1,
        base.len() as u64,
        33,
    ];

    let (mut ok, mut err) = (0u32, 0u32);
    for iter in 0..20_000u64 {
        let seed = 0x5eed_0000 + iter;
        let mut rng = Rng(seed);
        let mut b = base.clone();
        for _ in 0..1 + rng.below(4) {
            if b.is_empty() {
                break;
            }
            let at = rng.below(b.len());
            match rng.below(5) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next() as u8,
                2 if at + 8 <= b.len() => {
                    let v = interesting[rng.below(interesting.len())];
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 if at + 4 <= b.len() => {
                    let v = rng.next() as u32 % 64;
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                4 => b.truncate(at),
                _ => b[at] = 0xff,
            }
        }
        let len = b.len();
        let r = catch_unwind(AssertUnwindSafe(|| {
            largest_alloc(|| match GgufFile::from_bytes(b) {
                Ok(f) => Ok(touch_everything(&f)),
                Err(e) => Err(e.to_string()),
            })
        }));
        match r {
            Err(_) => panic!("parser panicked on fuzz iteration {iter} (seed {seed:#x})"),
            Ok((res, peak)) => {
                // A parsed value takes up to size_of::<Value>() bytes per byte of file (a u8
                // array), doubled by Vec growth; nothing may go beyond that.
                let bound = len * 2 * std::mem::size_of::<Value>() + 4096;
                assert!(
                    peak <= bound,
                    "seed {seed:#x}: allocated {peak} bytes for a {len}-byte file"
                );
                match res {
                    Ok(_) => ok += 1,
                    Err(m) => {
                        assert!(m.starts_with("malformed GGUF: "), "seed {seed:#x}: {m}");
                        err += 1
                    }
                }
            }
        }
    }
    eprintln!("fuzz-lite: {ok} parsed, {err} rejected");
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}

/// A value written by `put_value` for one key is what the reader returns for it.
#[test]
fn builder_and_reader_agree_on_single_values() {
    for (k, v) in all_values() {
        let mut payload = Vec::new();
        put_value(&mut payload, &v);
        let ty = common::gguf_builder::type_id(&v);
        let f = GgufFile::from_bytes(GgufBuilder::new().kv_raw(k.as_bytes(), ty, payload).build())
            .unwrap();
        assert_eq!(f.metadata.get(&k), Some(&v), "{k}");
    }
}
