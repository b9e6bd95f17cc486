/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "log.h"
#include "util.h"
#include "names.h"
#include "migration/states.h"

/* Hidden, as no saved state's name starts with a dot, so that the sweep
 * at start finds what a killed daemon left. */
#define TEMP_PREFIX "."
#define TEMP_SUFFIX ".partial"

/* names.c accepts no name longer than what fits between these */
G_STATIC_ASSERT(sizeof(TEMP_PREFIX ".XXXXXX" TEMP_SUFFIX) == sizeof(NAME_SAVE_TEMP_PREFIX NAME_SAVE_TEMP_SUFFIX));

char *states_dir(const char *state_dir) {
        return g_build_filename(state_dir, "states", NULL);
}

int states_prepare(const char *dir, const char *name, bool overwrite, char **ret_path, char **ret_error) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        if (!overwrite && access(path, F_OK) == 0)
                return errno_message(ret_error, EEXIST, "A saved state named %s exists already (option overwrite)", name);
        if (g_mkdir_with_parents(dir, 0700) < 0)
                return errno_message(ret_error, errno, "Cannot create %s: %s", dir, g_strerror(errno));
        *ret_path = g_steal_pointer(&path);
        return 0;
}

int states_create_temp(const char *final_path, char **ret_temp_path, char **ret_error) {
        g_autofree char *dir = g_path_get_dirname(final_path), *base = g_path_get_basename(final_path);
        g_autofree char *temp = g_strdup_printf("%s/" TEMP_PREFIX "%s.XXXXXX" TEMP_SUFFIX, dir, base);
        int fd;

        fd = g_mkstemp_full(temp, O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0)
                return errno_message(ret_error, errno, "Cannot create %s: %s", temp, g_strerror(errno));
        *ret_temp_path = g_steal_pointer(&temp);
        return fd;
}

int states_publish(const char *temp_path, const char *final_path, bool overwrite, char **ret_error) {
        if (renameat2(AT_FDCWD, temp_path, AT_FDCWD, final_path, overwrite ? 0 : RENAME_NOREPLACE) < 0)
                return errno_message(ret_error, errno, "cannot save as %s: %s", final_path, g_strerror(errno));
        return 0;
}

/* The worker reads it blocking, as it does any file. */
static int check_and_block(int fd, const char *path, char **ret_error) {
        struct stat st;
        int flags;

        if (fstat(fd, &st) < 0)
                return errno_message(ret_error, errno, "Cannot stat %s: %s", path, g_strerror(errno));
        if (!S_ISREG(st.st_mode))
                return errno_message(ret_error, EINVAL, "%s is not a regular file, not a saved state", path);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return errno_message(ret_error, errno, "Cannot read %s: %s", path, g_strerror(errno));
        return 0;
}

int states_open(const char *dir, const char *name, char **ret_error) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        int fd, r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return errno_message(ret_error, EINVAL, "No saved state named %s in %s", name, dir);
        if (fd < 0 && errno == ELOOP)
                return errno_message(ret_error, EINVAL, "%s is a symbolic link, not a saved state", path);
        if (fd < 0)
                return errno_message(ret_error, errno, "Cannot open %s: %s", path, g_strerror(errno));
        r = check_and_block(fd, path, ret_error);
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

void states_sweep(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *path = NULL;

                if (!g_str_has_prefix(n, TEMP_PREFIX) || !g_str_has_suffix(n, TEMP_SUFFIX))
                        continue;
                path = g_build_filename(dir, n, NULL);
                if (unlink(path) < 0)
                        log_warning_errno(errno, "Cannot remove %s: %m", path);
                else
                        log_notice("Removed %s, half a saved state from before a restart", path);
        }
}
