/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <string.h>

#include "registry.h"
#include "util.h"
#include "vdpa-facet.h"

typedef struct Listener {
        RegistryNotify notify;
        void *userdata;
} Listener;

struct Registry {
        GHashTable *parents;    /* name -> Parent */
        GHashTable *types;      /* key -> MdevType */
        GHashTable *devices;    /* name -> Device */
        GHashTable *instances;  /* type key -> InstanceCount: how many mdevs of that type there are */
        /* The listings, sorted by name or key and shared with their
         * callers: dropped when an entry comes or goes (sorted again by
         * the next listing, not by every event), patched in place when
         * one replaces another. NULL until a listing asks. */
        GPtrArray *device_order, *type_order;
        GArray *listeners;      /* Listener, in the order they subscribed */
};

static const char *const device_kind_names[_DEVICE_KIND_MAX] = {
        [DEVICE_KIND_MDEV] = "mdev",
        [DEVICE_KIND_PCI] = "pci",
        [DEVICE_KIND_VDPA] = "vdpa",
};

const char *device_kind_to_string(DeviceKind k) {
        return k >= 0 && k < _DEVICE_KIND_MAX ? device_kind_names[k] : NULL;
}

DeviceKind device_kind_from_string(const char *s) {
        for (int k = 0; k < _DEVICE_KIND_MAX; k++)
                if (s && strcmp(s, device_kind_names[k]) == 0)
                        return k;
        return _DEVICE_KIND_INVALID;
}

static const char *const migration_support_names[_MIGRATION_SUPPORT_MAX] = {
        [MIGRATION_SUPPORT_UNKNOWN] = "unknown",
        [MIGRATION_SUPPORT_NONE] = "none",
        [MIGRATION_SUPPORT_SUPPORTED] = "supported",
};

const char *migration_support_to_string(MigrationSupport s) {
        return s >= 0 && s < _MIGRATION_SUPPORT_MAX ? migration_support_names[s] : NULL;
}

Parent *parent_new(const char *name) {
        Parent *p = g_new0(Parent, 1);

        p->name = g_strdup(name);
        p->sysfs_path = g_strdup("");
        p->driver = g_strdup("");
        return p;
}

void parent_free(Parent *p) {
        if (!p)
                return;
        g_free(p->name);
        g_free(p->sysfs_path);
        g_free(p->driver);
        g_free(p);
}

char *mdev_type_key(const char *parent, const char *id) {
        return g_strconcat(parent, "/", id, NULL);
}

const char *mdev_type_key_in(char buf[MDEV_TYPE_KEY_BUF], const char *parent, const char *id, char **ret_alloc) {
        size_t p = strlen(parent), i = strlen(id);

        *ret_alloc = NULL;
        if (p + 1 + i >= MDEV_TYPE_KEY_BUF)
                return *ret_alloc = mdev_type_key(parent, id);
        memcpy(buf, parent, p);
        buf[p] = '/';
        memcpy(buf + p + 1, id, i + 1);
        return buf;
}

MdevType *mdev_type_new(const char *parent, const char *id) {
        MdevType *t = g_new0(MdevType, 1);

        t->key = mdev_type_key(parent, id);
        t->parent = g_strdup(parent);
        t->id = g_strdup(id);
        t->name = g_strdup("");
        t->description = g_strdup("");
        t->device_api = g_strdup("");
        t->sysfs_path = g_strdup("");
        t->iommu = g_strdup("");
        t->vdpa = g_strdup("");
        t->vendor_migration_type = g_strdup("");
        t->vendor_migration_version = g_strdup("");
        t->migration_type = g_strdup("");
        t->migration_version = g_strdup("");
        t->migration_basis = g_strdup("");
        return t;
}

char *vdpa_type_id(uint32_t device_id) {
        g_autofree char *class = vdpa_class_to_string(device_id);

        return g_strconcat("vdpa-", class, NULL);
}

