// The built-in LSTM and GRU on oneDNN's RNN primitives, as XLA:CPU custom calls.
//
// Two handlers, called from jaxrnn/cells/_onednn.py (which documents the layouts). D
// layers of one kind read the same input x, each with its own weights, states and
// direction (D = 2: the two directions of a bidirectional layer, in one call):
//
//   jaxrnn_onednn_forward(x (B,T,I), wl (D,I,G*H), wi (D,H,G*H), bias (D,G',H),
//                         h0 (D,B,H), c0 (D,B,H))
//       -> y (B,T,D,H), hT (D,B,H), cT (D,B,H), stamp (8,) u8
//   jaxrnn_onednn_backward(x, wl, wi, bias, h0, c0, y, hT, cT, stamp,
//                          dy (B,T,D,H), dhT (D,B,H), dcT (D,B,H))
//       -> dx (B,T,I) (summed over the D layers), dwl, dwi, dbias, dh0, dc0 (shapes of
//          wl, wi, bias, h0, c0)
//
// attributes: kind (0: LSTM, gates i f g o, G' = 4; 1: oneDNN's linear-before-reset
// GRU, gates u r o, G' = 4 with the extra recurrent bias of the candidate), reverse
// (bit d set: layer d runs right to left), and the forward's training (false: oneDNN's
// inference forward, no workspace, stamp 0). float32 only; c0, cT, dcT, dc0 are unused
// by the GRU (zeros out).
//
// Workspaces. oneDNN's training forward keeps a workspace (gates and states of every
// step) for its backward. It lives in the plans (Slot), not in XLA's buffers, which XLA
// would allocate afresh, page by page, on every call; the forward returns a stamp, and
// the backward finds the workspace by it, or runs the forward again if it was taken.
//
// Threads. The work is cut into chunks: each of the D layers, times contiguous ranges
// of the batch (each of at least one sample; see chunks() for how many), so that
// under training a bidirectional layer on 2 cores runs one direction per core on the
// whole batch. Each chunk runs oneDNN single-threaded, with its own primitives,
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
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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

// One workspace of a training plan: the buffer, the stamp of the forward call whose
// workspace it holds (every training forward gets a new one), and whether a backward has
// read it since (then a forward may take it; until then the data stays, so a backward
// run twice with the same residuals still finds it). The buffer lives as long as the
// plan: XLA would allocate the workspace afresh on every call, and the kernel zeroes
// fresh pages on first touch (benchmarks/README.md).
struct Slot {
  std::unique_ptr<char, void (*)(void*)> buf{nullptr, std::free};
  uint64_t stamp = 0;
  bool read = true;
};

