/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "compat/compat.h"

/* What trial-resume probes found (probe.h runs them). Verdicts are kept
 * per (source type and version, target type and version) and persisted
 * in the state directory for the running kernel release: a new kernel
 * may bring new drivers, so old results do not carry over. */

typedef struct ProbeCache ProbeCache;

/* One end of a probe, as recorded. */
typedef struct ProbeSide {
        const char *type, *version;     /* migration identity */
        const char *driver;
} ProbeSide;

ProbeCache *probe_cache_new(const char *path);
void probe_cache_free(ProbeCache *c);
bool probe_cache_lookup(ProbeCache *c, const Identity *source, const Identity *target, Judgement *ret);
/* Remembers a verdict, and writes the file. */
void probe_cache_store(ProbeCache *c, const ProbeSide *source, const ProbeSide *target, const Judgement *j);
