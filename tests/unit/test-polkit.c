/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit.c against a polkit of the test's own, over a direct sd-bus
 * connection: the "daemon" end serves a method that calls polkit_verify()
 * as each case says, the "client" end calls it and answers
 * CheckAuthorization. The socket pair is made with effective UID nobody,
 * so that the daemon end sees a caller that is not root. */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/polkit.h"
#include "unit-test.h"

#define NOBODY 65534

typedef struct Case {
        /* what the method does */
        const char *actions[3];         /* polkit_verify() each, in turn, with details device=device */
        char device[16];
        bool bail_on_redispatch;        /* fail before polkit_verify() when called again */
        /* what polkit does */
        const char *allowed_device;     /* "device" detail it allows; NULL: every */
        const char *denied_action;
        const char *switch_device_to;   /* the device changes while polkit is asked */
        unsigned checks;
        GString *seen;                  /* "action:device " per check */
        /* the outcome */
        unsigned dispatches;
        bool replied;
        char *error_name, *error_message;
} Case;

typedef struct Harness {
        sd_event *event;
        sd_bus *daemon, *client;
        PolkitRegistry *reg;
        Case *c;
} Harness;

static int method_check(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Harness *h = userdata;
        Case *c = h->c;
        int r;

        if (c->dispatches++ > 0 && c->bail_on_redispatch)
                return sd_bus_error_set(error, "t.Error.Gone", "gone before the check");
        for (unsigned i = 0; i < G_N_ELEMENTS(c->actions) && c->actions[i]; i++) {
                r = polkit_verify(msg, c->actions[i], (const char *[]) { "device", c->device, NULL }, h->reg, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 1;
        }
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Check", NULL, NULL, method_check, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

static int method_check_authorization(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Harness *h = userdata;
        Case *c = h->c;
        const char *action, *key, *value, *device = NULL;
        bool allowed;
        int r;

        r = sd_bus_message_skip(msg, "(sa{sv})");
        if (r >= 0)
                r = sd_bus_message_read(msg, "s", &action);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(msg, "{ss}", &key, &value)) > 0)
                if (g_str_equal(key, "device"))
                        device = value;
        if (r < 0)
                return r;
        c->checks++;
        g_string_append_printf(c->seen, "%s:%s ", action, device ?: "");
        if (c->switch_device_to)
                g_strlcpy(c->device, c->switch_device_to, sizeof(c->device));
        allowed = g_strcmp0(action, c->denied_action) != 0 &&
                  (!c->allowed_device || g_strcmp0(device, c->allowed_device) == 0);
        return sd_bus_reply_method_return(msg, "(bba{ss})", allowed, false, 0);
}

static const sd_bus_vtable polkit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})", method_check_authorization,
                      SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END
};

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Case *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        c->replied = true;
        if (e) {
                c->error_name = g_strdup(e->name);
                c->error_message = g_strdup(e->message);
        }
        return 0;
}

static bool harness_init(Harness *h) {
        sd_id128_t id = SD_ID128_MAKE(5a,2b,7c,11,00,00,40,00,80,00,00,00,00,00,00,01);
        int fds[2];

        /* SO_PEERCRED of a socket pair is its maker's, at making */
        if (setresuid(-1, NOBODY, -1) < 0)
                return false;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                g_error("socketpair: %m");
        if (setresuid(-1, 0, -1) < 0)
                g_error("cannot become root again: %m");

        *h = (Harness) { .reg = polkit_registry_new() };
        g_assert_cmpint(sd_event_new(&h->event), >=, 0);
        g_assert_cmpint(sd_bus_new(&h->daemon), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(h->daemon, fds[0], fds[0]), >=, 0);
        g_assert_cmpint(sd_bus_set_server(h->daemon, 1, id), >=, 0);
        /* EXTERNAL would claim UID 0, which the socket denies */
        g_assert_cmpint(sd_bus_set_anonymous(h->daemon, 1), >=, 0);
        g_assert_cmpint(sd_bus_new(&h->client), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(h->client, fds[1], fds[1]), >=, 0);
        g_assert_cmpint(sd_bus_set_anonymous(h->client, 1), >=, 0);
        g_assert_cmpint(sd_bus_start(h->daemon), >=, 0);
        g_assert_cmpint(sd_bus_start(h->client), >=, 0);
        g_assert_cmpint(sd_bus_attach_event(h->daemon, h->event, SD_EVENT_PRIORITY_NORMAL), >=, 0);
        g_assert_cmpint(sd_bus_attach_event(h->client, h->event, SD_EVENT_PRIORITY_NORMAL), >=, 0);
        g_assert_cmpint(sd_bus_add_object_vtable(h->daemon, NULL, "/t", "t.Test", test_vtable, h), >=, 0);
        g_assert_cmpint(sd_bus_add_object_vtable(h->client, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                                 "org.freedesktop.PolicyKit1.Authority", polkit_vtable, h), >=, 0);
        return true;
}

