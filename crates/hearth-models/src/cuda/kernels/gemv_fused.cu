// A decode step of 1 or 2 tokens on bf16 weights in five kernels a layer, not nine:
// q/k/v product with RoPE and the K/V writes, attention, o product, gate/up product
// with SiLU, down product. A step at batch 1 is bound by its ~250 kernel boundaries
// more than by bytes, so RMSNorm and RoPE are folded into the products:
// - RMSNorm(x) * w = (x * w) / rms(x). The product that adds into the residual stream
//   x (o, down) also writes xw = bf16(x * w) for the next norm's weights w and, per
//   block, the sum of its rows' x²; the product that reads the norm scales its sums by
//   1 / rms from those partial sums (norm_scales in gemv.cu). Same rounding count as
//   rms_norm's bf16 output, and a fixed summation order: deterministic.
// - RoPE pairs rows (i, i + half) or (2i, 2i + 1) of a head: one warp sums both rows
//   and rotates them, writing q, or k and v straight into the KV pools.

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
    float acc[T];
    if (live) gemv_row<T>(acc, wv, wr, xv, vecs, lane, true);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float v = 0.f;
        if (live) {
            const float s = warp_sum(acc[tok]);
            if (lane == 0) {
                float* out = y + (long)tok * rows + row;
                v = *out + s;
                *out = v;
                xw[(long)tok * rows + row] = f32_to_bf16(v * norm_w[row]);
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
// q_out [T, num_heads, head_dim], k and v into the pools at slots[tok]. Warp p takes
// head p / half's pair p % half (q heads, then k heads, then v heads, which are
// copied as they are). No q/k norms (Qwen3 takes the unfused kernels).
template <int T>
__device__ __forceinline__ void gemv_bf16_qkv_rows(
    float* q_out, float* k_pool, float* v_pool, const unsigned short* w,
    const unsigned short* x, const float* parts, int nparts, int cols, float eps,
    const float* bias, const int* positions, const int* slots, const float* inv_freq,
    int num_heads, int num_kv_heads, int head_dim, int neox) {
    const int p = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    const int half = head_dim / 2, heads = num_heads + 2 * num_kv_heads;
    const bool live = p < heads * half;
    const int h = live ? p / half : 0, j = p % half;
    const int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
    const long ra = (long)h * head_dim + a, rb = (long)h * head_dim + b;
    const int vecs = cols >> 3;
    const uint4* wa = reinterpret_cast<const uint4*>(w + ra * cols);
    const uint4* wb = reinterpret_cast<const uint4*>(w + rb * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4 wv[CHUNK];
    gemv_begin(wv, wa, vecs, live);
    float inv[T];
    norm_scales<T>(inv, parts, nparts, cols, eps);
    if (!live) return;
    float sa[T], sb[T];
    gemv_row<T>(sa, wv, wa, xv, vecs, lane, true);
    gemv_row<T>(sb, wv, wb, xv, vecs, lane, false);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        const float x0 = warp_sum(sa[tok]) * inv[tok] + (bias ? bias[ra] : 0.f);
        const float x1 = warp_sum(sb[tok]) * inv[tok] + (bias ? bias[rb] : 0.f);
        if (lane != 0) continue;
        const long kv_row = (long)slots[tok] * num_kv_heads * head_dim;
        if (h >= num_heads + num_kv_heads) {
            float* dst = v_pool + kv_row + (long)(h - num_heads - num_kv_heads) * head_dim;
            dst[a] = x0;
            dst[b] = x1;
            continue;
        }
        float* dst = h < num_heads ? q_out + ((long)tok * num_heads + h) * head_dim
                                   : k_pool + kv_row + (long)(h - num_heads) * head_dim;
        float s, c;
        sincosf((float)positions[tok] * inv_freq[j], &s, &c);
        dst[a] = x0 * c - x1 * s;
        dst[b] = x0 * s + x1 * c;
    }
}

#define GEMV_FUSED_ENTRIES(T)                                                             \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_residual_t##T(float* y, const unsigned short* w,                        \
                                const unsigned short* x, int rows, int cols,              \
                                const float* norm_w, unsigned short* xw, float* parts) {  \
        gemv_bf16_residual_rows<T>(y, w, x, rows, cols, norm_w, xw, parts);               \
    }                                                                                     \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_qkv_t##T(                                                               \
        float* q_out, float* k_pool, float* v_pool, const unsigned short* w,              \
        const unsigned short* x, const float* parts, int nparts, int cols, float eps,     \
        const float* bias, const int* positions, const int* slots, const float* inv_freq, \
        int num_heads, int num_kv_heads, int head_dim, int neox) {                        \
        gemv_bf16_qkv_rows<T>(q_out, k_pool, v_pool, w, x, parts, nparts, cols, eps,      \
                              bias, positions, slots, inv_freq, num_heads, num_kv_heads,  \
                              head_dim, neox);                                            \
    }
GEMV_FUSED_ENTRIES(1)
GEMV_FUSED_ENTRIES(2)
