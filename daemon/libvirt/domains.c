/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "libvirt/domain-xml.h"
#include "libvirt/domains.h"
#include "libvirt/virt-api.h"
#include "libvirt/virt-event.h"
#include "log.h"
#include "util.h"

#define RETRY_MIN_USEC (2 * USEC_PER_SEC)
#define RETRY_MAX_USEC (60 * USEC_PER_SEC)

enum { EV_LIFECYCLE, EV_DEVICE_ADDED, EV_DEVICE_REMOVED, EV_METADATA, _EV_MAX };

/* libvirt, once the first connection is tried (virt-api.h): nothing
 * calls it before, as nothing is connected. */
static const VirtApi *virt;

struct Domains {
        sd_event *event;
        Registry *registry;
        char *uri;

        virConnectPtr conn;
        int callbacks[_EV_MAX];
        sd_event_source *retry;         /* (re)connects */
        sd_event_source *metadata_retry;        /* domains that had a job */
        GHashTable *metadata_pending;   /* names of those domains */
        uint64_t retry_usec;
        bool told_unreachable;

        GHashTable *by_device;          /* device key -> domain name */
        GHashTable *by_domain;          /* domain name -> GPtrArray of device keys */
};

/* ---- the index ---- */

static void forget_domain(Domains *d, const char *name) {
        GPtrArray *keys = g_hash_table_lookup(d->by_domain, name);

        for (guint i = 0; keys && i < keys->len; i++) {
                const char *key = keys->pdata[i];

                if (g_strcmp0(g_hash_table_lookup(d->by_device, key), name) != 0)
                        continue;
                g_hash_table_remove(d->by_device, key);
                registry_set_device_domain(d->registry, key, NULL);
        }
        g_hash_table_remove(d->by_domain, name);
}

static void index_info(Domains *d, const DomainInfo *info) {
        GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);

        forget_domain(d, info->name);
        for (guint i = 0; i < info->hostdevs->len; i++) {
                const DomainHostdev *h = info->hostdevs->pdata[i];

                g_ptr_array_add(keys, g_strdup(h->key));
                g_hash_table_replace(d->by_device, g_strdup(h->key), g_strdup(info->name));
                registry_set_device_domain(d->registry, h->key, info->name);
        }
        g_hash_table_replace(d->by_domain, g_strdup(info->name), keys);
}

/* What vfiomigd knows of each hostdev that is a device here: its
 * identity travels with the domain, for the destination's hook. */
static GPtrArray *wanted_metadata(Domains *d, const DomainInfo *info) {
        GPtrArray *wanted = domain_metadata_new();

        for (guint i = 0; i < info->hostdevs->len; i++) {
                const DomainHostdev *h = info->hostdevs->pdata[i];
                const Device *dev = registry_get_device(d->registry, h->key);

                if (!dev || !*dev->migration_type)
                        continue;
                DomainDeviceMeta *m = domain_device_meta_new(h->key, dev->migration_type, dev->migration_version,
                                                             dev->migration_basis, dev->migration_flags,
                                                             dev->mdev_type, dev->parent);

                free_and_strdup(&m->iommu, dev->iommu);
                g_ptr_array_add(wanted, m);
        }
        return wanted;
}

static int on_metadata_retry(sd_event_source *s, uint64_t usec, void *userdata);

/* Reads the domain again later, from the loop (not from inside a
 * registry notification, nor while libvirt holds a job). */
static void queue_refresh(Domains *d, const char *name, uint64_t delay_usec) {
        uint64_t when = now_usec(CLOCK_MONOTONIC) + delay_usec;

        g_hash_table_add(d->metadata_pending, g_strdup(name));
        if (!d->metadata_retry)
                (void) sd_event_add_time(d->event, &d->metadata_retry, CLOCK_MONOTONIC, when, 0,
                                         on_metadata_retry, d);
        else if (sd_event_source_set_time(d->metadata_retry, when) >= 0)
                (void) sd_event_source_set_enabled(d->metadata_retry, SD_EVENT_ONESHOT);
}

/* A domain with a job (a migration under way) would make libvirt wait for
 * it, and the loop with it: try again later. The destination of a
 * migration is told of the domain's start while its incoming job runs,
 * and libvirt reports no job there but refuses to say ("migration
 * statistics are available only on the source host"): a refusal counts
 * as a job, unless the driver cannot report jobs at all. */
