/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "bus/bus-error.h"
#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "libvirt/domains.h"
#include "names.h"
#include "vfiomig-names.h"

/* The Manager's methods about libvirt domains. */

#define DOMAIN_NAME_MAX 1024

static const DomainDeviceMeta *recorded(const DomainInfo *info, const char *key) {
        for (guint i = 0; info->metadata && i < info->metadata->len; i++) {
                const DomainDeviceMeta *m = info->metadata->pdata[i];

                if (g_str_equal(m->key, key))
                        return m;
        }
        return NULL;
}

/* One hostdev: its identity as the domain carries it, else as this host
 * knows the device, else none. */
static int append_hostdev(BusContext *c, sd_bus_message *reply, const DomainInfo *info, const DomainHostdev *h) {
        const DomainDeviceMeta *m = recorded(info, h->key);
        const Device *d = registry_get_device(c->registry, h->key);
        const char *kind = device_kind_to_string(h->kind);

        if (m)
                return sd_bus_message_append(reply, "(sssssub)", h->key, kind, m->migration_type,
                                             m->migration_version, m->basis, m->flags, true);
        if (d)
                return sd_bus_message_append(reply, "(sssssub)", h->key, kind, d->migration_type,
                                             d->migration_version, d->migration_basis, d->migration_flags, false);
        return sd_bus_message_append(reply, "(sssssub)", h->key, kind, "", "", "", 0, false);
}

int bus_method_get_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(DomainInfo) info = NULL;
        g_autofree char *why = NULL;
        sd_bus_message *reply = NULL;
        const char *name;
        bool running;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!*name || strlen(name) > DOMAIN_NAME_MAX) {
                g_autofree char *q = name_quote(name);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not a domain name", q);
        }
        r = domains_get(c->domains, name, &running, &info, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "b", running);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssub)");
        for (guint i = 0; r >= 0 && i < info->hostdevs->len; i++)
                r = append_hostdev(c, reply, info, info->hostdevs->pdata[i]);
        return bus_send_array_reply(reply, r);
}