// One chunk's primitives: batch Bc, all buffers in the user's plain layouts. A training
// plan has oneDNN's forward (training: it fills the workspace) and backward; an
// inference plan only the forward (inference: no workspace, ws and the bwd fields empty).
struct Plan {
  std::mutex mutex;
  bool lstm;
  memory::desc x, state, wl, wi, bias, y;
  dnnl::primitive fwd, bwd;
  memory::desc ws, wl_fwd, wi_fwd, wl_bwd, wi_bwd, dwl_bwd, dwi_bwd;
  memory wl_f, wi_f, wl_b, wi_b, dwl_b, dwi_b;  // weights in the primitives' layouts
  dnnl::reorder to_wl_f, to_wi_f, to_wl_b, to_wi_b, from_dwl, from_dwi;
  memory scratch;  // user scratchpad for all of the chunk's primitives
  // A training plan's workspaces (what a forward keeps for its backward; see Slot).
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
  // Batch-major (ntc); one sample is the same bytes as time-major (tnc), which oneDNN
  // runs faster (2.4 against 4.1 ms for an LSTM of width 64 over 1000 steps).
  const tag layer = Bc == 1 ? tag::tnc : tag::ntc;
  p->x = plain({T, Bc, I}, layer);
  p->state = plain({1, 1, Bc, H}, tag::ldnc);
  p->wl = plain({1, 1, I, G, H}, tag::ldigo);
  p->wi = plain({1, 1, H, G, H}, tag::ldigo);
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
  const auto prop =
      training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
  auto keep_fwd = [&](const auto& f) {
    scratch = f.scratchpad_desc().get_size();
    p->ws = f.workspace_desc();
    p->wl_fwd = f.weights_layer_desc(), p->wi_fwd = f.weights_iter_desc();
  };
  auto keep_bwd = [&](const auto& b) {
    scratch = std::max(scratch, b.scratchpad_desc().get_size());
    p->wl_bwd = b.weights_layer_desc(), p->wi_bwd = b.weights_iter_desc();
    p->dwl_bwd = b.diff_weights_layer_desc(), p->dwi_bwd = b.diff_weights_iter_desc();
  };
  if (lstm) {
    auto f = dnnl::lstm_forward::primitive_desc(e, prop, dir, p->x, s, s, any_wl, any_wi,
                                                p->bias, p->y, s, s, attr);
    p->fwd = dnnl::lstm_forward(f);
    keep_fwd(f);
    if (training) {
      auto b = dnnl::lstm_backward::primitive_desc(
          e, dnnl::prop_kind::backward, dir, p->x, s, s, any_wl, any_wi, p->bias, p->y, s, s,
          p->x, s, s, any_wl, any_wi, p->bias, p->y, s, s, f, attr);
      p->bwd = dnnl::lstm_backward(b);
      keep_bwd(b);
    }
  } else {
    auto f = dnnl::lbr_gru_forward::primitive_desc(e, prop, dir, p->x, s, any_wl, any_wi,
                                                   p->bias, p->y, s, attr);
    p->fwd = dnnl::lbr_gru_forward(f);
    keep_fwd(f);
    if (training) {
      auto b = dnnl::lbr_gru_backward::primitive_desc(
          e, dnnl::prop_kind::backward, dir, p->x, s, any_wl, any_wi, p->bias, p->y, s, p->x,
          s, any_wl, any_wi, p->bias, p->y, s, f, attr);
      p->bwd = dnnl::lbr_gru_backward(b);
      keep_bwd(b);
    }
  }
  auto reorder = [&](const memory::desc& from, const memory::desc& to) {
    auto pd = dnnl::reorder::primitive_desc(e, from, e, to, attr);
    scratch = std::max(scratch, pd.scratchpad_desc().get_size());
    return dnnl::reorder(pd);
  };
  p->wl_f = memory(p->wl_fwd, e), p->wi_f = memory(p->wi_fwd, e);
  p->to_wl_f = reorder(p->wl, p->wl_fwd), p->to_wi_f = reorder(p->wi, p->wi_fwd);
  if (training) {
    p->wl_b = memory(p->wl_bwd, e), p->wi_b = memory(p->wi_bwd, e);
    p->dwl_b = memory(p->dwl_bwd, e), p->dwi_b = memory(p->dwi_bwd, e);
    p->to_wl_b = reorder(p->wl, p->wl_bwd), p->to_wi_b = reorder(p->wi, p->wi_bwd);
    p->from_dwl = reorder(p->dwl_bwd, p->wl), p->from_dwi = reorder(p->dwi_bwd, p->wi);
  }
  p->scratch = memory(
      memory::desc({static_cast<int64_t>(std::max<size_t>(scratch, 1))}, dt::u8, tag::a), e);
  p->bytes = scratch + p->wl_fwd.get_size() + p->wi_fwd.get_size();
  if (training)
    p->bytes += p->wl_bwd.get_size() + p->wi_bwd.get_size() + p->dwl_bwd.get_size() +
                p->dwi_bwd.get_size();
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
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t n = (p.ws.get_size() + kHuge - 1) / kHuge * kHuge;
  Slot slot;
  slot.buf.reset(static_cast<char*>(std::aligned_alloc(kHuge, n)));
  if (!slot.buf) throw std::bad_alloc();
  // 2 MiB pages: the first touch of each faults once instead of 512 times.
  madvise(slot.buf.get(), n, MADV_HUGEPAGE);
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
// batch (at most B). oneDNN's training forward and backward run fastest with whole
// layers per core (K = ceil(cores / D): a bidirectional layer on 2 cores runs one
// direction per core over the whole batch); its inference forward with the batch cut
// over all cores (K = cores), as for one layer (benchmarks/README.md). (A backward cuts
// its call as the forward did, so it finds the forward's workspaces in the same plans.)
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

// The data pointers of one call that the forward and the backward both read.
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

// Part q's arguments shared by the forward and the backward primitive: its slices of
// the inputs and outputs, the workspace `ws` (training), its layer's bias, the
// scratchpad, and the given weights (already in that primitive's layout).
std::unordered_map<int, memory> chunk_args(Plan& p, Shape n, const Part& q, const Slot* ws,
                                           const Buffers& b, memory wl, memory wi) {
  const Offsets o = offsets(n, q);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC_LAYER, at(p.x, b.x, o.x)},
      {DNNL_ARG_SRC_ITER, at(p.state, b.h0, o.state)},
      {DNNL_ARG_WEIGHTS_LAYER, wl},
      {DNNL_ARG_WEIGHTS_ITER, wi},
      {DNNL_ARG_BIAS, at(p.bias, b.bias, q.d * p.bias.get_size())},
      {DNNL_ARG_DST_LAYER, at(p.y, b.y, o.y)},
      {DNNL_ARG_DST_ITER, at(p.state, b.hT, o.state)},
      {DNNL_ARG_SCRATCHPAD, p.scratch}};
  if (ws) args[DNNL_ARG_WORKSPACE] = at(p.ws, ws->buf.get(), 0);
  if (p.lstm) {
    args[DNNL_ARG_SRC_ITER_C] = at(p.state, b.c0, o.state);
    args[DNNL_ARG_DST_ITER_C] = at(p.state, b.cT, o.state);
  }
  return args;
}


