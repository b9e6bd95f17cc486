/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "json-writer.h"
#include "vfiomig-names.h"

/* --parent, --type, --kind and --domain narrow a listing down: an empty
 * filter takes everything. */
static bool wanted(const char *filter, const char *value) {
        return !filter || g_str_equal(filter, value);
}

static Color state_color(const char *state) {
        return g_str_equal(state, "error") ? COLOR_BAD : COLOR_NORMAL;
}

/* A row of ListDevices, pointing into the reply. */
typedef struct DeviceRow {
        const char *name, *kind, *driver, *type, *flags, *state, *domain, *support, *parent;
} DeviceRow;

static bool device_wanted(Ctl *ctl, const DeviceRow *d) {
        return wanted(ctl->filter.parent, d->parent) && wanted(ctl->targets.type, d->type) &&
               wanted(ctl->filter.kind, d->kind) && wanted(ctl->filter.domain, d->domain);
}

/* The MIGRATION cell: the flags, or "none" or "unknown" alone. */
static const char *migration_cell(const DeviceRow *d) {
        return g_str_equal(d->support, "supported") ? d->flags : d->support;
}

static void write_device_json(JsonWriter *w, const DeviceRow *d) {
        json_writer_begin_object(w);
        json_writer_member_string(w, "name", d->name);
        json_writer_member_string(w, "kind", d->kind);
        json_writer_member_string(w, "driver", d->driver);
        json_writer_member_string(w, "parent", d->parent);
        json_writer_member_string(w, "mdev_type", d->type);
        json_writer_member_string(w, "migration_support", d->support);
        json_writer_member_list(w, "migration_flags", d->flags, ',');
        json_writer_member_string(w, "state", d->state);
        json_writer_member_string(w, "domain", d->domain);
        json_writer_end_object(w);
}

/* Rows go from the reply straight to the chosen output: JSON as it is
 * read, a table from strings the reply still holds. A listing of
 * thousands of devices then costs little more than reading it. */
