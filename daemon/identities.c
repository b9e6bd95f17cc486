/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>

#include "compat-map.h"
#include "config.h"
#include "identities.h"
#include "log.h"
#include "util.h"
#include "probe.h"

char *identities_type_node(const char *key) {
        return g_strconcat("type:", key, NULL);
}

Identity *identities_remote(const char *type, const char *version) {
        return identity_new(type, version, version && *version ? BASIS_VENDOR : BASIS_TYPE_MATCH);
}

static int judge_vendor(void *userdata, const char *node, const char *version) {
        Manager *m = userdata;

        if (!m->source->ops->vendor_judge)
                return -EOPNOTSUPP;
        return m->source->ops->vendor_judge(m->source, node, version);
}

static bool judge_probe(void *userdata, const Identity *source, const Identity *target, Judgement *ret) {
        Manager *m = userdata;

        return probe_cache_lookup(m->probes, source, target, ret);
}

/* Once per identity: a re-derivation that changes nothing stays quiet. */
static void warn(const char *node, char *warning, bool changed) {
        if (warning && changed)
                log_warning("%s: %s", node, warning);
        g_free(warning);
}

/* Publishes a node's identity on its object and in the map. */
static void apply(Manager *m, const char *node, Identity *id, char *warning) {
        bool changed;

        m->setting_identity = true;
        changed = registry_set_identity(m->registry, node, id->type, id->version, basis_to_string(id->basis));
        m->setting_identity = false;
        warn(node, warning, changed);
        compat_map_set(m->compat, node, id);
}

static void update_device(Manager *m, const Device *d) {
        const MdevType *t = d->kind == DEVICE_KIND_MDEV ? registry_find_type(m->registry, d->parent, d->mdev_type)
                                                        : NULL;
        /* an mdev reads its type's attributes unless it has its own */
        bool own = *d->vendor_migration_version || *d->vendor_migration_type;
        const char *vtype = own || !t ? d->vendor_migration_type : t->vendor_migration_type;
        const char *vversion = own || !t ? d->vendor_migration_version : t->vendor_migration_version;
        char *warning = NULL;
        Identity *id;

        id = identity_of_device(d, *vtype ? vtype : NULL, *vversion ? vversion : NULL, m->rules, &warning);
        apply(m, d->name, id, warning);
}

static void update_type(Manager *m, const MdevType *t) {
        const Parent *p = registry_get_parent(m->registry, t->parent);
        g_autofree char *node = identities_type_node(t->key);
        char *warning = NULL;
        Identity *id;

        id = identity_of_type(t, p ? p->driver : "", *t->vendor_migration_type ? t->vendor_migration_type : NULL,
                              *t->vendor_migration_version ? t->vendor_migration_version : NULL, m->rules,
                              &warning);
        apply(m, node, id, warning);
}

void identities_on_registry(Manager *m, RegistryEvent event, const void *object) {
        g_autofree char *node = NULL;

        if (!m->compat || m->setting_identity)
                return;
        switch (event) {
        case REGISTRY_DEVICE_ADDED:
        case REGISTRY_DEVICE_CHANGED:
                update_device(m, object);
                break;
        case REGISTRY_DEVICE_REMOVED:
                compat_map_remove(m->compat, ((const Device *) object)->name);
                break;
        case REGISTRY_TYPE_ADDED:
        case REGISTRY_TYPE_CHANGED:
                update_type(m, object);
                break;
        case REGISTRY_TYPE_REMOVED:
                node = identities_type_node(((const MdevType *) object)->key);
                compat_map_remove(m->compat, node);
                break;
        }
}

int identities_start(Manager *m) {
        const char *const default_dirs[] = { VFIOMIG_RULES_DIR_VENDOR, VFIOMIG_RULES_DIR_LOCAL, NULL };
        JudgeOps ops = { judge_vendor, judge_probe, m };
        g_autoptr(GPtrArray) devices = NULL, types = NULL;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        CompatMapStats stats;
        unsigned files;

        m->rules = rules_new();
        files = rules_load_dirs(m->rules, m->rules_dirs ? (const char *const *) m->rules_dirs : default_dirs);
        m->compat = compat_map_new(&ops);

        /* types first: an mdev's identity may come from its type's attributes */
        types = registry_list_types(m->registry);
        for (guint i = 0; i < types->len; i++)
                update_type(m, types->pdata[i]);
        devices = registry_list_devices(m->registry);
        for (guint i = 0; i < devices->len; i++)
                update_device(m, devices->pdata[i]);

        compat_map_stats(m->compat, &stats);
        m->compat_build_usec = now_usec(CLOCK_MONOTONIC) - t0;
        log_info("Compatibility map: %u nodes in %u classes, %" PRIu64 " verdicts (%" PRIu64
                 " asked of drivers), %u rules from %u files, built in %" PRIu64 " us",
                 stats.nodes, stats.classes, stats.verdicts, stats.vendor_checks, rules_count(m->rules), files,
                 m->compat_build_usec);
        return 0;
}

void identities_stop(Manager *m) {
        g_clear_pointer(&m->compat, compat_map_free);
        g_clear_pointer(&m->rules, rules_free);
}
