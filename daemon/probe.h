/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "compat.h"
#include "manager.h"

/* Trial-resume probes: when no driver says which devices are compatible,
 * try it. The source's pre-copy initial data (read while it keeps
 * running) is written into an idle target in RESUMING; the target
 * driver's acceptance or refusal is the verdict (basis "probe"). The
 * target is reset afterwards, whatever happened. A device someone holds
 * is never touched: a temporary instance of its mdev type stands in, and
 * is removed again; an mdev type ("PARENT/TYPE-ID") is always probed
 * through temporary instances.
 *
 * Verdicts are kept per (source type and version, target type and
 * version), and persisted in the
 * state directory for the running kernel release: a new kernel may bring
 * new drivers, so old results do not carry over. */

typedef struct ProbeCache ProbeCache;

ProbeCache *probe_cache_new(const char *path);
void probe_cache_free(ProbeCache *c);
bool probe_cache_lookup(ProbeCache *c, const Identity *source, const Identity *target, Judgement *ret);

/* Starts a probe for the Probe() call; its reply (verdict, basis,
 * reason) is sent when the probe is done. */
int probe_start(Manager *m, sd_bus_message *call, const char *source, const char *target, sd_bus_error *error);
unsigned probe_running(Manager *m);
/* At exit: waits for the workers and removes temporary instances; the
 * callers get no reply. */
void probe_stop_all(Manager *m);
