/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "log.h"
#include "names.h"
#include "util.h"
#include "vfiomig-names.h"

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_backend(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;

        return sd_bus_message_append(reply, "s", backend_name(c->backend));
}

static int property_get_device_count(sd_bus *bus, const char *path, const char *interface,
                                     const char *property, sd_bus_message *reply, void *userdata,
                                     sd_bus_error *error) {
        BusContext *c = userdata;

        return sd_bus_message_append(reply, "u", registry_device_count(c->registry));
}

/* One row of ListDevices: strings the registry holds or tables give,
 * none made for the row. */
static int append_device_row(sd_bus_message *reply, const Device *d) {
        const char *const fields[] = {
                d->name, device_kind_to_string(d->kind), d->driver, d->mdev_type,
                migration_flags_text(d->migration_flags), d->migration_state, d->domain,
                migration_support_to_string(d->migration_support), d->parent,
        };
        int r = sd_bus_message_open_container(reply, 'r', "sssssssss");

        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(fields); i++)
                r = bus_append_string(reply, fields[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int method_list_devices(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) devices = registry_list_devices(c->registry);
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssssss)");
        for (guint i = 0; r >= 0 && i < devices->len; i++)
                r = append_device_row(reply, devices->pdata[i]);
        return bus_send_array_reply(reply, r);
}

static int method_list_types(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) types = NULL;
        sd_bus_message *reply = NULL;
        int r;

        backend_refresh_types(c->backend);
        types = registry_list_types(c->registry);

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssuss)");
        for (guint i = 0; r >= 0 && i < types->len; i++) {
                const MdevType *t = types->pdata[i];

                r = sd_bus_message_append(reply, "(sssuss)", t->parent, t->id, t->name, t->available_instances,
                                          t->device_api, t->description);
        }
        return bus_send_array_reply(reply, r);
}

static int method_get_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL, *path = NULL, *holder = NULL;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r < 0)
                return r;
        if (!bus_lookup_device(c->registry, name, error))
                return -ENODEV;
        /* the one place a client asks after a device: whoever else holds
         * it now shows in Holder (a listing never looks) */
        holder = backend_find_holder(c->backend, name);
        path = bus_device_path(name);
        return sd_bus_reply_method_return(msg, "o", path);
}

static int read_plain_name(sd_bus_message *msg, const char *what, const char **ret, sd_bus_error *error) {
        int r = sd_bus_message_read(msg, "s", ret);

        if (r < 0)
                return r;
        if (!name_is_sysfs_component(*ret)) {
                g_autofree char *q = name_quote(*ret);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not a valid %s name", q, what);
        }
        return 0;
}

static const MdevType *lookup_type(BusContext *c, const char *parent, const char *type_id, sd_bus_error *error) {
        const MdevType *t;
        g_autoptr(GPtrArray) types = NULL;
        g_autoptr(GString) ids = NULL;

        if (!registry_get_parent(c->registry, parent)) {
                sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "No mdev parent device %s", parent);
                return NULL;
        }
        t = registry_find_type(c->registry, parent, type_id);
        if (t)
                return t;
        types = registry_list_parent_types(c->registry, parent);
        ids = g_string_new(NULL);
        for (guint i = 0; i < types->len; i++)
                g_string_append_printf(ids, "%s%s", i ? ", " : "", ((MdevType *) types->pdata[i])->id);
        sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "mdev parent %s has no type %s (it has: %s)",
                          parent, type_id, ids->len ? ids->str : "none");
        return NULL;
}

