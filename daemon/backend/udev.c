/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libudev.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "backend/iommu-sysfs.h"
#include "backend/udev.h"
#include "backend/vdpa-kernel.h"
#include "util.h"
#include "backend/vfio.h"

#define MDEV_BUS_CLASS "/sys/class/mdev_bus"
#define MDEV_DEVICES   "/sys/bus/mdev/devices"

typedef struct UdevBackend {
        Backend backend;
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *io;
        VdpaKernel *vdpa;
} UdevBackend;

static void clear_udev_device(struct udev_device **d) {
        if (*d)
                udev_device_unref(*d);
}
#define _cleanup_udev_device_ __attribute__((cleanup(clear_udev_device)))

/* The never-merged migration_version/migration_type attributes, which
 * vendor drivers may ship. A reading failure means "none"; whether what
 * we read is acceptable is the compatibility map's business. */
static void read_vendor_identity(const char *dir, char **type, char **version) {
        char *v;

        if (sysfs_read(dir, "migration_version", &v) >= 0)
                g_free(*version), *version = v;
        if (sysfs_read(dir, "migration_type", &v) >= 0)
                g_free(*type), *type = v;
}

static MdevType *read_type(const char *parent, const char *types_dir, const char *id, const char *iommu) {
        g_autofree char *dir = g_build_filename(types_dir, id, NULL);
        MdevType *t = mdev_type_new(parent, id);
        char *v;

        free_and_strdup(&t->sysfs_path, dir);
        free_and_strdup(&t->iommu, iommu);
        /* name and description are optional in the kernel's mdev ABI */
        if (sysfs_read(dir, "name", &v) >= 0)
                g_free(t->name), t->name = v;
        if (sysfs_read(dir, "description", &v) >= 0)
                g_free(t->description), t->description = v;
        if (sysfs_read(dir, "device_api", &v) >= 0)
                g_free(t->device_api), t->device_api = v;
        if (sysfs_read_uint(dir, "available_instances", &t->available_instances) < 0)
                t->available_instances = 0;
        read_vendor_identity(dir, &t->vendor_migration_type, &t->vendor_migration_version);
        return t;
}

static void add_parent(UdevBackend *us, struct udev_device *dev) {
        Registry *r = us->backend.registry;
        const char *syspath = udev_device_get_syspath(dev);
        g_autofree char *types_dir = g_build_filename(syspath, "mdev_supported_types", NULL);
        g_autoptr(GDir) dir = g_dir_open(types_dir, 0, NULL);
        g_autofree char *iommu = NULL;
        Parent *p;
        const char *id;

        if (!dir)
                return;
        iommu = iommu_sysfs_mdev_facet(syspath);
        p = parent_new(udev_device_get_sysname(dev));
        free_and_strdup(&p->sysfs_path, syspath);
        free_and_strdup(&p->driver, udev_device_get_driver(dev));
        log_debug("mdev parent %s (%s)", p->name, syspath);
        registry_add_parent(r, p);

        while ((id = g_dir_read_name(dir)))
                if (name_is_sysfs_component(id))
                        registry_add_type(r, read_type(udev_device_get_sysname(dev), types_dir, id, iommu));
}

static void refresh_type(Registry *r, const MdevType *t) {
        unsigned n;

        if (sysfs_read_uint(t->sysfs_path, "available_instances", &n) >= 0)
                registry_set_available(r, t->key, n);
}

static void refresh_parent_types(UdevBackend *us, const char *parent) {
        Registry *r = us->backend.registry;
        g_autoptr(GPtrArray) types = registry_list_parent_types(r, parent);

        for (guint i = 0; i < types->len; i++)
                refresh_type(r, types->pdata[i]);
}

/* The node a VMM opens: the cdev if the kernel made one, else the group. */
static char *vfio_dev_node(const char *syspath, const char *group) {
        g_autofree char *vfio_dir = g_build_filename(syspath, "vfio-dev", NULL);
        g_autoptr(GDir) dir = g_dir_open(vfio_dir, 0, NULL);
        const char *n;

        while (dir && (n = g_dir_read_name(dir))) {
                g_autofree char *sub = g_build_filename(vfio_dir, n, NULL);

                if (g_str_has_prefix(n, "vfio") && sysfs_exists(sub, "dev"))
                        return g_strconcat("/dev/vfio/devices/", n, NULL);
        }
        return *group ? g_strconcat("/dev/vfio/", group, NULL) : g_strdup("");
}

/* vfio-dev/ exists exactly while a VFIO driver is bound. Asking sysfs,
 * not the uevent, also keeps a stale event (the unbind that precedes a
 * remove, handled after the device is gone) from bringing a device back. */
static bool is_vfio_device(struct udev_device *dev) {
        return sysfs_exists(udev_device_get_syspath(dev), "vfio-dev");
}

