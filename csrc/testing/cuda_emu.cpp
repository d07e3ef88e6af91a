// The scheduler behind cuda_emu.h: fibers for CUDA threads, the block barrier, warp rendezvous,
// launch checks. The model is described at the top of cuda_emu.h.
//
// This file is never compiled with -fsanitize=thread, also in the race check: its bookkeeping is
// shared by all fibers of a block and switching between them carries no happens-before, so TSAN
// would report the emulator itself. Instead it tells TSAN, through the runtime's annotation API
// (weak symbols: present only when libtsan is linked), exactly the orderings CUDA guarantees.
#include "testing/cuda_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

extern "C" {
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
void* __tsan_get_current_fiber(void) __attribute__((weak));
void* __tsan_create_fiber(unsigned flags) __attribute__((weak));
void __tsan_destroy_fiber(void* fiber) __attribute__((weak));
void __tsan_switch_to_fiber(void* fiber, unsigned flags) __attribute__((weak));
void __tsan_set_fiber_name(void* fiber, const char* name) __attribute__((weak));
}

namespace manifpt::emu {

const DeviceLimits& device_limits() {
  static const DeviceLimits limits{};
  return limits;
}

bool under_thread_sanitizer() { return __tsan_create_fiber != nullptr; }

namespace detail {
namespace {

constexpr unsigned kNoSync = 1;  // __tsan_switch_to_fiber_no_sync

void tsan_release(void* p) {
  if (__tsan_release && p) __tsan_release(p);
}
void tsan_acquire(void* p) {
  if (__tsan_acquire && p) __tsan_acquire(p);
}

// ---- context switch ---------------------------------------------------------------------------
#if defined(__x86_64__)
// Saves the callee-saved registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer in *save, loads `load` and restores the same from there. A fresh stack is prepared
// (init_context) so that the first switch to it "returns" into the trampoline, which calls
// entry(arg) with entry and arg taken from r13 and r12.
extern "C" void manifpt_emu_switch(void** save, void* load);
extern "C" void manifpt_emu_trampoline();
asm(R"(
  .pushsection .text
  .p2align 4
  .globl manifpt_emu_switch
  .hidden manifpt_emu_switch
  .type manifpt_emu_switch, @function
manifpt_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size manifpt_emu_switch, .-manifpt_emu_switch

  .p2align 4
  .globl manifpt_emu_trampoline
  .hidden manifpt_emu_trampoline
  .type manifpt_emu_trampoline, @function
manifpt_emu_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size manifpt_emu_trampoline, .-manifpt_emu_trampoline
  .popsection
)");

struct Context {
  void* sp = nullptr;
};

void init_context(Context& c, char* stack_lo, std::size_t size, void (*entry)(void*), void* arg) {
  char* top = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(stack_lo + size) & ~std::uintptr_t(15));
  // The frame manifpt_emu_switch pops: x87 cw, MXCSR, r15, r14, r13, r12, rbx, rbp, return address.
  // After its `ret` the stack pointer is top - 16, 16-byte aligned as the trampoline's call needs.
  auto* sp = reinterpret_cast<std::uint64_t*>(top - 88);
  std::uint32_t mxcsr;
  std::uint16_t fcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fcw));
  std::memset(sp, 0, 88);
  std::memcpy(&sp[0], &fcw, sizeof fcw);
  std::memcpy(&sp[1], &mxcsr, sizeof mxcsr);
  sp[4] = reinterpret_cast<std::uint64_t>(entry);  // r13
  sp[5] = reinterpret_cast<std::uint64_t>(arg);    // r12
  sp[8] = reinterpret_cast<std::uint64_t>(&manifpt_emu_trampoline);
  c.sp = sp;
}

inline void switch_context(Context& from, Context& to) { manifpt_emu_switch(&from.sp, to.sp); }
#else
// Portable fallback (slower: swapcontext saves the signal mask with a system call per switch).
struct Context {
  ucontext_t uc;
};

