//! The tiny gemma3 fixture converted to an F32 GGUF file (llama.cpp's `gemma3` layout)
//! and loaded back: logits at every prefill position and every decode step against
//! transformers' reference, and the file's layout (norms stored `1 + w`, the keys
//! hearth adds where llama.cpp's defaults differ from the fixture).
//!
//! Bound: F32 tensors are copied exactly and the norm's `+ 1` is the same f32 add the
//! safetensors loader does, so the GGUF model computes what the safetensors one does;
//! `TOL` = 1e-4 is tiny_hf_models.rs's bound (measured 3.2e-6 there, top-1 margin 4.9e-2).
mod common;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::Device;
use common::{argmax, batch, max_abs_diff, Part};
use hearth_models::quantize::GgmlDType;
use hearth_models::safetensors::SafetensorsDir;
use hearth_models::{load_gguf, KvCache, KvCacheLayout};
use serde_json::Value as Json;
use std::path::PathBuf;

const TOL: f32 = 1e-4;
const BS: usize = 4;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/gemma3")
}

fn floats(v: &Json) -> Vec<f32> {
    (v.as_array().expect("logits").iter())
        .map(|x| x.as_f64().expect("logit") as f32)
        .collect()
}

fn convert(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-gemma3-gguf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dst = dir.join("gemma3.gguf");
    let s = hearth_models::hf_to_gguf::hf_to_gguf(&fixture(), &dst, GgmlDType::F32)
        .expect("convert gemma3");
    assert_eq!(s.architecture, "gemma3");
    // token_embd, output_norm, 13 per layer (tied: no output.weight).
    assert_eq!(s.tensors, 2 + 13 * 3);
    dst
}

#[test]
fn f32_gguf_matches_transformers_at_every_position() {
    let path = convert("logits");
    let text = std::fs::read_to_string(fixture().join("reference.json")).expect("reference");
    let r: Json = serde_json::from_str(&text).expect("json");
    let prompt: Vec<u32> = (r["prompt"].as_array().expect("prompt").iter())
        .map(|t| t.as_u64().expect("id") as u32)
        .collect();
    let loaded = load_gguf(&path).expect("load gguf");
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    let s = loaded.spec.clone();
    assert_eq!(
        (s.architecture.as_str(), s.num_layers, s.vocab_size),
        ("gemma3", 3, 256)
    );
    let mut model = loaded.model;
    let layout = KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 16,
    };
    let mut cache = KvCache::new(layout);
    let table: Vec<u32> = (0..8).map(|i| 15 - i).collect();
    let mut wants: Vec<(u32, Vec<f32>)> = (prompt.iter().enumerate())
        .map(|(i, &t)| (t, floats(&r["prefill"][i])))
        .collect();
    for d in r["decode"].as_array().expect("decode") {
        wants.push((
            d["token"].as_u64().expect("id") as u32,
            floats(&d["logits"]),
        ));
    }
    let mut worst = 0f32;
    for (pos, (tok, want)) in wants.iter().enumerate() {
        let b = batch(
            &[Part {
                block_table: &table,
                num_computed: pos,
                tokens: &[*tok],
                needs_logits: true,
            }],
            BS,
        );
        let got = model.forward(&b, &mut cache).expect("forward").remove(0);
        let err = max_abs_diff(&got, want);
        assert_eq!(argmax(&got), argmax(want), "position {pos}: top-1 differs");
        assert!(err < TOL, "position {pos}: max abs error {err}");
        worst = worst.max(err);
    }
    eprintln!(
        "gemma3 F32 GGUF: max abs error {worst:.2e} over {} positions",
        wants.len()
    );
}

#[test]
fn file_has_llama_cpp_layout_and_the_keys_hearth_needs() {
    let path = convert("layout");
    let mut f = std::fs::File::open(&path).expect("open");
    let c = Content::read(&mut f).expect("gguf");
    let md = &c.metadata;
    let st = SafetensorsDir::open(&fixture()).expect("safetensors");
    let cpu = &Device::Cpu;
    // llama.cpp applies norm weights as stored: the converter adds Gemma's 1.
    let stored = c
        .tensor(&mut f, "blk.0.attn_norm.weight", cpu)
        .expect("norm");
    let stored: Vec<f32> = stored
        .dequantize(cpu)
        .and_then(|t| t.to_vec1())
        .expect("vec");
    let hf: Vec<f32> = (st.f32("model.layers.0.input_layernorm.weight", &[64], cpu))
        .and_then(|t| Ok(t.to_vec1::<f32>()?))
        .expect("hf norm");
    let plus1: Vec<f32> = hf.iter().map(|w| w + 1.0).collect();
    assert_eq!(stored, plus1);
    // q is not permuted (llama.cpp ropes Gemma neox-style).
    let q = c.tensor(&mut f, "blk.1.attn_q.weight", cpu).expect("q");
    let q: Vec<f32> = q
        .dequantize(cpu)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .expect("q");
    let hq: Vec<f32> = (st.f32("model.layers.1.self_attn.q_proj.weight", &[128, 64], cpu))
        .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
        .expect("hf q");
    assert_eq!(q, hq);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    let get = |k: &str| md.get(&format!("gemma3.{k}"));
    assert!(matches!(md.get("general.architecture"), Some(Value::String(a)) if a == "gemma3"));
    assert!(matches!(
        get("attention.sliding_window"),
        Some(Value::U32(4))
    ));
    assert!(matches!(get("rope.freq_base"), Some(Value::F32(f)) if *f == 1e6));
    assert!(matches!(get("rope.scaling.type"), Some(Value::String(t)) if t == "linear"));
    assert!(matches!(get("rope.scaling.factor"), Some(Value::F32(f)) if *f == 2.0));
    assert!(matches!(get("final_logit_softcapping"), Some(Value::F32(f)) if *f == 8.0));
    // The fixture slides on layers 0 and 2 (pattern 2), not llama.cpp's default of 6,
    // and its query_pre_attn_scalar (24) is not llama.cpp's head_dim (32).
    let Some(Value::Array(p)) = get("attention.sliding_window_pattern") else {
        panic!("no per-layer sliding pattern");
    };
    let p: Vec<bool> = p.iter().map(|v| matches!(v, Value::Bool(true))).collect();
    assert_eq!(p, [true, false, true]);
    assert!(matches!(get("attention.query_pre_attn_scalar"), Some(Value::F32(f)) if *f == 24.0));
    assert!(get("rope.freq_base_swa").is_none()); // 10000, llama.cpp's default
}
