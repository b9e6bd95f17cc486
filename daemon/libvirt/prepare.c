/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "backend/holders.h"
#include "compat/identities.h"
#include "libvirt/domain-xml.h"
#include "libvirt/prepare.h"
#include "log.h"
#include "names.h"
#include "util.h"

#define RECORD_FILE "prepared.conf"

typedef struct Made {
        char *domain;
        uint64_t created_usec;          /* CLOCK_REALTIME: survives a restart */
        bool used;                      /* a running domain held it once */
        bool tried;                     /* removal tried after its timeout */
} Made;

struct Preparer {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        CompatMap *map;
        char *path;
        uint64_t timeout_usec;
        GHashTable *made;               /* mdev UUID -> Made */
        sd_event_source *sweep;
};

static void made_free(Made *m) {
        g_free(m->domain);
        g_free(m);
}

/* ---- the record ---- */

static void save(Preparer *p) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autofree char *data = NULL, *dir = NULL;
        GHashTableIter i;
        gpointer key, value;
        gsize len;
        int r;

        g_hash_table_iter_init(&i, p->made);
        while (g_hash_table_iter_next(&i, &key, &value)) {
                const Made *m = value;
                g_autofree char *group = g_strconcat("Mdev ", (const char *) key, NULL);

                g_key_file_set_string(k, group, "Domain", m->domain);
                g_key_file_set_uint64(k, group, "CreatedUsec", m->created_usec);
                g_key_file_set_boolean(k, group, "Used", m->used);
        }
        data = g_key_file_to_data(k, &len, NULL);
        dir = g_path_get_dirname(p->path);
        (void) g_mkdir_with_parents(dir, 0700);
        r = write_file_atomic(p->path, data, len);
        if (r < 0)
                log_warning_errno(r, "Cannot record prepared mdevs in %s: %m", p->path);
}

static void load(Preparer *p) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_auto(GStrv) groups = NULL;

        if (!g_key_file_load_from_file(k, p->path, G_KEY_FILE_NONE, NULL))
                return;
        groups = g_key_file_get_groups(k, NULL);
        for (char **g = groups; *g; g++) {
                Made *m;

                if (!g_str_has_prefix(*g, "Mdev ") || !name_is_uuid(*g + 5))
                        continue;
                m = g_new0(Made, 1);
                m->domain = g_key_file_get_string(k, *g, "Domain", NULL) ?: g_strdup("");
                m->created_usec = g_key_file_get_uint64(k, *g, "CreatedUsec", NULL);
                m->used = g_key_file_get_boolean(k, *g, "Used", NULL);
                g_hash_table_replace(p->made, g_ascii_strdown(*g + 5, -1), m);
        }
}

/* ---- removing what was made ---- */

/* Not while anything holds it: the kernel's remove would wait for the
 * holder, and the loop with it. */
static bool remove_made(Preparer *p, const char *uuid, const char *releasing) {
        const Device *d = registry_get_device(p->registry, uuid);
        g_autofree char *holder = NULL;
        int r;

        if (!d)
                return true;
        if (d->busy || (*d->domain && g_strcmp0(d->domain, releasing) != 0))
                return false;
        holder = backend_find_holder(p->backend, uuid);
        d = registry_get_device(p->registry, uuid);
        if (*d->held_by)
                return false;
        r = backend_remove_mdev(p->backend, d);
        if (r < 0) {
                log_warning_errno(r, "Cannot remove mdev %s made for an incoming domain: %m", uuid);
                return false;
        }
        log_info("Removed mdev %s, made for an incoming domain that %s", uuid,
                 releasing ? "is gone" : "never came");
        return true;
}

unsigned preparer_release(Preparer *p, const char *domain) {
        GHashTableIter i;
        gpointer key, value;
        unsigned n = 0;

        g_hash_table_iter_init(&i, p->made);
        while (g_hash_table_iter_next(&i, &key, &value))
                if (g_str_equal(((Made *) value)->domain, domain) && remove_made(p, key, domain)) {
                        g_hash_table_iter_remove(&i);
                        n++;
                }
        if (n > 0)
                save(p);
        return n;
}

