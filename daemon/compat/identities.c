/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>

#include "compat/compat-map.h"
#include "config.h"
#include "compat/identities.h"
#include "log.h"
#include "util.h"
#include "compat/probe-cache.h"
#include "compat/rules.h"

struct IdentitySync {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        ProbeCache *probes;
        Rules *rules;
        CompatMap *map;
        unsigned rules_files;
        uint64_t build_usec;            /* the first build, at start */
        uint64_t last_derive_usec;      /* CPU time of the last deferred derivation */
        GHashTable *devices, *types;    /* names and type keys waiting to be derived */
        sd_event_source *defer;
};

Identity *identities_remote(const char *type, const char *version) {
        return identity_new(type, version, version && *version ? BASIS_VENDOR : BASIS_TYPE_MATCH);
}

static int judge_vendor(void *userdata, const Node *node, const char *version) {
        IdentitySync *sync = userdata;

        return backend_vendor_judge(sync->backend, node, version);
}

static bool judge_probe(void *userdata, const Identity *source, const Identity *target, Judgement *ret) {
        IdentitySync *sync = userdata;

        return probe_cache_lookup(sync->probes, source, target, ret);
}

/* Once per identity: a re-derivation that changes nothing stays quiet. */
static void warn(const Node *node, char *warning, bool changed) {
        if (warning && changed)
                log_warning("%s%s: %s", node->kind == NODE_MDEV_TYPE ? "mdev type " : "", node->name, warning);
        g_free(warning);
}

/* Publishes a node's identity on its object and in the map. */
static void apply(IdentitySync *sync, const Node *node, const Identity *id, char *warning) {
        bool changed;

        changed = registry_set_identity(sync->registry, node, id->type, id->version, basis_to_string(id->basis));
        warn(node, warning, changed);
        compat_map_set_view(sync->map, node, id);
}

static void update_device(IdentitySync *sync, const Device *d) {
        const MdevType *t = d->kind == DEVICE_KIND_MDEV ? registry_find_type(sync->registry, d->parent, d->mdev_type)
                                                        : NULL;
        /* an mdev reads its type's attributes unless it has its own */
        bool own = *d->vendor_migration_version || *d->vendor_migration_type;
        const char *vtype = own || !t ? d->vendor_migration_type : t->vendor_migration_type;
        const char *vversion = own || !t ? d->vendor_migration_version : t->vendor_migration_version;
        g_autofree char *scratch = NULL;
        char *warning = NULL;
        Identity id;

        identity_view_of_device(d, *vtype ? vtype : NULL, *vversion ? vversion : NULL, sync->rules, &id, &scratch,
                                &warning);
        apply(sync, &NODE_OF_DEVICE(d->name), &id, warning);
}

static void update_type(IdentitySync *sync, const MdevType *t) {
        const Parent *p = registry_get_parent(sync->registry, t->parent);
        g_autoptr(Identity) id = NULL;
        char *warning = NULL;

        id = identity_of_type(t, p ? p->driver : "", *t->vendor_migration_type ? t->vendor_migration_type : NULL,
                              *t->vendor_migration_version ? t->vendor_migration_version : NULL, sync->rules,
                              &warning);
        apply(sync, &NODE_OF_TYPE(t->key), id, warning);
}

/* What is still in the registry when we get to it: a node removed
 * meanwhile has left the map already. Types first, as an mdev's identity
 * may come from its type's attributes. */
