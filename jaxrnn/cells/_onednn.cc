// The built-in LSTM and GRU on oneDNN, as XLA:CPU custom calls: the inference forward is
// oneDNN's RNN primitive; the training forward and backward are ours (Kernel below:
// oneDNN matmuls for the products, our loops for the cells; faster than oneDNN's RNN
// primitive there, benchmarks/README.md), and so is a one-sample chunk's inference
// forward (Kernel::gemv: the step products by hand).
//
// Two handlers, called from jaxrnn/cells/_onednn.py (which documents the layouts). D
// layers of one kind read the same input x, each with its own weights, states and
// direction (D = 2: the two directions of a bidirectional layer, in one call):
//
//   jaxrnn_onednn_forward(x (B,T,I), wl (D,G*H,I), wi (D,G*H,H), bias (D,G',H),
//                         h0 (D,B,H), c0 (D,B,H))
//       -> y (B,T,D,H), hT (D,B,H), cT (D,B,H), stamp (8,) u8
//   jaxrnn_onednn_backward(x, wl, wi, bias, h0, c0, stamp,
//                          dy (B,T,D,H), dhT (D,B,H), dcT (D,B,H))
//       -> dx (B,T,I) (summed over the D layers), dwl, dwi, dbias, dh0, dc0 (shapes of
//          wl, wi, bias, h0, c0)
//
// (wl, wi: PyTorch's weight_ih, weight_hh.) attributes: kind (0: LSTM, gates i f g o,
// G' = 4; 1: the linear-before-reset GRU, gates r z n as PyTorch's, G' = 4 with the
// extra recurrent bias of the candidate), reverse
// (bit d set: layer d runs right to left), and the forward's training (false: the
// inference forward, no workspace kept, stamp 0). float32 only; c0, cT, dcT, dc0 are unused
// by the GRU (zeros out).
//
// Workspaces. A training forward keeps a workspace (gates and states of every step) for
// its backward. It lives in the plans (Slot), not in XLA's buffers, which XLA
// would allocate afresh, page by page, on every call; the forward returns a stamp, and
// the backward finds the workspace by it, or runs the forward again if it was taken.
//
// Threads. The work is cut into chunks: each of the D layers, times contiguous ranges
// of the batch (each of at least one sample; see chunks() for how many), so that
// under training a bidirectional layer on 2 cores runs one direction per core on the
// whole batch. Each chunk runs single-threaded (OpenMP), with its own primitives,
// scratchpad and workspace, on the calling thread or as a task on XLA's pool; whichever
// thread is free claims the next chunk, so a call never waits on a task that has not
// started. This keeps OpenMP's thread teams out of XLA's pool (they fought over the
// cores: 3x slower at small shapes) and needs no synchronisation inside the recurrence.
// The weight gradients of one layer's chunks are summed, and so are the D layers' input
// gradients.
//
// Plans (primitive descriptors, primitives, weight reorders, scratchpad, workspaces)
// are built once per shape and chunk and kept in a cache of at most 4 GiB (least
// recently used dropped first, see Plans); a plan's mutex serialises two calls of one
// shape that run at the same time (several devices of a sharded program, threads), and
// nothing of a plan is read or written outside it.

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine& cpu() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// ---------------------------------------------------------------------------------------
// The training forward and backward of one chunk (Bc samples of one layer), ours.
// oneDNN's RNN primitive runs them on its generic sgemm, which packs its operands on every
// step; here every product is a oneDNN matmul (brgemm kernels), the recurrent weights
// reordered once per call into the layout the step's matmul wants, and the cell's
// arithmetic is a loop of our own (vectorised; exp_ below). Only the two recurrent
// products run once per step; the others are one matmul each over all Bc T rows.
//
// LSTM, gates i f g o (as oneDNN and PyTorch order them; jaxrnn/cells/lstm.py):
//
//   z_t = x_t W_l + b + h_{t-1} W_i,   (i f g o) = (s(z_i) s(z_f) tanh(z_g) s(z_o)),
//   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t);
//
//   backward, with dh = dy_t + (the gradient from step t+1) and dc from step t+1:
//   dc += dh o (1 - tanh^2 c_t),  dz_o = dh tanh(c_t) o (1 - o),  dz_i = dc g i (1 - i),
//   dz_f = dc c_{t-1} f (1 - f),  dz_g = dc i (1 - g^2),  dc_{t-1} = dc f,
//   dh_{t-1} = dz_t W_i^T;  dW_i = sum_t h_{t-1}^T dz_t,  dW_l = sum_t x_t^T dz_t,
//   db = sum_t dz_t,  dx_t = dz_t W_l^T.
//
// GRU, oneDNN's linear-before-reset form (PyTorch's GRU; jaxrnn/cells/gru.py), gates
// in PyTorch's order r u o (its r z n), bias (b_r, b_u, b_o, b_hn):
//
//   a = x_t W_l + (b_r b_u b_o),  e = h_{t-1} W_i,  r = s(a_r + e_r),  u = s(a_u + e_u),
//   q = e_o + b_hn,  o = tanh(a_o + r q),  h_t = u h_{t-1} + (1 - u) o;
//
//   backward: da_o = dh (1 - u) (1 - o^2),  da_u = dh (h_{t-1} - o) u (1 - u),
//   da_r = da_o q r (1 - r),  de = (da_r, da_u, da_o r),  dh_{t-1} = dh u + de W_i^T,
//   dW_l = sum_t x_t^T da,  dW_i = sum_t h_{t-1}^T de,  db = sum_t (da, da_o r),
//   dx_t = da W_l^T.
//
// The weights come and go in PyTorch's layout, W_l^T = W_ih (G H, I) and W_i^T = W_hh
// (G H, H) row-major: the matmuls read them transposed or reordered, and the weight
// gradients are reordered into it at the end (XLA's transposes of them took up to 9 %
// of a bidirectional layer's forward, benchmarks/README.md).
//
// Workspace, rows b T + t (floats): the gates (Bc T, G H; the backward overwrites them
// with da, or dz, unless it keeps dz blocked: Kernel::blocked), one more (Bc T, H) (LSTM:
// c_t; GRU: q, then da_o r), and h_{t-1} (Bc T, H).

memory::desc strided(memory::dims dims, memory::dims strides) {
  return memory::desc(dims, dt::f32, strides);
}

memory view(const memory::desc& d, const void* p) {
  return memory(d, cpu(), const_cast<void*>(p));
}

// A step's matmul, its arguments built once before the loop (execute() with a map builds
// them on every call, which counts at small widths). The memories must outlive the calls.
struct StepCall {
  const dnnl::primitive& primitive;
  std::vector<dnnl_exec_arg_t> args;
  StepCall(const dnnl::primitive& p, std::initializer_list<std::pair<int, const memory*>> a)
      : primitive(p) {
    for (const auto& [arg, m] : a) args.push_back({arg, m->get()});
  }
  void operator()(dnnl::stream& s) const {
    dnnl::error::wrap_c_api(dnnl_primitive_execute(primitive.get(), s.get(),
                                                   static_cast<int>(args.size()), args.data()),
                            "could not execute a step's matmul");
  }
};

// e^v within 2 ulp for v in [-87, 88] (v clamped there): Cephes' expf, v = n ln 2 + r with
// |r| <= ln 2 / 2, a degree-6 polynomial in r times 2^n made in the exponent bits. Plain
// arithmetic, so that the cell loops vectorise (with -fno-trapping-math, setup.py).
inline float exp_(float v) {
  v = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
  // n = round(v / ln 2), by truncating a positive number
  const int32_t n = static_cast<int32_t>(v * 1.44269504088896341f + 128.5f) - 128;
  const float nf = static_cast<float>(n);
  const float r = v - nf * 0.693359375f + nf * 2.12194440e-4f;
  const float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                     4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) *
                      (r * r) + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline float sigmoid_(float v) { return 1.0f / (1.0f + exp_(-v)); }
inline float tanh_(float v) {
  const float e = exp_(-2.0f * std::fabs(v));
  return std::copysign((1.0f - e) / (1.0f + e), v);
}

