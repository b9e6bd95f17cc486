/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <systemd/sd-event.h>

/* The daemon, wired: the loop, the bus, the model, where the model comes
 * from, and the modules that keep identities, probes and jobs. It owns
 * each and hands each what it uses; nothing below it knows it. */
typedef struct Manager Manager;

typedef struct ManagerOptions {
        const char *testbed;            /* NULL: kernel; "default" or a file */
        uint64_t idle_timeout_usec;     /* 0: never exit on idle */
        char **rules_dirs;              /* NULL: the defaults */
        const char *libvirt_uri;        /* "": no libvirt */
        const char *vdpa_replay;        /* NULL: ask the kernel (vdpa-kernel.h) */
        uint64_t prepared_timeout_usec; /* mdevs made for a VM that never came */
} ManagerOptions;

int manager_new(const ManagerOptions *o, Manager **ret);
void manager_free(Manager *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free);

sd_event *manager_get_event(Manager *m);
/* Recovers what a killed predecessor left, builds the compatibility
 * map, connects to the system bus, exports the objects, takes the name. */
int manager_start(Manager *m);
