//! The draw of temperature sampling: top-k, top-p and min-p over candidates sorted
//! by probability, then one uniform number walked down them. It runs on a whole row
//! or on its head (`TopLogits`): on the head it answers only where the whole row
//! would give the same token for the same number, and says so otherwise.
//!
//! With no filter the walk goes down the row's `TOP_CANDIDATES` largest, sorted, and
//! then down the rest of the row in id order (`pick_in_tail`): any fixed order draws
//! exactly from the distribution, and this one needs no sort of the row.

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

/// The token `u` picks past the row's head when no filter is set (`pick` found the
/// draw past it): the draw, less the head's probabilities (as `pick` takes them), walks
/// the rest of the row in id order. None: a filter is set (the row must be sorted).
pub(crate) fn pick_in_tail(
    row: &[f32],
    head: &TopLogits,
    p: &SamplingParams,
    u: f32,
) -> Option<u32> {
    if p.top_k > 0 || p.top_p < 1.0 || p.min_p > 0.0 {
        return None;
    }
    let mut cand = head.top.clone();
    prepare(&mut cand, p);
    let (max, cut) = (cand.first()?.1, cand.last()?.1);
    let mut r = u;
    for &(_, s) in &cand {
        r -= (s - max).exp() / head.mass;
    }
    let mut in_head: Vec<u32> = cand.iter().map(|c| c.0).collect();
    in_head.sort_unstable();
    let inv_t = 1.0 / p.temperature;
    let mut last = None;
    for (i, &l) in row.iter().enumerate() {
        let s = l * inv_t;
        // Only values at or above the head's least can be in it.
        if !l.is_finite() || (s >= cut && in_head.binary_search(&(i as u32)).is_ok()) {
            continue;
        }
        last = Some(i as u32);
        r -= (s - max).exp() / head.mass;
        if r <= 0.0 {
            return last;
        }
    }
    // Rounding left a sliver: the last token of the walk.
    last.or(cand.last().map(|c| c.0))
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
    use crate::test_rng::uniforms;

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
        let mut next = uniforms(0x2545_f491_4f6c_dd1du64);
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

    /// With no filter, head then tail is an inverse CDF over (head sorted, the rest by
    /// id): the same tokens as one computed apart in f64, but where a draw sits within
    /// rounding of a boundary.
    #[test]
    fn the_tail_walk_is_the_rows_distribution_in_id_order() {
        let mut next = uniforms(0x9e37_79b9_7f4a_7c15u64);
        let row: Vec<f32> = (0..1000).map(|_| 2.0 * next()).collect();
        let p = SamplingParams::default();
        let head = TopLogits::of_row(&row, 1.0, 64);
        let mut order: Vec<u32> = {
            let mut h = head.top.clone();
            h.sort_by(|a, b| b.1.total_cmp(&a.1));
            h.into_iter().map(|c| c.0).collect()
        };
        let rest: Vec<u32> = (0..1000u32).filter(|i| !order.contains(i)).collect();
        order.extend(rest);
        let z: f64 = row.iter().map(|&l| f64::from(l).exp()).sum();
        let (mut same, mut tail) = (0, 0);
        for _ in 0..2000 {
            let u = next();
            let mut r = f64::from(u) * z;
            let want = *order
                .iter()
                .find(|&&i| {
                    r -= f64::from(row[i as usize]).exp();
                    r <= 0.0
                })
                .unwrap_or(&order[999]);
            let got = match pick_from_head(&head, &p, u) {
                Some(t) => t,
                None => {
                    tail += 1;
                    pick_in_tail(&row, &head, &p, u).expect("no filter")
                }
            };
            same += usize::from(got == want);
        }
        assert!(
            tail > 1000,
            "a flat row's draws mostly fall past its head: {tail}"
        );
        assert!(same >= 1990, "{same} of 2000 as the f64 walk");
        let filtered = SamplingParams { top_p: 0.9, ..p };
        assert_eq!(pick_in_tail(&row, &head, &filtered, 0.99), None);
    }
}