static int on_defer(sd_event_source *s, void *userdata) {
        IdentitySync *sync = userdata;
        g_autoptr(GHashTable) devices = g_steal_pointer(&sync->devices), types = g_steal_pointer(&sync->types);
        uint64_t t0 = now_usec(CLOCK_THREAD_CPUTIME_ID);
        GHashTableIter i;
        gpointer key;

        sync->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        sync->types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_iter_init(&i, types);
        while (g_hash_table_iter_next(&i, &key, NULL)) {
                const MdevType *t = registry_get_type(sync->registry, key);

                if (t)
                        update_type(sync, t);
        }
        g_hash_table_iter_init(&i, devices);
        while (g_hash_table_iter_next(&i, &key, NULL)) {
                const Device *d = registry_get_device(sync->registry, key);

                if (d)
                        update_device(sync, d);
        }
        sync->last_derive_usec = now_usec(CLOCK_THREAD_CPUTIME_ID) - t0;
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static void queue(IdentitySync *sync, GHashTable *set, const char *name) {
        g_hash_table_add(set, g_strdup(name));
        (void) sd_event_source_set_enabled(sync->defer, SD_EVENT_ONESHOT);
}

static void on_registry(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        IdentitySync *sync = userdata;
        const Device *d = object;
        const MdevType *t = object;

        switch (event) {
        case REGISTRY_DEVICE_ADDED:
        case REGISTRY_DEVICE_CHANGED:
                queue(sync, sync->devices, d->name);
                break;
        case REGISTRY_DEVICE_REMOVED:
                g_hash_table_remove(sync->devices, d->name);
                compat_map_remove(sync->map, &NODE_OF_DEVICE(d->name));
                break;
        case REGISTRY_TYPE_ADDED:
        case REGISTRY_TYPE_CHANGED:
                queue(sync, sync->types, t->key);
                break;
        case REGISTRY_TYPE_REMOVED:
                g_hash_table_remove(sync->types, t->key);
                compat_map_remove(sync->map, &NODE_OF_TYPE(t->key));
                break;
        case REGISTRY_DEVICE_IDENTITY_CHANGED:
        case REGISTRY_TYPE_IDENTITY_CHANGED:
                break;          /* ours */
        }
}

void identities_free(IdentitySync *sync) {
        if (!sync)
                return;
        registry_unlisten(sync->registry, on_registry, sync);
        sd_event_source_disable_unref(sync->defer);
        sd_event_unref(sync->event);
        g_hash_table_unref(sync->devices);
        g_hash_table_unref(sync->types);
        compat_map_free(sync->map);
        rules_free(sync->rules);
        g_free(sync);
}

int identities_new(sd_event *event, Registry *registry, Backend *backend, ProbeCache *probes,
                   const char *const *rules_dirs, IdentitySync **ret) {
        const char *const default_dirs[] = { VFIOMIG_RULES_DIR_VENDOR, VFIOMIG_RULES_DIR_LOCAL, NULL };
        g_autoptr(IdentitySync) sync = g_new0(IdentitySync, 1);
        int r;

        sync->event = sd_event_ref(event);
        sync->registry = registry;
        sync->backend = backend;
        sync->probes = probes;
        sync->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        sync->types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        sync->rules = rules_new();
        sync->rules_files = rules_load_dirs(sync->rules, rules_dirs ? rules_dirs : default_dirs);
        sync->map = compat_map_new(&(JudgeOps) { judge_vendor, judge_probe, sync });
        r = sd_event_add_defer(event, &sync->defer, on_defer, sync);
        /* before the bus (SD_EVENT_PRIORITY_NORMAL) reads the next call */
        if (r >= 0)
                r = sd_event_source_set_priority(sync->defer, SD_EVENT_PRIORITY_NORMAL - 1);
        if (r >= 0)
                r = sd_event_source_set_enabled(sync->defer, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Cannot follow registry changes: %m");
        *ret = g_steal_pointer(&sync);
        return 0;
}

void identities_start(IdentitySync *sync) {
        g_autoptr(GPtrArray) devices = NULL, types = NULL;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        CompatMapStats stats;

        /* types first: an mdev's identity may come from its type's attributes */
        types = registry_list_types(sync->registry);
        for (guint i = 0; i < types->len; i++)
                update_type(sync, types->pdata[i]);
        devices = registry_list_devices(sync->registry);
        for (guint i = 0; i < devices->len; i++)
                update_device(sync, devices->pdata[i]);

        compat_map_stats(sync->map, &stats);
        sync->build_usec = now_usec(CLOCK_MONOTONIC) - t0;
        log_info("Compatibility map: %u nodes in %u classes, %" PRIu64 " verdicts (%" PRIu64
                 " asked of drivers), %u rules from %u files, built in %" PRIu64 " us",
                 stats.nodes, stats.classes, stats.verdicts, stats.vendor_checks, rules_count(sync->rules),
                 sync->rules_files, sync->build_usec);
        registry_listen(sync->registry, on_registry, sync);
}

CompatMap *identities_map(IdentitySync *sync) {
        return sync->map;
}

uint64_t identities_build_usec(IdentitySync *sync) {
        return sync->build_usec;
}

uint64_t identities_last_derive_usec(IdentitySync *sync) {
        return sync->last_derive_usec;
}
