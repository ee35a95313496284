//! A model may choose a greedy sequence's token itself (`CausalLm::step`, e.g. an argmax
//! on the GPU): the engine marks exactly the sequences whose sampling is a plain argmax,
//! and a token the model returns is used as if sampled from the logits.

mod fake_model;

use std::sync::{Arc, Mutex};

use hearth_engine::{EngineConfig, EngineHandle, Event, Request, SamplingParams};
use hearth_models::{BatchInput, CausalLm, KvCache, ModelError, ModelSpec, Next};

const VOCAB: usize = 256;
/// The largest logit; the next largest is `RUNNER_UP`.
const TOP: u32 = 65;
const RUNNER_UP: u32 = 66;

/// Logits with TOP first; returns TOP as a token where asked for an argmax, and
/// records (prompt length, greedy flag) for every sequence that wanted logits.
struct ArgmaxModel {
    spec: ModelSpec,
    seen: Arc<Mutex<Vec<(u32, bool)>>>,
}

impl CausalLm for ArgmaxModel {
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
        Ok(batch
            .seqs
            .iter()
            .map(|s| {
                if !s.needs_logits {
                    return Vec::new();
                }
                let mut l = vec![0.0; VOCAB];
                l[TOP as usize] = 2.0;
                l[RUNNER_UP as usize] = 1.0;
                l
            })
            .collect())
    }

    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let logits = self.forward(batch, cache)?;
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| ModelError::BadBatch("lock".into()))?;
        let mut row = 0;
        let mut out = Vec::new();
        for (s, l) in batch.seqs.iter().zip(logits) {
            // The first token of a sequence tells which request it is: its prompt length.
            if s.needs_logits {
                seen.push((batch.tokens[row], s.greedy));
            }
            row += s.num_new;
            out.push(if s.greedy {
                Next::Token(TOP)
            } else {
                Next::Logits(l)
            });
        }
        Ok(out)
    }
}

#[test]
fn plain_greedy_sequences_take_the_models_token() {
    let tokenizer = fake_model::tiny_tokenizer();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let model = ArgmaxModel {
        spec: fake_model::tiny_spec(VOCAB),
        seen: seen.clone(),
    };
    let engine = EngineHandle::start(Box::new(model), tokenizer, EngineConfig::default())
        .expect("engine starts");
    let base = SamplingParams {
        temperature: 0.0,
        max_tokens: 3,
        ignore_eos: true,
        ..SamplingParams::default()
    };
    // Each request's prompt is one token that names it.
    let requests = [
        (101u32, base.clone()),
        (
            102,
            SamplingParams {
                logprobs: Some(1),
                ..base.clone()
            },
        ),
        (
            103,
            SamplingParams {
                repetition_penalty: 1.2,
                ..base.clone()
            },
        ),
        // min_tokens bans EOS until 2 tokens are out.
        (
            104,
            SamplingParams {
                min_tokens: 2,
                ignore_eos: false,
                ..base.clone()
            },
        ),
        (
            105,
            SamplingParams {
                temperature: 0.7,
                seed: Some(1),
                ..base.clone()
            },
        ),
        (
            106,
            SamplingParams {
                logit_bias: vec![(RUNNER_UP, 5.0)],
                ..base.clone()
            },
        ),
        // min_tokens with EOS ignored and no stop ids bans nothing: plain greedy.
        (
            107,
            SamplingParams {
                min_tokens: 3,
                ..base.clone()
            },
        ),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let outputs: Vec<Vec<u32>> = rt.block_on(async {
        let mut streams: Vec<_> = requests
            .iter()
            .map(|(tag, params)| {
                let r = Request {
                    prompt_ids: vec![*tag],
                    params: params.clone(),
                };
                engine.submit(r).expect("submit")
            })
            .collect();
        let mut all = Vec::new();
        for st in &mut streams {
            let mut toks = Vec::new();
            while let Some(ev) = st.next().await {
                if let Event::Delta { token_ids, .. } = ev {
                    toks.extend(token_ids);
                }
            }
            all.push(toks);
        }
        all
    });
    // The bias moves 106 to the runner-up; every other request picks TOP each time.
    assert_eq!(outputs[5], vec![RUNNER_UP; 3]);
    for out in &outputs[..4] {
        assert_eq!(out, &vec![TOP; 3]);
    }
    assert_eq!(outputs[4].len(), 3);
    let seen = seen.lock().expect("lock").clone();
    let flags = |tag: u32| -> Vec<bool> {
        // A sequence's later steps feed its generated token, not its tag: only the
        // prefill step (the first) is attributable by tag.
        seen.iter()
            .filter(|(t, _)| *t == tag)
            .map(|&(_, g)| g)
            .collect()
    };
    assert_eq!(flags(101), vec![true], "plain greedy");
    assert_eq!(flags(107), vec![true], "min_tokens banning nothing");
    assert_eq!(outputs[6], vec![TOP; 3]);
    for tag in [102, 103, 104, 105, 106] {
        assert_eq!(flags(tag), vec![false], "request {tag} needs the logits");
    }
    // Decode steps feed TOP (or RUNNER_UP for 106): plain greedy 101 and 107 and, once
    // its two minimum tokens are out, 104 are greedy there.
    let decode_greedy = seen.iter().filter(|(t, g)| *t == TOP && *g).count();
    assert_eq!(
        decode_greedy,
        2 + 2 + 1,
        "101's and 107's two decode steps and 104's last"
    );
}