void trampoline_ucontext(unsigned hi_e, unsigned lo_e, unsigned hi_a, unsigned lo_a) {
  auto entry = reinterpret_cast<void (*)(void*)>((std::uintptr_t(hi_e) << 32) | lo_e);
  entry(reinterpret_cast<void*>((std::uintptr_t(hi_a) << 32) | lo_a));
  std::abort();
}

void init_context(Context& c, char* stack_lo, std::size_t size, void (*entry)(void*), void* arg) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack_lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  const auto e = reinterpret_cast<std::uintptr_t>(entry), a = reinterpret_cast<std::uintptr_t>(arg);
  makecontext(&c.uc, reinterpret_cast<void (*)()>(&trampoline_ucontext), 4, unsigned(e >> 32), unsigned(e), unsigned(a >> 32),
              unsigned(a));
}

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---- stacks -----------------------------------------------------------------------------------
// One mapping per block's worth of fiber stacks, each stack above a PROT_NONE guard page so that an
// overflow faults at once instead of corrupting the neighbour. MAP_NORESERVE: only touched pages
// cost memory.
struct Stacks {
  char* base = nullptr;
  std::size_t per = 0;  // bytes per stack, guard page included
  unsigned count = 0;
};

std::size_t page_size() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

Stacks map_stacks(unsigned count, std::size_t bytes) {
  Stacks s;
  s.per = bytes + page_size();
  s.count = count;
  void* p = mmap(nullptr, s.per * count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("manifpt::emu: cannot map " + std::to_string(s.per * count) + " bytes of fiber stacks");
  s.base = static_cast<char*>(p);
  for (unsigned i = 0; i < count; ++i) mprotect(s.base + i * s.per, page_size(), PROT_NONE);
  return s;
}

void unmap_stacks(Stacks& s) {
  if (s.base) munmap(s.base, s.per * s.count);
  s = Stacks{};
}

// Stacks outlive launches (normal mode): mapping and first-touching 1024 stacks per launch would
// cost more than a small kernel's run.
std::mutex g_stack_mu;
std::vector<Stacks> g_stack_pool;

Stacks take_stacks(unsigned count, std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(g_stack_mu);
    for (std::size_t i = 0; i < g_stack_pool.size(); ++i)
      if (g_stack_pool[i].count >= count && g_stack_pool[i].per == bytes + page_size()) {
        Stacks s = g_stack_pool[i];
        g_stack_pool.erase(g_stack_pool.begin() + static_cast<std::ptrdiff_t>(i));
        return s;
      }
  }
  return map_stacks(count, bytes);
}

void give_stacks(Stacks s) {
  std::lock_guard<std::mutex> lock(g_stack_mu);
  if (g_stack_pool.size() < 8) {
    g_stack_pool.push_back(s);
    return;
  }
  unmap_stacks(s);
}

// ---- scheduler state ----------------------------------------------------------------------------
enum class State : std::uint8_t { Ready, Blocked, Done };
enum class WaitKind : std::uint8_t { None, Barrier, Warp };

// A TSAN synchronisation object for one barrier phase or one __syncwarp: every participant releases
// into it on arrival and acquires it on departure; the last to leave frees it (which also frees the
// TSAN sync object at that address, so the next phase starts with a fresh clock).
struct Token {
  unsigned refs = 0;
};

struct Fiber {
  Context ctx;
  void* tsan = nullptr;
  char* stack_lo = nullptr;
  std::size_t stack_bytes = 0;
  uint3 tid{0, 0, 0};
  unsigned linear = 0, warp = 0, lane = 0;
  State state = State::Ready;
  WaitKind wait = WaitKind::None;
  WarpOp wait_op = WarpOp::SyncWarp;
  unsigned wait_mask = 0;
  std::source_location wait_where;
  std::uint64_t result = 0;
  Token* acquire = nullptr;  // to acquire when resumed
};