static int method_create_mdev(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        const char *parent, *type_id, *uuid_arg;
        g_autofree char *uuid = NULL;
        const MdevType *t;
        int r;

        r = read_plain_name(msg, "mdev parent", &parent, error);
        if (r < 0)
                return r;
        r = read_plain_name(msg, "mdev type", &type_id, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &uuid_arg);
        if (r < 0)
                return r;
        if (*uuid_arg && !name_is_uuid(uuid_arg)) {
                g_autofree char *q = name_quote(uuid_arg);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is not a valid UUID (expected 8-4-4-4-12 hex digits)", q);
        }
        r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;

        /* Authorized before anything is looked up: what is looked up before
         * a slow answer is stale after it, and a refused caller learns
         * nothing of which parents and types exist. */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MANAGE,
                          (const char *[]) { "parent", parent, "type", type_id, NULL }, c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;       /* polkit will answer, then we are called again */

        t = lookup_type(c, parent, type_id, error);
        if (!t)
                return -ENODEV;
        if (t->kind == DEVICE_KIND_VDPA)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is a vDPA management device: vfiomigd makes no vDPA devices "
                                         "(vdpa dev add makes one, with the features and config to give it)", parent);
        uuid = *uuid_arg ? g_ascii_strdown(uuid_arg, -1) : g_uuid_string_random();
        /* A duplicate UUID is left for the kernel (or testbed) to refuse:
         * it is the authority, and our registry may lag a uevent behind. */
        r = backend_create_mdev(c->backend, t, uuid);
        if (r == -EUSERS)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY,
                                         "%s: mdev type %s has no available instances left", parent, type_id);
        if (r == -EEXIST)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_ALREADY_EXISTS,
                                         "%s: an mdev with UUID %s already exists", parent, uuid);
        if (r < 0)
                return bus_error_device_errno(error, r, parent, "failed to create %s mdev %s", type_id, uuid);

        log_info("Created mdev %s of type %s on %s", uuid, type_id, parent);
        return sd_bus_reply_method_return(msg, "s", uuid);
}

static int method_remove_mdev(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL, *holder = NULL;
        const Device *d;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r < 0)
                return r;
        if (name_is_vdpa(name))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not an mdev UUID", name);
        r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;

        /* as CreateMdev(): authorized, then looked up */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "device", name, NULL }, c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;       /* polkit will answer, then we are called again */

        d = bus_lookup_device(c->registry, name, error);
        if (!d)
                return -ENODEV;
        if (d->kind != DEVICE_KIND_MDEV)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is a %s device, not an mdev", name, device_kind_to_string(d->kind));
        if (d->busy)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s is held by %s; cancel or wait for it first",
                                         name, d->holder);
        /* the kernel's remove would wait for the holder to let go, and
         * the daemon with it; a domain's device is refused too, with its
         * QEMU named when /proc shows it */
        holder = backend_find_holder(c->backend, name);
        if (*holder)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s is held by %s", name, holder);
        d = registry_get_device(c->registry, name);
        r = backend_remove_mdev(c->backend, d);
        if (r < 0)
                return bus_error_device_errno(error, r, name, "failed to remove mdev");

        log_info("Removed mdev %s", name);
        return sd_bus_reply_method_return(msg, NULL);
}

/* Learns a device's migration support now, which enumeration never does:
 * opening a vfio-pci function resets it. So nothing is opened that a job,
 * a domain or another process holds (the kernel refuses a second open
 * before any reset), and the device is closed again before the reply. */
static int method_refresh_device(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL, *why = NULL;
        g_autoptr(DeviceHandle) h = NULL;
        g_auto(GStrv) flagv = NULL;
        sd_bus_message *reply = NULL;
        MigrationSupport support;
        const Device *d;
        uint32_t flags;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r < 0)
                return r;
        r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;

        /* Authorized, then looked up, as Probe(); with the details of
         * Resume(), the other call of org.vfiomig1.migrate on one device
         * that moves no state, so that a rule on "devices" covers it. */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE, (const char *[]) { "devices", name, "device", name, NULL },
                          c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;       /* polkit will answer, then we are called again */

        d = bus_lookup_device(c->registry, name, error);
        if (!d)
                return -ENODEV;
        if (device_is_taken(d)) {
                g_autofree char *holder = device_describe_holder(d);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s is held by %s", name, holder);
        }
        r = backend_open_device(c->backend, d, &h, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r == -EBUSY || r == -EOPNOTSUPP ? -r : EIO, "%s", why ? why : name);
        r = backend_learn_migration(c->backend, name, h, &support, &flags);
        g_clear_pointer(&h, device_handle_close);
        if (r < 0)
                return bus_error_set_errnof(error, EIO, "%s: cannot query migration: %s", name, g_strerror(-r));

        flagv = migration_flags_to_strv(support == MIGRATION_SUPPORT_SUPPORTED ? flags : 0);
        log_info("Refreshed %s: migration %s", name, migration_support_to_string(support));
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", migration_support_to_string(support));
        if (r >= 0)
                r = sd_bus_message_append_strv(reply, flagv);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