void device_set_vdpa(Device *d, const char *facet) {
        VdpaFacet f;

        device_set_string(&d->vdpa, facet);
        device_take_string(&d->mdev_type, vdpa_facet_parse(facet, &f, NULL) >= 0 && f.known
                                                  ? vdpa_type_id(f.device_id) : NULL);
}

MdevType *vdpa_type_new(const char *mgmtdev, uint32_t device_id) {
        g_autofree char *class = vdpa_class_to_string(device_id);
        g_autofree char *id = vdpa_type_id(device_id);
        MdevType *t = mdev_type_new(mgmtdev, id);

        t->kind = DEVICE_KIND_VDPA;
        free_and_strdup(&t->device_api, id);
        g_free(t->name);
        t->name = g_strconcat("vDPA ", class, NULL);
        t->available_instances = UINT_MAX;
        return t;
}

void mdev_type_free(MdevType *t) {
        if (!t)
                return;
        g_free(t->key);
        g_free(t->parent);
        g_free(t->id);
        g_free(t->name);
        g_free(t->description);
        g_free(t->device_api);
        g_free(t->sysfs_path);
        g_free(t->iommu);
        g_free(t->vdpa);
        g_free(t->vendor_migration_type);
        g_free(t->vendor_migration_version);
        g_free(t->migration_type);
        g_free(t->migration_version);
        g_free(t->migration_basis);
        g_free(t);
}

/* Every string field of a Device but its name, so new/free/copy/equal
 * cannot drift apart: those it owns, and those it shares (interned). */
#define DEVICE_OWN_FIELDS(X) X(sysfs_path) X(iommu_group) X(vfio_dev)
#define DEVICE_SHARED_FIELDS(X) \
        X(driver) X(parent) X(mdev_type) X(iommu) X(vdpa) X(vendor_id) X(device_id) \
        X(subsystem_vendor_id) X(subsystem_device_id) X(vendor_migration_type) X(vendor_migration_version) \
        X(migration_type) X(migration_version) X(migration_basis) X(migration_state) X(holder) \
        X(domain) X(held_by)
#define DEVICE_STRING_FIELDS(X) DEVICE_OWN_FIELDS(X) DEVICE_SHARED_FIELDS(X)

/* The empty string, interned once and kept: what most fields hold. It is
 * shared by every device and counted by none, which spares two atomic
 * operations a field and a device. */
static const char *empty_string(void) {
        static char *empty;

        if (g_once_init_enter(&empty))
                g_once_init_leave(&empty, g_ref_string_new_intern(""));
        return empty;
}

static const char *string_ref(const char *s) {
        return *s ? g_ref_string_acquire((char *) s) : s;
}

static void string_unref(const char *s) {
        if (*s)
                g_ref_string_release((char *) s);
}

void device_set_string(const char **field, const char *value) {
        const char *s;

        if (!value)
                value = "";
        if (*field && (*field == value || strcmp(*field, value) == 0))
                return;
        s = *value ? g_ref_string_new_intern(value) : empty_string();
        if (*field)
                string_unref(*field);
        *field = s;
}

void device_take_string(const char **field, char *value) {
        device_set_string(field, value);
        g_free(value);
}

/* What a device's own strings hold until set: not a copy each (three
 * allocations a device, at start-up replaced at once), and never freed. */
static const char unset[] = "";

void device_set_own(const char **field, char *value) {
        if (*field != unset)
                g_free((char *) *field);
        *field = value ?: unset;
}

Device *device_new(const char *name, DeviceKind kind) {
        Device *d = g_new0(Device, 1);
        const char *empty = empty_string();

        d->name = g_strdup(name);
        d->kind = kind;
#define INIT_OWN(f) d->f = unset;
#define INIT_SHARED(f) d->f = empty;
        DEVICE_OWN_FIELDS(INIT_OWN)
        DEVICE_SHARED_FIELDS(INIT_SHARED)
#undef INIT_OWN
#undef INIT_SHARED
        return d;
}