static void fill_common(Device *d, struct udev_device *dev) {
        const char *syspath = udev_device_get_syspath(dev);
        g_autofree char *type = g_strdup(""), *version = g_strdup("");
        char *v;

        device_set_own(&d->sysfs_path, g_strdup(syspath));
        device_set_string(&d->driver, udev_device_get_driver(dev));
        if (sysfs_link_basename(syspath, "iommu_group", &v) >= 0)
                device_set_own(&d->iommu_group, v);
        device_set_own(&d->vfio_dev, vfio_dev_node(syspath, d->iommu_group));
        read_vendor_identity(syspath, &type, &version);
        device_set_string(&d->vendor_migration_type, type);
        device_set_string(&d->vendor_migration_version, version);
        /* Its migration support stays unknown: only an open device tells,
         * and opening a vfio-pci function resets it, while a VMM may be
         * about to take it. A call that opens it anyway learns it
         * (backend_learn_migration), for its siblings too. */
}

static Device *device_from_mdev(struct udev_device *dev) {
        g_autofree char *name = name_normalize_device(udev_device_get_sysname(dev));
        struct udev_device *parent = udev_device_get_parent(dev);
        Device *d;
        char *v;

        if (!name || !name_is_uuid(name) || !parent || !is_vfio_device(dev))
                return NULL;
        d = device_new(name, DEVICE_KIND_MDEV);
        fill_common(d, dev);
        device_set_string(&d->parent, udev_device_get_sysname(parent));
        device_take_string(&d->iommu, iommu_sysfs_mdev_facet(udev_device_get_syspath(parent)));
        if (sysfs_link_basename(udev_device_get_syspath(dev), "mdev_type", &v) >= 0)
                device_take_string(&d->mdev_type, v);
        return d;
}

static Device *device_from_pci(struct udev_device *dev) {
        static const struct { const char *attr; size_t offset; } ids[] = {
                { "vendor", G_STRUCT_OFFSET(Device, vendor_id) },
                { "device", G_STRUCT_OFFSET(Device, device_id) },
                { "subsystem_vendor", G_STRUCT_OFFSET(Device, subsystem_vendor_id) },
                { "subsystem_device", G_STRUCT_OFFSET(Device, subsystem_device_id) },
        };
        const char *syspath = udev_device_get_syspath(dev);
        g_autofree char *name = name_normalize_device(udev_device_get_sysname(dev));
        Device *d;
        char *v;

        if (!name || !name_is_pci_address(name) || !is_vfio_device(dev))
                return NULL;
        d = device_new(name, DEVICE_KIND_PCI);
        fill_common(d, dev);
        if (iommu_sysfs_facet(syspath, &v) >= 0)
                device_take_string(&d->iommu, v);
        for (size_t i = 0; i < G_N_ELEMENTS(ids); i++)
                if (sysfs_read(syspath, ids[i].attr, &v) >= 0)
                        device_take_string(G_STRUCT_MEMBER_P(d, ids[i].offset), v);
        if (sysfs_link_basename(syspath, "physfn", &v) >= 0)
                device_take_string(&d->parent, v);
        return d;
}

static Device *device_from_vdpa(UdevBackend *us, struct udev_device *dev) {
        const char *name = udev_device_get_sysname(dev);

        if (!name_is_vdpa(name))
                return NULL;
        return vdpa_kernel_device(us->vdpa, name, udev_device_get_syspath(dev), udev_device_get_driver(dev));
}

static Device *device_from_udev(UdevBackend *us, struct udev_device *dev) {
        const char *subsystem = udev_device_get_subsystem(dev);

        if (g_strcmp0(subsystem, "mdev") == 0)
                return device_from_mdev(dev);
        if (g_strcmp0(subsystem, "pci") == 0)
                return device_from_pci(dev);
        if (g_strcmp0(subsystem, "vdpa") == 0)
                return device_from_vdpa(us, dev);
        return NULL;
}

static void enumerate_parents(UdevBackend *us) {
        g_autoptr(GDir) dir = g_dir_open(MDEV_BUS_CLASS, 0, NULL);
        const char *n;

        /* mdev_bus is a compat class of bare symlinks, invisible to
         * udev_enumerate: walk it by hand. */
        while (dir && (n = g_dir_read_name(dir))) {
                g_autofree char *path = g_build_filename(MDEV_BUS_CLASS, n, NULL);
                _cleanup_udev_device_ struct udev_device *dev = udev_device_new_from_syspath(us->udev, path);

                if (dev)
                        add_parent(us, dev);
        }
}

