/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* The device model: mdev parents, their types, and devices (mdev
 * instances, VFIO-bound PCI functions and vDPA devices); a vDPA
 * management device is a parent whose types are the classes it makes. Sources (udev, testbed) write
 * it; everyone else reads it and hears about changes as a listener,
 * each after the change is made, in the order they subscribed. No I/O
 * here. */

typedef enum DeviceKind {
        DEVICE_KIND_MDEV,
        DEVICE_KIND_PCI,
        DEVICE_KIND_VDPA,       /* no VFIO device: in the map for its facet alone */
        _DEVICE_KIND_MAX,
        _DEVICE_KIND_INVALID = -1,
} DeviceKind;

const char *device_kind_to_string(DeviceKind k);
DeviceKind device_kind_from_string(const char *s);

/* Whether a device can migrate, as far as vfiomigd knows. The kernel
 * tells only through an open device (VFIO_DEVICE_FEATURE_MIGRATION), and
 * opening a vfio-pci function resets it, so a device found by
 * enumeration starts out unknown. */
typedef enum MigrationSupport {
        MIGRATION_SUPPORT_UNKNOWN,      /* not learned yet */
        MIGRATION_SUPPORT_NONE,         /* the driver has no VFIO migration, or no STOP_COPY */
        MIGRATION_SUPPORT_SUPPORTED,    /* migration_flags says what it supports */
        _MIGRATION_SUPPORT_MAX,
} MigrationSupport;

const char *migration_support_to_string(MigrationSupport s);

typedef struct Parent {
        char *name;             /* kernel device name: "mtty", "0000:65:00.0" */
        char *sysfs_path;
        char *driver;
} Parent;

typedef struct MdevType {
        char *key;              /* "<parent>/<id>": unique, names the object */
        DeviceKind kind;        /* what it makes: mdevs, or vDPA devices */
        char *parent;
        char *id;               /* "<driver>-<name>", e.g. "mtty-2"; vDPA: "vdpa-<class>" */
        char *name;
        char *description;
        char *device_api;
        char *sysfs_path;
        char *iommu;            /* its instances' IOMMU facet (iommu-facet.h) */
        char *vdpa;             /* vDPA: what its devices can offer (vdpa-facet.h) */
        char *vendor_migration_type, *vendor_migration_version;       /* "" when absent */
        char *migration_type, *migration_version, *migration_basis;   /* derived */
        unsigned available_instances;   /* vDPA: UINT_MAX, no limit stated */
} MdevType;

/* The strings a device shares with most others (its driver, type,
 * state, identity, the empty string...) are const: interned GRefStrings,
 * held once however many devices hold them. Set them only with
 * device_set_string(); never free one. Those of its own (paths, group)
 * it owns, set only with device_set_own(): const, so that nothing frees
 * the shared empty string they start as. */
typedef struct Device {
        char *name;             /* mdev UUID or PCI address: the key */
        DeviceKind kind;
        const char *sysfs_path;
        const char *driver;
        const char *parent;     /* mdev parent; PCI: physical function or "" */
        const char *mdev_type;  /* type id for mdevs, else "" */
        const char *iommu_group;
        const char *vfio_dev;   /* device node to open it with */
        const char *iommu;      /* IOMMU facet, canonical text (iommu-facet.h) */
        const char *vdpa;       /* vDPA facet, canonical text (vdpa-facet.h); "" for others */
        const char *vendor_id, *device_id, *subsystem_vendor_id, *subsystem_device_id;
        /* the driver's migration_type and migration_version attributes,
         * "" when it has none */
        const char *vendor_migration_type, *vendor_migration_version;
        /* learned from the device (or a sibling, see backend.h); the
         * flags are 0 unless it is SUPPORTED. Kept when a uevent replaces
         * the entry with the same driver. */
        MigrationSupport migration_support;
        uint32_t migration_flags;
        /* derived by identities.c, kept when a uevent replaces the entry */
        const char *migration_type, *migration_version, *migration_basis;
        /* runtime status, kept when a uevent replaces the entry */
        const char *migration_state;    /* "" when unknown */
        bool busy;              /* held by a job of ours */
        const char *holder;     /* which: "migration 3", "probe 2"; "" when not busy */
        const char *domain;     /* the running libvirt domain it is assigned to, or "" */
        const char *held_by;    /* another process found holding it: "pid 7 (qemu)", or "" */
} Device;

/* Sets a shared string of a Device (NULL: ""), letting go of what it
 * held. */
void device_set_string(const char **field, const char *value);
/* The same with a string of the caller's, which it frees. */
void device_take_string(const char **field, char *value);
/* Sets one of a device's own strings (sysfs_path, iommu_group, vfio_dev)
 * to value, taken; NULL: "". Only through this: an unset one is not
 * to be freed. */
void device_set_own(const char **field, char *value);

Parent *parent_new(const char *name);
void parent_free(Parent *p);
MdevType *mdev_type_new(const char *parent, const char *id);
MdevType *vdpa_type_new(const char *mgmtdev, uint32_t device_id);
/* The type id of a vDPA class: "vdpa-net". */
char *vdpa_type_id(uint32_t device_id);
/* Sets a vDPA device's facet (canonical text) and, from its class, the
 * type it is an instance of. */