int cmd_list(Ctl *ctl, int argc, char **argv) {
        g_autoptr(Table) t = NULL;
        sd_bus_message *reply = NULL;
        JsonWriter w;
        DeviceRow d;
        int r, code;

        if (argc != 1)
                return ctl_usage_error("list takes no arguments");
        code = ctl_call(ctl, "ListDevices", &reply, "list devices", NULL);
        if (code != EXIT_OK)
                return code;

        if (ctl->json) {
                json_writer_init(&w, stdout, output_json_pretty(stdout));
                json_writer_begin_array(&w);
        } else {
                t = table_new("NAME", "KIND", "DRIVER", "PARENT", "TYPE", "MIGRATION", "STATE", "DOMAIN", NULL);
                table_keep_whole(t, "NAME");
                table_set_color(t, "STATE", state_color);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssssssss)", &d.name, &d.kind, &d.driver, &d.type, &d.flags,
                                                   &d.state, &d.domain, &d.support, &d.parent)) > 0) {
                if (!device_wanted(ctl, &d))
                        continue;
                if (ctl->json)
                        write_device_json(&w, &d);
                else
                        table_add_row(t, d.name, d.kind, d.driver, d.parent, d.type, migration_cell(&d), d.state,
                                      d.domain, NULL);
        }
        if (r < 0) {
                sd_bus_message_unref(reply);
                if (ctl->json)
                        putchar('\n');
                fprintf(stderr, "Failed to parse the device list: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (ctl->json) {
                json_writer_end_array(&w);
                putchar('\n');
        } else
                table_print(t, "devices");
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

int cmd_types(Ctl *ctl, int argc, char **argv) {
        g_autoptr(Table) t = NULL;
        sd_bus_message *reply = NULL;
        const char *parent, *id, *name, *api, *description;
        uint32_t available;
        JsonWriter w;
        int r, code;

        if (argc != 1)
                return ctl_usage_error("types takes no arguments");
        code = ctl_call(ctl, "ListTypes", &reply, "list mdev types", NULL);
        if (code != EXIT_OK)
                return code;

        if (ctl->json) {
                json_writer_init(&w, stdout, output_json_pretty(stdout));
                json_writer_begin_array(&w);
        } else {
                t = table_new("PARENT", "TYPE", "NAME", "API", "AVAILABLE", "DESCRIPTION", NULL);
                /* what create-mdev takes */
                table_keep_whole(t, "PARENT");
                table_keep_whole(t, "TYPE");
        }
        r = sd_bus_message_enter_container(reply, 'a', "(sssuss)");
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(sssuss)", &parent, &id, &name, &available, &api, &description)) > 0) {
                char avail[16] = "unlimited";  /* a vDPA management device states no limit */

                if (!wanted(ctl->filter.parent, parent))
                        continue;
                if (!ctl->json) {
                        if (available != UINT32_MAX)
                                snprintf(avail, sizeof(avail), "%u", available);
                        table_add_row(t, parent, id, name, api, avail, description, NULL);
                        continue;
                }
                json_writer_begin_object(&w);
                json_writer_member_string(&w, "parent", parent);
                json_writer_member_string(&w, "id", id);
                json_writer_member_string(&w, "name", name);
                json_writer_key(&w, "available_instances");
                json_writer_int(&w, available);
                json_writer_member_string(&w, "device_api", api);
                json_writer_member_string(&w, "description", description);
                json_writer_end_object(&w);
        }
        if (r < 0) {
                sd_bus_message_unref(reply);
                if (ctl->json)
                        putchar('\n');
                fprintf(stderr, "Failed to parse the type list: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (ctl->json) {
                json_writer_end_array(&w);
                putchar('\n');
        } else
                table_print(t, "types");
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

/* Reads one property value of GetAll into JSON and text. */
static int read_property(sd_bus_message *m, const char *contents, JsonNode **json, char **text) {
        int r = 0;

        switch (contents[0]) {
        case 's': case 'o': {
                const char *s;

                r = sd_bus_message_read_basic(m, contents[0], &s);
                if (r >= 0) {
                        *json = json_node_init_string(json_node_alloc(), s);
                        *text = g_strdup(s);
                }
                break;
        }
        case 'b': {
                int b;

                r = sd_bus_message_read_basic(m, 'b', &b);
                if (r >= 0) {
                        *json = json_node_init_boolean(json_node_alloc(), b);
                        *text = g_strdup(b ? "yes" : "no");
                }
                break;
        }
        case 'u': {
                uint32_t u;

                r = sd_bus_message_read_basic(m, 'u', &u);
                if (r >= 0) {
                        *json = json_node_init_int(json_node_alloc(), u);
                        *text = g_strdup_printf("%u", u);
                }
                break;
        }
        case 'a': {
                char **strv = NULL;

                r = sd_bus_message_read_strv(m, &strv);     /* NULL for an empty array */
                if (r >= 0) {
                        *json = json_strv_node(strv);
                        *text = strv ? g_strjoinv(" ", strv) : g_strdup("");
                }
                g_strfreev(strv);
                break;
        }
        default:
                r = sd_bus_message_skip(m, contents);
                *json = json_node_init_null(json_node_alloc());
                *text = g_strdup("?");
        }
        return r;
}

int cmd_show(Ctl *ctl, int argc, char **argv) {
        sd_bus_message *reply = NULL, *props = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *what = NULL, *support = NULL, *flags = NULL;
        const char *path;
        int r, code, flags_line = -1;

        if (argc != 2)
                return ctl_usage_error("show takes exactly one DEVICE (an mdev UUID or a PCI address)");
        what = g_strdup_printf("look up device %s", argv[1]);
        code = ctl_call(ctl, "GetDevice", &reply, what, "s", argv[1]);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll",
                                       &error, &props, "s", VFIOMIG_DEVICE_INTERFACE);
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to read properties of %s: %s\n", argv[1],
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                code = ctl_exit_code_for_error(&error, r);
                sd_bus_error_free(&error);
                return code;
        }

        r = sd_bus_message_enter_container(props, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(props, 'e', "sv")) > 0) {
                const char *name, *contents;
                JsonNode *json = NULL;
                g_autofree char *text = NULL, *key = NULL;

                r = sd_bus_message_read(props, "s", &name);
                if (r >= 0)
                        r = sd_bus_message_peek_type(props, NULL, &contents);
                if (r >= 0)
                        r = sd_bus_message_enter_container(props, 'v', contents);
                if (r >= 0)
                        r = read_property(props, contents, &json, &text);
                if (r >= 0)
                        r = sd_bus_message_exit_container(props);
                if (r >= 0)
                        r = sd_bus_message_exit_container(props);
                if (r < 0)
                        break;
                key = json_key(name);
                json_object_set_member(o, key, json);
                /* the flags say what MigrationSupport means for them */
                if (g_str_equal(name, "MigrationSupport"))
                        support = g_strdup(text);
                if (g_str_equal(name, "MigrationFlags")) {
                        flags = g_strdup(text);
                        flags_line = (int) lines->len;
                }
                g_ptr_array_add(lines, g_strdup_printf("%16s: %s", name, *text ? text : "-"));
        }
        if (r >= 0 && flags_line >= 0 && support) {
                g_autofree char *m = migration_text(support, flags);

                g_free(lines->pdata[flags_line]);
                lines->pdata[flags_line] = g_strdup_printf("%16s: %s", "MigrationFlags", *m ? m : "-");
        }
        sd_bus_message_unref(props);
        if (r < 0) {
                fprintf(stderr, "Failed to parse properties of %s: %s\n", argv[1], strerror(-r));
                return EXIT_FAILED;
        }
        if (ctl->json)
                json_print(json_node_init_object(json_node_alloc(), o));
        else
                for (guint i = 0; i < lines->len; i++)
                        puts(lines->pdata[i]);
        return EXIT_OK;
}