struct Rendezvous {
  WarpOp op;
  unsigned mask = 0, arrived = 0;
  int width = 32;
  std::source_location where;
  Token* token = nullptr;
  std::uint64_t value[32];
  int arg[32];
};

struct Warp {
  unsigned existing = 0;  // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;
  std::vector<Rendezvous> pending;  // at most one per lane
};

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::SyncWarp: return "__syncwarp";
  }
  return "?";
}

std::string site(const std::source_location& w) {
  return std::string(w.file_name()) + ":" + std::to_string(w.line());
}
std::string hex(unsigned m) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", m);
  return b;
}
std::string triple(unsigned x, unsigned y, unsigned z) {
  char b[48];
  std::snprintf(b, sizeof b, "(%u, %u, %u)", x, y, z);
  return b;
}

struct Worker;
thread_local Worker* tl_worker = nullptr;

void fiber_entry(void* arg);

struct Worker {
  const LaunchConfig* cfg = nullptr;
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  bool tsan = false;
  std::size_t stack_bytes = 0;
  Stacks stacks;
  unsigned char* dyn = nullptr;
  std::size_t dyn_bytes = 0;
  Token* launch_done = nullptr;  // TSAN: every fiber releases it at exit, the host acquires it

  Context sched;
  void* sched_tsan = nullptr;
  Fiber* current = nullptr;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  unsigned nthreads = 0, done = 0, exited = 0;
  uint3 block{0, 0, 0};
  // the block barrier
  unsigned barrier_arrived = 0;
  std::source_location barrier_where;
  Token* barrier_token = nullptr;
  const Fiber* first_exited = nullptr;
  bool faulted = false;
  std::string fault;

  ~Worker() {
    if (stacks.base) {
      if (tsan)
        unmap_stacks(stacks);
      else
        give_stacks(stacks);
    }
    if (dyn) munmap(dyn, dyn_bytes);
  }

  std::string who(const Fiber& f) const {
    return "thread " + triple(f.tid.x, f.tid.y, f.tid.z) + " of block " + triple(block.x, block.y, block.z);
  }

  // Switch from the running fiber back to the scheduler.
  void yield(Fiber& f) {
    if (tsan) __tsan_switch_to_fiber(sched_tsan, kNoSync);
    switch_context(f.ctx, sched);
  }

  [[noreturn]] void fail(Fiber& f, const std::string& msg) {
    fault = msg;
    faulted = true;
    tsan_release(&fault);
    f.state = State::Done;
    yield(f);
    std::abort();  // a faulted block is never resumed
  }

  void wake(Fiber& g, std::uint64_t result, Token* token) {
    g.result = result;
    g.acquire = token;
    if (token) ++token->refs;
    g.wait = WaitKind::None;
    g.state = State::Ready;
  }

  static void depart(Fiber& f) {
    if (Token* t = f.acquire) {
      f.acquire = nullptr;
      tsan_acquire(t);
      if (--t->refs == 0) delete t;
    }
  }

  // ---- warp rendezvous ----
  static bool complete(const Warp& w, const Rendezvous& r) {
    return ((r.arrived | w.exited | ~w.existing) & r.mask) == r.mask;
  }

