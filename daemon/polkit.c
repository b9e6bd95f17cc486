/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include "bus-error.h"
#include "log.h"
#include "polkit.h"

/* CheckAuthorization flag AllowUserInteraction */
#define POLKIT_ALLOW_USER_INTERACTION 1u

struct PolkitRegistry {
        GHashTable *queries;    /* sd_bus_message *request -> PolkitQuery */
};

typedef struct PolkitQuery {
        PolkitRegistry *registry;
        sd_bus_message *request;
        sd_bus_slot *slot;      /* non-NULL while polkit has not answered */
        sd_bus_error error;     /* set if the check itself failed */
        int authorized;
        int challenge;
} PolkitQuery;

static void polkit_query_free(PolkitQuery *q) {
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        sd_bus_error_free(&q->error);
        g_free(q);
}

PolkitRegistry *polkit_registry_new(void) {
        PolkitRegistry *reg = g_new0(PolkitRegistry, 1);

        reg->queries = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                             (GDestroyNotify) polkit_query_free);
        return reg;
}

void polkit_registry_free(PolkitRegistry *reg) {
        if (!reg)
                return;
        g_hash_table_destroy(reg->queries);
        g_free(reg);
}

unsigned polkit_registry_pending(PolkitRegistry *reg) {
        return g_hash_table_size(reg->queries);
}

int bus_sender_is_root(sd_bus_message *call) {
        sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        /* dbus-daemon reports only the connection's uid; prefer euid where known */
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                r = sd_bus_creds_get_uid(creds, &uid);
        sd_bus_creds_unref(creds);
        return r < 0 ? r : uid == 0;
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("polkit check for %s failed: %s", sd_bus_message_get_member(q->request), e->message);
                sd_bus_error_setf(&q->error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "Authorization check failed: %s", e->message);
        } else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &q->authorized, &q->challenge);
                if (r < 0)
                        sd_bus_error_setf(&q->error, SD_BUS_ERROR_ACCESS_DENIED,
                                          "Authorization check failed: malformed polkit reply");
        }

        /* Run the method again from its first argument; polkit_verify()
         * now finds the answer. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->request), q->request);
        if (r < 0) {
                log_error_errno(r, "Failed to re-dispatch %s: %m", sd_bus_message_get_member(q->request));
                g_hash_table_remove(q->registry->queries, q->request);
        }
        return 1;
}

static int start_check(sd_bus_message *call, const char *action, const char *const *details,
                       PolkitRegistry *reg) {
        sd_bus *bus = sd_bus_message_get_bus(call);
        sd_bus_message *m = NULL;
        PolkitQuery *q;
        uint32_t flags = 0;
        int r;

        if (sd_bus_message_get_allow_interactive_authorization(call))
                flags |= POLKIT_ALLOW_USER_INTERACTION;

        r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                                          sd_bus_message_get_sender(call), action);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (const char *const *d = details; r >= 0 && d && d[0] && d[1]; d += 2)
                r = sd_bus_message_append(m, "{ss}", d[0], d[1]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "us", flags, "");
        if (r < 0) {
                sd_bus_message_unref(m);
                return r;
        }

        q = g_new0(PolkitQuery, 1);
        q->registry = reg;
        q->request = sd_bus_message_ref(call);
        /* Interactive authorization can take as long as a human does. */
        r = sd_bus_call_async(bus, &q->slot, m, on_check_reply, q, UINT64_MAX);
        sd_bus_message_unref(m);
        if (r < 0) {
                polkit_query_free(q);
                return r;
        }
        g_hash_table_insert(reg->queries, call, q);
        return 0;
}

static int finish_check(PolkitQuery *q, const char *action, sd_bus_error *error) {
        int r;

        if (sd_bus_error_is_set(&q->error))
                r = sd_bus_error_copy(error, &q->error);
        else if (q->authorized)
                r = 1;
        else if (q->challenge)
                r = sd_bus_error_setf(error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                      "Interactive authentication required for %s.", action);
        else
                r = sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                      "Access denied: not authorized for %s.", action);
        g_hash_table_remove(q->registry->queries, q->request);
        return r;
}

int polkit_verify(sd_bus_message *call, const char *action, const char *const *details,
                  PolkitRegistry *reg, sd_bus_error *error) {
        PolkitQuery *q = g_hash_table_lookup(reg->queries, call);
        int r;

        if (q)
                return q->slot ? 0 : finish_check(q, action, error);

        r = bus_sender_is_root(call);
        if (r > 0)
                return 1;
        if (r < 0)
                log_debug_errno(r, "Cannot learn the caller's uid, asking polkit: %m");

        r = start_check(call, action, details, reg);
        if (r < 0)
                return bus_error_set_errnof(error, r, "Failed to start polkit authorization check: %m");
        return 0;
}
