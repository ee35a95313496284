//! Decode steps on the GPU timed as the server runs them: `step` with the GPU's argmax
//! (inputs uploaded, the captured graph replayed, the picked tokens read back), no
//! engine or HTTP around it. Served TPOT minus this is what the engine adds a token.
//!   cuda_step_time MODEL.gguf|HF_DIR [CONTEXT] [STEPS] [BATCH] [f32|f16]
//! CONTEXT prompt tokens a sequence (default 512) are prefilled, then STEPS (default
//! 64) greedy decode steps of BATCH sequences (default 1) are timed; the median is
//! printed; K/V are stored as the last argument says (default f32). HEARTH_STEP_VARIANTS, `;`-separated `HEARTH_CUDA_DEFINE` values, times
//! each build of the kernels in turn, twice round (alternated, for the noise), each
//! with its own copy of the model on the GPU. Weights as `serve` keeps them: bf16 for
//! a folder, the file's blocks for a GGUF.

use std::time::Instant;

use candle_core::Device;
use hearth_models::cuda::llama::{CudaLlama, GpuDtype};
use hearth_models::{BatchInput, CausalLm, KvCache, KvCacheLayout, KvDtype, Next, Pick, SeqInput};

const BLOCK: usize = 16;

/// The step that feeds each sequence its tokens from `from[i]` on, all greedy on the GPU.
fn step(seqs: &[Vec<u32>], from: &[usize], blocks_each: usize) -> BatchInput {
    let mut b = BatchInput {
        tokens: vec![],
        positions: vec![],
        slot_mapping: vec![],
        seqs: vec![],
    };
    for (i, (toks, &start)) in seqs.iter().zip(from).enumerate() {
        let table: Vec<u32> = (0..blocks_each)
            .map(|j| (i * blocks_each + j) as u32)
            .collect();
        for (p, &tok) in toks.iter().enumerate().skip(start) {
            b.tokens.push(tok);
            b.positions.push(p as u32);
            b.slot_mapping
                .push(table[p / BLOCK] * BLOCK as u32 + (p % BLOCK) as u32);
        }
        b.seqs.push(SeqInput {
            block_table: table,
            num_computed: start,
            num_new: toks.len() - start,
            needs_logits: true,
            pick: Pick::Argmax,
        });
    }
    b
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: cuda_step_time MODEL.gguf|HF_DIR [CONTEXT] [STEPS] [BATCH] [f32|f16]")?;
    let arg = |i: usize, default: usize| args.get(i).map_or(Ok(default), |s| s.parse());
    let (context, steps, batch) = (arg(2, 512)?, arg(3, 64)?, arg(4, 1)?);
    let kv: KvDtype = args.get(5).map_or(Ok(KvDtype::F32), |s| s.parse())?;
    if context == 0 || steps < 3 || batch == 0 {
        return Err("CONTEXT and BATCH must be at least 1, STEPS at least 3".into());
    }
    let folder = std::path::Path::new(path).is_dir();
    let cpu = if folder {
        hearth_models::hf_load::load_llama_dir(std::path::Path::new(path))?
    } else {
        let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
        let content = hearth_models::gguf_read::read_content(&mut file, path)?;
        hearth_models::llama::load_as(
            &content,
            &mut file,
            &Device::Cpu,
            hearth_models::quant::MatrixForm::Stored,
        )?
    };
    let spec = cpu.spec().clone();
    let blocks_each = (context + steps + 1).div_ceil(BLOCK);
    let layout = KvCacheLayout {
        num_layers: spec.num_layers,
        num_kv_heads: spec.num_kv_heads,
        head_dim: spec.head_dim,
        block_size: BLOCK,
        num_blocks: batch * blocks_each,
    };
    let vocab = spec.vocab_size as u32;
    let variants: Vec<String> = std::env::var("HEARTH_STEP_VARIANTS")
        .map(|v| v.split(';').map(str::to_owned).collect())
        .unwrap_or_else(|_| vec![std::env::var("HEARTH_CUDA_DEFINE").unwrap_or_default()]);
    for round in 0..if variants.len() > 1 { 2 } else { 1 } {
        for v in &variants {
            // Read when the kernels are compiled (Gpu::new, inside from_cpu).
            std::env::set_var("HEARTH_CUDA_DEFINE", v);
            let mut gpu = CudaLlama::from_cpu(&cpu, 0, GpuDtype::Bf16)?;
            let mut cache = KvCache::layout_only(layout, kv);
            let mut seqs: Vec<Vec<u32>> = (0..batch as u32)
                .map(|s| {
                    (0..context as u32)
                        .map(|i| (i * 7919 + s * 104_729 + 17) % vocab)
                        .collect()
                })
                .collect();
            let mut from = vec![0; batch];
            let mut times = Vec::with_capacity(steps);
            // The prefill, then the decode steps (the first captures its graph: untimed).
            for n in 0..=steps {
                let b = step(&seqs, &from, blocks_each);
                let t = Instant::now();
                let next = gpu.step(&b, &mut cache)?;
                if n > 1 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
                for (s, next) in next.iter().enumerate() {
                    let Next::Token(tok) = next else {
                        return Err(format!("sequence {s}: no GPU argmax ({next:?})").into());
                    };
                    from[s] = seqs[s].len();
                    seqs[s].push(*tok);
                }
            }
            times.sort_by(|a, b| a.total_cmp(b));
            println!(
                "round {round} [{v}] batch {batch}, context {context}, {kv} K/V: decode step median {:.3} ms, p90 {:.3} ms ({} steps)",
                times[times.len() / 2],
                times[times.len() * 9 / 10],
                times.len()
            );
        }
    }
    Ok(())
}
