//! The CPU paged-attention kernel against a naive dense reference on random data.
mod common;

use common::{batch, max_abs_diff, Part, Rng};
use half::f16;
use hearth_models::attention::cpu::{paged_attention, paged_attention_int8, KvScales};
use hearth_models::attention::{AttnMeta, AttnShape};
use hearth_models::{KvCache, KvCacheLayout, KvDtype, KvPool, KvSide};

/// (num_computed, num_new) per sequence.
type Case = &'static [(usize, usize)];

/// Plain causal attention with scale 1/sqrt(hd).
fn causal_shape(nh: usize, nkv: usize, hd: usize) -> AttnShape {
    AttnShape {
        num_heads: nh,
        num_kv_heads: nkv,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        window: None,
        softcap: None,
    }
}

/// The kernel on layer 0's pools of `cache`, whichever their type.
fn attend_pools(
    cache: &KvCache,
    q: &[f32],
    block_size: usize,
    b: &hearth_models::BatchInput,
    meta: &AttnMeta,
    shape: AttnShape,
) -> Vec<f32> {
    let mut out = vec![0.0; q.len()];
    match (&cache.k[0], &cache.v[0]) {
        (KvPool::F32(k), KvPool::F32(v)) => {
            paged_attention(q, k, v, block_size, b, meta, shape, &mut out)
        }
        (KvPool::F16(k), KvPool::F16(v)) => {
            paged_attention(q, k, v, block_size, b, meta, shape, &mut out)
        }
        (KvPool::I8 { q: k, scale: ks }, KvPool::I8 { q: v, scale: vs }) => {
            let scales = KvScales { k: ks, v: vs };
            paged_attention_int8(q, (k, v), scales, block_size, b, meta, shape, &mut out)
        }
        _ => panic!("K and V pools of different types"),
    }
    .expect("kernel");
    out
}