bool preparer_waiting(const Preparer *p) {
        GHashTableIter i;
        gpointer value;

        if (!p)
                return false;
        g_hash_table_iter_init(&i, p->made);
        while (g_hash_table_iter_next(&i, NULL, &value))
                if (!((Made *) value)->used && !((Made *) value)->tried)
                        return true;
        return false;
}

static int arm_sweep(Preparer *p);

/* Made for a migration that failed before the domain ever ran here. */
static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        Preparer *p = userdata;
        uint64_t now = now_usec(CLOCK_REALTIME);
        GHashTableIter i;
        gpointer key, value;
        bool changed = false;

        g_hash_table_iter_init(&i, p->made);
        while (g_hash_table_iter_next(&i, &key, &value)) {
                Made *m = value;
                const Device *d = registry_get_device(p->registry, key);

                if (d && *d->domain && !m->used)
                        m->used = changed = true;
                if (m->used || now < m->created_usec + p->timeout_usec)
                        continue;
                m->tried = true;
                if (remove_made(p, key, NULL)) {
                        g_hash_table_iter_remove(&i);
                        changed = true;
                }
        }
        if (changed)
                save(p);
        return arm_sweep(p);
}

static int arm_sweep(Preparer *p) {
        uint64_t when = now_usec(CLOCK_MONOTONIC) + MIN(p->timeout_usec, 10 * USEC_PER_SEC);

        if (g_hash_table_size(p->made) == 0)
                return p->sweep ? sd_event_source_set_enabled(p->sweep, SD_EVENT_OFF) : 0;
        if (!p->sweep)
                return sd_event_add_time(p->event, &p->sweep, CLOCK_MONOTONIC, when, USEC_PER_SEC / 10, on_sweep, p);
        (void) sd_event_source_set_time(p->sweep, when);
        return sd_event_source_set_enabled(p->sweep, SD_EVENT_ONESHOT);
}

/* ---- preparing ---- */

static const DomainDeviceMeta *meta_of(const DomainInfo *info, const char *key) {
        for (guint i = 0; info->metadata && i < info->metadata->len; i++)
                if (g_str_equal(((DomainDeviceMeta *) info->metadata->pdata[i])->key, key))
                        return info->metadata->pdata[i];
        return NULL;
}

static Identity *identity_of_meta(const DomainDeviceMeta *m) {
        Identity *id = identities_remote(m->migration_type, m->migration_version);

        id->flags = m->flags;
        free_and_strdup(&id->iommu, m->iommu);
        return id;
}

/* Whether state of the recorded identity may go into the device here. */
static int judge(Preparer *p, const DomainDeviceMeta *m, const char *name, char **ret_error) {
        g_autoptr(Identity) id = identity_of_meta(m);
        const Judgement *j = compat_map_verdict_for(p->map, id, &NODE_OF_DEVICE(name));

        if (!j)
                return errno_message(ret_error, EIO, "%s: has no identity here yet", name);
        if (j->verdict == VERDICT_INCOMPATIBLE)
                return errno_message(ret_error, EPROTONOSUPPORT, "%s: incompatible with the VM's %s %s: %s", name,
                                     m->migration_type, m->migration_version, j->reason);
        if (j->verdict == VERDICT_UNKNOWN)
                return errno_message(ret_error, ENOANO, "%s: compatibility with the VM's %s %s unknown: %s", name,
                                     m->migration_type, m->migration_version, j->reason);
        return 0;
}

/* Asks /proc too: a VM arriving is when it matters who holds a device. */
static int check_free(Preparer *p, const char *name, char **ret_error) {
        g_autofree char *holder = backend_find_holder(p->backend, name);

        if (!*holder)
                return 0;
        return errno_message(ret_error, EBUSY, "%s: held here by %s", name, holder);
}