void device_free(Device *d) {
        if (!d)
                return;
        g_free(d->name);
#define FREE_OWN(f) device_set_own(&d->f, NULL);
#define FREE_SHARED(f) string_unref(d->f);
        DEVICE_OWN_FIELDS(FREE_OWN)
        DEVICE_SHARED_FIELDS(FREE_SHARED)
#undef FREE_OWN
#undef FREE_SHARED
        g_free(d);
}

bool device_is_taken(const Device *d) {
        return d->busy || *d->domain;
}

bool device_is_held(const Device *d) {
        return device_is_taken(d) || *d->held_by;
}

char *device_describe_holder(const Device *d) {
        if (d->busy)
                return g_strdup(d->holder);
        if (*d->held_by)
                return g_strdup(d->held_by);
        if (*d->domain)
                return g_strdup_printf("domain %s", d->domain);
        return g_strdup("");
}

Device *device_copy(const Device *d) {
        Device *c = g_new0(Device, 1);

        c->name = g_strdup(d->name);
        c->kind = d->kind;
#define COPY_OWN(f) c->f = *d->f ? g_strdup(d->f) : unset;
#define COPY_SHARED(f) c->f = string_ref(d->f);
        DEVICE_OWN_FIELDS(COPY_OWN)
        DEVICE_SHARED_FIELDS(COPY_SHARED)
#undef COPY_OWN
#undef COPY_SHARED
        c->migration_support = d->migration_support;
        c->migration_flags = d->migration_flags;
        c->busy = d->busy;
        return c;
}

bool device_equal(const Device *a, const Device *b) {
        /* the same text is the same string, nearly always */
#define SAME(f) && (a->f == b->f || strcmp(a->f, b->f) == 0)
        return g_strcmp0(a->name, b->name) == 0 &&
               a->kind == b->kind &&
               a->busy == b->busy &&
               a->migration_support == b->migration_support &&
               a->migration_flags == b->migration_flags
               DEVICE_STRING_FIELDS(SAME);
#undef SAME
}

static bool mdev_type_equal(const MdevType *a, const MdevType *b) {
        return g_str_equal(a->key, b->key) && a->kind == b->kind &&
               g_str_equal(a->vdpa, b->vdpa) &&
               g_str_equal(a->name, b->name) &&
               g_str_equal(a->description, b->description) &&
               g_str_equal(a->device_api, b->device_api) &&
               g_str_equal(a->sysfs_path, b->sysfs_path) &&
               g_str_equal(a->iommu, b->iommu) &&
               g_str_equal(a->vendor_migration_type, b->vendor_migration_type) &&
               g_str_equal(a->vendor_migration_version, b->vendor_migration_version) &&
               a->available_instances == b->available_instances;
}

Registry *registry_new(void) {
        Registry *r = g_new0(Registry, 1);

        r->parents = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) parent_free);
        r->listeners = g_array_new(false, false, sizeof(Listener));
        r->types = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) mdev_type_free);
        r->devices = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) device_free);
        r->instances = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free);
        return r;
}

void registry_free(Registry *r) {
        if (!r)
                return;
        g_clear_pointer(&r->device_order, g_ptr_array_unref);
        g_clear_pointer(&r->type_order, g_ptr_array_unref);
        g_hash_table_destroy(r->devices);
        g_hash_table_destroy(r->instances);
        g_hash_table_destroy(r->types);
        g_hash_table_destroy(r->parents);
        g_array_unref(r->listeners);
        g_free(r);
}

void registry_listen(Registry *r, RegistryNotify notify, void *userdata) {
        g_array_append_val(r->listeners, ((Listener) { notify, userdata }));
}

void registry_unlisten(Registry *r, RegistryNotify notify, void *userdata) {
        for (guint i = 0; i < r->listeners->len; i++) {
                Listener *l = &g_array_index(r->listeners, Listener, i);

                if (l->notify == notify && l->userdata == userdata) {
                        g_array_remove_index(r->listeners, i);
                        return;
                }
        }
}

/* Device and MdevType both start with their key. */
static const char *first_string(const void *entry) {
        return *(const char *const *) entry;
}

