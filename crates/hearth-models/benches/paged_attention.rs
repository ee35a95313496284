//! The CPU paged-attention kernel at SmolLM2-135M's shape (9 query heads, 3 KV heads,
//! head dim 64, blocks of 16): decode of 1 and 8 sequences over 512 and 2048 cached
//! tokens, a 128-token prefill chunk over a 512-token cached prefix, and the 200 new
//! tokens of a 2000-token prompt after an 1800-token prefix hit; and at
//! Llama-3.2-3B's (24 query heads, 8 KV heads, head dim 128) a 512-token prefill chunk
//! over 1536 cached tokens, whose 12 MB of K and V outgrow the caches. Each call is timed
//! from a pool thread (`common/pooled.rs`), as the model's step makes it.

#[path = "common/pooled.rs"]
mod pooled;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use half::f16;
use hearth_models::attention::cpu::paged_attention;
use hearth_models::attention::{AttnMeta, AttnShape};
use hearth_models::{BatchInput, KvCacheLayout, SeqInput};
use std::time::Duration;

const BS: usize = 16;
const LLAMA_3B: AttnShape = AttnShape {
    num_heads: 24,
    num_kv_heads: 8,
    head_dim: 128,
    scale: 0.088,
    window: None,
    softcap: None,
};
const SHAPE: AttnShape = AttnShape {
    num_heads: 9,
    num_kv_heads: 3,
    head_dim: 64,
    scale: 0.125,
    window: None,
    softcap: None,
};

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `seqs` sequences with `cached` tokens in the pool and `new` tokens each this step;
/// block tables interleaved across the pool as a busy engine leaves them.
fn batch(seqs: usize, cached: usize, new: usize) -> (BatchInput, usize) {
    let per_seq = (cached + new).div_ceil(BS);
    let mut b = BatchInput::default();
    for s in 0..seqs {
        let table: Vec<u32> = (0..per_seq).map(|i| (i * seqs + s) as u32).collect();
        for pos in cached..cached + new {
            b.tokens.push(1);
            b.positions.push(pos as u32);
            b.slot_mapping
                .push(table[pos / BS] * BS as u32 + (pos % BS) as u32);
        }
        b.seqs.push(SeqInput {
            block_table: table,
            num_computed: cached,
            num_new: new,
            needs_logits: true,
            pick: Default::default(),
        });
    }
    (b, per_seq * seqs)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("paged_attention");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, shape, seqs, cached, new) in [
        ("decode", SHAPE, 1, 512, 1),
        ("decode", SHAPE, 8, 512, 1),
        // The contexts of the bench scripts' decode scenarios (32 in, 128 out).
        ("decode", SHAPE, 8, 96, 1),
        ("decode", SHAPE, 8, 2048, 1),
        ("prefill_chunk", SHAPE, 1, 512, 128),
        // The new 10% of a 2000-token prompt whose first 1800 tokens were cached
        // (issue #7's prefix-hit target; one layer).
        ("prefix_hit", SHAPE, 1, 1800, 200),
        ("llama3b_prefill_chunk", LLAMA_3B, 1, 1536, 512),
    ] {
        let row = shape.num_kv_heads * shape.head_dim;
        let (b, num_blocks) = batch(seqs, cached, new);
        let layout = KvCacheLayout {
            num_layers: 1,
            num_kv_heads: shape.num_kv_heads,
            head_dim: shape.head_dim,
            block_size: BS,
            num_blocks,
        };
        let meta = AttnMeta::new(&b, &layout).expect("valid batch");
        let k = data(num_blocks * BS * row, 1);
        let v = data(num_blocks * BS * row, 2);
        let q = data(b.tokens.len() * shape.num_heads * shape.head_dim, 3);
        let mut out = vec![0f32; q.len()];
        let id = format!("{name}_seqs{seqs}_ctx{}", cached + new);
        g.bench_function(BenchmarkId::from_parameter(&id), |bench| {
            pooled::iter_in_pool(bench, || {
                paged_attention(black_box(&q), &k, &v, BS, &b, &meta, shape, &mut out)
                    .expect("attention")
            })
        });
        // The same with the pool in f16 (`serve --kv-cache-dtype f16`).
        let (k16, v16): (Vec<f16>, Vec<f16>) = (
            k.iter().map(|&x| f16::from_f32(x)).collect(),
            v.iter().map(|&x| f16::from_f32(x)).collect(),
        );
        g.bench_function(BenchmarkId::from_parameter(format!("{id}_f16")), |bench| {
            pooled::iter_in_pool(bench, || {
                paged_attention(black_box(&q), &k16, &v16, BS, &b, &meta, shape, &mut out)
                    .expect("attention")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
