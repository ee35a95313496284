//! Several products of one input side by side on the pool (a layer's q, k and v, or
//! gate and up), the input's rows quantized once for all of them where the matrices
//! read the same activation blocks (`shared_acts`). Every result has the bits of the
//! matrix's own `forward`.

use super::shared_acts::QuantizedRows;
use super::{Linear, RowMatrix};
use candle_core::{bail, Module, Result, Storage, Tensor};
use rayon::prelude::*;

impl Linear {
    /// `x · Wᵀ` for each of `mats`, side by side on the pool. Where every matrix is held
    /// for hearth's kernels with the same activation blocks and `k`, and `x` is an f32
    /// tensor on the CPU, `x`'s rows are quantized once for all of them.
    pub fn forward_shared<const N: usize>(mats: &[&Linear; N], x: &Tensor) -> Result<[Tensor; N]> {
        let out = match sharing(mats, x) {
            Some(held) => {
                let acts = quantize_input(held[0], x)?;
                products(&held, &acts, x)
            }
            None => mats.par_iter().map(|l| l.forward(x)).collect(),
        };
        out?.try_into().map_err(|v: Vec<Tensor>| {
            candle_core::Error::Msg(format!("{} products of {N}", v.len()))
        })
    }
}

impl Linear {
    /// The matrix as hearth's kernels hold it; `None` for candle's.
    pub(crate) fn held(&self) -> Option<&dyn RowMatrix> {
        match self {
            Linear::Quantized(m) => Some(m.as_ref()),
            Linear::Candle(_) => None,
        }
    }
}

/// Whether one quantization of the input serves every matrix of `held`: the same
/// activation blocks and `k`.
pub(crate) fn shareable(held: &[&dyn RowMatrix]) -> bool {
    let Some(first) = held.first() else {
        return false;
    };
    let (kind, k) = (first.acts_kind(), first.k());
    kind.is_some() && held.iter().all(|m| m.acts_kind() == kind && m.k() == k)
}

/// `x`'s `m` rows (`[m, k]`) quantized once into `acts` for every matrix of `held`
/// (`shareable` ones), then the products side by side on the pool, each into its buffer
/// of `outs` (resized to `m * n`): `forward_shared` on buffers kept from step to step,
/// with the same bits.
pub(crate) fn products_into<const N: usize>(
    held: [&dyn RowMatrix; N],
    x: &[f32],
    m: usize,
    acts: &mut QuantizedRows,
    outs: [&mut Vec<f32>; N],
) -> Result<()> {
    if !shareable(&held) {
        bail!("products_into: matrices that take different activations");
    }
    held[0].quantize_into(x, m, acts)?;
    let acts = &*acts;
    held.into_par_iter()
        .zip(outs.into_par_iter())
        .try_for_each(|(w, y)| {
            y.clear();
            y.resize(m * w.n(), 0.0);
            w.matmul_quantized(acts, m, y)
        })
}

/// The held matrices of `mats` if one quantization of `x` serves them all: each held
/// for hearth's kernels, with the same activation blocks and `k`, and `x` on the CPU.
fn sharing<'a>(mats: &[&'a Linear], x: &Tensor) -> Option<Vec<&'a dyn RowMatrix>> {
    let held: Vec<&dyn RowMatrix> = mats.iter().map(|l| l.held()).collect::<Option<_>>()?;
    (shareable(&held) && x.device().is_cpu()).then_some(held)
}

/// `x`'s rows (`[.., k]`, f32, contiguous) quantized by `w`.
fn quantize_input(w: &dyn RowMatrix, x: &Tensor) -> Result<QuantizedRows> {
    let k = w.k();
    match x.dims().last() {
        Some(&d) if d == k => {}
        _ => bail!("quantized matmul: input {:?} does not end in {k}", x.dims()),
    }
    let (storage, layout) = x.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("quantized matmul: the input is not on the CPU");
    };
    let xs = crate::cpu_op_inputs::f32_slice("quantized matmul", (cpu, layout))?;
    w.quantize(xs, rows(x))
}

/// Rows of `x`: all its dimensions but the last.
fn rows(x: &Tensor) -> usize {
    x.dims()[..x.rank().saturating_sub(1)].iter().product()
}

/// Each held matrix's product on `acts` (the rows of `x`), shaped like `x`.
fn products(held: &[&dyn RowMatrix], acts: &QuantizedRows, x: &Tensor) -> Result<Vec<Tensor>> {
    let m = rows(x);
    held.par_iter()
        .map(|w| {
            let mut y = vec![0f32; m * w.n()];
            w.matmul_quantized(acts, m, &mut y)?;
            let mut dims = x.dims().to_vec();
            if let Some(last) = dims.last_mut() {
                *last = w.n();
            }
            Tensor::from_vec(y, dims, x.device())
        })
        .collect()
}