  static std::uint64_t result_for(const Rendezvous& r, unsigned lane) {
    switch (r.op) {
      case WarpOp::SyncWarp: return 0;
      case WarpOp::Ballot: case WarpOp::Any: case WarpOp::All: {
        unsigned ballot = 0;
        for (unsigned l = 0; l < 32; ++l)
          if ((r.arrived >> l & 1u) && r.value[l]) ballot |= 1u << l;
        if (r.op == WarpOp::Ballot) return ballot;
        if (r.op == WarpOp::Any) return ballot != 0;
        return ballot == r.arrived;
      }
      default: break;
    }
    // PTX shfl.sync: c = ((32 - width) << 8) | (up ? 0 : 31); segmask = c[12:8], cval = c[4:0].
    const int l = static_cast<int>(lane), segmask = (32 - r.width) & 31, cval = r.op == WarpOp::ShflUp ? 0 : 31;
    const int b = r.arg[lane] & 31, max_lane = (l & segmask) | (cval & ~segmask & 31), min_lane = l & segmask;
    int j = l;
    bool in_range = false;
    switch (r.op) {
      case WarpOp::ShflUp: j = l - b; in_range = j >= max_lane; break;
      case WarpOp::ShflDown: j = l + b; in_range = j <= max_lane; break;
      case WarpOp::ShflXor: j = l ^ b; in_range = j <= max_lane; break;
      default: j = min_lane | (b & ~segmask & 31); in_range = j <= max_lane; break;
    }
    if (!in_range) j = l;
    // A source lane that does not take part gives an undefined value on the device: all ones here.
    return (r.arrived >> j & 1u) ? r.value[j] : ~std::uint64_t(0);
  }

  void finish(Warp& w, std::size_t k) {
    Rendezvous& r = w.pending[k];
    const unsigned base = static_cast<unsigned>(&w - warps.data()) * 32u;
    for (unsigned l = 0; l < 32; ++l)
      if (r.arrived >> l & 1u) wake(fibers[base + l], result_for(r, l), r.token);
    w.pending[k] = std::move(w.pending.back());
    w.pending.pop_back();
  }