/* The first type with an instance left that can take the recorded
 * state, best verdict first. */
static const MdevType *type_for(Preparer *p, const DomainDeviceMeta *m) {
        g_autoptr(Identity) id = identity_of_meta(m);
        g_autoptr(GArray) candidates = NULL;

        backend_refresh_types(p->backend);
        candidates = compat_map_candidates(p->map, id, false);
        for (guint i = 0; i < candidates->len; i++) {
                const CompatTarget *t = &g_array_index(candidates, CompatTarget, i);
                const MdevType *type;

                if (t->node.kind != NODE_MDEV_TYPE)
                        continue;
                type = registry_get_type(p->registry, t->node.name);
                if (type && type->available_instances > 0)
                        return type;
        }
        return NULL;
}

static int prepare_mdev(Preparer *p, const DomainInfo *info, const DomainHostdev *h, GPtrArray *made,
                        char **ret_error) {
        const DomainDeviceMeta *m = meta_of(info, h->key);
        const Device *d = registry_get_device(p->registry, h->key);
        const MdevType *type;
        int r;

        if (d) {
                if (d->kind != DEVICE_KIND_MDEV)
                        return errno_message(ret_error, EINVAL, "%s: is a %s device here, not an mdev", h->key,
                                             device_kind_to_string(d->kind));
                r = check_free(p, h->key, ret_error);
                return r < 0 || !m ? r : judge(p, m, h->key, ret_error);
        }
        if (!m)
                return errno_message(ret_error, ENODEV, "%s: no such mdev here, and the VM carries no vfiomig "
                                     "identity to choose its type by", h->key);
        type = type_for(p, m);
        if (!type)
                return errno_message(ret_error, ENODEV, "%s: no mdev type here can take the state of %s %s",
                                     h->key, m->migration_type, m->migration_version);
        r = backend_create_mdev(p->backend, type, h->key);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s: cannot create it as %s: %s", h->key, type->key,
                                     g_strerror(-r));
        g_ptr_array_add(made, g_strdup(h->key));
        log_info("Created mdev %s of type %s for incoming domain %s", h->key, type->key, info->name);
        return 0;
}

static bool in_domain(const DomainInfo *info, const char *key) {
        for (guint i = 0; i < info->hostdevs->len; i++)
                if (g_str_equal(((DomainHostdev *) info->hostdevs->pdata[i])->key, key))
                        return true;
        return false;
}

/* A free PCI function here, compatible with the recorded identity, that
 * the domain does not use already. */
static const char *other_function(Preparer *p, const DomainInfo *info, const DomainDeviceMeta *m,
                                  GPtrArray *chosen) {
        g_autoptr(Identity) id = identity_of_meta(m);
        g_autoptr(GArray) candidates = compat_map_candidates(p->map, id, false);

        for (guint i = 0; i < candidates->len; i++) {
                const CompatTarget *t = &g_array_index(candidates, CompatTarget, i);
                const Device *d;

                if (t->node.kind != NODE_DEVICE)
                        continue;
                d = registry_get_device(p->registry, t->node.name);
                if (d && d->kind == DEVICE_KIND_PCI && !device_is_held(d) && !in_domain(info, d->name) &&
                    !g_ptr_array_find_with_equal_func(chosen, d->name, g_str_equal, NULL))
                        return d->name;
        }
        return NULL;
}