// The cells, one step of the chunk's B samples (one call, whatever B: a call per sample
// cost more than the arithmetic at small widths). Sample b's rows: g + b T G H (x_t W_l + b
// in, the gates out), e + b G H (h_{t-1} W_i), h + b H (h_{t-1} in, h_t out), hs + b T H
// (h_{t-1} kept), y + b T D H (h_t). LSTM: c + b H (c_{t-1} in, c_t out), more + b T H
// (c_t kept). GRU: bhn (H) b_hn, more + b T H (q = e_o + b_hn kept).
#define JAXRNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
// BODY for every sample b and unit j, vectorised over the units, or over the samples
// where there are fewer units than an AVX-512 vector holds (then every unit ran in the
// scalar remainder: a 6-unit GRU's forward step took 2.3x as long).
#define JAXRNN_CELLS(...)                                                   \
  if (H >= 16) {                                                            \
    for (int64_t b = 0; b < B; ++b)                                         \
      _Pragma("omp simd") for (int64_t j = 0; j < H; ++j) { __VA_ARGS__ }   \
  } else {                                                                  \
    for (int64_t j = 0; j < H; ++j)                                         \
      _Pragma("omp simd") for (int64_t b = 0; b < B; ++b) { __VA_ARGS__ }   \
  }

JAXRNN_CLONES void lstm_step(int64_t B, int64_t T, int64_t D, int64_t H, float* g,
                             const float* e, float* c, float* h, float* more, float* hs,
                             float* y) {
  const int64_t sg = T * 4 * H, sm = T * H, sy = T * D * H;
  JAXRNN_CELLS(
    float* gb = g + b * sg;
    const float* eb = e + b * 4 * H;
    const float i = sigmoid_(gb[j] + eb[j]), f = sigmoid_(gb[H + j] + eb[H + j]);
    const float u = tanh_(gb[2 * H + j] + eb[2 * H + j]);
    const float o = sigmoid_(gb[3 * H + j] + eb[3 * H + j]);
    const float ct = f * c[b * H + j] + i * u, ht = o * tanh_(ct);
    gb[j] = i, gb[H + j] = f, gb[2 * H + j] = u, gb[3 * H + j] = o;
    hs[b * sm + j] = h[b * H + j], c[b * H + j] = ct, more[b * sm + j] = ct;
    h[b * H + j] = ht, y[b * sy + j] = ht;
  )
}

JAXRNN_CLONES void gru_step(int64_t B, int64_t T, int64_t D, int64_t H, float* g,
                            const float* e, const float* bhn, float* h, float* more, float* hs,
                            float* y) {
  const int64_t sg = T * 3 * H, sm = T * H, sy = T * D * H;
  JAXRNN_CELLS(
    float* gb = g + b * sg;
    const float* eb = e + b * 3 * H;
    const float r = sigmoid_(gb[j] + eb[j]), u = sigmoid_(gb[H + j] + eb[H + j]);
    const float q = eb[2 * H + j] + bhn[j], o = tanh_(gb[2 * H + j] + r * q);
    const float ht = u * h[b * H + j] + (1.0f - u) * o;
    gb[j] = r, gb[H + j] = u, gb[2 * H + j] = o;
    hs[b * sm + j] = h[b * H + j], more[b * sm + j] = q;
    h[b * H + j] = ht, y[b * sy + j] = ht;
  )
}

// Their backward, rows as above. g: the gates in, da out (LSTM: to da + b da_stride,
// over the gates or to one step's rows); de + b G H: the recurrent product's gradient out
// (contiguous, for the step's matmul; the LSTM's is da); dy + b T D H; dh + b H: the
// gradient of h_t from step t+1 in (GRU: dh u out, to which the step's matmul adds
// de W_i^T); db (G H; GRU 4 H): added to, sample by sample after the cells. LSTM: more +
// b T H c_t, cp + b cp_stride c_{t-1}, dc + b H dc_t in, dc_{t-1} out. GRU: more + b T H
// q in, da_o r out; hs + b T H h_{t-1}.
JAXRNN_CLONES void lstm_step_backward(int64_t B, int64_t T, int64_t D, int64_t H,
                                      const float* g, float* da, int64_t da_stride, float* de,
                                      const float* more, const float* cp, int64_t cp_stride,
                                      const float* dy, const float* dh, float* dc, float* db) {
  const int64_t sg = T * 4 * H, sm = T * H, sy = T * D * H;
  JAXRNN_CELLS(
    const float* gb = g + b * sg;
    float *ab = da + b * da_stride, *eb = de + b * 4 * H;
    const float i = gb[j], f = gb[H + j], u = gb[2 * H + j], o = gb[3 * H + j];
    const float tc = tanh_(more[b * sm + j]), dht = dy[b * sy + j] + dh[b * H + j];
    const float dct = dc[b * H + j] + dht * o * (1.0f - tc * tc);
    const float di = dct * u * i * (1.0f - i), df = dct * cp[b * cp_stride + j] * f * (1.0f - f);
    const float du = dct * i * (1.0f - u * u), dout = dht * tc * o * (1.0f - o);
    dc[b * H + j] = dct * f;
    ab[j] = eb[j] = di, ab[H + j] = eb[H + j] = df;
    ab[2 * H + j] = eb[2 * H + j] = du, ab[3 * H + j] = eb[3 * H + j] = dout;
  )
  for (int64_t b = 0; b < B; ++b)
#pragma omp simd
    for (int64_t k = 0; k < 4 * H; ++k) db[k] += de[b * 4 * H + k];
}

JAXRNN_CLONES void gru_step_backward(int64_t B, int64_t T, int64_t D, int64_t H, float* g,
                                     float* de, float* more, const float* hs, const float* dy,
                                     float* dh, float* db) {
  const int64_t sg = T * 3 * H, sm = T * H, sy = T * D * H;
  JAXRNN_CELLS(
    float* gb = g + b * sg;
    float* eb = de + b * 3 * H;
    const float r = gb[j], u = gb[H + j], o = gb[2 * H + j];
    const float dht = dy[b * sy + j] + dh[b * H + j];
    const float dout = dht * (1.0f - u) * (1.0f - o * o);
    const float du = dht * (hs[b * sm + j] - o) * u * (1.0f - u);
    const float dr = dout * more[b * sm + j] * r * (1.0f - r), dor = dout * r;
    gb[j] = eb[j] = dr, gb[H + j] = eb[H + j] = du, gb[2 * H + j] = dout;
    more[b * sm + j] = eb[2 * H + j] = dor;
    dh[b * H + j] = dht * u;
  )
  for (int64_t b = 0; b < B; ++b) {  // db: (dr, du, dout, dor)
    const float *gb = g + b * sg, *eb = de + b * 3 * H;
#pragma omp simd
    for (int64_t k = 0; k < 2 * H; ++k) db[k] += eb[k];
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) db[2 * H + j] += gb[2 * H + j], db[3 * H + j] += eb[2 * H + j];
  }
}

// The widths of gemv()'s column blocks: 8, 4 or 1 vectors of 16 floats, then the rest.
template <typename F>
void column_blocks(int64_t N, F block) {
  int64_t n = 0;
  for (const int64_t width : {128, 64, 16})
    for (; n + width <= N; n += width) block(n, width);
  if (n < N) block(n, N - n);
}

// w (K, N; element (k, n) at w + k rs + n cs) packed for gemv(): the columns in the
// blocks of column_blocks(), each block's K rows contiguous, block (n, width) at
// packed + n K, so that gemv() reads W as one stream.
void pack(int64_t K, int64_t N, const float* w, int64_t rs, int64_t cs, float* packed) {
  column_blocks(N, [&](int64_t n, int64_t width) {
    float* to = packed + n * K;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < width; ++j) to[k * width + j] = w[k * rs + (n + j) * cs];
  });
}

// y (N) = x (K) W (K, N; packed by pack()), or y += x W where `add`: one sample's step
// product (Kernel::gemv), where oneDNN's matmul call costs about as much as the product.
// Each block of columns is summed over the K rows in registers (in 2 or 4 chains where
// the block is narrow, so that the adds overlap), the last N % 16 columns one at a time.
typedef float Vec __attribute__((vector_size(64), aligned(4), may_alias));
#define JAXRNN_GEMV_BLOCK(V, C)                                                     \
  for (; n + 16 * (V) <= N; n += 16 * (V)) {                                        \
    const float* p = w + n * K;                                                     \
    Vec a[(C) * (V)] = {};                                                          \
    int64_t k = 0;                                                                  \
    for (; k + (C) <= K; k += (C), p += (C) * 16 * (V))                             \
      _Pragma("GCC unroll 8") for (int c = 0; c < (C); ++c) {                       \
        const Vec xk = Vec{} + x[k + c];                                            \
        _Pragma("GCC unroll 8") for (int v = 0; v < (V); ++v)                       \
          a[c * (V) + v] += xk * *reinterpret_cast<const Vec*>(p + (c * (V) + v) * 16); \
      }                                                                             \
    for (; k < K; ++k, p += 16 * (V)) {                                             \
      const Vec xk = Vec{} + x[k];                                                  \
      _Pragma("GCC unroll 8") for (int v = 0; v < (V); ++v)                         \
        a[v] += xk * *reinterpret_cast<const Vec*>(p + 16 * v);                     \
    }                                                                               \
    _Pragma("GCC unroll 8") for (int v = 0; v < (V); ++v) {                         \
      _Pragma("GCC unroll 4") for (int c = 1; c < (C); ++c) a[v] += a[c * (V) + v]; \
      Vec* out = reinterpret_cast<Vec*>(y + n + 16 * v);                            \
      *out = add ? *out + a[v] : a[v];                                              \
    }                                                                               \
  }
