//! A tiny random llama in GGUF: every supported weight dtype loads and matches a naive
//! f64 reference forward; bad files give errors, not panics.
mod common;
mod tiny_llama;

use candle_core::quantized::GgmlDType;
use common::{argmax, batch, max_abs_diff, Part};
use hearth_models::{load_gguf, CausalLm, KvCache, KvCacheLayout, ModelError};
use tiny_llama::{temp_path, Weights};

const TOKENS: [u32; 9] = [5, 17, 300, 2, 99, 99, 140, 7, 250];

fn cache(model: &dyn CausalLm) -> KvCache {
    let s = model.spec();
    KvCache::new(KvCacheLayout {
        num_layers: s.num_layers,
        num_kv_heads: s.num_kv_heads,
        head_dim: s.head_dim,
        block_size: 4,
        num_blocks: 8,
    })
}

fn load(w: &Weights, dtype: GgmlDType, tag: &str) -> Box<dyn CausalLm> {
    let path = temp_path(tag);
    w.write_gguf(&path, dtype, "llama");
    let loaded = load_gguf(&path);
    let _ = std::fs::remove_file(&path);
    let loaded = loaded.unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
    assert_eq!(loaded.spec.vocab_size, tiny_llama::VOCAB);
    assert_eq!(loaded.spec.head_dim, tiny_llama::HD);
    loaded.model
}

/// Feeds the prompt one token a step, so every position's logits come back.
fn per_position(model: &mut dyn CausalLm) -> Vec<Vec<f32>> {
    let mut c = cache(model);
    let table = [6, 1, 3];
    (0..TOKENS.len())
        .map(|i| {
            let b = batch(
                &[Part {
                    block_table: &table,
                    num_computed: i,
                    tokens: &TOKENS[i..=i],
                    needs_logits: true,
                }],
                4,
            );
            model.forward(&b, &mut c).expect("forward").remove(0)
        })
        .collect()
}

#[test]
fn f32_weights_match_naive_reference_at_every_position() {
    for tied in [false, true] {
        let w = Weights::random(42, tied);
        let reference = w.reference(&TOKENS);
        let mut model = load(&w, GgmlDType::F32, &format!("f32-{tied}"));
        let got = per_position(model.as_mut());
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            let err = max_abs_diff(g, r);
            assert!(err < 1e-4, "tied {tied} position {i}: max abs err {err}");
        }
        // One prefill of the whole prompt gives the last position's logits too.
        let mut c = cache(model.as_ref());
        let b = batch(
            &[Part {
                block_table: &[2, 0, 7],
                num_computed: 0,
                tokens: &TOKENS,
                needs_logits: true,
            }],
            4,
        );
        let last = model.forward(&b, &mut c).expect("prefill").remove(0);
        let err = max_abs_diff(&last, &reference[TOKENS.len() - 1]);
        assert!(err < 1e-4, "tied {tied} prefill: max abs err {err}");
    }
}

#[test]
fn every_weight_dtype_loads_and_tracks_the_reference() {
    let w = Weights::random(7, true);
    let reference = w.reference(&TOKENS);
    let last_ref = &reference[TOKENS.len() - 1];
    let scale = last_ref.iter().fold(0f32, |m, x| m.max(x.abs()));
    // Bounds relative to the largest |logit|: quantization noise grows as bits shrink.
    let cases = [
        (GgmlDType::F16, 0.005),
        (GgmlDType::BF16, 0.03),
        (GgmlDType::Q8_0, 0.03),
        (GgmlDType::Q6K, 0.05),
        (GgmlDType::Q5K, 0.15),
        (GgmlDType::Q4K, 0.2),
        (GgmlDType::Q4_1, 0.2),
        (GgmlDType::Q4_0, 0.2),
    ];
    for (dtype, bound) in cases {
        let mut model = load(&w, dtype, &format!("{dtype:?}"));
        let mut c = cache(model.as_ref());
        let b = batch(
            &[Part {
                block_table: &[3, 4, 5],
                num_computed: 0,
                tokens: &TOKENS,
                needs_logits: true,
            }],
            4,
        );
        let got = model.forward(&b, &mut c).expect("forward").remove(0);
        let rel = max_abs_diff(&got, last_ref) / scale;
        eprintln!(
            "{dtype:?}: max abs err / max |logit| = {rel:.4}, top-1 {} vs {}",
            argmax(&got),
            argmax(last_ref)
        );
        assert!(
            got.iter().all(|x| x.is_finite()),
            "{dtype:?}: non-finite logits"
        );
        assert!(rel < bound, "{dtype:?}: relative error {rel} over {bound}");
    }
}

