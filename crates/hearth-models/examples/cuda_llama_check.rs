//! The GPU llama against the CPU llama on the same weights: two sequences prefilled
//! together, then greedy decoding, comparing logits at every step and the greedy
//! tokens. Run on a machine with a GPU:
//!   cuda_llama_check MODEL.gguf|HF_DIR [f32|bf16|q-f32|q-bf16] [STEPS] [f32|f16]
//! With f32 the GPU holds the CPU's weights exactly; with bf16 (what `serve` uses for
//! a safetensors folder) the CPU reference gets the same bf16-rounded weights, so the
//! comparison is of the arithmetic (bf16 activations into the matrix products) and not
//! of the storage. With q-f32 / q-bf16 (a GGUF file; q-bf16 is what `serve` uses) the
//! GPU keeps the file's quantized blocks and the CPU reference is the same file
//! dequantized to f32: the same weight values, f32 or bf16 activations (quantized to
//! int16 in groups of 16 for the products of decode steps: ~2e-5 of each product).
//! The last argument is what both models store K and V in (default f32; f16 is
//! `--kv-cache-dtype f16`). Exits non-zero when the logits or greedy tokens differ
//! beyond the dtype's bound.

use std::time::Instant;

use candle_core::Device;
use hearth_models::cuda::llama::{round_weights_to_bf16, CudaLlama, GpuDtype};
use hearth_models::{
    BatchInput, CausalLm, KvCache, KvCacheLayout, KvDtype, Next, Pick, SeqInput, TopLogits,
    TOP_CANDIDATES,
};

const BLOCK: usize = 16;

/// One sequence's state: its tokens and the blocks holding them.
struct Seq {
    tokens: Vec<u32>,
    computed: usize,
    table: Vec<u32>,
}

/// The step that feeds every sequence its tokens not yet computed.
fn step(seqs: &[Seq]) -> BatchInput {
    let mut b = BatchInput {
        tokens: vec![],
        positions: vec![],
        slot_mapping: vec![],
        seqs: vec![],
    };
    for s in seqs {
        for p in s.computed..s.tokens.len() {
            b.tokens.push(s.tokens[p]);
            b.positions.push(p as u32);
            b.slot_mapping
                .push(s.table[p / BLOCK] * BLOCK as u32 + (p % BLOCK) as u32);
        }
        b.seqs.push(SeqInput {
            block_table: s.table.clone(),
            num_computed: s.computed,
            num_new: s.tokens.len() - s.computed,
            needs_logits: true,
            pick: Default::default(),
        });
    }
    b
}