  std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, const std::source_location& where) {
    Fiber& f = *current;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
      fail(f, who(f) + " calls " + op_name(op) + " at " + site(where) + " with width " + std::to_string(width) +
                  ": CUDA requires a power of two from 1 to 32");
    const unsigned bit = 1u << f.lane;
    if (!(mask & bit))
      fail(f, who(f) + " (lane " + std::to_string(f.lane) + " of warp " + std::to_string(f.warp) + ") calls " + op_name(op) +
                  " at " + site(where) + " with mask " + hex(mask) + ", which does not contain it (undefined in CUDA)");
    Warp& w = warps[f.warp];
    Rendezvous* r = nullptr;
    for (Rendezvous& p : w.pending)
      if (p.mask == mask && !(p.arrived & bit)) {
        r = &p;
        break;
      }
    if (r && (r->op != op || r->width != width))
      fail(f, "lanes of warp " + std::to_string(f.warp) + " of block " + triple(block.x, block.y, block.z) + " with mask " + hex(mask) +
                  " meet at different warp intrinsics: " + op_name(r->op) + " (width " + std::to_string(r->width) + ") at " +
                  site(r->where) + " and " + op_name(op) + " (width " + std::to_string(width) + ") at " + site(where) +
                  " (undefined in CUDA)");
    if (!r) {
      w.pending.emplace_back();
      r = &w.pending.back();
      r->op = op;
      r->mask = mask;
      r->width = width;
      r->where = where;
      // Only __syncwarp orders memory among its lanes; shuffles and votes exchange values only.
      r->token = (tsan && op == WarpOp::SyncWarp) ? new Token : nullptr;
    }
    r->arrived |= bit;
    r->value[f.lane] = value;
    r->arg[f.lane] = arg;
    tsan_release(r->token);
    if (complete(w, *r)) {
      finish(w, static_cast<std::size_t>(r - w.pending.data()));
    } else {
      f.state = State::Blocked;
      f.wait = WaitKind::Warp;
      f.wait_op = op;
      f.wait_mask = mask;
      f.wait_where = where;
      yield(f);
    }
    depart(f);
    return f.result;
  }

  // ---- block barrier ----
  void syncthreads(const std::source_location& where) {
    Fiber& f = *current;
    if (exited)
      fail(f, who(f) + " reaches __syncthreads at " + site(where) + " after " + who(*first_exited) +
                  " exited: a barrier that not every thread of the block reaches is undefined in CUDA");
    if (barrier_arrived == 0) {
      barrier_where = where;
      barrier_token = tsan ? new Token : nullptr;
    } else if (where.line() != barrier_where.line() || std::strcmp(where.file_name(), barrier_where.file_name()) != 0) {
      fail(f, "threads of block " + triple(block.x, block.y, block.z) + " wait at different __syncthreads: " + site(barrier_where) +
                  " and " + site(where) + " (" + who(f) + "): divergent barriers are undefined in CUDA");
    }
    ++barrier_arrived;
    tsan_release(barrier_token);
    if (barrier_arrived == nthreads) {
      Token* t = barrier_token;
      barrier_arrived = 0;
      barrier_token = nullptr;
      for (Fiber& g : fibers)
        if (&g == &f || g.wait == WaitKind::Barrier) wake(g, 0, t);
    } else {
      f.state = State::Blocked;
      f.wait = WaitKind::Barrier;
      f.wait_where = where;
      yield(f);
    }
    depart(f);
  }

  void atomic_point() {
    Fiber& f = *current;
    f.state = State::Ready;
    yield(f);
  }

  [[noreturn]] void exit_fiber(Fiber& f) {
    f.state = State::Done;
    ++done;
    if (!exited++) first_exited = &f;
    if (barrier_arrived)
      fail(f, who(f) + " exits while " + std::to_string(barrier_arrived) + " thread(s) of its block wait at __syncthreads at " +
                  site(barrier_where) + ": a barrier that not every thread reaches is undefined in CUDA");
    Warp& w = warps[f.warp];
    w.exited |= 1u << f.lane;
    // Exited lanes are no longer waited for by the *_sync intrinsics.
    for (std::size_t k = 0; k < w.pending.size();)
      if (complete(w, w.pending[k]))
        finish(w, k);
      else
        ++k;
    tsan_release(launch_done);
    yield(f);
    std::abort();  // a finished fiber is never resumed
  }

  // ---- one block ----
  void setup(unsigned n) {
    if (fibers.size() != n) {
      fibers.assign(n, Fiber{});
      warps.assign((n + 31) / 32, Warp{});
      // Room for one pending rendezvous per lane, so that fibers never allocate here: memory a fiber
      // allocates and the worker frees would be a race for TSAN.
      for (Warp& w : warps) w.pending.reserve(32);
    }
    if (!stacks.base || stacks.count < n) {
      if (stacks.base) (tsan ? unmap_stacks(stacks) : give_stacks(stacks));
      stacks = tsan ? map_stacks(n, stack_bytes) : take_stacks(n, stack_bytes);
    }
  }

  std::string describe_deadlock() const {
    std::string msg = "deadlock in block " + triple(block.x, block.y, block.z) + ": no thread can continue.";
    if (barrier_arrived)
      msg += "\n  " + std::to_string(barrier_arrived) + " of " + std::to_string(nthreads) + " threads wait at __syncthreads at " +
             site(barrier_where);
    for (std::size_t wi = 0; wi < warps.size(); ++wi)
      for (const Rendezvous& r : warps[wi].pending) {
        const unsigned missing = r.mask & ~r.arrived & ~warps[wi].exited & warps[wi].existing;
        msg += "\n  warp " + std::to_string(wi) + ": lanes " + hex(r.arrived) + " wait at " + op_name(r.op) + "(mask " + hex(r.mask) +
               ") at " + site(r.where) + " for lanes " + hex(missing);
        for (unsigned l = 0; l < 32; ++l)
          if (missing >> l & 1u) {
            const Fiber& g = fibers[wi * 32 + l];
            msg += "; lane " + std::to_string(l) + " waits at " +
                   (g.wait == WaitKind::Barrier ? std::string("__syncthreads") : std::string(op_name(g.wait_op)) + "(mask " + hex(g.wait_mask) + ")") +
                   " at " + site(g.wait_where);
            break;  // the first one says enough
          }
      }
    return msg;
  }

  // Runs block `b` (linear index); returns false after a fault (message in `fault`).
  bool run_block(std::uint64_t b) {
    const dim3 g = cfg->grid, bd = cfg->block;
    block = uint3{unsigned(b % g.x), unsigned(b / g.x % g.y), unsigned(b / (std::uint64_t(g.x) * g.y))};
    nthreads = bd.x * bd.y * bd.z;
    setup(nthreads);
    done = exited = barrier_arrived = 0;
    barrier_token = nullptr;
    first_exited = nullptr;
    for (unsigned wi = 0; wi < warps.size(); ++wi) {
      const unsigned lanes = std::min(32u, nthreads - wi * 32);
      warps[wi].existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
      warps[wi].exited = 0;
      warps[wi].pending.clear();
    }
    if (dyn) std::memset(dyn, 0xff, cfg->dynamic_smem);
    blockIdx = block;
    blockDim = bd;
    gridDim = g;
    if (tsan) sched_tsan = __tsan_get_current_fiber();
    for (unsigned t = 0; t < nthreads; ++t) {
      Fiber& f = fibers[t];
      f.tid = uint3{t % bd.x, t / bd.x % bd.y, t / (bd.x * bd.y)};
      f.linear = t;
      f.warp = t / 32;
      f.lane = t % 32;
      f.state = State::Ready;
      f.wait = WaitKind::None;
      f.acquire = nullptr;
      f.stack_lo = stacks.base + std::size_t(t) * stacks.per + page_size();
      f.stack_bytes = stacks.per - page_size();
      init_context(f.ctx, f.stack_lo, f.stack_bytes, &fiber_entry, &f);
      if (tsan) {
        f.tsan = __tsan_create_fiber(0);
        if (__tsan_set_fiber_name) {
          const std::string name = "CUDA thread " + triple(f.tid.x, f.tid.y, f.tid.z) + " of block " + triple(block.x, block.y, block.z);
          __tsan_set_fiber_name(f.tsan, name.c_str());
        }
      }
    }
    bool ok = true;
    for (;;) {
      bool ran = false;
      for (Fiber& f : fibers) {
        if (f.state != State::Ready) continue;
        ran = true;
        current = &f;
        threadIdx = f.tid;
        if (tsan) __tsan_switch_to_fiber(f.tsan, kNoSync);
        switch_context(sched, f.ctx);
        current = nullptr;
        if (faulted) break;
      }
      if (faulted) {
        tsan_acquire(&fault);
        ok = false;
        break;
      }
      if (done == nthreads) break;
      if (!ran) {
        fault = describe_deadlock();
        ok = false;
        break;
      }
    }
    if (tsan)
      for (Fiber& f : fibers) {
        __tsan_destroy_fiber(f.tsan);
        f.tsan = nullptr;
      }
    // Only after a fault or a deadlock: tokens still held by waiting fibers.
    auto drop = [](Token* t) {
      tsan_acquire(t);
      delete t;
    };
    for (Warp& w : warps)
      for (Rendezvous& r : w.pending) drop(r.token);
    for (Fiber& f : fibers)
      if (f.acquire && f.acquire->refs-- == 1) drop(f.acquire);
    drop(barrier_token);
    barrier_token = nullptr;
    return ok;
  }
};

