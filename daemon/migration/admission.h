/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "migration/worker.h"

/* The checks before a job starts, so that a job that starts can run:
 * every device named exists, is free, is not known to lack migration
 * (MigrationSupport "none", learned before) and appears once; each source is
 * compatible with its target (the verdicts the map keeps: no driver is
 * asked here, and a pair a busy driver left unknown is marked ask_again
 * for the worker); then each opens, can migrate and is where a job may
 * start from, and a group can be quiesced together.
 * Nothing is opened before the checks that need no device have passed.
 *
 * Fills w's devices (sources, then targets) with their handles, and a
 * save's stream identity. Returns -errno and a message as
 * migration_prepare() does. */
/* What the checks consult: the devices, how to open them, the map. */
typedef struct Admission {
        Registry *registry;
        Backend *backend;
        CompatMap *map;
} Admission;

int admission_check(const Admission *a, Worker *w, char **sources, char **targets, char **ret_error);

/* The refusal of a device whose driver has no VFIO migration (its
 * support is NONE), as jobs and probes give it: -EOPNOTSUPP (NotMigratable)
 * and a message naming the device, its driver and the cause. */
int admission_refuse_not_migratable(const char *name, const char *driver, char **ret_error);
/* The same for a vDPA device or management device (name): no VFIO
 * device, so its state moves with the VMM that drives it. */
int admission_refuse_vdpa(const char *name, char **ret_error);
