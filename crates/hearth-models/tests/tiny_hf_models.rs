//! Tiny random-weight Hugging Face models (scripts/reference/make_tiny_models.py) through
//! `load_safetensors_dir` and the paged KV cache, against transformers' logits.
//!
//! Bounds: every fixture's reference was computed by transformers in f32 (bf16/f16 ones
//! over their rounded weights, upcast exactly as hearth upcasts them), so hearth and
//! transformers differ only in f32 summation order and rope-table rounding: logits of
//! magnitude ~3 agree to ~1e-5. `TOL` = 1e-4 leaves margin yet is far below the smallest
//! top-1 margin of any fixture (6.6e-3), and below what any real mistake (a bias, a norm,
//! a rope layout, a scaled frequency) moves the logits (>1e-2).
mod common;

use common::{argmax, batch, max_abs_diff, Part};
use hearth_models::{load_safetensors_dir, CausalLm, KvCache, KvCacheLayout};
use serde_json::Value;
use std::path::PathBuf;

const BS: usize = 4;
/// One bound for f32, bf16 and f16 weights alike (see the header): measured errors are ~2e-6
/// for the Llama-family fixtures and 3.2e-6 for gemma3 (smallest gemma3 top-1 margin
/// 4.9e-2), of which 5e-7 is the reference's 6-decimal rounding.
const TOL: f32 = 1e-4;
/// gemma3: 3 layers (local, global, local), sliding window 4 (so the 12-token prompt
/// and its decodes run past it), both soft-caps set.
const FIXTURES: [&str; 6] = [
    "llama3",
    "llama3_bf16",
    "qwen2",
    "qwen2_f16",
    "qwen3",
    "gemma3",
];

struct Reference {
    prompt: Vec<u32>,
    prefill: Vec<Vec<f32>>,
    decode: Vec<(u32, Vec<f32>)>,
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tiny/{name}"))
}

fn floats(v: &Value) -> Vec<f32> {
    let a = v.as_array().expect("array of logits");
    a.iter()
        .map(|x| x.as_f64().expect("logit") as f32)
        .collect()
}

fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(dir(name).join("reference.json")).expect("reference");
    let j: Value = serde_json::from_str(&text).expect("reference json");
    assert_eq!(j["format"], "hearth-tiny-reference/1");
    let ids = |v: &Value| v.as_u64().expect("token id") as u32;
    Reference {
        prompt: j["prompt"]
            .as_array()
            .expect("prompt")
            .iter()
            .map(ids)
            .collect(),
        prefill: j["prefill"]
            .as_array()
            .expect("prefill")
            .iter()
            .map(floats)
            .collect(),
        decode: (j["decode"].as_array().expect("decode").iter())
            .map(|d| (ids(&d["token"]), floats(&d["logits"])))
            .collect(),
    }
}

/// `HEARTH_TEST_DEVICE=cuda` (a build with `--features cuda`, on a machine with a GPU)
/// runs every check on the GPU model, f32 weights, same bound; gemma3 is CPU-only.
fn on_cuda() -> bool {
    std::env::var("HEARTH_TEST_DEVICE").as_deref() == Ok("cuda")
}

fn fixtures() -> impl Iterator<Item = &'static str> {
    FIXTURES
        .into_iter()
        .filter(|name| !(on_cuda() && *name == "gemma3"))
}

fn load(name: &str) -> Box<dyn CausalLm> {
    #[cfg(feature = "cuda")]
    if on_cuda() {
        use hearth_models::cuda::llama::GpuDtype;
        let gpu = hearth_models::cuda::load_safetensors_dir(&dir(name), 0, GpuDtype::F32);
        return Box::new(gpu.expect("load fixture onto the GPU"));
    }
    assert!(
        !on_cuda(),
        "HEARTH_TEST_DEVICE=cuda needs a build with --features cuda"
    );
    load_safetensors_dir(&dir(name))
        .expect("load fixture")
        .model
}

fn setup(name: &str) -> (Box<dyn CausalLm>, KvCache) {
    let model = load(name);
    let s = model.spec();
    assert_eq!(s.vocab_size, 256);
    let layout = KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 32,
    };
    (model, KvCache::new(layout))
}

/// Compares, asserts top-1 agreement and the bound, returns the error.
fn check(name: &str, what: &str, got: &[f32], want: &[f32]) -> f32 {
    let err = max_abs_diff(got, want);
    assert_eq!(argmax(got), argmax(want), "{name} {what}: top-1 differs");
    assert!(err < TOL, "{name} {what}: max abs error {err}");
    err
}

