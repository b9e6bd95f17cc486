/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "compat/compat.h"
#include "iommu-facet.h"
#include "vdpa-facet.h"
#include "names.h"
#include "util.h"
#include "vfio-uapi.h"

static const char *const basis_names[_BASIS_MAX] = {
        [BASIS_VENDOR] = "vendor", [BASIS_PROBE] = "probe", [BASIS_FEATURES] = "features", [BASIS_RULE] = "rule",
        [BASIS_TYPE_MATCH] = "type-match",
};

static const char *const verdict_names[_VERDICT_MAX] = {
        [VERDICT_COMPATIBLE] = "compatible", [VERDICT_INCOMPATIBLE] = "incompatible",
        [VERDICT_UNKNOWN] = "unknown",
};

const char *basis_to_string(Basis b) {
        return b < _BASIS_MAX ? basis_names[b] : NULL;
}

const char *verdict_to_string(Verdict v) {
        return v < _VERDICT_MAX ? verdict_names[v] : NULL;
}

Identity *identity_new(const char *type, const char *version, Basis basis) {
        Identity *id = g_new0(Identity, 1);

        id->type = g_strdup(type);
        id->version = g_strdup(version ? version : "");
        id->iommu = g_strdup("");
        id->vdpa = g_strdup("");
        id->basis = basis;
        return id;
}

Identity *identity_copy(const Identity *id) {
        Identity *c = g_new(Identity, 1);

        *c = *id;
        c->type = g_strdup(id->type);
        c->version = g_strdup(id->version ?: "");
        c->iommu = g_strdup(id->iommu ?: "");
        c->vdpa = g_strdup(id->vdpa ?: "");
        return c;
}

void identity_free(Identity *id) {
        if (!id)
                return;
        g_free(id->type);
        g_free(id->version);
        g_free(id->iommu);
        g_free(id->vdpa);
        g_free(id);
}

guint identity_hash(gconstpointer p) {
        const Identity *id = p;
        guint h = g_str_hash(id->type);

        h = h * 31 + g_str_hash(id->version);
        h = h * 31 + id->basis;
        h = h * 31 + id->compare;
        h = h * 31 + g_str_hash(id->iommu);
        h = h * 31 + g_str_hash(id->vdpa);
        h = h * 31 + id->ignore_facets;
        return h * 31 + id->flags;
}

gboolean identity_equal(gconstpointer p, gconstpointer q) {
        const Identity *a = p, *b = q;

        return a->basis == b->basis && a->compare == b->compare && a->flags == b->flags &&
               a->ignore_facets == b->ignore_facets && g_str_equal(a->type, b->type) &&
               g_str_equal(a->version, b->version) && g_str_equal(a->iommu, b->iommu) &&
               g_str_equal(a->vdpa, b->vdpa);
}

char *compat_type_match_type(const Device *d) {
        if (d->kind == DEVICE_KIND_MDEV)
                return g_strdup(d->mdev_type);
        if (d->kind == DEVICE_KIND_VDPA)
                return g_strdup(VDPA_MIGRATION_TYPE);
        return g_strdup_printf("vfio-pci:%s:%s:%s:%s:%s", d->driver, d->vendor_id, d->device_id,
                               d->subsystem_vendor_id, d->subsystem_device_id);
}

/* vendor, then rule, then type-match; the strings are the arguments' */
static void derive(Identity *ret, const char *fallback_type, const Rule *rule, const char *vendor_type,
                   const char *vendor_version, uint32_t flags, const char *iommu, char **ret_warning) {
        if (vendor_version && !vendor_string_valid(vendor_version)) {
                if (ret_warning)
                        *ret_warning = g_strdup("its migration_version is not 1 to 4096 printable ASCII "
                                                "characters; ignoring it");
                vendor_version = NULL;
        }
        if (vendor_type && !vendor_string_valid(vendor_type)) {
                if (ret_warning && !*ret_warning)
                        *ret_warning = g_strdup("its migration_type is not 1 to 4096 printable ASCII characters; "
                                                "ignoring it");
                vendor_type = NULL;
        }
        *ret = (Identity) { .type = (char *) fallback_type, .version = (char *) "", .basis = BASIS_TYPE_MATCH,
                            .flags = flags, .iommu = (char *) (iommu ?: ""), .vdpa = (char *) "",
                            .ignore_facets = rule ? rule->ignore_facets : 0 };
        if (vendor_version) {
                ret->type = (char *) (vendor_type ?: fallback_type);
                ret->version = (char *) vendor_version;
                ret->basis = BASIS_VENDOR;
        } else if (rule && *rule->version) {
                ret->type = *rule->type ? rule->type : (char *) fallback_type;
                ret->version = rule->version;
                ret->basis = BASIS_RULE;
                ret->compare = rule->compare;
        }
}

