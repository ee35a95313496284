//! Rotary position embedding on the CPU, each token's rows of q or k turned by its own
//! position's angles. Candle's `rope_i` / `rope` take a step's `[T, heads, 1, hd]` one
//! pair at a time, in scalar code on one thread (3.5 ms of a 256-token prefill, 4 µs a
//! decode layer at 8 sequences); here 8 values at a time, a prefill's tokens over the
//! pool. Every value is computed as candle computes it (two products, then their
//! difference or sum, never fused), so the results are the same bits.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Tokens from which a call splits its tokens over the pool (a prefill's).
const PAR_TOKENS: usize = 32;

/// Which values a rotation pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairing {
    /// `(x[2i], x[2i + 1])`: GGUF's llama layout (candle's `rope_i`).
    Interleaved,
    /// `(x[i], x[i + hd / 2])`: rotate-half, Hugging Face's layout (candle's `rope`).
    Halves,
}

/// `x` (`[T, heads, 1, hd]`, each token's heads) rotated by `cos` and `sin`
/// (`[T, 1, hd / 2]`, each token's angles), as candle's `rope_i` (interleaved) or
/// `rope` (halves) does; ours for contiguous f32 tensors on the CPU, candle's otherwise.
pub(crate) fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor, pairing: Pairing) -> Result<Tensor> {
    let ours = x.device().is_cpu()
        && [x, cos, sin]
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.is_contiguous());
    match (ours, pairing) {
        (true, _) => x.apply_op3_no_bwd(cos, sin, &Rotate(pairing)),
        (false, Pairing::Interleaved) => candle_nn::rotary_emb::rope_i(x, cos, sin),
        (false, Pairing::Halves) => candle_nn::rotary_emb::rope(x, cos, sin),
    }
}

struct Rotate(Pairing);

