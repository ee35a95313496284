//! A model may return less than a sequence's logits (`CausalLm::step`, e.g. an argmax
//! or the row's head computed on the GPU): the engine marks exactly the sequences whose
//! sampling is a plain argmax or a plain temperature draw, uses a token the model
//! returns as if sampled from the logits, and draws from a head exactly as from the
//! row, fetching the row where the head does not decide.

mod fake_model;

use std::sync::{Arc, Mutex};

use hearth_engine::{EngineConfig, EngineHandle, Event, Request, SamplingParams};
use hearth_models::{
    BatchInput, CausalLm, KvCache, ModelError, ModelSpec, Next, Pick, TopLogits, TOP_CANDIDATES,
};

const VOCAB: usize = 256;
/// The largest logit; the next largest is `RUNNER_UP`.
const TOP: u32 = 65;
const RUNNER_UP: u32 = 66;

/// Logits with TOP first; returns TOP as a token where asked for an argmax, a
/// one-candidate head where asked for a draw, and records (first token, pick) for
/// every sequence that wanted logits.
struct ArgmaxModel {
    spec: ModelSpec,
    seen: Arc<Mutex<Vec<(u32, Pick)>>>,
    last: Vec<Vec<f32>>,
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
        Ok(fake_model::logits_where_needed(batch, || {
            let mut l = vec![0.0; VOCAB];
            l[TOP as usize] = 2.0;
            l[RUNNER_UP as usize] = 1.0;
            l
        }))
    }

    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let logits = self.forward(batch, cache)?;
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| ModelError::BadBatch("lock".into()))?;
        let mut row = 0;
        let mut out = Vec::new();
        for (s, l) in batch.seqs.iter().zip(&logits) {
            // The first token of a sequence tells which request it is: its prompt length.
            if s.needs_logits {
                seen.push((batch.tokens[row], s.pick));
            }
            row += s.num_new;
            out.push(match s.pick {
                Pick::Argmax => Next::Token(TOP),
                Pick::Sample { temperature } => Next::Top(TopLogits::of_row(l, temperature, 1)),
                Pick::Row => Next::Logits(l.clone()),
            });
        }
        self.last = logits;
        Ok(out)
    }

    fn last_logits(&mut self, seq: usize) -> Result<Vec<f32>, ModelError> {
        row_of(&self.last, seq)
    }
}

/// Row `seq` of the last step's logits, as a model keeps them for `last_logits`.
fn row_of(last: &[Vec<f32>], seq: usize) -> Result<Vec<f32>, ModelError> {
    last.get(seq)
        .cloned()
        .ok_or_else(|| ModelError::BadBatch(format!("no sequence {seq}")))
}

/// Submits every request at once and collects each one's tokens.
fn generate(engine: &EngineHandle, requests: impl Iterator<Item = Request>) -> Vec<Vec<u32>> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut streams: Vec<_> = requests
            .map(|r| engine.submit(r).expect("submit"))
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
    })
}

