//! The CPU layers over buffers kept from step to step (the default) against the same
//! layers as candle tensor ops: the same logits, to the bit, on the real SmolLM2 over a
//! batched step of three prompts (one split into two chunks), then decode steps of all
//! three, with f32, f16 and int8 caches. The Qwen extras (q/k/v biases, q/k norms):
//! `quantized_hf.rs`.
mod common;

use candle_core::quantized::gguf_file::Content;
use candle_core::Device;
use common::{argmax, batch, model_path, Part};
use hearth_models::llama::Llama;
use hearth_models::{CausalLm, KvCache, KvCacheLayout, KvDtype};

const BS: usize = 16;

fn load(buffers: bool) -> Llama {
    let path = model_path();
    let mut f = std::fs::File::open(&path).expect("open model");
    let content = Content::read(&mut f).expect("gguf");
    let mut m = hearth_models::llama::load(&content, &mut f, &Device::Cpu, false).expect("load");
    m.set_step_buffers(buffers).expect("set path");
    assert_eq!(m.step_buffers(), buffers, "the path asked for runs");
    m
}

fn cache(m: &Llama, dtype: KvDtype) -> KvCache {
    let s = m.spec();
    let layout = KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 12,
    };
    KvCache::with_dtype(layout, dtype)
}

/// Logits of every step: prompts of 9, 20 (as 10 + 10) and 5 tokens, then decodes, each
/// next token the first model's argmax (so both models see the same tokens).
fn run(models: [&mut Llama; 2], dtype: KvDtype) -> [Vec<Vec<f32>>; 2] {
    let [a, b] = models;
    let (mut ca, mut cb) = (cache(a, dtype), cache(b, dtype));
    let tables: [Vec<u32>; 3] = [vec![3, 7, 1, 9], vec![0, 11, 5, 2], vec![8, 4, 10, 6]];
    let mut seqs: Vec<Vec<u32>> = vec![
        (0..9).map(|i| 200 + 37 * i).collect(),
        (0..20).map(|i| 900 + 13 * i).collect(),
        (0..5).map(|i| 4000 + 101 * i).collect(),
    ];
    let mut done = [0usize; 3];
    let mut out: [Vec<Vec<f32>>; 2] = [Vec::new(), Vec::new()];
    for step in 0..6 {
        // Step 0: all of sequences 0 and 2, the first half of 1 (no logits); step 1: the
        // rest of 1 with decodes of 0 and 2; then decodes of all three.
        let ends: [usize; 3] = match step {
            0 => [9, 10, 5],
            _ => [seqs[0].len(), seqs[1].len(), seqs[2].len()],
        };
        let parts: Vec<Part> = (0..3)
            .map(|s| Part {
                block_table: &tables[s],
                num_computed: done[s],
                tokens: &seqs[s][done[s]..ends[s]],
                needs_logits: ends[s] == seqs[s].len(),
            })
            .collect();
        let input = batch(&parts, BS);
        let la = a.forward(&input, &mut ca).expect("buffered step");
        let lb = b.forward(&input, &mut cb).expect("tensor step");
        assert_eq!(la.len(), lb.len(), "step {step}");
        // A row a sequence, empty where it asked for no logits.
        assert_eq!(la.len(), 3, "step {step}");
        for (s, row) in la.iter().enumerate() {
            assert_eq!(
                row.is_empty(),
                !parts[s].needs_logits,
                "step {step} seq {s}"
            );
        }
        done = ends;
        for (s, row) in la.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            seqs[s].push(argmax(row) as u32);
        }
        out[0].extend(la);
        out[1].extend(lb);
    }
    out
}

#[test]
fn buffered_layers_give_the_bits_of_tensor_ops() {
    let (mut buffered, mut tensors) = (load(true), load(false));
    for dtype in [KvDtype::F32, KvDtype::F16, KvDtype::Int8] {
        let [a, b] = run([&mut buffered, &mut tensors], dtype);
        assert_eq!(a.len(), 6 * 3, "{dtype}: rows of logits");
        assert_eq!(a.iter().filter(|r| !r.is_empty()).count(), 2 + 3 + 4 * 3);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let same =
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{dtype}: logits row {i} differ");
        }
    }
}
