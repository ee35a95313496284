// A decode step of 1 or 2 tokens on bf16 weights in five kernels a layer, not nine:
// q/k/v product with RoPE and the K/V writes, attention, o product, gate/up product
// with SiLU, down product. A step at batch 1 is bound by its ~250 kernel boundaries
// more than by bytes, so RMSNorm and RoPE are folded into the products:
// - RMSNorm(x) * w = (x * w) / rms(x). The product that adds into the residual stream
//   x (o, down) also writes xw = bf16(x * w) for the next norm's weights w and, per
//   block, the sum of its rows' x²; the product that reads the norm scales its sums by
//   1 / rms from those partial sums (norm_scales in gemv.cu). Same rounding count as
//   rms_norm's bf16 output, and a fixed summation order: deterministic.
// - RoPE pairs rows (i, i + half) or (2i, 2i + 1) of a head: the pair's two warps swap
//   their sums and each rotates its row, writing q, or k and v straight into the KV
//   pools.

// xw[t, :] = bf16(x[t, :] * w), parts[t] = sum of x[t, :]²: the first layer's norm
// input, from the embedding rows (one block per token, nparts = 1).
extern "C" __global__ void norm_prep(unsigned short* __restrict__ xw, float* __restrict__ parts,
                                     const float* __restrict__ x, const float* __restrict__ w,
                                     int width) {
    grid_enter();
    __shared__ float red[32];
    const float* xr = x + (long)blockIdx.x * width;
    float s = 0.f;
    for (int d = threadIdx.x; d < width; d += blockDim.x) {
        const float v = xr[d];
        s += v * v;
        xw[(long)blockIdx.x * width + d] = f32_to_bf16(v * w[d]);
    }
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); ++i) total += red[i];
        parts[blockIdx.x] = total;
    }
}

// y[tok, :] += w · x[tok] (the residual stream, rows wide), then for the next RMSNorm:
// xw[tok, r] = bf16(y[tok, r] * norm_w[r]) and parts[tok * gridDim.x + block] = the
// block's sum of y[tok, r]² over its rows.
template <int T>
__device__ __forceinline__ void gemv_bf16_residual_rows(float* y, const unsigned short* w,
                                                        const unsigned short* x, int rows,
                                                        int cols, const float* norm_w,
                                                        unsigned short* xw, float* parts) {
    __shared__ float sq[T][GEMV_THREADS / 32];
    const int row = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool live = row < rows;
    const int vecs = cols >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (long)(live ? row : 0) * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4 wv[CHUNK];
    gemv_begin(wv, wr, vecs, live);
    // The epilogue's operands are loaded under the row's loads, not after its sum.
    float y0[T], nw = 0.f;
    if (live && lane == 0) {
        nw = norm_w[row];
#pragma unroll
        for (int tok = 0; tok < T; ++tok) y0[tok] = y[(long)tok * rows + row];
    }
    float acc[T];
    if (live) gemv_row<T>(acc, wv, wr, xv, vecs, lane);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float v = 0.f;
        if (live) {
            const float s = warp_sum(acc[tok]);
            if (lane == 0) {
                v = y0[tok] + s;
                y[(long)tok * rows + row] = v;
                xw[(long)tok * rows + row] = f32_to_bf16(v * nw);
            }
        }
        if (lane == 0) sq[tok][warp] = v * v;
    }
    __syncthreads();
    if (threadIdx.x < T) {
        float s = 0.f;
        for (int i = 0; i < (int)(blockDim.x >> 5); ++i) s += sq[threadIdx.x][i];
        parts[(long)threadIdx.x * gridDim.x + blockIdx.x] = s;
    }
}

