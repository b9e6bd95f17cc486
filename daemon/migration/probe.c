/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "compat/compat-map.h"
#include "migration/admission.h"
#include "migration/drive.h"
#include "log.h"
#include "migration/probe.h"
#include "migration/transfer.h"
#include "util.h"
#include "vfio-uapi.h"

#define PROBE_DATA_MAX (1024 * 1024)    /* enough for any header a driver checks */
#define PROBE_IO_TIMEOUT_USEC (10 * USEC_PER_SEC)

typedef struct ProbeEnd {
        char *node;             /* what the caller named */
        char *device;           /* what is opened: the device or a temporary instance */
        char *type, *version;   /* migration identity, for the cache */
        char *driver;
        bool temporary;
        DeviceHandle *handle;
        uint32_t flags;
} ProbeEnd;

/* ---- the probe ---- */

typedef struct Probe {
        Probes *probes;
        ProbeDone done;
        void *userdata;
        GDestroyNotify free_userdata;
        ProbeEnd source, target;
        GThread *thread;
        int notify_fd;
        sd_event_source *notify_source;
        /* the worker's result */
        Judgement result;
        int error;
        char *message;
} Probe;

struct Probes {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        CompatMap *map;         /* told of each verdict */
        ProbeCache *cache;
        GList *running;         /* Probe, until it has reported */
};

unsigned probes_running(Probes *probes) {
        return g_list_length(probes->running);
}

/* A probe cannot be cancelled; a device that stops answering fails it. */
static const Xfer probe_xfer = { .cancel_fd = -1, .io_timeout_usec = PROBE_IO_TIMEOUT_USEC };

static int read_initial(DeviceHandle *h, int fd, uint8_t *buf, size_t want, size_t *ret) {
        XferEnd e;
        ssize_t n;
        int r;

        r = xfer_end_from_device(h, fd, &e);
        if (r < 0)
                return r;
        n = xfer_read_full(&probe_xfer, &e, buf, want);
        if (n < 0)
                return (int) n;
        *ret = (size_t) n;
        return 0;
}

static int write_initial(DeviceHandle *h, int fd, const uint8_t *buf, size_t len) {
        XferEnd e;
        int r;

        r = xfer_end_from_device(h, fd, &e);
        return r < 0 ? r : xfer_write_all(&probe_xfer, &e, buf, len);
}

/* The probe itself failed: no verdict. */
static void probe_fail(Probe *p, const char *format, ...) G_GNUC_PRINTF(2, 3);
static void probe_fail(Probe *p, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        p->message = g_strdup_vprintf(format, ap);
        va_end(ap);
        p->error = -EIO;
}

static void verdict(Probe *p, Verdict v, const char *format, ...) G_GNUC_PRINTF(3, 4);
static void verdict(Probe *p, Verdict v, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        p->result = (Judgement) { .verdict = v, .basis = BASIS_PROBE, .reason = g_strdup_vprintf(format, ap) };
        va_end(ap);
}

/* The source's pre-copy initial data, read while it keeps running. */
static int take_initial(Probe *p, uint8_t *buf, size_t *ret) {
        DeviceHandle *h = p->source.handle;
        uint64_t initial = 0, dirty = 0;
        int fd = -1, r, k;

        r = drive_to(h, p->source.flags, VFIO_STATE_PRE_COPY, &fd);
        if (r >= 0 && fd < 0)
                r = -EIO;
        if (r >= 0)
                r = h->ops->precopy_info(h, fd, &initial, &dirty);
        if (r >= 0)
                r = read_initial(h, fd, buf, MIN(initial, (uint64_t) PROBE_DATA_MAX), ret);
        /* back to running whatever happened; the session ends with it */
        k = drive_to(h, p->source.flags, VFIO_STATE_RUNNING, &fd);
        if (fd >= 0)
                close(fd);
        if (k < 0 && h->ops->reset(h) < 0)
                log_warning("%s: could not return to running after a probe", p->source.device);
        return r;
}

static void try_resume(Probe *p, const uint8_t *buf, size_t len) {
        DeviceHandle *h = p->target.handle;
        ssize_t n = 0;
        int fd = -1, r;

        r = drive_to(h, p->target.flags, VFIO_STATE_RESUMING, &fd);
        if (r >= 0 && fd < 0)
                r = -EIO;
        if (r < 0)
                probe_fail(p, "%s: cannot enter RESUMING: %s", p->target.device, g_strerror(-r));
        else {
                n = write_initial(h, fd, buf, len);
                if (n >= 0 && h->ops->resume_status)
                        n = h->ops->resume_status(h);
                if (n < 0)
                        verdict(p, VERDICT_INCOMPATIBLE, "the target's driver refused %s's pre-copy data: %s",
                                p->source.node, g_strerror((int) -n));
                else
                        verdict(p, VERDICT_COMPATIBLE, "the target's driver accepted %zu bytes of %s's pre-copy data",
                                len, p->source.node);
        }
        if (fd >= 0)
                close(fd);
        /* a RESUMING session is abandoned only by a reset (never SET) */
        if (h->ops->reset(h) < 0)
                log_warning("%s: reset after a probe failed", p->target.device);
}

