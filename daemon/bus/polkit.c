/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include <systemd/sd-event.h>

#include "bus/bus-error.h"
#include "log.h"
#include "bus/polkit.h"

/* CheckAuthorization flag AllowUserInteraction */
#define POLKIT_ALLOW_USER_INTERACTION 1u

struct PolkitRegistry {
        GHashTable *queries;    /* sd_bus_message *request -> PolkitQuery */
        sd_bus_slot *filter;    /* sees requests come round again */
};

/* What polkit said about one action with one set of details. */
typedef struct PolkitAnswer {
        char *action;
        char **details;         /* key, value, ...: as asked */
        sd_bus_error error;     /* unset if authorized */
} PolkitAnswer;

/* Lifecycle: a check is started (slot); its answer is kept and the request
 * queued for dispatch again (redispatched); our bus filter sees it come
 * round and arms drop; drop runs once that dispatch is over, so whatever
 * the method did, and frees the query, unless the method started another
 * check (slot again), whose answer repeats the cycle. */
typedef struct PolkitQuery {
        PolkitRegistry *registry;
        sd_bus_message *request;
        sd_bus_slot *slot;      /* the check polkit has not answered yet */
        char *action;           /* what slot asks */
        char **details;
        GPtrArray *answers;     /* PolkitAnswer */
        bool redispatched;      /* queued again, not yet seen by the filter */
        sd_event_source *drop;
} PolkitQuery;

static void polkit_answer_free(PolkitAnswer *a) {
        g_free(a->action);
        g_strfreev(a->details);
        sd_bus_error_free(&a->error);
        g_free(a);
}

static void polkit_query_free(PolkitQuery *q) {
        sd_bus_slot_unref(q->slot);
        sd_event_source_disable_unref(q->drop);
        sd_bus_message_unref(q->request);
        g_free(q->action);
        g_strfreev(q->details);
        g_ptr_array_unref(q->answers);
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
        sd_bus_slot_unref(reg->filter);
        g_free(reg);
}

unsigned polkit_registry_pending(PolkitRegistry *reg) {
        return g_hash_table_size(reg->queries);
}

static void query_drop(PolkitQuery *q) {
        g_hash_table_remove(q->registry->queries, q->request);   /* frees q */
}

int bus_sender_is_root(sd_bus_message *call) {
        sd_bus_creds *creds = NULL;
        uint64_t augmented;
        uid_t uid;
        int r;

        /* Without SD_BUS_CREDS_AUGMENT, and refusing what was added
         * anyway: what sd-bus would read from /proc/PID describes whichever
         * process has that PID by now. dbus-daemon vouches only for the
         * UID it took from the socket when the caller connected, which
         * sd-bus reports as the EUID or the UID depending on its version. */
        r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);
        if (r < 0)
                return r;
        augmented = sd_bus_creds_get_augmented_mask(creds);
        r = -ENODATA;
        if (!(augmented & SD_BUS_CREDS_EUID))
                r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0 && !(augmented & SD_BUS_CREDS_UID))
                r = sd_bus_creds_get_uid(creds, &uid);
        sd_bus_creds_unref(creds);
        return r < 0 ? r : uid == 0;
}

/* ---- details ---- */

static char **details_copy(const char *const *details) {
        GStrvBuilder *b = g_strv_builder_new();
        char **l;

        for (const char *const *d = details; d && d[0] && d[1]; d += 2) {
                g_strv_builder_add(b, d[0]);
                g_strv_builder_add(b, d[1]);
        }
        l = g_strv_builder_end(b);
        g_strv_builder_unref(b);
        return l;
}

static bool details_equal(char **a, const char *const *b) {
        g_auto(GStrv) c = details_copy(b);

        return g_strv_equal((const char *const *) a, (const char *const *) c);
}

static PolkitAnswer *find_answer(PolkitQuery *q, const char *action, const char *const *details) {
        for (guint i = 0; i < q->answers->len; i++) {
                PolkitAnswer *a = q->answers->pdata[i];

                if (g_str_equal(a->action, action) && details_equal(a->details, details))
                        return a;
        }
        return NULL;
}

/* ---- the check ---- */