/// Dense causal attention in f64 over each sequence's contiguous K/V.
fn reference(q: &[f32], k: &[Vec<f32>], v: &[Vec<f32>], case: Case, s: AttnShape) -> Vec<f32> {
    let (nh, nkv, hd) = (s.num_heads, s.num_kv_heads, s.head_dim);
    let mut out = Vec::new();
    let mut row = 0;
    for (si, &(computed, new)) in case.iter().enumerate() {
        for j in 0..new {
            let pos = computed + j;
            for h in 0..nh {
                let kvh = h / (nh / nkv);
                let qv = &q[(row * nh + h) * hd..][..hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|p| {
                        let kr = &k[si][(p * nkv + kvh) * hd..][..hd];
                        qv.iter()
                            .zip(kr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * s.scale as f64
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = w.iter().sum();
                for d in 0..hd {
                    let acc: f64 = (0..=pos)
                        .map(|p| w[p] * v[si][(p * nkv + kvh) * hd + d] as f64)
                        .sum();
                    out.push((acc / z) as f32);
                }
            }
            row += 1;
        }
    }
    out
}

fn run(
    case: Case,
    block_size: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
    q_gain: f32,
    seed: u64,
) -> f32 {
    run_full(
        KvDtype::F32,
        false,
        case,
        block_size,
        nh,
        nkv,
        hd,
        q_gain,
        seed,
    )
    .1
}

/// The kernel's output and its largest distance from the reference, the pool stored as
/// `dtype` (the reference sees the stored values, read back from the cache: for f16,
/// each K/V value rounded; for int8, each level times its head's scale);
/// with `round_f16` every K/V value is rounded to f16 before it is stored, whatever the
/// pool's type.
#[allow(clippy::too_many_arguments)]
fn run_full(
    dtype: KvDtype,
    round_f16: bool,
    case: Case,
    block_size: usize,
    nh: usize,
    nkv: usize,
    hd: usize,
    q_gain: f32,
    seed: u64,
) -> (Vec<f32>, f32) {
    let mut rng = Rng(seed);
    let rounded = |x: Vec<f32>| match round_f16 {
        true => x.iter().map(|&y| f16::from_f32(y).to_f32()).collect(),
        false => x,
    };
    let blocks_per_seq: Vec<usize> = case
        .iter()
        .map(|&(c, n)| (c + n).div_ceil(block_size))
        .collect();
    let num_blocks = blocks_per_seq.iter().sum::<usize>() + 3; // a few never used
    let layout = KvCacheLayout {
        num_layers: 1,
        num_kv_heads: nkv,
        head_dim: hd,
        block_size,
        num_blocks,
    };
    let mut cache = KvCache::with_dtype(layout, dtype);
    // Shuffled block ids: tables are neither contiguous nor ordered.
    let ids = rng.perm(num_blocks);
    let mut tables = Vec::new();
    let mut next = 0;
    for &n in &blocks_per_seq {
        tables.push(ids[next..next + n].to_vec());
        next += n;
    }
    // Fill each sequence's whole context (earlier steps and this one) in the pool.
    let (mut k_all, mut v_all) = (Vec::new(), Vec::new());
    for (si, &(c, n)) in case.iter().enumerate() {
        let (k, v) = (rng.vec((c + n) * nkv * hd), rng.vec((c + n) * nkv * hd));
        let (k, v) = (rounded(k), rounded(v));
        let all: Vec<u32> = vec![0; c + n];
        let b = batch(
            &[Part {
                block_table: &tables[si],
                num_computed: 0,
                tokens: &all,
                needs_logits: false,
            }],
            block_size,
        );
        cache.write(0, &k, &v, &b.slot_mapping);
        let stored = |side| -> Vec<f32> {
            let per_slot = (0..nkv).flat_map(|h| (0..hd).map(move |d| (h, d)));
            b.slot_mapping
                .iter()
                .flat_map(|&slot| per_slot.clone().map(move |(h, d)| (slot, h, d)))
                .map(|(slot, h, d)| cache.stored(side, 0, slot as usize, h, d).expect("stored"))
                .collect()
        };
        if dtype != KvDtype::Int8 {
            // Where the values stay within 0.2% of the originals, any f16 rounding
            // aside: the read-back is where they were written.
            let near = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 2e-3 * x.abs().max(1e-3))
            };
            assert!(near(&stored(KvSide::K), &k) && near(&stored(KvSide::V), &v));
        }
        k_all.push(stored(KvSide::K));
        v_all.push(stored(KvSide::V));
    }
    let toks: Vec<Vec<u32>> = case.iter().map(|&(_, n)| vec![0; n]).collect();
    let parts: Vec<Part> = case
        .iter()
        .enumerate()
        .map(|(si, &(c, _))| Part {
            block_table: &tables[si],
            num_computed: c,
            tokens: &toks[si],
            needs_logits: true,
        })
        .collect();
    let b = batch(&parts, block_size);
    let meta = AttnMeta::new(&b, &layout).expect("valid batch");
    let shape = causal_shape(nh, nkv, hd);
    let q: Vec<f32> = rng
        .vec(b.tokens.len() * nh * hd)
        .iter()
        .map(|x| x * q_gain)
        .collect();
    let out = attend_pools(&cache, &q, block_size, &b, &meta, shape);
    assert!(out.iter().all(|x| x.is_finite()));
    let err = max_abs_diff(&out, &reference(&q, &k_all, &v_all, case, shape));
    (out, err)
}

#[test]
fn matches_dense_reference_prefill_chunks_and_decode() {
    // Fresh prefill, a chunk after 13 cached tokens, decodes with partial last blocks.
    let case: Case = &[(0, 9), (13, 7), (40, 1), (1, 1), (0, 1), (31, 1)];
    for (bs, nh, nkv, hd) in [(4, 6, 2, 16), (16, 9, 3, 64), (8, 4, 4, 12), (16, 8, 1, 8)] {
        let err = run(case, bs, nh, nkv, hd, 1.0, 7 + bs as u64);
        assert!(
            err < 1e-5,
            "bs {bs} nh {nh} nkv {nkv} hd {hd}: max abs err {err}"
        );
    }
}

/// f16 pools: the kernel widens each stored value exactly, so against the reference on
/// the f16-rounded values it is as close as the f32 kernel is to its own.
#[test]
fn f16_pools_match_reference_on_stored_values() {
    let case: Case = &[(0, 9), (13, 7), (40, 1), (1, 1), (0, 1), (31, 1), (100, 37)];
    for (bs, nh, nkv, hd) in [(4, 6, 2, 16), (16, 9, 3, 64), (8, 4, 4, 12), (16, 8, 1, 8)] {
        let (_, err) = run_full(
            KvDtype::F16,
            false,
            case,
            bs,
            nh,
            nkv,
            hd,
            1.0,
            11 + bs as u64,
        );
        assert!(
            err < 1e-5,
            "f16 bs {bs} nh {nh} nkv {nkv} hd {hd}: max abs err {err}"
        );
    }
}

/// int8 pools: against the reference on the values they stand for (each level times its
/// head's scale) the kernel is as close as the f32 kernel is to its own; against the
/// f32 pool's output on the original values, within what half a level moves a score.
#[test]
fn int8_pools_match_reference_on_stored_values_and_stay_near_f32() {
    let case: Case = &[(0, 9), (13, 7), (40, 1), (1, 1), (0, 1), (31, 1), (100, 37)];
    for (bs, nh, nkv, hd) in [(4, 6, 2, 16), (16, 9, 3, 64), (8, 4, 4, 12), (16, 8, 1, 8)] {
        let seed = 13 + bs as u64;
        let (int8, err) = run_full(KvDtype::Int8, false, case, bs, nh, nkv, hd, 1.0, seed);
        assert!(
            err < 1e-5,
            "int8 bs {bs} nh {nh} nkv {nkv} hd {hd}: max abs err {err}"
        );
        let (full, _) = run_full(KvDtype::F32, false, case, bs, nh, nkv, hd, 1.0, seed);
        let off = max_abs_diff(&int8, &full);
        // Values in [-1, 1): each off by at most 1/254 of its head's largest.
        assert!(
            off < 2e-2 && off > 0.0,
            "int8 bs {bs} nh {nh} nkv {nkv} hd {hd}: {off} from the f32 pool"
        );
    }
}

/// An f16 pool gives the very bits of an f32 pool holding the same (f16) values: the
/// kernel widens exactly, whether it reads K in place (block size 16) or from
/// a padded copy (4 and 8), for tiles of few queries (several chunks a pass) or many.
#[test]
fn f16_pools_give_the_bits_of_f32_pools_of_the_same_values() {
    let case: Case = &[(0, 9), (13, 7), (40, 1), (1, 1), (100, 37), (0, 33)];
    for (bs, nh, nkv, hd) in [(16, 9, 3, 64), (8, 4, 4, 12), (16, 8, 1, 8), (4, 6, 2, 16)] {
        let (half, _) = run_full(KvDtype::F16, true, case, bs, nh, nkv, hd, 1.0, 5);
        let (full, _) = run_full(KvDtype::F32, true, case, bs, nh, nkv, hd, 1.0, 5);
        let same = half
            .iter()
            .zip(&full)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "bs {bs} nh {nh} nkv {nkv} hd {hd}: f16 and f32 pools differ"
        );
    }
}

