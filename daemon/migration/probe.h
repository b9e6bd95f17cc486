/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "compat/probe-cache.h"

/* Trial-resume probes: when no driver says which devices are compatible,
 * try it. The source's pre-copy initial data (read while it keeps
 * running) is written into an idle target in RESUMING; the target
 * driver's acceptance or refusal is the verdict (basis "probe"). The
 * target is reset afterwards, whatever happened. A device someone holds
 * is never touched: a temporary instance of its mdev type stands in, and
 * is removed again; an mdev type ("PARENT/TYPE-ID") is always probed
 * through temporary instances. Verdicts go into the probe cache
 * (probe-cache.h) and the map. */

/* How a probe ends, on the main thread: error 0 and a verdict (which is
 * cached and the map told, unless UNKNOWN), or -errno and a message
 * when the probe itself failed. */
typedef void (*ProbeDone)(int error, const char *message, const Judgement *verdict, void *userdata);

/* The running probes and what they use: devices from the registry,
 * opened (and temporary instances made) through the backend; verdicts
 * go into the cache and the map. */
typedef struct Probes Probes;

Probes *probes_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, ProbeCache *cache);
/* Waits for the workers and removes temporary instances; no done is
 * called. */
void probes_free(Probes *probes);
unsigned probes_running(Probes *probes);

/* Starts a probe; done is called when it is done, then free_userdata
 * (also when the probe is stopped before: done is then not called).
 * Errors before it starts: -ENODEV, -EBUSY, -EOPNOTSUPP, -EIO, with a
 * message. */
int probe_start(Probes *probes, const Node *source, const Node *target, ProbeDone done, void *userdata,
                GDestroyNotify free_userdata, char **ret_error);


/* Forgets the verdict a probe found between these identities (in the
 * cache and its file), and has the map judge the pairs again on what
 * else it knows. -ENOENT if there is none; on any error nothing changed. */
int probes_forget(Probes *probes, const char *source_type, const char *source_version, const char *target_type,
                  const char *target_version, char **ret_error);
/* The same for every verdict; *ret_count: how many were forgotten. */
int probes_forget_all(Probes *probes, unsigned *ret_count, char **ret_error);
