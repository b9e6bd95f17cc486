/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "backend/flag-cache.h"

typedef struct Entry {
        MigrationSupport support;
        uint32_t flags;
        GHashTable *members;    /* device names, a set */
} Entry;

struct FlagCache {
        GHashTable *entries;    /* key -> Entry */
        GHashTable *keys;       /* device name -> its key (the entries' own key string) */
};

static void entry_free(Entry *e) {
        g_hash_table_destroy(e->members);
        g_free(e);
}

FlagCache *flag_cache_new(void) {
        FlagCache *c = g_new0(FlagCache, 1);

        c->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) entry_free);
        c->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        return c;
}

void flag_cache_free(FlagCache *c) {
        if (!c)
                return;
        g_hash_table_destroy(c->keys);
        g_hash_table_destroy(c->entries);
        g_free(c);
}

char *flag_cache_key(const Device *d) {
        if (d->kind == DEVICE_KIND_MDEV)
                return g_strjoin("/", "mdev", d->driver, d->parent, d->mdev_type, NULL);
        return g_strjoin("/", "pci", d->driver, d->vendor_id, d->device_id, d->subsystem_vendor_id,
                         d->subsystem_device_id, NULL);
}

bool flag_cache_remove(FlagCache *c, const char *name) {
        const char *key = g_hash_table_lookup(c->keys, name);
        Entry *e;

        if (!key)
                return false;
        e = g_hash_table_lookup(c->entries, key);
        g_hash_table_remove(e->members, name);
        g_hash_table_remove(c->keys, name);
        /* the last one gone: a driver bound again is asked again */
        if (g_hash_table_size(e->members) == 0)
                g_hash_table_remove(c->entries, key);
        return true;
}

void flag_cache_add(FlagCache *c, Device *d) {
        g_autofree char *key = flag_cache_key(d);
        const char *old = g_hash_table_lookup(c->keys, d->name);
        gpointer stored_key = NULL;
        Entry *e;

        if (old && !g_str_equal(old, key))
                flag_cache_remove(c, d->name);
        if (!g_hash_table_lookup_extended(c->entries, key, &stored_key, (gpointer *) &e)) {
                e = g_new0(Entry, 1);
                e->members = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                stored_key = g_strdup(key);
                g_hash_table_insert(c->entries, stored_key, e);
        }
        g_hash_table_add(e->members, g_strdup(d->name));
        g_hash_table_replace(c->keys, g_strdup(d->name), stored_key);
        if (d->migration_support == MIGRATION_SUPPORT_UNKNOWN) {
                d->migration_support = e->support;
                d->migration_flags = e->flags;
        }
}

static int compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

char **flag_cache_learn(FlagCache *c, const char *name, MigrationSupport support, uint32_t flags) {
        const char *key = g_hash_table_lookup(c->keys, name);
        GPtrArray *members;
        GHashTableIter i;
        gpointer member;
        Entry *e;

        if (!key)
                return NULL;
        e = g_hash_table_lookup(c->entries, key);
        e->support = support;
        e->flags = support == MIGRATION_SUPPORT_SUPPORTED ? flags : 0;

        members = g_ptr_array_new();
        g_hash_table_iter_init(&i, e->members);
        while (g_hash_table_iter_next(&i, &member, NULL))
                g_ptr_array_add(members, g_strdup(member));
        g_ptr_array_sort(members, compare_names);
        g_ptr_array_add(members, NULL);
        return (char **) g_ptr_array_free(members, false);
}

MigrationSupport flag_cache_lookup(FlagCache *c, const char *key, uint32_t *ret_flags) {
        Entry *e = g_hash_table_lookup(c->entries, key);

        if (ret_flags)
                *ret_flags = e ? e->flags : 0;
        return e ? e->support : MIGRATION_SUPPORT_UNKNOWN;
}

unsigned flag_cache_size(FlagCache *c) {
        return g_hash_table_size(c->entries);
}
