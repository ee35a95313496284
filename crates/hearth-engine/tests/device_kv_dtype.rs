//! A model that keeps K/V on its device (the GPU model) gets no host pool, but the
//! cache it is handed carries the configured `kv_cache_dtype` and as many blocks as
//! the budget holds in that dtype: the GPU model sizes its own pools from both.

mod fake_model;

use std::sync::{Arc, Mutex};

use hearth_engine::{EngineConfig, EngineHandle, Event, Request, SamplingParams};
use hearth_models::{BatchInput, CausalLm, KvCache, KvDtype, ModelError, ModelSpec};

const VOCAB: usize = 64;

/// What a forward call saw of the cache: dtype, blocks, host pools.
type Seen = Arc<Mutex<Vec<(KvDtype, usize, usize)>>>;

struct DeviceModel {
    spec: ModelSpec,
    seen: Seen,
}

impl CausalLm for DeviceModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn kv_on_device(&self) -> bool {
        true
    }

    fn forward(
        &mut self,
        batch: &BatchInput,
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        self.seen
            .lock()
            .map_err(|_| ModelError::BadBatch("lock".into()))?
            .push((cache.dtype, cache.layout.num_blocks, cache.k.len()));
        Ok(fake_model::logits_where_needed(batch, || vec![0.0; VOCAB]))
    }
}

/// One request of two tokens through an engine over `dtype`; what the model saw.
fn run(dtype: KvDtype) -> Vec<(KvDtype, usize, usize)> {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let model = DeviceModel {
        spec: fake_model::tiny_spec(VOCAB),
        seen: seen.clone(),
    };
    let config = EngineConfig {
        kv_cache_dtype: dtype,
        kv_cache_bytes: 1 << 20,
        ..EngineConfig::default()
    };
    let engine = EngineHandle::start(Box::new(model), fake_model::tiny_tokenizer(), config)
        .expect("engine starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tokens = rt.block_on(async {
        let mut st = engine
            .submit(Request {
                prompt_ids: vec![5, 6, 7],
                params: SamplingParams {
                    max_tokens: 2,
                    ignore_eos: true,
                    ..SamplingParams::default()
                },
            })
            .expect("submit");
        let mut n = 0;
        while let Some(ev) = st.next().await {
            if let Event::Delta { token_ids, .. } = ev {
                n += token_ids.len();
            }
        }
        n
    });
    assert_eq!(tokens, 2);
    let seen = seen.lock().expect("lock");
    seen.clone()
}

#[test]
fn a_device_model_sees_the_configured_kv_dtype_and_its_block_count() {
    let f32s = run(KvDtype::F32);
    let f16s = run(KvDtype::F16);
    assert!(!f32s.is_empty() && !f16s.is_empty());
    // Tiny spec: 2 layers x 1 KV head x 4 dims x 16 tokens a block, K and V.
    let block = |bytes: usize| 2 * 2 * 16 * 4 * bytes;
    for (seen, dtype, bytes) in [(&f32s, KvDtype::F32, 4), (&f16s, KvDtype::F16, 2)] {
        for &(d, blocks, host_pools) in seen.iter() {
            assert_eq!(d, dtype);
            assert_eq!(blocks, (1 << 20) / block(bytes));
            assert_eq!(host_pools, 0, "no host pool for a device model");
        }
    }
    assert_eq!(f16s[0].1, 2 * f32s[0].1, "f16 holds twice the blocks");
}