// The q/k/v product of RMSNorm(x) (x given as xw and parts, see above) and what
// qkv_finish does after it: + bias (Qwen2), RoPE at the token's position, q to
// q_out [T, num_heads, head_dim], k and v into the pools at slots[tok]. Pair p is
// head p / half's rows of rotary pair p % half (q heads, then k heads, then v heads,
// which are copied as they are), a warp a row (pair_sums in gemv.cu); each warp
// writes its own row. No q/k norms (Qwen3 takes the unfused kernels).
template <int T, typename KV>
__device__ __forceinline__ void gemv_bf16_qkv_rows(
    float* q_out, KV* k_pool, KV* v_pool, const unsigned short* w,
    const unsigned short* x, const float* parts, int nparts, int cols, float eps,
    const float* bias, const int* positions, const int* slots, const float* inv_freq,
    int num_heads, int num_kv_heads, int head_dim, int neox) {
    int second;
    const int p = pair_of_warp(second);
    const int lane = threadIdx.x & 31;
    const int half = head_dim / 2, heads = num_heads + 2 * num_kv_heads;
    const bool live = p < heads * half;
    const int h = live ? p / half : 0, j = p % half;
    const int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
    const long ra = (long)h * head_dim + a, rb = (long)h * head_dim + b;
    const int vecs = cols >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (second ? rb : ra) * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4 wv[CHUNK];
    gemv_begin(wv, wr, vecs, live);
    float inv[T];
    norm_scales<T>(inv, parts, nparts, cols, eps);
    // The epilogue's operands: bias, K/V slot, RoPE angle. At one token they are loaded
    // under the row's loads, not after its sum (H100, 3B batch 1: with the residual
    // products' epilogue early too, -1.8% a decode step); at two, holding them through
    // the row spills registers (batch 2: 3.22 -> 3.27 ms), so they come after.
    float sn[T], cs[T], bias_a = 0.f, bias_b = 0.f;
    long kv_row[T];
    const auto load_operands = [&]() {
        if (bias) { bias_a = bias[ra]; bias_b = bias[rb]; }
        const float f = inv_freq[j];
#pragma unroll
        for (int tok = 0; tok < T; ++tok) {
            kv_row[tok] = (long)slots[tok] * num_kv_heads * head_dim;
            sincosf((float)positions[tok] * f, &sn[tok], &cs[tok]);
        }
    };
    constexpr bool early = T == 1;
    if (early && live && lane == 0) load_operands();
    float own[T], sa[T], sb[T];
    if (live) gemv_row<T>(own, wv, wr, xv, vecs, lane);
    pair_sums<T>(sa, sb, own, live);
    if (!live || lane != 0) return;
    if (!early) load_operands();
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        const float x0 = sa[tok] * inv[tok] + bias_a;
        const float x1 = sb[tok] * inv[tok] + bias_b;
        if (h >= num_heads + num_kv_heads) {
            kv_store(v_pool + kv_row[tok] + (long)(h - num_heads - num_kv_heads) * head_dim
                         + (second ? b : a),
                     second ? x1 : x0);
            continue;
        }
        const int col = second ? b : a;
        const float y = second ? x0 * sn[tok] + x1 * cs[tok] : x0 * cs[tok] - x1 * sn[tok];
        if (h < num_heads) q_out[((long)tok * num_heads + h) * head_dim + col] = y;
        else kv_store(k_pool + kv_row[tok] + (long)(h - num_heads) * head_dim + col, y);
    }
}

#define GEMV_FUSED_ENTRIES(T)                                                             \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_residual_t##T(float* y, const unsigned short* w,                        \
                                const unsigned short* x, int rows, int cols,              \
                                const float* norm_w, unsigned short* xw, float* parts) {  \
        gemv_bf16_residual_rows<T>(y, w, x, rows, cols, norm_w, xw, parts);               \
    }
// The q/k/v product into f32 pools, and into f16 pools (_kvf16).
#define GEMV_QKV_ENTRY(NAME, T, KV)                                                       \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM) NAME(  \
        float* q_out, KV* k_pool, KV* v_pool, const unsigned short* w,                    \
        const unsigned short* x, const float* parts, int nparts, int cols, float eps,     \
        const float* bias, const int* positions, const int* slots, const float* inv_freq, \
        int num_heads, int num_kv_heads, int head_dim, int neox) {                        \
        gemv_bf16_qkv_rows<T, KV>(q_out, k_pool, v_pool, w, x, parts, nparts, cols, eps,  \
                                  bias, positions, slots, inv_freq, num_heads,            \
                                  num_kv_heads, head_dim, neox);                          \
    }
GEMV_FUSED_ENTRIES(1)
GEMV_FUSED_ENTRIES(2)
GEMV_QKV_ENTRY(gemv_bf16_qkv_t1, 1, float)
GEMV_QKV_ENTRY(gemv_bf16_qkv_t2, 2, float)
GEMV_QKV_ENTRY(gemv_bf16_qkv_t1_kvf16, 1, unsigned short)
GEMV_QKV_ENTRY(gemv_bf16_qkv_t2_kvf16, 2, unsigned short)
