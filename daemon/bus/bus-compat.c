/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "compat/compat-map.h"
#include "compat/identities.h"
#include "iommu-facet.h"
#include "log.h"
#include "vdpa-facet.h"
#include "names.h"
#include "bus/polkit.h"
#include "migration/probe.h"
#include "vfiomig-names.h"

static const Device *lookup(BusContext *c, sd_bus_message *msg, char **ret_name, sd_bus_error *error) {
        if (bus_read_device_name(msg, ret_name, error) < 0)
                return NULL;
        return bus_lookup_device(c->registry, *ret_name, error);
}

int bus_method_get_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        const Device *d = lookup(c, msg, &name, error);

        if (!d)
                return -ENODEV;
        return sd_bus_reply_method_return(msg, "ss", d->migration_type, d->migration_version);
}

/* The identity as another host's CheckIdentityEx() takes it. */
int bus_method_get_identity_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        const Device *d = lookup(c, msg, &name, error);

        if (!d)
                return -ENODEV;
        return sd_bus_reply_method_return(msg, "a{ss}", 4, "type", d->migration_type, "version",
                                          d->migration_version, "iommu", d->iommu, "vdpa", d->vdpa);
}

static int reply_judgement(sd_bus_message *msg, const Judgement *j) {
        return sd_bus_reply_method_return(msg, "sss", verdict_to_string(j->verdict), basis_to_string(j->basis),
                                          j->reason);
}

int bus_method_check_compatibility(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *source = NULL, *target = NULL;
        const Judgement *j;

        if (!lookup(c, msg, &source, error) || !lookup(c, msg, &target, error))
                return -ENODEV;
        j = compat_map_verdict(identities_map(c->identities), &NODE_OF_DEVICE(source), &NODE_OF_DEVICE(target));
        if (!j)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "%s or %s has no identity yet", source,
                                         target);
        return reply_judgement(msg, j);
}

static int check_remote_identity(const char *type, const char *version, const char *iommu, const char *vdpa,
                                 Identity **ret, sd_bus_error *error) {
        g_autofree char *facet = NULL, *vdpa_facet = NULL, *why = NULL;

        if (!vendor_string_valid(type)) {
                g_autofree char *q = name_quote(type);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is not a migration type: 1 to 4096 printable ASCII characters", q);
        }
        if (*version && !vendor_string_valid(version))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "a migration version is 0 to 4096 printable ASCII characters");
        if (iommu_facet_canonicalize(iommu, &facet, &why) < 0 || vdpa_facet_canonicalize(vdpa, &vdpa_facet, &why) < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s", why);
        if (*vdpa_facet && !g_str_equal(type, VDPA_MIGRATION_TYPE))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "a vDPA facet comes with migration type %s, not %s", VDPA_MIGRATION_TYPE,
                                         type);
        *ret = identities_remote(type, version);
        free_and_strdup(&(*ret)->iommu, facet);
        if (g_str_equal(type, VDPA_MIGRATION_TYPE)) {
                (*ret)->basis = BASIS_FEATURES;
                free_and_strdup(&(*ret)->vdpa, vdpa_facet);
        }
        return 0;
}

/* A migration type and version as another host reports them. */
static int read_remote_identity(sd_bus_message *msg, Identity **ret, sd_bus_error *error) {
        const char *type, *version;
        int r;

        r = sd_bus_message_read(msg, "ss", &type, &version);
        if (r < 0)
                return r;
        return check_remote_identity(type, version, "", "", ret, error);
}

/* The same as GetIdentityEx() reports it: a dictionary of facets. */
static int read_remote_identity_ex(sd_bus_message *msg, Identity **ret, sd_bus_error *error) {
        const char *keys[] = { "type", "version", "iommu", "vdpa" }, *values[G_N_ELEMENTS(keys)] = { NULL, "", "", "" };
        bool seen[G_N_ELEMENTS(keys)] = {};
        const char *key, *value;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(msg, "{ss}", &key, &value)) > 0) {
                size_t i = 0;

                while (i < G_N_ELEMENTS(keys) && !g_str_equal(key, keys[i]))
                        i++;
                if (i == G_N_ELEMENTS(keys) || seen[i]) {
                        g_autofree char *q = name_quote(key);

                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "identity key %s is %s "
                                                 "(keys: type, version, iommu, vdpa)", q,
                                                 i == G_N_ELEMENTS(keys) ? "unknown" : "given twice");
                }
                seen[i] = true;
                values[i] = value;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        if (!values[0])
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "identity without a type");
        return check_remote_identity(values[0], values[1], values[2], values[3], ret, error);
}

/* An identity no node here has may make vfiomigd write its version into
 * drivers' migration_version attributes, and is remembered for a while:
 * that takes the right to migrate. Root passes without asking. Returns
 * as polkit_verify() does. */
