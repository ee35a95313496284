//! What a CPU step's layers write into, kept from step to step (`llama::cpu_layers`,
//! `gemma3::cpu_layers`): every intermediate row in a vector that only grows, the
//! products' quantized input in one buffer, the attention's tile list; and the small
//! helpers both models' buffered layers share.

use crate::attention::cpu::AttnScratch;
use crate::quant::shared_acts::QuantizedRows;
use crate::quant::{Linear, RowMatrix};
use crate::ModelError;
use candle_core::{Device, Tensor};

/// The rows a step's layers write, kept from step to step.
#[derive(Default)]
pub(crate) struct StepBuffers {
    /// The residual stream and its normalised rows.
    pub(crate) x: Vec<f32>,
    pub(crate) h: Vec<f32>,
    /// The stream after the attention's residual add.
    pub(crate) mid: Vec<f32>,
    pub(crate) q: Vec<f32>,
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    /// q and k after a per-head norm (or an output after its norm), before their next op.
    pub(crate) normed: Vec<f32>,
    pub(crate) q_rot: Vec<f32>,
    pub(crate) k_rot: Vec<f32>,
    pub(crate) attn: Vec<f32>,
    pub(crate) o: Vec<f32>,
    pub(crate) gate: Vec<f32>,
    pub(crate) up: Vec<f32>,
    pub(crate) act: Vec<f32>,
    pub(crate) down: Vec<f32>,
    /// Per token's position: its angles, `[T, head_dim / 2]` (a second pair for models
    /// with two rope bases).
    pub(crate) cos: Vec<f32>,
    pub(crate) sin: Vec<f32>,
    pub(crate) cos2: Vec<f32>,
    pub(crate) sin2: Vec<f32>,
    pub(crate) acts: QuantizedRows,
    pub(crate) attn_scratch: AttnScratch,
}

/// `t`'s values (a weight vector on the CPU).
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// `l` as hearth's kernels hold it (`CpuLayers::new` checked every matrix).
pub(crate) fn held(l: &Linear) -> Result<&dyn RowMatrix, ModelError> {
    l.held()
        .ok_or_else(|| ModelError::Invalid("a matrix not held for the CPU kernels".into()))
}

/// `buf` holding `len` values (zeros where it grew; the rest is overwritten).
pub(crate) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

/// Row `i`'s values plus `bias` for each row of `rows` (rows of `bias.len()`).
pub(crate) fn add_bias(rows: &mut [f32], bias: &[f32]) {
    for r in rows.chunks_exact_mut(bias.len().max(1)) {
        for (x, b) in r.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

impl StepBuffers {
    /// Rows `rows` of the stream `x` (`hidden` values each) as a `[rows, hidden]` tensor:
    /// what the LM head reads, copied alone (not the whole stream, then a selection).
    pub(crate) fn stream_rows(
        &self,
        rows: &[u32],
        hidden: usize,
        device: &Device,
    ) -> Result<Tensor, ModelError> {
        let mut out = Vec::with_capacity(rows.len() * hidden);
        for &r in rows {
            let at = r as usize * hidden;
            let row = self.x.get(at..at + hidden).ok_or_else(|| {
                ModelError::BadBatch(format!("row {r} past the step's {} values", self.x.len()))
            })?;
            out.extend_from_slice(row);
        }
        Ok(Tensor::from_vec(out, (rows.len(), hidden), device)?)
    }
}

/// A model's buffered CPU layers: each layer's vectors (`V`: norm weights, biases as
/// plain values) and the buffers.
pub(crate) struct CpuLayers<V> {
    pub(crate) vectors: Vec<V>,
    pub(crate) buffers: StepBuffers,
}

impl<V> CpuLayers<V> {
    /// The buffered path for `layers` where every matrix is held for hearth's kernels,
    /// each of a layer's `groups` (the matrices that read one input) able to share one
    /// quantization; `None` otherwise (the model's tensor ops then run).
    pub(crate) fn new<'a, L: 'a>(
        layers: &'a [L],
        groups: impl Fn(&'a L) -> Vec<Vec<&'a Linear>>,
        vectors: impl Fn(&'a L) -> Result<V, ModelError>,
    ) -> Result<Option<Self>, ModelError> {
        let fits = layers.iter().all(|l| {
            groups(l).iter().all(|g| {
                let h: Option<Vec<_>> = g.iter().map(|m| m.held()).collect();
                h.is_some_and(|h| crate::quant::shared_products::shareable(&h))
            })
        });
        if !fits || layers.is_empty() {
            return Ok(None);
        }
        Ok(Some(CpuLayers {
            vectors: layers.iter().map(vectors).collect::<Result<_, _>>()?,
            buffers: StepBuffers::default(),
        }))
    }
}