#[test]
fn long_contexts_cross_many_blocks() {
    // Contexts longer than the kernel's 32-key chunk and than several blocks.
    let case: Case = &[(100, 37), (0, 90), (255, 1)];
    for bs in [16, 64] {
        let err = run(case, bs, 9, 3, 64, 1.0, 99);
        assert!(err < 1e-5, "bs {bs}: max abs err {err}");
    }
}

#[test]
fn large_scores_stay_stable() {
    // Scores around +-100 would overflow a naive exp; the running max keeps them finite.
    let err = run(&[(20, 20), (70, 1)], 16, 4, 2, 32, 60.0, 3);
    assert!(err < 1e-4, "max abs err {err}");
}

#[test]
fn rejects_inconsistent_batches() {
    let layout = KvCacheLayout {
        num_layers: 1,
        num_kv_heads: 1,
        head_dim: 8,
        block_size: 4,
        num_blocks: 2,
    };
    let toks = [0u32; 5];
    // Table of 2 blocks covers 8 tokens; block 5 is outside the pool.
    let mut b = batch(
        &[Part {
            block_table: &[1, 0],
            num_computed: 0,
            tokens: &toks,
            needs_logits: true,
        }],
        4,
    );
    assert!(AttnMeta::new(&b, &layout).is_ok());
    b.slot_mapping[3] = 0;
    assert!(AttnMeta::new(&b, &layout).is_err(), "wrong slot accepted");
    let mut b = batch(
        &[Part {
            block_table: &[1, 0, 1],
            num_computed: 4,
            tokens: &toks[..5],
            needs_logits: true,
        }],
        4,
    );
    b.seqs[0].block_table.pop();
    assert!(
        AttnMeta::new(&b, &layout).is_err(),
        "context beyond the table accepted"
    );
    let mut b = batch(
        &[Part {
            block_table: &[1, 0],
            num_computed: 0,
            tokens: &toks[..2],
            needs_logits: true,
        }],
        4,
    );
    b.seqs[0].block_table = vec![5, 0];
    assert!(
        AttnMeta::new(&b, &layout).is_err(),
        "block outside pool accepted"
    );
}

