//! A tiny random llama written as GGUF (any weight dtype) plus a naive f64 reference
//! forward over the same f32 weights.
#![allow(dead_code)]

use crate::common::Rng;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

pub const H: usize = 256; // a multiple of 256 so k-quant rows fit
pub const NH: usize = 4;
pub const NKV: usize = 2;
pub const HD: usize = 64;
pub const FFN: usize = 512;
pub const VOCAB: usize = 320;
pub const LAYERS: usize = 2;
pub const EPS: f32 = 1e-5;
pub const THETA: f32 = 10000.0;

/// f32 weights by GGUF name: (name, rows, values); vectors have rows = 1.
pub struct Weights(pub Vec<(String, usize, Vec<f32>)>);

impl Weights {
    pub fn random(seed: u64, tied: bool) -> Self {
        let mut rng = Rng(seed);
        let mut w = Vec::new();
        let mut mat = |name: String, r: usize, c: usize, gain: f32| {
            let v: Vec<f32> = rng.vec(r * c).iter().map(|x| x * gain).collect();
            w.push((name, r, v));
        };
        mat("token_embd.weight".into(), VOCAB, H, 1.0);
        if !tied {
            mat("output.weight".into(), VOCAB, H, 0.1);
        }
        for i in 0..LAYERS {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            mat(p("attn_norm"), 1, H, 1.0);
            mat(p("attn_q"), NH * HD, H, 0.15);
            mat(p("attn_k"), NKV * HD, H, 0.15);
            mat(p("attn_v"), NKV * HD, H, 0.1);
            mat(p("attn_output"), H, NH * HD, 0.1);
            mat(p("ffn_norm"), 1, H, 1.0);
            mat(p("ffn_gate"), FFN, H, 0.1);
            mat(p("ffn_up"), FFN, H, 0.1);
            mat(p("ffn_down"), H, FFN, 0.1);
        }
        mat("output_norm.weight".into(), 1, H, 1.0);
        // Norm weights around 1, not around 0.
        for (n, _, v) in w.iter_mut() {
            if n.contains("norm") {
                v.iter_mut().for_each(|x| *x = 1.0 + 0.2 * *x);
            }
        }
        Weights(w)
    }

    pub fn get(&self, name: &str) -> &[f32] {
        &self.0.iter().find(|(n, _, _)| n == name).expect(name).2
    }

    /// Writes a GGUF file; matrices stored as `dtype`, vectors as F32.
    pub fn write_gguf(&self, path: &Path, dtype: GgmlDType, arch: &str) {
        let qs: Vec<(String, QTensor)> = self
            .0
            .iter()
            .map(|(n, r, v)| {
                let (t, dt) = if *r == 1 {
                    (
                        Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap(),
                        GgmlDType::F32,
                    )
                } else {
                    (
                        Tensor::from_slice(v, (*r, v.len() / r), &Device::Cpu).unwrap(),
                        dtype,
                    )
                };
                (n.clone(), QTensor::quantize(&t, dt).expect("quantize"))
            })
            .collect();
        let md: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String(arch.into())),
            ("llama.block_count", Value::U32(LAYERS as u32)),
            ("llama.embedding_length", Value::U32(H as u32)),
            ("llama.attention.head_count", Value::U32(NH as u32)),
            ("llama.attention.head_count_kv", Value::U32(NKV as u32)),
            ("llama.feed_forward_length", Value::U32(FFN as u32)),
            ("llama.rope.freq_base", Value::F32(THETA)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(EPS)),
            ("llama.context_length", Value::U32(512)),
            ("llama.rope.dimension_count", Value::U32(HD as u32)),
        ];
        let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let t_refs: Vec<(&str, &QTensor)> = qs.iter().map(|(n, q)| (n.as_str(), q)).collect();
        let mut f = std::fs::File::create(path).expect("create gguf");
        gguf_file::write(&mut f, &md_refs, &t_refs).expect("write gguf");
    }

    /// Naive f64 forward of one sequence from position 0: logits of every position.
    pub fn reference(&self, tokens: &[u32]) -> Vec<Vec<f32>> {
        let n = tokens.len();
        let embd = self.get("token_embd.weight");
        let mut x: Vec<Vec<f64>> = tokens
            .iter()
            .map(|&t| {
                embd[t as usize * H..][..H]
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            })
            .collect();
        for l in 0..LAYERS {
            let w = |s: &str| self.get(&format!("blk.{l}.{s}.weight"));
            let h: Vec<Vec<f64>> = x.iter().map(|r| rms(r, w("attn_norm"))).collect();
            let q: Vec<Vec<f64>> = h
                .iter()
                .enumerate()
                .map(|(p, r)| rope(&matvec(w("attn_q"), r), p))
                .collect();
            let k: Vec<Vec<f64>> = h
                .iter()
                .enumerate()
                .map(|(p, r)| rope(&matvec(w("attn_k"), r), p))
                .collect();
            let v: Vec<Vec<f64>> = h.iter().map(|r| matvec(w("attn_v"), r)).collect();
            for i in 0..n {
                let mut att = vec![0f64; NH * HD];
                for hh in 0..NH {
                    let kh = hh / (NH / NKV);
                    let dotqk = |j: usize| {
                        (0..HD)
                            .map(|d| q[i][hh * HD + d] * k[j][kh * HD + d])
                            .sum::<f64>()
                    };
                    let s: Vec<f64> = (0..=i).map(|j| dotqk(j) / (HD as f64).sqrt()).collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..HD {
                        att[hh * HD + d] =
                            (0..=i).map(|j| e[j] * v[j][kh * HD + d]).sum::<f64>() / z;
                    }
                }
                let o = matvec(w("attn_output"), &att);
                x[i].iter_mut().zip(o).for_each(|(a, b)| *a += b);
                let h = rms(&x[i], w("ffn_norm"));
                let (g, u) = (matvec(w("ffn_gate"), &h), matvec(w("ffn_up"), &h));
                let m: Vec<f64> = g
                    .iter()
                    .zip(&u)
                    .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                    .collect();
                x[i].iter_mut()
                    .zip(matvec(w("ffn_down"), &m))
                    .for_each(|(a, b)| *a += b);
            }
        }
        let head = self
            .0
            .iter()
            .find(|(n, _, _)| n == "output.weight")
            .map_or(embd, |t| &t.2[..]);
        let norm = self.get("output_norm.weight");
        x.iter()
            .map(|r| {
                matvec(head, &rms(r, norm))
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect()
    }
}

fn matvec(w: &[f32], x: &[f64]) -> Vec<f64> {
    w.chunks(x.len())
        .map(|row| row.iter().zip(x).map(|(a, b)| *a as f64 * b).sum())
        .collect()
}

fn rms(x: &[f64], w: &[f32]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + EPS as f64).sqrt();
    x.iter().zip(w).map(|(a, b)| a * r * *b as f64).collect()
}

/// Interleaved rope: pair (2i, 2i+1) of each head turns by pos * theta^(-2i/HD).
fn rope(x: &[f64], pos: usize) -> Vec<f64> {
    let mut out = x.to_vec();
    for head in out.chunks_mut(HD) {
        for i in 0..HD / 2 {
            let a = pos as f64 * (THETA as f64).powf(-2.0 * i as f64 / HD as f64);
            let (c, s) = (a.cos(), a.sin());
            let (x0, x1) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = x0 * c - x1 * s;
            head[2 * i + 1] = x0 * s + x1 * c;
        }
    }
    out
}

pub fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hearth-tiny-{tag}-{}.gguf", std::process::id()))
}