static gpointer worker(gpointer userdata) {
        Probe *p = userdata;
        g_autofree uint8_t *buf = g_malloc(PROBE_DATA_MAX);
        uint64_t one = 1;
        size_t len = 0;
        int r;

        r = take_initial(p, buf, &len);
        if (r < 0)
                probe_fail(p, "%s: cannot read pre-copy data: %s", p->source.device, g_strerror(-r));
        else if (len == 0)
                verdict(p, VERDICT_UNKNOWN, "%s has no pre-copy data to try", p->source.node);
        else
                try_resume(p, buf, len);
        if (write(p->notify_fd, &one, sizeof(one)) < 0)
                log_error_errno(errno, "Cannot report a probe's end: %m");
        return NULL;
}

static void end_close(Probes *probes, ProbeEnd *e) {
        const Device *d;
        int r;

        g_clear_pointer(&e->handle, device_handle_close);
        if (e->device)
                registry_set_device_busy(probes->registry, e->device, NULL);
        if (e->temporary && (d = registry_get_device(probes->registry, e->device))) {
                r = backend_remove_mdev(probes->backend, d);
                if (r < 0)
                        log_warning_errno(r, "Cannot remove temporary instance %s: %m", e->device);
        }
        g_free(e->node);
        g_free(e->device);
        g_free(e->type);
        g_free(e->version);
        g_free(e->driver);
}

static void probe_free(Probe *p) {
        Probes *probes = p->probes;

        if (p->thread)
                g_thread_join(p->thread);
        end_close(probes, &p->source);
        end_close(probes, &p->target);
        sd_event_source_disable_unref(p->notify_source);
        if (p->notify_fd >= 0)
                close(p->notify_fd);
        if (p->free_userdata)
                p->free_userdata(p->userdata);
        judgement_clear(&p->result);
        g_free(p->message);
        probes->running = g_list_remove(probes->running, p);
        g_free(p);
}

Probes *probes_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, ProbeCache *cache) {
        Probes *probes = g_new0(Probes, 1);

        probes->event = sd_event_ref(event);
        probes->registry = registry;
        probes->backend = backend;
        probes->map = map;
        probes->cache = cache;
        return probes;
}

void probes_free(Probes *probes) {
        if (!probes)
                return;
        while (probes->running)
                probe_free(probes->running->data);
        sd_event_unref(probes->event);
        g_free(probes);
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Probe *p = userdata;
        Probes *probes = p->probes;
        uint64_t count;

        (void) read(fd, &count, sizeof(count));
        g_thread_join(p->thread);
        p->thread = NULL;
        if (p->error == 0) {
                log_info("Probe %s -> %s: %s (%s)", p->source.node, p->target.node,
                         verdict_to_string(p->result.verdict), p->result.reason);
                if (p->result.verdict != VERDICT_UNKNOWN) {
                        probe_cache_store(probes->cache,
                                          &(ProbeSide) { p->source.type, p->source.version, p->source.driver },
                                          &(ProbeSide) { p->target.type, p->target.version, p->target.driver },
                                          &p->result);
                        compat_map_invalidate(probes->map, p->source.type, p->source.version, p->target.type,
                                              p->target.version);
                }
        }
        p->done(p->error, p->error ? p->message : NULL, &p->result, p->userdata);
        probe_free(p);          /* removes temporary instances */
        return 0;
}

/* A temporary instance of an mdev type, opened. */
static int open_temporary(Probes *probes, const MdevType *t, ProbeEnd *e, char **ret_error) {
        g_autofree char *uuid = g_uuid_string_random();
        g_autofree char *why = NULL;
        const Device *d;
        int r;

        r = backend_create_mdev(probes->backend, t, uuid);
        if (r < 0)
                return errno_message(ret_error, r == -EUSERS ? EBUSY : EIO, "%s: cannot create a temporary %s instance: %s",
                            t->parent, t->id, g_strerror(-r));
        e->device = g_steal_pointer(&uuid);
        e->temporary = true;
        d = registry_get_device(probes->registry, e->device);
        if (!d)
                return errno_message(ret_error, EIO, "%s: the temporary instance %s did not appear", t->parent, e->device);
        registry_set_device_busy(probes->registry, e->device, "a probe");
        /* its siblings taught it: no open (it is removed again) */
        if (d->migration_support == MIGRATION_SUPPORT_NONE)
                return admission_refuse_not_migratable(t->key, d->driver, ret_error);
        r = backend_open_device(probes->backend, d, &e->handle, &why);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s", why ? why : g_strerror(-r));
        return 0;
}

/* A type is probed through a temporary instance of it. */
static int resolve_type(Probes *probes, const char *key, ProbeEnd *e, char **ret_error) {
        const MdevType *t = registry_get_type(probes->registry, key);
        const Parent *p;

        if (!t)
                return errno_message(ret_error, ENODEV, "No mdev type %s", key);
        if (t->kind == DEVICE_KIND_VDPA)
                return admission_refuse_vdpa(key, ret_error);
        p = registry_get_parent(probes->registry, t->parent);
        e->type = g_strdup(t->migration_type);
        e->version = g_strdup(t->migration_version);
        e->driver = g_strdup(p ? p->driver : "");
        return open_temporary(probes, t, e, ret_error);
}

