/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

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

/* A remembered verdict, for listing. */
typedef struct ProbeRecord {
        char *source_type, *source_version, *target_type, *target_version;
        Verdict verdict;
        char *reason;
        char *drivers;          /* "SOURCE -> TARGET", the drivers probed */
        char *kernel;           /* the release the verdict holds for: the running one */
        uint64_t time_usec;     /* when it was probed (CLOCK_REALTIME); 0: not recorded */
} ProbeRecord;

void probe_record_free(ProbeRecord *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProbeRecord, probe_record_free);

/* The running kernel's verdicts, by source then target identity. */
GPtrArray *probe_cache_list(ProbeCache *c);

/* Forgets one verdict, in memory and in the file (rewritten atomically):
 * -ENOENT if there is none for this pair, or the file's error (nothing
 * forgotten then). The caller tells the map (compat_map_invalidate()). */
int probe_cache_forget(ProbeCache *c, const char *source_type, const char *source_version, const char *target_type,
                       const char *target_version, char **ret_error);
/* Forgets every verdict of the running kernel; *ret_forgotten: what was
 * forgotten (ProbeRecord), for the map. */
int probe_cache_forget_all(ProbeCache *c, GPtrArray **ret_forgotten, char **ret_error);
