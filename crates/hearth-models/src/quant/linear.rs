//! A weight matrix as the model uses it: quantized ones held once in their blocks and
//! run on hearth's kernels (one rayon pool), dense f32 ones through candle's `QMatMul`.
//! Its rows double as token embeddings (`embedding`), so a tied LM head and the lookup
//! share one copy.

use super::blocks::block_matrix;
use super::q4_1::Q4_1Matrix;
use super::q8_0::Q8_0Matrix;
use super::RowMatrix;
use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Linear {
    Quantized(Arc<dyn RowMatrix>),
    Candle(QMatMul),
}

/// How a file's matrices are held once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixForm {
    /// Repacked for hearth's CPU kernels where the type has one (the CPU default).
    Packed,
    /// Dequantized to dense f32: candle's exact path.
    Dense,
    /// The file's blocks untouched: what the GPU backend uploads as they are.
    Stored,
}

impl Linear {
    /// The matrix held in `form`.
    pub fn with_form(t: Arc<QTensor>, form: MatrixForm) -> Result<Self> {
        match form {
            MatrixForm::Packed => Linear::new(t, false),
            MatrixForm::Dense => Linear::new(t, true),
            MatrixForm::Stored => Ok(Linear::Candle(QMatMul::QTensor(t))),
        }
    }

    /// `dequantize` keeps candle's f32 path (transformers-exact numerics).
    pub fn new(t: Arc<QTensor>, dequantize: bool) -> Result<Self> {
        if dequantize {
            return Ok(Linear::Candle(QMatMul::Tensor(t.dequantize(&t.device())?)));
        }
        if t.device().is_cpu() && t.shape().rank() == 2 {
            let held: Option<Arc<dyn RowMatrix>> = match t.dtype() {
                GgmlDType::Q4_1 => Some(Arc::new(Q4_1Matrix::from_qtensor(&t)?)),
                GgmlDType::Q8_0 => Some(Arc::new(Q8_0Matrix::from_qtensor(&t)?)),
                _ => block_matrix(&t)?,
            };
            if let Some(m) = held {
                return Ok(Linear::Quantized(m));
            }
        }
        QMatMul::from_arc(t).map(Linear::Candle)
    }

    /// Rows `ids` of the matrix, `ids.dims() + [k]` in f32: the token-embedding lookup.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let m = match self {
            Linear::Candle(q) => return q.embedding(ids),
            Linear::Quantized(m) => m,
        };
        let idx = ids.flatten_all()?.to_vec1::<u32>()?;
        let mut out = Vec::new();
        rows_into(m.as_ref(), &idx, &mut out)?;
        let mut dims = ids.dims().to_vec();
        dims.push(m.k());
        Tensor::from_vec(out, dims, ids.device())
    }

    /// `embedding` of `ids` (the same ids as `ids_tensor`) into `out` (resized to
    /// `ids.len() * k`): a buffer kept from step to step, for the matrices held by hearth.
    pub(crate) fn embedding_into(
        &self,
        ids: &[u32],
        out: &mut Vec<f32>,
        ids_tensor: &Tensor,
    ) -> Result<()> {
        match self {
            Linear::Quantized(m) => rows_into(m.as_ref(), ids, out),
            Linear::Candle(q) => {
                *out = q.embedding(ids_tensor)?.flatten_all()?.to_vec1::<f32>()?;
                Ok(())
            }
        }
    }
}

/// Rows `ids` of `m` into `out`, one after another; an id past the rows is an error.
fn rows_into(m: &dyn RowMatrix, ids: &[u32], out: &mut Vec<f32>) -> Result<()> {
    let k = m.k();
    out.clear();
    out.resize(ids.len() * k, 0.0);
    for (&i, o) in ids.iter().zip(out.chunks_exact_mut(k.max(1))) {
        if i as usize >= m.n() {
            bail!("token id {i} is outside the embedding's {} rows", m.n());
        }
        m.row(i as usize, o);
    }
    Ok(())
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Quantized(w) => x.apply_op1_no_bwd(&RowOp(w.as_ref())),
            Linear::Candle(q) => q.forward(x),
        }
    }
}

/// `x[.., k] -> y[.., n]` for contiguous f32 inputs on the CPU.
fn cpu_matmul(
    what: &str,
    (n, k): (usize, usize),
    storage: &CpuStorage,
    layout: &Layout,
    matmul: impl Fn(&[f32], usize, &mut [f32]) -> Result<()>,
) -> Result<(CpuStorage, Shape)> {
    let (start, end) = match layout.contiguous_offsets() {
        Some(o) => o,
        None => bail!("{what} matmul needs a contiguous input"),
    };
    let x = match storage {
        CpuStorage::F32(x) => &x[start..end],
        other => bail!("{what} matmul needs f32 input, got {:?}", other.dtype()),
    };
    let dims = layout.dims();
    match dims.last() {
        Some(&d) if d == k => {}
        _ => bail!("{what} matmul: input {dims:?} does not end in {k}"),
    }
    let m = x.len() / k.max(1);
    let mut y = vec![0f32; m * n];
    matmul(x, m, &mut y)?;
    let mut out = dims.to_vec();
    if let Some(last) = out.last_mut() {
        *last = n;
    }
    Ok((CpuStorage::F32(y), Shape::from(out)))
}

/// A held matrix as a candle op on the CPU.
struct RowOp<'a>(&'a dyn RowMatrix);

impl CustomOp1 for RowOp<'_> {
    fn name(&self) -> &'static str {
        "hearth-quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = self.0;
        cpu_matmul("quantized", (w.n(), w.k()), storage, layout, |x, m, y| {
            w.matmul(x, m, y)
        })
    }
}