static bool domain_has_job(Domains *d, virDomainPtr dom, const char *name) {
        virDomainJobInfo job = {};

        if (virt->DomainGetJobInfo(dom, &job) < 0) {
                if (virt->GetLastErrorCode() == VIR_ERR_NO_SUPPORT)
                        return false;
                log_debug("libvirt domain %s: no word of its job (%s); its metadata waits",
                          name, virt->GetLastErrorMessage());
        } else if (job.type == VIR_DOMAIN_JOB_NONE)
                return false;
        queue_refresh(d, name, 5 * USEC_PER_SEC);
        return true;
}

/* Writes live metadata only when what it says changes: the write itself
 * comes back as a metadata event, which then finds nothing to do. */
static void update_metadata(Domains *d, virDomainPtr dom, const DomainInfo *info) {
        g_autoptr(GPtrArray) wanted = wanted_metadata(d, info);
        g_autofree char *xml = NULL, *error = NULL;

        if (wanted->len == 0 || domain_metadata_equal(info->metadata, wanted))
                return;
        if (domain_has_job(d, dom, info->name))
                return;
        if (domain_xml_metadata_format(wanted, &xml, &error) < 0) {
                log_warning("libvirt domain %s: cannot describe its devices: %s", info->name, error);
                return;
        }
        if (virt->DomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, DOMAIN_XML_NS_KEY, DOMAIN_XML_NS_URI,
                                 VIR_DOMAIN_AFFECT_LIVE) < 0) {
                log_warning("libvirt domain %s: cannot record its devices' identities: %s", info->name,
                            virt->GetLastErrorMessage());
                return;
        }
        log_info("libvirt domain %s: recorded the identities of %u devices", info->name, wanted->len);
}

static void domains_refresh(Domains *d, virDomainPtr dom) {
        const char *name = virt->DomainGetName(dom);
        g_autofree char *xml = NULL, *error = NULL;
        g_autoptr(DomainInfo) info = NULL;

        if (!name)
                return;
        if (virt->DomainIsActive(dom) != 1) {
                forget_domain(d, name);
                return;
        }
        xml = virt->DomainGetXMLDesc(dom, 0);
        if (!xml || domain_xml_parse(xml, strlen(xml), &info, &error) < 0) {
                log_warning("libvirt domain %s: cannot read its devices: %s", name,
                            xml ? error : virt->GetLastErrorMessage());
                return;
        }
        index_info(d, info);
        update_metadata(d, dom, info);
}

static void refresh_by_name(Domains *d, const char *name) {
        virDomainPtr dom = d->conn ? virt->DomainLookupByName(d->conn, name) : NULL;

        if (!dom)
                return;
        domains_refresh(d, dom);
        virt->DomainFree(dom);
}

static int on_metadata_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Domains *d = userdata;
        g_autoptr(GHashTable) pending = g_steal_pointer(&d->metadata_pending);
        GHashTableIter i;
        gpointer name;

        d->metadata_pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_iter_init(&i, pending);
        while (g_hash_table_iter_next(&i, &name, NULL))
                refresh_by_name(d, name);
        return 0;
}

static void index_all(Domains *d) {
        virDomainPtr *doms = NULL;
        int n = virt->ConnectListAllDomains(d->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);

        if (n < 0) {
                log_warning("libvirt: cannot list domains: %s", virt->GetLastErrorMessage());
                return;
        }
        for (int i = 0; i < n; i++) {
                domains_refresh(d, doms[i]);
                virt->DomainFree(doms[i]);
        }
        free(doms);
        log_info("libvirt: %s, %d running domains, %u of their devices indexed", d->uri, n,
                 g_hash_table_size(d->by_device));
}

static void forget_all(Domains *d) {
        g_autofree char **names = (char **) g_hash_table_get_keys_as_array(d->by_domain, NULL);
        g_auto(GStrv) copies = g_strdupv(names);

        for (char **n = copies; n && *n; n++)
                forget_domain(d, *n);
}

/* A device that appears (hotplug, a recreated mdev) may belong to a
 * running domain already; a device whose identity is now known, or
 * changed, has it recorded with its domain. */
static void on_registry(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        Domains *d = userdata;
        const Device *dev = object;
        const char *name;

        if (event != REGISTRY_DEVICE_ADDED && event != REGISTRY_DEVICE_IDENTITY_CHANGED)
                return;
        name = g_hash_table_lookup(d->by_device, dev->name);
        if (!name)
                return;
        if (event == REGISTRY_DEVICE_ADDED)
                registry_set_device_domain(r, dev->name, name);
        else
                queue_refresh(d, name, 0);
}