static int verify_remote_identity(BusContext *c, sd_bus_message *msg, const Identity *id, sd_bus_error *error) {
        if (compat_map_knows(identities_map(c->identities), id->type, id->version))
                return 1;
        return polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE,
                             (const char *[]) { "type", id->type, "version", id->version, NULL }, c->polkit, error);
}

static int check_identity(sd_bus_message *msg, BusContext *c, bool ex, sd_bus_error *error) {
        g_autoptr(Identity) id = NULL;
        g_autofree char *target = NULL;
        const Judgement *j;
        int r;

        r = ex ? read_remote_identity_ex(msg, &id, error) : read_remote_identity(msg, &id, error);
        if (r >= 0)
                r = bus_read_device_name(msg, &target, error);
        if (r < 0)
                return r;
        r = verify_remote_identity(c, msg, id, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* looked up only now: polkit may have taken a while */
        if (!bus_lookup_device(c->registry, target, error))
                return -ENODEV;
        j = compat_map_verdict_for(identities_map(c->identities), id, &NODE_OF_DEVICE(target));
        if (!j)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "%s has no identity yet", target);
        return reply_judgement(msg, j);
}

int bus_method_check_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return check_identity(msg, userdata, false, error);
}

int bus_method_check_identity_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return check_identity(msg, userdata, true, error);
}

typedef struct FindOptions {
        bool include_busy, existing_only, include_unknown;
} FindOptions;

static int opt_flag(sd_bus_message *msg, const char *name, void *userdata, sd_bus_error *error) {
        FindOptions *o = userdata;
        int b, r;

        r = sd_bus_message_read(msg, "b", &b);
        if (r < 0)
                return r;
        if (g_str_equal(name, "include-busy"))
                o->include_busy = b;
        else if (g_str_equal(name, "existing-only"))
                o->existing_only = b;
        else
                o->include_unknown = b;
        return 0;
}

static const BusOption find_options[] = {
        { "include-busy", "b", opt_flag },
        { "existing-only", "b", opt_flag },
        { "include-unknown", "b", opt_flag },
        {}
};

/* Whether a node can take state now: an idle device, or a type with
 * instances left. */
static bool usable(BusContext *c, const Node *node, const FindOptions *o) {
        const MdevType *t;
        const Device *d;

        switch (node->kind) {
        case NODE_MDEV_TYPE:
                t = registry_get_type(c->registry, node->name);
                return !o->existing_only && t && t->available_instances > 0;
        case NODE_DEVICE:
                d = registry_get_device(c->registry, node->name);
                return d && (o->include_busy || !device_is_taken(d));
        }
        return false;
}

/* FindTargets' kind column: "device", "mdev-type", or "vdpa-type" for a
 * vDPA management device's class. */
static const char *node_kind_name(BusContext *c, const Node *node) {
        const MdevType *t;

        if (node->kind == NODE_DEVICE)
                return "device";
        t = registry_get_type(c->registry, node->name);
        return t && t->kind == DEVICE_KIND_VDPA ? "vdpa-type" : "mdev-type";
}

static int find_targets(sd_bus_message *msg, BusContext *c, bool ex, sd_bus_error *error) {
        g_autoptr(Identity) id = NULL;
        g_autoptr(GArray) targets = NULL;
        FindOptions o = {};
        sd_bus_message *reply = NULL;
        int r;

        r = ex ? read_remote_identity_ex(msg, &id, error) : read_remote_identity(msg, &id, error);
        if (r >= 0)
                r = bus_read_options(msg, find_options, &o, error);
        if (r >= 0)
                r = verify_remote_identity(c, msg, id, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* the kernel frees instances without a uevent: read them now */
        backend_refresh_types(c->backend);
        targets = compat_map_candidates(identities_map(c->identities), id, o.include_unknown);    /* best first */
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        for (guint i = 0; r >= 0 && i < targets->len; i++) {
                const CompatTarget *t = &g_array_index(targets, CompatTarget, i);

                if (!usable(c, &t->node, &o))
                        continue;
                r = sd_bus_message_append(reply, "(ssss)", node_kind_name(c, &t->node),
                                          t->node.name, verdict_to_string(t->judgement->verdict),
                                          basis_to_string(t->judgement->basis));
        }
        return bus_send_array_reply(reply, r);
}

int bus_method_find_targets(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return find_targets(msg, userdata, false, error);
}

int bus_method_find_targets_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return find_targets(msg, userdata, true, error);
}