void fiber_entry(void* arg) {
  Fiber& f = *static_cast<Fiber*>(arg);
  Worker& w = *tl_worker;
  try {
    w.body(w.body_ctx);
  } catch (const std::exception& e) {
    w.fail(f, w.who(f) + " threw " + e.what());
  } catch (...) {
    w.fail(f, w.who(f) + " threw an exception");
  }
  w.exit_fiber(f);
}

Worker& worker_of_calling_fiber(const char* what) {
  Worker* w = tl_worker;
  if (!w || !w->current) {
    std::fprintf(stderr, "manifpt::emu: %s called outside an emulated kernel\n", what);
    std::abort();
  }
  return *w;
}

struct FuncAttrs {
  std::mutex mu;
  std::unordered_map<const void*, std::size_t> max_dynamic;
};
FuncAttrs& func_attrs() {
  static FuncAttrs a;
  return a;
}

}  // namespace

std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, const std::source_location& where) {
  return worker_of_calling_fiber(op_name(op)).warp_op(op, mask, value, arg, width, where);
}

void syncthreads(const std::source_location& where) { worker_of_calling_fiber("__syncthreads").syncthreads(where); }

void atomic_point() {
  if (Worker* w = tl_worker; w && w->current) w->atomic_point();
}

unsigned char* dynamic_shared_memory() { return worker_of_calling_fiber("dynamic shared memory").dyn; }

