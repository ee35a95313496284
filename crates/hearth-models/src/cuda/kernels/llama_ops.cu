// The small per-token kernels of a llama step (f32). Row-major everywhere.

// out[t, :] = table[ids[t], :]
extern "C" __global__ void embedding_f32(float* out, const float* table, const int* ids,
                                         int hidden) {
    const int t = blockIdx.x;
    const float* src = table + (long)ids[t] * hidden;
    for (int d = threadIdx.x; d < hidden; d += blockDim.x) out[(long)t * hidden + d] = src[d];
}

// out[r, :] = x[r, :] / rms(x[r, :]) * w  (one block per row)
extern "C" __global__ void rms_norm_f32(float* out, const float* x, const float* w,
                                        int width, float eps) {
    __shared__ float red[32];
    const float* xr = x + (long)blockIdx.x * width;
    float s = 0.f;
    for (int d = threadIdx.x; d < width; d += blockDim.x) s += xr[d] * xr[d];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < (int)(blockDim.x >> 5); ++i) total += red[i];
    const float inv = rsqrtf(total / width + eps);
    float* o = out + (long)blockIdx.x * width;
    for (int d = threadIdx.x; d < width; d += blockDim.x) o[d] = xr[d] * inv * w[d];
}

// Rotary embedding in place on x[T, heads, head_dim], each token at its position.
// neox: pairs (i, i + half); otherwise interleaved pairs (2i, 2i + 1) as GGUF stores.
extern "C" __global__ void rope_f32(float* x, const int* positions, const float* inv_freq,
                                    int heads, int head_dim, int neox) {
    const int t = blockIdx.x;
    const int half = head_dim / 2;
    const float p = (float)positions[t];
    for (int i = threadIdx.x; i < heads * half; i += blockDim.x) {
        const int h = i / half, j = i % half;
        float s, c;
        sincosf(p * inv_freq[j], &s, &c);
        float* row = x + ((long)t * heads + h) * head_dim;
        const int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
        const float x0 = row[a], x1 = row[b];
        row[a] = x0 * c - x1 * s;
        row[b] = x0 * s + x1 * c;
    }
}

// k/v [T, row] into the pools at slot_mapping[t]
extern "C" __global__ void kv_write_f32(float* k_pool, float* v_pool, const float* k,
                                        const float* v, const int* slots, int row) {
    const int t = blockIdx.x;
    const long dst = (long)slots[t] * row;
    for (int d = threadIdx.x; d < row; d += blockDim.x) {
        k_pool[dst + d] = k[(long)t * row + d];
        v_pool[dst + d] = v[(long)t * row + d];
    }
}

// gate <- silu(gate) * up, n elements
extern "C" __global__ void silu_mul_f32(float* gate, const float* up, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = g / (1.f + __expf(-g)) * up[i];
    }
}

// out[i, :] = x[rows[i], :]
extern "C" __global__ void gather_rows_f32(float* out, const float* x, const int* rows, int width) {
    const float* src = x + (long)rows[blockIdx.x] * width;
    for (int d = threadIdx.x; d < width; d += blockDim.x) out[(long)blockIdx.x * width + d] = src[d];
}
