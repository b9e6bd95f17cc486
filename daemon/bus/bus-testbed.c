/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>

#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "compat/compat-map.h"
#include "registry.h"
#include "fsm.h"
#include "log.h"
#include "backend/testbed.h"
#include "vfiomig-names.h"

/* org.vfiomig1.Testbed: looking into and breaking simulated devices, for
 * tests and demos. Exists only when the testbed backend runs. */

/* Changing a device needs org.vfiomig1.manage, asked before the device is
 * looked up: polkit may take a while, and the device may go meanwhile. */
static int check_manage(BusContext *c, sd_bus_message *msg, const char *name, sd_bus_error *error) {
        return polkit_verify(msg, VFIOMIG_POLKIT_MANAGE, (const char *[]) { "device", name, NULL }, c->polkit, error);
}

static SimDevice *get_sim(BusContext *c, const char *name, sd_bus_error *error) {
        SimDevice *sim = testbed_get_sim(c->backend, name);

        if (!sim)
                sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "No testbed device %s", name);
        return sim;
}

/* For the reading methods, which need no authorization. */
static SimDevice *lookup_sim(BusContext *c, sd_bus_message *msg, sd_bus_error *error) {
        g_autofree char *name = NULL;

        if (bus_read_device_name(msg, &name, error) < 0)
                return NULL;
        return get_sim(c, name, error);
}

static int method_get_digest(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        SimDevice *sim = lookup_sim(userdata, msg, error);
        g_autofree char *digest = NULL;

        if (!sim)
                return -ENODEV;
        digest = sim_device_digest(sim);
        return sd_bus_reply_method_return(msg, "s", digest);
}

static int method_get_device_state(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        SimDevice *sim = lookup_sim(userdata, msg, error);

        if (!sim)
                return -ENODEV;
        return sd_bus_reply_method_return(msg, "s", fsm_state_to_string(sim_device_state(sim)));
}

static int method_inject_fault(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL, *why = NULL;
        const char *spec;
        SimDevice *sim;
        SimFault f;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &spec);
        if (r < 0)
                return r;
        if (sim_fault_parse(spec, &f, &why) < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s", why);
        r = check_manage(c, msg, name, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        sim = get_sim(c, name, error);
        if (!sim)
                return -ENODEV;
        sim_device_add_fault(sim, &f);
        log_info("Testbed: injected fault '%s'", spec);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_clear_faults(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        SimDevice *sim;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r < 0)
                return r;
        r = check_manage(c, msg, name, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        sim = get_sim(c, name, error);
        if (!sim)
                return -ENODEV;
        sim_device_clear_faults(sim);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_set_dirty_rate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        SimDevice *sim;
        uint64_t rate;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r >= 0)
                r = sd_bus_message_read(msg, "t", &rate);
        if (r < 0)
                return r;
        /* a rate no device has, and one the simulation would spin on */
        if (rate > SIM_DIRTY_RATE_MAX)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "A dirty rate is at most %" PRIu64 " bytes per second (64 GiB/s), "
                                         "not %" PRIu64, SIM_DIRTY_RATE_MAX, rate);
        r = check_manage(c, msg, name, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        sim = get_sim(c, name, error);
        if (!sim)
                return -ENODEV;
        r = sim_device_set_dirty_rate(sim, rate);
        if (r < 0)
                return bus_error_set_errnof(error, r, "Cannot set the dirty rate: %m");
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_get_transitions(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        SimDevice *sim = lookup_sim(userdata, msg, error);
        g_autoptr(GArray) history = NULL;
        sd_bus_message *reply = NULL;
        int r;

        if (!sim)
                return -ENODEV;
        history = sim_device_history(sim);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(uss)");
        for (guint i = 0; r >= 0 && i < history->len; i++) {
                const SimArc *a = &g_array_index(history, SimArc, i);

                r = sd_bus_message_append(reply, "(uss)", a->seq, fsm_state_to_string(a->from),
                                          fsm_state_to_string(a->to));
        }
        return bus_send_array_reply(reply, r);
}

static int method_reset(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        SimDevice *sim;
        int r;

        r = bus_read_device_name(msg, &name, error);
        if (r < 0)
                return r;
        r = check_manage(c, msg, name, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        sim = get_sim(c, name, error);
        if (!sim)
                return -ENODEV;
        r = sim_device_reset(sim);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "The device is open for a migration");
        if (r < 0)
                return r;
        registry_set_device_state(c->registry, name, "running");
        return sd_bus_reply_method_return(msg, NULL);
}

/* The compatibility map's work counters, and what the last hotplug
 * event cost, for tests and benchmarks. */
static int method_get_map_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        sd_bus_message *reply = NULL;
        CompatMapStats st;
        int r;

        compat_map_stats(identities_map(c->identities), &st);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "a{st}", 8, "nodes", (uint64_t) st.nodes,
                                          "classes", (uint64_t) st.classes, "verdicts", st.verdicts,
                                          "vendor-checks", st.vendor_checks, "last-change-usec", st.last_change_usec,
                                          "build-usec", identities_build_usec(c->identities),
                                          "last-hotplug-usec", testbed_last_hotplug_usec(c->backend),
                                          "last-derive-usec", identities_last_derive_usec(c->identities));
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* What the heap holds, for benchmarks: mallinfo2() over every arena. */
static int method_get_heap_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        struct mallinfo2 mi = mallinfo2();
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "a{st}", 4, "in-use", (uint64_t) (mi.uordblks + mi.hblkhd),
                                          "free", (uint64_t) mi.fordblks, "arena", (uint64_t) mi.arena,
                                          "mmapped", (uint64_t) mi.hblkhd);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int method_drive_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        const char *name, *action;
        g_autofree char *why = NULL;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &action);
        if (r < 0)
                return r;
        r = check_manage(c, msg, name, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = domains_drive_test_domain(c->domains, name, action, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        return sd_bus_reply_method_return(msg, NULL);
}

const sd_bus_vtable bus_testbed_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("GetDigest", SD_BUS_ARGS("s", device), SD_BUS_RESULT("s", digest),
                                method_get_digest, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetDeviceState", SD_BUS_ARGS("s", device), SD_BUS_RESULT("s", state),
                                method_get_device_state, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetMapStats", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{st}", stats),
                                method_get_map_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetHeapStats", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{st}", stats),
                                method_get_heap_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetTransitions", SD_BUS_ARGS("s", device), SD_BUS_RESULT("a(uss)", arcs),
                                method_get_transitions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("InjectFault", SD_BUS_ARGS("s", device, "s", fault), SD_BUS_NO_RESULT,
                                method_inject_fault, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ClearFaults", SD_BUS_ARGS("s", device), SD_BUS_NO_RESULT,
                                method_clear_faults, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reset", SD_BUS_ARGS("s", device), SD_BUS_NO_RESULT,
                                method_reset, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetDirtyRate", SD_BUS_ARGS("s", device, "t", bytes_per_second), SD_BUS_NO_RESULT,
                                method_set_dirty_rate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DriveDomain", SD_BUS_ARGS("s", domain, "s", action), SD_BUS_NO_RESULT,
                                method_drive_domain, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

int bus_testbed_register(BusContext *c) {
        if (!backend_is_testbed(c->backend))
                return 0;
        return sd_bus_add_object_vtable(c->bus, NULL, VFIOMIG_OBJECT_PATH, VFIOMIG_TESTBED_INTERFACE,
                                        bus_testbed_vtable, c);
}
