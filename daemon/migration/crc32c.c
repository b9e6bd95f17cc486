/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <string.h>

#include <glib.h>

#include "migration/crc32c.h"
#include "unaligned.h"

/* The reflected Castagnoli polynomial 0x1EDC6F41. Internally the CRC
 * register is kept "raw" (no pre- and post-inversion), which is what the
 * crc32 instruction computes and what makes combining lanes linear;
 * crc32c() adds the inversions at its edges. */
#define POLY 0x82F63B78u

/* Test and benchmark hooks, not part of crc32c.h: the portable path
 * regardless of the CPU, so that tests can compare it with crc32c(). */
uint32_t crc32c_table(uint32_t crc, const void *data, size_t len);

typedef uint32_t (*crc32c_raw_fn)(uint32_t crc, const uint8_t *p, size_t len);

static uint32_t slice[8][256];

static void slice_init(void) {
        for (unsigned n = 0; n < 256; n++) {
                uint32_t c = n;

                for (unsigned k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
                slice[0][n] = c;
        }
        /* slice[k][n]: the CRC of byte n followed by k zero bytes. */
        for (unsigned n = 0; n < 256; n++)
                for (unsigned k = 1; k < 8; k++)
                        slice[k][n] = (slice[k - 1][n] >> 8) ^ slice[0][slice[k - 1][n] & 0xff];
}

/* Slicing-by-8: eight independent table lookups per 8 bytes instead of a
 * dependency chain of eight. Byte loads keep it endian-neutral; compilers
 * turn unaligned_read_le32() into a plain load on little-endian machines. */
static uint32_t crc_table_raw(uint32_t crc, const uint8_t *p, size_t len) {
        for (; len >= 8; p += 8, len -= 8) {
                uint32_t lo = unaligned_read_le32(p) ^ crc, hi = unaligned_read_le32(p + 4);

                crc = slice[7][lo & 0xff] ^ slice[6][(lo >> 8) & 0xff] ^
                      slice[5][(lo >> 16) & 0xff] ^ slice[4][lo >> 24] ^
                      slice[3][hi & 0xff] ^ slice[2][(hi >> 8) & 0xff] ^
                      slice[1][(hi >> 16) & 0xff] ^ slice[0][hi >> 24];
        }
        for (; len > 0; p++, len--)
                crc = (crc >> 8) ^ slice[0][(crc ^ *p) & 0xff];
        return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* The crc32 instruction has a latency of 3 cycles but issues one per
 * cycle, so three independent lanes over adjacent blocks run about three
 * times faster than one; the lane results are then combined by
 * multiplying the earlier CRC by x^(8 * block) modulo the polynomial,
 * through the tables below. Two block sizes: a long one for throughput
 * and a short one so that buffers of a few KiB gain too. A third size
 * (1 KiB) measured no better. */
#define LANE_LONG 8192u
#define LANE_SHORT 256u

static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

/* a * b modulo POLY, both reflected (bit 31 is x^0). */
static uint32_t gf2_multiply(uint32_t a, uint32_t b) {
        uint32_t product = 0;

        for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
                if (a & m)
                        product ^= b;
                b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
        }
        return product;
}

/* Tables that multiply a CRC register by x^(8 * len), byte by byte: the
 * operator is linear, so each of the four register bytes can be looked up
 * separately and the results XORed. */
static void shift_init(uint32_t table[4][256], size_t len) {
        uint32_t xpow = 1u << 31;       /* x^0 */

        for (size_t i = 0; i < 8 * len; i++)
                xpow = xpow & 1 ? (xpow >> 1) ^ POLY : xpow >> 1;
        for (unsigned k = 0; k < 4; k++)
                for (unsigned n = 0; n < 256; n++)
                        table[k][n] = gf2_multiply((uint32_t) n << (8 * k), xpow);
}

static inline uint32_t shift(uint32_t table[4][256], uint32_t crc) {
        return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^
               table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof v);        /* unaligned loads are fine on x86 */
        return v;
}

/* Three lanes over each 3 * block bytes; returns the bytes consumed. */
__attribute__((target("sse4.2"), always_inline))
static inline size_t crc_three_lanes(uint32_t *crcp, const uint8_t *p, size_t len,
                                     size_t block, uint32_t table[4][256]) {
        uint32_t crc = *crcp;
        size_t done = 0;

        for (; len - done >= 3 * block; done += 3 * block, p += 3 * block) {
                uint64_t c0 = crc, c1 = 0, c2 = 0;

                for (size_t i = 0; i < block; i += 8) {
                        c0 = _mm_crc32_u64(c0, load64(p + i));
                        c1 = _mm_crc32_u64(c1, load64(p + block + i));
                        c2 = _mm_crc32_u64(c2, load64(p + 2 * block + i));
                }
                crc = shift(table, (uint32_t) c0) ^ (uint32_t) c1;
                crc = shift(table, crc) ^ (uint32_t) c2;
        }
        *crcp = crc;
        return done;
}

__attribute__((target("sse4.2")))
static uint32_t crc_sse42_raw(uint32_t crc, const uint8_t *p, size_t len) {
        uint64_t c;

        /* Short buffers (record heads) take the plain loop: the set-up of
         * the lanes would cost more than it saves. */
        if (len >= 3 * LANE_SHORT) {
                size_t done;

                /* Byte steps up to 8-byte alignment, so that the wide
                 * loads below never straddle a cache line. */
                for (; ((uintptr_t) p & 7) != 0; p++, len--)
                        crc = _mm_crc32_u8(crc, *p);
                done = crc_three_lanes(&crc, p, len, LANE_LONG, shift_long);
                p += done, len -= done;
                done = crc_three_lanes(&crc, p, len, LANE_SHORT, shift_short);
                p += done, len -= done;
        }

        c = crc;
        for (; len >= 8; p += 8, len -= 8)
                c = _mm_crc32_u64(c, load64(p));
        crc = (uint32_t) c;
        for (; len > 0; p++, len--)
                crc = _mm_crc32_u8(crc, *p);
        return crc;
}
#endif

typedef struct Implementation {
        crc32c_raw_fn fn;
        const char *name;
} Implementation;

static const Implementation *implementation(void) {
        static Implementation impl;
        static gsize once = 0;

        /* Resolved once, on first use, so that no caller pays for the CPU
         * check and the table set-up more than once. */
        if (g_once_init_enter(&once)) {
                slice_init();
                impl = (Implementation) { crc_table_raw, "table" };
#if defined(__x86_64__)
                if (__builtin_cpu_supports("sse4.2")) {
                        shift_init(shift_long, LANE_LONG);
                        shift_init(shift_short, LANE_SHORT);
                        impl = (Implementation) { crc_sse42_raw, "sse4.2" };
                }
#endif
                g_once_init_leave(&once, 1);
        }
        return &impl;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
        return ~implementation()->fn(~crc, data, len);
}

const char *crc32c_implementation(void) {
        return implementation()->name;
}

uint32_t crc32c_table(uint32_t crc, const void *data, size_t len) {
        (void) implementation();        /* the slice tables */
        return ~crc_table_raw(~crc, data, len);
}