static void read_answer(sd_bus_message *reply, PolkitAnswer *a) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized, challenge, r;

        if (e) {
                log_warning("polkit check for %s failed: %s", a->action, e->message);
                sd_bus_error_setf(&a->error, SD_BUS_ERROR_ACCESS_DENIED, "Authorization check failed: %s",
                                  e->message);
                return;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0)
                sd_bus_error_setf(&a->error, SD_BUS_ERROR_ACCESS_DENIED,
                                  "Authorization check failed: malformed polkit reply");
        else if (authorized)
                return;
        else if (challenge)
                sd_bus_error_setf(&a->error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                  "Interactive authentication required for %s.", a->action);
        else
                sd_bus_error_setf(&a->error, SD_BUS_ERROR_ACCESS_DENIED, "Access denied: not authorized for %s.",
                                  a->action);
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        PolkitAnswer *a = g_new0(PolkitAnswer, 1);
        int r;

        q->slot = sd_bus_slot_unref(q->slot);
        a->action = g_steal_pointer(&q->action);
        a->details = g_steal_pointer(&q->details);
        read_answer(reply, a);
        g_ptr_array_add(q->answers, a);

        /* Run the method again from its first argument: it looks up what
         * it needs afresh, and polkit_verify() finds the answer. */
        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->request), q->request);
        if (r < 0) {
                log_error_errno(r, "Failed to re-dispatch %s: %m", sd_bus_message_get_member(q->request));
                (void) bus_reply_method_errnof(q->request, r, "Cannot resume the call after authorization: %m");
                query_drop(q);
                return 1;
        }
        q->redispatched = true;
        return 1;
}

/* The method has run again: its answers have served. */
static int on_drop(sd_event_source *s, void *userdata) {
        PolkitQuery *q = userdata;

        if (!q->slot)
                query_drop(q);
        return 0;
}

/* Runs before the method for every message, the re-queued ones included. */
static int on_message(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        PolkitRegistry *reg = userdata;
        PolkitQuery *q = g_hash_table_lookup(reg->queries, msg);
        int r;

        if (!q || !q->redispatched)
                return 0;
        q->redispatched = false;
        /* A defer source runs at the earliest in the event loop's next
         * iteration, when sd-bus has returned from this dispatch. */
        r = sd_event_source_set_enabled(q->drop, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Cannot schedule the end of a polkit query: %m");
        return 0;
}

static int send_check(PolkitQuery *q, const char *action, const char *const *details) {
        sd_bus_message *call = q->request, *m = NULL;
        sd_bus *bus = sd_bus_message_get_bus(call);
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
        /* Interactive authorization can take as long as a human does. */
        if (r >= 0)
                r = sd_bus_call_async(bus, &q->slot, m, on_check_reply, q, UINT64_MAX);
        sd_bus_message_unref(m);
        if (r < 0)
                return r;
        q->action = g_strdup(action);
        q->details = details_copy(details);
        return 0;
}

static int query_new(PolkitRegistry *reg, sd_bus_message *call, PolkitQuery **ret) {
        sd_bus *bus = sd_bus_message_get_bus(call);
        sd_event *event = sd_bus_get_event(bus);
        PolkitQuery *q;
        int r;

        if (!event)
                return -ENXIO;  /* nothing could drop the query */
        if (!reg->filter) {
                r = sd_bus_add_filter(bus, &reg->filter, on_message, reg);
                if (r < 0)
                        return r;
        }
        q = g_new0(PolkitQuery, 1);
        q->registry = reg;
        q->request = sd_bus_message_ref(call);
        q->answers = g_ptr_array_new_with_free_func((GDestroyNotify) polkit_answer_free);
        r = sd_event_add_defer(event, &q->drop, on_drop, q);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->drop, SD_EVENT_OFF);
        if (r < 0) {
                polkit_query_free(q);
                return r;
        }
        (void) sd_event_source_set_description(q->drop, "polkit-query-drop");
        g_hash_table_insert(reg->queries, call, q);
        *ret = q;
        return 0;
}

int polkit_verify(sd_bus_message *call, const char *action, const char *const *details,
                  PolkitRegistry *reg, sd_bus_error *error) {
        PolkitQuery *q = g_hash_table_lookup(reg->queries, call);
        PolkitAnswer *a;
        int r;

        if (q) {
                a = find_answer(q, action, details);
                if (a)
                        return sd_bus_error_is_set(&a->error) ? sd_bus_error_copy(error, &a->error) : 1;
                if (q->slot)    /* cannot happen: the request is not dispatched while polkit is asked */
                        return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED,
                                                "Authorization check failed: another check is under way");
                /* An answer for another action or other details: ask too. */
        } else {
                r = bus_sender_is_root(call);
                if (r > 0)
                        return 1;
                if (r < 0)
                        log_debug_errno(r, "Cannot learn the caller's uid, asking polkit: %m");
                r = query_new(reg, call, &q);
                if (r < 0)
                        return bus_error_set_errnof(error, r, "Failed to start polkit authorization check: %m");
        }

        r = send_check(q, action, details);
        if (r < 0) {
                if (q->answers->len == 0)
                        query_drop(q);  /* otherwise drop comes */
                return bus_error_set_errnof(error, r, "Failed to start polkit authorization check: %m");
        }
        return 0;
}