void device_set_vdpa(Device *d, const char *facet);
void mdev_type_free(MdevType *t);
Device *device_new(const char *name, DeviceKind kind);
void device_free(Device *d);
bool device_equal(const Device *a, const Device *b);
Device *device_copy(const Device *d);
/* Taken by a job of ours or assigned to a running domain: known without
 * asking the kernel, and nothing of ours may touch it. */
bool device_is_taken(const Device *d);
/* Taken, or another process was found holding it (Device.Busy). */
bool device_is_held(const Device *d);
/* Who holds it, for errors and the Holder property: "migration 3",
 * "domain vm1 (qemu pid 7)", "pid 7 (comm)", "domain vm1", or "". */
char *device_describe_holder(const Device *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Parent, parent_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MdevType, mdev_type_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Device, device_free);

/* "<parent>/<id>", the key and object-path id of a type. */
char *mdev_type_key(const char *parent, const char *id);
/* The same key in buf when it fits (*ret_alloc NULL), else in a copy
 * returned in *ret_alloc for the caller to free: the lookups start-up
 * makes for every device need no allocation. */
#define MDEV_TYPE_KEY_BUF 256
const char *mdev_type_key_in(char buf[MDEV_TYPE_KEY_BUF], const char *parent, const char *id, char **ret_alloc);

/* What can take a device's state, and so what the compatibility map and
 * the drivers' checks are about: a device, or an mdev type that could
 * still be instantiated (named by its key). */
typedef enum NodeKind {
        NODE_DEVICE,
        NODE_MDEV_TYPE,
} NodeKind;

typedef struct Node {
        NodeKind kind;
        const char *name;
} Node;

#define NODE_OF_DEVICE(n) ((Node) { NODE_DEVICE, (n) })
#define NODE_OF_TYPE(k) ((Node) { NODE_MDEV_TYPE, (k) })

typedef enum RegistryEvent {
        REGISTRY_DEVICE_ADDED,
        REGISTRY_DEVICE_REMOVED,        /* object still valid during the call */
        REGISTRY_DEVICE_CHANGED,
        REGISTRY_DEVICE_IDENTITY_CHANGED,       /* only the derived identity: news to the bus, not to identities */
        REGISTRY_TYPE_ADDED,
        REGISTRY_TYPE_REMOVED,
        REGISTRY_TYPE_CHANGED,
        REGISTRY_TYPE_IDENTITY_CHANGED,
} RegistryEvent;

typedef struct Registry Registry;
typedef void (*RegistryNotify)(Registry *r, RegistryEvent event, const void *object, void *userdata);

Registry *registry_new(void);
void registry_free(Registry *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Registry, registry_free);
void registry_listen(Registry *r, RegistryNotify notify, void *userdata);
void registry_unlisten(Registry *r, RegistryNotify notify, void *userdata);

/* Adding takes ownership. Re-adding a known name replaces the entry and
 * reports CHANGED, or nothing if all fields are equal. */
void registry_add_parent(Registry *r, Parent *p);
void registry_remove_parent(Registry *r, const char *name);   /* and its types */
void registry_add_type(Registry *r, MdevType *t);
void registry_remove_type(Registry *r, const char *key);
void registry_set_available(Registry *r, const char *key, unsigned available);
void registry_add_device(Registry *r, Device *d);
bool registry_remove_device(Registry *r, const char *name);
/* Runtime status; report DEVICE_CHANGED when it changes. */
/* holder names the job that takes the device ("migration 3"); NULL
 * releases it. */
void registry_set_device_busy(Registry *r, const char *name, const char *holder);
void registry_set_device_state(Registry *r, const char *name, const char *state);
/* What the device was found to support; flags count only when SUPPORTED. */
void registry_set_device_migration(Registry *r, const char *name, MigrationSupport support, uint32_t flags);
/* The domain a device is assigned to (libvirt), and who else was found
 * holding it open (NULL: nobody); report DEVICE_CHANGED when they change.
 * A new domain forgets who was found holding the device. */
void registry_set_device_domain(Registry *r, const char *name, const char *domain);
void registry_set_device_held_by(Registry *r, const char *name, const char *held_by);
/* The IOMMU facet, as the kernel told it when the device was opened. */
void registry_set_device_iommu(Registry *r, const char *name, const char *iommu);
/* The derived migration identity of a device or a type; reports
 * *_IDENTITY_CHANGED, and returns true, when it changes. */
bool registry_set_identity(Registry *r, const Node *node, const char *type, const char *version, const char *basis);

const Parent *registry_get_parent(Registry *r, const char *name);
const MdevType *registry_get_type(Registry *r, const char *key);
const MdevType *registry_find_type(Registry *r, const char *parent, const char *id);
const Device *registry_get_device(Registry *r, const char *name);
unsigned registry_device_count(Registry *r);

/* Sorted by name/key; the array does not own the entries. The first two
 * are a reference to the registry's own listing, sorted again only after
 * entries come or go, not on every call: read them, never change them.
 * An entry replaced under its name shows in its place; one removed is
 * freed all the same, so keep no listing across changes. */
GPtrArray *registry_list_devices(Registry *r);
GPtrArray *registry_list_types(Registry *r);
GPtrArray *registry_list_parent_types(Registry *r, const char *parent);
/* The mdevs of a type, counted as they come and go: no walk through the
 * devices, so that a hotplug event costs the same among 40,000 as among
 * ten. */
unsigned registry_count_instances(Registry *r, const char *parent, const char *type_id);
