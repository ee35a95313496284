// The small per-token kernels of a llama step. Row-major everywhere. The residual
// stream and every matrix product's output are f32; what a matrix product reads is
// f32 or bf16 (`act_bf16`), the weights' type.

// out[t, :] = table[ids[t], :]; the table is f32 or bf16 (`table_bf16`). Restricted
// pointers let the loads of a thread's elements go out together.
extern "C" __global__ void embedding(float* __restrict__ out, const void* __restrict__ table,
                                     int table_bf16, const int* __restrict__ ids, int hidden) {
    grid_enter();
    const int t = blockIdx.x;
    const long src = (long)ids[t] * hidden;
    for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
        out[(long)t * hidden + d] = table_bf16
            ? bf16_to_f32(((const unsigned short*)table)[src + d])
            : ((const float*)table)[src + d];
    }
}

// Elements of a row each thread of rms_norm keeps in registers (1024 threads: rows up
// to 8192 wide in one read); wider rows are read again from memory.
#define NORM_PER 8

// out[r, :] = x[rows ? rows[r] : r, :] / rms(that row) * w  (one block per output row).
// A decode step has one row: one block on one SM, whose time is the latency of its
// loads, so every thread issues all its loads at once and keeps the values.
extern "C" __global__ void rms_norm(void* __restrict__ out, int act_bf16,
                                    const float* __restrict__ x, const int* __restrict__ rows,
                                    const float* __restrict__ w, int width, float eps) {
    grid_enter();
    __shared__ float red[32];
    const int r = rows ? rows[blockIdx.x] : blockIdx.x;
    const float* xr = x + (long)r * width;
    const int step = blockDim.x;
    float v[NORM_PER];
#pragma unroll
    for (int i = 0; i < NORM_PER; ++i) {
        const int d = threadIdx.x + i * step;
        v[i] = d < width ? xr[d] : 0.f;
    }
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < NORM_PER; ++i) s += v[i] * v[i];
    for (int d = threadIdx.x + NORM_PER * step; d < width; d += step) s += xr[d] * xr[d];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < (int)(blockDim.x >> 5); ++i) total += red[i];
    const float inv = rsqrtf(total / width + eps);
    const long o = (long)blockIdx.x * width;
#pragma unroll
    for (int i = 0; i < NORM_PER; ++i) {
        const int d = threadIdx.x + i * step;
        if (d < width) store_act(out, act_bf16, o + d, v[i] * inv * w[d]);
    }
    for (int d = threadIdx.x + NORM_PER * step; d < width; d += step)
        store_act(out, act_bf16, o + d, xr[d] * inv * w[d]);
}

// After the fused q/k/v product: qkv[t] is [q heads | k heads | v heads] of head_dim.
// Per head: + bias (Qwen2), per-head RMSNorm (Qwen3's q/k norms), rotary embedding at
// the token's position (neox pairs (i, i + half), else GGUF's interleaved (2i, 2i + 1));
// q goes to q_out [T, num_heads, head_dim], k and v into the pools at slots[t].
// One warp per head, the heads of a token spread over blocks of blockDim / 32 heads
// (a decode step of one token still fills several multiprocessors);
// bias/q_norm/k_norm may be null. The pools hold KV (f32 or f16 bits, kv_store).
template <typename KV>
__device__ void qkv_finish_heads(float* q_out, KV* k_pool, KV* v_pool, const float* qkv,
                                 const float* bias, const float* q_norm, const float* k_norm,
                                 float eps, const int* positions, const int* slots,
                                 const float* inv_freq, int num_heads, int num_kv_heads,
                                 int head_dim, int neox) {
    grid_enter();
    extern __shared__ float sh[];  // [warps][head_dim]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5, half = head_dim / 2;
    const int heads = num_heads + 2 * num_kv_heads;
    const int groups = (heads + warps - 1) / warps;
    const int t = blockIdx.x / groups, h = (blockIdx.x % groups) * warps + warp;
    if (h >= heads) return;  // whole warps: no block-wide barrier below
    const float pos = (float)positions[t];
    const long kv_row = (long)slots[t] * num_kv_heads * head_dim;
    float* row = sh + warp * head_dim;
    const long src = ((long)t * heads + h) * head_dim;
    for (int d = lane; d < head_dim; d += 32)
        row[d] = qkv[src + d] + (bias ? bias[(long)h * head_dim + d] : 0.f);
    __syncwarp();
    if (h >= num_heads + num_kv_heads) {  // a v head: copied as it is
        KV* dst = v_pool + kv_row + (long)(h - num_heads - num_kv_heads) * head_dim;
        for (int d = lane; d < head_dim; d += 32) kv_store(dst + d, row[d]);
        return;
    }
    const bool is_q = h < num_heads;
    const float* norm = is_q ? q_norm : k_norm;
    float inv = 1.f;
    if (norm) {
        float s = 0.f;
        for (int d = lane; d < head_dim; d += 32) s += row[d] * row[d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        inv = rsqrtf(s / head_dim + eps);
    }
    float* qd = q_out + ((long)t * num_heads + h) * head_dim;
    KV* kd = k_pool + kv_row + (long)(h - num_heads) * head_dim;
    for (int j = lane; j < half; j += 32) {
        const int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
        float x0 = row[a] * inv, x1 = row[b] * inv;
        if (norm) { x0 *= norm[a]; x1 *= norm[b]; }
        float s, c;
        sincosf(pos * inv_freq[j], &s, &c);
        const float ya = x0 * c - x1 * s, yb = x0 * s + x1 * c;
        if (is_q) {
            qd[a] = ya;
            qd[b] = yb;
        } else {
            kv_store(kd + a, ya);
            kv_store(kd + b, yb);
        }
    }
}

// Entry points: f32 pools, and f16 pools (_kvf16).
#define QKV_FINISH_ENTRY(NAME, KV)                                                         \
extern "C" __global__ void NAME(float* q_out, KV* k_pool, KV* v_pool, const float* qkv,   \
                                const float* bias, const float* q_norm,                   \
                                const float* k_norm, float eps, const int* positions,     \
                                const int* slots, const float* inv_freq, int num_heads,   \
                                int num_kv_heads, int head_dim, int neox) {               \
    qkv_finish_heads<KV>(q_out, k_pool, v_pool, qkv, bias, q_norm, k_norm, eps, positions, \
                         slots, inv_freq, num_heads, num_kv_heads, head_dim, neox);       \
}
QKV_FINISH_ENTRY(qkv_finish, float)
QKV_FINISH_ENTRY(qkv_finish_kvf16, unsigned short)

// out[r, c] = silu(gu[r, c]) * gu[r, ffn + c]: gu is the fused gate/up product
// [rows, 2 * ffn]; n = rows * ffn.
extern "C" __global__ void silu_mul(void* out, int act_bf16, const float* gu, int ffn, long n) {
    grid_enter();
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const long r = i / ffn, c = i % ffn;
        const float g = gu[r * 2 * ffn + c];
        store_act(out, act_bf16, i, g / (1.f + __expf(-g)) * gu[r * 2 * ffn + ffn + c]);
    }
}

