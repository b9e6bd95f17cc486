/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Start-up at scale grows the heap a page at a time, and a first touch of
 * a fresh page is a page fault: about 11 us each on a virtualized host
 * (measured on this project's machines; under 1 us for the same page
 * populated in bulk). With 10,000 devices that was a third of start-up.
 *
 * heap_reserve() grows malloc's heap by about bytes now and populates it
 * with one madvise(MADV_POPULATE_WRITE), so what start-up allocates next
 * lands on pages already there. heap_release() gives back what it did not
 * use. One reservation at a time; both are no-ops where they cannot work
 * (an older kernel, a heap that is not one contiguous break). */
void heap_reserve(size_t bytes);
/* Populates the whole pages inside [p, p + len): for a large block just
 * allocated (malloc maps those afresh) that is about to be filled. */
void heap_populate(void *p, size_t len);
void heap_release(void);
