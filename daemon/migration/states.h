/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "migration/stream.h"

/* The saved-state store: Save(NAME) and Load(NAME) keep stream files in
 * one directory (STATE_DIRECTORY/states). A state is written under a
 * hidden temporary name and appears under its own only when complete, so
 * a reader never sees half of one and a daemon killed mid-save leaves
 * nothing that a later start does not sweep away.
 *
 * Names were checked by the caller (name_is_plain_file()). Functions
 * return -errno; *ret_error then says what failed, naming the file. The
 * errno is the one whose D-Bus error fits (EEXIST: AlreadyExists, EINVAL:
 * InvalidArgument). */

/* The store's directory under the daemon's state directory. */
char *states_dir(const char *state_dir);

/* Whether NAME may be written: -EEXIST if a state has it and overwrite
 * is not set. Creates the directory. *ret_path: where the state goes. */
int states_prepare(const char *dir, const char *name, bool overwrite, char **ret_path, char **ret_error);

/* A new temporary file for the state that goes to final_path, open for
 * writing: its fd, and its name in *ret_temp_path (unique, as two saves
 * under one name must not share it). */
int states_create_temp(const char *final_path, char **ret_temp_path, char **ret_error);

/* Renames a complete temporary file into place; without overwrite a name
 * another job took meanwhile is not replaced (-EEXIST). */
int states_publish(const char *temp_path, const char *final_path, bool overwrite, char **ret_error);

/* Opens the saved state NAME for a load: an fd in blocking mode, for the
 * job's worker. Nothing here blocks the main loop: a FIFO would wait for
 * a writer, a symbolic link could lead anywhere, and neither is a saved
 * state (-EINVAL, as for a name that is not there). */
int states_open(const char *dir, const char *name, char **ret_error);

/* At start: removes the temporary files a killed daemon left. */
void states_sweep(const char *dir);

/* What the store holds, for ListStates(). */
typedef struct StateInfo {
        char *name;             /* a temporary file's own name (".NAME.XXXXXX.partial") */
        uint64_t size;          /* bytes on disk */
        uint64_t mtime_usec;    /* CLOCK_REALTIME */
        bool complete;          /* false: a temporary file, a save still writing (or one
                                 * a killed daemon left, until the next start sweeps it) */
        StreamHeader header;    /* the source's identity as the header records it;
                                 * empty strings where it cannot be read (yet) */
} StateInfo;

void state_info_free(StateInfo *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateInfo, state_info_free);

/* Every regular file of the store that is a state or a save's temporary
 * file, by name. A store that does not exist yet is empty. */
int states_list(const char *dir, GPtrArray **ret, char **ret_error);

/* For a temporary file's name, the name of the state it becomes; NULL
 * if file is no such name. */
char *states_temp_target(const char *file);

/* Removes a state or a temporary file (name checked by the caller, and
 * that no job uses it): -ENOENT if there is none of that name, -EINVAL
 * for something there that is no regular file (left alone). */
int states_remove(const char *dir, const char *name, char **ret_error);
