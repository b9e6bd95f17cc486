/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "migration/admission.h"
#include "compat/compat-map.h"
#include "fsm.h"
#include "util.h"
#include "vfio-uapi.h"

int admission_refuse_not_migratable(const char *name, const char *driver, char **ret_error) {
        return errno_message(ret_error, EOPNOTSUPP, "%s cannot be migrated: its driver (%s) has no VFIO migration",
                             name, *driver ? driver : "none");
}

int admission_refuse_vdpa(const char *name, char **ret_error) {
        return errno_message(ret_error, EOPNOTSUPP, "%s cannot be migrated by vfiomigd: it is a vDPA device, whose "
                             "state moves with the VMM that drives it (vhost-vdpa); vfiomigd only judges where it "
                             "can go", name);
}

/* From the registry only. */
static int add_device(const Admission *a, Worker *w, const char *name, bool source, char **ret_error) {
        const Device *info = registry_get_device(a->registry, name);

        if (!info)
                return errno_message(ret_error, ENODEV, "No device %s known to vfiomigd", name);
        if (device_is_taken(info)) {
                g_autofree char *holder = device_describe_holder(info);

                return errno_message(ret_error, EBUSY, "%s is held by %s", name, holder);
        }
        if (info->kind == DEVICE_KIND_VDPA)
                return admission_refuse_vdpa(name, ret_error);
        /* Known from an earlier open, its own or a sibling's: opening it
         * again would only reset a vfio-pci function for nothing. */
        if (info->migration_support == MIGRATION_SUPPORT_NONE)
                return admission_refuse_not_migratable(name, info->driver, ret_error);
        for (guint i = 0; i < w->devices->len; i++)
                if (g_str_equal(worker_dev(w, i)->name, name))
                        return errno_message(ret_error, EINVAL, "%s appears more than once in this migration", name);
        (void) worker_add_device(w, name, source, NULL, 0, VFIO_STATE_ERROR);
        return 0;
}

/* From the verdicts the map keeps: the call that starts a job asks no
 * driver anything before it has replied. A verdict a busy driver left is
 * unknown, and refused as such without allow-unknown; with it, the job's
 * worker has the driver asked again before anything moves. */
static int check_compatibility(const Admission *a, Worker *w, char **ret_error) {
        for (unsigned p = 0; p < w->pairs && w->kind == MIGRATION_MIGRATE; p++) {
                WorkerDevice *source = worker_dev(w, p);
                const char *s = source->name, *t = worker_dev(w, p + w->pairs)->name;
                const Judgement *v = compat_map_kept_verdict(a->map, &NODE_OF_DEVICE(s), &NODE_OF_DEVICE(t));

                if (v && v->verdict == VERDICT_UNKNOWN && !w->options.allow_unknown)
                        return errno_message(ret_error, ENOANO, "%s cannot go into %s: %s (option allow-unknown)", s, t,
                                    v->reason);
                if (!v || v->verdict == VERDICT_INCOMPATIBLE)
                        return errno_message(ret_error, EPROTONOSUPPORT, "%s cannot go into %s: %s", s, t,
                                    v ? v->reason : "no identity");
                source->ask_again = v->verdict == VERDICT_UNKNOWN && v->retry;
        }
        return 0;
}

static int open_device(const Admission *a, WorkerDevice *d, char **ret_error) {
        const Device *info = registry_get_device(a->registry, d->name);
        g_autofree char *why = NULL, *driver = g_strdup(info->driver);
        MigrationSupport support;
        int r;

        r = backend_open_device(a->backend, info, &d->handle, &why);
        if (r == -EBUSY)
                return errno_message(ret_error, EBUSY, "%s", why ? why : d->name);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s", why ? why : g_strerror(-r));
        /* the kernel backend learns them now, for its siblings too */
        r = backend_learn_migration(a->backend, d->name, d->handle, &support, &d->flags);
        if (r >= 0 && support == MIGRATION_SUPPORT_NONE) {
                /* closed at once: left as it was found, for whoever uses it */
                g_clear_pointer(&d->handle, device_handle_close);
                return admission_refuse_not_migratable(d->name, driver, ret_error);
        }
        if (r >= 0)
                r = d->handle->ops->get_state(d->handle, &d->state);
        if (r < 0)
                return errno_message(ret_error, EIO, "%s: cannot query migration: %s", d->name, g_strerror(-r));
        /* learned, as its support is: MigrationState shows it, a refusal below included */
        registry_set_device_state(a->registry, d->name, fsm_state_to_string(d->state));
        /* A source must run; a target may also be stopped, e.g. the source
         * of an earlier migration taking its state back. */
        if (d->state != VFIO_STATE_RUNNING && (d->source || d->state != VFIO_STATE_STOP))
                return errno_message(ret_error, EBUSY, "%s is in state %s, not %s", d->name, fsm_state_to_string(d->state),
                            d->source ? "running" : "running or stop");
        return 0;
}

/* A refusal for compatibility would hide that a device is not free at
 * all, which is what its user needs to hear first. Only a call being
 * refused pays for the look into /proc. */
static int prefer_busy(const Admission *a, Worker *w, int r, char **ret_error) {
        for (guint i = 0; i < w->devices->len; i++) {
                const char *name = worker_dev(w, i)->name;
                g_autofree char *holder = backend_find_holder(a->backend, name);

                if (*holder) {
                        g_free(*ret_error);
                        return errno_message(ret_error, EBUSY, "%s is held by %s", name, holder);
                }
        }
        return r;
}

static int check_p2p(Worker *w, char **ret_error) {
        if (w->pairs == 1 || w->options.allow_no_p2p)
                return 0;
        for (guint i = 0; i < w->devices->len; i++)
                if (!(worker_dev(w, i)->flags & VFIO_MIGRATION_P2P))
                        return errno_message(ret_error, EOPNOTSUPP, "%s does not support P2P states, so it cannot be quiesced "
                                    "with the rest of the group (option allow-no-p2p)", worker_dev(w, i)->name);
        return 0;
}

static void setup_identity(const Admission *a, Worker *w) {
        WorkerDevice *s = worker_dev(w, 0);
        const Device *d = registry_get_device(a->registry, s->name);

        w->identity.migration_type = g_strdup(d->migration_type);
        w->identity.migration_version = g_strdup(d->migration_version);
        w->identity.device = g_strdup(d->name);
        w->identity.iommu = g_strdup(d->iommu);
        w->identity.migration_flags = s->flags;
}

int admission_check(const Admission *a, Worker *w, char **sources, char **targets, char **ret_error) {
        int r = 0;

        for (char **s = sources; r >= 0 && s && *s; s++)
                r = add_device(a, w, *s, true, ret_error);
        for (char **t = targets; r >= 0 && t && *t; t++)
                r = add_device(a, w, *t, false, ret_error);
        if (r >= 0 && (r = check_compatibility(a, w, ret_error)) < 0)
                r = prefer_busy(a, w, r, ret_error);
        for (guint i = 0; r >= 0 && i < w->devices->len; i++)
                r = open_device(a, worker_dev(w, i), ret_error);
        if (r >= 0)
                r = check_p2p(w, ret_error);
        if (r >= 0 && w->kind == MIGRATION_SAVE)
                setup_identity(a, w);
        return r;
}
