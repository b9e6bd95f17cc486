/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "backend/vdpa-kernel.h"
#include "log.h"
#include "names.h"
#include "util.h"
#include "vdpa-facet.h"

struct VdpaKernel {
        char *replay_dir;
        VdpaNetlink *nl;
        int last_error;                 /* of the last connect, logged once */
        GHashTable *parents;            /* names of the parents we added */
};

VdpaKernel *vdpa_kernel_new(const char *replay_dir) {
        VdpaKernel *k = g_new0(VdpaKernel, 1);

        k->replay_dir = g_strdup(replay_dir);
        k->parents = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        return k;
}

void vdpa_kernel_free(VdpaKernel *k) {
        if (!k)
                return;
        vdpa_netlink_free(k->nl);
        g_free(k->replay_dir);
        g_hash_table_destroy(k->parents);
        g_free(k);
}

static VdpaNetlink *connection(VdpaKernel *k) {
        int r;

        if (k->nl)
                return k->nl;
        r = vdpa_netlink_open(k->replay_dir, &k->nl);
        if (r < 0 && r != k->last_error) {
                if (r == -ENOENT)
                        log_debug("No vdpa netlink family (vdpa.ko not loaded): no vDPA devices");
                else
                        log_warning_errno(r, "Cannot ask the kernel about vDPA devices: %m");
        }
        k->last_error = r < 0 ? r : 0;
        return r < 0 ? NULL : k->nl;
}

/* A failed request may have left the socket out of step: start afresh. */
static void disconnect(VdpaKernel *k) {
        g_clear_pointer(&k->nl, vdpa_netlink_free);
}

const char *vdpa_kernel_mgmt_parent(const char *mgmtdev) {
        const char *slash = strrchr(mgmtdev, '/');

        return slash ? slash + 1 : mgmtdev;
}

char *vdpa_kernel_device_facet(const VdpaDeviceInfo *info) {
        VdpaFacet f = {
                .known = info->device_id != 0,
                .device_id = info->device_id,
                .has_offered = info->has_features,
                .offered = info->features,
                .has_negotiated = info->has_negotiated,
                .negotiated = info->negotiated,
        };

        /* the kernel negotiates only what the device offers: a reply that
         * says otherwise tells nothing about the offer */
        if (f.has_offered && f.has_negotiated && (f.negotiated & ~f.offered))
                f.has_offered = false;
        if (info->device_id == VIRTIO_ID_NET) {
                f.mtu = info->has_mtu ? info->mtu : 0;
                f.vqp = info->has_max_vq_pairs ? info->max_vq_pairs : 0;
        } else if (info->device_id == VIRTIO_ID_BLOCK) {
                f.blk_size = info->has_blk_size ? info->blk_size : 0;
                f.queues = info->has_num_queues ? info->num_queues : 0;
        }
        return vdpa_facet_format(&f);
}

char *vdpa_kernel_mgmt_facet(const VdpaMgmtInfo *info, uint32_t device_id) {
        /* vduse states 0: its devices offer what their creators choose */
        VdpaFacet f = {
                .known = true,
                .device_id = device_id,
                .has_offered = info->has_supported_features && info->supported_features != 0,
                .offered = info->supported_features,
                .config_any = true,
        };

        return vdpa_facet_format(&f);
}

Device *vdpa_kernel_device(VdpaKernel *k, const char *name, const char *syspath, const char *driver) {
        g_auto(VdpaDeviceInfo) info = {};
        g_autoptr(Device) d = device_new(name, DEVICE_KIND_VDPA);
        g_autofree char *facet = NULL;
        VdpaNetlink *nl = connection(k);
        int r = nl ? vdpa_netlink_get_device(nl, name, &info) : k->last_error;

        if (r == -ENODEV)
                return NULL;
        device_set_own(&d->sysfs_path, g_strdup(syspath));
        device_set_string(&d->driver, driver);
        d->migration_support = MIGRATION_SUPPORT_NONE;
        if (r < 0) {
                if (nl)
                        log_warning_errno(r, "vDPA device %s: the kernel did not describe it: %m", name);
                disconnect(k);
                return g_steal_pointer(&d);
        }
        if (info.mgmtdev && name_is_sysfs_component(vdpa_kernel_mgmt_parent(info.mgmtdev)))
                device_set_string(&d->parent, vdpa_kernel_mgmt_parent(info.mgmtdev));
        facet = vdpa_kernel_device_facet(&info);
        device_set_vdpa(d, facet);
        return g_steal_pointer(&d);
}

static void add_mgmt(Registry *r, const VdpaMgmtInfo *m, GHashTable *seen) {
        const char *name = vdpa_kernel_mgmt_parent(m->name);
        Parent *p;

        if (!name_is_sysfs_component(name))
                return;
        p = parent_new(name);
        free_and_strdup(&p->driver, m->name);
        registry_add_parent(r, p);
        g_hash_table_add(seen, g_strdup(name));
        for (uint32_t id = 1; id < 64; id++) {
                MdevType *t;

                if (!(m->classes & (UINT64_C(1) << id)))
                        continue;
                t = vdpa_type_new(name, id);
                g_free(t->vdpa);
                t->vdpa = vdpa_kernel_mgmt_facet(m, id);
                registry_add_type(r, t);
        }
}

void vdpa_kernel_sync_mgmt(VdpaKernel *k, Registry *r) {
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GArray) list = NULL;
        VdpaNetlink *nl = connection(k);
        GHashTableIter i;
        const char *name;
        int e;

        if (!nl)
                return;
        e = vdpa_netlink_list_mgmt(nl, &list);
        if (e < 0) {
                log_warning_errno(e, "Cannot list vDPA management devices: %m");
                disconnect(k);
                return;
        }
        for (guint j = 0; j < list->len; j++)
                add_mgmt(r, &g_array_index(list, VdpaMgmtInfo, j), seen);
        g_hash_table_iter_init(&i, k->parents);
        while (g_hash_table_iter_next(&i, (gpointer *) &name, NULL))
                if (!g_hash_table_contains(seen, name)) {
                        log_info("vDPA management device %s went away", name);
                        registry_remove_parent(r, name);
                }
        g_hash_table_destroy(k->parents);
        k->parents = g_steal_pointer(&seen);
}
