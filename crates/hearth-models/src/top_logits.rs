//! The head of a logits row for temperature sampling: its largest values and the
//! softmax normalizer of the whole row. A model that computes logits on a device
//! returns this instead of the row (a few hundred bytes instead of a vocabulary of
//! floats); the sampler finishes from it, or asks for the row when its draw lands
//! outside the head (`CausalLm::last_logits`).

/// Candidates a device returns a row (the sampler's `top_k` up to this is exact).
pub const TOP_CANDIDATES: usize = 64;

/// The first index of the largest value (NaNs ignored; 0 when there is none). The
/// maximum is found over 16 lanes first, which vectorizes, then its first position:
/// two passes over a cache-resident row instead of one dependent compare per element.
pub fn argmax(xs: &[f32]) -> u32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let tail = chunks.remainder().iter().copied();
    let max = lanes
        .into_iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |m, x| if x > m { x } else { m });
    xs.iter().position(|&x| x == max).unwrap_or(0) as u32
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopLogits {
    /// (id, logit) of the row's largest finite logits, in no particular order. Among
    /// equal values at the cut, which ids are kept is unspecified.
    pub top: Vec<(u32, f32)>,
    /// Σ exp(l·(1/T) − max·(1/T)) over every finite logit `l` of the row, `max` its
    /// largest and `T` the temperature the row was asked with.
    pub mass: f32,
    /// How many finite logits the row has: `top` is all of them when it holds as many.
    pub finite: usize,
}

impl TopLogits {
    /// The head of `row` on the host (the reference a device's must match). Three
    /// passes over the row and a buffer of at most `2 * keep` candidates: no copy of
    /// the row (a vocabulary of pairs, every sampled token).
    pub fn of_row(row: &[f32], temperature: f32, keep: usize) -> TopLogits {
        let finite_logits = || row.iter().copied().filter(|l| l.is_finite());
        let (finite, max) =
            finite_logits().fold((0, f32::NEG_INFINITY), |(n, m), l| (n + 1, m.max(l)));
        let inv_t = 1.0 / temperature;
        let max = max * inv_t;
        // Summed in f64: 128k f32 terms summed in f32 one after another drift ~1e-4.
        let mass = finite_logits()
            .map(|l| f64::from((l * inv_t - max).exp()))
            .sum::<f64>() as f32;
        TopLogits {
            top: largest(row, keep),
            mass,
            finite,
        }
    }

    /// Whether `top` holds every finite logit of the row.
    pub fn is_complete(&self) -> bool {
        self.top.len() >= self.finite
    }
}

/// The `keep` largest finite values of `row` with their ids (any of equal values at
/// the cut). Candidates at or above the floor gather in a buffer; when it holds
/// `2 * keep`, it is cut back to its `keep` largest and the floor rises to the least
/// of them.
fn largest(row: &[f32], keep: usize) -> Vec<(u32, f32)> {
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(2 * keep);
    if keep == 0 {
        return top;
    }
    let cut = |top: &mut Vec<(u32, f32)>| {
        top.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
        top.truncate(keep);
        top[keep - 1].1
    };
    let mut floor = f32::NEG_INFINITY;
    for (i, &l) in row.iter().enumerate() {
        if l.is_finite() && l >= floor {
            top.push((i as u32, l));
            if top.len() == 2 * keep {
                floor = cut(&mut top);
            }
        }
    }
    if top.len() > keep {
        cut(&mut top);
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU kernel writes as many candidates a row as the sampler reads.
    #[test]
    fn the_kernel_keeps_as_many_candidates() {
        let source = include_str!("cuda/kernels/top_rows.cu");
        assert!(source.contains(&format!("#define TOP_C {TOP_CANDIDATES}\n")));
    }

    /// The buffered selection keeps the same values as sorting the row, on rows with
    /// ties and non-finite values, for heads smaller and larger than the row.
    #[test]
    fn the_buffered_selection_is_the_sorted_rows_head() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..30 {
            let uniform = crate::test_data::xorshift_floats(&mut state, 1000);
            let row: Vec<f32> = (0..1000)
                .map(|i| {
                    let u = (uniform[i] + 1.0) / 2.0;
                    match (round % 3, i % 97) {
                        (_, 0) => f32::NAN,
                        (_, 1) => f32::NEG_INFINITY,
                        // Few levels: ties at the cut.
                        (0, _) => (u * 6.0).floor(),
                        _ => u * 20.0 - 10.0,
                    }
                })
                .collect();
            let mut sorted: Vec<f32> = row.iter().copied().filter(|l| l.is_finite()).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for keep in [0, 1, 7, 64, 500, 2000] {
                let mut got: Vec<f32> = largest(&row, keep).iter().map(|p| p.1).collect();
                got.sort_by(|a, b| b.total_cmp(a));
                assert_eq!(
                    got,
                    sorted[..keep.min(sorted.len())],
                    "round {round}, keep {keep}"
                );
                assert!(largest(&row, keep)
                    .iter()
                    .all(|&(i, l)| row[i as usize] == l));
            }
        }
    }

    #[test]
    fn the_head_holds_the_largest_and_the_mass_covers_the_row() {
        let row = [0.5f32, f32::NEG_INFINITY, 3.0, -1.0, f32::NAN, 2.0, 1.0];
        let h = TopLogits::of_row(&row, 0.5, 2);
        let mut ids: Vec<u32> = h.top.iter().map(|p| p.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 5]);
        assert_eq!(h.finite, 5);
        assert!(!h.is_complete());
        let want: f32 = [0.5f32, 3.0, -1.0, 2.0, 1.0]
            .iter()
            .map(|l| ((l - 3.0) * 2.0).exp())
            .sum();
        assert!((h.mass - want).abs() < 1e-6, "{} vs {want}", h.mass);
        let all = TopLogits::of_row(&row, 1.0, 64);
        assert!(all.is_complete());
        assert_eq!(all.top.len(), 5);
    }
}
