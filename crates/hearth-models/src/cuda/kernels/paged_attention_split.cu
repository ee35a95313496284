// Paged attention, one thread block per (token row, KV head, key split). Each warp
// takes one key at a time with its lanes across head_dim, so a K or V row is one
// coalesced load, and it serves every query head of the KV head's group (GQA: the
// row is read once per group). A row's keys are cut into `splits` ranges so that a
// batch of few rows still fills the GPU, and the ranges' partial softmax sums are
// folded together after (flash-decoding) by the last block of the (row, KV head) to
// finish: a ticket counter says which, so no second kernel (and kernel boundary) is
// needed. With one split the block writes the output itself.
//
// Layouts as paged_attention.cu (pools of f32 or f16 bits); part is [T, num_heads,
// splits, PART_STRIDE(head_dim)] (the weighted sum, then the running max and the
// denominator); tickets holds an int per (row, KV head), zero between launches (the
// last block puts it back).

#define SPLIT_WARPS 4
#define SPLIT_MAX_GROUP 8
// Keys a warp loads and scores at a time. A build switch for measuring
// (HEARTH_CUDA_DEFINE): 2 and 4 were no faster on an H100 (3B at batch 1; more
// registers, so fewer blocks an SM at larger batches).
#ifndef SPLIT_KEYS
#define SPLIT_KEYS 1
#endif

// D floats of a row from lane * D on: 16-byte loads where D allows.
template <int D>
__device__ __forceinline__ void load_lane(float* dst, const float* src) {
    if (D % 4 == 0) {
        #pragma unroll
        for (int i = 0; i < D; i += 4) {
            const float4 v = *reinterpret_cast<const float4*>(src + i);
            dst[i] = v.x; dst[i + 1] = v.y; dst[i + 2] = v.z; dst[i + 3] = v.w;
        }
    } else {
        #pragma unroll
        for (int i = 0; i < D; i += 2) {
            const float2 v = *reinterpret_cast<const float2*>(src + i);
            dst[i] = v.x; dst[i + 1] = v.y;
        }
    }
}

// A lane's D elements of a K or V row as loaded, and as floats when scored. f16 rows
// stay two values a word until then: converted at the load, the next key's rows were
// waited for at once, so no key was in flight while the current one was scored (H100,
// 32 sequences at 64-2064 positions: f16 278 -> 184 µs, f32 190 µs; 3B served c128
// TPOT with f16 K/V 17.86 ms against f32's 18.66 / 18.69 on the same machine).
template <int D, typename KV> struct LaneRow;
template <int D> struct LaneRow<D, float> {
    float v[D];
    __device__ __forceinline__ void load(const float* src) { load_lane<D>(v, src); }
    __device__ __forceinline__ void zero() {
        #pragma unroll
        for (int i = 0; i < D; ++i) v[i] = 0.f;
    }
    __device__ __forceinline__ void to_f32(float* dst) const {
        #pragma unroll
        for (int i = 0; i < D; ++i) dst[i] = v[i];
    }
};
template <int D> struct LaneRow<D, unsigned short> {
    unsigned v[D / 2];
    // 8-byte loads (4 values) where D allows, else 4-byte.
    __device__ __forceinline__ void load(const unsigned short* src) {
        if (D % 4 == 0) {
            #pragma unroll
            for (int i = 0; i < D / 2; i += 2) {
                const uint2 w = *reinterpret_cast<const uint2*>(src + 2 * i);
                v[i] = w.x; v[i + 1] = w.y;
            }
        } else {
            #pragma unroll
            for (int i = 0; i < D / 2; ++i) v[i] = *reinterpret_cast<const unsigned*>(src + 2 * i);
        }
    }
    __device__ __forceinline__ void zero() {
        #pragma unroll
        for (int i = 0; i < D / 2; ++i) v[i] = 0u;
    }
    __device__ __forceinline__ void to_f32(float* dst) const {
        #pragma unroll
        for (int i = 0; i < D / 2; ++i) {
            dst[2 * i] = f16_to_f32(v[i] & 0xffff);
            dst[2 * i + 1] = f16_to_f32(v[i] >> 16);
        }
    }
};

