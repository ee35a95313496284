//! Rotary position embedding, interleaved pairs (GGUF llama stores q/k permuted for it).

use crate::ModelError;
use candle_core::{Device, Tensor};

#[derive(Debug, Clone)]
pub struct Rope {
    /// Angular frequency of each of the `head_dim / 2` pairs.
    inv_freq: Vec<f64>,
}

impl Rope {
    /// `freq_factors` (llama3-style `rope_freqs.weight`) divide the frequencies when present.
    pub fn new(
        head_dim: usize,
        theta: f32,
        freq_factors: Option<&[f32]>,
    ) -> Result<Self, ModelError> {
        let half = head_dim / 2;
        if let Some(f) = freq_factors {
            if f.len() != half {
                return Err(ModelError::Invalid(format!(
                    "rope_freqs has {} entries, want {half}",
                    f.len()
                )));
            }
        }
        let inv_freq = (0..half)
            .map(|i| {
                let base = 1.0 / (theta as f64).powf(2.0 * i as f64 / head_dim as f64);
                base / freq_factors.map_or(1.0, |f| f[i] as f64)
            })
            .collect();
        Ok(Rope { inv_freq })
    }

    /// `tables`' values into `cos` and `sin` (`[T, head_dim / 2]`, cleared first).
    pub fn tables_into(&self, positions: &[u32], (cos, sin): (&mut Vec<f32>, &mut Vec<f32>)) {
        cos.clear();
        sin.clear();
        for &p in positions {
            for &f in &self.inv_freq {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
    }

    /// The angular frequency of each pair (the GPU computes its own tables).
    pub fn inv_freq(&self) -> &[f64] {
        &self.inv_freq
    }

    /// cos and sin for each token's own position, shaped `[T, 1, head_dim / 2]` so that
    /// `rotary::rotate` on `[T, heads, 1, head_dim]` turns every token by its position.
    pub fn tables(
        &self,
        positions: &[u32],
        device: &Device,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        self.tables_into(positions, (&mut cos, &mut sin));
        let shape = (positions.len(), 1, self.inv_freq.len());
        Ok((
            Tensor::from_vec(cos, shape, device)?,
            Tensor::from_vec(sin, shape, device)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_each_token_position() {
        let r = Rope::new(4, 100.0, None).expect("rope");
        let (cos, sin) = r.tables(&[0, 3], &Device::Cpu).expect("tables");
        assert_eq!(cos.dims(), &[2, 1, 2]);
        let (cos, sin) = (
            cos.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            sin.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        // Position 0 is the identity; pair 1 of position 3 turns by 3 * 100^(-1/2).
        assert_eq!((cos[0], sin[0], cos[1], sin[1]), (1.0, 0.0, 1.0, 0.0));
        assert!((cos[3] - 0.3f32.cos()).abs() < 1e-6 && (sin[3] - 0.3f32.sin()).abs() < 1e-6);
        // Frequency factors divide the frequency.
        let r = Rope::new(4, 100.0, Some(&[1.0, 2.0])).expect("rope");
        let (_, sin) = r.tables(&[3], &Device::Cpu).expect("tables");
        let sin = sin.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((sin[1] - 0.15f32.sin()).abs() < 1e-6);
        assert!(Rope::new(4, 100.0, Some(&[1.0])).is_err());
    }
}
