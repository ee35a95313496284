//! A Gemma 3 multimodal checkpoint (4B and larger: `Gemma3ForConditionalGeneration`)
//! runs as text only: the tiny gemma3 fixture re-saved in that layout (decoder under
//! `language_model.model.`, config under `text_config`, a vision tensor beside it) must
//! give the same logits as the text-only fixture's transformers reference.
mod common;

use candle_core::{Device, Tensor};
use common::{argmax, batch, max_abs_diff, Part};
use hearth_models::{load_safetensors_dir, KvCache, KvCacheLayout};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

const BS: usize = 4;

#[test]
fn conditional_generation_layout_loads_its_text_part() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/gemma3");
    let dst = std::env::temp_dir().join(format!("hearth-gemma3-mm-{}", std::process::id()));
    std::fs::create_dir_all(&dst).expect("temp dir");
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu)
        .expect("fixture tensors");
    let mut renamed: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (format!("language_model.{k}"), v))
        .collect();
    let vision = Tensor::zeros((4, 4), candle_core::DType::F32, &Device::Cpu).expect("zeros");
    renamed.insert("vision_tower.vision_model.dummy.weight".into(), vision);
    candle_core::safetensors::save(&renamed, dst.join("model.safetensors")).expect("save");
    let text: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config"))
            .expect("config json");
    let config = json!({"architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3", "text_config": text, "vision_config": {"hidden_size": 4}});
    std::fs::write(dst.join("config.json"), config.to_string()).expect("write config");

    let loaded = load_safetensors_dir(&dst);
    let _ = std::fs::remove_dir_all(&dst);
    let loaded = loaded.expect("load multimodal layout");
    assert_eq!(loaded.spec.architecture, "gemma3");
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("reference.json")).expect("reference"),
    )
    .expect("reference json");
    let prompt: Vec<u32> = (r["prompt"].as_array().expect("prompt").iter())
        .map(|v| v.as_u64().expect("id") as u32)
        .collect();
    let want: Vec<f32> = (r["prefill"]
        .as_array()
        .expect("prefill")
        .last()
        .expect("row"))
    .as_array()
    .expect("logits")
    .iter()
    .map(|x| x.as_f64().expect("logit") as f32)
    .collect();
    let s = loaded.spec.clone();
    let mut model = loaded.model;
    let mut cache = KvCache::new(KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: BS,
        num_blocks: 4,
    });
    let b = batch(
        &[Part {
            block_table: &[3, 1, 0],
            num_computed: 0,
            tokens: &prompt,
            needs_logits: true,
        }],
        BS,
    );
    let got = model.forward(&b, &mut cache).expect("forward").remove(0);
    let err = max_abs_diff(&got, &want);
    assert_eq!(argmax(&got), argmax(&want));
    assert!(err < 1e-4, "max abs error {err}");
}
