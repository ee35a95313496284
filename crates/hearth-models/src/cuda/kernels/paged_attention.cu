// Paged attention over a block-table KV cache, varlen: one thread block per
// (token row, query head). It serves prefill chunks and decode steps alike: a row
// at position p attends to its sequence's keys max(0, p+1-window) ..= p, read in
// place through the block table, with an online (running-max) softmax.
//
// Layouts: q, out [T, num_heads, head_dim] (f32); k_pool, v_pool [num_blocks,
// block_size, num_kv_heads, head_dim] of KV (f32 or f16 bits, kv_load); block_tables
// [num_seqs, max_blocks] (row-major, padded); token_seq, positions [T].
// Compiled at run time by NVRTC (no nvcc needed where hearth is built).

#define TILE 128  // keys scored per pass; equals blockDim.x
// NEG_INF: common.cuh

template <typename KV>
__device__ void paged_attention_head(
    void* __restrict__ out,
    const float* __restrict__ q,
    const KV* __restrict__ k_pool,
    const KV* __restrict__ v_pool,
    const int* __restrict__ block_tables,
    const int* __restrict__ token_seq,
    const int* __restrict__ positions,
    int num_heads, int num_kv_heads, int head_dim, int block_size,
    int max_blocks, float scale, int window, float softcap, int out_bf16)
{
    grid_enter();
    extern __shared__ float smem[];
    float* qs = smem;                 // [head_dim]
    float* scores = smem + head_dim;  // [TILE]
    __shared__ float red[32];

    const int row = blockIdx.x / num_heads;
    const int h = blockIdx.x % num_heads;
    const int kvh = h / (num_heads / num_kv_heads);
    const int tid = threadIdx.x;
    const int seq = token_seq[row];
    const int ctx = positions[row] + 1;
    const int first = window > 0 ? max(0, ctx - window) : 0;
    const int* table = block_tables + (long)seq * max_blocks;
    const long row_stride = (long)num_kv_heads * head_dim;

    const float* qv = q + ((long)row * num_heads + h) * head_dim;
    for (int d = tid; d < head_dim; d += blockDim.x) qs[d] = qv[d] * scale;
    __syncthreads();

    // Each thread owns output dims tid, tid + blockDim.x, ... (head_dim <= 4 * TILE).
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    float m = NEG_INF, l = 0.f;

    for (int base = first; base < ctx; base += TILE) {
        const int j = base + tid;
        float s = NEG_INF;
        if (j < ctx) {
            const int blk = table[j / block_size];
            const KV* kr = k_pool + ((long)blk * block_size + j % block_size) * row_stride
                                  + (long)kvh * head_dim;
            float dot = 0.f;
            for (int d = 0; d < head_dim; ++d) dot += qs[d] * kv_load(kr + d);
            if (softcap > 0.f) dot = softcap * tanhf(dot / softcap);
            s = dot;
        }
        // Block max of the tile.
        float tmax = s;
        for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffff, tmax, o));
        if ((tid & 31) == 0) red[tid >> 5] = tmax;
        __syncthreads();
        if (tid < 32) {
            float v = tid < (blockDim.x >> 5) ? red[tid] : NEG_INF;
            for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
            if (tid == 0) red[0] = v;
        }
        __syncthreads();
        const float new_m = fmaxf(m, red[0]);
        const float p = (j < ctx) ? __expf(s - new_m) : 0.f;
        scores[tid] = p;
        __syncthreads();
        // Tile sum (every thread needs it for l).
        float tsum = p;
        for (int o = 16; o > 0; o >>= 1) tsum += __shfl_xor_sync(0xffffffff, tsum, o);
        if ((tid & 31) == 0) red[tid >> 5] = tsum;
        __syncthreads();
        float total = 0.f;
        for (int w = 0; w < (blockDim.x >> 5); ++w) total += red[w];
        const float corr = __expf(m - new_m);
        l = l * corr + total;
        m = new_m;
        const int n = min(TILE, ctx - base);
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int d = tid + i * blockDim.x;
            if (d < head_dim) {
                float a = acc[i] * corr;
                for (int t = 0; t < n; ++t) {
                    const int jj = base + t;
                    const int blk = table[jj / block_size];
                    const KV* vr = v_pool + ((long)blk * block_size + jj % block_size) * row_stride
                                          + (long)kvh * head_dim;
                    a += scores[t] * kv_load(vr + d);
                }
                acc[i] = a;
            }
        }
        __syncthreads();
    }
    const long o = ((long)row * num_heads + h) * head_dim;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int d = tid + i * blockDim.x;
        if (d < head_dim) store_act(out, out_bf16, o + d, acc[i] * inv);
    }
}