static int prepare_pci(Preparer *p, const DomainInfo *info, const DomainHostdev *h, char **xml,
                       GPtrArray *chosen, char **ret_error) {
        const DomainDeviceMeta *m = meta_of(info, h->key);
        const Device *d = registry_get_device(p->registry, h->key);
        g_autofree char *why = NULL, *rewritten = NULL, *error = NULL;
        const char *other;
        int r = -ENODEV;

        if (d && d->kind == DEVICE_KIND_PCI) {
                r = check_free(p, h->key, &why);
                if (r >= 0 && m)
                        r = judge(p, m, h->key, &why);
                if (r >= 0)
                        return 0;
        }
        if (!why)
                why = g_strdup_printf("%s: no such VFIO function here", h->key);
        other = m ? other_function(p, info, m, chosen) : NULL;
        if (!other)
                return errno_message(ret_error, r == -ENODEV ? ENODEV : -r, "%s%s", why,
                                     m ? ", and no other free function here can take its state"
                                       : ", and the VM carries no vfiomig identity to choose another by");
        r = domain_xml_set_pci_source(*xml, strlen(*xml), h->key, other, &rewritten, &error);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s: cannot use %s instead: %s", h->key, other, error);
        g_free(*xml);
        *xml = g_steal_pointer(&rewritten);
        g_ptr_array_add(chosen, g_strdup(other));
        log_info("Incoming domain %s: %s instead of %s", info->name, other, h->key);
        return 0;
}

static void undo(Preparer *p, GPtrArray *made) {
        for (guint i = 0; i < made->len; i++) {
                const Device *d = registry_get_device(p->registry, made->pdata[i]);
                int r = d ? backend_remove_mdev(p->backend, d) : 0;

                if (r < 0)
                        log_warning_errno(r, "Cannot remove mdev %s again: %m", (const char *) made->pdata[i]);
        }
}

static void record(Preparer *p, const char *domain, GPtrArray *made) {
        for (guint i = 0; i < made->len; i++) {
                Made *m = g_new0(Made, 1);

                m->domain = g_strdup(domain);
                m->created_usec = now_usec(CLOCK_REALTIME);
                g_hash_table_replace(p->made, g_strdup(made->pdata[i]), m);
        }
        if (made->len > 0) {
                save(p);
                (void) arm_sweep(p);
        }
}

int preparer_prepare(Preparer *p, const char *xml, size_t len, bool mdevs_only, char **ret_domain,
                     char **ret_xml, char **ret_error) {
        g_autoptr(DomainInfo) info = NULL;
        g_autoptr(GPtrArray) made = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) chosen = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *out = g_strndup(xml, len), *error = NULL;
        int r;

        r = domain_xml_parse(xml, len, &info, &error);
        if (r < 0)
                return errno_message(ret_error, EBADMSG, "Not a domain's XML: %s", error);
        for (guint i = 0; r >= 0 && i < info->hostdevs->len; i++) {
                const DomainHostdev *h = info->hostdevs->pdata[i];

                if (h->kind == DEVICE_KIND_MDEV)
                        r = prepare_mdev(p, info, h, made, ret_error);
                else if (!mdevs_only)
                        r = prepare_pci(p, info, h, &out, chosen, ret_error);
        }
        if (r < 0) {
                undo(p, made);
                return r;
        }
        record(p, info->name, made);
        *ret_domain = g_strdup(info->name);
        *ret_xml = chosen->len > 0 ? g_steal_pointer(&out) : NULL;
        return 0;
}

int preparer_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, const char *state_dir,
                 uint64_t timeout_usec, Preparer **ret) {
        g_autoptr(Preparer) p = g_new0(Preparer, 1);

        p->event = sd_event_ref(event);
        p->registry = registry;
        p->backend = backend;
        p->map = map;
        p->path = g_build_filename(state_dir, RECORD_FILE, NULL);
        p->timeout_usec = timeout_usec;
        p->made = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) made_free);
        load(p);
        (void) arm_sweep(p);
        *ret = g_steal_pointer(&p);
        return 0;
}

void preparer_free(Preparer *p) {
        if (!p)
                return;
        sd_event_source_disable_unref(p->sweep);
        sd_event_unref(p->event);
        g_hash_table_destroy(p->made);
        g_free(p->path);
        g_free(p);
}