const sd_bus_vtable bus_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Backend", "s", property_get_backend, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DeviceCount", "u", property_get_device_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListDevices",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssssssss)", devices),
                                method_list_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListTypes",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssuss)", types),
                                method_list_types, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDevice",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("o", path),
                                method_get_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RefreshDevice",
                                SD_BUS_ARGS("s", device, "a{sv}", options),
                                SD_BUS_RESULT("s", support, "as", flags),
                                method_refresh_device, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateMdev",
                                SD_BUS_ARGS("s", parent, "s", type, "s", uuid, "a{sv}", options),
                                SD_BUS_RESULT("s", name),
                                method_create_mdev, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveMdev",
                                SD_BUS_ARGS("s", uuid, "a{sv}", options),
                                SD_BUS_NO_RESULT,
                                method_remove_mdev, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDomain",
                                SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("b", running, "a(sssssub)", hostdevs),
                                bus_method_get_domain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PrepareDomain",
                                SD_BUS_ARGS("s", xml, "a{sv}", options),
                                SD_BUS_RESULT("s", xml),
                                bus_method_prepare_domain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseDomain",
                                SD_BUS_ARGS("s", name, "a{sv}", options),
                                SD_BUS_RESULT("u", removed),
                                bus_method_release_domain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetIdentity",
                                SD_BUS_ARGS("s", device),
                                SD_BUS_RESULT("s", type, "s", version),
                                bus_method_get_identity, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetIdentityEx",
                                SD_BUS_ARGS("s", device),
                                SD_BUS_RESULT("a{ss}", identity),
                                bus_method_get_identity_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CheckCompatibility",
                                SD_BUS_ARGS("s", source, "s", target),
                                SD_BUS_RESULT("s", verdict, "s", basis, "s", reason),
                                bus_method_check_compatibility, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CheckIdentity",
                                SD_BUS_ARGS("s", type, "s", version, "s", target),
                                SD_BUS_RESULT("s", verdict, "s", basis, "s", reason),
                                bus_method_check_identity, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CheckIdentityEx",
                                SD_BUS_ARGS("a{ss}", identity, "s", target),
                                SD_BUS_RESULT("s", verdict, "s", basis, "s", reason),
                                bus_method_check_identity_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FindTargets",
                                SD_BUS_ARGS("s", type, "s", version, "a{sv}", options),
                                SD_BUS_RESULT("a(ssss)", targets),
                                bus_method_find_targets, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FindTargetsEx",
                                SD_BUS_ARGS("a{ss}", identity, "a{sv}", options),
                                SD_BUS_RESULT("a(ssss)", targets),
                                bus_method_find_targets_ex, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Probe",
                                SD_BUS_ARGS("s", source, "s", target, "a{sv}", options),
                                SD_BUS_RESULT("s", verdict, "s", basis, "s", reason),
                                bus_method_probe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListProbes",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssssssst)", probes),
                                bus_method_list_probes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForgetProbe",
                                SD_BUS_ARGS("s", source, "s", target, "a{sv}", options),
                                SD_BUS_RESULT("s", source_type, "s", source_version, "s", target_type,
                                              "s", target_version),
                                bus_method_forget_probe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ForgetAllProbes",
                                SD_BUS_ARGS("a{sv}", options),
                                SD_BUS_RESULT("u", forgotten),
                                bus_method_forget_all_probes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Migrate",
                                SD_BUS_ARGS("s", source, "s", target, "a{sv}", options),
                                SD_BUS_RESULT("u", id, "o", path),
                                bus_method_migrate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Save",
                                SD_BUS_ARGS("s", source, "s", file, "a{sv}", options),
                                SD_BUS_RESULT("u", id, "o", path),
                                bus_method_save, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Load",
                                SD_BUS_ARGS("s", target, "s", file, "a{sv}", options),
                                SD_BUS_RESULT("u", id, "o", path),
                                bus_method_load, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SaveFd",
                                SD_BUS_ARGS("s", source, "h", fd, "a{sv}", options),
                                SD_BUS_RESULT("u", id, "o", path),
                                bus_method_save_fd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("LoadFd",
                                SD_BUS_ARGS("s", target, "h", fd, "a{sv}", options),
                                SD_BUS_RESULT("u", id, "o", path),
                                bus_method_load_fd, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume",
                                SD_BUS_ARGS("s", device, "a{sv}", options),
                                SD_BUS_NO_RESULT,
                                bus_method_resume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListMigrations",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(usssso)", migrations),
                                bus_method_list_migrations, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListStates",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(stsssstb)", states),
                                bus_method_list_states, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveState",
                                SD_BUS_ARGS("s", name, "a{sv}", options),
                                SD_BUS_NO_RESULT,
                                bus_method_remove_state, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MigrationNew", SD_BUS_ARGS("u", id, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MigrationRemoved", SD_BUS_ARGS("u", id, "o", path, "s", result), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceAdded", SD_BUS_ARGS("s", name, "o", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DeviceRemoved", SD_BUS_ARGS("s", name, "o", path), 0),
        SD_BUS_VTABLE_END
};