/* A device name, or PARENT/TYPE-ID for an mdev type. */
static int read_probe_node(sd_bus_message *msg, NodeKind *ret_kind, char **ret, sd_bus_error *error) {
        const char *s, *slash;
        int r;

        r = sd_bus_message_read(msg, "s", &s);
        if (r < 0)
                return r;
        slash = strchr(s, '/');
        if (slash) {
                g_autofree char *parent = g_strndup(s, slash - s);

                if (!name_is_sysfs_component(parent) || !name_is_sysfs_component(slash + 1)) {
                        g_autofree char *q = name_quote(s);

                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not PARENT/TYPE-ID", q);
                }
                *ret_kind = NODE_MDEV_TYPE;
                *ret = g_strdup(s);
                return 0;
        }
        *ret_kind = NODE_DEVICE;
        *ret = name_normalize_device(s);
        if (!*ret) {
                g_autofree char *q = name_quote(s);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is neither a device name nor PARENT/TYPE-ID", q);
        }
        return 0;
}

/* Probe() and ForgetProbe(): SOURCE, TARGET and the options. */
static int read_probe_pair(sd_bus_message *msg, NodeKind *ret_source_kind, char **ret_source,
                           NodeKind *ret_target_kind, char **ret_target, sd_bus_error *error) {
        int r;

        r = read_probe_node(msg, ret_source_kind, ret_source, error);
        if (r >= 0)
                r = read_probe_node(msg, ret_target_kind, ret_target, error);
        if (r >= 0)
                r = bus_read_options(msg, NULL, NULL, error);
        return r;
}

/* One action for both: what a probe records, the manager may take back. */
static int verify_probe_pair(sd_bus_message *msg, BusContext *c, const char *source, const char *target,
                             sd_bus_error *error) {
        return polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "source", source, "target", target, NULL },
                             c->polkit, error);
}

static void unref_call(void *call) {
        sd_bus_message_unref(call);
}

/* The reply to Probe(), when the probe is done. */
static void probe_done(int error, const char *message, const Judgement *verdict, void *userdata) {
        sd_bus_message *call = userdata;

        if (error < 0)
                (void) bus_reply_method_errnof(call, error, "%s", message);
        else
                (void) sd_bus_reply_method_return(call, "sss", verdict_to_string(verdict->verdict),
                                                  basis_to_string(verdict->basis), verdict->reason);
}

int bus_method_probe(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *source = NULL, *target = NULL, *why = NULL;
        NodeKind source_kind, target_kind;
        int r;

        r = read_probe_pair(msg, &source_kind, &source, &target_kind, &target, error);
        if (r < 0)
                return r;
        /* Two temporary instances of one type are two devices; one device
         * is one. */
        if (source_kind == NODE_DEVICE && g_str_equal(source, target))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s cannot be its own target", source);

        r = verify_probe_pair(msg, c, source, target, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        r = probe_start(c->probes, &(Node) { source_kind, source }, &(Node) { target_kind, target }, probe_done,
                        sd_bus_message_ref(msg), unref_call, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        return 1;       /* replied when the probe is done */
}

/* ---- remembered probe results ---- */

int bus_method_list_probes(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) l = probe_cache_list(c->probe_cache);
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssssst)");
        for (guint i = 0; r >= 0 && i < l->len; i++) {
                const ProbeRecord *p = l->pdata[i];

                r = sd_bus_message_append(reply, "(sssssssst)", p->source_type, p->source_version, p->target_type,
                                          p->target_version, verdict_to_string(p->verdict), p->reason, p->drivers,
                                          p->kernel, p->time_usec);
        }
        return bus_send_array_reply(reply, r);
}

/* A probe's end as Probe() names it, to the identity the map has for it:
 * what probe results are kept by. */
static const Identity *probe_node_identity(BusContext *c, const char *name, NodeKind kind, sd_bus_error *error) {
        const Identity *id = compat_map_identity(identities_map(c->identities), &(Node) { kind, name });

        if (!id)
                sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "No %s %s here, or it has no identity yet",
                                  kind == NODE_MDEV_TYPE ? "mdev type" : "device", name);
        return id;
}

int bus_method_forget_probe(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *source = NULL, *target = NULL, *why = NULL;
        NodeKind source_kind, target_kind;
        const Identity *s, *t;
        int r;

        r = read_probe_pair(msg, &source_kind, &source, &target_kind, &target, error);
        if (r < 0)
                return r;

        r = verify_probe_pair(msg, c, source, target, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        s = probe_node_identity(c, source, source_kind, error);
        t = s ? probe_node_identity(c, target, target_kind, error) : NULL;
        if (!s || !t)
                return -ENODEV;
        r = probes_forget(c->probes, s->type, s->version, t->type, t->version, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        log_info("Forgot the probe result %s %s -> %s %s (asked for %s -> %s by %s)", s->type, s->version, t->type,
                 t->version, source, target, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, "ssss", s->type, s->version, t->type, t->version);
}

int bus_method_forget_all_probes(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *why = NULL;
        unsigned n;
        int r;

        r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;
        r = polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "source", "*", "target", "*", NULL },
                          c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        r = probes_forget_all(c->probes, &n, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        log_info("Forgot all %u probe results (asked by %s)", n, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, "u", n);
}