/* Neither vendor attributes nor rules speak of vDPA devices: what the
 * kernel states of them is their identity. */
static void vdpa_identity(Identity *ret, const char *facet) {
        *ret = (Identity) { .type = (char *) VDPA_MIGRATION_TYPE, .version = (char *) "", .basis = BASIS_FEATURES,
                            .iommu = (char *) "", .vdpa = (char *) facet };
}

void identity_view_of_device(const Device *d, const char *vendor_type, const char *vendor_version,
                             const Rules *rules, Identity *ret, char **ret_scratch, char **ret_warning) {
        uint32_t flags = d->migration_support == MIGRATION_SUPPORT_NONE ? IDENTITY_FLAGS_NOT_MIGRATABLE
                                                                          : d->migration_flags;
        const char *type = d->mdev_type;

        *ret_scratch = NULL;
        if (d->kind == DEVICE_KIND_VDPA)
                return vdpa_identity(ret, d->vdpa);
        if (d->kind != DEVICE_KIND_MDEV)
                type = *ret_scratch = compat_type_match_type(d);
        derive(ret, type, rules ? rules_match(rules, d) : NULL, vendor_type, vendor_version, flags, d->iommu,
               ret_warning);
}

Identity *identity_of_device(const Device *d, const char *vendor_type, const char *vendor_version,
                             const Rules *rules, char **ret_warning) {
        g_autofree char *scratch = NULL;
        Identity view;

        identity_view_of_device(d, vendor_type, vendor_version, rules, &view, &scratch, ret_warning);
        return identity_copy(&view);
}

Identity *identity_of_type(const MdevType *t, const char *parent_driver, const char *vendor_type,
                           const char *vendor_version, const Rules *rules, char **ret_warning) {
        g_autofree char *driver = NULL;
        Identity view;

        if (t->kind == DEVICE_KIND_VDPA)
                vdpa_identity(&view, t->vdpa);
        else {
                driver = rules_mdev_driver(t->id, parent_driver);
                derive(&view, t->id, rules ? rules_match_type(rules, driver, t->id) : NULL, vendor_type,
                       vendor_version, 0, t->iommu, ret_warning);
        }
        return identity_copy(&view);
}

void judgement_clear(Judgement *j) {
        g_clear_pointer(&j->reason, g_free);
}

static Judgement verdict(Verdict v, Basis b, const char *format, ...) G_GNUC_PRINTF(3, 4);
static Judgement verdict(Verdict v, Basis b, const char *format, ...) {
        Judgement j = { .verdict = v, .basis = b };
        va_list ap;

        va_start(ap, format);
        j.reason = g_strdup_vprintf(format, ap);
        va_end(ap);
        return j;
}

static Basis weaker(Basis a, Basis b) {
        return MAX(a, b);
}

/* What the versions and bases say, flags aside. */
static Judgement judge_versions(const Identity *src, const Identity *tgt, const Node *tgt_node,
                                const JudgeOps *ops) {
        Judgement p;
        int r;

        /* A probe is the target driver's own answer for these two
         * identities: it outranks what rules and type names presume, across
         * types too. A vendor's target
         * declares its migration type itself, and that filter stays. */
        if (tgt->basis != BASIS_VENDOR && ops->probe && ops->probe(ops->userdata, src, tgt, &p))
                return p;
        if (!g_str_equal(src->type, tgt->type))
                return verdict(VERDICT_INCOMPATIBLE, weaker(src->basis, tgt->basis),
                               "different migration types: %s and %s", src->type, tgt->type);
        if (tgt->basis == BASIS_VENDOR) {
                if (!*src->version)
                        return verdict(VERDICT_UNKNOWN, BASIS_VENDOR,
                                       "the target's driver checks migration versions, the source has none");
                r = ops->vendor(ops->userdata, tgt_node, src->version);
                if (vendor_answer_busy(r)) {
                        Judgement j = verdict(VERDICT_UNKNOWN, BASIS_VENDOR, "the target's driver was busy: %s",
                                              g_strerror(-r));

                        j.retry = true;
                        return j;
                }
                if (r >= 0)
                        return verdict(VERDICT_COMPATIBLE, BASIS_VENDOR, "the target's driver accepts version %s",
                                       src->version);
                return verdict(VERDICT_INCOMPATIBLE, BASIS_VENDOR, "the target's driver refuses version %s: %s",
                               src->version, g_strerror(-r));
        }
        /* the target's rule says which versions it takes, whoever
         * vouches for the source's version (a remote one, say) */
        if (tgt->basis == BASIS_RULE && *src->version) {
                bool ok = rules_versions_compatible(tgt->compare, src->version, tgt->version);

                return verdict(ok ? VERDICT_COMPATIBLE : VERDICT_INCOMPATIBLE, BASIS_RULE,
                               "rule: version %s %s %s (%s)", src->version, ok ? "matches" : "does not match",
                               tgt->version, tgt->compare == RULE_COMPARE_EXACT ? "exact" : "same major");
        }
        if (src->basis != tgt->basis)
                return verdict(VERDICT_UNKNOWN, weaker(src->basis, tgt->basis),
                               "the source's identity comes from %s, the target's from %s: nothing compares them",
                               basis_names[src->basis], basis_names[tgt->basis]);
        return verdict(VERDICT_COMPATIBLE, BASIS_TYPE_MATCH, "presumed: same migration type %s (not verified)",
                       src->type);
}

