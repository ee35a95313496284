//! Next-token choice for one sequence: penalties, temperature, top-k, top-p, min-p,
//! seeded sampling and logprobs (vLLM semantics).

use std::collections::HashMap;

pub use hearth_models::top_logits::argmax;
use hearth_models::{Pick, TopLogits, TOP_CANDIDATES};
use hearth_text::TokenMask;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::draw;
use crate::types::{SamplingParams, TokenLogprob};

pub type SeqRng = StdRng;

/// A per-sequence generator: seeded requests are reproducible.
pub fn make_rng(seed: Option<u64>) -> SeqRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

/// What the sampler needs to know about a sequence besides its logits.
pub struct SampleContext<'a> {
    pub params: &'a SamplingParams,
    pub prompt: &'a [u32],
    pub generated: &'a [u32],
    /// Ids that may not be produced yet (EOS and stop ids before `min_tokens`).
    pub banned: &'a [u32],
    /// Structured output: only these ids may be sampled.
    pub mask: Option<&'a TokenMask>,
}

pub struct Sampled {
    pub token_id: u32,
    pub logprob: Option<TokenLogprob>,
}

/// What a model may return instead of a sequence's logits when sampling takes these
/// parameters and nothing else (no banned ids, no grammar): with no penalties, bias
/// or logprobs, greedy is a plain argmax and temperature sampling needs only the
/// row's head.
pub fn plain_pick(p: &SamplingParams) -> Pick {
    let plain = p.logprobs.is_none()
        && p.repetition_penalty == 1.0
        && p.presence_penalty == 0.0
        && p.frequency_penalty == 0.0
        && p.logit_bias.is_empty();
    match plain {
        false => Pick::Row,
        true if p.temperature <= 0.0 => Pick::Argmax,
        true => Pick::Sample {
            temperature: p.temperature,
        },
    }
}

pub fn sample(logits: &mut [f32], ctx: &SampleContext, rng: &mut SeqRng) -> Sampled {
    sample_drawn(logits, ctx, rng, None)
}

/// Samples from the head of a row a model returned for `Pick::Sample`. Err: the head
/// does not decide the token; `sample_drawn` with the row and the number drawn here
/// (None: none was) gives it, as `sample` would have from the row.
pub fn sample_head(
    head: &TopLogits,
    p: &SamplingParams,
    rng: &mut SeqRng,
) -> Result<u32, Option<f32>> {
    if head.finite == 0 {
        return Err(None);
    }
    let u = rng.random::<f32>();
    draw::pick_from_head(head, p, u).ok_or(Some(u))
}

/// `sample`, with the uniform number of a temperature draw already taken when given.
pub fn sample_drawn(
    logits: &mut [f32],
    ctx: &SampleContext,
    rng: &mut SeqRng,
    drawn: Option<f32>,
) -> Sampled {
    apply_penalties(logits, ctx);
    for &(id, bias) in &ctx.params.logit_bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l += bias;
        }
    }
    for &id in ctx.banned {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    // Logprobs describe the model's (penalised) distribution before temperature.
    let logprob_source = ctx.params.logprobs.map(|_| log_softmax(logits));
    // The mask comes after logprobs: they describe the model, not the grammar.
    if let Some(mask) = ctx.mask {
        mask.apply(logits);
    }
    let token_id = if ctx.params.temperature <= 0.0 {
        argmax(logits)
    } else {
        sample_filtered(logits, ctx.params, || drawn.unwrap_or_else(|| rng.random()))
    };
    let logprob = logprob_source.map(|lp| {
        let k = ctx.params.logprobs.unwrap_or(0);
        TokenLogprob {
            token_id,
            logprob: lp[token_id as usize],
            top: top_k_pairs(&lp, k),
        }
    });
    Sampled { token_id, logprob }
}

