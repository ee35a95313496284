//! The real SmolLM2 model: chunked prefill and batching must not change the logits.
mod common;

use common::{argmax, batch, max_abs_diff, model_path, Part, Rng};
use hearth_models::{load_gguf, CausalLm, KvCache, KvCacheLayout};

const BS: usize = 16;
const TOL: f32 = 1e-4;

fn setup() -> (Box<dyn CausalLm>, KvCache) {
    let loaded = load_gguf(&model_path()).expect("load SmolLM2");
    let s = &loaded.spec;
    let layout = KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 48,
    };
    (loaded.model, KvCache::new(layout))
}

fn prompt(seed: u64, n: usize, vocab: usize) -> Vec<u32> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.below(vocab) as u32).collect()
}

/// Feeds `chunks` of `tokens` one step each, then `decode` greedy steps; returns the
/// logits of every step that ends a chunk or decodes.
fn run(
    model: &mut dyn CausalLm,
    cache: &mut KvCache,
    table: &[u32],
    tokens: &[u32],
    chunks: &[usize],
    decode: usize,
) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = Vec::new();
    let mut done = 0;
    for (i, &n) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let b = batch(
            &[Part {
                block_table: table,
                num_computed: done,
                tokens: &tokens[done..done + n],
                needs_logits: last,
            }],
            BS,
        );
        let l = model.forward(&b, cache).expect("forward").remove(0);
        assert_eq!(l.is_empty(), !last, "logits only where asked");
        done += n;
        if last {
            out.push(l);
        }
    }
    for _ in 0..decode {
        let next = argmax(out.last().expect("logits")) as u32;
        let b = batch(
            &[Part {
                block_table: table,
                num_computed: done,
                tokens: &[next],
                needs_logits: true,
            }],
            BS,
        );
        out.push(model.forward(&b, cache).expect("decode").remove(0));
        done += 1;
    }
    out
}

#[test]
fn chunked_prefill_equals_one_prefill() {
    let (mut model, mut cache) = setup();
    let vocab = model.spec().vocab_size;
    let tokens = prompt(11, 41, vocab);
    let whole = run(model.as_mut(), &mut cache, &[3, 4, 5, 6], &tokens, &[41], 4);
    // Fresh blocks in another order: nothing may leak from the first run.
    let chunked = run(
        model.as_mut(),
        &mut cache,
        &[17, 2, 30, 9],
        &tokens,
        &[5, 7, 29],
        4,
    );
    assert_eq!(whole.len(), 5);
    for (i, (a, b)) in whole.iter().zip(&chunked).enumerate() {
        assert_eq!(a.len(), vocab);
        let err = max_abs_diff(a, b);
        eprintln!("step {i}: max abs diff {err:.2e}");
        assert!(err < TOL, "step {i}: chunked differs by {err}");
        assert_eq!(argmax(a), argmax(b));
    }
}

#[test]
fn batch_of_three_equals_each_alone() {
    let (mut model, mut cache) = setup();
    let vocab = model.spec().vocab_size;
    let prompts = [
        prompt(1, 11, vocab),
        prompt(2, 23, vocab),
        prompt(3, 6, vocab),
    ];
    let tables: [&[u32]; 3] = [&[40, 7], &[13, 1, 22], &[5]];
    // Alone: each in a fresh region of the pool, then one decode step.
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .zip([[30u32, 31], [32, 33], [34, 35]])
        .map(|(p, t)| {
            run(
                model.as_mut(),
                &mut cache,
                &t[..p.len().div_ceil(BS)],
                p,
                &[p.len()],
                1,
            )
        })
        .collect();
    // Together: one prefill step for all three, then one batched decode step.
    let parts: Vec<Part> = (0..3)
        .map(|s| Part {
            block_table: tables[s],
            num_computed: 0,
            tokens: &prompts[s],
            needs_logits: s != 1,
        })
        .collect();
    let prefill = model
        .forward(&batch(&parts, BS), &mut cache)
        .expect("batched prefill");
    assert!(prefill[1].is_empty(), "sequence 1 did not ask for logits");
    for s in [0, 2] {
        let err = max_abs_diff(&prefill[s], &alone[s][0]);
        eprintln!("prefill seq {s}: max abs diff {err:.2e}");
        assert!(err < TOL, "prefill seq {s}: {err}");
    }
    let next: Vec<[u32; 1]> = alone.iter().map(|a| [argmax(&a[0]) as u32]).collect();
    let parts: Vec<Part> = (0..3)
        .map(|s| Part {
            block_table: tables[s],
            num_computed: prompts[s].len(),
            tokens: &next[s],
            needs_logits: true,
        })
        .collect();
    let decode = model
        .forward(&batch(&parts, BS), &mut cache)
        .expect("batched decode");
    for s in 0..3 {
        let err = max_abs_diff(&decode[s], &alone[s][1]);
        eprintln!("decode seq {s}: max abs diff {err:.2e}");
        assert!(err < TOL, "decode seq {s}: {err}");
    }
}

/// `step` gives a greedy sequence (`Pick::Argmax`) the first index of its largest logit
/// and every other sequence its whole row, as `forward` computes them: the same batch
/// run through each on caches of the same contents.
#[test]
fn step_picks_what_forward_computes() {
    use hearth_models::{Next, Pick};
    let (mut model, mut cache) = setup();
    let vocab = model.spec().vocab_size;
    let prompts = [
        prompt(7, 9, vocab),
        prompt(8, 17, vocab),
        prompt(9, 5, vocab),
    ];
    let tables: [&[u32]; 3] = [&[3], &[9, 4], &[11]];
    let parts: Vec<Part> = (0..3)
        .map(|s| Part {
            block_table: tables[s],
            num_computed: 0,
            tokens: &prompts[s],
            needs_logits: s != 2,
        })
        .collect();
    let mut b = batch(&parts, BS);
    b.seqs[0].pick = Pick::Argmax;
    b.seqs[1].pick = Pick::Row;
    // The same cache contents for both: forward writes the same K/V step writes.
    let mut twin = KvCache::new(cache.layout);
    let rows = model.forward(&b, &mut twin).expect("forward");
    let next = model.step(&b, &mut cache).expect("step");
    assert_eq!(next.len(), 3);
    assert_eq!(next[0], Next::Token(argmax(&rows[0]) as u32));
    assert_eq!(next[1], Next::Logits(rows[1].clone()));
    assert_eq!(next[2], Next::Logits(Vec::new()), "no logits asked for");
}