// Part q's forward (p's lock held): inference with `ws` null, else training into `ws`.
void forward(Plan& p, Shape n, const Part& q, const Buffers& b, const void* wl,
             const void* wi, const Slot* ws) {
  dnnl::stream s(cpu());
  reorder(s, p, p.to_wl_f, at(p.wl, wl, q.d * p.wl.get_size()), p.wl_f);
  reorder(s, p, p.to_wi_f, at(p.wi, wi, q.d * p.wi.get_size()), p.wi_f);
  p.fwd.execute(s, chunk_args(p, n, q, ws, b, p.wl_f, p.wi_f));
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
                    F32 y, F32 hT, F32 cT, ffi::Buffer<ffi::U8> stamp_in, F32 dy, F32 dhT,
                    F32 dcT, OutF32 dx, OutF32 dwl, OutF32 dwi, OutF32 dbias, OutF32 dh0,
                    OutF32 dc0, int64_t kind, int64_t reverse) {
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
    const Buffers b{x.untyped_data(),  bias.untyped_data(), h0.untyped_data(),
                    c0.untyped_data(), y.untyped_data(),    hT.untyped_data(),
                    cT.untyped_data()};
    run_chunks(pool, c.parts.size(), [&](size_t j) {
      const Part& q = c.parts[j];
      Plan& p = *c.plans[j];
      std::lock_guard<std::mutex> lock(p.mutex);
      const size_t f = sizeof(float);
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
      reorder(s, p, p.to_wl_b, at(p.wl, wl.untyped_data(), q.d * p.wl.get_size()), p.wl_b);
      reorder(s, p, p.to_wi_b, at(p.wi, wi.untyped_data(), q.d * p.wi.get_size()), p.wi_b);
      // oneDNN accumulates into the weight and bias gradients.
      std::memset(p.dwl_b.get_data_handle(), 0, p.dwl_bwd.get_size());
      std::memset(p.dwi_b.get_data_handle(), 0, p.dwi_bwd.get_size());
      std::memset(out_b, 0, n_b * f);
      auto args = chunk_args(p, n, q, slot, b, p.wl_b, p.wi_b);
      args[DNNL_ARG_DIFF_DST_LAYER] = at(p.y, dy.untyped_data(), o.y);
      args[DNNL_ARG_DIFF_DST_ITER] = at(p.state, dhT.untyped_data(), o.state);
      args[DNNL_ARG_DIFF_SRC_LAYER] = at(p.x, out_x, o.x);
      args[DNNL_ARG_DIFF_SRC_ITER] = at(p.state, dh0->untyped_data(), o.state);
      args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = p.dwl_b;
      args[DNNL_ARG_DIFF_WEIGHTS_ITER] = p.dwi_b;
      args[DNNL_ARG_DIFF_BIAS] = at(p.bias, out_b, 0);
      if (p.lstm) {
        args[DNNL_ARG_DIFF_DST_ITER_C] = at(p.state, dcT.untyped_data(), o.state);
        args[DNNL_ARG_DIFF_SRC_ITER_C] = at(p.state, dc0->untyped_data(), o.state);
      }
      p.bwd.execute(s, args);
      reorder(s, p, p.from_dwl, p.dwl_b, at(p.wl, out_wl, 0));
      reorder(s, p, p.from_dwi, p.dwi_b, at(p.wi, out_wi, 0));
      s.wait();
      slot->read = true;
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
