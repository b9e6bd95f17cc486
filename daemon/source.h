/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "devops.h"
#include "registry.h"

/* Where the registry's content comes from: the kernel (udev) or the
 * embedded testbed. The bus code sees only this table, so every method
 * behaves the same on both. Operations return -errno, as the kernel's
 * sysfs writes would (EEXIST, EUSERS, ...). */

typedef struct Source Source;

typedef struct SourceOps {
        const char *backend;            /* Manager.Backend: "kernel" | "testbed" */
        int (*create_mdev)(Source *s, const MdevType *type, const char *uuid);
        int (*remove_mdev)(Source *s, const Device *device);
        /* Optional: re-read what no event announces (available_instances
         * goes up only when the kernel releases an mdev, after its remove
         * uevent, or later while a VMM still holds it). */
        void (*refresh_types)(Source *s);
        /* Opens a device for an operation a client asked for (never to
         * look at it). -EBUSY if someone else holds it; *ret_error names
         * the device and the cause. */
        int (*open_device)(Source *s, const Device *d, DeviceHandle **ret, char **ret_error);
        /* The seeds' protocol: writes version into the migration_version
         * attribute of a device or mdev type (node: a device name or
         * "type:PARENT/TYPE-ID"); the driver's answer is the verdict.
         * 0 accepted, -errno refused. */
        int (*vendor_judge)(Source *s, const char *node, const char *version);
        void (*free)(Source *s);
} SourceOps;

struct Source {
        const SourceOps *ops;
        Registry *registry;             /* not owned */
};

static inline void source_free(Source *s) {
        if (s)
                s->ops->free(s);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Source, source_free);
