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

static int opt_mdevs_only(sd_bus_message *msg, const char *name, void *userdata, sd_bus_error *error) {
        int b, r = sd_bus_message_read(msg, "b", &b);

        if (r >= 0)
                *(bool *) userdata = b;
        return r;
}

static const BusOption prepare_options[] = {
        { "mdevs-only", "b", opt_mdevs_only },
        {}
};

/* The domain's name, for polkit's details: the XML is read twice (here and
 * when preparing), and refused here when it is no domain. */
static int read_domain_xml(sd_bus_message *msg, const char **ret_xml, char **ret_name, bool *ret_mdevs_only,
                           sd_bus_error *error) {
        g_autoptr(DomainInfo) info = NULL;
        g_autofree char *why = NULL;
        const char *xml;
        int r;

        r = sd_bus_message_read(msg, "s", &xml);
        if (r >= 0)
                r = bus_read_options(msg, prepare_options, ret_mdevs_only, error);
        if (r < 0)
                return r;
        r = domain_xml_parse(xml, strlen(xml), &info, &why);
        if (r == -ELIBACC)      /* no libxml2 here: no fault of the caller's */
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED, "Cannot read domain XML: %s", why);
        if (r < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "Not a domain's XML: %s", why);
        *ret_xml = xml;
        *ret_name = g_strdup(info->name);
        return 0;
}

int bus_method_prepare_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL, *domain = NULL, *xml_out = NULL, *why = NULL;
        const char *xml = NULL;
        bool mdevs_only = false;
        int r;

        r = read_domain_xml(msg, &xml, &name, &mdevs_only, error);
        if (r < 0)
                return r;
        /* it creates devices */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "domain", name, NULL }, c->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = preparer_prepare(c->preparer, xml, strlen(xml), mdevs_only, &domain, &xml_out, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        return sd_bus_reply_method_return(msg, "s", xml_out ?: "");
}

int bus_method_release_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r >= 0)
                r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;
        if (!*name || strlen(name) > DOMAIN_NAME_MAX) {
                g_autofree char *q = name_quote(name);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not a domain name", q);
        }
        r = polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "domain", name, NULL }, c->polkit, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return sd_bus_reply_method_return(msg, "u", preparer_release(c->preparer, name));
}
