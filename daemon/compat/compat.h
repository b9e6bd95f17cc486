/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry.h"
#include "compat/rules.h"

/* Migration identities and verdicts. No merged kernel interface says
 * which devices can take each other's state, so a device's identity
 * (migration type, version) comes from the best source there is, and the
 * basis says which:
 *
 *   vendor      the driver's migration_version (and migration_type)
 *               attributes; a target accepts a source's version iff
 *               writing it into the target's attribute succeeds
 *   probe       (a verdict only) a trial resume accepted the source's
 *               pre-copy data
 *   features    (vDPA) the virtio class, feature bits and config the
 *               kernel states for both devices (vdpa-facet.h)
 *   rule        an administrator's or vendor's rules file
 *   type-match  nothing better: equal migration types are presumed
 *               compatible, never verified
 *
 * Pure: writes into attributes and probe results come in through
 * callbacks. */

typedef enum Basis {
        BASIS_VENDOR,
        BASIS_PROBE,
        BASIS_FEATURES,
        BASIS_RULE,
        BASIS_TYPE_MATCH,
        _BASIS_MAX,
} Basis;

typedef enum Verdict {
        VERDICT_COMPATIBLE,
        VERDICT_INCOMPATIBLE,
        VERDICT_UNKNOWN,
        _VERDICT_MAX,
} Verdict;

const char *basis_to_string(Basis b);
const char *verdict_to_string(Verdict v);

typedef struct Identity {
        char *type;             /* migration type */
        char *version;          /* "" for type-match */
        Basis basis;            /* vendor, rule or type-match */
        RuleCompare compare;    /* rule */
        uint32_t flags;         /* VFIO_MIGRATION_*, 0 when not known */
        char *iommu;            /* IOMMU facet, canonical text; "" states nothing */
        char *vdpa;             /* vDPA facet, canonical text; "" for everything else */
        unsigned ignore_facets; /* RuleFacet: a rule says these do not matter */
} Identity;

/* The flags of a device whose driver is known to have no migration: known
 * (not 0), and without STOP_COPY, which compat_judge() refuses. */
#define IDENTITY_FLAGS_NOT_MIGRATABLE (UINT32_C(1) << 31)

Identity *identity_new(const char *type, const char *version, Basis basis);
Identity *identity_copy(const Identity *id);
void identity_free(Identity *id);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Identity, identity_free);

/* Devices with equal identities are alike for migration: one verdict
 * serves all. For GHashTable: every field counts. */
guint identity_hash(gconstpointer id);
gboolean identity_equal(gconstpointer a, gconstpointer b);

/* The migration type of every vDPA device: its facet says the rest. */
#define VDPA_MIGRATION_TYPE "vdpa"

/* The type-match migration type: the mdev type id, "vdpa", or
 * vfio-pci:<driver>:<vendor>:<device>:<subvendor>:<subdevice>. */
char *compat_type_match_type(const Device *d);

/* Best identity of a device. vendor_* are its (or, for an mdev, its
 * type's) attributes, NULL when absent; an invalid one is skipped with
 * *ret_warning saying why. */
Identity *identity_of_device(const Device *d, const char *vendor_type, const char *vendor_version,
                             const Rules *rules, char **ret_warning);
/* The same without a copy: *ret borrows its strings from d, the
 * arguments, the rules and *ret_scratch (to be freed by the caller), for
 * as long as those live. Start-up derives one for every device. */
void identity_view_of_device(const Device *d, const char *vendor_type, const char *vendor_version,
                             const Rules *rules, Identity *ret, char **ret_scratch, char **ret_warning);
/* The same for an instantiable mdev type (its future instances). Rules
 * match its Driver= against the driver name the kernel put into the
 * type id ("<driver>-<name>"), as a virtual parent may have no driver. */
Identity *identity_of_type(const MdevType *t, const char *parent_driver, const char *vendor_type,
                           const char *vendor_version, const Rules *rules, char **ret_warning);

typedef struct Judgement {
        Verdict verdict;
        Basis basis;
        char *reason;           /* for people: why */
        bool retry;             /* the driver was busy: not a verdict to keep */
} Judgement;

void judgement_clear(Judgement *j);

/* The target's driver decides (the seeds' protocol): writes version into
 * target_node's migration_version attribute. 0: accepted; -errno: refused,
 * unless vendor_answer_busy(). */
typedef int (*VendorJudge)(void *userdata, const Node *target, const char *version);
/* A trial resume's verdict for these identities (type and version each),
 * if one was made. */
typedef bool (*ProbeResult)(void *userdata, const Identity *source, const Identity *target, Judgement *ret);

/* A busy driver has not answered: ask again later, remember nothing. */
static inline bool vendor_answer_busy(int r) {
        return r == -EBUSY || r == -EAGAIN || r == -EINTR;
}

typedef struct JudgeOps {
        VendorJudge vendor;
        ProbeResult probe;
        void *userdata;
} JudgeOps;

/* Whether state of src may go into tgt (represented by tgt_node for the
 * vendor's check). vDPA identities are judged on their facet alone
 * (basis features), and never match a VFIO one. Flags count too: a target without STOP_COPY never
 * qualifies; pre-copy the target lacks is noted in the reason. Then the
 * facets (the IOMMU's, iommu-facet.h), unless a rule of either side
 * ignores them: a facet that fails makes the verdict incompatible, one
 * that cannot be judged makes a compatible verdict unknown. */
Judgement compat_judge(const Identity *src, const Identity *tgt, const Node *tgt_node, const JudgeOps *ops);