JAXRNN_CLONES void gemv(int64_t K, int64_t N, const float* x, const float* w, float* y,
                        bool add) {
  int64_t n = 0;
  JAXRNN_GEMV_BLOCK(8, 1)
  JAXRNN_GEMV_BLOCK(4, 2)
  JAXRNN_GEMV_BLOCK(1, 4)
  const int64_t width = N - n;
  for (int64_t j = 0; j < width; ++j) {
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) sum += x[k] * w[n * K + k * width + j];
    y[n + j] = add ? y[n + j] + sum : sum;
  }
}
#undef JAXRNN_GEMV_BLOCK
#undef JAXRNN_CELLS
#undef JAXRNN_CLONES

using Buffer = std::unique_ptr<char, void (*)(void*)>;

// A buffer of at least `bytes` on 2 MiB pages (the first touch of each faults once instead
// of 512 times); `bytes` is rounded up to what it holds.
Buffer huge_buffer(size_t& bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  Buffer buf(static_cast<char*>(std::aligned_alloc(kHuge, bytes)), std::free);
  if (!buf) throw std::bad_alloc();
  madvise(buf.get(), bytes, MADV_HUGEPAGE);
  return buf;
}

// From this many bytes of gate gradients (B T G H floats) a chunk's backward keeps them
// blocked (Kernel::blocked); jaxrnn_onednn_blocked changes it (for tests).
std::atomic<int64_t> blocked_from{int64_t{8} << 20};
std::atomic<int64_t> blocked_runs{0};  // backwards run blocked, for tests
std::atomic<int64_t> gemv_runs{0};     // forwards and backwards run by gemv(), for tests

// Whether a chunk of B samples runs its step products with gemv(): one sample, up to
// 512 KiB of W_i (0.3-0.6x the time of oneDNN's matmuls below 64 units, 0.9x at 128
// (LSTM) and 192 (GRU), 1.0-1.1x from 1 MiB; benchmarks/README.md).
bool gemv_for(int64_t B, int64_t G, int64_t H) {
  return B == 1 && G * H * H * static_cast<int64_t>(sizeof(float)) <= int64_t{512} << 10;
}

struct Kernel {
  bool lstm;
  int64_t T, B, I, H, D, G;  // B: the chunk's samples; D: layers sharing y (its stride)
  bool reverse;
  // One sample (B = 1): the step products are gemv() on W_i and W_i^T packed into w_gemv
  // and w_gemv_back, not oneDNN matmuls (step, step_back and their weights unused).
  bool gemv;
  // dwi: the recurrent weights' gradient from the gates' rows (LSTM: all of it; GRU:
  // r and u); dwi_o: the GRU's o columns, from the rows of da_o r. dwl: the input
  // weights' gradient. dx: all rows at once; dx_step: one step's (blocked). dW_i and
  // dW_l are made (H, G H) and (I, G H) in dw, then reordered into PyTorch's layout.
  dnnl::matmul in, step, step_back, dwi, dwi_o, dwl, dx, dx_step;
  memory wi_step, wi_back, wl_back;  // W_i, W_i^T and W_l^T in the matmuls' layouts
  dnnl::reorder to_wi_step, to_wi_back, to_wl_back, from_dwi, from_dwl;
  std::vector<float> dw;  // (H + I, G H): dW_i, then dW_l
  memory scratch;                    // all the matmuls' and reorders' scratchpad
  std::vector<float> w_gemv, w_gemv_back;
  std::vector<float> e, h, c, dh;  // one step: e (B, G H); h, c (LSTM), dh (B, H)
  // Blocked (an LSTM's large chunk): the backward writes the gates' gradients dz, rows
  // b T + t, not over the gates but into ga, in the layout in which the weight-gradient
  // matmuls read them as they are: blocks of KB rows and NB columns, NB columns
  // contiguous, block (r, n) at r sK + n sN (oneDNN's BA16a64b on AVX-512). Given plain,
  // each of those matmuls packs them first, from memory (26 MB at shape b, twice). dx is
  // then a matmul per step, from the step's dz (e). The GRU's dW_i reads da_o r, not
  // da_o, and brgemm declines the r, u columns' row-strided dW_i: blocked, it was 3-5 %
  // slower (benchmarks/README.md), so it stays plain.
  bool blocked = false;
  int64_t KB = 0, NB = 0, sK = 0, sN = 0;
  memory ga;
  Buffer ga_buffer{nullptr, std::free};
  size_t ga_bytes = 0;
  size_t workspace_bytes() const {
    return static_cast<size_t>(B * T * (G + 2) * H) * sizeof(float);
  }
  size_t bytes() const {
    size_t n = scratch.get_desc().get_size() + wi_step.get_desc().get_size() +
               wi_back.get_desc().get_size() +
               (e.size() + 3 * h.size() + w_gemv.size() + w_gemv_back.size() + dw.size()) *
                   sizeof(float);
    if (blocked) n += wl_back.get_desc().get_size() + ga_bytes;
    return n;
  }
};

// One step's rows src (B, G H) into the blocked matrix dst, at rows b T + t.
void scatter(const Kernel& k, const float* src, const memory& dst, int64_t t) {
  const int64_t GH = k.G * k.H;
  float* const to = static_cast<float*>(dst.get_data_handle());
  for (int64_t b = 0; b < k.B; ++b, src += GH) {
    const int64_t r = b * k.T + t;
    float* row = to + (r / k.KB) * k.sK + (r % k.KB) * k.NB;
    for (int64_t n = 0; n < GH; n += k.NB)
      std::memcpy(row + (n / k.NB) * k.sN, src + n, std::min(k.NB, GH - n) * sizeof(float));
  }
}