fn apply_penalties(logits: &mut [f32], ctx: &SampleContext) {
    let p = ctx.params;
    if p.repetition_penalty != 1.0 {
        let mut seen: Vec<u32> = ctx.prompt.iter().chain(ctx.generated).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
        }
    }
    if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &id in ctx.generated {
            *counts.entry(id).or_default() += 1;
        }
        for (id, n) in counts {
            if let Some(l) = logits.get_mut(id as usize) {
                *l -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
    }
}

fn log_softmax(xs: &[f32]) -> Vec<f32> {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = xs.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln() + max;
    xs.iter().map(|&x| x - log_sum).collect()
}

fn top_k_pairs(lp: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..lp.len() as u32).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| lp[b as usize].total_cmp(&lp[a as usize]));
    idx.truncate(k);
    idx.sort_by(|&a, &b| lp[b as usize].total_cmp(&lp[a as usize]));
    idx.into_iter().map(|i| (i, lp[i as usize])).collect()
}

/// Temperature, then top-k, top-p and min-p over the sorted candidates, then a draw.
/// The row's head decides most draws, and with no filter the rest of the row in id
/// order decides the others (`draw`): O(n) instead of sorting the row, O(n log n) (a
/// vocabulary of 128k is sorted in milliseconds), which only a filter reaching past
/// the head still needs.
fn sample_filtered(logits: &[f32], p: &SamplingParams, draw: impl FnOnce() -> f32) -> u32 {
    let head = TopLogits::of_row(logits, p.temperature, TOP_CANDIDATES);
    if head.finite == 0 {
        return argmax(logits);
    }
    let u = draw();
    if let Some(t) = draw::pick_from_head(&head, p, u) {
        return t;
    }
    if let Some(t) = draw::pick_in_tail(logits, &head, p, u) {
        return t;
    }
    let mut cand: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l.is_finite())
        .map(|(i, &l)| (i as u32, l))
        .collect();
    draw::prepare(&mut cand, p);
    let total = cand.iter().map(|&(_, s)| (s - cand[0].1).exp()).sum();
    draw::pick(&cand, total, true, p, u).unwrap_or(cand[0].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(p: &'a SamplingParams, gen: &'a [u32]) -> SampleContext<'a> {
        SampleContext {
            params: p,
            prompt: &[],
            generated: gen,
            banned: &[],
            mask: None,
        }
    }

    #[test]
    fn logit_bias_moves_the_greedy_choice_and_can_ban() {
        let base = [1.0f32, 3.0, 2.0];
        let mut p = SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        };
        let mut rng = make_rng(Some(1));
        let mut l = base;
        assert_eq!(sample(&mut l, &ctx(&p, &[]), &mut rng).token_id, 1);
        p.logit_bias = vec![(2, 5.0)];
        let mut l = base;
        assert_eq!(sample(&mut l, &ctx(&p, &[]), &mut rng).token_id, 2);
        // -100 takes a token out of sampling at any temperature.
        p.temperature = 1.0;
        p.logit_bias = vec![(1, -100.0), (2, -100.0)];
        for _ in 0..50 {
            let mut l = base;
            assert_eq!(sample(&mut l, &ctx(&p, &[]), &mut rng).token_id, 0);
        }
    }

    /// The lane-wise argmax gives the naive scan's first maximum on lengths around the
    /// 16-lane chunks, with ties (the first wins), all equal and all -inf rows.
    #[test]
    fn argmax_is_the_first_maximum() {
        let naive = |xs: &[f32]| {
            let mut best = 0;
            for (i, &x) in xs.iter().enumerate() {
                if x > xs[best] {
                    best = i;
                }
            }
            best as u32
        };
        let mut next = crate::test_rng::uniforms(0x9e37_79b9_7f4a_7c15u64);
        for len in [1, 2, 15, 16, 17, 31, 32, 33, 100, 1000, 128_256] {
            for round in 0..4 {
                let xs: Vec<f32> = (0..len)
                    .map(|_| {
                        // Few distinct values in round 0, so that ties are common.
                        let v = next();
                        if round == 0 {
                            (v * 4.0).floor()
                        } else {
                            v * 20.0 - 10.0
                        }
                    })
                    .collect();
                assert_eq!(argmax(&xs), naive(&xs), "len {len} round {round}");
            }
            assert_eq!(argmax(&vec![1.5; len]), 0);
            assert_eq!(argmax(&vec![f32::NEG_INFINITY; len]), 0);
        }
    }

    #[test]
    fn greedy_picks_argmax() {
        let p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let mut l = vec![0.1, 3.0, -1.0, 2.9];
        assert_eq!(
            sample(&mut l, &ctx(&p, &[]), &mut make_rng(Some(1))).token_id,
            1
        );
    }

    #[test]
    fn seeded_sampling_repeats() {
        let p = SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            ..Default::default()
        };
        let draw = || {
            let mut rng = make_rng(p.seed);
            (0..20)
                .map(|_| {
                    sample(&mut vec![1.0, 1.1, 0.9, 1.05, 0.5], &ctx(&p, &[]), &mut rng).token_id
                })
                .collect::<Vec<_>>()
        };
        let a = draw();
        assert_eq!(a, draw());
        assert!(
            a.iter().any(|&t| t != a[0]),
            "a flat distribution should not always give one token"
        );
    }

    #[test]
    fn top_k_one_is_greedy() {
        let p = SamplingParams {
            temperature: 5.0,
            top_k: 1,
            ..Default::default()
        };
        let mut rng = make_rng(Some(3));
        for _ in 0..20 {
            assert_eq!(
                sample(&mut vec![0.0, 0.2, 0.1], &ctx(&p, &[]), &mut rng).token_id,
                1
            );
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let logits = [5.0, 4.9, -5.0, -6.0];
        for p in [
            SamplingParams {
                top_p: 0.5,
                ..Default::default()
            },
            SamplingParams {
                min_p: 0.5,
                ..Default::default()
            },
        ] {
            let mut rng = make_rng(Some(11));
            for _ in 0..50 {
                let t = sample(&mut logits.to_vec(), &ctx(&p, &[]), &mut rng).token_id;
                assert!(t <= 1, "token {t} should have been filtered");
            }
        }
    }

    #[test]
    fn penalties_and_bans_change_the_choice() {
        let p = SamplingParams {
            temperature: 0.0,
            frequency_penalty: 2.0,
            ..Default::default()
        };
        let mut l = vec![1.0, 0.5];
        assert_eq!(
            sample(&mut l, &ctx(&p, &[0]), &mut make_rng(None)).token_id,
            1
        );
        let p = SamplingParams {
            temperature: 0.0,
            repetition_penalty: 4.0,
            ..Default::default()
        };
        let c = SampleContext {
            params: &p,
            prompt: &[0],
            generated: &[],
            banned: &[],
            mask: None,
        };
        assert_eq!(
            sample(&mut vec![1.0, 0.5], &c, &mut make_rng(None)).token_id,
            1
        );
        let p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let c = SampleContext {
            params: &p,
            prompt: &[],
            generated: &[],
            banned: &[0],
            mask: None,
        };
        assert_eq!(
            sample(&mut vec![9.0, 0.5], &c, &mut make_rng(None)).token_id,
            1
        );
    }

    #[test]
    fn logprobs_are_normalised_and_sorted() {
        let p = SamplingParams {
            temperature: 0.0,
            logprobs: Some(2),
            ..Default::default()
        };
        let s = sample(&mut vec![1.0, 2.0, 3.0], &ctx(&p, &[]), &mut make_rng(None));
        let lp = s.logprob.expect("asked for logprobs");
        assert_eq!(lp.token_id, 2);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 1]);
        let total: f32 = [1.0f32, 2.0, 3.0].iter().map(|x| (x - 3.0f32).exp()).sum();
        assert!((lp.logprob - (-total.ln())).abs() < 1e-5);
    }
}