void check_launch(const void* kernel, const LaunchConfig& cfg) {
  const DeviceLimits& lim = device_limits();
  const dim3 b = cfg.block, g = cfg.grid;
  const std::uint64_t threads = std::uint64_t(b.x) * b.y * b.z;
  const std::string config = " (grid " + triple(g.x, g.y, g.z) + ", block " + triple(b.x, b.y, b.z) + ")";
  if (threads == 0 || g.x == 0 || g.y == 0 || g.z == 0)
    throw LaunchError("CUDA error: invalid configuration argument (cudaErrorInvalidConfiguration): a grid or block dimension is 0" + config);
  if (b.x > lim.max_block.x || b.y > lim.max_block.y || b.z > lim.max_block.z || threads > lim.max_threads_per_block)
    throw LaunchError("CUDA error: invalid configuration argument (cudaErrorInvalidConfiguration): a block of " + std::to_string(threads) +
                      " threads" + config + "; the device allows " + std::to_string(lim.max_threads_per_block) +
                      " threads per block and at most " + triple(lim.max_block.x, lim.max_block.y, lim.max_block.z) + " per dimension");
  if (g.x > lim.max_grid.x || g.y > lim.max_grid.y || g.z > lim.max_grid.z)
    throw LaunchError("CUDA error: invalid configuration argument (cudaErrorInvalidConfiguration): a grid of " + triple(g.x, g.y, g.z) +
                      " blocks; the device allows at most " + triple(lim.max_grid.x, lim.max_grid.y, lim.max_grid.z) + config);
  if (cfg.static_smem > lim.shared_per_block)
    throw LaunchError("CUDA error: invalid argument (cudaErrorInvalidValue): " + std::to_string(cfg.static_smem) +
                      " bytes of static shared memory; CUDA compiles at most " + std::to_string(lim.shared_per_block));
  std::size_t max_dynamic = lim.shared_per_block - cfg.static_smem;
  {
    FuncAttrs& a = func_attrs();
    std::lock_guard<std::mutex> lock(a.mu);
    if (auto it = a.max_dynamic.find(kernel); it != a.max_dynamic.end()) max_dynamic = it->second;
  }
  if (cfg.dynamic_smem > max_dynamic)
    throw LaunchError("CUDA error: invalid argument (cudaErrorInvalidValue): " + std::to_string(cfg.dynamic_smem) +
                      " bytes of dynamic shared memory, above this kernel's limit of " + std::to_string(max_dynamic) + " bytes (" +
                      std::to_string(lim.shared_per_block) +
                      " minus its static shared memory, unless raised with cudaFuncAttributeMaxDynamicSharedMemorySize up to " +
                      std::to_string(lim.shared_per_block_optin) + " minus it)" + config);
}