std::unique_ptr<Kernel> make_kernel(bool lstm, int64_t T, int64_t B, int64_t I, int64_t H,
                                    int64_t D, bool reverse) {
  auto k = std::make_unique<Kernel>();
  const int64_t G = lstm ? 4 : 3, GH = G * H, M = B * T;
  k->lstm = lstm, k->T = T, k->B = B, k->I = I, k->H = H, k->D = D, k->G = G;
  k->reverse = reverse;
  k->gemv = gemv_for(B, G, H);
  auto& e = cpu();
  dnnl::primitive_attr attr, add;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  add.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  add.set_post_ops(sum);  // dst += product (the GRU's dh_{t-1} = dh u + de W_i^T)
  size_t scratch = 0;
  auto matmul = [&](memory::desc a, memory::desc w, memory::desc c, const memory::desc* bias,
                    const dnnl::primitive_attr& at) {
    auto pd = bias ? dnnl::matmul::primitive_desc(e, a, w, *bias, c, at)
                   : dnnl::matmul::primitive_desc(e, a, w, c, at);
    scratch = std::max(scratch, pd.scratchpad_desc().get_size());
    return pd;
  };
  auto rows = [](int64_t m, int64_t n, int64_t ld) { return strided({m, n}, {ld, 1}); };
  auto cols = [](int64_t m, int64_t n) { return strided({m, n}, {1, m}); };  // transposed
  const auto any = [](int64_t m, int64_t n) { return memory::desc({m, n}, dt::f32, tag::any); };
  const auto bias = rows(1, GH, GH);
  k->in = dnnl::matmul(matmul(rows(M, I, I), cols(I, GH), rows(M, GH, GH), &bias, attr));
  auto step = matmul(rows(B, H, H), any(H, GH), rows(B, GH, GH), nullptr, attr);
  auto back = matmul(rows(B, GH, GH), any(GH, H), rows(B, H, H), nullptr, lstm ? attr : add);
  k->step = dnnl::matmul(step), k->step_back = dnnl::matmul(back);
  auto reorder = [&](const memory::desc& from, const memory::desc& to) {
    auto pd = dnnl::reorder::primitive_desc(e, from, e, to, attr);
    scratch = std::max(scratch, pd.scratchpad_desc().get_size());
    return dnnl::reorder(pd);
  };
  k->from_dwi = reorder(rows(H, GH, GH), cols(H, GH));
  k->from_dwl = reorder(rows(I, GH, GH), cols(I, GH));
  k->dw.resize((H + I) * GH);
  if (lstm && static_cast<int64_t>(M * GH * sizeof(float)) >= blocked_from.load()) {
    // The layout in which oneDNN's brgemm matmul of dW_l reads dz unpacked, if it is two
    // inner blocks (rows, then contiguous columns) and brgemm's dW_i reads it too.
    auto lpd = matmul(cols(I, M), any(M, GH), rows(I, GH, GH), nullptr, attr);
    const memory::desc z = lpd.weights_desc();
    auto wpd = matmul(cols(H, M), z, rows(H, GH, GH), nullptr, attr);
    const auto brgemm = [](const dnnl::matmul::primitive_desc& pd) {
      return std::string(pd.impl_info_str()).rfind("brg", 0) == 0;
    };
    if (z.get_format_kind() == memory::format_kind::blocked && z.get_inner_nblks() == 2 &&
        z.get_inner_idxs() == memory::dims{0, 1} && brgemm(lpd) && brgemm(wpd)) {
      k->blocked = true;
      k->dwi = dnnl::matmul(wpd), k->dwl = dnnl::matmul(lpd);
      k->KB = z.get_inner_blks()[0], k->NB = z.get_inner_blks()[1];
      k->sK = z.get_strides()[0], k->sN = z.get_strides()[1];
      // 2 MiB pages (a row's blocks lie 1 page apart else); the padding (rows and columns
      // past the matrix) stays zero.
      k->ga_bytes = z.get_size();
      k->ga_buffer = huge_buffer(k->ga_bytes);
      std::memset(k->ga_buffer.get(), 0, k->ga_bytes);
      k->ga = memory(z, e, k->ga_buffer.get());
      auto dxs = matmul(rows(B, GH, GH), any(GH, I), rows(B, I, T * I), nullptr, attr);
      k->dx_step = dnnl::matmul(dxs);
      k->wl_back = memory(dxs.weights_desc(), e);
      k->to_wl_back = reorder(rows(GH, I, I), dxs.weights_desc());
    }
  }
  const int64_t gates_i = lstm ? GH : 2 * H;  // columns of dW_i from the gates' rows
  if (!k->blocked) {
    k->dwi = dnnl::matmul(matmul(cols(H, M), rows(M, gates_i, GH), rows(H, gates_i, GH),
                                 nullptr, attr));
    k->dwl = dnnl::matmul(matmul(cols(I, M), rows(M, GH, GH), rows(I, GH, GH), nullptr, attr));
    k->dx = dnnl::matmul(matmul(rows(M, GH, GH), rows(GH, I, I), rows(M, I, I), nullptr, attr));
  }
  if (!lstm)
    k->dwi_o = dnnl::matmul(matmul(cols(H, M), rows(M, H, H), rows(H, H, GH), nullptr, attr));
  k->wi_step = memory(step.weights_desc(), e), k->wi_back = memory(back.weights_desc(), e);
  k->to_wi_step = reorder(cols(H, GH), step.weights_desc());
  k->to_wi_back = reorder(rows(GH, H, H), back.weights_desc());
  if (k->gemv) k->w_gemv.resize(H * GH), k->w_gemv_back.resize(H * GH);
  k->scratch = memory(
      memory::desc({static_cast<int64_t>(std::max<size_t>(scratch, 1))}, dt::u8, tag::a), e);
  k->e.resize(B * GH), k->h.resize(B * H), k->c.resize(B * H), k->dh.resize(B * H);
  return k;
}

// The chunk's forward into workspace ws. x (B,T,I), wl = W_ih (GH,I), wi = W_hh (GH,H),
// bias (LSTM 4H, GRU 4H: b_r b_u b_o b_hn), h0 hT (B,H), c0 cT (B,H; LSTM only), y:
// sample b's step t at y + (b T + t) D H.
void kernel_forward(Kernel& k, dnnl::stream& s, const float* x, const float* wl,
                    const float* wi, const float* bias, const float* h0, const float* c0,
                    float* y, float* hT, float* cT, float* ws) {
  const int64_t T = k.T, B = k.B, I = k.I, H = k.H, GH = k.G * H, M = B * T;
  float *gates = ws, *more = ws + M * GH, *hs = more + M * H;
  const size_t state = B * H * sizeof(float);
  if (k.gemv)
    ++gemv_runs, pack(H, GH, wi, 1, H, k.w_gemv.data());
  else
    k.to_wi_step.execute(s, {{DNNL_ARG_FROM, view(strided({H, GH}, {1, H}), wi)},
                             {DNNL_ARG_TO, k.wi_step},
                             {DNNL_ARG_SCRATCHPAD, k.scratch}});
  k.in.execute(s, {{DNNL_ARG_SRC, view(strided({M, I}, {I, 1}), x)},
                   {DNNL_ARG_WEIGHTS, view(strided({I, GH}, {1, I}), wl)},
                   {DNNL_ARG_BIAS, view(strided({1, GH}, {GH, 1}), bias)},
                   {DNNL_ARG_DST, view(strided({M, GH}, {GH, 1}), gates)},
                   {DNNL_ARG_SCRATCHPAD, k.scratch}});
  std::memcpy(k.h.data(), h0, state);
  if (k.lstm) std::memcpy(k.c.data(), c0, state);
  const memory h = view(strided({B, H}, {H, 1}), k.h.data());
  const memory e = view(strided({B, GH}, {GH, 1}), k.e.data());
  const StepCall step(k.step, {{DNNL_ARG_SRC, &h},
                               {DNNL_ARG_WEIGHTS, &k.wi_step},
                               {DNNL_ARG_DST, &e},
                               {DNNL_ARG_SCRATCHPAD, &k.scratch}});
  for (int64_t n = 0; n < T; ++n) {
    const int64_t t = k.reverse ? T - 1 - n : n;
    if (k.gemv)
      gemv(H, GH, k.h.data(), k.w_gemv.data(), k.e.data(), false);
    else
      step(s);
    float *g = gates + t * GH, *m = more + t * H, *hp = hs + t * H, *yt = y + t * k.D * H;
    if (k.lstm)
      lstm_step(B, T, k.D, H, g, k.e.data(), k.c.data(), k.h.data(), m, hp, yt);
    else
      gru_step(B, T, k.D, H, g, k.e.data(), bias + GH, k.h.data(), m, hp, yt);
  }
  std::memcpy(hT, k.h.data(), state);
  if (k.lstm) std::memcpy(cT, k.c.data(), state);
}