#[test]
fn plain_greedy_sequences_take_the_models_token() {
    let tokenizer = fake_model::tiny_tokenizer();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let model = ArgmaxModel {
        spec: fake_model::tiny_spec(VOCAB),
        seen: seen.clone(),
        last: Vec::new(),
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
    let outputs = generate(
        &engine,
        requests.iter().map(|(tag, params)| Request {
            prompt_ids: vec![*tag],
            params: params.clone(),
        }),
    );
    // The bias moves 106 to the runner-up; every other request picks TOP each time.
    assert_eq!(outputs[5], vec![RUNNER_UP; 3]);
    for out in &outputs[..4] {
        assert_eq!(out, &vec![TOP; 3]);
    }
    assert_eq!(outputs[4].len(), 3);
    let seen = seen.lock().expect("lock").clone();
    let flags = |tag: u32| -> Vec<Pick> {
        // A sequence's later steps feed its generated token, not its tag: only the
        // prefill step (the first) is attributable by tag.
        seen.iter()
            .filter(|(t, _)| *t == tag)
            .map(|&(_, g)| g)
            .collect()
    };
    assert_eq!(flags(101), vec![Pick::Argmax], "plain greedy");
    assert_eq!(flags(107), vec![Pick::Argmax], "min_tokens banning nothing");
    assert_eq!(outputs[6], vec![TOP; 3]);
    assert_eq!(flags(105), vec![Pick::Sample { temperature: 0.7 }]);
    for tag in [102, 103, 104, 106] {
        assert_eq!(
            flags(tag),
            vec![Pick::Row],
            "request {tag} needs the logits"
        );
    }
    // Decode steps feed TOP (or RUNNER_UP for 106): plain greedy 101 and 107 and, once
    // its two minimum tokens are out, 104 are greedy there.
    let decode_greedy = seen
        .iter()
        .filter(|(t, g)| *t == TOP && *g == Pick::Argmax)
        .count();
    assert_eq!(
        decode_greedy,
        2 + 2 + 1,
        "101's and 107's two decode steps and 104's last"
    );
}

/// Logits that vary with the step (a hash of each sequence's last token and
/// position), peaked enough that a small head often decides a draw and often not.
/// With `head` set it answers draws with heads of that many candidates and counts the
/// rows the engine fetches; without, it returns rows only (the engine's own path).
struct DrawModel {
    spec: ModelSpec,
    head: Option<usize>,
    last: Vec<Vec<f32>>,
    fetched: Arc<Mutex<(usize, usize)>>,
}

impl CausalLm for DrawModel {
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
        let mut end = 0;
        Ok(batch
            .seqs
            .iter()
            .map(|s| {
                end += s.num_new;
                if !s.needs_logits {
                    return Vec::new();
                }
                let mut state =
                    (batch.tokens[end - 1] as u64) << 32 | batch.positions[end - 1] as u64;
                (0..VOCAB)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                        // A few tall logits over a flat floor.
                        if u > 0.97 {
                            6.0 * u
                        } else {
                            2.0 * u
                        }
                    })
                    .collect()
            })
            .collect())
    }

    fn step(&mut self, batch: &BatchInput, cache: &mut KvCache) -> Result<Vec<Next>, ModelError> {
        let logits = self.forward(batch, cache)?;
        let Some(keep) = self.head else {
            return Ok(logits.into_iter().map(Next::Logits).collect());
        };
        let out = batch
            .seqs
            .iter()
            .zip(&logits)
            .map(|(s, l)| match s.pick {
                Pick::Sample { temperature } => Next::Top(TopLogits::of_row(l, temperature, keep)),
                _ => Next::Logits(l.clone()),
            })
            .collect();
        let mut f = self
            .fetched
            .lock()
            .map_err(|_| ModelError::BadBatch("lock".into()))?;
        f.1 += batch
            .seqs
            .iter()
            .filter(|s| matches!(s.pick, Pick::Sample { .. }))
            .count();
        self.last = logits;
        Ok(out)
    }

    fn last_logits(&mut self, seq: usize) -> Result<Vec<f32>, ModelError> {
        self.fetched
            .lock()
            .map_err(|_| ModelError::BadBatch("lock".into()))?
            .0 += 1;
        row_of(&self.last, seq)
    }
}

/// Seeded temperature draws (plain, top-k, top-p, min-p, a top-k larger than the
/// head) give the same tokens whether the model returns rows or heads.
#[test]
fn draws_from_heads_give_the_rows_tokens() {
    let base = SamplingParams {
        temperature: 0.8,
        max_tokens: 24,
        ignore_eos: true,
        seed: Some(5),
        ..SamplingParams::default()
    };
    let params = [
        base.clone(),
        SamplingParams {
            temperature: 1.5,
            seed: Some(6),
            ..base.clone()
        },
        SamplingParams {
            top_k: 3,
            seed: Some(7),
            ..base.clone()
        },
        SamplingParams {
            top_k: 100,
            seed: Some(8),
            ..base.clone()
        },
        SamplingParams {
            top_p: 0.6,
            seed: Some(9),
            ..base.clone()
        },
        SamplingParams {
            top_p: 0.95,
            seed: Some(10),
            ..base.clone()
        },
        SamplingParams {
            min_p: 0.3,
            seed: Some(11),
            ..base.clone()
        },
        SamplingParams {
            min_p: 0.01,
            top_p: 0.9,
            top_k: 50,
            seed: Some(12),
            ..base.clone()
        },
    ];
    let run = |head: Option<usize>| {
        let fetched = Arc::new(Mutex::new((0, 0)));
        let model = DrawModel {
            spec: fake_model::tiny_spec(VOCAB),
            head,
            last: Vec::new(),
            fetched: fetched.clone(),
        };
        let engine = EngineHandle::start(
            Box::new(model),
            fake_model::tiny_tokenizer(),
            EngineConfig::default(),
        )
        .expect("engine starts");
        let outs = generate(
            &engine,
            params.iter().enumerate().map(|(i, p)| Request {
                prompt_ids: vec![100 + i as u32, 7],
                params: p.clone(),
            }),
        );
        let f = *fetched.lock().expect("lock");
        (outs, f)
    };
    let (rows, _) = run(None);
    let (heads, (fetched, drawn)) = run(Some(TOP_CANDIDATES));
    for (i, (a, b)) in rows.iter().zip(&heads).enumerate() {
        assert_eq!(a.len(), 24, "request {i}");
        assert_eq!(a, b, "request {i}: heads must give the rows' tokens");
    }
    assert_eq!(drawn, 24 * params.len(), "every draw went through a head");
    assert!(
        fetched > 0 && fetched < drawn,
        "some draws need the row, not all: {fetched} of {drawn}"
    );
    let distinct: std::collections::HashSet<u32> = rows.iter().flatten().copied().collect();
    assert!(distinct.len() > 10, "the draws vary: {distinct:?}");
}