/// The first index of the largest value, as the engine's argmax (NaN ignored).
fn argmax(v: &[f32]) -> u32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    v.iter().position(|&x| x == max).unwrap_or(0) as u32
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let (mut n, mut d) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        n += ((*x - *y) as f64).powi(2);
        d += (*y as f64).powi(2);
    }
    (n / d.max(1e-30)).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or(
        "usage: cuda_llama_check MODEL.gguf|HF_DIR [f32|bf16|q-f32|q-bf16] [STEPS] [f32|f16]",
    )?;
    let (dtype, quantized) = match args.get(2).map(String::as_str) {
        None | Some("f32") => (GpuDtype::F32, false),
        Some("bf16") => (GpuDtype::Bf16, false),
        Some("q-f32") => (GpuDtype::F32, true),
        Some("q-bf16") => (GpuDtype::Bf16, true),
        Some(other) => return Err(format!("dtype {other}: f32, bf16, q-f32 or q-bf16").into()),
    };
    let steps: usize = args.get(3).map_or(Ok(24), |s| s.parse())?;
    let kv: KvDtype = args.get(4).map_or(Ok(KvDtype::F32), |s| s.parse())?;
    let mut cpu = if std::path::Path::new(path).is_dir() {
        hearth_models::hf_load::load_llama_dir(std::path::Path::new(path))?
    } else {
        let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
        let content = hearth_models::gguf_read::read_content(&mut file, path)?;
        hearth_models::llama::load(&content, &mut file, &Device::Cpu, true)?
    };
    if dtype == GpuDtype::Bf16 && !quantized {
        round_weights_to_bf16(&mut cpu)?;
    }
    let t0 = Instant::now();
    let mut gpu = if quantized {
        let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
        let content = hearth_models::gguf_read::read_content(&mut file, path)?;
        let stored = hearth_models::llama::load_as(
            &content,
            &mut file,
            &Device::Cpu,
            hearth_models::quant::MatrixForm::Stored,
        )?;
        CudaLlama::from_cpu(&stored, 0, dtype)?
    } else {
        CudaLlama::from_cpu(&cpu, 0, dtype)?
    };
    println!(
        "weights on the GPU in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let spec = cpu.spec().clone();
    let layout = KvCacheLayout {
        num_layers: spec.num_layers,
        num_kv_heads: spec.num_kv_heads,
        head_dim: spec.head_dim,
        block_size: BLOCK,
        num_blocks: 64,
    };
    let (mut cpu_cache, mut gpu_cache) = (
        KvCache::with_dtype(layout, kv),
        KvCache::with_dtype(layout, kv),
    );
    // Two prompts of different lengths, blocks interleaved between them.
    let vocab = spec.vocab_size as u32;
    let prompt = |n: usize, salt: u32| {
        (0..n as u32)
            .map(|i| (i * 7919 + salt * 104_729 + 17) % vocab)
            .collect::<Vec<_>>()
    };
    let mut seqs = vec![
        Seq {
            tokens: prompt(37, 1),
            computed: 0,
            table: (0..32).map(|i| 2 * i).collect(),
        },
        Seq {
            tokens: prompt(21, 2),
            computed: 0,
            table: (0..32).map(|i| 2 * i + 1).collect(),
        },
    ];
    let (mut worst, mut agree, mut total) = (0f64, 0usize, 0usize);
    let mut decode_ms = Vec::new();
    for s in 0..steps {
        let batch = step(&seqs);
        let want = cpu.forward(&batch, &mut cpu_cache)?;
        let t = Instant::now();
        let got = gpu.forward(&batch, &mut gpu_cache)?;
        if s > 0 {
            decode_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            worst = worst.max(rel_err(g, w));
            let (tg, tw) = (argmax(g), argmax(w));
            total += 1;
            agree += usize::from(tg == tw);
            seqs[i].computed = seqs[i].tokens.len();
            // Both continue with the CPU's choice, so later steps stay comparable.
            seqs[i].tokens.push(tw);
        }
    }
    decode_ms.sort_by(|a, b| a.total_cmp(b));
    // Decode steps alone, the GPU model only: launch by launch and as replayed graphs,
    // products by cuBLAS and by the GEMV kernel, with and without the fused kernels
    // (`fused_step.rs`; twice at batch 1, alternately, for the noise) (batch 2: the
    // same two sequences, 16 steps each; batch 1: the first of them; the first graph
    // step captures).
    for (width, graphs, gemv, fuse) in [
        (2, false, true, true),
        (2, true, false, true),
        (2, true, true, false),
        (2, true, true, true),
        (1, true, true, false),
        (1, true, true, true),
        (1, true, true, false),
        (1, true, true, true),
    ] {
        gpu.set_graphs(graphs);
        gpu.set_gemv(gemv);
        gpu.set_fuse(fuse);
        let mut times = Vec::new();
        for _ in 0..16 {
            let batch = step(&seqs[..width]);
            let t = Instant::now();
            let got = gpu.forward(&batch, &mut gpu_cache)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            for (i, g) in got.iter().enumerate() {
                seqs[i].computed = seqs[i].tokens.len();
                seqs[i].tokens.push(argmax(g));
            }
        }
        times.remove(0);
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "decode step, batch {width}, graphs {}, products by {}, fused {}: median {:.3} ms (15 steps)",
            if graphs { "on " } else { "off" },
            if gemv { "GEMV  " } else { "cuBLAS" },
            if fuse { "on " } else { "off" },
            times[times.len() / 2]
        );
    }
    gpu.set_fuse(true);
    gpu.set_pdl(true);
    // The GPU's own argmax (`step` with greedy sequences) against the first maximum of
    // the same step's logits: the step runs again over the same tokens (each run
    // writes the same K/V again). Then the first sequence samples (its head on the
    // GPU) beside greedy ones, and its whole row comes back as `last_logits`.
    let mut b = step(&seqs);
    let logits = gpu.forward(&b, &mut gpu_cache)?;
    b.seqs.iter_mut().for_each(|s| s.pick = Pick::Argmax);
    let next = gpu.step(&b, &mut gpu_cache)?;
    let argmax_same = logits
        .iter()
        .zip(&next)
        .filter(|(l, n)| **n == Next::Token(argmax(l)))
        .count();
    println!(
        "GPU argmax: {argmax_same} of {} sequences as the host's",
        logits.len()
    );
    b.seqs[0].pick = Pick::Sample { temperature: 0.8 };
    let next = gpu.step(&b, &mut gpu_cache)?;
    let row = gpu.last_logits(0)?;
    let head_ok = match &next[0] {
        Next::Top(h) => {
            // Against the row of the same step (a rerun may round differently).
            let host = TopLogits::of_row(&row, 0.8, TOP_CANDIDATES);
            let (mut g, mut w) = (h.top.clone(), host.top.clone());
            g.sort_by(|a, b| b.1.total_cmp(&a.1));
            w.sort_by(|a, b| b.1.total_cmp(&a.1));
            let same_values = g.iter().map(|p| p.1).eq(w.iter().map(|p| p.1));
            let rel = ((h.mass - host.mass) / host.mass).abs();
            println!(
                "GPU head: {} candidates, values as the host's: {same_values}; normalizer rel err {rel:.1e}; finite {} vs {}",
                g.len(),
                h.finite,
                host.finite
            );
            same_values && rel < 1e-5 && h.finite == host.finite
        }
        other => {
            println!("GPU head: got {other:?}");
            false
        }
    };
    let rest_greedy = (1..logits.len()).all(|s| next[s] == Next::Token(argmax(&logits[s])));
    let row_err = rel_err(&row, &logits[0]);
    println!("GPU last_logits: rel err {row_err:.1e} against the first run's row");
    if argmax_same != logits.len()
        || !head_ok
        || row_err.is_nan()
        || row_err >= 1e-4
        || !rest_greedy
    {
        eprintln!("FAIL: the GPU's picks differ from the host's (argmax, head, row or mixed step)");
        std::process::exit(1);
    }
    println!(
        "{dtype:?}{}, {kv} K/V: steps {steps} (1 prefill + {} decode, batch 2): logits rel err worst {worst:.2e}; greedy agree {agree}/{total}; GPU decode step median {:.2} ms",
        if quantized { " (quantized weights)" } else { "" },
        steps - 1,
        decode_ms.get(decode_ms.len() / 2).copied().unwrap_or(f64::NAN)
    );
    // bf16 activations (8 significant bits) into each product: ~1e-2 of the logits'
    // norm; a wrong kernel is off by O(1). Near-ties may flip a greedy token in bf16.
    let (bound, min_agree) = match dtype {
        GpuDtype::F32 => (1e-3, total),
        GpuDtype::Bf16 => (5e-2, total * 9 / 10),
    };
    if agree < min_agree || worst > bound || worst.is_nan() {
        eprintln!("FAIL: the GPU llama differs from the CPU llama");
        std::process::exit(1);
    }
    println!("ok");
    Ok(())
}
