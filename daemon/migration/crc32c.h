/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli, the iSCSI/ext4 polynomial 0x1EDC6F41, reflected),
 * with the x86 crc32 instruction where the CPU has it and a portable
 * table-driven fallback otherwise. crc32c(0, "123456789", 9) ==
 * 0xE3069283. Chain calls by passing the previous result. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* Which implementation crc32c() uses: "sse4.2", "table", ... */
const char *crc32c_implementation(void);
