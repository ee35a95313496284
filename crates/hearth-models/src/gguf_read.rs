//! Reads a GGUF header from an untrusted file. candle's reader bounds its counts and
//! lengths by the file size, but divides by `general.alignment` (a 0 panics) and keeps
//! tensor shapes and offsets unchecked. Both are checked here: the alignment by a scan of
//! the metadata before candle reads it, every tensor's size and place in the file after.

use crate::ModelError;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use std::io::{Read, Seek, SeekFrom};

/// Nesting of arrays candle accepts (its GGUF_MAX_VALUE_DEPTH).
const MAX_DEPTH: usize = 64;

fn invalid(name: &str, what: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid(format!("not a readable GGUF file: {name}: {what}"))
}

/// Reads the header of the GGUF file `r` (`name` is for messages), checked as above.
pub fn read_content<R: Read + Seek>(r: &mut R, name: &str) -> Result<Content, ModelError> {
    let io = |e: std::io::Error| invalid(name, e);
    let start = r.stream_position().map_err(io)?;
    let size = r.seek(SeekFrom::End(0)).map_err(io)?;
    r.seek(SeekFrom::Start(start)).map_err(io)?;
    // A scan that fails leaves the error to candle's reader, which says more.
    if let Err(Scan::Bad(msg)) = scan_alignment(r, size) {
        return Err(invalid(name, msg));
    }
    r.seek(SeekFrom::Start(start)).map_err(io)?;
    let content = Content::read(r).map_err(|e| {
        let msg = format!("{name}: {e}");
        // candle names tensor types it does not know as "unknown dtype".
        if msg.contains("unknown dtype") {
            ModelError::Unsupported(msg)
        } else {
            ModelError::Invalid(format!("not a readable GGUF file: {msg}"))
        }
    })?;
    for (t, info) in &content.tensor_infos {
        check_tensor(info, content.tensor_data_offset, size)
            .map_err(|m| invalid(name, format!("tensor `{t}`: {m}")))?;
    }
    Ok(content)
}

/// The tensor's element count, byte size and end in the file all fit.
fn check_tensor(info: &TensorInfo, data_start: u64, size: u64) -> Result<(), String> {
    let dims = info.shape.dims();
    let elems = (dims.iter()).try_fold(1usize, |a, &d| a.checked_mul(d));
    let elems = elems.ok_or_else(|| format!("shape {dims:?} overflows"))?;
    // candle views an empty buffer's dangling pointer as blocks: misaligned, undefined.
    if elems == 0 {
        return Err(format!("shape {dims:?} has no elements"));
    }
    let (block, ts) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
    if elems % block != 0 {
        return Err(format!(
            "{elems} elements are not whole blocks of {block} ({:?})",
            info.ggml_dtype
        ));
    }
    let bytes = ((elems / block) as u64).checked_mul(ts as u64);
    let end = (bytes.zip(data_start.checked_add(info.offset))).and_then(|(b, s)| s.checked_add(b));
    match end {
        Some(end) if end <= size => Ok(()),
        _ => Err(format!(
            "shape {dims:?} at offset {} lies past the end of the file ({size} bytes)",
            info.offset
        )),
    }
}

enum Scan {
    /// The file is wrong in a way candle would not report.
    Bad(String),
    /// Not readable here: candle's reader reports it.
    Stop,
}

impl From<std::io::Error> for Scan {
    fn from(_: std::io::Error) -> Self {
        Scan::Stop
    }
}

struct Scanner<'a, R> {
    r: &'a mut R,
    size: u64,
    /// GGUF v1 writes lengths as u32, later versions as u64.
    wide: bool,
}

impl<R: Read + Seek> Scanner<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Scan> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, Scan> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn len(&mut self) -> Result<u64, Scan> {
        if self.wide {
            Ok(u64::from_le_bytes(self.bytes()?))
        } else {
            Ok(self.u32()?.into())
        }
    }

    /// Skips `n` bytes that must lie inside the file.
    fn skip(&mut self, n: u64) -> Result<(), Scan> {
        let pos = self.r.stream_position()?;
        if n > self.size.saturating_sub(pos) {
            return Err(Scan::Stop);
        }
        self.r.seek(SeekFrom::Current(n as i64))?;
        Ok(())
    }

    /// Whether the next string is `want` (skipped either way).
    fn string_is(&mut self, want: &[u8]) -> Result<bool, Scan> {
        let n = self.len()?;
        if n != want.len() as u64 {
            self.skip(n)?;
            return Ok(false);
        }
        let mut s = vec![0u8; want.len()];
        self.r.read_exact(&mut s)?;
        Ok(s == want)
    }

    /// Skips a value of GGUF type `t`; an integer's value comes back.
    fn value(&mut self, t: u32, depth: usize) -> Result<Option<i64>, Scan> {
        let fixed = match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                let n = self.len()?;
                self.skip(n)?;
                return Ok(None);
            }
            9 if depth < MAX_DEPTH => {
                let (t, n) = (self.u32()?, self.len()?);
                for _ in 0..n {
                    self.value(t, depth + 1)?;
                }
                return Ok(None);
            }
            _ => return Err(Scan::Stop),
        };
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b[..fixed])?;
        Ok(match t {
            0 => Some(b[0].into()),
            1 => Some((b[0] as i8).into()),
            2 => Some(u16::from_le_bytes([b[0], b[1]]).into()),
            3 => Some(i16::from_le_bytes([b[0], b[1]]).into()),
            4 => Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]).into()),
            5 => Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into()),
            _ => None,
        })
    }
}

/// Walks the metadata; a `general.alignment` of 0 (in a type candle reads it from) is an
/// error. Arrays of n items take at least n bytes, so the walk is bounded by the file.
fn scan_alignment<R: Read + Seek>(r: &mut R, size: u64) -> Result<(), Scan> {
    let mut s = Scanner {
        r,
        size,
        wide: true,
    };
    let _magic = s.u32()?;
    s.wide = match s.u32()? {
        1 => false,
        2 | 3 => true,
        _ => return Err(Scan::Stop),
    };
    let (_tensors, kvs) = (s.len()?, s.len()?);
    for _ in 0..kvs {
        let is_alignment = s.string_is(b"general.alignment")?;
        let t = s.u32()?;
        if s.value(t, 0)? == Some(0) && is_alignment {
            return Err(Scan::Bad("general.alignment is 0".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "gguf_read_tests.rs"]
mod tests;
