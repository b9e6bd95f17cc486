/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "heap.h"

/* Below malloc's mmap threshold (128 KiB until a larger block has been
 * freed), so each comes from the heap, and each costs one fault for its
 * header: a few hundred at most. */
#define BLOCK (120 * 1024)
/* Beyond this start-up pays its faults as before, rather than pinning a
 * testbed's worth of memory someone asked too much of. */
#define RESERVE_MAX ((size_t) 64 << 20)
#define PAGE_DOWN(p, ps) ((uintptr_t) (p) & ~((uintptr_t) (ps) - 1))
#define PAGE_UP(p, ps) PAGE_DOWN((uintptr_t) (p) + (ps) - 1, ps)

/* The highest block of the reservation, kept allocated: freed blocks
 * below it cannot join the heap's top, which free() would trim. */
static void *fence;

void heap_reserve(size_t bytes) {
        size_t n = MIN(bytes, RESERVE_MAX) / BLOCK, ps = (size_t) sysconf(_SC_PAGESIZE), top = 0;
        g_autofree void **blocks = NULL;
        uintptr_t lo = UINTPTR_MAX, hi = 0;

        if (n < 2 || fence)
                return;
        blocks = g_new(void *, n);
        for (size_t i = 0; i < n; i++) {
                blocks[i] = malloc(BLOCK);
                if (!blocks[i]) {
                        n = i;
                        break;
                }
                lo = MIN(lo, (uintptr_t) blocks[i]);
                if ((uintptr_t) blocks[i] > hi)
                        hi = (uintptr_t) blocks[top = i];
        }
        /* one span, as a growing break gives: populate it in one call */
        if (n >= 2 && hi + BLOCK - lo <= n * (BLOCK + 64))
                (void) madvise((void *) PAGE_UP(lo, ps), PAGE_DOWN(hi + BLOCK, ps) - PAGE_UP(lo, ps),
                               MADV_POPULATE_WRITE);
        for (size_t i = 0; i < n; i++)
                if (i != top)
                        free(blocks[i]);
        fence = n > 0 ? blocks[top] : NULL;
}

void heap_populate(void *p, size_t len) {
        size_t ps = (size_t) sysconf(_SC_PAGESIZE);
        uintptr_t lo = PAGE_UP(p, ps), hi = PAGE_DOWN((uintptr_t) p + len, ps);

        if (hi > lo)
                (void) madvise((void *) lo, hi - lo, MADV_POPULATE_WRITE);
}

void heap_release(void) {
        if (!fence)
                return;
        free(fence);
        fence = NULL;
        (void) malloc_trim(0);
}
