/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>
#include <systemd/sd-bus.h>

/* Exit codes scripts may rely on (documented in vfiomigctl(1)). */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,        /* the daemon refused or the operation failed */
        EXIT_USAGE = 2,         /* bad command line or invalid argument */
        EXIT_NOT_FOUND = 3,     /* no such device, type or migration */
        EXIT_DENIED = 4,        /* not authorized */
        EXIT_CONFLICT = 5,      /* busy, or already exists */
        EXIT_UNREACHABLE = 6,   /* no bus, the service cannot be started, or it left during a job */
};

typedef struct Ctl {
        sd_bus *bus;
        bool json;
        bool quiet;                     /* -q: jobs say nothing but what failed */
        bool ask_password;
        /* migrations */
        bool no_wait, no_precopy, overwrite, allow_no_p2p, allow_unknown;
        bool no_prefetch;               /* load -: into the target as verified */
        int max_rounds;                 /* -1: the daemon's default */
        uint32_t io_timeout;            /* 0: the daemon's default */
        const char *target_state, *source_state;
        GPtrArray *group;               /* "SOURCE=TARGET" */
        const char *ssh;                /* --ssh: how to reach another host */
        /* list and types: only these (NULL: any) */
        struct {
                const char *parent, *kind, *domain;
        } filter;
        /* targets; for list, type is the mdev type to list */
        struct {
                const char *type, *version, *iommu, *vdpa;
                bool include_busy, existing_only, include_unknown;
        } targets;
        bool forget_all;                /* forget-probe --all */
        FILE *out;                      /* stdout, or stderr when stdout carries a stream */
} Ctl;

typedef int (*CommandFunc)(Ctl *ctl, int argc, char **argv);

/* Each returns an exit code from the enum above. */
int cmd_list(Ctl *ctl, int argc, char **argv);
int cmd_types(Ctl *ctl, int argc, char **argv);
int cmd_show(Ctl *ctl, int argc, char **argv);
int cmd_refresh(Ctl *ctl, int argc, char **argv);
int cmd_create_mdev(Ctl *ctl, int argc, char **argv);
int cmd_remove_mdev(Ctl *ctl, int argc, char **argv);
int cmd_monitor(Ctl *ctl, int argc, char **argv);
int cmd_migrate(Ctl *ctl, int argc, char **argv);
int cmd_save(Ctl *ctl, int argc, char **argv);
int cmd_load(Ctl *ctl, int argc, char **argv);
int cmd_resume(Ctl *ctl, int argc, char **argv);
int cmd_migrations(Ctl *ctl, int argc, char **argv);
int cmd_cancel(Ctl *ctl, int argc, char **argv);
int cmd_wait(Ctl *ctl, int argc, char **argv);
int cmd_identity(Ctl *ctl, int argc, char **argv);
int cmd_compat(Ctl *ctl, int argc, char **argv);
int cmd_targets(Ctl *ctl, int argc, char **argv);
int cmd_probe(Ctl *ctl, int argc, char **argv);
int cmd_check_identity(Ctl *ctl, int argc, char **argv);
int cmd_domain(Ctl *ctl, int argc, char **argv);
int cmd_states(Ctl *ctl, int argc, char **argv);
int cmd_remove_state(Ctl *ctl, int argc, char **argv);
int cmd_probes(Ctl *ctl, int argc, char **argv);
int cmd_forget_probe(Ctl *ctl, int argc, char **argv);

/* Sends the method call m (and drops it), asking polkit to ask for a
 * password unless --no-ask-password; r < 0 says building m failed. On
 * failure prints "Failed to <what>: <message>" and returns the exit code
 * for the error, else EXIT_OK. ret_error, if not NULL, gets the error. */
int ctl_send(Ctl *ctl, sd_bus_message *m, int r, sd_bus_message **reply, const char *what,
             sd_bus_error *ret_error);
/* The same for a Manager method with simple arguments. */
int ctl_call(Ctl *ctl, const char *method, sd_bus_message **reply, const char *what,
             const char *types, ...);
int ctl_exit_code_for_error(const sd_bus_error *error, int r);
int ctl_usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* The line a terminal shows while a job runs: the phase, the pre-copy
 * round, and what this phase (or round) and the whole job moved. */
char *progress_line(const char *phase, unsigned round, uint64_t phase_bytes, uint64_t total, uint64_t expected,
                    uint64_t bytes_at_phase_start);
/* "4.0 MiB": binary units, a plain space, the same under every locale. */
char *format_bytes(uint64_t bytes);
/* A D-Bus property name as a JSON key: "MigrationSupport" ->
 * "migration_support". */
char *json_key(const char *property);
/* A daemon's error message with its "(option NAME)" hints as our flags. */
char *cli_error_text(const char *message);

/* Output: human tables or JSON on stdout. */
typedef enum JsonStyle {
        JSON_STYLE_AUTO,        /* pretty on a terminal, short otherwise */
        JSON_STYLE_PRETTY,
        JSON_STYLE_SHORT,
} JsonStyle;
void output_set_json_style(JsonStyle style);
/* Whether JSON written to f is pretty: asked for, or a terminal. */
bool output_json_pretty(FILE *f);
/* Tables without their header and their "N things listed." footer. */
void output_set_legend(bool legend);

/* Colours go to a stream that is a terminal, unless NO_COLOR is set,
 * SYSTEMD_COLORS says otherwise (it may also turn them on for a pipe) or
 * TERM is unset or "dumb"; as systemd's tools decide. */
typedef enum Color {
        COLOR_NORMAL,
        COLOR_HEADER,   /* bold */
        COLOR_GOOD,     /* green */
        COLOR_WARN,     /* yellow */
        COLOR_BAD,      /* red */
        COLOR_ERROR,    /* bold red: a line that says what failed */
} Color;
bool output_colors(FILE *f);
/* The escape sequences that start and end color on f, or "". */
const char *color_on(FILE *f, Color color);
const char *color_off(FILE *f, Color color);
/* compatible green, incompatible red, unknown yellow */
Color verdict_color(const char *verdict);

/* Tables: columns padded to their widest cell. On a terminal narrower
 * than a table, cells of the widest columns end in an ellipsis so that
 * rows fit, except in columns kept whole; never when stdout is not a
 * terminal. */
typedef struct Table Table;
Table *table_new(const char *first_header, ...) G_GNUC_NULL_TERMINATED;
/* The cells of the column under header in the colour color_of gives. */
void table_set_color(Table *t, const char *header, Color (*color_of)(const char *cell));
/* The column under header names what a user may type back: not cut. */
void table_keep_whole(Table *t, const char *header);
void table_add_row(Table *t, const char *first, ...) G_GNUC_NULL_TERMINATED;
void table_print(Table *t, const char *noun_plural);
void table_free(Table *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Table, table_free);

void json_print(JsonNode *node);
void json_print_to(FILE *f, JsonNode *node);
JsonNode *json_strv_node(char **strv);
/* A device's migration flags for people, from its MigrationSupport and
 * its flags as one string: the flags, "unknown", or "none (the driver
 * has no VFIO migration)". */
char *migration_text(const char *support, const char *flags);
