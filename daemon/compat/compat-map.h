/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "compat/compat.h"

/* The compatibility map: a directed graph over identity classes (devices
 * and instantiable mdev types alike that share an identity), with one
 * verdict per class pair. Nodes come and go one at a time (per uevent);
 * a node of a known class costs nothing, a new class costs one verdict
 * with each existing class in each direction. 10,000 devices in 50
 * classes: 2,500 verdicts, not 10^8. Pure: judging goes through JudgeOps.
 * Classes and verdicts are keyed by the identities themselves. */

typedef struct CompatMap CompatMap;

CompatMap *compat_map_new(const JudgeOps *ops);
void compat_map_free(CompatMap *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CompatMap, compat_map_free);

/* Adds a node or changes its identity (takes ownership of id). */
void compat_map_set(CompatMap *m, const Node *node, Identity *id);
/* The same, id only read: a new class copies it. */
void compat_map_set_view(CompatMap *m, const Node *node, const Identity *id);
void compat_map_remove(CompatMap *m, const Node *node);
const Identity *compat_map_identity(CompatMap *m, const Node *node);

/* NULL if either node is unknown. A verdict a busy driver left (retry)
 * is judged again, which asks that driver. */
const Judgement *compat_map_verdict(CompatMap *m, const Node *source, const Node *target);
/* The verdict as the map holds it, never judged here, so no driver is
 * asked: one a busy driver left is returned as it stands (unknown,
 * retry set). NULL if either node is unknown. */
const Judgement *compat_map_kept_verdict(CompatMap *m, const Node *source, const Node *target);
/* For a source not in the map (another host's, say): judged on demand
 * against the target's class, cached by class. */
const Judgement *compat_map_verdict_for(CompatMap *m, const Identity *source, const Node *target);

typedef struct CompatTarget {
        Node node;              /* its name is the map's: valid until the map changes */
        const Judgement *judgement;
} CompatTarget;

/* Every node and the verdict for source going there (incompatible ones
 * included): compatible, then unknown, then incompatible; within each,
 * best basis first, then devices before types, then by name. */
GArray *compat_map_targets(CompatMap *m, const Identity *source);
/* Only the nodes that could take the state (compatible, and unknown if
 * asked), in the same order; classes that cannot are never expanded. */
GArray *compat_map_candidates(CompatMap *m, const Identity *source, bool with_unknown);

/* Forgets verdicts between identities of these types and versions (a new
 * probe result), and judges the affected class pairs again. */
void compat_map_invalidate(CompatMap *m, const char *source_type, const char *source_version,
                           const char *target_type, const char *target_version);

#define COMPAT_MAP_REMOTE_VERDICTS_MAX 4096
#define COMPAT_MAP_DRIVER_ANSWERS_MAX 65536

typedef struct CompatMapStats {
        unsigned nodes, classes;
        uint64_t verdicts;              /* judged, ever */
        uint64_t vendor_checks;         /* calls that reached a driver: one per source
                                         * version and target type, version and basis */
        uint64_t last_change_usec;      /* the last set/remove took this long */
        unsigned kept_verdicts;         /* now: bounded for sources from elsewhere */
        unsigned driver_answers;        /* now, remembered */
} CompatMapStats;

void compat_map_stats(CompatMap *m, CompatMapStats *ret);

/* Whether a node has this migration type and version. Judging such an
 * identity asks drivers nothing they were not asked for the node's. */
bool compat_map_knows(CompatMap *m, const char *type, const char *version);
