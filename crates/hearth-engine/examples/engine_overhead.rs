//! The engine's own cost per step, with a model that costs nothing: N sequences of a
//! 512-token prompt and 256 greedy tokens each, over a Llama-3.2-3B-sized vocabulary,
//! so what is timed is scheduling, the host side of the logits, sampling and
//! streaming: what a fast GPU leaves the CPU to do every step.
//!   cargo run --release -p hearth-engine --example engine_overhead -- [SEQS] [TOKENIZER_DIR]

use std::sync::Arc;
use std::time::Instant;

use hearth_engine::{EngineConfig, EngineHandle, Request, SamplingParams};
use hearth_models::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec};

const VOCAB: usize = 128_256;

/// Logits with their maximum at a token the tokenizer knows, moving every step; each
/// a copy of one row into a recycled vector, as the CUDA model fills them.
struct FreeModel {
    spec: ModelSpec,
    known: u32,
    step: u32,
    row: Vec<f32>,
    spare: Vec<Vec<f32>>,
}

impl CausalLm for FreeModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn kv_on_device(&self) -> bool {
        true
    }

    fn forward(
        &mut self,
        batch: &BatchInput,
        _: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.step += 1;
        Ok(batch
            .seqs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if !s.needs_logits {
                    return Vec::new();
                }
                let mut l = self.spare.pop().unwrap_or_default();
                l.clear();
                l.extend_from_slice(&self.row);
                l[((self.step + i as u32) % self.known) as usize] = 10.0;
                l
            })
            .collect())
    }

    fn recycle(&mut self, logits: Vec<Vec<f32>>) {
        self.spare.extend(logits);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seqs: usize = args.get(1).map_or(Ok(128), |s| s.parse())?;
    let dir = args.get(2).cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../hearth-text/tests/fixtures/hf_tiny"
        )
        .into()
    });
    let tokenizer = Arc::new(hearth_text::Tokenizer::from_hf_dir(&dir)?);
    let known = tokenizer.vocab_size().min(VOCAB) as u32;
    let model = FreeModel {
        spec: ModelSpec {
            architecture: "llama".into(),
            num_layers: 28,
            hidden_size: 3072,
            num_heads: 24,
            num_kv_heads: 8,
            head_dim: 128,
            vocab_size: VOCAB,
            max_context: 4096,
        },
        known,
        step: 0,
        row: (0..VOCAB).map(|v| (v % 97) as f32 * 1e-3).collect(),
        spare: Vec::new(),
    };
    let config = EngineConfig {
        kv_cache_bytes: 64 << 30,
        max_num_seqs: 256,
        max_num_batched_tokens: 4096,
        ..EngineConfig::default()
    };
    let engine = EngineHandle::start(Box::new(model), tokenizer, config)?;
    let rt = tokio::runtime::Runtime::new()?;
    let start = Instant::now();
    let tokens = rt.block_on(async {
        let mut tasks = Vec::new();
        for s in 0..seqs {
            let params = SamplingParams {
                temperature: 0.0,
                max_tokens: 256,
                ignore_eos: true,
                ..SamplingParams::default()
            };
            let prompt_ids = (0..512)
                .map(|i| ((i * 31 + s * 7) as u32) % known)
                .collect();
            let mut stream = engine.submit(Request { prompt_ids, params })?;
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while let Some(ev) = stream.next().await {
                    if let hearth_engine::Event::Delta { token_ids, .. } = ev {
                        n += token_ids.len();
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await?;
        }
        Ok::<usize, Box<dyn std::error::Error>>(total)
    })?;
    let secs = start.elapsed().as_secs_f64();
    let steps = engine.stats().steps;
    println!(
        "{seqs} sequences: {tokens} tokens in {steps} steps, {secs:.2} s: {:.2} ms a step, {:.0} tokens/s",
        secs * 1e3 / steps.max(1) as f64,
        tokens as f64 / secs
    );
    Ok(())
}