int bus_manager_register(BusContext *c) {
        int r;

        r = sd_bus_add_object_vtable(c->bus, NULL, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                     bus_manager_vtable, c);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(c->bus, NULL, VFIOMIG_OBJECT_PATH);
}

static void notify_device(BusContext *c, RegistryEvent event, const Device *d) {
        g_autofree char *path = bus_device_path(d->name);

        switch (event) {
        case REGISTRY_DEVICE_ADDED:
                log_info("Device %s added (%s, %s)", d->name, device_kind_to_string(d->kind), d->driver);
                (void) sd_bus_emit_interfaces_added(c->bus, path, VFIOMIG_DEVICE_INTERFACE, NULL);
                (void) sd_bus_emit_signal(c->bus, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                          "DeviceAdded", "so", d->name, path);
                break;
        case REGISTRY_DEVICE_REMOVED:
                log_info("Device %s removed", d->name);
                (void) sd_bus_emit_interfaces_removed(c->bus, path, VFIOMIG_DEVICE_INTERFACE, NULL);
                (void) sd_bus_emit_signal(c->bus, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                          "DeviceRemoved", "so", d->name, path);
                break;
        default:
                (void) sd_bus_emit_properties_changed_strv(c->bus, path, VFIOMIG_DEVICE_INTERFACE, NULL);
                return;
        }
        (void) sd_bus_emit_properties_changed(c->bus, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                              "DeviceCount", NULL);
}

static void notify_type(BusContext *c, RegistryEvent event, const MdevType *t) {
        g_autofree char *path = bus_type_path(t->key);

        if (event == REGISTRY_TYPE_ADDED)
                (void) sd_bus_emit_interfaces_added(c->bus, path, VFIOMIG_TYPE_INTERFACE, NULL);
        else if (event == REGISTRY_TYPE_REMOVED)
                (void) sd_bus_emit_interfaces_removed(c->bus, path, VFIOMIG_TYPE_INTERFACE, NULL);
        else
                (void) sd_bus_emit_properties_changed_strv(c->bus, path, VFIOMIG_TYPE_INTERFACE, NULL);
}

void bus_registry_notify(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        BusContext *c = userdata;

        if (!c->bus)
                return;
        if (event <= REGISTRY_DEVICE_IDENTITY_CHANGED)
                notify_device(c, event, object);
        else
                notify_type(c, event, object);
}
