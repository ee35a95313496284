//! Quantize-on-load of Hugging Face folders and `hf -> GGUF` conversion, checked against
//! the tiny fixtures' transformers logits (scripts/reference/make_tiny_models.py).
mod common;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::Device;
use common::{argmax, batch, max_abs_diff, Part};
use hearth_models::hf_load::load_llama_dir_with;
use hearth_models::hf_to_gguf::hf_to_gguf;
use hearth_models::{load_gguf, load_safetensors_dir_with, CausalLm, KvCache, KvCacheLayout};
use serde_json::Value as Json;
use std::path::PathBuf;

const BS: usize = 4;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tiny/{name}"))
}

/// The prompt, the logits at its last position, then (token, logits) decode steps.
pub struct Reference {
    pub prompt: Vec<u32>,
    pub last: Vec<f32>,
    pub decode: Vec<(u32, Vec<f32>)>,
}

fn floats(v: &Json) -> Vec<f32> {
    let a = v.as_array().expect("logits");
    a.iter()
        .map(|x| x.as_f64().expect("logit") as f32)
        .collect()
}

pub fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).expect("reference");
    let j: Json = serde_json::from_str(&text).expect("json");
    let id = |v: &Json| v.as_u64().expect("id") as u32;
    let prefill = j["prefill"].as_array().expect("prefill");
    Reference {
        prompt: j["prompt"]
            .as_array()
            .expect("prompt")
            .iter()
            .map(id)
            .collect(),
        last: floats(prefill.last().expect("prefill logits")),
        decode: (j["decode"].as_array().expect("decode").iter())
            .map(|d| (id(&d["token"]), floats(&d["logits"])))
            .collect(),
    }
}

/// Prefill then the reference's decode tokens; returns (max abs error, top-1 agreements
/// out of steps, steps).
pub fn compare(model: &mut dyn CausalLm, r: &Reference) -> (f32, usize, usize) {
    let got = all_logits(model, r);
    let wants = std::iter::once(&r.last).chain(r.decode.iter().map(|(_, l)| l));
    let (mut worst, mut agree) = (0f32, 0);
    for (got, want) in got.iter().zip(wants) {
        worst = worst.max(max_abs_diff(got, want));
        agree += usize::from(argmax(got) == argmax(want));
    }
    (worst, agree, got.len())
}

/// Q8_0 weights (and hearth's Q8_0 kernel's 8-bit activations) move these fixtures'
/// logits (magnitude ~3) by 5.7e-2 to 6.9e-2 (measured: llama3, qwen2, qwen3), far
/// above f32 noise (~2e-6) and about half of `Q8_BOUND`; every step's top-1 must agree.
const Q8_BOUND: f32 = 0.15;

#[test]
fn q8_0_on_load_keeps_top1_and_a_small_error() {
    for name in ["llama3", "qwen2", "qwen3"] {
        let r = reference(name);
        let mut m = load_safetensors_dir_with(&fixture(name), Some(GgmlDType::Q8_0))
            .expect("load q8_0")
            .model;
        let (err, agree, steps) = compare(m.as_mut(), &r);
        eprintln!("{name} q8_0 on load: max abs error {err:.2e}, top-1 {agree}/{steps}");
        assert_eq!(agree, steps, "{name}: top-1 differs");
        assert!(err < Q8_BOUND, "{name}: error {err}");
        assert!(
            err > 1e-5,
            "{name}: error {err} too small, weights not quantized?"
        );
    }
}

/// Every step's logits of `compare`'s steps (prefill, then the reference's decodes).
fn all_logits(model: &mut dyn CausalLm, r: &Reference) -> Vec<Vec<f32>> {
    let s = model.spec().clone();
    let mut cache = KvCache::new(KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 16,
    });
    let table: Vec<u32> = (0..8).collect();
    let mut steps: Vec<&[u32]> = vec![&r.prompt];
    steps.extend(r.decode.iter().map(|(t, _)| std::slice::from_ref(t)));
    let mut done = 0;
    steps
        .into_iter()
        .map(|toks| {
            let parts = [Part {
                block_table: &table,
                num_computed: done,
                tokens: toks,
                needs_logits: true,
            }];
            done += toks.len();
            let input = batch(&parts, BS);
            model
                .forward(&input, &mut cache)
                .expect("forward")
                .remove(0)
        })
        .collect()
}

/// The buffered CPU layers (the default for matrices held by hearth's kernels) give
/// the bits of candle's tensor ops, with Qwen2's q/k/v biases and Qwen3's q/k norms.
#[test]
fn buffered_layers_give_the_bits_of_tensor_ops_on_qwen_extras() {
    for name in ["llama3", "qwen2", "qwen3"] {
        let r = reference(name);
        let load = |buffers: bool| {
            let mut m = load_llama_dir_with(&fixture(name), Some(GgmlDType::Q8_0)).expect("load");
            m.set_step_buffers(buffers).expect("set path");
            assert_eq!(m.step_buffers(), buffers, "{name}");
            m
        };
        let (mut a, mut b) = (load(true), load(false));
        let (la, lb) = (all_logits(&mut a, &r), all_logits(&mut b, &r));
        assert_eq!(la.len(), 1 + r.decode.len());
        for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
            let same =
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{name}: step {i}'s logits differ");
        }
    }
}