/// One sequence fed in `chunks` (logits at every chunk end), then the reference's decode
/// tokens; returns the largest error seen.
fn run_chunks(name: &str, chunks: &[usize]) -> f32 {
    let r = reference(name);
    let (mut model, mut cache) = setup(name);
    let table: Vec<u32> = (0..8).map(|i| 31 - 3 * i).collect(); // scattered blocks
    let (mut done, mut worst) = (0, 0f32);
    for &n in chunks {
        let toks = &r.prompt[done..done + n];
        let b = batch(
            &[Part {
                block_table: &table,
                num_computed: done,
                tokens: toks,
                needs_logits: true,
            }],
            BS,
        );
        let got = model.forward(&b, &mut cache).expect("prefill").remove(0);
        done += n;
        worst = worst.max(check(
            name,
            &format!("pos {}", done - 1),
            &got,
            &r.prefill[done - 1],
        ));
    }
    assert_eq!(done, r.prompt.len());
    for (step, (tok, want)) in r.decode.iter().enumerate() {
        let b = batch(
            &[Part {
                block_table: &table,
                num_computed: done,
                tokens: &[*tok],
                needs_logits: true,
            }],
            BS,
        );
        let got = model.forward(&b, &mut cache).expect("decode").remove(0);
        done += 1;
        worst = worst.max(check(name, &format!("decode {step}"), &got, want));
        if let Some((next, _)) = r.decode.get(step + 1) {
            assert_eq!(argmax(&got) as u32, *next, "{name}: greedy path diverges");
        }
    }
    worst
}

#[test]
fn one_prefill_then_greedy_decode_matches_transformers() {
    for name in fixtures() {
        let n = reference(name).prompt.len();
        let err = run_chunks(name, &[n]);
        eprintln!("{name}: prefill + decode max abs error {err:.2e}");
    }
}

#[test]
fn every_prefill_position_and_chunked_prefill_match() {
    for name in fixtures() {
        let n = reference(name).prompt.len();
        let every = run_chunks(name, &vec![1; n]);
        let chunked = run_chunks(name, &[5, 4, n - 9]);
        eprintln!("{name}: token-by-token {every:.2e}, chunks 5/4/3 {chunked:.2e}");
    }
}

/// The reference sequence shares steps with another one (prefill chunk beside a full
/// prefill, then decodes side by side); its logits must not move.
#[test]
fn batched_with_another_sequence_matches() {
    for name in fixtures() {
        let r = reference(name);
        let (mut model, mut cache) = setup(name);
        let (ta, tb): (Vec<u32>, Vec<u32>) = ((0..8).collect(), (8..16).collect());
        let other: Vec<u32> = r.prompt.iter().rev().map(|t| (t * 7 + 3) % 256).collect();
        let mut worst = 0f32;
        let steps: [(usize, usize); 2] = [(7, other.len()), (r.prompt.len() - 7, 0)];
        let (mut da, mut db) = (0, 0);
        for (na, nb) in steps {
            let mut parts = vec![Part {
                block_table: &ta,
                num_computed: da,
                tokens: &r.prompt[da..da + na],
                needs_logits: true,
            }];
            if nb > 0 {
                parts.push(Part {
                    block_table: &tb,
                    num_computed: db,
                    tokens: &other,
                    needs_logits: true,
                });
            }
            let out = model.forward(&batch(&parts, BS), &mut cache).expect("step");
            da += na;
            db += nb;
            worst = worst.max(check(name, "batched prefill", &out[0], &r.prefill[da - 1]));
        }
        for (tok, want) in &r.decode {
            let parts = [
                Part {
                    block_table: &ta,
                    num_computed: da,
                    tokens: &[*tok],
                    needs_logits: true,
                },
                Part {
                    block_table: &tb,
                    num_computed: db,
                    tokens: &[5],
                    needs_logits: false,
                },
            ];
            let out = model
                .forward(&batch(&parts, BS), &mut cache)
                .expect("decode");
            assert!(out[1].is_empty(), "logits only where asked");
            (da, db) = (da + 1, db + 1);
            worst = worst.max(check(name, "batched decode", &out[0], want));
        }
        eprintln!("{name}: batched max abs error {worst:.2e}");
    }
}

#[test]
fn spec_names_the_architecture() {
    for (name, arch, kv, hd) in [
        ("llama3", "llama", 2, 16),
        ("qwen2", "qwen2", 2, 16),
        ("qwen3", "qwen3", 2, 32),
        ("gemma3", "gemma3", 2, 32),
    ] {
        let l = load_safetensors_dir(&dir(name)).expect("load");
        assert_eq!(
            (
                l.spec.architecture.as_str(),
                l.spec.num_kv_heads,
                l.spec.head_dim
            ),
            (arch, kv, hd)
        );
    }
    let missing = load_safetensors_dir(&dir("no-such-model"));
    assert!(missing.is_err(), "a missing folder must not load");
}
