/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "conffile.h"
#include "log.h"
#include "fsm.h"
#include "heap.h"
#include "iommu-facet.h"
#include "names.h"
#include "backend/testbed.h"
#include "util.h"
#include "vdpa-facet.h"
#include "vfio-uapi.h"

/* Simulated parameters the registry does not model: what a new instance
 * of a type gets, and (for later use by simulated devices) state sizes. */
typedef struct TestbedType {
        unsigned max_instances;
        uint32_t migration_flags;
        uint64_t state_size;
        uint64_t dirty_rate;
        char *vendor_type, *vendor_version;
        char **accept;
} TestbedType;

static void testbed_type_free(TestbedType *tt) {
        g_free(tt->vendor_type);
        g_free(tt->vendor_version);
        g_strfreev(tt->accept);
        g_free(tt);
}

typedef struct Testbed {
        Backend backend;
        GHashTable *types;              /* type key -> TestbedType */
        GHashTable *sims;               /* device name -> SimDevice */
        GHashTable *accept;             /* device name -> versions its simulated driver takes */
        GHashTable *parent_iommu;       /* parent name -> the IOMMU facet of its mdevs */
        char *persist_dir;
        char *node_dir;                 /* persist_dir/dev, the devices' nodes; NULL: none */
        int node_dir_fd;
        /* While the file is read: the nodes and persisted states a daemon
         * before this one left, so that the devices of the file cost no
         * system call each (NULL later: every device asks) */
        GHashTable *found_nodes, *found_states;
        GStringChunk *found_names;
        unsigned next_iommu_group;
        uint64_t last_hotplug_usec;     /* main thread CPU time of the last create or remove */
} Testbed;

static const char *const parent_keys[] = { "Driver", "Iommu", NULL };
static const char *const vdpa_mgmt_keys[] = { "Driver", "Classes", "SupportedFeatures", NULL };
static const char *const vdpa_device_keys[] = { "Kind", "Parent", "Driver", "Vdpa", NULL };
static const char *const type_keys[] = {
        "Name", "Description", "DeviceApi", "MaxInstances", "MigrationFlags", "StateSize", "DirtyRate",
        "MigrationType", "MigrationVersion", "AcceptVersions", NULL
};
static const char *const device_keys[] = {
        "Kind", "Parent", "Type", "Driver", "Vendor", "Device", "SubsystemVendor",
        "SubsystemDevice", "IommuGroup", "MigrationFlags", "FlagsKnown", "StateSize", "DirtyRate", "Fault",
        "VendorTag", "MigrationType", "MigrationVersion", "AcceptVersions", "Iommu", NULL
};

#define DEFAULT_STATE_SIZE (64 * 1024)
#define FIRST_SYNTHETIC_IOMMU_GROUP 100

/* What a parsed file adds, held back until the whole file is valid. */
typedef struct Parsed {
        GPtrArray *parents, *types, *devices;
} Parsed;

