//! Sliding-window and soft-capped paged attention (Gemma 3 local layers) against a dense
//! masked reference, and a check that blocks before the window are never read.
mod common;

use common::{batch, max_abs_diff, Part, Rng};
use hearth_models::attention::cpu::paged_attention;
use hearth_models::attention::{AttnMeta, AttnShape};
use hearth_models::{KvCache, KvCacheLayout};

const BS: usize = 4;

/// Dense attention in f64 of one sequence: row `j` (position `start + j`) sees keys
/// `pos + 1 - window ..= pos`, scores soft-capped when asked.
fn reference(q: &[f32], k: &[f32], v: &[f32], start: usize, s: AttnShape) -> Vec<f32> {
    let (nh, nkv, hd) = (s.num_heads, s.num_kv_heads, s.head_dim);
    let rows = q.len() / (nh * hd);
    let mut out = Vec::new();
    for j in 0..rows {
        let pos = start + j;
        let lo = s.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        for h in 0..nh {
            let kvh = h / (nh / nkv);
            let qv = &q[(j * nh + h) * hd..][..hd];
            let scores: Vec<f64> = (lo..=pos)
                .map(|p| {
                    let kr = &k[(p * nkv + kvh) * hd..][..hd];
                    let x = qv.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64);
                    let x = x.sum::<f64>() * s.scale as f64;
                    s.softcap.map_or(x, |c| c as f64 * (x / c as f64).tanh())
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = w.iter().sum();
            for d in 0..hd {
                let acc: f64 = (lo..=pos)
                    .map(|p| w[p - lo] * v[(p * nkv + kvh) * hd + d] as f64)
                    .sum();
                out.push((acc / z) as f32);
            }
        }
    }
    out
}

/// One sequence with `computed` cached tokens feeding `new` more; K/V rows at positions
/// below `poison_below` are NaN in the pool. Returns (kernel output, reference).
fn run(computed: usize, new: usize, shape: AttnShape, poison_below: usize) -> (Vec<f32>, Vec<f32>) {
    let (nkv, hd) = (shape.num_kv_heads, shape.head_dim);
    let ctx = computed + new;
    let mut rng = Rng(11 + ctx as u64);
    let nblocks = ctx.div_ceil(BS);
    let layout = KvCacheLayout {
        num_layers: 1,
        num_kv_heads: nkv,
        head_dim: hd,
        block_size: BS,
        num_blocks: nblocks + 2,
    };
    let mut cache = KvCache::new(layout);
    let table: Vec<u32> = rng.perm(nblocks + 2)[..nblocks].to_vec();
    let (mut k, mut v) = (rng.vec(ctx * nkv * hd), rng.vec(ctx * nkv * hd));
    let zeros = vec![0u32; ctx];
    let all = batch(
        &[Part {
            block_table: &table,
            num_computed: 0,
            tokens: &zeros,
            needs_logits: false,
        }],
        BS,
    );
    let want = {
        let q = rng.vec(new * shape.num_heads * hd);
        let r = reference(&q, &k, &v, computed, shape);
        (q, r)
    };
    for x in k[..poison_below * nkv * hd].iter_mut() {
        *x = f32::NAN;
    }
    for x in v[..poison_below * nkv * hd].iter_mut() {
        *x = f32::NAN;
    }
    cache.write(0, &k, &v, &all.slot_mapping);
    let b = batch(
        &[Part {
            block_table: &table,
            num_computed: computed,
            tokens: &zeros[..new],
            needs_logits: true,
        }],
        BS,
    );
    let meta = AttnMeta::new(&b, &layout).expect("valid batch");
    let mut out = vec![0.0; want.0.len()];
    paged_attention(
        &want.0,
        cache.k[0].as_f32().expect("f32 pool"),
        cache.v[0].as_f32().expect("f32 pool"),
        BS,
        &b,
        &meta,
        shape,
        &mut out,
    )
    .expect("kernel");
    (out, want.1)
}

fn shape(window: Option<usize>, softcap: Option<f32>) -> AttnShape {
    AttnShape {
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 16,
        scale: 0.25,
        window,
        softcap,
    }
}

#[test]
fn window_and_softcap_match_dense_masked_reference() {
    // Prefill chunks that start before, inside and past the window; decodes far past it.
    for (computed, new) in [(0, 13), (3, 9), (10, 6), (37, 1), (64, 1)] {
        for (w, cap) in [
            (Some(4), None),
            (Some(5), Some(2.0)),
            (None, Some(0.5)),
            (Some(1), None),
        ] {
            let (got, want) = run(computed, new, shape(w, cap), 0);
            let err = max_abs_diff(&got, &want);
            assert!(
                err < 1e-5,
                "({computed},{new}) window {w:?} cap {cap:?}: err {err}"
            );
        }
    }
    // The window really masks: a full-context reference differs.
    let (got, _) = run(20, 4, shape(Some(4), None), 0);
    let (_, full) = run(20, 4, shape(None, None), 0);
    assert!(max_abs_diff(&got, &full) > 1e-2, "window 4 changed nothing");
}

#[test]
fn keys_before_the_window_are_never_read() {
    // Decode at position 40 with window 6 sees keys 35..=40: everything before 35 is NaN
    // (blocks 0..8 whole, and the first key of block 8), so any read would show.
    let (got, want) = run(40, 1, shape(Some(6), Some(3.0)), 35);
    assert!(
        got.iter().all(|x| x.is_finite()),
        "a key before the window was read"
    );
    assert!(max_abs_diff(&got, &want) < 1e-5);
    // Without the window the same pool poisons the output: the test can fail.
    let (got, _) = run(40, 1, shape(None, None), 35);
    assert!(got.iter().any(|x| x.is_nan()));
}

#[test]
fn zero_window_is_rejected() {
    let layout = KvCacheLayout {
        num_layers: 1,
        num_kv_heads: 2,
        head_dim: 16,
        block_size: BS,
        num_blocks: 1,
    };
    let cache = KvCache::new(layout);
    let b = batch(
        &[Part {
            block_table: &[0],
            num_computed: 0,
            tokens: &[0],
            needs_logits: true,
        }],
        BS,
    );
    let meta = AttnMeta::new(&b, &layout).expect("valid batch");
    let (q, mut out) = (vec![0.0; 64], vec![0.0; 64]);
    let r = paged_attention(
        &q,
        cache.k[0].as_f32().expect("f32 pool"),
        cache.v[0].as_f32().expect("f32 pool"),
        BS,
        &b,
        &meta,
        shape(Some(0), None),
        &mut out,
    );
    assert!(r.is_err(), "window 0 accepted");
}
