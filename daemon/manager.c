/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>

#include "config.h"
#include "bus/bus-error.h"
#include "bus/bus-objects.h"
#include "conffile.h"
#include "heap.h"
#include "log.h"
#include "compat/identities.h"
#include "manager.h"
#include "libvirt/domains.h"
#include "migration/jobs.h"
#include "migration/probe.h"
#include "migration/recovery.h"
#if HAVE_TESTBED
#include "backend/testbed.h"
#endif
#include "backend/udev.h"
#include "util.h"
#include "vfiomig-names.h"

struct Manager {
        sd_event *event;
        sd_bus *bus;
        Registry *registry;
        Backend *backend;
        PolkitRegistry *polkit;
        ProbeCache *probe_cache;
        IdentitySync *identities;       /* identities and the compatibility map */
        Jobs *jobs;
        Probes *probes;
        Domains *domains;               /* which libvirt domain holds what */
        Preparer *preparer;             /* incoming domains' devices */
        BusContext bus_context;         /* what the objects see of all this */

        char **rules_dirs;              /* NULL: the defaults */
        char *libvirt_uri;
        uint64_t prepared_timeout_usec;
        char *runtime_dir;              /* journal of in-flight jobs, testbed device state */
        char *state_dir;                /* saved states, probe results */

        sd_event_source *give_back;     /* after every dispatch: did work end? */
        unsigned working;               /* jobs and probes running at the last look */

        uint64_t idle_timeout_usec;     /* 0: never exit on idle */
        uint64_t last_activity_usec;
        sd_event_source *idle_timer;
};

#if HAVE_TESTBED
static int load_testbed(Manager *m, const char *spec) {
        g_autoptr(ConfFile) c = NULL;
        g_autoptr(GError) error = NULL;

        if (g_str_equal(spec, "default"))
                c = conf_file_parse(testbed_default_conf, "<built-in testbed>", &error);
        else
                c = conf_file_load(spec, &error);
        if (c)
                m->backend = testbed_new(c, m->registry, m->runtime_dir, &error);
        if (!m->backend)
                return log_error_errno(EINVAL, "Cannot load testbed: %s", error->message);
        log_info("Testbed backend: %u devices, simulated", registry_device_count(m->registry));
        return 0;
}
#else
static int load_testbed(Manager *m, const char *spec) {
        return log_error_errno(EOPNOTSUPP, "Cannot load testbed %s: vfiomigd was built without it (-Dtestbed=false)",
                               spec);
}
#endif

int manager_new(const ManagerOptions *o, Manager **ret) {
        g_autoptr(Manager) m = g_new0(Manager, 1);
        int r;

        m->registry = registry_new();
        m->polkit = polkit_registry_new();
        /* systemd's RuntimeDirectory= and StateDirectory= tell us; tests too */
        m->runtime_dir = g_strdup(getenv("RUNTIME_DIRECTORY") ?: VFIOMIG_RUNTIME_DIR);
        m->state_dir = g_strdup(getenv("STATE_DIRECTORY") ?: VFIOMIG_STATE_DIR);
        /* journals and simulated state are nobody else's business */
        if (g_mkdir_with_parents(m->runtime_dir, 0700) < 0)
                return log_error_errno(errno, "Cannot create %s: %m", m->runtime_dir);
        m->idle_timeout_usec = o->idle_timeout_usec;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        (void) sd_event_set_watchdog(m->event, true);

        if (o->testbed)
                r = load_testbed(m, o->testbed);
        else
                r = udev_backend_new(m->event, m->registry, o->vdpa_replay, &m->backend);
        if (r < 0)
                return r;

        m->rules_dirs = g_strdupv(o->rules_dirs);
        m->libvirt_uri = g_strdup(o->libvirt_uri);
        m->prepared_timeout_usec = o->prepared_timeout_usec;
        /* the bus first: InterfacesAdded before anything about the
         * object's identity (identities_start() subscribes after it) */
        registry_listen(m->registry, bus_registry_notify, &m->bus_context);
        *ret = g_steal_pointer(&m);
        return 0;
}

