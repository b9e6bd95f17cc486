/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An assertion that survives NDEBUG and G_DISABLE_ASSERT: libFuzzer
 * takes the abort as a crash and keeps the input. */
#define check(cond)                                                             \
        do {                                                                    \
                if (!(cond)) {                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                \
                }                                                               \
        } while (0)

/* The input as the daemon's loaders hand it on: a C string, and files
 * with a NUL byte refused before parsing (conf_file_load, rules). */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
        if (memchr(data, 0, size))
                return NULL;
        return g_strndup((const char *) data, size);
}
