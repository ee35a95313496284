//! A GGUF v3 writer that takes tensor data one tensor at a time, so a converter holds
//! one tensor, not the whole model (candle's `gguf_file::write` wants them all).

use crate::ModelError;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use std::io::Write;

const ALIGN: usize = 32;

/// A tensor's entry in the header: name, shape (row-major, outermost first), type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorHeader {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
}

impl TensorHeader {
    pub fn bytes(&self) -> usize {
        let n: usize = self.dims.iter().product();
        n / self.dtype.block_size() * self.dtype.type_size()
    }
}

/// ggml's type ids (ggml.h).
fn dtype_id(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

/// GGUF metadata value type ids.
fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn string(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn value(w: &mut impl Write, v: &Value) -> Result<(), ModelError> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => string(w, s),
        Value::Array(items) => {
            let t = items.first().map_or(4, value_type);
            if items.iter().any(|i| value_type(i) != t) {
                return Err(ModelError::Invalid("GGUF array of mixed types".into()));
            }
            w.write_all(&t.to_le_bytes()).map_err(io)?;
            w.write_all(&(items.len() as u64).to_le_bytes())
                .map_err(io)?;
            for i in items {
                value(w, i)?;
            }
            Ok(())
        }
    }
    .map_err(io)
}

fn io(source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: "GGUF output".into(),
        source,
    }
}

fn pad(w: &mut impl Write, written: usize) -> Result<usize, ModelError> {
    let n = (ALIGN - written % ALIGN) % ALIGN;
    w.write_all(&vec![0u8; n]).map_err(io)?;
    Ok(n)
}

/// Writes a GGUF file: the header up front, then each tensor's data as `next` yields it
/// (in `tensors` order; each must match its header's type and size).
pub fn write_gguf<W: Write>(
    w: &mut W,
    metadata: &[(String, Value)],
    tensors: &[TensorHeader],
    mut next: impl FnMut(&TensorHeader) -> Result<QTensor, ModelError>,
) -> Result<(), ModelError> {
    let mut head = Vec::new();
    head.extend_from_slice(&0x4655_4747u32.to_le_bytes()); // "GGUF"
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        string(&mut head, k).map_err(io)?;
        head.extend_from_slice(&value_type(v).to_le_bytes());
        value(&mut head, v)?;
    }
    let mut offset = 0usize;
    for t in tensors {
        string(&mut head, &t.name).map_err(io)?;
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        // ggml lists dimensions innermost first.
        for d in t.dims.iter().rev() {
            head.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        head.extend_from_slice(&dtype_id(t.dtype).to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += t.bytes().div_ceil(ALIGN) * ALIGN;
    }
    w.write_all(&head).map_err(io)?;
    pad(w, head.len())?;
    for t in tensors {
        let q = next(t)?;
        let data = q.data()?;
        if q.dtype() != t.dtype || data.len() != t.bytes() {
            return Err(ModelError::Invalid(format!(
                "tensor `{}` came as {:?} of {} bytes, header says {:?} of {}",
                t.name,
                q.dtype(),
                data.len(),
                t.dtype,
                t.bytes()
            )));
        }
        w.write_all(&data).map_err(io)?;
        pad(w, data.len())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::Content;
    use candle_core::{Device, Tensor};

    #[test]
    fn candle_reads_back_what_was_streamed() {
        let dev = &Device::Cpu;
        let a = Tensor::arange(0f32, 64., dev).and_then(|t| t.reshape((2, 32)));
        let a = QTensor::quantize(&a.expect("a"), GgmlDType::Q8_0).expect("q8");
        let b = Tensor::new(&[1f32, 2., 3.], dev).expect("b");
        let b = QTensor::quantize(&b, GgmlDType::F32).expect("f32");
        let heads = vec![
            TensorHeader {
                name: "a".into(),
                dims: vec![2, 32],
                dtype: GgmlDType::Q8_0,
            },
            TensorHeader {
                name: "b".into(),
                dims: vec![3],
                dtype: GgmlDType::F32,
            },
        ];
        let md = vec![
            ("k.s".to_string(), Value::String("x".into())),
            (
                "k.a".to_string(),
                Value::Array(vec![Value::I32(1), Value::I32(2)]),
            ),
        ];
        let mut buf = Vec::new();
        let mut tensors = [a, b].into_iter();
        write_gguf(&mut buf, &md, &heads, |_| {
            tensors
                .next()
                .ok_or_else(|| ModelError::Invalid("none".into()))
        })
        .expect("write");
        let mut r = std::io::Cursor::new(buf);
        let c = Content::read(&mut r).expect("read");
        assert!(matches!(c.metadata.get("k.s"), Some(Value::String(s)) if s == "x"));
        let got = c
            .tensor(&mut r, "b", dev)
            .expect("b")
            .dequantize(dev)
            .expect("deq");
        assert_eq!(got.to_vec1::<f32>().expect("vec"), vec![1., 2., 3.]);
        let a = c
            .tensor(&mut r, "a", dev)
            .expect("a")
            .dequantize(dev)
            .expect("deq");
        let a: Vec<f32> = a.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert!((a[63] - 63.0).abs() < 0.3 && a[0] == 0.0, "{a:?}");
        // A tensor that does not match its header is an error, not a corrupt file.
        let mut bad =
            vec![
                QTensor::quantize(&Tensor::new(&[1f32], dev).expect("t"), GgmlDType::F32)
                    .expect("q"),
            ]
            .into_iter();
        let e = write_gguf(&mut Vec::new(), &[], &heads[1..], |_| {
            bad.next().ok_or_else(|| ModelError::Invalid("none".into()))
        });
        assert!(e.is_err());
    }
}
