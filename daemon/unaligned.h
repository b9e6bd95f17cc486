/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <string.h>

#include <glib.h>

/* Little-endian integers at any address: the stream format, the
 * simulator's data and the CRC's input are all little-endian byte
 * strings. memcpy() keeps unaligned access defined; compilers turn it
 * into a plain load or store. */

static inline uint16_t unaligned_read_le16(const void *p) {
        uint16_t v;

        memcpy(&v, p, sizeof(v));
        return GUINT16_FROM_LE(v);
}

static inline uint32_t unaligned_read_le32(const void *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return GUINT32_FROM_LE(v);
}

static inline uint64_t unaligned_read_le64(const void *p) {
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        return GUINT64_FROM_LE(v);
}

static inline void unaligned_write_le16(void *p, uint16_t v) {
        v = GUINT16_TO_LE(v);
        memcpy(p, &v, sizeof(v));
}

static inline void unaligned_write_le32(void *p, uint32_t v) {
        v = GUINT32_TO_LE(v);
        memcpy(p, &v, sizeof(v));
}

static inline void unaligned_write_le64(void *p, uint64_t v) {
        v = GUINT64_TO_LE(v);
        memcpy(p, &v, sizeof(v));
}