/* A device in use elsewhere is stood in for by a temporary instance of
 * its type, if it is an mdev. */
static int resolve_device(Probes *probes, const char *name, ProbeEnd *e, char **ret_error) {
        const Device *d = registry_get_device(probes->registry, name);
        g_autofree char *why = NULL;
        const MdevType *t;
        int r;

        if (!d)
                return errno_message(ret_error, ENODEV, "No device %s known to vfiomigd", name);
        if (device_is_taken(d)) {
                g_autofree char *holder = device_describe_holder(d);

                return errno_message(ret_error, EBUSY, "%s is held by %s", name, holder);
        }
        if (d->kind == DEVICE_KIND_VDPA)
                return admission_refuse_vdpa(name, ret_error);
        /* known from an earlier open: refused as a migration is, without
         * opening it (which resets a vfio-pci function) */
        if (d->migration_support == MIGRATION_SUPPORT_NONE)
                return admission_refuse_not_migratable(name, d->driver, ret_error);
        e->type = g_strdup(d->migration_type);
        e->version = g_strdup(d->migration_version);
        e->driver = g_strdup(d->driver);
        r = backend_open_device(probes->backend, d, &e->handle, &why);
        if (r == -EBUSY && d->kind == DEVICE_KIND_MDEV &&
            (t = registry_find_type(probes->registry, d->parent, d->mdev_type))) {
                log_info("%s is in use: probing a temporary %s instance instead", name, t->id);
                return open_temporary(probes, t, e, ret_error);
        }
        if (r == -EBUSY)
                return errno_message(ret_error, EBUSY, "%s, and is no mdev that a temporary instance could stand in for",
                                     why ? why : name);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s", why ? why : g_strerror(-r));
        e->device = g_strdup(name);
        registry_set_device_busy(probes->registry, name, "a probe");
        return 0;
}

static int resolve(Probes *probes, const Node *node, ProbeEnd *e, char **ret_error) {
        MigrationSupport support;
        int r;

        e->node = g_strdup(node->name);
        r = node->kind == NODE_MDEV_TYPE ? resolve_type(probes, node->name, e, ret_error)
                                         : resolve_device(probes, node->name, e, ret_error);
        if (r < 0)
                return r;
        r = backend_learn_migration(probes->backend, e->device, e->handle, &support, &e->flags);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s: cannot query migration: %s", node->name, g_strerror(-r));
        /* refused as a migration would be; the device is closed again (and
         * a temporary instance removed) when the probe is freed */
        if (support == MIGRATION_SUPPORT_NONE)
                return admission_refuse_not_migratable(node->name, e->driver, ret_error);
        return 0;
}

int probe_start(Probes *probes, const Node *source, const Node *target, ProbeDone done, void *userdata,
                GDestroyNotify free_userdata, char **ret_error) {
        Probe *p = g_new0(Probe, 1);
        int r;

        p->probes = probes;
        p->notify_fd = -1;
        /* from here on ours: a failed start frees it too */
        p->done = done;
        p->userdata = userdata;
        p->free_userdata = free_userdata;
        probes->running = g_list_prepend(probes->running, p);
        r = resolve(probes, source, &p->source, ret_error);
        if (r >= 0)
                r = resolve(probes, target, &p->target, ret_error);
        if (r >= 0 && !(p->source.flags & VFIO_MIGRATION_PRE_COPY))
                r = errno_message(ret_error, EOPNOTSUPP, "%s has no PRE_COPY: its state cannot be read while it runs, so it "
                         "cannot be probed", source->name);
        if (r >= 0) {
                p->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                r = p->notify_fd < 0 ? -errno : sd_event_add_io(probes->event, &p->notify_source, p->notify_fd, EPOLLIN,
                                                                on_done, p);
                if (r < 0)
                        r = errno_message(ret_error, r, "Cannot start the probe: %s", g_strerror(-r));
        }
        if (r < 0) {
                probe_free(p);
                return r;
        }
        p->thread = g_thread_new("probe", worker, p);
        return 0;
}

int probes_forget(Probes *probes, const char *source_type, const char *source_version, const char *target_type,
                  const char *target_version, char **ret_error) {
        int r;

        r = probe_cache_forget(probes->cache, source_type, source_version, target_type, target_version, ret_error);
        if (r < 0)
                return r;
        compat_map_invalidate(probes->map, source_type, source_version, target_type, target_version);
        return 0;
}

int probes_forget_all(Probes *probes, unsigned *ret_count, char **ret_error) {
        g_autoptr(GPtrArray) forgotten = NULL;
        int r;

        r = probe_cache_forget_all(probes->cache, &forgotten, ret_error);
        if (r < 0)
                return r;
        for (guint i = 0; i < forgotten->len; i++) {
                const ProbeRecord *p = forgotten->pdata[i];

                compat_map_invalidate(probes->map, p->source_type, p->source_version, p->target_type,
                                      p->target_version);
        }
        *ret_count = forgotten->len;
        return 0;
}
