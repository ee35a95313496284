//! Checks and times the CUDA paged-attention kernel against the CPU kernel on
//! random batches (decode, prefill over a cached prefix, sliding window with
//! soft-capping), with f32 and with f16 K/V pools. Run on a machine with a GPU:
//!   cargo build --release -p hearth-models --features cuda --example cuda_check
//! Exits non-zero when the GPU result is off.

use std::time::Instant;

use cudarc::driver::CudaSlice;
use half::f16;
use hearth_models::attention::cpu::paged_attention;
use hearth_models::attention::{AttnMeta, AttnShape};
use hearth_models::cuda::paged_attention::{launch, DeviceBatch, PoolElem, Variant};
use hearth_models::cuda::Gpu;
use hearth_models::{BatchInput, KvCacheLayout, SeqInput};

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Case {
    name: &'static str,
    /// (tokens already cached, new tokens) per sequence.
    seqs: Vec<(usize, usize)>,
    shape: AttnShape,
}

fn batch_for(case: &Case, block_size: usize, rng: &mut Rng) -> (BatchInput, usize) {
    let need: usize = (case.seqs.iter())
        .map(|&(c, n)| (c + n).div_ceil(block_size))
        .sum();
    // Blocks handed out in a shuffled order: tables are not contiguous.
    let mut free: Vec<u32> = (0..need as u32).collect();
    for i in (1..free.len()).rev() {
        free.swap(i, rng.below(i + 1));
    }
    let mut b = BatchInput {
        tokens: vec![],
        positions: vec![],
        slot_mapping: vec![],
        seqs: vec![],
    };
    for &(computed, new) in &case.seqs {
        let n_blocks = (computed + new).div_ceil(block_size);
        let table: Vec<u32> = free.drain(..n_blocks).collect();
        for p in computed..computed + new {
            b.tokens.push(1);
            b.positions.push(p as u32);
            b.slot_mapping
                .push(table[p / block_size] * block_size as u32 + (p % block_size) as u32);
        }
        b.seqs.push(SeqInput {
            block_table: table,
            num_computed: computed,
            num_new: new,
            needs_logits: true,
            pick: Default::default(),
        });
    }
    (b, need)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One case's launch inputs on the GPU, the pools aside.
struct Launch<'a> {
    gpu: &'a Gpu,
    q: &'a CudaSlice<f32>,
    block_size: usize,
    batch: &'a DeviceBatch,
    shape: AttnShape,
}

