//! The engine hands every logits vector back to the model once it has sampled from it
//! (`CausalLm::recycle`), so a model can refill the same vectors every step.

mod fake_model;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hearth_engine::{EngineConfig, EngineHandle, Event, Request, SamplingParams};
use hearth_models::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec};

const VOCAB: usize = 256;

/// Counts the logits vectors it hands out and gets back; greedy picks token 65.
struct CountingModel {
    spec: ModelSpec,
    out: Arc<AtomicUsize>,
    back: Arc<AtomicUsize>,
}

impl CausalLm for CountingModel {
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
        Ok(fake_model::logits_where_needed(batch, || {
            self.out.fetch_add(1, Ordering::SeqCst);
            let mut l = vec![0.0; VOCAB];
            l[65] = 1.0;
            l
        }))
    }

    fn recycle(&mut self, logits: Vec<Vec<f32>>) {
        self.back.fetch_add(logits.len(), Ordering::SeqCst);
    }
}

#[test]
fn every_logits_vector_comes_back() {
    let tokenizer = fake_model::tiny_tokenizer();
    let (out, back) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let model = CountingModel {
        spec: fake_model::tiny_spec(VOCAB),
        out: out.clone(),
        back: back.clone(),
    };
    let engine = EngineHandle::start(Box::new(model), tokenizer, EngineConfig::default())
        .expect("engine starts");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tokens = rt.block_on(async {
        let mut streams: Vec<_> = (0..3u32)
            .map(|s| {
                let params = SamplingParams {
                    temperature: 0.0,
                    max_tokens: 5,
                    ignore_eos: true,
                    ..SamplingParams::default()
                };
                let prompt_ids = (0..10 + s).map(|i| 70 + i).collect();
                engine
                    .submit(Request { prompt_ids, params })
                    .expect("submit")
            })
            .collect();
        let mut n = 0;
        for st in &mut streams {
            while let Some(ev) = st.next().await {
                if let Event::Delta { token_ids, .. } = ev {
                    assert_eq!(token_ids, vec![65]);
                    n += token_ids.len();
                }
            }
        }
        n
    });
    assert_eq!(tokens, 15);
    // The last step's vectors go back after its tokens are sent: wait for the engine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while back.load(Ordering::SeqCst) < out.load(Ordering::SeqCst)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(out.load(Ordering::SeqCst), 15);
    assert_eq!(back.load(Ordering::SeqCst), 15);
}