// The chunk's backward from its forward's workspace ws (whose gates it overwrites unless
// blocked). dy like y; dhT dh0 (B,H), dcT dc0 (B,H; LSTM only); dx (B,T,I), dwl, dwi
// (the layouts of wl, wi), db (4H) written (not added to).
void kernel_backward(Kernel& k, dnnl::stream& s, const float* x, const float* wl,
                     const float* wi, const float* c0, float* ws, const float* dy,
                     const float* dhT, const float* dcT, float* dx, float* dwl, float* dwi,
                     float* db, float* dh0, float* dc0) {
  const int64_t T = k.T, B = k.B, I = k.I, H = k.H, GH = k.G * H, M = B * T;
  float *gates = ws, *more = ws + M * GH, *hs = more + M * H;
  const size_t state = B * H * sizeof(float);
  float* dc = k.c.data();
  if (k.gemv)
    ++gemv_runs, pack(GH, H, wi, H, 1, k.w_gemv_back.data());
  else
    k.to_wi_back.execute(s, {{DNNL_ARG_FROM, view(strided({GH, H}, {H, 1}), wi)},
                             {DNNL_ARG_TO, k.wi_back},
                             {DNNL_ARG_SCRATCHPAD, k.scratch}});
  std::memcpy(k.dh.data(), dhT, state);
  if (k.lstm) std::memcpy(dc, dcT, state);
  std::memset(db, 0, 4 * H * sizeof(float));
  const memory de = view(strided({B, GH}, {GH, 1}), k.e.data());
  const memory dh = view(strided({B, H}, {H, 1}), k.dh.data());
  const StepCall step(k.step_back, {{DNNL_ARG_SRC, &de},
                                    {DNNL_ARG_WEIGHTS, &k.wi_back},
                                    {DNNL_ARG_DST, &dh},
                                    {DNNL_ARG_SCRATCHPAD, &k.scratch}});
  // Blocked: the step's rows of dx, from dz (e).
  memory dx_t = view(strided({B, I}, {T * I, 1}), dx);
  std::unique_ptr<StepCall> dx_step;
  if (k.blocked) {
    ++blocked_runs;
    k.to_wl_back.execute(s, {{DNNL_ARG_FROM, view(strided({GH, I}, {I, 1}), wl)},
                             {DNNL_ARG_TO, k.wl_back},
                             {DNNL_ARG_SCRATCHPAD, k.scratch}});
    dx_step.reset(new StepCall(k.dx_step, {{DNNL_ARG_SRC, &de},
                                           {DNNL_ARG_WEIGHTS, &k.wl_back},
                                           {DNNL_ARG_DST, &dx_t},
                                           {DNNL_ARG_SCRATCHPAD, &k.scratch}}));
  }
  for (int64_t n = T - 1; n >= 0; --n) {
    const int64_t t = k.reverse ? T - 1 - n : n, before = k.reverse ? t + 1 : t - 1;
    float *g = gates + t * GH, *m = more + t * H;
    const float* dyt = dy + t * k.D * H;
    if (k.lstm) {
      const bool first = n == 0;  // c_{t-1} is c0
      float* const dz = k.blocked ? k.e.data() : g;  // de again, then into ga
      lstm_step_backward(B, T, k.D, H, g, dz, k.blocked ? GH : T * GH, k.e.data(), m,
                         first ? c0 : more + before * H, first ? H : T * H, dyt, k.dh.data(),
                         dc, db);
      if (k.blocked) scatter(k, k.e.data(), k.ga, t);
    } else {
      gru_step_backward(B, T, k.D, H, g, k.e.data(), m, hs + t * H, dyt, k.dh.data(), db);
    }
    if (k.gemv)  // the GRU's adds to dh u
      gemv(GH, H, k.e.data(), k.w_gemv_back.data(), k.dh.data(), !k.lstm);
    else
      step(s);
    if (k.blocked) {
      dx_t.set_data_handle(dx + t * I);
      (*dx_step)(s);
    }
  }
  std::memcpy(dh0, k.dh.data(), state);
  if (k.lstm) std::memcpy(dc0, dc, state);
  const memory da = view(strided({M, GH}, {GH, 1}), gates), sp = k.scratch;
  const memory h_t = view(strided({H, M}, {1, H}), hs);
  const int64_t gates_i = k.lstm ? GH : 2 * H;
  float *dwi_k = k.dw.data(), *dwl_k = dwi_k + H * GH;  // (H, GH), (I, GH)
  k.dwi.execute(s, {{DNNL_ARG_SRC, h_t},
                    {DNNL_ARG_WEIGHTS,
                     k.blocked ? k.ga : view(strided({M, gates_i}, {GH, 1}), gates)},
                    {DNNL_ARG_DST, view(strided({H, gates_i}, {GH, 1}), dwi_k)},
                    {DNNL_ARG_SCRATCHPAD, sp}});
  if (!k.lstm)
    k.dwi_o.execute(s, {{DNNL_ARG_SRC, h_t},
                        {DNNL_ARG_WEIGHTS, view(strided({M, H}, {H, 1}), more)},
                        {DNNL_ARG_DST, view(strided({H, H}, {GH, 1}), dwi_k + 2 * H)},
                        {DNNL_ARG_SCRATCHPAD, sp}});
  k.dwl.execute(s, {{DNNL_ARG_SRC, view(strided({I, M}, {1, I}), x)},
                    {DNNL_ARG_WEIGHTS, k.blocked ? k.ga : da},
                    {DNNL_ARG_DST, view(strided({I, GH}, {GH, 1}), dwl_k)},
                    {DNNL_ARG_SCRATCHPAD, sp}});
  if (!k.blocked)
    k.dx.execute(s, {{DNNL_ARG_SRC, da},
                     {DNNL_ARG_WEIGHTS, view(strided({GH, I}, {I, 1}), wl)},
                     {DNNL_ARG_DST, view(strided({M, I}, {I, 1}), dx)},
                     {DNNL_ARG_SCRATCHPAD, sp}});
  k.from_dwi.execute(s, {{DNNL_ARG_FROM, view(strided({H, GH}, {GH, 1}), dwi_k)},
                         {DNNL_ARG_TO, view(strided({H, GH}, {1, H}), dwi)},
                         {DNNL_ARG_SCRATCHPAD, sp}});
  k.from_dwl.execute(s, {{DNNL_ARG_FROM, view(strided({I, GH}, {GH, 1}), dwl_k)},
                         {DNNL_ARG_TO, view(strided({I, GH}, {1, I}), dwl)},
                         {DNNL_ARG_SCRATCHPAD, sp}});
}
// ---------------------------------------------------------------------------------------

// One workspace of a training plan: the buffer, the stamp of the forward call whose
// workspace it holds (every training forward gets a new one; 0: none, as after its
// backward, which overwrites the gates with their gradients, so that a backward run
// twice with the same residuals runs the forward again), and whether a backward has
// read it since (then a forward may take it). The buffer lives as long as the
// plan: XLA would allocate the workspace afresh on every call, and the kernel zeroes
// fresh pages on first touch (benchmarks/README.md).
struct Slot {
  Buffer buf{nullptr, std::free};
  uint64_t stamp = 0;
  bool read = true;
};

// One chunk's plan: batch Bc. A training plan holds our kernel (its forward fills a
// workspace, its backward reads it); an inference plan oneDNN's inference forward, all
// buffers in the user's plain layouts.
struct Plan {
  std::mutex mutex;
  bool lstm;
  std::unique_ptr<Kernel> kernel;  // training, or one sample (gemv_for)
  size_t workspace = 0;            // with a kernel: bytes of one workspace
  // inference without a kernel:
  memory::desc x, state, wl, wi, bias, y;
  dnnl::primitive fwd;
  memory::desc wl_fwd, wi_fwd;
  memory wl_f, wi_f;  // the weights in the primitive's layouts
  dnnl::reorder to_wl_f, to_wi_f;
  // The GRU's: the primitive's gates are u r o, PyTorch's r u (z) o (n), so each gate
  // is reordered from PyTorch's layout (gate_l/gate_i: a gate of wl/wi) into plain
  // ldigo (wl_g, wi_g), and from there; the bias (r u o hn) is permuted into bias_g.
  memory::desc gate_l, gate_i, gate_l_to, gate_i_to;
  dnnl::reorder to_gate_l, to_gate_i;
  memory wl_g, wi_g;
  std::vector<float> bias_g;
  memory scratch;  // user scratchpad of the primitive and reorders
  // A training plan's workspaces (what a forward keeps for its backward; see Slot); an
  // inference plan with a kernel has one, unstamped.
  std::vector<Slot> slots;
  size_t bytes = 0;    // what the plan holds: scratchpad, weight buffers, workspaces
  bool cached = true;  // in the cache (its bytes counted there); `bytes` and `cached`
                       // change under the cache's mutex
};

// OpenMP limited to this thread while in scope, then restored. oneDNN fixes a
// primitive's thread count when it is created and opens a team of that size each time it
// runs, so plans are created under it as well as run. A team opened from one of XLA's
// threads gives OpenMP more managed threads than cores; libgomp (shared with PyTorch
// when PyTorch loaded it first) then stops spinning between parallel regions everywhere
// in the process, and PyTorch's LSTM took 2-5x longer (benchmarks/README.md).
struct OneThread {
  const int before = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(before); }
};

memory::desc plain(memory::dims dims, tag t) { return memory::desc(dims, dt::f32, t); }

using Key = std::tuple<int64_t, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int>;