/// Each query of a prefill chunk over a cached prefix gets the very bits it gets as a
/// decode step of its own (the same sequence's blocks, one new token each): tiles of
/// many queries (whole chunks scored 4 at a time, V sums shared by up to 6 queries) and
/// of few (one row's group, or one head) do each query's operations in the same order.
#[test]
fn a_query_gets_the_same_bits_in_a_prefill_tile_and_in_a_decode_step() {
    let (cached, new): (usize, usize) = (200, 37);
    for (dtype, bs) in [
        (KvDtype::F16, 16),
        (KvDtype::F32, 16),
        (KvDtype::F16, 4),
        (KvDtype::Int8, 16),
        (KvDtype::Int8, 4),
    ] {
        let (nh, nkv, hd) = (9, 3, 64);
        let mut rng = Rng(23 + bs as u64);
        let blocks = (cached + new).div_ceil(bs);
        let layout = KvCacheLayout {
            num_layers: 1,
            num_kv_heads: nkv,
            head_dim: hd,
            block_size: bs,
            num_blocks: blocks + 2,
        };
        let mut cache = KvCache::with_dtype(layout, dtype);
        let table: Vec<u32> = rng.perm(blocks + 2)[..blocks].to_vec();
        let all = vec![0u32; cached + new];
        let whole = batch(
            &[Part {
                block_table: &table,
                num_computed: 0,
                tokens: &all,
                needs_logits: false,
            }],
            bs,
        );
        let (k, v) = (rng.vec(all.len() * nkv * hd), rng.vec(all.len() * nkv * hd));
        cache.write(0, &k, &v, &whole.slot_mapping);
        let shape = causal_shape(nh, nkv, hd);
        let q = rng.vec(new * nh * hd);
        let attend = |parts: &[Part], q: &[f32]| {
            let b = batch(parts, bs);
            let meta = AttnMeta::new(&b, &layout).expect("valid batch");
            attend_pools(&cache, q, bs, &b, &meta, shape)
        };
        let chunk = vec![0u32; new];
        let prefill = attend(
            &[Part {
                block_table: &table,
                num_computed: cached,
                tokens: &chunk,
                needs_logits: true,
            }],
            &q,
        );
        // One decode step a token: a batch of `new` sequences over the same blocks.
        let decodes: Vec<Part> = (0..new)
            .map(|j| Part {
                block_table: &table,
                num_computed: cached + j,
                tokens: &chunk[j..j + 1],
                needs_logits: true,
            })
            .collect();
        let decode = attend(&decodes, &q);
        // Few sequences: tiles of one head each.
        let last = (new - 1) * nh * hd;
        let alone = attend(&decodes[new - 1..], &q[last..]);
        assert!(prefill.iter().all(|x| x.is_finite()));
        let differ = prefill
            .iter()
            .zip(&decode)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "{dtype:?} bs {bs}: prefill and decode differ");
        assert!(
            prefill[last..]
                .iter()
                .zip(&alone[..nh * hd])
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{dtype:?} bs {bs}: a lone decode differs"
        );
    }
}