/// 4-bit and k-quant types load too (k-quants fall back to Q8_0 on these 64/128-wide
/// rows, as llama.cpp does). Measured: Q4_1 0.52, Q4_0 0.90, Q4K/Q6K 0.057 (= Q8_0),
/// F16 2.3e-3.
#[test]
fn other_types_load_and_stay_in_range() {
    let r = reference("llama3");
    for q in [
        GgmlDType::Q4_1,
        GgmlDType::Q4_0,
        GgmlDType::Q4K,
        GgmlDType::F16,
        GgmlDType::Q6K,
    ] {
        let mut m = load_safetensors_dir_with(&fixture("llama3"), Some(q))
            .expect("load")
            .model;
        let (err, agree, steps) = compare(m.as_mut(), &r);
        eprintln!("llama3 {q:?} on load: max abs error {err:.2e}, top-1 {agree}/{steps}");
        assert!(err < 1.5, "{q:?}: error {err}");
        assert!(agree * 2 > steps, "{q:?}: top-1 {agree}/{steps}");
    }
}

fn temp_gguf(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hearth-hf2gguf-{}-{tag}.gguf", std::process::id()))
}

/// Converts the fixture, loads it with hearth's GGUF loader (interleaved rope over the
/// permuted q/k rows, llama3 scaling from `rope_freqs.weight`), returns the error.
fn gguf_round_trip(q: GgmlDType) -> (f32, usize, usize) {
    let path = temp_gguf(&format!("{q:?}"));
    let summary = hf_to_gguf(&fixture("llama3"), &path, q).expect("convert");
    let loaded = load_gguf(&path);
    let _ = std::fs::remove_file(&path);
    let mut loaded = loaded.expect("load converted GGUF");
    assert_eq!(summary.architecture, "llama");
    // 2 layers x 9 tensors + embedding + output norm + rope_freqs (tied head).
    assert_eq!(summary.tensors, 2 * 9 + 3);
    assert_eq!(loaded.spec.num_kv_heads, 2);
    let md = &loaded.metadata;
    assert!(matches!(md.get("llama.block_count"), Some(Value::U32(2))));
    assert!(matches!(md.get("tokenizer.ggml.model"), Some(Value::String(s)) if s == "none"));
    compare(loaded.model.as_mut(), &reference("llama3"))
}

/// f32 GGUF: the same weights as the folder, only rope's pair layout differs, so the
/// error stays at f32 noise (same `TOL` as tiny_hf_models.rs).
#[test]
fn llama3_to_f32_gguf_matches_transformers() {
    let (err, agree, steps) = gguf_round_trip(GgmlDType::F32);
    eprintln!("llama3 -> f32 GGUF: max abs error {err:.2e}");
    assert_eq!(agree, steps);
    assert!(err < 1e-4, "error {err}");
}

#[test]
fn llama3_to_q8_0_gguf_stays_within_the_q8_bound() {
    let (err, agree, steps) = gguf_round_trip(GgmlDType::Q8_0);
    eprintln!("llama3 -> q8_0 GGUF: max abs error {err:.2e}");
    assert_eq!(agree, steps);
    assert!(err < Q8_BOUND && err > 1e-5, "error {err}");
}

/// qwen2/qwen3: llama.cpp's names, the unpermuted layout (q rows equal the folder's),
/// the per-architecture keys, and hearth's GGUF loader (neox rope, biases, q/k norms)
/// reproduces transformers at f32 noise.
#[test]
fn qwen_folders_convert_with_llama_cpp_names() {
    use candle_core::quantized::gguf_file::Content;
    for (name, extra) in [
        ("qwen2", "blk.1.attn_k.bias"),
        ("qwen3", "blk.1.attn_q_norm.weight"),
    ] {
        let path = temp_gguf(name);
        hf_to_gguf(&fixture(name), &path, GgmlDType::F32).expect("convert");
        let mut f = std::fs::File::open(&path).expect("open");
        let c = Content::read(&mut f).expect("read GGUF");
        let q = c
            .tensor(&mut f, "blk.0.attn_q.weight", &Device::Cpu)
            .expect("q");
        let loaded = load_gguf(&path);
        let _ = std::fs::remove_file(&path);
        let mut loaded = loaded.expect("load converted GGUF");
        assert_eq!(loaded.spec.architecture, name);
        let (err, agree, steps) = compare(loaded.model.as_mut(), &reference(name));
        eprintln!("{name} -> f32 GGUF: max abs error {err:.2e}");
        assert!(
            agree == steps && err < 1e-4,
            "{name}: error {err}, top-1 {agree}/{steps}"
        );
        assert!(c.tensor_infos.contains_key(extra), "{name}: no {extra}");
        assert!(
            matches!(c.metadata.get("general.architecture"), Some(Value::String(s)) if s == name)
        );
        assert!(c
            .metadata
            .contains_key(&format!("{name}.attention.head_count_kv")));
        let st = hearth_models::safetensors::SafetensorsDir::open(&fixture(name)).expect("st");
        let want = st.f32(
            "model.layers.0.self_attn.q_proj.weight",
            q.shape().dims(),
            &Device::Cpu,
        );
        let got = q.dequantize(&Device::Cpu).expect("deq");
        let diff = (got - want.expect("want")).and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>());
        assert_eq!(diff.expect("diff"), 0.0, "{name}: q rows moved");
    }
}