// Floats a split's partial sums take in part: the weighted sum (head_dim), the
// running max, the denominator, and 2 floats of padding, so that every split's sums
// start 16 bytes apart for the merge's float4 loads.
#define PART_STRIDE(hd) ((hd) + 4)

// The last block of a (row, KV head) folds its splits' partial sums: head
// first_head + g's splits are splits * PART_STRIDE floats from part + (first_head + g)
// * splits * PART_STRIDE, written by other blocks (read past L1). Warp g weighs head
// g's splits, a lane a split, each split's max and denominator loaded once: w[g *
// splits + s] = exp(max_s - the overall max), den[g] = the weighted denominators'
// sum, in shared memory (group * (2 * splits + 1) floats with the maxes' scratch m:
// split_plan keeps that inside the fold's buffer). Then a thread takes 4 output
// columns of a head and sums the splits' float4s, loads that do not wait on each
// other. (H100, 3B at batch 1, served TPOT: a split at a time, loads waiting on each
// other, 3.12 -> 2.90 ms; then a column a thread, three one after another, and each
// max loaded twice, 2.92 -> 2.86 ms.)
__device__ __forceinline__ void merge_splits(void* out, int out_bf16, const float* part,
                                             long first_head, int group, int head_dim,
                                             int splits, float* w, float* m, float* den) {
    const int stride = PART_STRIDE(head_dim), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int g = warp; g < group; g += SPLIT_WARPS) {
        const float* p = part + (first_head + g) * splits * stride;
        float mx = NEG_INF;
        for (int s = lane; s < splits; s += 32) {
            const float ms = __ldcg(p + s * stride + head_dim);
            m[g * splits + s] = ms;
            w[g * splits + s] = __ldcg(p + s * stride + head_dim + 1);
            mx = fmaxf(mx, ms);
        }
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
        float dsum = 0.f;
        for (int s = lane; s < splits; s += 32) {
            const float ms = m[g * splits + s];
            // A split that saw no key has max -inf: weight 0.
            const float f = ms == NEG_INF ? 0.f : __expf(ms - mx);
            dsum += w[g * splits + s] * f;
            w[g * splits + s] = f;
        }
        dsum = warp_sum(dsum);
        if (lane == 0) den[g] = dsum;
    }
    __syncthreads();
    const int quads = head_dim / 4;
    for (int idx = threadIdx.x; idx < group * quads; idx += blockDim.x) {
        const int g = idx / quads, d = 4 * (idx % quads);
        const float* p = part + (first_head + g) * splits * stride + d;
        const float* wg = w + g * splits;
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
        #pragma unroll 8
        for (int s = 0; s < splits; ++s) {
            const float4 v = __ldcg(reinterpret_cast<const float4*>(p + s * stride));
            sum.x += v.x * wg[s];
            sum.y += v.y * wg[s];
            sum.z += v.z * wg[s];
            sum.w += v.w * wg[s];
        }
        const float dg = den[g];
        const long o = (first_head + g) * head_dim + d;
        store_act(out, out_bf16, o, dg > 0.f ? sum.x / dg : 0.f);
        store_act(out, out_bf16, o + 1, dg > 0.f ? sum.y / dg : 0.f);
        store_act(out, out_bf16, o + 2, dg > 0.f ? sum.z / dg : 0.f);
        store_act(out, out_bf16, o + 3, dg > 0.f ? sum.w / dg : 0.f);
    }
}