impl CustomOp3 for Rotate {
    fn name(&self) -> &'static str {
        "hearth-rotary"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = "rotary embedding";
        let x = crate::cpu_op_inputs::f32_slice(op, (s1, l1))?;
        let cos = crate::cpu_op_inputs::f32_slice(op, (s2, l2))?;
        let sin = crate::cpu_op_inputs::f32_slice(op, (s3, l3))?;
        let (t, heads, one, hd) = l1.shape().dims4()?;
        if one != 1 {
            candle_core::bail!(
                "{op}: x {:?} with cos {:?} and sin {:?}",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let mut out = vec![0f32; x.len()];
        rotate_into(x, (t, heads, hd), (cos, sin), self.0, &mut out)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `rotate` over slices: `x` is `[t, heads, hd]`, `cos` and `sin` `[t, hd / 2]`; the
/// result into `out` (as long as `x`).
pub(crate) fn rotate_into(
    x: &[f32],
    (t, heads, hd): (usize, usize, usize),
    (cos, sin): (&[f32], &[f32]),
    pairing: Pairing,
    out: &mut [f32],
) -> Result<()> {
    let half = hd / 2;
    let row = heads * hd;
    if hd % 2 != 0
        || cos.len() != t * half
        || sin.len() != t * half
        || x.len() != t * row
        || out.len() != x.len()
    {
        candle_core::bail!(
            "rotary embedding: {} values ({t} x {heads} x {hd}) into {}, with {} and {} angles",
            x.len(),
            out.len(),
            cos.len(),
            sin.len()
        );
    }
    let simd = Simd::detect();
    let token = |(i, (o, x)): (usize, (&mut [f32], &[f32]))| {
        let (c, s) = (
            &cos[i * half..(i + 1) * half],
            &sin[i * half..(i + 1) * half],
        );
        for (o, x) in o.chunks_exact_mut(hd).zip(x.chunks_exact(hd)) {
            rotate_head(simd, pairing, x, c, s, o);
        }
    };
    if row > 0 && t >= PAR_TOKENS {
        out.par_chunks_mut(row)
            .zip(x.par_chunks(row))
            .enumerate()
            .for_each(token);
    } else if row > 0 {
        out.chunks_mut(row)
            .zip(x.chunks(row))
            .enumerate()
            .for_each(token);
    }
    Ok(())
}

/// Which path a call takes: found once a call, not once a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Simd {
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
        Simd::Portable
    }
}

/// One head's `hd` values `x` turned by the angles' `c` and `s` (`hd / 2` each) into
/// `out`.
fn rotate_head(simd: Simd, pairing: Pairing, x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx2 {
        // SAFETY: `Simd::detect` found AVX2 (which implies AVX).
        unsafe { avx2::rotate_head(pairing, x, c, s, out) };
        return;
    }
    rotate_from(pairing, 0, x, c, s, out);
}

/// The pairs from pair `first` on, one at a time: candle's expressions.
fn rotate_from(pairing: Pairing, first: usize, x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    let half = c.len();
    for i in first..half {
        let (a, b) = match pairing {
            Pairing::Interleaved => (2 * i, 2 * i + 1),
            Pairing::Halves => (i, i + half),
        };
        out[a] = x[a] * c[i] - x[b] * s[i];
        out[b] = x[a] * s[i] + x[b] * c[i];
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{rotate_from, Pairing};
    use std::arch::x86_64::*;

    /// `super::rotate_head`, 4 interleaved pairs or 8 pairs of halves a step; each
    /// value from the same two products and one sum or difference as the portable path.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rotate_head(
        pairing: Pairing,
        x: &[f32],
        c: &[f32],
        s: &[f32],
        out: &mut [f32],
    ) {
        let half = c.len();
        assert!(
            x.len() == 2 * half && s.len() == half && out.len() == 2 * half,
            "a head's values and angles"
        );
        let (xp, cp, sp, op) = (x.as_ptr(), c.as_ptr(), s.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        match pairing {
            Pairing::Interleaved => {
                // Each angle twice: lanes 2j and 2j + 1 turn pair j.
                let twice = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
                while i + 4 <= half {
                    let xv = _mm256_loadu_ps(xp.add(2 * i));
                    let cv = _mm256_permutevar8x32_ps(
                        _mm256_castps128_ps256(_mm_loadu_ps(cp.add(i))),
                        twice,
                    );
                    let sv = _mm256_permutevar8x32_ps(
                        _mm256_castps128_ps256(_mm_loadu_ps(sp.add(i))),
                        twice,
                    );
                    // Each pair's values swapped: lane 2j holds x[2j + 1], 2j + 1 x[2j].
                    let swapped = _mm256_permute_ps::<0b1011_0001>(xv);
                    // Even lanes: x[a] c - x[b] s; odd lanes: x[b] c + x[a] s.
                    let y = _mm256_addsub_ps(_mm256_mul_ps(xv, cv), _mm256_mul_ps(swapped, sv));
                    _mm256_storeu_ps(op.add(2 * i), y);
                    i += 4;
                }
            }
            Pairing::Halves => {
                while i + 8 <= half {
                    let a = _mm256_loadu_ps(xp.add(i));
                    let b = _mm256_loadu_ps(xp.add(i + half));
                    let cv = _mm256_loadu_ps(cp.add(i));
                    let sv = _mm256_loadu_ps(sp.add(i));
                    let lo = _mm256_sub_ps(_mm256_mul_ps(a, cv), _mm256_mul_ps(b, sv));
                    let hi = _mm256_add_ps(_mm256_mul_ps(a, sv), _mm256_mul_ps(b, cv));
                    _mm256_storeu_ps(op.add(i), lo);
                    _mm256_storeu_ps(op.add(i + half), hi);
                    i += 8;
                }
            }
        }
        rotate_from(pairing, i, x, c, s, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn data(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        crate::test_data::xorshift_floats(&mut state, len)
    }

    /// Ours gives candle's bits for both pairings: head sizes with and without a tail
    /// past the vector width, one token (a decode step's shape), a few, and enough to
    /// be split over the pool.
    #[test]
    fn same_bits_as_candle() {
        for (t, heads, hd) in [(1, 9, 64), (3, 2, 6), (5, 4, 128), (40, 3, 64), (33, 2, 10)] {
            let half = hd / 2;
            let x = Tensor::from_vec(data(t * heads * hd, 1), (t, heads, 1, hd), &Device::Cpu)
                .expect("x");
            // Angles as Rope::tables makes them: any real values.
            let angles: Vec<f32> = data(t * half, 2).iter().map(|a| a * 40.0).collect();
            let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
            let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
            let cos = Tensor::from_vec(cos, (t, 1, half), &Device::Cpu).expect("cos");
            let sin = Tensor::from_vec(sin, (t, 1, half), &Device::Cpu).expect("sin");
            for pairing in [Pairing::Interleaved, Pairing::Halves] {
                let ours = x
                    .apply_op3_no_bwd(&cos, &sin, &Rotate(pairing))
                    .expect("ours");
                let theirs = match pairing {
                    Pairing::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin),
                    Pairing::Halves => candle_nn::rotary_emb::rope(&x, &cos, &sin),
                }
                .expect("candle");
                assert_eq!(ours.dims(), theirs.dims());
                let bits = |t: &Tensor| -> Vec<u32> {
                    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    v.iter().map(|x| x.to_bits()).collect()
                };
                assert_eq!(
                    bits(&ours),
                    bits(&theirs),
                    "{pairing:?} t={t} heads={heads} hd={hd}"
                );
            }
        }
    }

    /// The portable path gives the SIMD path's bits (each is candle's, by the test
    /// above, only where this CPU runs the SIMD path).
    #[test]
    fn portable_path_gives_the_same_bits() {
        let (half, x) = (20, data(40, 3));
        let (c, s) = (data(20, 4), data(20, 5));
        for pairing in [Pairing::Interleaved, Pairing::Halves] {
            let (mut simd, mut portable) = (vec![0f32; 2 * half], vec![0f32; 2 * half]);
            rotate_head(Simd::detect(), pairing, &x, &c, &s, &mut simd);
            rotate_from(pairing, 0, &x, &c, &s, &mut portable);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&simd), bits(&portable), "{pairing:?}");
        }
    }

    /// Shapes that do not fit are refused with an error, not a panic.
    #[test]
    fn mismatched_angles_are_an_error() {
        let x = Tensor::zeros((2, 3, 1, 8), DType::F32, &Device::Cpu).expect("x");
        let short = Tensor::zeros((1, 1, 4), DType::F32, &Device::Cpu).expect("cos");
        assert!(rotate(&x, &short, &short, Pairing::Interleaved).is_err());
        let odd = Tensor::zeros((2, 3, 1, 7), DType::F32, &Device::Cpu).expect("odd");
        let cs = Tensor::zeros((2, 1, 3), DType::F32, &Device::Cpu).expect("cs");
        assert!(rotate(&odd, &cs, &cs, Pairing::Halves).is_err());
    }
}