/// The form the GPU backend loads (`MatrixForm::Stored`: the file's blocks untouched,
/// multiplied by candle on the CPU here) is the same model as the dense one: its logits
/// track the dequantized model's within the noise of candle's 8-bit activations.
#[test]
fn stored_matrices_compute_the_same_model_as_dense_ones() {
    use hearth_models::quant::MatrixForm;
    let w = Weights::random(11, true);
    for dtype in [
        GgmlDType::Q8_0,
        GgmlDType::Q4_1,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ] {
        let path = temp_path(&format!("stored-{dtype:?}"));
        w.write_gguf(&path, dtype, "llama");
        let run = |form: MatrixForm| -> Vec<f32> {
            let mut file = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
            let content =
                hearth_models::gguf_read::read_content(&mut file, "tiny").expect("content");
            let mut model =
                hearth_models::llama::load_as(&content, &mut file, &candle_core::Device::Cpu, form)
                    .unwrap_or_else(|e| panic!("{dtype:?} {form:?}: {e}"));
            let mut c = cache(&model);
            let b = batch(
                &[Part {
                    block_table: &[3, 4, 5],
                    num_computed: 0,
                    tokens: &TOKENS,
                    needs_logits: true,
                }],
                4,
            );
            model.forward(&b, &mut c).expect("forward").remove(0)
        };
        let (stored, dense) = (run(MatrixForm::Stored), run(MatrixForm::Dense));
        let _ = std::fs::remove_file(&path);
        let scale = dense.iter().fold(0f32, |m, x| m.max(x.abs()));
        let rel = max_abs_diff(&stored, &dense) / scale;
        assert!(rel < 0.05, "{dtype:?}: stored vs dense {rel}");
        // Not the dense path under another name: candle multiplies stored blocks with
        // 8-bit activations, so the logits differ a little.
        assert!(rel > 0.0, "{dtype:?}: stored form computed densely");
        assert_eq!(argmax(&stored), argmax(&dense), "{dtype:?}");
    }
}

#[test]
fn bad_files_are_errors() {
    let w = Weights::random(1, true);
    let path = temp_path("arch");
    w.write_gguf(&path, GgmlDType::F32, "mamba");
    let r = load_gguf(&path);
    assert!(
        matches!(r, Err(ModelError::Unsupported(ref m)) if m.contains("mamba")),
        "{:?}",
        r.err()
    );
    std::fs::write(&path, b"not a gguf file at all").expect("write");
    assert!(matches!(load_gguf(&path), Err(ModelError::Invalid(_))));
    let _ = std::fs::remove_file(&path);
    assert!(matches!(load_gguf(&path), Err(ModelError::Io { .. })));

    // A missing layer tensor names itself.
    let mut w = Weights::random(1, true);
    w.0.retain(|(n, _, _)| n != "blk.1.ffn_up.weight");
    w.write_gguf(&path, GgmlDType::F32, "llama");
    let r = load_gguf(&path);
    let _ = std::fs::remove_file(&path);
    assert!(
        matches!(r, Err(ModelError::Invalid(ref m)) if m.contains("blk.1.ffn_up.weight")),
        "{:?}",
        r.err()
    );
}

#[test]
fn bad_batches_are_errors() {
    let w = Weights::random(3, true);
    let mut model = load(&w, GgmlDType::F32, "batch");
    let mut c = cache(model.as_ref());
    let mut b = batch(
        &[Part {
            block_table: &[0],
            num_computed: 0,
            tokens: &[1, 2],
            needs_logits: true,
        }],
        4,
    );
    b.tokens[1] = tiny_llama::VOCAB as u32;
    assert!(
        matches!(model.forward(&b, &mut c), Err(ModelError::BadBatch(_))),
        "token outside vocab accepted"
    );
    let b = batch(
        &[Part {
            block_table: &[0],
            num_computed: 0,
            tokens: &[1, 2],
            needs_logits: true,
        }],
        4,
    );
    let mut wrong = KvCache::new(KvCacheLayout {
        num_kv_heads: 1,
        ..c.layout
    });
    assert!(
        matches!(model.forward(&b, &mut wrong), Err(ModelError::BadBatch(_))),
        "wrong cache shape accepted"
    );
    assert_eq!(
        model.forward(&b, &mut c).expect("valid batch")[0].len(),
        tiny_llama::VOCAB
    );
}