template <int D, typename KV>
__device__ void split_attention(
    void* __restrict__ out, int out_bf16, float* __restrict__ part,
    const float* __restrict__ q, const KV* __restrict__ k_pool,
    const KV* __restrict__ v_pool, const int* __restrict__ block_tables,
    const int* __restrict__ token_seq, const int* __restrict__ positions,
    int num_heads, int num_kv_heads, int block_size, int max_blocks, float scale,
    int window, float softcap, int splits, int* __restrict__ tickets)
{
    const int hd = 32 * D;
    extern __shared__ float sm[];  // [SPLIT_WARPS][group][hd + 2]
    const int split = blockIdx.x % splits;
    const int pair = blockIdx.x / splits;
    const int row = pair / num_kv_heads, kvh = pair % num_kv_heads;
    const int group = num_heads / num_kv_heads;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int ctx = positions[row] + 1;
    const int first = window > 0 ? max(0, ctx - window) : 0;
    const int per = (ctx - first + splits - 1) / splits;
    const int lo = first + split * per, hi = min(ctx, lo + per);
    const int* table = block_tables + (long)token_seq[row] * max_blocks;
    const long row_stride = (long)num_kv_heads * hd;

    // A warp's keys KEYS at a time (keys j, j + SPLIT_WARPS, ...): their K and V rows
    // are loaded together, the next KEYS keys' rows in flight while these are scored,
    // and the running max moves once a batch. (Without the next keys' rows in flight,
    // 3B batch 1 on an H100 served TPOT 3.19 / 3.20 ms, with them 3.15 / 3.15.)
    constexpr int KEYS = SPLIT_KEYS;
    constexpr int STEP = SPLIT_WARPS * KEYS;
    const auto row_at = [&](int j) {
        return ((long)table[j / block_size] * block_size + j % block_size) * row_stride
               + (long)kvh * hd + lane * D;
    };
    // K and V rows of keys j + SPLIT_WARPS * b (zeros past hi).
    using Row = LaneRow<D, KV>;
    const auto load_keys = [&](Row (&kb)[KEYS], Row (&vb)[KEYS], int j) {
        #pragma unroll
        for (int b = 0; b < KEYS; ++b) {
            const int key = j + SPLIT_WARPS * b;
            if (key < hi) {
                kb[b].load(k_pool + row_at(key));
                vb[b].load(v_pool + row_at(key));
            } else {
                kb[b].zero();
                vb[b].zero();
            }
        }
    };
    Row kr[KEYS], vr[KEYS];
    // Before waiting for the kernel before (the q/k/v product, which writes q and this
    // step's K/V rows): the metadata above, uploaded before the step, and a warp's
    // first keys when they are older than every token of the step, so written by
    // earlier steps (a row's sequence has at most `rows` new tokens, so keys before
    // ctx - rows). (H100, 3B batch 1: a decode step 2.835 / 2.821 -> 2.810 / 2.800 ms.)
    const int rows = gridDim.x / (num_kv_heads * splits);
    const bool early = lo + warp + STEP - SPLIT_WARPS < min(hi, ctx - rows);
    if (early) load_keys(kr, vr, lo + warp);
    grid_enter();
    if (!early && lo + warp < hi) load_keys(kr, vr, lo + warp);

    float qr[SPLIT_MAX_GROUP][D], acc[SPLIT_MAX_GROUP][D];
    float m[SPLIT_MAX_GROUP], l[SPLIT_MAX_GROUP];
    #pragma unroll
    for (int g = 0; g < SPLIT_MAX_GROUP; ++g) {
        m[g] = NEG_INF;
        l[g] = 0.f;
        #pragma unroll
        for (int i = 0; i < D; ++i) { qr[g][i] = 0.f; acc[g][i] = 0.f; }
        if (g < group) {
            load_lane<D>(qr[g], q + ((long)row * num_heads + kvh * group + g) * hd + lane * D);
            #pragma unroll
            for (int i = 0; i < D; ++i) qr[g][i] *= scale;
        }
    }

    for (int j = lo + warp; j < hi; j += STEP) {
        Row kn[KEYS], vn[KEYS];
        if (j + STEP < hi) load_keys(kn, vn, j + STEP);
        float kf[KEYS][D], vf[KEYS][D];
        #pragma unroll
        for (int b = 0; b < KEYS; ++b) { kr[b].to_f32(kf[b]); vr[b].to_f32(vf[b]); }
        #pragma unroll
        for (int g = 0; g < SPLIT_MAX_GROUP; ++g) {
            if (g < group) {
                float s[KEYS];
                #pragma unroll
                for (int b = 0; b < KEYS; ++b) {
                    s[b] = 0.f;
                    #pragma unroll
                    for (int i = 0; i < D; ++i) s[b] += qr[g][i] * kf[b][i];
                }
                #pragma unroll
                for (int o = 16; o > 0; o >>= 1) {
                    #pragma unroll
                    for (int b = 0; b < KEYS; ++b) s[b] += __shfl_xor_sync(0xffffffff, s[b], o);
                }
                float nm = m[g];
                #pragma unroll
                for (int b = 0; b < KEYS; ++b) {
                    if (softcap > 0.f) s[b] = softcap * tanhf(s[b] / softcap);
                    // Keys past hi weigh nothing (key j itself is below hi, so nm is finite).
                    if (j + SPLIT_WARPS * b >= hi) s[b] = NEG_INF;
                    nm = fmaxf(nm, s[b]);
                }
                const float c = __expf(m[g] - nm);
                l[g] *= c;
                #pragma unroll
                for (int i = 0; i < D; ++i) acc[g][i] *= c;
                #pragma unroll
                for (int b = 0; b < KEYS; ++b) {
                    const float p = __expf(s[b] - nm);
                    l[g] += p;
                    #pragma unroll
                    for (int i = 0; i < D; ++i) acc[g][i] = fmaf(p, vf[b][i], acc[g][i]);
                }
                m[g] = nm;
            }
        }
        #pragma unroll
        for (int b = 0; b < KEYS; ++b) { kr[b] = kn[b]; vr[b] = vn[b]; }
    }

    // Fold the warps: each leaves its running max, denominator and sums in shared memory.
    const int stride = hd + 2, pstride = PART_STRIDE(hd);
    #pragma unroll
    for (int g = 0; g < SPLIT_MAX_GROUP; ++g) {
        if (g < group) {
            float* w = sm + (warp * group + g) * stride;
            #pragma unroll
            for (int i = 0; i < D; ++i) w[lane * D + i] = acc[g][i];
            if (lane == 0) { w[hd] = m[g]; w[hd + 1] = l[g]; }
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < group * hd; idx += blockDim.x) {
        const int g = idx / hd, d = idx % hd;
        float mx = NEG_INF;
        for (int w = 0; w < SPLIT_WARPS; ++w) mx = fmaxf(mx, sm[(w * group + g) * stride + hd]);
        float sum = 0.f, den = 0.f;
        for (int w = 0; w < SPLIT_WARPS; ++w) {
            const float* ws = sm + (w * group + g) * stride;
            // A warp (or the whole split) that saw no key has max -inf: weight 0.
            const float f = ws[hd] == NEG_INF ? 0.f : __expf(ws[hd] - mx);
            sum += ws[d] * f;
            den += ws[hd + 1] * f;
        }
        const long h = (long)row * num_heads + kvh * group + g;
        if (splits == 1) {
            store_act(out, out_bf16, h * hd + d, den > 0.f ? sum / den : 0.f);
        } else {
            float* p = part + (h * splits + split) * pstride;
            p[d] = sum;
            if (d == 0) { p[hd] = mx; p[hd + 1] = den; }
        }
    }
    if (splits == 1) return;
    // Publish this split's sums, then take a ticket; the last of the pair's splits
    // merges them all.
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(tickets + pair, 1) == splits - 1;
        if (last) tickets[pair] = 0;  // every other split has taken its ticket
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    // The fold's buffer is free again (its last reads were before the barriers above).
    merge_splits(out, out_bf16, part, (long)row * num_heads + kvh * group, group, hd, splits,
                 sm, sm + group * splits, sm + 2 * group * splits);
}

#define SPLIT_KERNEL(NAME, D, KV)                                                            \
extern "C" __global__ void NAME(                                                            \
    void* out, int out_bf16, float* part, const float* q, const KV* k_pool,                 \
    const KV* v_pool, const int* block_tables, const int* token_seq,                        \
    const int* positions, int num_heads, int num_kv_heads, int block_size, int max_blocks,  \
    float scale, int window, float softcap, int splits, int* tickets) {                      \
    split_attention<D, KV>(out, out_bf16, part, q, k_pool, v_pool, block_tables, token_seq, \
                           positions, num_heads, num_kv_heads, block_size, max_blocks,      \
                           scale, window, softcap, splits, tickets);                        \
}
SPLIT_KERNEL(paged_attention_split_d2, 2, float)
SPLIT_KERNEL(paged_attention_split_d4, 4, float)
SPLIT_KERNEL(paged_attention_split_d8, 8, float)
SPLIT_KERNEL(paged_attention_split_d2_kvf16, 2, unsigned short)
SPLIT_KERNEL(paged_attention_split_d4_kvf16, 4, unsigned short)
SPLIT_KERNEL(paged_attention_split_d8_kvf16, 8, unsigned short)