std::shared_ptr<Plan> make_plan(int64_t kind, bool reverse, bool training, int64_t D,
                                int64_t T, int64_t Bc, int64_t I, int64_t H) {
  OneThread one;
  auto p = std::make_shared<Plan>();
  auto& e = cpu();
  const bool lstm = kind == 0;
  const int64_t G = lstm ? 4 : 3;
  p->lstm = lstm;
  // Training, or one sample where gemv() runs its steps (inference too: 0.8x the time of
  // oneDNN's inference forward at 64 units).
  if (training || gemv_for(Bc, G, H)) {
    p->kernel = make_kernel(lstm, T, Bc, I, H, D, reverse);
    p->workspace = p->kernel->workspace_bytes();
    p->bytes = p->kernel->bytes();
    return p;
  }
  // Batch-major (ntc); one sample is the same bytes as time-major (tnc), which oneDNN
  // runs faster (2.4 against 4.1 ms for an LSTM of width 64 over 1000 steps).
  const tag layer = Bc == 1 ? tag::tnc : tag::ntc;
  p->x = plain({T, Bc, I}, layer);
  p->state = plain({1, 1, Bc, H}, tag::ldnc);
  // PyTorch's layout (G H, K) row-major, as ldigo dims (1, 1, K, gates, H)
  auto torch = [&](int64_t K, int64_t gates) {
    return memory::desc({1, 1, K, gates, H}, dt::f32, {G * H * K, G * H * K, 1, H * K, K});
  };
  p->wl = lstm ? torch(I, G) : plain({1, 1, I, G, H}, tag::ldigo);
  p->wi = lstm ? torch(H, G) : plain({1, 1, H, G, H}, tag::ldigo);
  p->bias = plain({1, 1, lstm ? G : G + 1, H}, tag::ldgo);
  // y (B,T,D,H): this layer's outputs are every D-th row of H, so that a bidirectional
  // layer's concatenated output (B,T,2H) needs no copy; with D = 1 this is ntc (tnc).
  p->y = memory::desc({T, Bc, H}, dt::f32, {D * H, Bc == 1 ? D * H : T * D * H, 1});
  auto any_wl = plain({1, 1, I, G, H}, tag::any), any_wi = plain({1, 1, H, G, H}, tag::any);
  // The scratchpad is ours: oneDNN's own is sized per creating thread, and XLA runs the
  // calls on other threads than the one that traced them.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  size_t scratch = 0;
  auto dir = reverse ? dnnl::rnn_direction::unidirectional_right2left
                     : dnnl::rnn_direction::unidirectional_left2right;
  const auto& s = p->state;
  const auto prop = dnnl::prop_kind::forward_inference;
  auto keep = [&](const auto& f) {
    scratch = f.scratchpad_desc().get_size();
    p->wl_fwd = f.weights_layer_desc(), p->wi_fwd = f.weights_iter_desc();
  };
  if (lstm) {
    auto f = dnnl::lstm_forward::primitive_desc(e, prop, dir, p->x, s, s, any_wl, any_wi,
                                                p->bias, p->y, s, s, attr);
    p->fwd = dnnl::lstm_forward(f);
    keep(f);
  } else {
    auto f = dnnl::lbr_gru_forward::primitive_desc(e, prop, dir, p->x, s, any_wl, any_wi,
                                                   p->bias, p->y, s, attr);
    p->fwd = dnnl::lbr_gru_forward(f);
    keep(f);
  }
  auto reorder = [&](const memory::desc& from, const memory::desc& to) {
    auto pd = dnnl::reorder::primitive_desc(e, from, e, to, attr);
    scratch = std::max(scratch, pd.scratchpad_desc().get_size());
    return dnnl::reorder(pd);
  };
  p->wl_f = memory(p->wl_fwd, e), p->wi_f = memory(p->wi_fwd, e);
  p->to_wl_f = reorder(p->wl, p->wl_fwd), p->to_wi_f = reorder(p->wi, p->wi_fwd);
  p->bytes = p->wl_fwd.get_size() + p->wi_fwd.get_size();
  if (!lstm) {
    // one gate of plain ldigo (1, 1, K, 1, H)
    auto gate = [&](int64_t K) {
      return memory::desc({1, 1, K, 1, H}, dt::f32, {G * H * K, G * H * K, G * H, H, 1});
    };
    p->gate_l = torch(I, 1), p->gate_i = torch(H, 1);
    p->gate_l_to = gate(I), p->gate_i_to = gate(H);
    p->to_gate_l = reorder(p->gate_l, p->gate_l_to);
    p->to_gate_i = reorder(p->gate_i, p->gate_i_to);
    p->wl_g = memory(p->wl, e), p->wi_g = memory(p->wi, e);
    p->bias_g.resize(4 * H);
    p->bytes += p->wl.get_size() + p->wi.get_size() + 4 * H * sizeof(float);
  }
  p->scratch = memory(
      memory::desc({static_cast<int64_t>(std::max<size_t>(scratch, 1))}, dt::u8, tag::a), e);
  p->bytes += scratch;
  return p;
}

// The plans kept for reuse: at most `limit` bytes (scratchpads, weight buffers and
// workspaces; 4 GiB unless changed), the least recently used dropped first. A call
// holds its plans until it ends, so a plan dropped while in use lives on until then.
struct Plans {
  struct Entry {
    std::shared_ptr<Plan> plan;
    uint64_t used;
  };
  std::mutex mutex;
  std::map<Key, Entry> entries;
  size_t bytes = 0, limit = size_t{4} << 30;
  uint64_t clock = 0;

  void shrink(const Key* keep) {
    while (bytes > limit && entries.size() > (keep ? 1 : 0)) {
      auto lru = entries.end();
      for (auto it = entries.begin(); it != entries.end(); ++it) {
        const bool kept = keep && it->first == *keep;
        if (!kept && (lru == entries.end() || it->second.used < lru->second.used)) lru = it;
      }
      bytes -= lru->second.plan->bytes;
      lru->second.plan->cached = false;
      entries.erase(lru);
    }
  }
};

Plans& plans() {
  static Plans cache;
  return cache;
}

std::shared_ptr<Plan> plan_for(int64_t kind, bool reverse, bool training, int64_t D,
                               int64_t T, int64_t Bc, int64_t I, int64_t H, int chunk) {
  Plans& cache = plans();
  std::lock_guard<std::mutex> lock(cache.mutex);
  const Key key(kind, reverse, training, D, T, Bc, I, H, chunk);
  auto it = cache.entries.find(key);
  if (it == cache.entries.end()) {
    auto plan = make_plan(kind, reverse, training, D, T, Bc, I, H);
    it = cache.entries.emplace(key, Plans::Entry{std::move(plan), 0}).first;
    cache.bytes += it->second.plan->bytes;
  }
  it->second.used = ++cache.clock;
  auto plan = it->second.plan;
  cache.shrink(&key);
  return plan;
}

// At most this many workspaces per training plan: layers of one shape (the second and
// later layers of a stack) share plans, and each keeps its forward's workspace until its
// backward.
constexpr size_t kSlots = 8;

// A new workspace slot of plan p (its lock held), counted in the cache's bytes.
Slot& new_slot(Plan& p) {
  size_t n = p.workspace;
  Slot slot;
  slot.buf = huge_buffer(n);
  {
    Plans& cache = plans();
    std::lock_guard<std::mutex> lock(cache.mutex);
    p.bytes += n;
    if (p.cached) cache.bytes += n;
  }
  p.slots.push_back(std::move(slot));
  return p.slots.back();
}

// The slot a training forward writes (p's lock held): one whose workspace a backward
// has read, else a new one (up to kSlots), else the one written longest ago.
Slot& slot_for_forward(Plan& p) {
  for (auto& slot : p.slots)
    if (slot.read) return slot;
  if (p.slots.size() < kSlots) return new_slot(p);
  return *std::min_element(p.slots.begin(), p.slots.end(),
                           [](const Slot& a, const Slot& b) { return a.stamp < b.stamp; });
}

// A new stamp for a training forward call (never 0).
uint64_t next_stamp() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

int64_t cores() {
  static const int64_t n = std::max<int64_t>(std::thread::hardware_concurrency(), 1);
  return n;
}

// One chunk of a call: layer d (its direction), samples b0 .. b0 + size - 1; `first`
// when it is the layer's first range (it writes the layer's weight gradients directly).
struct Part {
  int64_t d;
  bool reverse, first;
  int64_t b0, size;
};

