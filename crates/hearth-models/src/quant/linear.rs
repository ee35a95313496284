//! A weight matrix as the model uses it: Q4_1 and Q8_0 through hearth's kernels (one
//! rayon pool), every other type through candle's `QMatMul`.

use super::q4_1::Q4_1Matrix;
use super::q8_0::Q8_0Matrix;
use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Linear {
    Q4_1(Arc<Q4_1Matrix>),
    Q8_0(Arc<Q8_0Matrix>),
    Candle(QMatMul),
}

impl Linear {
    /// `dequantize` keeps candle's f32 path (transformers-exact numerics).
    pub fn new(t: Arc<QTensor>, dequantize: bool) -> Result<Self> {
        if dequantize {
            return Ok(Linear::Candle(QMatMul::Tensor(t.dequantize(&t.device())?)));
        }
        if t.device().is_cpu() && t.shape().rank() == 2 {
            match t.dtype() {
                GgmlDType::Q4_1 => {
                    return Ok(Linear::Q4_1(Arc::new(Q4_1Matrix::from_qtensor(&t)?)))
                }
                GgmlDType::Q8_0 => {
                    return Ok(Linear::Q8_0(Arc::new(Q8_0Matrix::from_qtensor(&t)?)))
                }
                _ => {}
            }
        }
        QMatMul::from_arc(t).map(Linear::Candle)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Q4_1(w) => x.apply_op1_no_bwd(w.as_ref()),
            Linear::Q8_0(w) => x.apply_op1_no_bwd(w.as_ref()),
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

impl CustomOp1 for Q4_1Matrix {
    fn name(&self) -> &'static str {
        "hearth-q4_1-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_matmul("Q4_1", (self.n(), self.k()), storage, layout, |x, m, y| {
            self.matmul(x, m, y)
        })
    }
}

impl CustomOp1 for Q8_0Matrix {
    fn name(&self) -> &'static str {
        "hearth-q8_0-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        cpu_matmul("Q8_0", (self.n(), self.k()), storage, layout, |x, m, y| {
            self.matmul(x, m, y)
        })
    }
}
