// Paged attention, one thread block per (token row, KV head, key split). Each warp
// takes one key at a time with its lanes across head_dim, so a K or V row is one
// coalesced load, and it serves every query head of the KV head's group (GQA: the
// row is read once per group). A row's keys are cut into `splits` ranges so that a
// batch of few rows still fills the GPU, and the ranges' partial softmax sums are
// folded together after (flash-decoding) by the last block of the (row, KV head) to
// finish: a ticket counter says which, so no second kernel (and kernel boundary) is
// needed. With one split the block writes the output itself.
//
// Layouts as paged_attention.cu; part is [T, num_heads, splits, head_dim + 2]
// (the weighted sum, then the running max and the denominator); tickets holds an
// int per (row, KV head), zero between launches (the last block puts it back).

#define SPLIT_WARPS 4
#define SPLIT_MAX_GROUP 8
#ifndef SPLIT_PREFETCH
#define SPLIT_PREFETCH 1
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

// The last block of a (row, KV head) folds its splits' partial sums: head
// first_head + g's splits are splits * (head_dim + 2) floats from part + (first_head +
// g) * splits * (head_dim + 2), written by other blocks (read past L1). Warp g weighs
// head g's splits, a lane a split: w[g * splits + s] = exp(max_s - the overall max)
// and den[g] = the weighted denominators' sum, in shared memory (group * (splits + 1)
// floats: split_plan keeps that inside the fold's buffer). Then each output column is
// a sum over the splits whose loads do not wait on each other. (A split at a time, the
// loads waited on each other: H100, 3B at batch 1, served TPOT 3.12 -> 2.90 ms.)
__device__ __forceinline__ void merge_splits(void* out, int out_bf16, const float* part,
                                             long first_head, int group, int head_dim,
                                             int splits, float* w, float* den) {
    const int stride = head_dim + 2, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int g = warp; g < group; g += SPLIT_WARPS) {
        const float* p = part + (first_head + g) * splits * stride;
        float mx = NEG_INF;
        for (int s = lane; s < splits; s += 32) {
            mx = fmaxf(mx, __ldcg(p + s * stride + head_dim));
        }
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, o));
        float dsum = 0.f;
        for (int s = lane; s < splits; s += 32) {
            const float m = __ldcg(p + s * stride + head_dim);
            // A split that saw no key has max -inf: weight 0.
            const float f = m == NEG_INF ? 0.f : __expf(m - mx);
            w[g * splits + s] = f;
            dsum += __ldcg(p + s * stride + head_dim + 1) * f;
        }
        dsum = warp_sum(dsum);
        if (lane == 0) den[g] = dsum;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < group * head_dim; idx += blockDim.x) {
        const int g = idx / head_dim, d = idx % head_dim;
        const float* p = part + (first_head + g) * splits * stride + d;
        const float* wg = w + g * splits;
        float sum = 0.f;
        #pragma unroll 8
        for (int s = 0; s < splits; ++s) sum += __ldcg(p + s * stride) * wg[s];
        const float v = den[g] > 0.f ? sum / den[g] : 0.f;
        store_act(out, out_bf16, (first_head + g) * head_dim + d, v);
    }
}

template <int D>
__device__ void split_attention(
    void* __restrict__ out, int out_bf16, float* __restrict__ part,
    const float* __restrict__ q, const float* __restrict__ k_pool,
    const float* __restrict__ v_pool, const int* __restrict__ block_tables,
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

    // A warp's keys one after another, the next key's K and V rows in flight while
    // this one is scored (SPLIT_PREFETCH 0: each loaded when its turn comes; 3B batch 1
    // on an H100 served TPOT 3.19 / 3.20 ms, 3.15 / 3.15 with it).
    const auto row_at = [&](int j) {
        return ((long)table[j / block_size] * block_size + j % block_size) * row_stride
               + (long)kvh * hd + lane * D;
    };
    float kr[D], vr[D];
    if (SPLIT_PREFETCH && lo + warp < hi) {
        load_lane<D>(kr, k_pool + row_at(lo + warp));
        load_lane<D>(vr, v_pool + row_at(lo + warp));
    }
    for (int j = lo + warp; j < hi; j += SPLIT_WARPS) {
        float kn[D], vn[D];
        if (!SPLIT_PREFETCH) {
            load_lane<D>(kr, k_pool + row_at(j));
            load_lane<D>(vr, v_pool + row_at(j));
        } else if (j + SPLIT_WARPS < hi) {
            load_lane<D>(kn, k_pool + row_at(j + SPLIT_WARPS));
            load_lane<D>(vn, v_pool + row_at(j + SPLIT_WARPS));
        }
        #pragma unroll
        for (int g = 0; g < SPLIT_MAX_GROUP; ++g) {
            if (g < group) {
                float s = 0.f;
                #pragma unroll
                for (int i = 0; i < D; ++i) s += qr[g][i] * kr[i];
                #pragma unroll
                for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
                if (softcap > 0.f) s = softcap * tanhf(s / softcap);
                const float nm = fmaxf(m[g], s);
                const float c = __expf(m[g] - nm), p = __expf(s - nm);
                l[g] = l[g] * c + p;
                #pragma unroll
                for (int i = 0; i < D; ++i) acc[g][i] = acc[g][i] * c + p * vr[i];
                m[g] = nm;
            }
        }
        if (SPLIT_PREFETCH) {
            #pragma unroll
            for (int i = 0; i < D; ++i) { kr[i] = kn[i]; vr[i] = vn[i]; }
        }
    }

    // Fold the warps: each leaves its running max, denominator and sums in shared memory.
    const int stride = hd + 2;
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
            float* p = part + (h * splits + split) * stride;
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
                 sm, sm + group * splits);
}

#define SPLIT_KERNEL(NAME, D)                                                                \
extern "C" __global__ void NAME(                                                            \
    void* out, int out_bf16, float* part, const float* q, const float* k_pool,              \
    const float* v_pool, const int* block_tables, const int* token_seq,                     \
    const int* positions, int num_heads, int num_kv_heads, int block_size, int max_blocks,  \
    float scale, int window, float softcap, int splits, int* tickets) {                      \
    grid_enter();                                                                            \
    split_attention<D>(out, out_bf16, part, q, k_pool, v_pool, block_tables, token_seq,     \
                       positions, num_heads, num_kv_heads, block_size, max_blocks, scale,   \
                       window, softcap, splits, tickets);                                    \
}
SPLIT_KERNEL(paged_attention_split_d2, 2)
SPLIT_KERNEL(paged_attention_split_d4, 4)
SPLIT_KERNEL(paged_attention_split_d8, 8)
