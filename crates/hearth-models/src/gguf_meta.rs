//! Typed reads of GGUF metadata values, with errors that name the key.

use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;

pub type Metadata = HashMap<String, Value>;

fn missing(key: &str) -> ModelError {
    ModelError::Invalid(format!("GGUF metadata key `{key}` is missing"))
}

fn wrong(key: &str, v: &Value, want: &str) -> ModelError {
    ModelError::Invalid(format!(
        "GGUF metadata key `{key}` is {:?}, expected {want}",
        v.value_type()
    ))
}

/// Any integer type (writers differ between u32, u64 and i32) as usize.
pub fn get_usize(md: &Metadata, key: &str) -> Result<Option<usize>, ModelError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    let n: i128 = match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        _ => return Err(wrong(key, v, "an integer")),
    };
    usize::try_from(n)
        .map(Some)
        .map_err(|_| wrong(key, v, "a non-negative integer"))
}

pub fn req_usize(md: &Metadata, key: &str) -> Result<usize, ModelError> {
    get_usize(md, key)?.ok_or_else(|| missing(key))
}

pub fn get_f32(md: &Metadata, key: &str) -> Result<Option<f32>, ModelError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::F32(x)) => Ok(Some(*x)),
        Some(Value::F64(x)) => Ok(Some(*x as f32)),
        Some(v) => Err(wrong(key, v, "a float")),
    }
}

pub fn req_f32(md: &Metadata, key: &str) -> Result<f32, ModelError> {
    get_f32(md, key)?.ok_or_else(|| missing(key))
}

pub fn get_str<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a str>, ModelError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong(key, v, "a string")),
    }
}