static int enumerate_devices(UdevBackend *us, const char *subsystem) {
        struct udev_enumerate *e = udev_enumerate_new(us->udev);
        struct udev_list_entry *l;
        int r;

        if (!e)
                return -ENOMEM;
        r = udev_enumerate_add_match_subsystem(e, subsystem);
        if (r >= 0)
                r = udev_enumerate_scan_devices(e);
        if (r < 0) {
                udev_enumerate_unref(e);
                return log_error_errno(r, "Failed to enumerate %s devices: %m", subsystem);
        }
        udev_list_entry_foreach(l, udev_enumerate_get_list_entry(e)) {
                _cleanup_udev_device_ struct udev_device *dev =
                        udev_device_new_from_syspath(us->udev, udev_list_entry_get_name(l));
                Device *d = dev ? device_from_udev(us, dev) : NULL;

                if (d)
                        backend_add_device(&us->backend, d);
        }
        udev_enumerate_unref(e);
        return 0;
}

static void handle_parent_event(UdevBackend *us, struct udev_device *dev, const char *action) {
        const char *name = udev_device_get_sysname(dev);
        const char *state = udev_device_get_property_value(dev, "MDEV_STATE");
        bool known = registry_get_parent(us->backend.registry, name) != NULL;

        if (g_strcmp0(state, "registered") == 0 ||
            (known && g_strcmp0(action, "change") == 0 && g_strcmp0(state, "unregistered") != 0)) {
                add_parent(us, dev);
                return;
        }
        if (known && (g_strcmp0(state, "unregistered") == 0 || g_strcmp0(action, "remove") == 0)) {
                log_info("mdev parent %s went away", name);
                registry_remove_parent(us->backend.registry, name);
        }
}

static void handle_device_event(UdevBackend *us, struct udev_device *dev, const char *action) {
        Registry *r = us->backend.registry;
        g_autofree char *name = name_normalize_device(udev_device_get_sysname(dev));
        g_autofree char *parent = NULL;
        const Device *old = name ? registry_get_device(r, name) : NULL;
        Device *d = NULL;

        if (!name)
                return;
        if (old)
                parent = g_strdup(old->parent);
        if (g_strcmp0(action, "remove") != 0)
                d = device_from_udev(us, dev);

        if (d) {
                if (!parent)
                        parent = g_strdup(d->parent);
                log_debug("uevent %s: %s", action, name);
                /* sysfs shows it bound again, but its driver did let go in
                 * between: maybe another build of it (a reloaded module) */
                if (old && g_strcmp0(action, "unbind") == 0)
                        backend_rebind_device(&us->backend, d);
                else
                        backend_add_device(&us->backend, d);
        } else if (old) {
                /* removed, or unbound from its VFIO driver */
                log_debug("uevent %s: %s no longer a VFIO device", action, name);
                backend_remove_device(&us->backend, name);
        }
        if (parent)
                refresh_parent_types(us, parent);
}

static void handle_virtio_event(UdevBackend *us, struct udev_device *dev) {
        struct udev_device *parent = udev_device_get_parent(dev);

        if (parent && g_strcmp0(udev_device_get_subsystem(parent), "vdpa") == 0 &&
            registry_get_device(us->backend.registry, udev_device_get_sysname(parent)))
                handle_device_event(us, parent, "change");
}

static int on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        UdevBackend *us = userdata;
        _cleanup_udev_device_ struct udev_device *dev = udev_monitor_receive_device(us->monitor);
        const char *subsystem, *action;

        if (!dev)
                return 0;
        subsystem = udev_device_get_subsystem(dev);
        action = udev_device_get_action(dev);
        if (g_strcmp0(subsystem, "mdev") == 0 || g_strcmp0(subsystem, "pci") == 0)
                handle_device_event(us, dev, action);
        if (g_strcmp0(subsystem, "vdpa") == 0) {
                /* management devices come and go with their modules, unannounced */
                vdpa_kernel_sync_mgmt(us->vdpa, us->backend.registry);
                handle_device_event(us, dev, action);
        }
        /* a virtio driver taking or leaving a vDPA device's virtio device
         * is when its features are negotiated, or reset */
        if (g_strcmp0(subsystem, "virtio") == 0)
                handle_virtio_event(us, dev);
        /* A parent can be of any subsystem (mtty, pci, ccw, ap, ...). */
        handle_parent_event(us, dev, action);
        return 0;
}

static int udev_create_mdev(Backend *s, const MdevType *type, const char *uuid) {
        UdevBackend *us = (UdevBackend *) s;
        g_autofree char *path = g_build_filename(MDEV_DEVICES, uuid, NULL);
        _cleanup_udev_device_ struct udev_device *dev = NULL;
        Device *d;
        int r;

        r = sysfs_write(type->sysfs_path, "create", uuid);
        if (r < 0)
                return r;
        /* The kernel has created and probed the device by now; add it here
         * so the caller can use it at once instead of racing the uevent. */
        dev = udev_device_new_from_syspath(us->udev, path);
        d = dev ? device_from_udev(us, dev) : NULL;
        if (d)
                backend_add_device(s, d);
        refresh_parent_types(us, type->parent);
        return 0;
}

