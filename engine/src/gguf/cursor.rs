//! A bounds-checked little-endian reader over the untrusted bytes of a GGUF header.
//!
//! Every read checks the remaining length first, so a truncated or lying file produces an error that
//! names the field being read, never a panic or an out-of-bounds access.

use crate::error::{Error, Result};
use std::fmt::Display;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes `n` bytes, or fails naming `what` when the file ends first.
    ///
    /// `what` is only formatted when there is an error, so hot loops (vocabulary arrays) can pass
    /// a cheap `Display` value instead of a formatted `String`.
    pub fn take(&mut self, n: usize, what: impl Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Gguf(format!(
                "file truncated while reading {what} at byte {} (needs {n} bytes, {} left)",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: impl Display) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: impl Display) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: impl Display) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: impl Display) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: impl Display) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: impl Display) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: impl Display) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Reads a count and checks it with [`Cursor::check_count`].
    pub fn count(&mut self, min_item_bytes: usize, what: impl Display) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(&what)?;
        self.check_count(n, at, min_item_bytes, what)
    }

    /// Checks that `n` items of at least `min_item_bytes` each still fit in the rest of the file
    /// (`n` was read at byte `at`). Callers must still size allocations with
    /// [`Cursor::capacity_for`]: a count that fits the file can still describe more memory than
    /// the file holds once each item becomes a Rust value.
    pub fn check_count(
        &self,
        n: u64,
        at: usize,
        min_item_bytes: usize,
        what: impl Display,
    ) -> Result<usize> {
        let need = n.checked_mul(min_item_bytes.max(1) as u64);
        match need {
            Some(need) if need <= self.remaining() as u64 => Ok(n as usize),
            _ => Err(Error::Gguf(format!(
                "{what} at byte {at} is {n}, more than the {} bytes left in the file can hold",
                self.remaining()
            ))),
        }
    }

    /// How many `T`s to pre-allocate for `n` items: at most `n`, and never more bytes than are
    /// left in the file, so a lying count cannot make the reader allocate more than the file's
    /// size up front. (Vectors still grow past this as real items are parsed.)
    pub fn capacity_for<T>(&self, n: usize) -> usize {
        n.min(self.remaining() / std::mem::size_of::<T>().max(1))
    }

    /// A GGUF string: u64 length then UTF-8 bytes.
    pub fn string(&mut self, what: impl Display) -> Result<String> {
        let at = self.pos;
        let len = self.u64(&what)?;
        if len > self.remaining() as u64 {
            return Err(Error::Gguf(format!(
                "{what} at byte {at} has length {len}, past the end of the file ({} bytes left)",
                self.remaining()
            )));
        }
        let bytes = self.take(len as usize, &what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Error::Gguf(format!("{what} at byte {at} is not valid UTF-8")))
    }
}
