// Paged attention over a block-table KV cache, varlen: one thread block per
// (token row, query head). It serves prefill chunks and decode steps alike: a row
// at position p attends to its sequence's keys max(0, p+1-window) ..= p, read in
// place through the block table, with an online (running-max) softmax.
//
// Layouts (f32): q, out [T, num_heads, head_dim]; k_pool, v_pool
// [num_blocks, block_size, num_kv_heads, head_dim]; block_tables [num_seqs,
// max_blocks] (row-major, padded); token_seq, positions [T].
// Compiled at run time by NVRTC (no nvcc needed where hearth is built).

#define TILE 128  // keys scored per pass; equals blockDim.x
#define NEG_INF __int_as_float(0xff800000)  // NVRTC has no math.h INFINITY

extern "C" __global__ void paged_attention_f32(
    float* __restrict__ out,
    const float* __restrict__ q,
    const float* __restrict__ k_pool,
    const float* __restrict__ v_pool,
    const int* __restrict__ block_tables,
    const int* __restrict__ token_seq,
    const int* __restrict__ positions,
    int num_heads, int num_kv_heads, int head_dim, int block_size,
    int max_blocks, float scale, int window, float softcap)
{
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
            const float* kr = k_pool + ((long)blk * block_size + j % block_size) * row_stride
                                     + (long)kvh * head_dim;
            float dot = 0.f;
            for (int d = 0; d < head_dim; ++d) dot += qs[d] * kr[d];
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
                    const float* vr = v_pool + ((long)blk * block_size + jj % block_size) * row_stride
                                             + (long)kvh * head_dim;
                    a += scores[t] * vr[d];
                }
                acc[i] = a;
            }
        }
        __syncthreads();
    }
    float* o = out + ((long)row * num_heads + h) * head_dim;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int d = tid + i * blockDim.x;
        if (d < head_dim) o[d] = acc[i] * inv;
    }
}
