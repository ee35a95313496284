//! The draw of temperature sampling: top-k, top-p and min-p over candidates sorted
//! by probability, then one uniform number walked down them. It runs on a whole row
//! or on its head (`TopLogits`): on the head it answers only where the whole row
//! would give the same token for the same number, and says so otherwise.

use hearth_models::TopLogits;

use crate::types::SamplingParams;

/// The token `u` (uniform in [0, 1)) picks from `cand`: (id, logit / T), sorted
/// descending. `total` is Σ exp(s − max) over the distribution `cand` is the head of;
/// with `complete`, `cand` is all of it (after top-k). None: the filters' cut or the
/// draw falls past the head, so the whole row is needed.
pub(crate) fn pick(
    cand: &[(u32, f32)],
    total: f32,
    complete: bool,
    p: &SamplingParams,
    u: f32,
) -> Option<u32> {
    let max = cand.first()?.1;
    let probs: Vec<f32> = cand.iter().map(|&(_, s)| (s - max).exp() / total).collect();
    // Where the filters cut the sorted list; None: past the head (or no cut).
    let mut keep = complete.then_some(probs.len());
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        if let Some(i) = probs.iter().position(|&pr| {
            acc += pr;
            acc >= p.top_p
        }) {
            keep = Some(keep.map_or(i + 1, |k| k.min(i + 1)));
        }
    }
    if p.min_p > 0.0 {
        let floor = p.min_p * probs[0];
        let above = probs.iter().take_while(|&&pr| pr >= floor).count();
        if above < probs.len() || complete {
            let n = above.max(1);
            keep = Some(keep.map_or(n, |k| k.min(n)));
        }
    }
    let (keep, kept_total) = match keep {
        Some(k) => (k, probs[..k].iter().sum()),
        // No filter cuts anywhere: the draw is over the whole distribution.
        None if p.top_p >= 1.0 && p.min_p <= 0.0 => (probs.len(), 1.0),
        None => return None,
    };
    let mut r = u * kept_total;
    for (i, &pr) in probs[..keep].iter().enumerate() {
        r -= pr;
        if r <= 0.0 {
            return Some(cand[i].0);
        }
    }
    complete.then(|| cand[keep - 1].0)
}

/// `cand` scaled by 1/T and sorted for `pick`, cut to `top_k` when that is set and
/// `cand` holds at least that many (`cand` is then the whole top-k list).
pub(crate) fn prepare(cand: &mut Vec<(u32, f32)>, p: &SamplingParams) -> bool {
    let inv_t = 1.0 / p.temperature;
    cand.iter_mut().for_each(|c| c.1 *= inv_t);
    let cut = p.top_k > 0 && (p.top_k as usize) <= cand.len();
    if cut && (p.top_k as usize) < cand.len() {
        let k = p.top_k as usize;
        cand.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        cand.truncate(k);
    }
    cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    cut
}

/// The token `u` picks from a row's head, if the head decides it (see `pick`).
pub(crate) fn pick_from_head(head: &TopLogits, p: &SamplingParams, u: f32) -> Option<u32> {
    let mut cand = head.top.clone();
    let complete = head.is_complete();
    let cut = prepare(&mut cand, p);
    if cut || complete {
        let total = cand.iter().map(|&(_, s)| (s - cand[0].1).exp()).sum();
        return pick(&cand, total, true, p, u);
    }
    if p.top_k > 0 {
        // A top-k larger than the head: its normalizer is not known here.
        return None;
    }
    pick(&cand, head.mass, false, p, u)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole row's answer: every finite logit sorted, as the sampler had it.
    fn from_row(row: &[f32], p: &SamplingParams, u: f32) -> u32 {
        let mut cand: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        prepare(&mut cand, p);
        let total = cand.iter().map(|&(_, s)| (s - cand[0].1).exp()).sum();
        pick(&cand, total, true, p, u).expect("a whole row always decides")
    }

    /// Wherever a head decides a draw, it is the row's token for the same number; over
    /// these rows and settings heads decide most draws but not all.
    #[test]
    fn a_head_decides_as_the_row_does() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let (mut decided, mut total) = (0, 0);
        for round in 0..40 {
            let row: Vec<f32> = (0..300)
                .map(|_| {
                    let u = next();
                    if u > 0.95 {
                        8.0 * u
                    } else {
                        3.0 * u
                    }
                })
                .collect();
            let p = SamplingParams {
                temperature: [0.3, 0.8, 1.0, 2.0][round % 4],
                top_k: [0, 0, 5, 0, 100][round % 5],
                top_p: [1.0, 0.5, 0.9, 1.0, 0.99, 1.0][round % 6],
                min_p: [0.0, 0.0, 0.05, 0.2][round / 10],
                ..SamplingParams::default()
            };
            let head = TopLogits::of_row(&row, p.temperature, 16);
            for _ in 0..50 {
                let u = next();
                total += 1;
                if let Some(t) = pick_from_head(&head, &p, u) {
                    decided += 1;
                    assert_eq!(t, from_row(&row, &p, u), "round {round}, u {u}");
                }
            }
        }
        assert!(
            decided > total / 3 && decided < total,
            "{decided} of {total}"
        );
    }
}
