//! What a step hands back instead of logits rows where the sampler needs less: each
//! greedy row's argmax, or each sampled row's head (`TopLogits`), computed on the GPU
//! (`kernels/argmax.cu`, `kernels/top_rows.cu`) so that a step downloads ids and a
//! few candidates instead of a vocabulary of floats a sequence.

use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig};

use super::{cuda_err, Gpu};
use crate::{ModelError, Next, Pick, TopLogits, TOP_CANDIDATES};

/// Words a row of `top_rows`' output: ids, logits, normalizer, finite count.
const TOP_STRIDE: usize = 2 * TOP_CANDIDATES + 2;
/// One block a row; its threads stride over the vocabulary.
const THREADS: u32 = 1024;

/// Device buffers of the picks, grown to the largest step seen.
#[derive(Default)]
pub struct Picker {
    ids: Option<CudaSlice<i32>>,
    inv_t: Option<CudaSlice<f32>>,
    /// What `inv_t` holds: a decode step's rows ask the same as the step before.
    inv_t_held: Vec<f32>,
    top: Option<CudaSlice<u32>>,
}

fn grow<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    gpu: &Gpu,
    buf: &mut Option<CudaSlice<T>>,
    n: usize,
) -> Result<(), ModelError> {
    if buf.as_ref().is_none_or(|b| b.len() < n) {
        let b = gpu.stream.alloc_zeros::<T>(n.next_power_of_two());
        *buf = Some(b.map_err(cuda_err("alloc"))?);
    }
    Ok(())
}

fn config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Picker {
    /// The first index of the largest value of each of the first `rows` rows of
    /// `logits` (`vocab` wide), as the engine's argmax.
    pub fn argmax(
        &mut self,
        gpu: &Gpu,
        logits: &CudaSlice<f32>,
        vocab: usize,
        rows: usize,
    ) -> Result<Vec<u32>, ModelError> {
        grow(gpu, &mut self.ids, rows)?;
        let ids = self.ids.as_ref().ok_or_else(|| missing("ids"))?;
        let (l, v, i) = (ptr(gpu, logits), vocab as i32, ptr(gpu, ids));
        // Safety: `logits` holds `rows` rows of `vocab`, `ids` at least `rows`.
        unsafe { gpu.launch("argmax_rows", config(rows), &[&l, &v, &i])? };
        let ids = gpu.stream.memcpy_dtov(&ids.slice(..rows));
        Ok(ids
            .map_err(cuda_err("download"))?
            .into_iter()
            .map(|i| i as u32)
            .collect())
    }

    /// Row `r` of `logits` as `picks[r]` asks: its argmax as a token, or its head at
    /// the asked temperature (`Pick::Row` is not served here).
    pub fn picks(
        &mut self,
        gpu: &Gpu,
        logits: &CudaSlice<f32>,
        vocab: usize,
        picks: &[Pick],
    ) -> Result<Vec<Next>, ModelError> {
        let rows = picks.len();
        let inv_t: Vec<f32> = picks
            .iter()
            .map(|p| match p {
                Pick::Sample { temperature } => 1.0 / temperature,
                _ => 0.0,
            })
            .collect();
        if self.inv_t.as_ref().is_none_or(|b| b.len() < rows) {
            self.inv_t_held.clear();
        }
        grow(gpu, &mut self.inv_t, rows)?;
        grow(gpu, &mut self.top, rows * TOP_STRIDE)?;
        let (Some(inv_dev), Some(top)) = (self.inv_t.as_mut(), self.top.as_ref()) else {
            return Err(missing("heads"));
        };
        if self.inv_t_held != inv_t {
            let mut head = inv_dev.slice_mut(..rows);
            gpu.stream
                .memcpy_htod(&inv_t, &mut head)
                .map_err(cuda_err("upload"))?;
            self.inv_t_held = inv_t;
        }
        let (l, v, t, o) = (
            ptr(gpu, logits),
            vocab as i32,
            ptr(gpu, self.inv_t.as_ref().ok_or_else(|| missing("heads"))?),
            ptr(gpu, top),
        );
        // Safety: `logits` holds `rows` rows of `vocab`, `inv_t` `rows` values and
        // `top` `rows * TOP_STRIDE` words.
        unsafe { gpu.launch("top_rows", config(rows), &[&l, &v, &t, &o])? };
        let words = gpu.stream.memcpy_dtov(&top.slice(..rows * TOP_STRIDE));
        let words = words.map_err(cuda_err("download"))?;
        Ok(picks
            .iter()
            .zip(words.chunks_exact(TOP_STRIDE))
            .map(|(p, w)| match p {
                Pick::Sample { .. } => Next::Top(head_of(w)),
                _ => Next::Token(w[0]),
            })
            .collect())
    }
}

/// A row of `top_rows`' output as the sampler's `TopLogits`.
fn head_of(w: &[u32]) -> TopLogits {
    let c = TOP_CANDIDATES;
    let finite = w[2 * c + 1] as usize;
    let top = (0..finite.min(c))
        .map(|i| (w[i], f32::from_bits(w[c + i])))
        .collect();
    TopLogits {
        top,
        mass: f32::from_bits(w[2 * c]),
        finite,
    }
}

fn ptr<T>(gpu: &Gpu, s: &CudaSlice<T>) -> u64 {
    s.device_ptr(&gpu.stream).0
}

fn missing(what: &str) -> ModelError {
    ModelError::Unsupported(format!("CUDA pick: {what} buffer missing"))
}
