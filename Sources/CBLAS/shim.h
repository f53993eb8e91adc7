#include <cblas.h>

// A read prefetch, which Swift cannot spell. It lives in the one C header the GEMM code already
// imports. Used where a kernel reads rows from memory slower than the hardware prefetcher
// brings them (FourColumnGEMM's dot products).
static inline void tensors_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }

// Sequentially consistent atomics on a machine word, for the tensor thread team (Swift's
// `Synchronization.Atomic` needs macOS 15 on Apple's side of the package). One ordering for
// every access keeps the sleep/wake handshake (a worker announces it sleeps, then re-reads the
// ticket; the caller publishes the ticket, then reads the sleepers) free of lost wake-ups.
static inline long tensors_atomic_load(const long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void tensors_atomic_store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline long tensors_atomic_add(long *p, long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline _Bool tensors_atomic_compare_exchange(long *p, long expected, long desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
// The spin-wait hint (x86 `pause`), so that a waiting thread yields the core's shared resources.
static inline void tensors_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
