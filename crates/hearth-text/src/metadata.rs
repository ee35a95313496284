//! Typed reads of GGUF metadata values.
//!
//! GGUF writers differ in the integer width they use for the same key (u32 vs i32 vs
//! u64), so integer reads accept any integer type that fits.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::error::{Result, TextError};

/// The metadata map as candle's `gguf_file::Content` holds it.
pub type Metadata = HashMap<String, Value>;

fn invalid(key: &str, reason: impl Into<String>) -> TextError {
    TextError::InvalidMetadata {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::U8(x) => Some(i64::from(*x)),
        Value::I8(x) => Some(i64::from(*x)),
        Value::U16(x) => Some(i64::from(*x)),
        Value::I16(x) => Some(i64::from(*x)),
        Value::U32(x) => Some(i64::from(*x)),
        Value::I32(x) => Some(i64::from(*x)),
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}

/// A string value; `None` when the key is absent.
pub fn opt_str<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a str>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(key, "expected a string")),
    }
}

/// A required string value.
pub fn req_str<'a>(md: &'a Metadata, key: &str) -> Result<&'a str> {
    opt_str(md, key)?.ok_or_else(|| TextError::MissingMetadata(key.to_string()))
}

/// A token id (any non-negative integer that fits u32); `None` when absent.
pub fn opt_u32(md: &Metadata, key: &str) -> Result<Option<u32>> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => {
            let n = value_as_i64(v).ok_or_else(|| invalid(key, "expected an integer"))?;
            u32::try_from(n)
                .map(Some)
                .map_err(|_| invalid(key, format!("{n} is out of range")))
        }
    }
}

/// A boolean flag; `None` when absent.
pub fn opt_bool(md: &Metadata, key: &str) -> Result<Option<bool>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => value_as_i64(v)
            .map(|n| Some(n != 0))
            .ok_or_else(|| invalid(key, "expected a bool")),
    }
}

/// A required array of strings.
pub fn req_str_array<'a>(md: &'a Metadata, key: &str) -> Result<Vec<&'a str>> {
    let arr = match md.get(key) {
        None => return Err(TextError::MissingMetadata(key.to_string())),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(key, "expected an array")),
    };
    arr.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(invalid(key, "expected an array of strings")),
        })
        .collect()
}

/// An optional array of integers.
pub fn opt_int_array(md: &Metadata, key: &str) -> Result<Option<Vec<i64>>> {
    let arr = match md.get(key) {
        None => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(key, "expected an array")),
    };
    arr.iter()
        .map(|v| value_as_i64(v).ok_or_else(|| invalid(key, "expected an array of integers")))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// An optional array of numbers as f32 (token scores).
pub fn opt_f32_array(md: &Metadata, key: &str) -> Result<Option<Vec<f32>>> {
    let arr = match md.get(key) {
        None => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(key, "expected an array")),
    };
    arr.iter()
        .map(|v| match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            other => value_as_i64(other)
                .map(|n| n as f32)
                .ok_or_else(|| invalid(key, "expected an array of numbers")),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Reads the metadata of a GGUF file with candle (tensor data is not loaded).
pub fn read_gguf_metadata(path: &std::path::Path) -> Result<Metadata> {
    let mut f =
        std::fs::File::open(path).map_err(|e| TextError::Io(format!("{}: {e}", path.display())))?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut f)
        .map_err(|e| TextError::Io(format!("{}: {e}", path.display())))?;
    Ok(content.metadata)
}
