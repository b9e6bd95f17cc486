/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "registry.h"

/* Preparing a host for an incoming VM (the destination of a libvirt
 * migration or restore, asked by vfiomig's qemu hook before QEMU starts
 * and before the source pauses): every mdev of the domain exists here
 * with a compatible type under the same UUID, created if need be, and
 * every PCI function is free and compatible, or the domain's XML is
 * rewritten to use another one; else nothing on the host changes and the
 * refusal names the device and the cause.
 *
 * The identity a device must be compatible with is the one the domain
 * carries (vfiomig's metadata, written on the source host); without it,
 * an mdev that exists is taken as it is, one that does not cannot be
 * made (its type is unknown), and a PCI function is taken if free.
 *
 * mdevs made here are recorded (prepared.conf in the state directory, so
 * the record survives a restart) and removed again when the domain is
 * released, or after timeout_usec if no running domain came to hold
 * them: libvirt calls no hook after a migration that failed. */

typedef struct Preparer Preparer;

int preparer_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, const char *state_dir,
                 uint64_t timeout_usec, Preparer **ret);
void preparer_free(Preparer *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Preparer, preparer_free);

/* xml: the domain as the hook got it; mdevs_only: leave PCI functions to
 * libvirt (a start, whose XML is not ours to change). *ret_xml: the XML to use instead,
 * or NULL for "as it is". Errors: -EBUSY (held), -EPROTONOSUPPORT
 * (incompatible), -ENOANO (compatibility unknown), -ENODEV (missing and
 * cannot be made), -EBADMSG (not a domain), -EIO; *ret_error is
 * "DEVICE: REASON" (or the XML's fault). */
int preparer_prepare(Preparer *p, const char *xml, size_t len, bool mdevs_only, char **ret_domain,
                     char **ret_xml, char **ret_error);
/* The domain is gone from this host (stopped, or released): the mdevs
 * made for it go, unless something else holds them. Returns how many. */
unsigned preparer_release(Preparer *p, const char *domain);
/* Whether an mdev made for a domain that has not run here yet waits for
 * its timeout: the daemon must not exit on idle before that, or nothing
 * would remove it (a daemon started by the hook's call is idle long
 * before a migration that failed would be noticed). */
bool preparer_waiting(const Preparer *p);