static void parsed_clear(Parsed *p) {
        g_clear_pointer(&p->parents, g_ptr_array_unref);
        g_clear_pointer(&p->types, g_ptr_array_unref);
        g_clear_pointer(&p->devices, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Parsed, parsed_clear);

/* A group number as its decimal text, without printf's machinery:
 * start-up formats one for every device. */
static char *group_string(uint64_t n) {
        char buf[24], *p = buf + sizeof(buf);

        *--p = '\0';
        do
                *--p = (char) ('0' + n % 10);
        while ((n /= 10) > 0);
        return g_strdup(p);
}

/* A size up to max: the simulation's bounds (testbed-device.h). */
static bool get_bounded_size(ConfFile *c, const char *group, const char *key, uint64_t def, uint64_t max,
                             uint64_t *ret, GError **error) {
        uint64_t v;

        if (!conf_file_get_size(c, group, key, def, &v, error))
                return false;
        if (v > max)
                return conf_file_error(c, error, group, key, "%" PRIu64 " exceeds the maximum of %" PRIu64 "G",
                                       v, max >> 30);
        *ret = v;
        return true;
}

static bool get_flags(ConfFile *c, const char *group, uint32_t def, uint32_t *ret, GError **error) {
        g_autofree char *copy = NULL;
        const char *s;

        if (!conf_file_get_string_view(c, group, "MigrationFlags", "", &s, &copy, error))
                return false;
        if (!*s) {
                *ret = def;
                return true;
        }
        if (migration_flags_from_string(s, ret) < 0)
                return conf_file_error(c, error, group, "MigrationFlags",
                                       "'%s' is not a list of stop-copy, p2p, pre-copy", s);
        return true;
}

/* A keyfile value into one of a Device's strings, copied by neither. */
static bool get_device_string(ConfFile *c, const char *group, const char *key, const char *def,
                              const char **field, GError **error) {
        g_autofree char *copy = NULL;
        const char *v;

        if (!conf_file_get_string_view(c, group, key, def, &v, &copy, error))
                return false;
        device_set_string(field, v);
        return true;
}

/* MigrationType=, MigrationVersion= (what the simulated driver's
 * attributes read) and AcceptVersions= (which versions a write into its
 * migration_version accepts; its own by default). */
static bool parse_vendor(ConfFile *c, const char *group, char **type, char **version,
                         const char *const *def_accept, char ***ret_accept, GError **error) {
        g_auto(GStrv) accept = conf_file_get_string_list(c, group, "AcceptVersions", NULL);

        /* absent, each keeps what it holds */
        if ((conf_file_has_key(c, group, "MigrationType") &&
             !conf_file_get_string(c, group, "MigrationType", NULL, type, error)) ||
            (conf_file_has_key(c, group, "MigrationVersion") &&
             !conf_file_get_string(c, group, "MigrationVersion", NULL, version, error)))
                return false;
        if (!accept && def_accept && !conf_file_has_key(c, group, "MigrationVersion"))
                accept = g_strdupv((char **) def_accept);
        if (!accept && **version)
                accept = g_strdupv((char *[]) { *version, NULL });
        for (char **a = accept; a && *a; a++)
                g_strstrip(*a);
        *ret_accept = g_steal_pointer(&accept);
        return true;
}

/* A device's own vendor attributes and the versions its driver takes.
 * An mdev that has neither AcceptVersions= nor MigrationVersion= of its own
 * takes what its type takes, found there when asked (testbed_vendor_judge()),
 * not copied for every instance. */
static bool parse_device_vendor(Testbed *tb, ConfFile *c, const char *group, Device *d, bool mdev,
                                GError **error) {
        g_autofree char *type = NULL, *version = NULL;
        char **accept = NULL;

        /* most instances: their type's, which parse_mdev() gave them */
        if (mdev && !conf_file_has_key(c, group, "MigrationType") && !conf_file_has_key(c, group, "MigrationVersion") &&
            !conf_file_has_key(c, group, "AcceptVersions"))
                return true;
        type = g_strdup(d->vendor_migration_type);
        version = g_strdup(d->vendor_migration_version);
        if (!parse_vendor(c, group, &type, &version, NULL, &accept, error))
                return false;
        device_set_string(&d->vendor_migration_type, type);
        device_set_string(&d->vendor_migration_version, version);
        if (mdev && !conf_file_has_key(c, group, "AcceptVersions") && !conf_file_has_key(c, group, "MigrationVersion"))
                g_clear_pointer(&accept, g_strfreev);
        if (accept)
                g_hash_table_replace(tb->accept, g_strdup(d->name), accept);
        return true;
}

/* Iommu=: the IOMMU facet's text form, as the kernel backend would
 * derive it; "" (not known) when absent. */
static bool get_iommu(ConfFile *c, const char *group, char **ret, GError **error) {
        g_autofree char *text = NULL, *why = NULL;

        if (!conf_file_get_string(c, group, "Iommu", "", &text, error))
                return false;
        g_free(*ret);
        *ret = NULL;
        if (iommu_facet_canonicalize(text, ret, &why) < 0)
                return conf_file_error(c, error, group, "Iommu", "%s", why);
        return true;
}

static bool parse_parent(Testbed *tb, ConfFile *c, const char *group, const char *name,
                         Parsed *out, GError **error) {
        g_autoptr(Parent) p = NULL;
        g_autofree char *iommu = NULL;

        if (!name_is_sysfs_component(name))
                return conf_file_error(c, error, group, NULL, "'%s' is not a valid device name", name);
        if (!conf_file_check_keys(c, group, parent_keys, error))
                return false;
        p = parent_new(name);
        if (!conf_file_get_string(c, group, "Driver", NULL, &p->driver, error) || !get_iommu(c, group, &iommu, error))
                return false;
        g_hash_table_replace(tb->parent_iommu, g_strdup(name), g_steal_pointer(&iommu));
        g_ptr_array_add(out->parents, g_steal_pointer(&p));
        return true;
}

/* [VdpaMgmt NAME]: a vDPA management device, a parent whose types are
 * the classes it makes; what they can offer is SupportedFeatures=, and
 * their config is chosen when a device is made. */
static bool parse_vdpa_mgmt(Testbed *tb, ConfFile *c, const char *group, const char *name, Parsed *out,
                            GError **error) {
        g_auto(GStrv) classes = NULL;
        g_autoptr(Parent) p = NULL;
        g_autofree char *features = NULL;
        VdpaFacet f = { .known = true, .config_any = true };

        if (!name_is_sysfs_component(name))
                return conf_file_error(c, error, group, NULL, "'%s' is not a valid device name", name);
        if (!conf_file_check_keys(c, group, vdpa_mgmt_keys, error))
                return false;
        p = parent_new(name);
        if (!conf_file_get_string(c, group, "Driver", name, &p->driver, error) ||
            !conf_file_get_string(c, group, "SupportedFeatures", "", &features, error))
                return false;
        if (*features && !(f.has_offered = g_str_has_prefix(features, "0x") &&
                                           g_ascii_string_to_unsigned(features + 2, 16, 0, UINT64_MAX, &f.offered, NULL)))
                return conf_file_error(c, error, group, "SupportedFeatures", "'%s' is not a hex feature mask (0x...)",
                                       features);
        classes = conf_file_get_string_list(c, group, "Classes", NULL);
        if (!classes || !*classes)
                return conf_file_error(c, error, group, "Classes", "missing: the virtio classes it makes (net, blk, ...)");
        for (char **k = classes; *k; k++) {
                g_autoptr(MdevType) t = NULL;

                f.device_id = vdpa_class_from_string(g_strstrip(*k));
                if (!f.device_id)
                        return conf_file_error(c, error, group, "Classes", "'%s' is not a virtio class", *k);
                t = vdpa_type_new(name, f.device_id);
                g_free(t->vdpa);
                t->vdpa = vdpa_facet_format(&f);
                g_ptr_array_add(out->types, g_steal_pointer(&t));
        }
        g_ptr_array_add(out->parents, g_steal_pointer(&p));
        return true;
}

static bool parse_type(Testbed *tb, ConfFile *c, const char *group, const char *key,
                       Parsed *out, GError **error) {
        g_autofree char *parent = NULL, *parent_group = NULL;
        g_autoptr(MdevType) t = NULL;
        TestbedType *tt;
        const char *slash = strchr(key, '/');
        uint64_t max;

        if (!slash || !name_is_sysfs_component(slash + 1))
                return conf_file_error(c, error, group, NULL, "expected [Type PARENT/TYPE-ID]");
        parent = g_strndup(key, slash - key);
        parent_group = g_strconcat("Parent ", parent, NULL);
        if (!conf_file_has_group(c, parent_group))
                return conf_file_error(c, error, group, NULL, "no [Parent %s] section", parent);
        if (!conf_file_check_keys(c, group, type_keys, error))
                return false;

        t = mdev_type_new(parent, slash + 1);
        free_and_strdup(&t->iommu, g_hash_table_lookup(tb->parent_iommu, parent));
        tt = g_new0(TestbedType, 1);
        tt->vendor_type = g_strdup("");
        tt->vendor_version = g_strdup("");
        g_hash_table_insert(tb->types, g_strdup(t->key), tt);
        if (!conf_file_get_string(c, group, "Name", slash + 1, &t->name, error) ||
            !conf_file_get_string(c, group, "Description", "", &t->description, error) ||
            !conf_file_get_string(c, group, "DeviceApi", "vfio-pci", &t->device_api, error) ||
            !conf_file_get_uint64(c, group, "MaxInstances", 1, 1, 65536, &max, error) ||
            !get_flags(c, group, 0, &tt->migration_flags, error) ||
            !get_bounded_size(c, group, "StateSize", DEFAULT_STATE_SIZE, SIM_STATE_SIZE_MAX, &tt->state_size, error) ||
            !get_bounded_size(c, group, "DirtyRate", 0, SIM_DIRTY_RATE_MAX, &tt->dirty_rate, error))
                return false;
        if (!parse_vendor(c, group, &tt->vendor_type, &tt->vendor_version, NULL, &tt->accept, error))
                return false;
        free_and_strdup(&t->vendor_migration_type, tt->vendor_type);
        free_and_strdup(&t->vendor_migration_version, tt->vendor_version);
        tt->max_instances = (unsigned) max;
        g_ptr_array_add(out->types, g_steal_pointer(&t));
        return true;
}

static bool parse_mdev(Testbed *tb, ConfFile *c, const char *group, Device *d, SimConfig *sim,
                       GError **error) {
        const TestbedType *tt;
        g_autofree char *alloc = NULL;
        char buf[MDEV_TYPE_KEY_BUF];
        const char *key;

        if (!get_device_string(c, group, "Parent", NULL, &d->parent, error) ||
            !get_device_string(c, group, "Type", NULL, &d->mdev_type, error))
                return false;
        key = mdev_type_key_in(buf, d->parent, d->mdev_type, &alloc);
        tt = g_hash_table_lookup(tb->types, key);
        if (!tt)
                return conf_file_error(c, error, group, "Type", "no [Type %s] section", key);
        sim->state_size = tt->state_size;
        sim->dirty_rate = tt->dirty_rate;
        device_set_string(&d->iommu, g_hash_table_lookup(tb->parent_iommu, d->parent));
        /* an instance reads its type's attributes unless it has its own */
        device_set_string(&d->vendor_migration_type, tt->vendor_type);
        device_set_string(&d->vendor_migration_version, tt->vendor_version);
        if (!parse_device_vendor(tb, c, group, d, true, error))
                return false;
        return get_flags(c, group, tt->migration_flags, &d->migration_flags, error);
}

static bool parse_pci(Testbed *tb, ConfFile *c, const char *group, Device *d, GError **error) {
        static const struct { const char *key; size_t offset; } ids[] = {
                { "Vendor", G_STRUCT_OFFSET(Device, vendor_id) },
                { "Device", G_STRUCT_OFFSET(Device, device_id) },
                { "SubsystemVendor", G_STRUCT_OFFSET(Device, subsystem_vendor_id) },
                { "SubsystemDevice", G_STRUCT_OFFSET(Device, subsystem_device_id) },
        };
        g_autofree char *iommu = NULL;

        if (!name_is_pci_address(d->name))
                return conf_file_error(c, error, group, NULL, "a pci device must be named by its PCI address");
        if (!parse_device_vendor(tb, c, group, d, false, error))
                return false;
        if (!get_device_string(c, group, "Parent", "", &d->parent, error) || !get_iommu(c, group, &iommu, error))
                return false;
        device_set_string(&d->iommu, iommu);
        for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
                const char **field = G_STRUCT_MEMBER_P(d, ids[i].offset);
                uint64_t v;

                if (!conf_file_get_uint64(c, group, ids[i].key, 0, 0, 0xffff, &v, error))
                        return false;
                device_take_string(field, g_strdup_printf("0x%04" G_GINT64_MODIFIER "x", v));
        }
        return get_flags(c, group, 0, &d->migration_flags, error);
}