// The call cut into chunks, layer by layer: each of the D layers in K ranges of the
// batch (at most B). Under training, whole layers per core (K = ceil(cores / D): a
// bidirectional layer on 2 cores runs one direction per core over the whole batch); the
// inference forward with the batch cut over all cores (K = cores), as for one layer
// (benchmarks/README.md). (A backward cuts its call as the forward did, so it finds the
// forward's workspaces in the same plans.)
std::vector<Part> chunks(int64_t D, int64_t reverse_bits, int64_t B, bool training) {
  const int64_t K = std::clamp<int64_t>(training ? (cores() + D - 1) / D : cores(), 1, B);
  std::vector<Part> out;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0, start = 0; k < K; ++k) {
      const int64_t size = B / K + (k < B % K ? 1 : 0);
      out.push_back({d, ((reverse_bits >> d) & 1) != 0, k == 0, start, size});
      start += size;
    }
  return out;
}

// Run job(k) for k < K: this thread and min(K, cores) - 1 tasks on XLA's pool (no more
// threads than cores) claim chunks until none is left (a task that starts late finds
// none and never touches the job); then wait for the chunks others are running. OpenMP
// is limited to one thread in each.
void run_chunks(ffi::ThreadPool& pool, size_t K, std::function<void(size_t)> job) {
  struct State {
    std::function<void(size_t)> job;
    size_t K;
    std::atomic<size_t> next{0};
    std::mutex mutex;
    std::condition_variable cv;
    size_t done = 0;
    std::exception_ptr error;
  };
  auto state = std::make_shared<State>();
  state->job = std::move(job);
  state->K = K;
  auto work = [](State& s) {
    OneThread one;
    for (size_t k; (k = s.next.fetch_add(1)) < s.K;) {
      std::exception_ptr error;
      try {
        s.job(k);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(s.mutex);
      if (error && !s.error) s.error = error;
      if (++s.done == s.K) s.cv.notify_all();
    }
  };
  const size_t workers = std::min<size_t>(K, cores());
  for (size_t k = 1; k < workers; ++k) pool.Schedule([state, work] { work(*state); });
  work(*state);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->cv.wait(lock, [&] { return state->done == state->K; });
  if (state->error) std::rethrow_exception(state->error);
}

memory at(const memory::desc& d, const void* base, size_t offset_bytes) {
  return memory(d, cpu(), static_cast<char*>(const_cast<void*>(base)) + offset_bytes);
}

// The floats at base + offset_bytes (an input's, or an output's that Buffers holds const).
float* floats(const void* base, size_t offset_bytes) {
  return reinterpret_cast<float*>(static_cast<char*>(const_cast<void*>(base)) + offset_bytes);
}

void reorder(dnnl::stream& s, Plan& p, dnnl::reorder& r, memory from, memory to) {
  r.execute(s, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, p.scratch}});
}

struct Shape {
  int64_t D, T, B, I, H;
};

template <typename X, typename S>
Shape shape_of(const X& x, const S& h0) {
  auto d = x.dimensions(), h = h0.dimensions();
  return {h[0], d[1], d[0], d[2], h[2]};
}

// One call's chunks: the part and plan of each.
struct Chunked {
  std::vector<Part> parts;
  std::vector<std::shared_ptr<Plan>> plans;
};

Chunked chunked(int64_t kind, int64_t reverse_bits, bool training, Shape n) {
  Chunked c;
  c.parts = chunks(n.D, reverse_bits, n.B, training);
  for (size_t j = 0; j < c.parts.size(); ++j) {
    const Part& q = c.parts[j];
    c.plans.push_back(plan_for(kind, q.reverse, training, n.D, n.T, q.size, n.I, n.H, j));
  }
  return c;
}

using F32 = ffi::Buffer<ffi::F32>;
using OutF32 = ffi::ResultBuffer<ffi::F32>;

// The data pointers of one call: its inputs and the forward's outputs y, hT, cT (which the
// forward writes; the backward reads none of them, and points them at scratch buffers
// when it runs its forward again).
struct Buffers {
  const void *x, *bias, *h0, *c0, *y, *hT, *cT;
};

// Where a part's slices start, in bytes: of x and dx (B,T,I), of the states (D,B,H),
// of y and dy (B,T,D,H).
struct Offsets {
  size_t x, state, y;
};

Offsets offsets(Shape n, const Part& q) {
  const size_t f = sizeof(float);
  return {q.b0 * n.T * n.I * f, (q.d * n.B + q.b0) * n.H * f,
          (q.b0 * n.T * n.D + q.d) * n.H * f};
}

// Part q's forward (p's lock held): our forward into workspace `ws` (training), or, with
// `ws` null, an inference plan's: ours into its one workspace where it has a kernel (one
// sample, Kernel::gemv), oneDNN's inference forward else.
void forward(Plan& p, Shape n, const Part& q, const Buffers& b, const void* wl,
             const void* wi, const Slot* ws) {
  dnnl::stream s(cpu());
  const Offsets o = offsets(n, q);
  if (p.kernel) {
    if (!ws) ws = p.slots.empty() ? &new_slot(p) : &p.slots[0];  // inference: unstamped
    const int64_t G = p.kernel->G * n.H;
    kernel_forward(*p.kernel, s, floats(b.x, o.x), floats(wl, 0) + q.d * n.I * G,
                   floats(wi, 0) + q.d * n.H * G, floats(b.bias, 0) + q.d * 4 * n.H,
                   floats(b.h0, o.state), floats(b.c0, o.state), floats(b.y, o.y),
                   floats(b.hT, o.state), floats(b.cT, o.state),
                   reinterpret_cast<float*>(ws->buf.get()));
  } else {
    const size_t f = sizeof(float);
    memory bias;
    if (p.lstm) {
      reorder(s, p, p.to_wl_f, at(p.wl, wl, q.d * p.wl.get_size()), p.wl_f);
      reorder(s, p, p.to_wi_f, at(p.wi, wi, q.d * p.wi.get_size()), p.wi_f);
      bias = at(p.bias, b.bias, q.d * p.bias.get_size());
    } else {
      const size_t GH = 3 * n.H;
      const float* from = floats(b.bias, q.d * 4 * n.H * f);
      for (int64_t g = 0; g < 3; ++g) {  // oneDNN's gate g is PyTorch's gate tg
        const int64_t tg = g < 2 ? 1 - g : g;
        reorder(s, p, p.to_gate_l, at(p.gate_l, wl, (q.d * GH + tg * n.H) * n.I * f),
                at(p.gate_l_to, p.wl_g.get_data_handle(), g * n.H * f));
        reorder(s, p, p.to_gate_i, at(p.gate_i, wi, (q.d * GH + tg * n.H) * n.H * f),
                at(p.gate_i_to, p.wi_g.get_data_handle(), g * n.H * f));
        std::memcpy(p.bias_g.data() + g * n.H, from + tg * n.H, n.H * f);
      }
      std::memcpy(p.bias_g.data() + GH, from + GH, n.H * f);  // b_hn
      reorder(s, p, p.to_wl_f, p.wl_g, p.wl_f);
      reorder(s, p, p.to_wi_f, p.wi_g, p.wi_f);
      bias = memory(p.bias, cpu(), p.bias_g.data());
    }
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC_LAYER, at(p.x, b.x, o.x)},
        {DNNL_ARG_SRC_ITER, at(p.state, b.h0, o.state)},
        {DNNL_ARG_WEIGHTS_LAYER, p.wl_f},
        {DNNL_ARG_WEIGHTS_ITER, p.wi_f},
        {DNNL_ARG_BIAS, bias},
        {DNNL_ARG_DST_LAYER, at(p.y, b.y, o.y)},
        {DNNL_ARG_DST_ITER, at(p.state, b.hT, o.state)},
        {DNNL_ARG_SCRATCHPAD, p.scratch}};
    if (p.lstm) {
      args[DNNL_ARG_SRC_ITER_C] = at(p.state, b.c0, o.state);
      args[DNNL_ARG_DST_ITER_C] = at(p.state, b.cT, o.state);
    }
    p.fwd.execute(s, args);
  }
  s.wait();
}

// Part q's training forward (p's lock held) into a workspace slot, stamped `stamp`.
// `b` may point y, hT and cT at scratch buffers of the outputs' full size (Backward's
// recomputation).
void forward_training(Plan& p, Shape n, const Part& q, const Buffers& b, const void* wl,
                      const void* wi, uint64_t stamp) {
  Slot& slot = slot_for_forward(p);
  slot.stamp = 0;  // its old contents are gone from here on, even if this fails
  forward(p, n, q, b, wl, wi, &slot);
  slot.stamp = stamp, slot.read = false;
}

