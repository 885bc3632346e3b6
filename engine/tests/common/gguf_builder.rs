//! A small GGUF writer for tests: v2 or v3 files with arbitrary metadata (all thirteen value types,
//! nested arrays), tensor infos and tensor data, honouring `general.alignment`.
//!
//! It can also write things a real writer never would (raw key bytes, wrong counts, forced offsets,
//! bad type ids) so tests can build corrupt files field by field.

#![allow(dead_code)]

use sparsetop_engine::gguf::Value;
use sparsetop_engine::GgmlType;

/// GGUF value type ids.
pub mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// The GGUF type id of a value.
pub fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => ty::U8,
        Value::I8(_) => ty::I8,
        Value::U16(_) => ty::U16,
        Value::I16(_) => ty::I16,
        Value::U32(_) => ty::U32,
        Value::I32(_) => ty::I32,
        Value::F32(_) => ty::F32,
        Value::Bool(_) => ty::BOOL,
        Value::String(_) => ty::STRING,
        Value::Array(_) => ty::ARRAY,
        Value::U64(_) => ty::U64,
        Value::I64(_) => ty::I64,
        Value::F64(_) => ty::F64,
    }
}

/// Appends a GGUF string (u64 length, bytes).
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Appends a value's payload (without its type id). An array's element type is its first element's
/// type, or u8 when empty (use [`put_array`] to choose it).
pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s.as_bytes()),
        Value::Array(items) => {
            let elem = items.first().map(type_id).unwrap_or(ty::U8);
            put_array(out, elem, items);
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Appends an array payload: element type, length, elements.
pub fn put_array(out: &mut Vec<u8>, elem_ty: u32, items: &[Value]) {
    out.extend_from_slice(&elem_ty.to_le_bytes());
    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
    for it in items {
        put_value(out, it);
    }
}

struct Kv {
    key: Vec<u8>,
    ty: u32,
    payload: Vec<u8>,
}

struct Tensor {
    name: Vec<u8>,
    dims: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
    /// Written in the header instead of the real offset.
    offset_override: Option<u64>,
}

/// Where the builder put things, for tests that patch the bytes afterwards.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Byte position of each tensor info's first byte (its name length).
    pub tensor_info_pos: Vec<usize>,
    /// Byte position of each tensor info's offset field.
    pub tensor_offset_field: Vec<usize>,
    /// Where the header ends (before padding).
    pub header_end: usize,
    /// Absolute start of the data section.
    pub data_offset: usize,
    /// Absolute position of each tensor's data.
    pub tensor_data_pos: Vec<usize>,
}

/// Builds a GGUF image in memory.
pub struct GgufBuilder {
    pub magic: [u8; 4],
    pub version: u32,
    kvs: Vec<Kv>,
    tensors: Vec<Tensor>,
    /// Alignment used for layout (set together with the metadata by [`GgufBuilder::alignment`]).
    pub align: u64,
    /// Written instead of the real tensor count.
    pub n_tensors_override: Option<u64>,
    /// Written instead of the real metadata count.
    pub n_kv_override: Option<u64>,
    /// Pad the data section after the last tensor too (as some writers do).
    pub trailing_padding: bool,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder {
            magic: *b"GGUF",
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
            align: 32,
            n_tensors_override: None,
            n_kv_override: None,
            trailing_padding: false,
        }
    }

    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }

    /// Adds a metadata entry.
    pub fn kv(mut self, key: &str, v: Value) -> Self {
        let mut payload = Vec::new();
        put_value(&mut payload, &v);
        self.kvs.push(Kv {
            key: key.as_bytes().to_vec(),
            ty: type_id(&v),
            payload,
        });
        self
    }

    /// Adds an array entry with an explicit element type (for empty arrays).
    pub fn kv_array(mut self, key: &str, elem_ty: u32, items: &[Value]) -> Self {
        let mut payload = Vec::new();
        put_array(&mut payload, elem_ty, items);
        self.kvs.push(Kv {
            key: key.as_bytes().to_vec(),
            ty: ty::ARRAY,
            payload,
        });
        self
    }

    /// Adds a metadata entry from raw parts: key bytes, type id, payload bytes.
    pub fn kv_raw(mut self, key: &[u8], ty: u32, payload: Vec<u8>) -> Self {
        self.kvs.push(Kv {
            key: key.to_vec(),
            ty,
            payload,
        });
        self
    }

    /// Sets `general.alignment` (as u32) and lays the data out with it.
    pub fn alignment(mut self, a: u32) -> Self {
        self.align = a as u64;
        self.kv("general.alignment", Value::U32(a))
    }

    /// Adds a tensor whose data is `data` (its length should match dims and type).
    pub fn tensor(self, name: &str, dims: &[u64], dtype: GgmlType, data: Vec<u8>) -> Self {
        self.tensor_raw(name.as_bytes(), dims, dtype.id(), data, None)
    }

    /// Adds a tensor with a deterministic payload of the right size for `dims` and `dtype`.
    pub fn tensor_filled(self, name: &str, dims: &[u64], dtype: GgmlType, seed: u8) -> Self {
        let n: u64 = dims.iter().product();
        let size = dtype.row_bytes(n).expect("dims must be whole blocks") as usize;
        let data = (0..size)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        self.tensor(name, dims, dtype, data)
    }

    /// Adds a tensor from raw parts, optionally lying about its offset.
    pub fn tensor_raw(
        mut self,
        name: &[u8],
        dims: &[u64],
        type_id: u32,
        data: Vec<u8>,
        offset_override: Option<u64>,
    ) -> Self {
        self.tensors.push(Tensor {
            name: name.to_vec(),
            dims: dims.to_vec(),
            type_id,
            data,
            offset_override,
        });
        self
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with_layout().0
    }

    pub fn build_with_layout(&self) -> (Vec<u8>, Layout) {
        let align = self.align.max(1) as usize;
        let pad = |n: usize| n.div_ceil(align) * align;
        let mut layout = Layout::default();

        // Relative offsets of the tensors in the data section.
        let mut rel = Vec::with_capacity(self.tensors.len());
        let mut at = 0usize;
        for t in &self.tensors {
            at = pad(at);
            rel.push(at);
            at += t.data.len();
        }

        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_tensors = self.n_tensors_override.unwrap_or(self.tensors.len() as u64);
        let n_kv = self.n_kv_override.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        out.extend_from_slice(&n_kv.to_le_bytes());
        for kv in &self.kvs {
            put_str(&mut out, &kv.key);
            out.extend_from_slice(&kv.ty.to_le_bytes());
            out.extend_from_slice(&kv.payload);
        }
        for (t, &r) in self.tensors.iter().zip(&rel) {
            layout.tensor_info_pos.push(out.len());
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            layout.tensor_offset_field.push(out.len());
            let off = t.offset_override.unwrap_or(r as u64);
            out.extend_from_slice(&off.to_le_bytes());
        }
        layout.header_end = out.len();
        if !self.tensors.is_empty() || self.trailing_padding {
            out.resize(pad(out.len()), 0);
        }
        layout.data_offset = out.len();
        for (t, &r) in self.tensors.iter().zip(&rel) {
            out.resize(layout.data_offset + r, 0);
            layout.tensor_data_pos.push(out.len());
            out.extend_from_slice(&t.data);
        }
        if self.trailing_padding {
            let end = layout.data_offset + pad(out.len() - layout.data_offset);
            out.resize(end, 0);
        }
        (out, layout)
    }
}