/* ---- events ---- */

/* Only a start makes us read a domain. A domain that stops is forgotten
 * without asking libvirtd anything, and the events before it (QEMU's
 * shutdown on a destroy, say) are left alone: libvirtd holds the domain
 * then and runs the stopped and release hooks, which call us; a call of
 * ours would wait for them, and they for us. */
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Domains *d = opaque;
        const char *name = virt->DomainGetName(dom);       /* no call: the event carries it */

        if (!name)
                return 0;
        if (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_UNDEFINED)
                forget_domain(d, name);
        else if (event == VIR_DOMAIN_EVENT_STARTED)
                domains_refresh(d, dom);
        return 0;
}

static void on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque) {
        domains_refresh(opaque, dom);
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque) {
        domains_refresh(opaque, dom);
}

static int schedule_connect(Domains *d, uint64_t delay_usec);

static void disconnect(Domains *d) {
        if (!d->conn)
                return;
        for (int i = 0; i < _EV_MAX; i++)
                if (d->callbacks[i] >= 0)
                        (void) virt->ConnectDomainEventDeregisterAny(d->conn, d->callbacks[i]);
        (void) virt->ConnectUnregisterCloseCallback(d->conn, NULL);
        virt->ConnectClose(d->conn);
        d->conn = NULL;
        forget_all(d);
}

/* libvirtd went away: what we knew may be stale; start over when it is
 * back. Not from inside libvirt's callback: it holds the connection. */
static void on_close(virConnectPtr conn, int reason, void *opaque) {
        Domains *d = opaque;

        log_notice("libvirt: connection to %s closed (reason %d); reconnecting", d->uri, reason);
        (void) schedule_connect(d, 0);
}

static int register_events(Domains *d) {
        d->callbacks[EV_LIFECYCLE] = virt->ConnectDomainEventRegisterAny(
                d->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), d, NULL);
        d->callbacks[EV_DEVICE_ADDED] = virt->ConnectDomainEventRegisterAny(
                d->conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_CALLBACK(on_device), d, NULL);
        d->callbacks[EV_DEVICE_REMOVED] = virt->ConnectDomainEventRegisterAny(
                d->conn, NULL, VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(on_device), d, NULL);
        d->callbacks[EV_METADATA] = virt->ConnectDomainEventRegisterAny(
                d->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata), d, NULL);
        if (d->callbacks[EV_LIFECYCLE] < 0 || d->callbacks[EV_DEVICE_ADDED] < 0 ||
            d->callbacks[EV_DEVICE_REMOVED] < 0)
                return -EIO;
        /* metadata events came with libvirt 3.0; not having them costs
         * only freshness of what others write */
        return virt->ConnectRegisterCloseCallback(d->conn, on_close, d, NULL) < 0 ? -EIO : 0;
}

/* libvirt reports its errors to stderr by default; ours go to the log
 * with context, when they matter. */
static void quiet(void *userdata, virErrorPtr error) {
}

/* libvirt is loaded and its events run on our loop from the first
 * connection on, after start-up rather than before it. */
static bool load_libvirt(Domains *d) {
        g_autofree char *why = NULL;
        int r;

        if (virt)
                return true;
        virt = virt_api(&why);
        if (!virt) {
                log_warning("libvirt: cannot load it (%s); domains stay unknown", why);
                return false;
        }
        r = virt_event_register(d->event);
        if (r < 0 && r != -EALREADY) {
                log_error_errno(r, "Cannot run libvirt's events on our loop: %m");
                virt = NULL;
                return false;
        }
        virt->SetErrorFunc(NULL, quiet);
        return true;
}

static int on_connect(sd_event_source *s, uint64_t usec, void *userdata) {
        Domains *d = userdata;

        if (!load_libvirt(d))
                return 0;
        disconnect(d);
        for (int i = 0; i < _EV_MAX; i++)
                d->callbacks[i] = -1;
        d->conn = virt->ConnectOpen(d->uri);
        if (d->conn && register_events(d) < 0) {
                log_warning("libvirt: %s: cannot follow domain events: %s", d->uri, virt->GetLastErrorMessage());
                disconnect(d);
        }
        if (!d->conn) {
                if (!d->told_unreachable)
                        log_info("libvirt: %s not reachable (%s); domains stay unknown until it is",
                                 d->uri, virt->GetLastErrorMessage());
                d->told_unreachable = true;
                d->retry_usec = CLAMP(d->retry_usec * 2, RETRY_MIN_USEC, RETRY_MAX_USEC);
                return schedule_connect(d, d->retry_usec);
        }
        d->told_unreachable = false;
        d->retry_usec = 0;
        index_all(d);
        return 0;
}