/* An entry took the place of another of the same key: the listing
 * keeps its order, so the new pointer goes where the old one was. A
 * caller still holding the listing sees the live entry. */
static void order_replace(GPtrArray **order, const void *old, void *entry) {
        const char *key = first_string(entry);
        guint lo = 0, hi = *order ? (*order)->len : 0;

        while (lo < hi) {
                guint mid = lo + (hi - lo) / 2;
                int c = strcmp(first_string((*order)->pdata[mid]), key);

                if (c == 0 && (*order)->pdata[mid] == old) {
                        (*order)->pdata[mid] = entry;
                        return;
                }
                if (c == 0)
                        break;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        g_clear_pointer(order, g_ptr_array_unref);
}

static void emit(Registry *r, RegistryEvent event, const void *object) {
        for (guint i = 0; i < r->listeners->len; i++) {
                Listener l = g_array_index(r->listeners, Listener, i);

                l.notify(r, event, object, l.userdata);
        }
}

void registry_add_parent(Registry *r, Parent *p) {
        /* Keys point into the value, so replace the whole entry. */
        g_hash_table_replace(r->parents, p->name, p);
}

void registry_remove_parent(Registry *r, const char *name) {
        g_autoptr(GPtrArray) types = registry_list_parent_types(r, name);

        for (guint i = 0; i < types->len; i++)
                registry_remove_type(r, ((MdevType *) types->pdata[i])->key);
        g_hash_table_remove(r->parents, name);
}

static bool set_identity(char **type, char **version, char **basis, const char *t, const char *v, const char *b) {
        if (g_str_equal(*type, t) && g_str_equal(*version, v) && g_str_equal(*basis, b))
                return false;
        free_and_strdup(type, t);
        free_and_strdup(version, v);
        free_and_strdup(basis, b);
        return true;
}

static bool set_device_identity(Device *d, const char *t, const char *v, const char *b) {
        if (g_str_equal(d->migration_type, t) && g_str_equal(d->migration_version, v) &&
            g_str_equal(d->migration_basis, b))
                return false;
        device_set_string(&d->migration_type, t);
        device_set_string(&d->migration_version, v);
        device_set_string(&d->migration_basis, b);
        return true;
}

void registry_add_type(Registry *r, MdevType *t) {
        MdevType *old = g_hash_table_lookup(r->types, t->key);

        if (old && !*t->migration_basis)        /* the identity is derived later */
                set_identity(&t->migration_type, &t->migration_version, &t->migration_basis, old->migration_type,
                             old->migration_version, old->migration_basis);
        if (old && mdev_type_equal(old, t)) {
                mdev_type_free(t);
                return;
        }
        /* while the old entry, which the table frees, is still there */
        if (old)
                order_replace(&r->type_order, old, t);
        else
                g_clear_pointer(&r->type_order, g_ptr_array_unref);
        g_hash_table_replace(r->types, t->key, t);
        emit(r, old ? REGISTRY_TYPE_CHANGED : REGISTRY_TYPE_ADDED, t);
}

void registry_remove_type(Registry *r, const char *key) {
        MdevType *t = g_hash_table_lookup(r->types, key);

        if (!t)
                return;
        g_hash_table_steal(r->types, key);
        g_clear_pointer(&r->type_order, g_ptr_array_unref);
        emit(r, REGISTRY_TYPE_REMOVED, t);
        mdev_type_free(t);
}

void registry_set_available(Registry *r, const char *key, unsigned available) {
        MdevType *t = g_hash_table_lookup(r->types, key);

        if (!t || t->available_instances == available)
                return;
        t->available_instances = available;
        emit(r, REGISTRY_TYPE_CHANGED, t);
}

/* Kept as devices come and go: counting them when asked would scan every
 * device, on every hotplug event of every type. */
typedef struct InstanceCount {
        unsigned n;
        char key[];             /* the table's key too */
} InstanceCount;

static void count_instance(Registry *r, const Device *d, int delta) {
        char buf[MDEV_TYPE_KEY_BUF];
        g_autofree char *alloc = NULL;
        const char *key;
        InstanceCount *c;

        if (d->kind != DEVICE_KIND_MDEV)
                return;
        key = mdev_type_key_in(buf, d->parent, d->mdev_type, &alloc);
        c = g_hash_table_lookup(r->instances, key);
        if (!c) {
                size_t len = strlen(key) + 1;

                c = g_malloc0(sizeof(InstanceCount) + len);
                memcpy(c->key, key, len);
                g_hash_table_insert(r->instances, c->key, c);
        }
        c->n += delta;
        if (c->n == 0)
                g_hash_table_remove(r->instances, key);
}

void registry_add_device(Registry *r, Device *d) {
        Device *old = g_hash_table_lookup(r->devices, d->name);

        if (old) {
                d->busy = old->busy;
                device_set_string(&d->holder, old->holder);
                device_set_string(&d->domain, old->domain);
                device_set_string(&d->held_by, old->held_by);
                /* what was learned holds for the same driver only: a
                 * driver bound anew is asked again */
                if (d->migration_support == MIGRATION_SUPPORT_UNKNOWN && g_str_equal(d->driver, old->driver)) {
                        d->migration_support = old->migration_support;
                        d->migration_flags = old->migration_flags;
                }
                if (!*d->migration_basis)
                        set_device_identity(d, old->migration_type, old->migration_version, old->migration_basis);
                if (!*d->migration_state)
                        device_set_string(&d->migration_state, old->migration_state);
        }
        if (old && device_equal(old, d)) {
                device_free(d);
                return;
        }
        /* while the old entry, which the table frees, is still there */
        if (old) {
                count_instance(r, old, -1);
                order_replace(&r->device_order, old, d);
        } else
                g_clear_pointer(&r->device_order, g_ptr_array_unref);
        count_instance(r, d, +1);
        g_hash_table_replace(r->devices, d->name, d);
        emit(r, old ? REGISTRY_DEVICE_CHANGED : REGISTRY_DEVICE_ADDED, d);
}

bool registry_remove_device(Registry *r, const char *name) {
        Device *d = g_hash_table_lookup(r->devices, name);

        if (!d)
                return false;
        g_hash_table_steal(r->devices, name);
        count_instance(r, d, -1);
        g_clear_pointer(&r->device_order, g_ptr_array_unref);
        emit(r, REGISTRY_DEVICE_REMOVED, d);
        device_free(d);
        return true;
}

void registry_set_device_busy(Registry *r, const char *name, const char *holder) {
        Device *d = g_hash_table_lookup(r->devices, name);

        if (!d || g_str_equal(d->holder, holder ?: ""))
                return;
        d->busy = holder != NULL;
        device_set_string(&d->holder, holder);
        emit(r, REGISTRY_DEVICE_CHANGED, d);
}

static void set_device_string(Registry *r, const char *name, size_t offset, const char *value) {
        Device *d = g_hash_table_lookup(r->devices, name);
        const char **field = d ? G_STRUCT_MEMBER_P(d, offset) : NULL;

        if (!d || g_str_equal(*field, value ?: ""))
                return;
        device_set_string(field, value);
        emit(r, REGISTRY_DEVICE_CHANGED, d);
}

/* A holder found while the device had another domain (that domain's
 * QEMU, named after it) is stale once the domain changes: it would keep
 * the device Busy after its domain stopped. Whoever else still holds it
 * is found again by the next look (an operation's EBUSY, GetDevice()). */
void registry_set_device_domain(Registry *r, const char *name, const char *domain) {
        Device *d = g_hash_table_lookup(r->devices, name);

        if (!d || g_str_equal(d->domain, domain ?: ""))
                return;
        device_set_string(&d->domain, domain);
        device_set_string(&d->held_by, NULL);
        emit(r, REGISTRY_DEVICE_CHANGED, d);
}

void registry_set_device_iommu(Registry *r, const char *name, const char *iommu) {
        set_device_string(r, name, G_STRUCT_OFFSET(Device, iommu), iommu);
}

void registry_set_device_held_by(Registry *r, const char *name, const char *held_by) {
        set_device_string(r, name, G_STRUCT_OFFSET(Device, held_by), held_by);
}

void registry_set_device_state(Registry *r, const char *name, const char *state) {
        Device *d = g_hash_table_lookup(r->devices, name);

        if (!d || g_str_equal(d->migration_state, state))
                return;
        device_set_string(&d->migration_state, state);
        emit(r, REGISTRY_DEVICE_CHANGED, d);
}

void registry_set_device_migration(Registry *r, const char *name, MigrationSupport support, uint32_t flags) {
        Device *d = g_hash_table_lookup(r->devices, name);

        if (support != MIGRATION_SUPPORT_SUPPORTED)
                flags = 0;
        if (!d || (d->migration_support == support && d->migration_flags == flags))
                return;
        d->migration_support = support;
        d->migration_flags = flags;
        emit(r, REGISTRY_DEVICE_CHANGED, d);
}

bool registry_set_identity(Registry *r, const Node *node, const char *type, const char *version, const char *basis) {
        if (node->kind == NODE_MDEV_TYPE) {
                MdevType *t = g_hash_table_lookup(r->types, node->name);

                if (!t || !set_identity(&t->migration_type, &t->migration_version, &t->migration_basis, type,
                                        version, basis))
                        return false;
                emit(r, REGISTRY_TYPE_IDENTITY_CHANGED, t);
        } else {
                Device *d = g_hash_table_lookup(r->devices, node->name);

                if (!d || !set_device_identity(d, type, version, basis))
                        return false;
                emit(r, REGISTRY_DEVICE_IDENTITY_CHANGED, d);
        }
        return true;
}

const Parent *registry_get_parent(Registry *r, const char *name) {
        return g_hash_table_lookup(r->parents, name);
}

const MdevType *registry_get_type(Registry *r, const char *key) {
        return g_hash_table_lookup(r->types, key);
}

const MdevType *registry_find_type(Registry *r, const char *parent, const char *id) {
        char buf[MDEV_TYPE_KEY_BUF];
        g_autofree char *alloc = NULL;

        return registry_get_type(r, mdev_type_key_in(buf, parent, id, &alloc));
}

const Device *registry_get_device(Registry *r, const char *name) {
        return g_hash_table_lookup(r->devices, name);
}

unsigned registry_device_count(Registry *r) {
        return g_hash_table_size(r->devices);
}

static int compare_by_first_string(gconstpointer a, gconstpointer b) {
        return strcmp(first_string(*(void **) a), first_string(*(void **) b));
}

static GPtrArray *sorted_values(GHashTable *h) {
        GPtrArray *a = g_ptr_array_sized_new(g_hash_table_size(h));
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, h);
        while (g_hash_table_iter_next(&i, NULL, &v))
                g_ptr_array_add(a, v);
        g_ptr_array_sort(a, compare_by_first_string);
        return a;
}

static GPtrArray *listing(GPtrArray **order, GHashTable *h) {
        if (!*order)
                *order = sorted_values(h);
        return g_ptr_array_ref(*order);
}

GPtrArray *registry_list_devices(Registry *r) {
        return listing(&r->device_order, r->devices);
}

GPtrArray *registry_list_types(Registry *r) {
        return listing(&r->type_order, r->types);
}

GPtrArray *registry_list_parent_types(Registry *r, const char *parent) {
        GPtrArray *a = g_ptr_array_new();
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, r->types);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (g_str_equal(((MdevType *) v)->parent, parent))
                        g_ptr_array_add(a, v);
        g_ptr_array_sort(a, compare_by_first_string);
        return a;
}

unsigned registry_count_instances(Registry *r, const char *parent, const char *type_id) {
        char buf[MDEV_TYPE_KEY_BUF];
        g_autofree char *alloc = NULL;
        const InstanceCount *c = g_hash_table_lookup(r->instances, mdev_type_key_in(buf, parent, type_id, &alloc));

        return c ? c->n : 0;
}
