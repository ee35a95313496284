// Shared by every hearth kernel (the sources are concatenated, this one first).
// NVRTC has no math.h or cuda_bf16.h here: -inf and bf16 are spelled out.

#define NEG_INF __int_as_float(0xff800000)

// f32 -> bf16 bits, rounded to nearest even (what torch and candle do); NaN stays NaN.
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float bf16_to_f32(unsigned short b) {
    return __uint_as_float(((unsigned)b) << 16);
}

// f32 <-> f16 bits, rounded to nearest even (what the CPU's f16 K/V pool does).
__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// A K/V pool element: f32, or f16 bits (`--kv-cache-dtype f16`, half the bytes a key).
// The kernels that read or write the pools are templates over the element type.
__device__ __forceinline__ float kv_load(const float* p) { return *p; }
__device__ __forceinline__ float kv_load(const unsigned short* p) { return f16_to_f32(*p); }
__device__ __forceinline__ void kv_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void kv_store(unsigned short* p, float v) { *p = f32_to_f16(v); }

// Element i of an activation the next matrix product reads: f32, or bf16 when the
// weights are bf16 (cuBLAS multiplies bf16 by bf16 only).
__device__ __forceinline__ void store_act(void* out, int bf16, long i, float v) {
    if (bf16) ((unsigned short*)out)[i] = f32_to_bf16(v);
    else ((float*)out)[i] = v;
}

// Programmatic dependent launch (launch.rs): on Hopper and later a kernel may be
// scheduled while the kernel before it still runs. grid_wait() returns once that
// kernel has finished and its writes are visible, so every kernel calls it before
// reading or writing anything another kernel touches; grid_release() lets the next
// kernel be scheduled. Both are no-ops on older GPUs and for launches without PDL.
__device__ __forceinline__ void grid_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void grid_release() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Both, at the top of a kernel with nothing to do before its inputs are ready.
__device__ __forceinline__ void grid_enter() {
    grid_wait();
    grid_release();
}

// 8 bf16 (one 16-byte load) to f32.
__device__ __forceinline__ void unpack_bf16x8(const uint4 v, float* f) {
    const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

// The sum of a value over the warp's lanes (every lane gets it).
__device__ __forceinline__ float warp_sum(float s) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
    return s;
}