/* A migrating device accepts state only from its own kind: the mdev type,
 * or the PCI function's driver and IDs (what mtty's header check does). */
static char *sim_tag(const Device *d) {
        if (d->kind == DEVICE_KIND_MDEV)
                return g_strconcat("mdev:", d->mdev_type, NULL);
        return g_strdup_printf("pci:%s:%s:%s", d->driver, d->vendor_id, d->device_id);
}

/* The names in dir, those ending in suffix without it: one pass over
 * the directory, not one look per device. */
static GHashTable *list_dir(const char *dir, const char *suffix, GStringChunk *chunk) {
        GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        size_t slen = suffix ? strlen(suffix) : 0;
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                size_t len = strlen(n);

                if (len > slen && (!suffix || g_str_has_suffix(n, suffix)))
                        g_hash_table_add(names, g_string_chunk_insert_len(chunk, n, (gssize) (len - slen)));
        }
        return names;
}

/* The nodes and states a daemon before this one left: looked up once. */
static void find_leftovers(Testbed *tb) {
        if (!tb->persist_dir)
                return;
        tb->node_dir = g_build_filename(tb->persist_dir, "dev", NULL);
        if (g_mkdir_with_parents(tb->node_dir, 0700) < 0 ||
            (tb->node_dir_fd = open(tb->node_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
                log_warning("Cannot make %s, the testbed's device nodes: %m", tb->node_dir);
                g_clear_pointer(&tb->node_dir, g_free);
                return;
        }
        tb->found_names = g_string_chunk_new(4096);
        tb->found_nodes = list_dir(tb->node_dir, NULL, tb->found_names);
        tb->found_states = list_dir(tb->persist_dir, ".sim", tb->found_names);
}

static void forget_leftovers(Testbed *tb) {
        g_clear_pointer(&tb->found_nodes, g_hash_table_unref);
        g_clear_pointer(&tb->found_states, g_hash_table_unref);
        if (tb->found_names)
                g_string_chunk_free(g_steal_pointer(&tb->found_names));
}

/* Each simulated device gets a file that plays its VFIO node (the cdev,
 * one per device): whoever holds it locked holds the device. */
static void add_node(Testbed *tb, SimDevice *dev, Device *d) {
        int fd;

        if (!tb->node_dir)
                return;
        if (!tb->found_nodes || !g_hash_table_contains(tb->found_nodes, d->name)) {
                fd = openat(tb->node_dir_fd, d->name, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0) {
                        log_warning("%s: cannot make its node in %s: %m", d->name, tb->node_dir);
                        return;
                }
                close(fd);
        }
        sim_device_set_node_dir(dev, tb->node_dir);
        device_set_own(&d->vfio_dev, g_strconcat(tb->node_dir, "/", d->name, NULL));
}

static bool add_sim(Testbed *tb, ConfFile *c, const char *group, Device *d, SimConfig *sim,
                    GError **error) {
        g_autofree char *tag = sim_tag(d);
        g_auto(GStrv) faults = NULL;
        SimDevice *dev;

        /* VendorTag= plays a driver that refuses data its identity promised
         * to take (a firmware mismatch, say). */
        if (c && conf_file_has_key(c, group, "VendorTag") &&
            !conf_file_get_string(c, group, "VendorTag", NULL, &tag, error))
                return false;
        sim->flags = d->migration_flags;
        sim->tag = tag;
        /* what the keyfile says is known from the start, as the kernel
         * would answer it: no STOP_COPY is no migration */
        d->migration_support = d->migration_flags & VFIO_MIGRATION_STOP_COPY ? MIGRATION_SUPPORT_SUPPORTED
                                                                             : MIGRATION_SUPPORT_NONE;
        if (d->migration_support != MIGRATION_SUPPORT_SUPPORTED)
                d->migration_flags = 0;
        dev = sim_device_new(d->name, sim, tb->persist_dir);
        if (!tb->found_states ||
            (g_hash_table_size(tb->found_states) > 0 && g_hash_table_contains(tb->found_states, d->name)))
                sim_device_restore(dev);
        add_node(tb, dev, d);
        /* keyed by the device's own name: replace, not insert, keeps the key alive */
        g_hash_table_replace(tb->sims, (char *) sim_device_name(dev), dev);
        if (!c)
                return true;
        faults = conf_file_get_string_list(c, group, "Fault", NULL);
        for (char **f = faults; f && *f; f++) {
                g_autofree char *msg = NULL;
                SimFault fault;

                if (sim_fault_parse(g_strstrip(*f), &fault, &msg) < 0)
                        return conf_file_error(c, error, group, "Fault", "%s", msg);
                sim_device_add_fault(dev, &fault);
        }
        return true;
}

/* Kind=vdpa: no VFIO device, nothing to simulate; its facet is all. */
static bool parse_vdpa_device(Testbed *tb, ConfFile *c, const char *group, const char *name, Parsed *out,
                              GError **error) {
        g_autoptr(Device) d = device_new(name, DEVICE_KIND_VDPA);
        g_autofree char *text = NULL, *why = NULL, *parent_group = NULL, *facet = NULL;

        if (!name_is_vdpa(name))
                return conf_file_error(c, error, group, NULL, "'%s' is not a vDPA device name", name);
        if (!conf_file_check_keys(c, group, vdpa_device_keys, error) ||
            !get_device_string(c, group, "Parent", NULL, &d->parent, error) ||
            !get_device_string(c, group, "Driver", "", &d->driver, error) ||
            !conf_file_get_string(c, group, "Vdpa", NULL, &text, error))
                return false;
        parent_group = g_strconcat("VdpaMgmt ", d->parent, NULL);
        if (!conf_file_has_group(c, parent_group))
                return conf_file_error(c, error, group, "Parent", "no [VdpaMgmt %s] section", d->parent);
        if (vdpa_facet_canonicalize(text, &facet, &why) < 0 || !*facet)
                return conf_file_error(c, error, group, "Vdpa", "%s", why ? why : "the class is missing");
        device_set_vdpa(d, facet);
        d->migration_support = MIGRATION_SUPPORT_NONE;
        g_ptr_array_add(out->devices, g_steal_pointer(&d));
        return true;
}

static bool parse_device(Testbed *tb, ConfFile *c, const char *group, const char *name,
                         Parsed *out, GError **error) {
        g_autofree char *copy = NULL, *normalized = name_normalize_device(name);
        g_autoptr(Device) d = NULL;
        SimConfig sim = { .state_size = DEFAULT_STATE_SIZE };
        const char *kind;
        uint64_t group_nr;
        DeviceKind k;
        bool ok, known;

        if (!conf_file_get_string_view(c, group, "Kind", NULL, &kind, &copy, error))
                return false;
        k = device_kind_from_string(kind);
        if (k < 0)
                return conf_file_error(c, error, group, "Kind", "'%s' is not mdev, pci or vdpa", kind);
        if (k == DEVICE_KIND_VDPA)
                return parse_vdpa_device(tb, c, group, name, out, error);
        if (!normalized || (!name_is_uuid(normalized) && !name_is_pci_address(normalized)))
                return conf_file_error(c, error, group, NULL,
                                       "'%s' is neither an mdev UUID nor a PCI address", name);
        if (!conf_file_check_keys(c, group, device_keys, error))
                return false;
        if (k == DEVICE_KIND_MDEV && !name_is_uuid(normalized))
                return conf_file_error(c, error, group, NULL, "an mdev must be named by a UUID");

        d = device_new(normalized, k);
        ok = k == DEVICE_KIND_MDEV ? parse_mdev(tb, c, group, d, &sim, error) : parse_pci(tb, c, group, d, error);
        if (!ok)
                return false;

        if (!get_device_string(c, group, "Driver", k == DEVICE_KIND_PCI ? "vfio-pci" : "", &d->driver, error) ||
            !conf_file_get_uint64(c, group, "IommuGroup", tb->next_iommu_group, 0, 1u << 20, &group_nr, error) ||
            !get_bounded_size(c, group, "StateSize", sim.state_size, SIM_STATE_SIZE_MAX, &sim.state_size, error) ||
            !get_bounded_size(c, group, "DirtyRate", sim.dirty_rate, SIM_DIRTY_RATE_MAX, &sim.dirty_rate, error))
                return false;
        device_set_own(&d->iommu_group, group_string(group_nr));
        tb->next_iommu_group = MAX(tb->next_iommu_group, (unsigned) group_nr + 1);
        if (!add_sim(tb, c, group, d, &sim, error))
                return false;
        /* FlagsKnown=no plays the kernel backend: unknown until opened */
        if (!conf_file_get_bool(c, group, "FlagsKnown", true, &known, error))
                return false;
        if (!known) {
                d->migration_support = MIGRATION_SUPPORT_UNKNOWN;
                d->migration_flags = 0;
        }
        g_ptr_array_add(out->devices, g_steal_pointer(&d));
        return true;
}

static const struct {
        const char *prefix;
        bool (*parse)(Testbed *, ConfFile *, const char *, const char *, Parsed *, GError **);
} sections[] = {
        { "Parent ", parse_parent },
        { "VdpaMgmt ", parse_vdpa_mgmt },
        { "Type ", parse_type },
        { "Device ", parse_device },
};

static int section_kind(const char *group) {
        for (size_t i = 0; i < G_N_ELEMENTS(sections); i++)
                if (g_str_has_prefix(group, sections[i].prefix))
                        return (int) i;
        return -1;
}

/* Parents first, then types, then devices: a later kind may refer to an
 * earlier one wherever it appears in the file. An unknown section is
 * refused in the first pass, where it stands. */
static bool parse_all(Testbed *tb, ConfFile *c, Parsed *out, GError **error) {
        const char *const *groups = conf_file_groups(c);
        guint n = g_strv_length((char **) groups);
        g_autofree int *kinds = g_new(int, n);

        for (guint i = 0; i < n; i++)
                kinds[i] = section_kind(groups[i]);
        for (int pass = 0; pass < (int) G_N_ELEMENTS(sections); pass++)
                for (guint i = 0; i < n; i++) {
                        const char *g = groups[i];

                        if (pass == 0 && kinds[i] < 0)
                                return conf_file_error(c, error, g, NULL,
                                                       "unknown section (expected Parent, Type, Device or VdpaMgmt)");
                        if (kinds[i] == pass &&
                            !sections[pass].parse(tb, c, g, g + strlen(sections[pass].prefix), out, error))
                                return false;
                }
        return true;
}

static bool check_devices(Testbed *tb, ConfFile *c, Parsed *out, GError **error) {
        g_autoptr(GHashTable) used = g_hash_table_new(NULL, NULL);  /* TestbedType -> instances */
        g_autoptr(GHashTable) drivers = g_hash_table_new(g_str_hash, g_str_equal);

        for (guint j = 0; j < out->parents->len; j++) {
                Parent *p = out->parents->pdata[j];

                g_hash_table_insert(drivers, p->name, p->driver);
        }
        for (guint i = 0; i < out->devices->len; i++) {
                Device *d = out->devices->pdata[i];
                g_autofree char *group = NULL, *alloc = NULL;
                char buf[MDEV_TYPE_KEY_BUF];
                const char *key;
                TestbedType *tt;
                unsigned n;

                if (d->kind != DEVICE_KIND_MDEV)
                        continue;
                key = mdev_type_key_in(buf, d->parent, d->mdev_type, &alloc);
                tt = g_hash_table_lookup(tb->types, key);
                n = GPOINTER_TO_UINT(g_hash_table_lookup(used, tt)) + 1;
                if (n > tt->max_instances) {
                        group = g_strconcat("Device ", d->name, NULL);
                        return conf_file_error(c, error, group, "Type", "more instances of %s than its MaxInstances=%u",
                                               key, tt->max_instances);
                }
                g_hash_table_insert(used, tt, GUINT_TO_POINTER(n));
                if (!*d->driver)
                        device_set_string(&d->driver, g_hash_table_lookup(drivers, d->parent));
        }
        return true;
}

static void populate(Testbed *tb, Parsed *p) {
        Registry *r = tb->backend.registry;

        for (guint i = 0; i < p->parents->len; i++)
                registry_add_parent(r, g_steal_pointer(&p->parents->pdata[i]));
        for (guint i = 0; i < p->devices->len; i++) {
                Device *d = g_steal_pointer(&p->devices->pdata[i]);
                SimDevice *sim = g_hash_table_lookup(tb->sims, d->name);

                /* as the device itself says: its state may have been persisted
                 * by a daemon that died mid-migration */
                if (sim)
                        device_set_string(&d->migration_state, fsm_state_to_string(sim_device_state(sim)));
                backend_add_device(&tb->backend, d);
        }
        for (guint i = 0; i < p->types->len; i++) {
                MdevType *t = g_steal_pointer(&p->types->pdata[i]);
                TestbedType *tt = g_hash_table_lookup(tb->types, t->key);

                /* a vDPA management device states no limit */
                if (tt)
                        t->available_instances = tt->max_instances - registry_count_instances(r, t->parent, t->id);
                registry_add_type(r, t);
        }
}

static void refresh_available(Testbed *tb, const char *parent, const char *type_id) {
        g_autofree char *key = mdev_type_key(parent, type_id);
        const TestbedType *tt = g_hash_table_lookup(tb->types, key);
        Registry *r = tb->backend.registry;

        if (tt)
                registry_set_available(r, key, tt->max_instances - registry_count_instances(r, parent, type_id));
}

static int testbed_create_mdev(Backend *s, const MdevType *type, const char *uuid) {
        Testbed *tb = (Testbed *) s;
        const TestbedType *tt = g_hash_table_lookup(tb->types, type->key);
        uint64_t t0 = now_usec(CLOCK_THREAD_CPUTIME_ID);
        Device *d;

        if (registry_get_device(s->registry, uuid))
                return -EEXIST;
        if (type->available_instances == 0)
                return -EUSERS;         /* what mdev_device_create() returns */

        d = device_new(uuid, DEVICE_KIND_MDEV);
        device_set_string(&d->parent, type->parent);
        device_set_string(&d->mdev_type, type->id);
        device_set_string(&d->iommu, type->iommu);
        device_set_string(&d->driver, registry_get_parent(s->registry, type->parent)->driver);
        device_set_own(&d->iommu_group, group_string(tb->next_iommu_group++));
        device_set_string(&d->migration_state, "running");
        d->migration_flags = tt->migration_flags;
        /* its type's attributes, and the versions its type takes */
        device_set_string(&d->vendor_migration_type, tt->vendor_type);
        device_set_string(&d->vendor_migration_version, tt->vendor_version);
        add_sim(tb, NULL, NULL, d, &(SimConfig) { .state_size = tt->state_size, .dirty_rate = tt->dirty_rate }, NULL);
        backend_add_device(s, d);
        refresh_available(tb, type->parent, type->id);
        tb->last_hotplug_usec = now_usec(CLOCK_THREAD_CPUTIME_ID) - t0;
        return 0;
}

static int testbed_remove_mdev(Backend *s, const Device *device) {
        Testbed *tb = (Testbed *) s;
        g_autofree char *parent = g_strdup(device->parent), *type_id = g_strdup(device->mdev_type);
        g_autofree char *name = g_strdup(device->name);
        uint64_t t0 = now_usec(CLOCK_THREAD_CPUTIME_ID);

        if (device->kind != DEVICE_KIND_MDEV)
                return -EINVAL;
        /* a job's handle would point into freed (or, in the kernel, blocking) state */
        if (device->busy)
                return -EBUSY;
        sim_device_forget(g_hash_table_lookup(tb->sims, name));
        g_hash_table_remove(tb->sims, name);
        g_hash_table_remove(tb->accept, name);
        backend_remove_device(s, name);
        refresh_available(tb, parent, type_id);
        tb->last_hotplug_usec = now_usec(CLOCK_THREAD_CPUTIME_ID) - t0;
        return 0;
}

static int testbed_open_device(Backend *s, const Device *d, DeviceHandle **ret, char **ret_error) {
        SimDevice *sim = testbed_get_sim(s, d->name);

        if (!sim) {
                if (ret_error)
                        *ret_error = g_strdup_printf("%s: no such testbed device", d->name);
                return -ENODEV;
        }
        return sim_device_open(sim, ret, ret_error);
}

/* The versions a write into a node's migration_version takes: its own,
 * or, for an instance that has none of its own, its type's. */
static char **accepted_versions(Testbed *tb, const Node *node) {
        const TestbedType *tt = NULL;
        const Device *d;
        char **accept;

        if (node->kind == NODE_MDEV_TYPE)
                tt = g_hash_table_lookup(tb->types, node->name);
        else if ((accept = g_hash_table_lookup(tb->accept, node->name)))
                return accept;
        else if ((d = registry_get_device(tb->backend.registry, node->name)) && d->kind == DEVICE_KIND_MDEV) {
                g_autofree char *key = mdev_type_key(d->parent, d->mdev_type);

                tt = g_hash_table_lookup(tb->types, key);
        }
        return tt ? tt->accept : NULL;
}

/* The simulated driver's answer to a write into migration_version. */
static int testbed_vendor_judge(Backend *s, const Node *node, const char *version) {
        char **accept = accepted_versions((Testbed *) s, node);

        if (!accept)
                return -ENODEV;         /* no such attribute */
        return g_strv_contains((const char *const *) accept, version) ? 0 : -EINVAL;
}

uint64_t testbed_last_hotplug_usec(Backend *s) {
        return backend_is_testbed(s) ? ((Testbed *) s)->last_hotplug_usec : 0;
}

SimDevice *testbed_get_sim(Backend *s, const char *name) {
        return backend_is_testbed(s) ? g_hash_table_lookup(((Testbed *) s)->sims, name) : NULL;
}

static void testbed_free(Backend *s) {
        Testbed *tb = (Testbed *) s;

        g_hash_table_destroy(tb->types);
        g_hash_table_destroy(tb->sims);
        g_hash_table_destroy(tb->accept);
        g_hash_table_destroy(tb->parent_iommu);
        forget_leftovers(tb);
        if (tb->node_dir)
                close(tb->node_dir_fd);
        g_free(tb->node_dir);
        g_free(tb->persist_dir);
        g_free(tb);
}

static const BackendOps testbed_backend_ops = {
        .name = "testbed",
        .testbed = true,
        .create_mdev = testbed_create_mdev,
        .remove_mdev = testbed_remove_mdev,
        .open_device = testbed_open_device,
        .vendor_judge = testbed_vendor_judge,
        .free = testbed_free,
};

/* What each device adds to the heap by the time the daemon serves:
 * 0.9 KiB with 10,000 of them, registry, map and bus included (0.15 KiB
 * of the reservation was left over). */
#define STARTUP_HEAP_PER_DEVICE 1024

static size_t count_devices(ConfFile *c) {
        size_t n = 0;

        for (const char *const *g = conf_file_groups(c); *g; g++)
                n += g_str_has_prefix(*g, "Device ");
        return n;
}

Backend *testbed_new(ConfFile *c, Registry *r, const char *persist_dir, GError **error) {
        g_auto(Parsed) parsed = {
                .parents = g_ptr_array_new_with_free_func((GDestroyNotify) parent_free),
                .types = g_ptr_array_new_with_free_func((GDestroyNotify) mdev_type_free),
                .devices = g_ptr_array_new_with_free_func((GDestroyNotify) device_free),
        };
        g_autoptr(Backend) s = NULL;
        Testbed *tb;

        tb = g_new0(Testbed, 1);
        s = &tb->backend;
        backend_init(s, &testbed_backend_ops, r);
        tb->types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) testbed_type_free);
        tb->accept = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_strfreev);
        tb->parent_iommu = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        tb->sims = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) sim_device_free);
        tb->persist_dir = g_strdup(persist_dir);
        tb->node_dir_fd = -1;
        tb->next_iommu_group = FIRST_SYNTHETIC_IOMMU_GROUP;

        heap_reserve(count_devices(c) * STARTUP_HEAP_PER_DEVICE);
        find_leftovers(tb);
        if (!parse_all(tb, c, &parsed, error) || !check_devices(tb, c, &parsed, error))
                return NULL;
        forget_leftovers(tb);
        populate(tb, &parsed);
        return g_steal_pointer(&s);
}