static void harness_done(Harness *h) {
        polkit_registry_free(h->reg);
        sd_bus_flush_close_unref(h->client);
        sd_bus_flush_close_unref(h->daemon);
        sd_event_unref(h->event);
}

/* Calls Check once and runs the loop until everything is quiet: the
 * reply is in and the loop has nothing left to do. A case that makes
 * polkit be asked forever is cut off. */
static void run_case(Case *c) {
        Harness h;

        c->seen = g_string_new(NULL);
        if (!harness_init(&h)) {
                g_test_skip("cannot take effective UID nobody (not root?)");
                return;
        }
        h.c = c;
        g_assert_cmpint(sd_bus_call_method_async(h.client, NULL, NULL, "/t", "t.Test", "Check", on_reply, c, ""),
                        >=, 0);
        for (unsigned i = 0; i < 1000 && c->checks < 20; i++)
                if (sd_event_run(h.event, c->replied ? 0 : 5 * G_USEC_PER_SEC) == 0 && c->replied)
                        break;
        if (polkit_registry_pending(h.reg) != 0)
                fail("%u polkit queries are left after the call was answered", polkit_registry_pending(h.reg));
        harness_done(&h);
}

static void case_free(Case *c) {
        g_string_free(c->seen, true);
        g_free(c->error_name);
        g_free(c->error_message);
}

static void assert_success(Case *c, const char *seen) {
        if (!c->replied)
                fail("no reply");
        else if (c->error_name)
                fail("failed with %s: %s", c->error_name, c->error_message);
        if (!g_str_equal(c->seen->str, seen))
                fail("polkit was asked \"%s\", expected \"%s\"", c->seen->str, seen);
}

static void assert_error(Case *c, const char *name, const char *text, const char *seen) {
        if (!c->replied)
                fail("no reply");
        else if (g_strcmp0(c->error_name, name) != 0 || !strstr(c->error_message ?: "", text))
                fail("expected %s with \"%s\", got %s: %s", name, text, c->error_name, c->error_message);
        if (!g_str_equal(c->seen->str, seen))
                fail("polkit was asked \"%s\", expected \"%s\"", c->seen->str, seen);
}

static void test_one_check(void) {
        Case c = { .actions = { "t.a" }, .device = "good" };

        run_case(&c);
        assert_success(&c, "t.a:good ");
        case_free(&c);
}

/* The method fails before it reaches polkit_verify() again: the answer
 * must go anyway, or the daemon never counts itself idle. */
static void test_failure_before_the_check(void) {
        Case c = { .actions = { "t.a" }, .device = "good", .bail_on_redispatch = true };

        run_case(&c);
        assert_error(&c, "t.Error.Gone", "gone", "t.a:good ");
        case_free(&c);
}

static void test_two_actions(void) {
        Case c = { .actions = { "t.a", "t.b" }, .device = "good" };

        run_case(&c);
        assert_success(&c, "t.a:good t.b:good ");
        case_free(&c);
}

/* The second action's answer is not the first's. */
static void test_second_action_refused(void) {
        Case c = { .actions = { "t.a", "t.b" }, .device = "good", .denied_action = "t.b" };

        run_case(&c);
        assert_error(&c, SD_BUS_ERROR_ACCESS_DENIED, "not authorized for t.b", "t.a:good t.b:good ");
        case_free(&c);
}

/* The first action's answer is not the second's either. */
static void test_first_action_refused(void) {
        Case c = { .actions = { "t.a", "t.b" }, .device = "good", .denied_action = "t.a" };

        run_case(&c);
        assert_error(&c, SD_BUS_ERROR_ACCESS_DENIED, "not authorized for t.a", "t.a:good ");
        case_free(&c);
}

/* Details that differ on the second dispatch are asked about again. */
static void test_details_changed(void) {
        Case c = { .actions = { "t.a" }, .device = "good", .allowed_device = "good", .switch_device_to = "bad" };

        run_case(&c);
        assert_error(&c, SD_BUS_ERROR_ACCESS_DENIED, "not authorized for t.a", "t.a:good t.a:bad ");
        case_free(&c);
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/polkit/one-check", test_one_check);
        g_test_add_func("/polkit/failure-before-the-check", test_failure_before_the_check);
        g_test_add_func("/polkit/two-actions", test_two_actions);
        g_test_add_func("/polkit/second-action-refused", test_second_action_refused);
        g_test_add_func("/polkit/first-action-refused", test_first_action_refused);
        g_test_add_func("/polkit/details-changed", test_details_changed);
        return g_test_run();
}