static int udev_remove_mdev(Backend *s, const Device *device) {
        UdevBackend *us = (UdevBackend *) s;
        g_autofree char *name = g_strdup(device->name), *parent = g_strdup(device->parent);
        int r;

        if (device->kind != DEVICE_KIND_MDEV)
                return -EINVAL;
        /* a job's handle would point into freed (or, in the kernel, blocking) state */
        if (device->busy)
                return -EBUSY;
        r = sysfs_write(device->sysfs_path, "remove", "1");
        if (r < 0)
                return r;
        if (access(device->sysfs_path, F_OK) < 0 && errno == ENOENT)
                backend_remove_device(s, name);
        refresh_parent_types(us, parent);
        return 0;
}

static void udev_refresh_types(Backend *s) {
        g_autoptr(GPtrArray) types = registry_list_types(s->registry);

        for (guint i = 0; i < types->len; i++)
                refresh_type(s->registry, types->pdata[i]);
}

static int udev_vendor_judge(Backend *s, const Node *node, const char *version) {
        const Device *d;
        const MdevType *t;

        if (node->kind == NODE_MDEV_TYPE) {
                t = registry_get_type(s->registry, node->name);
                return t ? sysfs_write(t->sysfs_path, "migration_version", version) : -ENODEV;
        }
        d = registry_get_device(s->registry, node->name);
        if (!d)
                return -ENODEV;
        /* an mdev without an attribute of its own answers through its type's */
        if (d->kind == DEVICE_KIND_MDEV && !sysfs_exists(d->sysfs_path, "migration_version") &&
            (t = registry_find_type(s->registry, d->parent, d->mdev_type)))
                return sysfs_write(t->sysfs_path, "migration_version", version);
        return sysfs_write(d->sysfs_path, "migration_version", version);
}

static int udev_open_device(Backend *s, const Device *d, DeviceHandle **ret, char **ret_error) {
        return vfio_device_open(d, ret, ret_error);
}

static void udev_backend_free(Backend *s) {
        UdevBackend *us = (UdevBackend *) s;

        sd_event_source_disable_unref(us->io);
        if (us->monitor)
                udev_monitor_unref(us->monitor);
        if (us->udev)
                udev_unref(us->udev);
        vdpa_kernel_free(us->vdpa);
        g_free(us);
}

static const BackendOps udev_ops = {
        .name = "kernel",
        .create_mdev = udev_create_mdev,
        .remove_mdev = udev_remove_mdev,
        .refresh_types = udev_refresh_types,
        .open_device = udev_open_device,
        .vendor_judge = udev_vendor_judge,
        .free = udev_backend_free,
};

static int start_monitor(UdevBackend *us, sd_event *event) {
        /* Without udevd (minimal hosts, our VM tier) nobody re-broadcasts
         * on the "udev" group; we only read sysfs, so kernel events do. */
        const char *group = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
        int r;

        us->monitor = udev_monitor_new_from_netlink(us->udev, group);
        if (!us->monitor)
                return log_error_errno(errno ? errno : ENOMEM, "Failed to open the %s uevent monitor: %m", group);
        (void) udev_monitor_set_receive_buffer_size(us->monitor, 4 * 1024 * 1024);
        r = udev_monitor_enable_receiving(us->monitor);
        if (r < 0)
                return log_error_errno(r, "Failed to listen for uevents: %m");
        r = sd_event_add_io(event, &us->io, udev_monitor_get_fd(us->monitor), EPOLLIN, on_uevent, us);
        if (r < 0)
                return log_error_errno(r, "Failed to watch uevents: %m");
        log_debug("Listening for uevents from %s", group);
        return 0;
}

int udev_backend_new(sd_event *event, Registry *r, const char *vdpa_replay, Backend **ret) {
        g_autoptr(Backend) s = NULL;
        UdevBackend *us = g_new0(UdevBackend, 1);
        int k;

        s = &us->backend;
        backend_init(s, &udev_ops, r);
        us->vdpa = vdpa_kernel_new(vdpa_replay);
        us->udev = udev_new();
        if (!us->udev)
                return log_error_errno(ENOMEM, "Failed to create udev context: %m");

        /* Monitor first, so nothing that appears while we enumerate is lost;
         * replaying an event for a known device is harmless. */
        k = start_monitor(us, event);
        if (k < 0)
                return k;
        enumerate_parents(us);
        vdpa_kernel_sync_mgmt(us->vdpa, r);
        k = enumerate_devices(us, "mdev");
        if (k >= 0)
                k = enumerate_devices(us, "pci");
        if (k >= 0)
                k = enumerate_devices(us, "vdpa");
        if (k < 0)
                return k;
        *ret = g_steal_pointer(&s);
        return 0;
}
