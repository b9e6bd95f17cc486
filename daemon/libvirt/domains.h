/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <systemd/sd-event.h>

#include "libvirt/domain-xml.h"
#include "registry.h"

/* Which running libvirt domain holds which device. A device assigned to
 * a running domain is held by its QEMU, which moves its state itself:
 * vfiomigd names the domain on the device (Device.Domain) and touches
 * nothing of it.
 *
 * The index (mdev UUIDs and PCI addresses from each running domain's
 * XML) is built once per connection and kept current by libvirt's
 * lifecycle, device-added/removed and metadata events, delivered on the
 * daemon's loop (virt-event.h); nothing lists every domain per call.
 * The connection is made from the loop after start and remade when
 * libvirtd goes away and comes back; without libvirtd vfiomigd works as
 * before, and every device's Domain is "". */

typedef struct Domains Domains;

/* uri: a libvirt URI ("qemu:///system"); NULL or "" connects to nothing
 * (tests, hosts without libvirt). */
int domains_new(sd_event *event, Registry *registry, const char *uri, Domains **ret);
void domains_free(Domains *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Domains, domains_free);

/* A domain as libvirt has it now: its hostdevs and vfiomig's metadata.
 * -ENOTCONN (no libvirt), -ENOENT (no such domain), -EIO, with a
 * message. */
int domains_get(Domains *d, const char *name, bool *ret_running, DomainInfo **ret, char **ret_error);


/* For tests against libvirt's test driver only (a test:/// URI): starts
 * ("start") or destroys ("destroy") a domain of the daemon's own
 * connection, whose events then arrive as libvirtd's would. -ENOTCONN,
 * -EPERM (not the test driver), -ENOENT, -EINVAL, -EIO, with a message. */
int domains_drive_test_domain(Domains *d, const char *name, const char *action, char **ret_error);
