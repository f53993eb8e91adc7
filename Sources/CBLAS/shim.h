#include <cblas.h>

// A read prefetch, which Swift cannot spell. It lives in the one C header the GEMM code already
// imports. Used where a kernel reads rows from memory slower than the hardware prefetcher
// brings them (FourColumnGEMM's dot products).
static inline void tensors_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }
