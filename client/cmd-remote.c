/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>

#include "remote.h"
#include "vfiomig-names.h"

void remote_target_clear(RemoteTarget *t) {
        g_free(t->host);
        g_free(t->device);
        g_free(t->text);
}

static bool is_hex_run(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isxdigit(s[i]))
                        return false;
        return true;
}

/* DDDD:BB:DD.F */
static bool is_pci_address(const char *s) {
        return strlen(s) == 12 && is_hex_run(s, 4) && s[4] == ':' && is_hex_run(s + 5, 2) && s[7] == ':' &&
               is_hex_run(s + 8, 2) && s[10] == '.' && s[11] >= '0' && s[11] <= '7';
}

/* 8-4-4-4-12 hex digits */
static bool is_uuid(const char *s) {
        static const size_t runs[] = { 8, 4, 4, 4, 12 };

        for (size_t i = 0; i < G_N_ELEMENTS(runs); i++) {
                if (!is_hex_run(s, runs[i]))
                        return false;
                s += runs[i];
                if (*s != (i + 1 < G_N_ELEMENTS(runs) ? '-' : '\0'))
                        return false;
                s += *s ? 1 : 0;
        }
        return true;
}

bool remote_target_parse(const char *arg, bool device_only, RemoteTarget *ret) {
        const char *colon, *host = arg;
        size_t host_len;

        if (is_pci_address(arg))
                return false;
        /* [USER@][IPV6]:TARGET: the brackets keep the address's colons */
        colon = strchr(arg, '[');
        if (colon && (colon = strstr(colon, "]:"))) {
                colon++;
        } else
                colon = strchr(arg, ':');
        if (!colon || colon == arg || !colon[1])
                return false;
        if (device_only && !is_pci_address(colon + 1) && !is_uuid(colon + 1))
                return false;
        host_len = (size_t) (colon - host);
        ret->text = g_strdup(arg);
        ret->device = g_strdup(colon + 1);
        ret->host = g_strndup(host, host_len);
        /* ssh wants user@::1, not user@[::1] */
        if (strchr(ret->host, '[')) {
                g_autofree char *h = ret->host;
                g_auto(GStrv) parts = g_strsplit_set(h, "[]", -1);

                ret->host = g_strjoinv("", parts);
        }
        return true;
}

void remote_clear(Remote *r) {
        if (r->in_fd >= 0)
                close(r->in_fd);
        if (r->out_fd >= 0)
                close(r->out_fd);
        if (r->err_fd >= 0)
                close(r->err_fd);
        if (r->pid > 0) {
                /* only when the caller gave up on it */
                kill(r->pid, SIGTERM);
                (void) waitpid(r->pid, NULL, 0);
        }
        g_free(r->host);
        if (r->out)
                g_string_free(r->out, true);
        if (r->err)
                g_string_free(r->err, true);
}

/* --ssh, else $VFIOMIG_SSH, else "ssh", split like a shell would. */
static int ssh_command(Ctl *ctl, GStrv *ret) {
        const char *command = ctl->ssh ?: getenv("VFIOMIG_SSH");
        g_autoptr(GError) error = NULL;

        if (!command || !*command)
                command = "ssh";
        if (!g_shell_parse_argv(command, NULL, ret, &error))
                return ctl_usage_error("Invalid ssh command '%s': %s", command, error->message);
        return EXIT_OK;
}

int remote_spawn(Ctl *ctl, const char *host, const char *const *words, Remote *ret) {
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        g_auto(GStrv) ssh = NULL, argv = NULL;
        g_autoptr(GError) error = NULL;
        int code;

        code = ssh_command(ctl, &ssh);
        if (code != EXIT_OK)
                return code;
        for (char **w = ssh; *w; w++)
                g_strv_builder_add(b, *w);
        g_strv_builder_add(b, host);
        /* ssh joins its arguments with spaces and the remote user's shell
         * splits them again: quote each, or a word with a space or a "$"
         * would arrive as something else */
        g_strv_builder_add(b, "vfiomigctl");
        for (const char *const *w = words; *w; w++) {
                g_autofree char *quoted = g_shell_quote(*w);

                g_strv_builder_add(b, quoted);
        }
        argv = g_strv_builder_end(b);

        /* a remote end that goes away must not kill us as we write to it */
        signal(SIGPIPE, SIG_IGN);
        *ret = (Remote) { .host = g_strdup(host), .in_fd = -1, .out_fd = -1, .err_fd = -1, .status = -1,
                          .out = g_string_new(NULL), .err = g_string_new(NULL) };
        if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                      NULL, &ret->pid, &ret->in_fd, &ret->out_fd, &ret->err_fd, &error)) {
                fprintf(stderr, "Failed to run '%s' to reach %s: %s\n", ssh[0], host, error->message);
                ret->pid = 0;
                return EXIT_UNREACHABLE;
        }
        /* read what there is whenever poll() says so, never waiting on
         * one pipe while the other fills */
        (void) g_unix_set_fd_nonblocking(ret->out_fd, true, NULL);
        (void) g_unix_set_fd_nonblocking(ret->err_fd, true, NULL);
        return EXIT_OK;
}

unsigned remote_poll_fds(const Remote *r, struct pollfd *p) {
        unsigned n = 0;

        if (r->out_fd >= 0)
                p[n++] = (struct pollfd) { .fd = r->out_fd, .events = POLLIN };
        if (r->err_fd >= 0)
                p[n++] = (struct pollfd) { .fd = r->err_fd, .events = POLLIN };
        return n;
}

/* Everything the pipe holds now; false at its end (or a read error,
 * which ends it all the same: nothing more comes from it). */
static bool read_pipe(int fd, GString *dest) {
        for (;;) {
                char buf[65536];
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n > 0) {
                        g_string_append_len(dest, buf, n);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 && errno == EAGAIN;
        }
}

static void reap(Remote *r) {
        int status = -1, k;

        while ((k = waitpid(r->pid, &status, 0)) < 0 && errno == EINTR)
                ;
        r->pid = 0;
        /* a child we cannot wait for (k < 0) is as good as killed */
        r->status = k > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void remote_dispatch(Remote *r, const struct pollfd *p, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                int *fd = p[i].fd == r->out_fd ? &r->out_fd : &r->err_fd;

                if (!p[i].revents || p[i].fd != *fd)
                        continue;
                if (!read_pipe(*fd, fd == &r->out_fd ? r->out : r->err)) {
                        close(*fd);
                        *fd = -1;
                }
        }
        /* both at their end: ssh has exited, or is about to */
        if (r->out_fd < 0 && r->err_fd < 0 && r->pid > 0)
                reap(r);
}

bool remote_ended(const Remote *r) {
        return r->pid == 0;
}

int remote_finish(Remote *r) {
        if (r->in_fd >= 0)
                close(r->in_fd);
        r->in_fd = -1;
        while (r->pid > 0) {
                struct pollfd p[2];
                unsigned n = remote_poll_fds(r, p);

                if (n > 0 && poll(p, n, -1) < 0 && errno != EINTR)
                        return -errno;
                remote_dispatch(r, p, n);
        }
        return 0;
}

char *remote_describe_failure(const Remote *r) {
        g_autofree char *err = g_strstrip(g_strdup(r->err ? r->err->str : ""));

        /* the last line says it best; earlier ones are often ssh's banners */
        char *last = strrchr(err, '\n');

        if (r->status < 0)
                return g_strdup_printf("ssh to %s was killed%s%s", r->host, *err ? ": " : "",
                                       last ? last + 1 : err);
        if (r->status == 255)
                return g_strdup_printf("ssh to %s failed (exit status 255)%s%s", r->host, *err ? ": " : "",
                                       last ? last + 1 : err);
        return g_strdup_printf("vfiomigctl on %s exited with status %d%s%s", r->host, r->status,
                               *err ? ": " : "", last ? last + 1 : err);
}

int remote_exit_code(const Remote *r) {
        /* vfiomigctl there speaks our exit statuses; ssh's own failure and
         * a remote command that never ran mean we could not reach it */
        if (r->status >= EXIT_FAILED && r->status <= EXIT_UNREACHABLE)
                return r->status;
        if (r->status == 255 || r->status < 0 || r->status == 127)
                return EXIT_UNREACHABLE;
        return EXIT_FAILED;
}

/* GetIdentityEx() as JSON, the form check-identity reads. */
static int identity_json(Ctl *ctl, const char *device, char **ret) {
        g_autofree char *what = g_strdup_printf("get the identity of %s", device);
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonGenerator) g = json_generator_new();
        g_autoptr(JsonNode) node = NULL;
        sd_bus_message *reply = NULL;
        const char *key, *value;
        int code, r;

        code = ctl_call(ctl, "GetIdentityEx", &reply, what, "s", device);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &key, &value)) > 0)
                json_object_set_string_member(o, key, value);
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to read the identity of %s: %s\n", device, strerror(-r));
                return EXIT_FAILED;
        }
        node = json_node_init_object(json_node_alloc(), o);
        json_generator_set_root(g, node);
        *ret = json_generator_to_data(g, NULL);
        return EXIT_OK;
}

static const char *member(JsonObject *o, const char *name) {
        JsonNode *n = json_object_get_member(o, name);

        return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
                ? json_node_get_string(n) : NULL;
}

/* Empty input parses too, to no root at all. */
static JsonObject *root_object(JsonParser *parser) {
        JsonNode *root = json_parser_get_root(parser);

        return root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
}

int remote_check_identity(Ctl *ctl, const char *source, const RemoteTarget *rt) {
        const char *words[] = { "--json", "--no-ask-password", "check-identity", "--", rt->device, NULL };
        g_auto(Remote) r = {};
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autofree char *identity = NULL;
        const char *verdict, *basis, *reason;
        JsonObject *o;
        int code;

        code = identity_json(ctl, source, &identity);
        if (code != EXIT_OK)
                return code;
        code = remote_spawn(ctl, rt->host, words, &r);
        if (code != EXIT_OK)
                return code;
        /* a few hundred bytes: the pipe takes them at once */
        (void) !write(r.in_fd, identity, strlen(identity));
        if (remote_finish(&r) < 0)
                return EXIT_FAILED;

        o = json_parser_load_from_data(parser, r.out->str, -1, NULL) ? root_object(parser) : NULL;
        verdict = o ? member(o, "verdict") : NULL;
        basis = o ? member(o, "basis") : NULL;
        reason = o ? member(o, "reason") : NULL;
        if (!verdict || !basis || !reason || (r.status != EXIT_OK && r.status != EXIT_FAILED)) {
                g_autofree char *why = remote_describe_failure(&r);

                fprintf(stderr, "Failed to ask %s whether %s takes the state of %s: %s\n", rt->host, rt->device,
                        source, why);
                return remote_exit_code(&r);
        }
        if (g_str_equal(verdict, "compatible") ||
            (g_str_equal(verdict, "unknown") && ctl->allow_unknown))
                return EXIT_OK;
        fprintf(stderr, "Refusing to move %s to %s: %s finds it %s (basis: %s): %s\n", source, rt->text, rt->host,
                verdict, basis, reason);
        if (g_str_equal(verdict, "unknown"))
                fputs("Nothing says whether the target takes this state: --allow-unknown lets the job try.\n",
                      stderr);
        return EXIT_FAILED;
}

/* The identity JSON on standard input: at most this much. */
#define IDENTITY_MAX (64 * 1024)

static int read_identity(JsonObject **ret, JsonParser *parser) {
        g_autofree char *buf = g_malloc(IDENTITY_MAX + 1);
        g_autoptr(GError) error = NULL;
        size_t len = 0;
        ssize_t n;

        while (len < IDENTITY_MAX && (n = read(STDIN_FILENO, buf + len, IDENTITY_MAX - len)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return ctl_usage_error("Failed to read the identity from standard input: %s",
                                               strerror(errno));
                len += (size_t) n;
        }
        if (len == IDENTITY_MAX)
                return ctl_usage_error("The identity on standard input is longer than %d bytes", IDENTITY_MAX);
        if (!json_parser_load_from_data(parser, buf, (gssize) len, &error))
                return ctl_usage_error("The identity on standard input is no JSON: %s", error->message);
        *ret = root_object(parser);
        if (!*ret)
                return ctl_usage_error("The identity on standard input is no JSON object");
        return EXIT_OK;
}

int cmd_check_identity(Ctl *ctl, int argc, char **argv) {
        /* the keys of CheckIdentityEx(); "name" and "basis", which identity
         * --json prints too, say nothing about the state */
        static const char *const keys[] = { "type", "version", "iommu", "vdpa" };
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autofree char *what = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *verdict, *basis, *reason;
        JsonObject *o = NULL;
        int r, code;

        if (argc != 2)
                return ctl_usage_error("check-identity takes one TARGET, and the identity as JSON on standard input");
        if (isatty(STDIN_FILENO))
                return ctl_usage_error("check-identity reads the identity as JSON ('vfiomigctl --json identity "
                                       "DEVICE' prints it) from standard input, which is a terminal");
        code = read_identity(&o, parser);
        if (code != EXIT_OK)
                return code;
        if (!member(o, "type"))
                return ctl_usage_error("The identity on standard input has no string \"type\"");

        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                           VFIOMIG_MANAGER_INTERFACE, "CheckIdentityEx");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(keys); i++)
                if (member(o, keys[i]))
                        r = sd_bus_message_append(m, "{ss}", keys[i], member(o, keys[i]));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[1]);
        what = g_strdup_printf("check the identity of %s against %s", member(o, "type"), argv[1]);
        code = ctl_send(ctl, m, r, &reply, what, NULL);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "sss", &verdict, &basis, &reason);
        if (r < 0) {
                sd_bus_message_unref(reply);
                fprintf(stderr, "Failed to parse the verdict: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (ctl->json) {
                g_autoptr(JsonObject) j = json_object_new();

                json_object_set_string_member(j, "verdict", verdict);
                json_object_set_string_member(j, "basis", basis);
                json_object_set_string_member(j, "reason", reason);
                json_print(json_node_init_object(json_node_alloc(), j));
        } else
                printf("%s -> %s: %s (basis: %s): %s\n", member(o, "type"), argv[1], verdict, basis, reason);
        /* like compat: success means "yes, it can go there" */
        code = g_str_equal(verdict, "compatible") ? EXIT_OK : EXIT_FAILED;
        sd_bus_message_unref(reply);
        return code;
}
