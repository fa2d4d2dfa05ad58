// Host emulation of the CUDA target's kernels (tests/test_cuda.py): the generated .cu
// compiles as plain C++ with this header force-included (g++ -include host_shim.h), and
// graphc_host_launch() runs a launch one thread at a time. That is exact for graphc's
// kernels: each thread writes only its own outputs and reads only inputs (no shared memory,
// no barriers, no atomics), so no thread can observe another.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)

struct graphc_uint3 { unsigned x = 0, y = 0, z = 0; };
static thread_local graphc_uint3 threadIdx, blockIdx, blockDim, gridDim;

inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, sizeof d); return d; }
using std::exp; using std::log; using std::tanh; using std::fmax; using std::fmin; using std::fabs; using std::log1p;

template <class Body>
void graphc_host_launch(unsigned grid, unsigned block, Body body) {
  gridDim.x = grid; gridDim.y = gridDim.z = 1;
  blockDim.x = block; blockDim.y = blockDim.z = 1;
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    for (unsigned t = 0; t < block; ++t) {
      threadIdx.x = t;
      body();
    }
  }
}