ffi::Error Forward(ffi::ThreadPool pool, F32 x, F32 wl, F32 wi, F32 bias, F32 h0, F32 c0,
                   OutF32 y, OutF32 hT, OutF32 cT, ffi::ResultBuffer<ffi::U8> stamp_out,
                   int64_t kind, int64_t reverse, bool training) {
  const Shape n = shape_of(x, h0);
  try {
    const Chunked c = chunked(kind, reverse, training, n);
    if (!c.plans[0]->lstm) std::memset(cT->untyped_data(), 0, cT->size_bytes());
    // The call's stamp: its backward finds the workspaces by it (0: inference).
    const uint64_t stamp = training ? next_stamp() : 0;
    std::memcpy(stamp_out->untyped_data(), &stamp, sizeof stamp);
    const Buffers b{x.untyped_data(),  bias.untyped_data(), h0.untyped_data(),
                    c0.untyped_data(), y->untyped_data(),   hT->untyped_data(),
                    cT->untyped_data()};
    run_chunks(pool, c.parts.size(), [&](size_t j) {
      const Part& q = c.parts[j];
      Plan& p = *c.plans[j];
      std::lock_guard<std::mutex> lock(p.mutex);
      if (training)
        forward_training(p, n, q, b, wl.untyped_data(), wi.untyped_data(), stamp);
      else
        forward(p, n, q, b, wl.untyped_data(), wi.untyped_data(), nullptr);
    });
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "oneDNN workspace: out of memory");
  }
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, F32 x, F32 wl, F32 wi, F32 bias, F32 h0, F32 c0,
                    ffi::Buffer<ffi::U8> stamp_in, F32 dy, F32 dhT, F32 dcT, OutF32 dx,
                    OutF32 dwl, OutF32 dwi, OutF32 dbias, OutF32 dh0, OutF32 dc0,
                    int64_t kind, int64_t reverse) {
  const Shape n = shape_of(x, h0);
  try {
    const Chunked c = chunked(kind, reverse, true, n);
    if (!c.plans[0]->lstm) std::memset(dc0->untyped_data(), 0, dc0->size_bytes());
    // Each layer's first chunk writes its weight and bias gradients straight into the
    // results, every other chunk j into this call's sums[j]; layer 0 writes dx, layer
    // d > 0 into this call's dxs[d - 1]. They are added up once every chunk is done.
    // (Nothing of a plan is read outside its lock: other devices of a sharded program
    // run the same plans at the same time.)
    const size_t n_wl = dwl->element_count() / n.D, n_wi = dwi->element_count() / n.D;
    const size_t n_b = dbias->element_count() / n.D, n_all = n_wl + n_wi + n_b;
    const size_t n_x = dx->element_count();
    std::vector<std::unique_ptr<float[]>> sums(c.parts.size()), dxs(n.D - 1);
    for (size_t j = 0; j < c.parts.size(); ++j)
      if (!c.parts[j].first) sums[j].reset(new float[n_all]);
    for (auto& part : dxs) part.reset(new float[n_x]);  // every entry is written
    uint64_t stamp;
    std::memcpy(&stamp, stamp_in.untyped_data(), sizeof stamp);
    // The outputs (y, hT, cT) only where the forward runs again, into scratch buffers.
    const Buffers b{x.untyped_data(), bias.untyped_data(), h0.untyped_data(),
                    c0.untyped_data(), nullptr, nullptr, nullptr};
    run_chunks(pool, c.parts.size(), [&](size_t j) {
      const Part& q = c.parts[j];
      Plan& p = *c.plans[j];
      std::lock_guard<std::mutex> lock(p.mutex);
      auto find = [&]() -> Slot* {
        for (auto& slot : p.slots)
          if (slot.stamp == stamp) return &slot;
        return nullptr;
      };
      Slot* slot = find();
      if (!slot) {
        // Another forward of this plan took the slot since (more layers of this shape
        // than kSlots between forward and backward, or a backward run again much
        // later): run this part's forward again, its outputs into scratch buffers.
        const size_t n_y = n.B * n.T * n.D * n.H, n_s = n.D * n.B * n.H;
        std::unique_ptr<float[]> scratch(new float[n_y + 2 * n_s]);
        Buffers again = b;
        again.y = scratch.get(), again.hT = scratch.get() + n_y;
        again.cT = scratch.get() + n_y + n_s;
        forward_training(p, n, q, again, wl.untyped_data(), wi.untyped_data(), stamp);
        slot = find();
      }
      const Offsets o = offsets(n, q);
      float* out_wl = q.first ? dwl->typed_data() + q.d * n_wl : sums[j].get();
      float* out_wi = q.first ? dwi->typed_data() + q.d * n_wi : sums[j].get() + n_wl;
      float* out_b = q.first ? dbias->typed_data() + q.d * n_b : sums[j].get() + n_wl + n_wi;
      void* out_x = q.d == 0 ? dx->untyped_data() : dxs[q.d - 1].get();
      dnnl::stream s(cpu());
      const int64_t G = p.kernel->G * n.H;
      kernel_backward(*p.kernel, s, floats(b.x, o.x), wl.typed_data() + q.d * n.I * G,
                      wi.typed_data() + q.d * n.H * G, floats(b.c0, o.state),
                      reinterpret_cast<float*>(slot->buf.get()), floats(dy.untyped_data(), o.y),
                      floats(dhT.untyped_data(), o.state), floats(dcT.untyped_data(), o.state),
                      floats(out_x, o.x), out_wl, out_wi, out_b,
                      floats(dh0->untyped_data(), o.state), floats(dc0->untyped_data(), o.state));
      s.wait();
      slot->stamp = 0, slot->read = true;  // its gates are gradients now
    });
    for (size_t j = 0; j < c.parts.size(); ++j) {
      if (c.parts[j].first) continue;
      const size_t d = c.parts[j].d;
      float* results[] = {dwl->typed_data() + d * n_wl, dwi->typed_data() + d * n_wi,
                          dbias->typed_data() + d * n_b};
      const size_t counts[] = {n_wl, n_wi, n_b};
      const float* from = sums[j].get();
      for (size_t k = 0; k < 3; from += counts[k], ++k)
        for (size_t i = 0; i < counts[k]; ++i) results[k][i] += from[i];
    }
    float* out = dx->typed_data();
    for (const auto& part : dxs)
      for (size_t i = 0; i < n_x; ++i) out[i] += part[i];
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "oneDNN workspace: out of memory");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnOnednnForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::U8>>()
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("reverse")
                                  .Attr<bool>("training"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnOnednnBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kind")
                                  .Attr<int64_t>("reverse"));

// Build (or find) the plans of one call's shape, for Python when JAX traces the call:
// 0, or -1 if oneDNN has no primitive for it.
extern "C" int64_t jaxrnn_onednn_prepare(int64_t kind, int64_t reverse, bool training,
                                          int64_t D, int64_t T, int64_t B, int64_t I,
                                          int64_t H) {
  try {
    chunked(kind, reverse, training, {D, T, B, I, H});
    return 0;
  } catch (const dnnl::error&) {
    return -1;
  }
}

// For tests: the gate gradients' bytes from which a chunk's backward keeps them blocked
// (Kernel::blocked), set if `bytes` >= 0 (plans made before keep theirs); the old value,
// and in `runs` how many chunks' backwards have run blocked (runs[0]) and how many
// chunks' forwards and backwards have run their step products by gemv() (runs[1]).
extern "C" int64_t jaxrnn_onednn_blocked(int64_t bytes, int64_t* runs) {
  runs[0] = blocked_runs.load(), runs[1] = gemv_runs.load();
  return bytes < 0 ? blocked_from.load() : blocked_from.exchange(bytes);
}

// The plan cache, for Python (plan_cache): set its byte limit (a negative value leaves
// it), then how many plans and bytes it holds, and the limit.
extern "C" void jaxrnn_onednn_plans(int64_t limit, int64_t* count, int64_t* bytes,
                                    int64_t* limit_now) {
  Plans& cache = plans();
  std::lock_guard<std::mutex> lock(cache.mutex);
  if (limit >= 0) {
    cache.limit = static_cast<size_t>(limit);
    cache.shrink(nullptr);
  }
  *count = static_cast<int64_t>(cache.entries.size());
  *bytes = static_cast<int64_t>(cache.bytes);
  *limit_now = static_cast<int64_t>(cache.limit);
}
