//! The head of a logits row for temperature sampling: its largest values and the
//! softmax normalizer of the whole row. A model that computes logits on a device
//! returns this instead of the row (a few hundred bytes instead of a vocabulary of
//! floats); the sampler finishes from it, or asks for the row when its draw lands
//! outside the head (`CausalLm::last_logits`).

/// Candidates a device returns a row (the sampler's `top_k` up to this is exact).
pub const TOP_CANDIDATES: usize = 64;

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
    /// The head of `row` on the host (the reference a device's must match).
    pub fn of_row(row: &[f32], temperature: f32, keep: usize) -> TopLogits {
        let mut top: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let finite = top.len();
        let inv_t = 1.0 / temperature;
        let max = top.iter().fold(f32::NEG_INFINITY, |m, &(_, l)| m.max(l)) * inv_t;
        // Summed in f64: 128k f32 terms summed in f32 one after another drift ~1e-4.
        let mass = top
            .iter()
            .map(|&(_, l)| f64::from((l * inv_t - max).exp()))
            .sum::<f64>() as f32;
        if keep < top.len() {
            if keep == 0 {
                top.clear();
            } else {
                top.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
                top.truncate(keep);
            }
        }
        TopLogits { top, mass, finite }
    }

    /// Whether `top` holds every finite logit of the row.
    pub fn is_complete(&self) -> bool {
        self.top.len() >= self.finite
    }
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
