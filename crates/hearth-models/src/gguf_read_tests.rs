//! Crafted headers found by the gguf_reader fuzz target: errors, never panics.

use super::read_content;
use crate::gguf_stream::{write_gguf, TensorHeader};
use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::io::Cursor;

/// A valid file: `md` plus one F32 tensor `t` of 4 values.
fn file(md: &[(String, Value)]) -> Vec<u8> {
    let head = TensorHeader {
        name: "t".into(),
        dims: vec![4],
        dtype: GgmlDType::F32,
    };
    let mut buf = Vec::new();
    write_gguf(&mut buf, md, &[head], |_| {
        let t = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu)?;
        Ok(QTensor::quantize(&t, GgmlDType::F32)?)
    })
    .expect("write");
    buf
}

fn read(bytes: &[u8]) -> Result<(), ModelError> {
    read_content(&mut Cursor::new(bytes), "test").map(|_| ())
}

fn message(bytes: &[u8]) -> String {
    match read(bytes) {
        Err(ModelError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The u64 at the end of the header is the tensor's offset in the data section.
fn offset_at(bytes: &[u8]) -> usize {
    let name = bytes.windows(9).position(|w| w == b"\x01\0\0\0\0\0\0\0t");
    name.expect("tensor entry") + 9 + 4 + 8 + 4
}

#[test]
fn a_valid_file_reads() {
    let md = [("general.alignment".to_string(), Value::U32(32))];
    read(&file(&md)).expect("valid");
    // The writer aligns to 32: a header that claims 64 moves the data past the end.
    let md = [("general.alignment".to_string(), Value::U32(64))];
    assert!(message(&file(&md)).contains("past the end"));
}

#[test]
fn zero_alignment_is_an_error_not_a_division_by_zero() {
    for v in [Value::U32(0), Value::U8(0), Value::I32(0)] {
        let md = [
            (
                "a".to_string(),
                Value::Array(vec![Value::String("x".into())]),
            ),
            ("general.alignment".to_string(), v),
        ];
        assert!(message(&file(&md)).contains("general.alignment is 0"));
    }
}

#[test]
fn a_tensor_past_the_end_is_an_error() {
    let mut bytes = file(&[]);
    let at = offset_at(&bytes);
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(message(&bytes).contains("past the end"));
    bytes[at..at + 8].copy_from_slice(&32u64.to_le_bytes());
    assert!(message(&bytes).contains("past the end"));
    // Truncated data is found at read time, not when the tensor is loaded.
    let mut short = file(&[]);
    // (the data is 16 bytes, then 16 of padding)
    short.truncate(short.len() - 17);
    assert!(message(&short).contains("past the end"));
}

#[test]
fn a_shape_whose_size_overflows_is_an_error() {
    let mut bytes = file(&[]);
    // n_dims = 1 sits before the dims; make the one dim 2^63.
    let at = offset_at(&bytes) - 4 - 8;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 63).to_le_bytes());
    let m = message(&bytes);
    assert!(m.contains("past the end") || m.contains("overflows"), "{m}");
}

#[test]
fn an_empty_tensor_is_an_error() {
    let mut bytes = file(&[]);
    let at = offset_at(&bytes) - 4 - 8;
    bytes[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    assert!(message(&bytes).contains("no elements"));
}
