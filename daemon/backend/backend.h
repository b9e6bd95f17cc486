/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>

#include "backend/devops.h"
#include "backend/flag-cache.h"
#include "registry.h"

/* The backend: where the registry's content comes from and what acts on
 * devices, the kernel (udev, sysfs, VFIO) or the embedded testbed. The
 * rest of the daemon calls it only through the wrappers below, so every
 * method behaves the same on both. Operations return -errno, as the
 * kernel's sysfs writes would (EEXIST, EUSERS, ...). */

typedef struct Backend Backend;

typedef struct BackendOps {
        const char *name;               /* Manager.Backend: "kernel" | "testbed" */
        bool testbed;                   /* simulated devices, and the Testbed interface */
        int (*create_mdev)(Backend *b, const MdevType *type, const char *uuid);
        int (*remove_mdev)(Backend *b, const Device *device);
        /* Optional: re-read what no event announces (available_instances
         * goes up only when the kernel releases an mdev, after its remove
         * uevent, or later while a VMM still holds it). */
        void (*refresh_types)(Backend *b);
        /* Opens a device for an operation a client asked for (never to
         * look at it). -EBUSY if someone else holds it; *ret_error names
         * the device and the cause. */
        int (*open_device)(Backend *b, const Device *d, DeviceHandle **ret, char **ret_error);
        /* Optional. The seeds' protocol: writes version into the
         * migration_version attribute of a device or mdev type; the
         * driver's answer is the verdict. 0 accepted, -errno refused. */
        int (*vendor_judge)(Backend *b, const Node *node, const char *version);
        void (*free)(Backend *b);
} BackendOps;

struct Backend {
        const BackendOps *ops;
        Registry *registry;             /* not owned */
        FlagCache *flag_cache;          /* migration support learned, per driver and device id */
};

/* Sets up the common part of a backend. */
void backend_init(Backend *b, const BackendOps *ops, Registry *r);

/* How a backend adds devices to the registry and removes them, so that
 * what was learned of their siblings' migration support applies
 * (flag-cache.h): a device added with its support unknown gets what its
 * siblings taught, one with its support given keeps it. */
void backend_add_device(Backend *b, Device *d);
bool backend_remove_device(Backend *b, const char *name);
/* Adds d, the fresh entry of a device whose driver let go of it and took
 * it again since it was added (an unbind that is news only now): it
 * leaves what it taught its siblings, which the last of them forgets, and
 * shows what the rest still know, or unknown. */
void backend_rebind_device(Backend *b, Device *d);

static inline const char *backend_name(const Backend *b) {
        return b->ops->name;
}

/* The one place that tells the testbed from the kernel. */
static inline bool backend_is_testbed(const Backend *b) {
        return b->ops->testbed;
}

static inline int backend_create_mdev(Backend *b, const MdevType *type, const char *uuid) {
        return b->ops->create_mdev(b, type, uuid);
}

static inline int backend_remove_mdev(Backend *b, const Device *device) {
        return b->ops->remove_mdev(b, device);
}

static inline void backend_refresh_types(Backend *b) {
        if (b->ops->refresh_types)
                b->ops->refresh_types(b);
}

/* Opens a device for an operation a client asked for; a vDPA device is
 * -EOPNOTSUPP. When someone else holds it (-EBUSY), *ret_error names the holder, found in /proc and
 * recorded on the device (held_by); an open that works clears that. */
int backend_open_device(Backend *b, const Device *d, DeviceHandle **ret, char **ret_error);

/* Looks in /proc for another process holding the device, without opening
 * it (opening a vfio-pci function resets it), and records what it finds
 * on the device. Returns the device's holder as
 * device_describe_holder() says it, "" for none. */
char *backend_find_holder(Backend *b, const char *name);

/* Asks an open device (h, of the registry's device name) whether it can
 * migrate, and records the answer on it and on the devices that share
 * its driver and ids. The kernel's ENOTTY (the driver has no migration
 * feature) or flags without STOP_COPY: NONE. *ret_flags gets the flags
 * as the device gave them. Returns 0, or -errno when the device did not
 * answer, and then nothing is recorded. */
int backend_learn_migration(Backend *b, const char *name, DeviceHandle *h, MigrationSupport *ret_support,
                            uint32_t *ret_flags);

static inline int backend_vendor_judge(Backend *b, const Node *node, const char *version) {
        return b->ops->vendor_judge ? b->ops->vendor_judge(b, node, version) : -EOPNOTSUPP;
}

void backend_free(Backend *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Backend, backend_free);