/* The guest saw the source's IOMMU: the target's must cover it. */
static void judge_iommu(const Identity *src, const Identity *tgt, Judgement *j) {
        g_autofree char *why = NULL, *joined = NULL;
        IommuFacet s, t;
        IommuVerdict v;

        if (j->verdict == VERDICT_INCOMPATIBLE || ((src->ignore_facets | tgt->ignore_facets) & RULE_FACET_IOMMU))
                return;
        /* every facet was checked where it came in; one that is not valid states nothing */
        if (iommu_facet_parse(src->iommu, &s, NULL) < 0 || iommu_facet_parse(tgt->iommu, &t, NULL) < 0)
                return;
        v = iommu_facet_judge(&s, &t, &why);
        if (v == IOMMU_VERDICT_INCOMPATIBLE) {
                j->verdict = VERDICT_INCOMPATIBLE;
                g_free(j->reason);
                j->reason = g_steal_pointer(&why);
        } else if (v == IOMMU_VERDICT_UNKNOWN && j->verdict == VERDICT_COMPATIBLE) {
                j->verdict = VERDICT_UNKNOWN;
                joined = g_strdup_printf("%s; but %s", j->reason, why);
                g_free(j->reason);
                j->reason = g_steal_pointer(&joined);
        }
}

/* A guest's virtio driver saw the source's features and config: the
 * target must offer them. Nothing else of a vDPA device is an identity. */
static Judgement judge_vdpa(const Identity *src, const Identity *tgt) {
        g_autofree char *why = NULL;
        VdpaFacet s, t;

        if (!g_str_equal(src->type, tgt->type))
                return verdict(VERDICT_INCOMPATIBLE, BASIS_FEATURES, "different migration types: %s and %s",
                               src->type, tgt->type);
        /* every facet was checked where it came in */
        if (vdpa_facet_parse(src->vdpa, &s, NULL) < 0 || vdpa_facet_parse(tgt->vdpa, &t, NULL) < 0)
                return verdict(VERDICT_UNKNOWN, BASIS_FEATURES, "a vDPA facet does not parse");
        switch (vdpa_facet_judge(&s, &t, &why)) {
        case VDPA_VERDICT_COMPATIBLE:
                return verdict(VERDICT_COMPATIBLE, BASIS_FEATURES, "%s", why);
        case VDPA_VERDICT_INCOMPATIBLE:
                return verdict(VERDICT_INCOMPATIBLE, BASIS_FEATURES, "%s", why);
        default:
                return verdict(VERDICT_UNKNOWN, BASIS_FEATURES, "%s", why);
        }
}

Judgement compat_judge(const Identity *src, const Identity *tgt, const Node *tgt_node, const JudgeOps *ops) {
        Judgement j;

        if (g_str_equal(src->type, VDPA_MIGRATION_TYPE) || g_str_equal(tgt->type, VDPA_MIGRATION_TYPE))
                return judge_vdpa(src, tgt);

        if (tgt->flags && !(tgt->flags & VFIO_MIGRATION_STOP_COPY))
                return verdict(VERDICT_INCOMPATIBLE, weaker(src->basis, tgt->basis),
                               "the target does not support migration (no STOP_COPY)");
        j = judge_versions(src, tgt, tgt_node, ops);
        if (j.verdict == VERDICT_COMPATIBLE && (src->flags & VFIO_MIGRATION_PRE_COPY) && tgt->flags &&
            !(tgt->flags & VFIO_MIGRATION_PRE_COPY)) {
                char *r = g_strdup_printf("%s; without pre-copy: the target lacks it", j.reason);

                g_free(j.reason);
                j.reason = r;
        }
        judge_iommu(src, tgt, &j);
        return j;
}