void run_grid(const LaunchConfig& cfg, void (*body)(void*), void* ctx) {
  const std::uint64_t nblocks = std::uint64_t(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
  const bool tsan = under_thread_sanitizer();
  const unsigned workers = static_cast<unsigned>(std::clamp<std::uint64_t>(cfg.workers < 1 ? 1 : cfg.workers, 1, nblocks));
  Token* launch_done = tsan ? new Token : nullptr;
  std::mutex mu;
  std::string first_fault;
  std::uint64_t fault_block = ~std::uint64_t(0);
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> stop{false};

  auto make_worker = [&](Worker& w) {
    w.cfg = &cfg;
    w.body = body;
    w.body_ctx = ctx;
    w.tsan = tsan;
    // TSAN prints its reports on the stack of the fiber that races: give it room.
    w.stack_bytes = tsan ? (1u << 20) : (64u << 10);
    w.launch_done = launch_done;
    if (cfg.dynamic_smem) {
      w.dyn_bytes = (cfg.dynamic_smem + page_size() - 1) / page_size() * page_size();
      void* p = mmap(nullptr, w.dyn_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("manifpt::emu: cannot map dynamic shared memory");
      w.dyn = static_cast<unsigned char*>(p);
    }
  };
  auto record = [&](std::uint64_t b, const std::string& msg) {
    std::lock_guard<std::mutex> lock(mu);
    if (b < fault_block) {
      fault_block = b;
      first_fault = msg;
    }
    stop = true;
  };
  // Normal mode: `workers` OS threads (this one included) take blocks in order, each block's
  // fibers on the thread that took it.
  auto normal_worker = [&] {
    try {
      Worker w;
      make_worker(w);
      tl_worker = &w;
      for (std::uint64_t b; !stop && (b = next++) < nblocks;)
        if (!w.run_block(b)) record(b, w.fault);
    } catch (const std::exception& e) {
      record(0, e.what());
    }
    tl_worker = nullptr;
  };
  // Race check: one fresh OS thread per block, `workers` at a time. Fresh threads give fresh
  // thread_local __shared__ variables (TSAN resets a new thread's TLS), and since a block's thread
  // never acquires what its fibers did, blocks stay unordered for TSAN except through the launch.
  auto tsan_block = [&](std::uint64_t b) {
    try {
      Worker w;
      make_worker(w);
      tl_worker = &w;
      if (!w.run_block(b)) record(b, w.fault);
    } catch (const std::exception& e) {
      record(b, e.what());
    }
    tl_worker = nullptr;
  };

  {
    if (tsan) {
      for (std::uint64_t b0 = 0; b0 < nblocks && !stop; b0 += workers) {
        std::vector<std::thread> ts;
        for (std::uint64_t b = b0; b < std::min<std::uint64_t>(nblocks, b0 + workers); ++b) ts.emplace_back(tsan_block, b);
        for (auto& t : ts) t.join();
      }
    } else {
      std::vector<std::thread> ts;
      for (unsigned i = 1; i < workers; ++i) ts.emplace_back(normal_worker);
      normal_worker();
      for (auto& t : ts) t.join();
    }
  }
  if (launch_done) {
    tsan_acquire(launch_done);
    delete launch_done;
  }
  if (!first_fault.empty())
    throw KernelFault("emulated CUDA kernel: " + first_fault + " (grid " + triple(cfg.grid.x, cfg.grid.y, cfg.grid.z) + ", block " +
                      triple(cfg.block.x, cfg.block.y, cfg.block.z) + ")");
}

}  // namespace detail

void set_max_dynamic_shared_memory(const void* kernel, std::size_t static_smem, std::size_t bytes) {
  const DeviceLimits& lim = device_limits();
  if (static_smem > lim.shared_per_block_optin || bytes > lim.shared_per_block_optin - static_smem)
    throw LaunchError("CUDA error: invalid argument (cudaErrorInvalidValue): cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, " +
                      std::to_string(bytes) + ") for a kernel with " + std::to_string(static_smem) +
                      " bytes of static shared memory; the device allows " + std::to_string(lim.shared_per_block_optin) +
                      " bytes per block in all");
  detail::FuncAttrs& a = detail::func_attrs();
  std::lock_guard<std::mutex> lock(a.mu);
  a.max_dynamic[kernel] = bytes;
}

}  // namespace manifpt::emu