// The same attention with one thread block per (token row, KV head): the block
// serves every query head of the KV head's group, so each K/V row is read once per
// group instead of once per query head (GQA: 3x fewer bytes for Llama 3.2 3B).
#define MAX_GROUP 8

template <typename KV>
__device__ void paged_attention_group(
    void* __restrict__ out,
    const float* __restrict__ q,
    const KV* __restrict__ k_pool,
    const KV* __restrict__ v_pool,
    const int* __restrict__ block_tables,
    const int* __restrict__ token_seq,
    const int* __restrict__ positions,
    int num_heads, int num_kv_heads, int head_dim, int block_size,
    int max_blocks, float scale, int window, float softcap, int out_bf16)
{
    grid_enter();
    extern __shared__ float smem[];
    const int group = num_heads / num_kv_heads;
    float* qs = smem;                             // [group][head_dim]
    float* scores = smem + group * head_dim;      // [group][TILE]
    __shared__ float red[MAX_GROUP][32];
    __shared__ float tile_max[MAX_GROUP], tile_sum[MAX_GROUP];

    const int row = blockIdx.x / num_kv_heads;
    const int kvh = blockIdx.x % num_kv_heads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int nwarps = blockDim.x >> 5;
    const int seq = token_seq[row];
    const int ctx = positions[row] + 1;
    const int first = window > 0 ? max(0, ctx - window) : 0;
    const int* table = block_tables + (long)seq * max_blocks;
    const long row_stride = (long)num_kv_heads * head_dim;

    for (int i = tid; i < group * head_dim; i += blockDim.x) {
        const int g = i / head_dim, d = i % head_dim;
        qs[i] = q[((long)row * num_heads + kvh * group + g) * head_dim + d] * scale;
    }
    __syncthreads();

    float acc[MAX_GROUP][4];
    float m[MAX_GROUP], l[MAX_GROUP];
    #pragma unroll
    for (int g = 0; g < MAX_GROUP; ++g) {
        m[g] = NEG_INF; l[g] = 0.f;
        #pragma unroll
        for (int i = 0; i < 4; ++i) acc[g][i] = 0.f;
    }

    for (int base = first; base < ctx; base += TILE) {
        const int j = base + tid;
        float s[MAX_GROUP];
        #pragma unroll
        for (int g = 0; g < MAX_GROUP; ++g) s[g] = NEG_INF;
        if (j < ctx) {
            const int blk = table[j / block_size];
            const KV* kr = k_pool + ((long)blk * block_size + j % block_size) * row_stride
                                  + (long)kvh * head_dim;
            float dot[MAX_GROUP];
            #pragma unroll
            for (int g = 0; g < MAX_GROUP; ++g) dot[g] = 0.f;
            for (int d = 0; d < head_dim; ++d) {
                const float kd = kv_load(kr + d);
                #pragma unroll
                for (int g = 0; g < MAX_GROUP; ++g)
                    if (g < group) dot[g] += qs[g * head_dim + d] * kd;
            }
            #pragma unroll
            for (int g = 0; g < MAX_GROUP; ++g) {
                if (g < group) {
                    float x = dot[g];
                    if (softcap > 0.f) x = softcap * tanhf(x / softcap);
                    s[g] = x;
                }
            }
        }
        // Per-head tile max.
        #pragma unroll
        for (int g = 0; g < MAX_GROUP; ++g) {
            if (g < group) {
                float v = s[g];
                for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
                if (lane == 0) red[g][warp] = v;
            }
        }
        __syncthreads();
        if (tid < group) {
            float v = NEG_INF;
            for (int w = 0; w < nwarps; ++w) v = fmaxf(v, red[tid][w]);
            tile_max[tid] = v;
        }
        __syncthreads();
        float new_m[MAX_GROUP];
        #pragma unroll
        for (int g = 0; g < MAX_GROUP; ++g) {
            if (g < group) {
                new_m[g] = fmaxf(m[g], tile_max[g]);
                const float p = (j < ctx) ? __expf(s[g] - new_m[g]) : 0.f;
                scores[g * TILE + tid] = p;
                float v = p;
                for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
                if (lane == 0) red[g][warp] = v;
            }
        }
        __syncthreads();
        if (tid < group) {
            float v = 0.f;
            for (int w = 0; w < nwarps; ++w) v += red[tid][w];
            tile_sum[tid] = v;
        }
        __syncthreads();
        const int n = min(TILE, ctx - base);
        float corr[MAX_GROUP];
        #pragma unroll
        for (int g = 0; g < MAX_GROUP; ++g) {
            if (g < group) {
                corr[g] = __expf(m[g] - new_m[g]);
                l[g] = l[g] * corr[g] + tile_sum[g];
                m[g] = new_m[g];
            }
        }
        #pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int d = tid + i * blockDim.x;
            if (d < head_dim) {
                float a[MAX_GROUP];
                #pragma unroll
                for (int g = 0; g < MAX_GROUP; ++g) a[g] = g < group ? acc[g][i] * corr[g] : 0.f;
                for (int t = 0; t < n; ++t) {
                    const int jj = base + t;
                    const int blk = table[jj / block_size];
                    const float vd = kv_load(v_pool + ((long)blk * block_size + jj % block_size)
                                                          * row_stride + (long)kvh * head_dim + d);
                    #pragma unroll
                    for (int g = 0; g < MAX_GROUP; ++g)
                        if (g < group) a[g] += scores[g * TILE + t] * vd;
                }
                #pragma unroll
                for (int g = 0; g < MAX_GROUP; ++g) acc[g][i] = a[g];
            }
        }
        __syncthreads();
    }
    #pragma unroll
    for (int g = 0; g < MAX_GROUP; ++g) {
        if (g < group) {
            const long o = ((long)row * num_heads + kvh * group + g) * head_dim;
            const float inv = l[g] > 0.f ? 1.f / l[g] : 0.f;
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int d = tid + i * blockDim.x;
                if (d < head_dim) store_act(out, out_bf16, o + d, acc[g][i] * inv);
            }
        }
    }
}

// Entry points: f32 pools, and f16 pools (_kvf16).
#define PAGED_ATTENTION_ENTRY(NAME, BODY, KV)                                              \
extern "C" __global__ void NAME(                                                          \
    void* out, const float* q, const KV* k_pool, const KV* v_pool, const int* block_tables, \
    const int* token_seq, const int* positions, int num_heads, int num_kv_heads,          \
    int head_dim, int block_size, int max_blocks, float scale, int window, float softcap, \
    int out_bf16) {                                                                       \
    BODY<KV>(out, q, k_pool, v_pool, block_tables, token_seq, positions, num_heads,       \
             num_kv_heads, head_dim, block_size, max_blocks, scale, window, softcap,      \
             out_bf16);                                                                   \
}
PAGED_ATTENTION_ENTRY(paged_attention_f32, paged_attention_head, float)
PAGED_ATTENTION_ENTRY(paged_attention_f32_kvf16, paged_attention_head, unsigned short)
PAGED_ATTENTION_ENTRY(paged_attention_gqa_f32, paged_attention_group, float)
PAGED_ATTENTION_ENTRY(paged_attention_gqa_f32_kvf16, paged_attention_group, unsigned short)