impl Launch<'_> {
    /// Every kernel variant over pools `k`, `v` (labelled `pools`) against `want`:
    /// prints each one's error and median time, returns the worst relative error.
    fn check<K: PoolElem>(
        &self,
        case: &str,
        pools: &str,
        k: &CudaSlice<K>,
        v: &CudaSlice<K>,
        want: &[f32],
        cpu_us: f64,
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let st = &self.gpu.stream;
        let mut worst = 0f64;
        for variant in [Variant::PerHead, Variant::Grouped, Variant::Split] {
            let run = |out: &mut CudaSlice<f32>| {
                launch(
                    self.gpu,
                    out,
                    self.q,
                    k,
                    v,
                    self.block_size,
                    self.batch,
                    self.shape,
                    variant,
                )
            };
            // Poisoned: every element must be written.
            let mut dout = st.memcpy_stod(&vec![f32::NAN; want.len()])?;
            run(&mut dout)?;
            let got = st.memcpy_dtov(&dout)?;
            let (mut num, mut den) = (0f64, 0f64);
            for (g, w) in got.iter().zip(want) {
                let d = *g as f64 - *w as f64;
                num += if d.is_nan() { f64::INFINITY } else { d * d };
                den += (*w as f64) * (*w as f64);
            }
            let rel = (num / den.max(1e-30)).sqrt();
            worst = worst.max(rel);
            let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
            let mut times = Vec::new();
            for _ in 0..30 {
                let start = st.record_event(timing)?;
                run(&mut dout)?;
                let end = st.record_event(timing)?;
                end.synchronize()?;
                times.push(start.elapsed_ms(&end)? as f64 * 1e3);
            }
            println!(
                "{:<52} {:>9} {:>10.2e} {:>10.1} {:>10.0}",
                case,
                format!("{variant:?}/{pools}"),
                rel,
                median(times),
                cpu_us
            );
        }
        Ok(worst)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let gpu = Gpu::new(0)?;
    println!(
        "GPU sm_{}{} ready (context + NVRTC compile) in {:.0} ms",
        gpu.capability.0,
        gpu.capability.1,
        t0.elapsed().as_secs_f64() * 1e3
    );
    let llama = |window, softcap| AttnShape {
        num_heads: 24,
        num_kv_heads: 8,
        head_dim: 128,
        scale: 128f32.powf(-0.5),
        window,
        softcap,
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let decode: Vec<(usize, usize)> = (0..32).map(|_| (64 + rng.below(2000), 1)).collect();
    let cases = vec![
        Case {
            name: "decode 32 seqs, ctx 64-2064, 24/8 heads x 128",
            seqs: decode,
            shape: llama(None, None),
        },
        Case {
            name: "prefill 512 on a 1000-token prefix",
            seqs: vec![(1000, 512)],
            shape: llama(None, None),
        },
        Case {
            name: "mixed: 3 decodes + 2 prefill chunks",
            seqs: vec![(300, 1), (17, 1), (999, 1), (0, 200), (48, 64)],
            shape: llama(None, None),
        },
        Case {
            name: "smollm2-like: 6 decodes + a prefill chunk, 9/3 heads x 64",
            seqs: vec![
                (1, 1),
                (37, 1),
                (130, 1),
                (511, 1),
                (1500, 1),
                (2047, 1),
                (90, 33),
            ],
            shape: AttnShape {
                num_heads: 9,
                num_kv_heads: 3,
                head_dim: 64,
                scale: 0.125,
                window: None,
                softcap: None,
            },
        },
        Case {
            name: "gemma-like: window 64, softcap 50, 8/4 heads x 256",
            seqs: vec![(500, 1), (70, 40), (0, 100)],
            shape: AttnShape {
                num_heads: 8,
                num_kv_heads: 4,
                head_dim: 256,
                scale: 0.0625,
                window: Some(64),
                softcap: Some(50.0),
            },
        },
    ];
    let block_size = 16;
    let mut worst = 0f64;
    println!(
        "{:<52} {:>9} {:>10} {:>10} {:>10}",
        "case", "kernel", "rel err", "gpu us", "cpu us"
    );
    for case in &cases {
        let (batch, num_blocks) = batch_for(case, block_size, &mut rng);
        let s = case.shape;
        let layout = KvCacheLayout {
            num_layers: 1,
            num_kv_heads: s.num_kv_heads,
            head_dim: s.head_dim,
            block_size,
            num_blocks,
        };
        let meta = AttnMeta::new(&batch, &layout)?;
        let pool = num_blocks * block_size * s.num_kv_heads * s.head_dim;
        let k: Vec<f32> = (0..pool).map(|_| rng.uniform()).collect();
        let v: Vec<f32> = (0..pool).map(|_| rng.uniform()).collect();
        let t = batch.tokens.len();
        let q: Vec<f32> = (0..t * s.num_heads * s.head_dim)
            .map(|_| rng.uniform() * 2.0)
            .collect();

        // The pools as f32, then as f16 (`--kv-cache-dtype f16`) against the CPU kernel
        // over the same f16 pools.
        let (k16, v16): (Vec<f16>, Vec<f16>) = (
            k.iter().map(|&x| f16::from_f32(x)).collect(),
            v.iter().map(|&x| f16::from_f32(x)).collect(),
        );
        let bits = |p: &[f16]| p.iter().map(|h| h.to_bits()).collect::<Vec<u16>>();
        let st = &gpu.stream;
        let dq = st.memcpy_stod(&q)?;
        let db = DeviceBatch::upload(&gpu, &batch, &meta)?;
        let mut want32 = vec![0f32; q.len()];
        let c0 = Instant::now();
        // The GPU keeps K rows like V's; the CPU kernel reads K slot-minor (`KvPool`).
        let (cpu_k, cpu_k16) = (layout.k_pool_from_rows(&k), layout.k_pool_from_rows(&k16));
        paged_attention(&q, &cpu_k, &v, block_size, &batch, &meta, s, &mut want32)?;
        let cpu32 = c0.elapsed().as_secs_f64() * 1e6;
        let mut want16 = vec![0f32; q.len()];
        let c0 = Instant::now();
        paged_attention(
            &q,
            &cpu_k16,
            &v16,
            block_size,
            &batch,
            &meta,
            s,
            &mut want16,
        )?;
        let cpu16 = c0.elapsed().as_secs_f64() * 1e6;
        let on_gpu = Launch {
            gpu: &gpu,
            q: &dq,
            block_size,
            batch: &db,
            shape: s,
        };
        let (dk, dv) = (st.memcpy_stod(&k)?, st.memcpy_stod(&v)?);
        let rel = on_gpu.check(case.name, "f32", &dk, &dv, &want32, cpu32)?;
        worst = worst.max(rel);
        let (dk, dv) = (st.memcpy_stod(&bits(&k16))?, st.memcpy_stod(&bits(&v16))?);
        let rel = on_gpu.check(case.name, "f16", &dk, &dv, &want16, cpu16)?;
        worst = worst.max(rel);
    }
    if worst > 1e-4 || worst.is_nan() {
        eprintln!("FAIL: GPU attention differs from the CPU kernel (worst rel err {worst:.2e})");
        std::process::exit(1);
    }
    println!("ok: worst relative error {worst:.2e}");
    Ok(())
}