static int schedule_connect(Domains *d, uint64_t delay_usec) {
        uint64_t when = now_usec(CLOCK_MONOTONIC) + delay_usec;
        int r;

        if (!d->retry) {
                r = sd_event_add_time(d->event, &d->retry, CLOCK_MONOTONIC, when, USEC_PER_SEC / 10, on_connect, d);
                /* after whatever else is pending: loading libvirt takes a while, and the first
                 * clients come first */
                return r < 0 ? r : sd_event_source_set_priority(d->retry, SD_EVENT_PRIORITY_IDLE);
        }
        r = sd_event_source_set_time(d->retry, when);
        return r < 0 ? r : sd_event_source_set_enabled(d->retry, SD_EVENT_ONESHOT);
}

int domains_new(sd_event *event, Registry *registry, const char *uri, Domains **ret) {
        g_autoptr(Domains) d = g_new0(Domains, 1);
        int r;

        d->event = sd_event_ref(event);
        d->registry = registry;
        d->by_device = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        d->by_domain = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
        d->metadata_pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        for (int i = 0; i < _EV_MAX; i++)
                d->callbacks[i] = -1;
        if (uri && *uri) {
                d->uri = g_strdup(uri);
                r = schedule_connect(d, 0);
                if (r < 0)
                        return log_error_errno(r, "Cannot schedule connecting to libvirt: %m");
        }
        registry_listen(registry, on_registry, d);
        *ret = g_steal_pointer(&d);
        return 0;
}

void domains_free(Domains *d) {
        if (!d)
                return;
        registry_unlisten(d->registry, on_registry, d);
        disconnect(d);
        /* what closing the connection removed is freed from the loop,
         * which is done */
        virt_event_flush();
        sd_event_source_disable_unref(d->retry);
        sd_event_source_disable_unref(d->metadata_retry);
        g_hash_table_destroy(d->metadata_pending);
        sd_event_unref(d->event);
        g_hash_table_destroy(d->by_device);
        g_hash_table_destroy(d->by_domain);
        g_free(d->uri);
        g_free(d);
}

int domains_drive_test_domain(Domains *d, const char *name, const char *action, char **ret_error) {
        virDomainPtr dom;
        int r;

        if (!d->uri || !g_str_has_prefix(d->uri, "test:"))
                return errno_message(ret_error, EPERM, "Only the test driver's domains are driven; %s is not it",
                                     d->uri ?: "no libvirt URI");
        if (!d->conn)
                return errno_message(ret_error, ENOTCONN, "Not connected to libvirt");
        if (!g_str_equal(action, "start") && !g_str_equal(action, "destroy"))
                return errno_message(ret_error, EINVAL, "'%s' is neither start nor destroy", action);
        dom = virt->DomainLookupByName(d->conn, name);
        if (!dom)
                return errno_message(ret_error, ENOENT, "No domain %s", name);
        r = g_str_equal(action, "start") ? virt->DomainCreate(dom) : virt->DomainDestroy(dom);
        if (r < 0)
                r = errno_message(ret_error, EIO, "Cannot %s %s: %s", action, name, virt->GetLastErrorMessage());
        virt->DomainFree(dom);
        return r < 0 ? r : 0;
}

int domains_get(Domains *d, const char *name, bool *ret_running, DomainInfo **ret, char **ret_error) {
        virDomainPtr dom;
        g_autofree char *xml = NULL, *error = NULL;
        int r;

        if (!d->conn)
                return errno_message(ret_error, ENOTCONN, "Not connected to libvirt (%s)", d->uri ?: "none configured");
        dom = virt->DomainLookupByName(d->conn, name);
        if (!dom)
                return errno_message(ret_error, ENOENT, "No domain %s", name);
        *ret_running = virt->DomainIsActive(dom) == 1;
        xml = virt->DomainGetXMLDesc(dom, 0);
        virt->DomainFree(dom);
        if (!xml)
                return errno_message(ret_error, EIO, "Cannot read domain %s: %s", name, virt->GetLastErrorMessage());
        r = domain_xml_parse(xml, strlen(xml), ret, &error);
        if (r < 0)
                return errno_message(ret_error, EIO, "Cannot read domain %s: %s", name, error);
        return 0;
}