void manager_free(Manager *m) {
        if (!m)
                return;
        sd_event_source_disable_unref(m->idle_timer);
        sd_event_source_disable_unref(m->give_back);
        /* Running jobs roll back before anything they use goes away. */
        jobs_free(m->jobs);
        probes_free(m->probes);
        domains_free(m->domains);
        preparer_free(m->preparer);
        /* Drop the bus first: its slots hold pointers into the registry. */
        sd_bus_flush_close_unref(m->bus);
        registry_unlisten(m->registry, bus_registry_notify, &m->bus_context);
        identities_free(m->identities);
        backend_free(m->backend);
        registry_free(m->registry);
        probe_cache_free(m->probe_cache);
        g_strfreev(m->rules_dirs);
        g_free(m->libvirt_uri);
        polkit_registry_free(m->polkit);
        sd_event_unref(m->event);
        g_free(m->runtime_dir);
        g_free(m->state_dir);
        g_free(m);
}

sd_event *manager_get_event(Manager *m) {
        return m->event;
}

static bool manager_is_idle(Manager *m) {
        return polkit_registry_pending(m->polkit) == 0 && (!m->jobs || jobs_running(m->jobs) == 0) &&
               (!m->probes || probes_running(m->probes) == 0) && !preparer_waiting(m->preparer);
}

/* Runs after every dispatch once the name is gone: work that was in
 * flight (a polkit check, say) finishes before we exit. */
static int on_post_maybe_exit(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        if (manager_is_idle(m)) {
                log_info("Idle, exiting.");
                return sd_event_exit(m->event, 0);
        }
        return 0;
}

/* dbus-daemon routes nothing more to us once it announces that we lost
 * the name; calls queued before that have been dispatched by now. */
static int on_name_lost(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        log_debug("Released %s", VFIOMIG_BUS_NAME);
        return sd_event_add_post(m->event, NULL, on_post_maybe_exit, m);
}

static int arm_idle_timer(Manager *m, uint64_t when);

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t deadline = m->last_activity_usec + m->idle_timeout_usec;
        int r;

        if (usec < deadline || !manager_is_idle(m))
                return arm_idle_timer(m, MAX(deadline, usec + m->idle_timeout_usec));

        log_debug("Idle for %" PRIu64 " ms, releasing %s", m->idle_timeout_usec / 1000, VFIOMIG_BUS_NAME);
        r = sd_bus_release_name_async(m->bus, NULL, VFIOMIG_BUS_NAME, NULL, NULL);
        if (r < 0) {
                log_error_errno(r, "Failed to release bus name, exiting now: %m");
                return sd_event_exit(m->event, 0);
        }
        return 0;
}

static int arm_idle_timer(Manager *m, uint64_t when) {
        int r;

        if (!m->idle_timer)
                return sd_event_add_time(m->event, &m->idle_timer, CLOCK_MONOTONIC, when, 0, on_idle_timer, m);
        r = sd_event_source_set_time(m->idle_timer, when);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(m->idle_timer, SD_EVENT_ONESHOT);
}

static int on_bus_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint8_t type;

        if (sd_bus_message_get_type(msg, &type) >= 0 && type == SD_BUS_MESSAGE_METHOD_CALL)
                m->last_activity_usec = now_usec(CLOCK_MONOTONIC);
        return 0;
}

static int setup_idle_exit(Manager *m) {
        g_autofree char *match = NULL;
        const char *unique;
        int r;

        r = sd_bus_get_unique_name(m->bus, &unique);
        if (r < 0)
                return r;
        match = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                "member='NameOwnerChanged',arg0='%s',arg1='%s',arg2=''",
                                VFIOMIG_BUS_NAME, unique);
        r = sd_bus_add_match(m->bus, NULL, match, on_name_lost, m);
        if (r < 0)
                return r;
        r = sd_bus_add_filter(m->bus, NULL, on_bus_message, m);
        if (r < 0)
                return r;
        m->last_activity_usec = now_usec(CLOCK_MONOTONIC);
        return arm_idle_timer(m, m->last_activity_usec + m->idle_timeout_usec);
}

/* What a job's or probe's threads freed stays in malloc's heap, kept by
 * the process until used again, megabytes after a migration: when work
 * ends, free pages go back to the system (main() keeps every thread in
 * the one arena this trims). */
static int on_post_give_back(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        unsigned working = jobs_running(m->jobs) + probes_running(m->probes);

        heap_release();         /* what start-up reserved and did not use */
        if (working < m->working)
                (void) malloc_trim(0);
        m->working = working;
        return 0;
}

/* Each module gets what it uses. The map comes first (jobs and probes
 * consult it), but is built only after recovery has put the devices
 * back. */
static int start_modules(Manager *m) {
        g_autofree char *probes_path = g_build_filename(m->state_dir, "probes.conf", NULL);
        int r;

        m->probe_cache = probe_cache_new(probes_path);
        r = identities_new(m->event, m->registry, m->backend, m->probe_cache, (const char *const *) m->rules_dirs,
                           &m->identities);
        if (r < 0)
                return r;
        r = jobs_new(m->event, m->registry, m->backend, identities_map(m->identities), m->runtime_dir,
                     m->state_dir, &m->jobs);
        if (r < 0)
                return log_error_errno(r, "Cannot set up jobs: %m");
        /* A predecessor killed mid-migration left devices stopped: put them
         * back before anyone can ask for anything. */
        migration_recover_journal(m->jobs);
        identities_start(m->identities);
        m->probes = probes_new(m->event, m->registry, m->backend, identities_map(m->identities), m->probe_cache);
        r = preparer_new(m->event, m->registry, m->backend, identities_map(m->identities), m->state_dir,
                         m->prepared_timeout_usec, &m->preparer);
        if (r < 0)
                return r;
        return domains_new(m->event, m->registry, m->libvirt_uri, &m->domains);
}

int manager_start(Manager *m) {
        int r;

        vfiomig_bus_error_register();

        /* sd-bus honours $DBUS_SYSTEM_BUS_ADDRESS: tests use a private bus */
        r = sd_bus_default_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach bus to event loop: %m");

        r = start_modules(m);
        if (r < 0)
                return r;

        m->bus_context = (BusContext) {
                .bus = m->bus,
                .event = m->event,
                .polkit = m->polkit,
                .registry = m->registry,
                .backend = m->backend,
                .jobs = m->jobs,
                .probes = m->probes,
                .probe_cache = m->probe_cache,
                .identities = m->identities,
                .domains = m->domains,
                .preparer = m->preparer,
                .state_dir = m->state_dir,
        };
        r = bus_manager_register(&m->bus_context);
        if (r >= 0)
                r = bus_device_register(&m->bus_context);
        if (r >= 0)
                r = bus_type_register(&m->bus_context);
        if (r >= 0)
                r = bus_migration_register(&m->bus_context);
#if HAVE_TESTBED
        if (r >= 0)
                r = bus_testbed_register(&m->bus_context);
#endif
        if (r < 0)
                return log_error_errno(r, "Failed to register D-Bus objects: %m");

        if (m->idle_timeout_usec > 0) {
                r = setup_idle_exit(m);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up idle exit: %m");
        }

        r = sd_event_add_post(m->event, &m->give_back, on_post_give_back, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch for ended work: %m");

        r = sd_bus_request_name(m->bus, VFIOMIG_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire %s: %m", VFIOMIG_BUS_NAME);

        log_info("vfiomigd %s serving %s (%s backend, %u devices)", PACKAGE_VERSION, VFIOMIG_BUS_NAME,
                 backend_name(m->backend), registry_device_count(m->registry));
        return 0;
}
