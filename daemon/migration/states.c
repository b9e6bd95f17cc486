/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "log.h"
#include "util.h"
#include "names.h"
#include "migration/states.h"
#include "migration/stream.h"

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

/* The rename is durable once its directory is synced: without it a crash
 * soon after a save could leave the old state, or none, under the name.
 * The state is complete and in place by then, so a failing sync is
 * worth a warning, not a failed save. */
static void sync_directory(const char *final_path) {
        g_autofree char *dir = g_path_get_dirname(final_path);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL && errno != EROFS))
                log_warning("Saved %s, but cannot sync %s: %m", final_path, dir);
        if (fd >= 0)
                close(fd);
}

int states_publish(const char *temp_path, const char *final_path, bool overwrite, char **ret_error) {
        if (renameat2(AT_FDCWD, temp_path, AT_FDCWD, final_path, overwrite ? 0 : RENAME_NOREPLACE) < 0)
                return errno_message(ret_error, errno, "cannot save as %s: %s", final_path, g_strerror(errno));
        sync_directory(final_path);
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

char *states_temp_target(const char *file) {
        size_t n = strlen(file), fixed = strlen(TEMP_PREFIX ".XXXXXX" TEMP_SUFFIX), k;
        g_autofree char *name = NULL;
        const char *x;

        if (n <= fixed || !g_str_has_prefix(file, TEMP_PREFIX) || !g_str_has_suffix(file, TEMP_SUFFIX))
                return NULL;
        k = n - fixed;
        x = file + strlen(TEMP_PREFIX) + k;     /* ".XXXXXX.partial" */
        if (x[0] != '.')
                return NULL;
        /* g_mkstemp_full() fills XXXXXX with letters and digits */
        for (size_t i = 1; i <= 6; i++)
                if (!g_ascii_isalnum(x[i]))
                        return NULL;
        name = g_strndup(file + strlen(TEMP_PREFIX), k);
        return name_is_plain_file(name) ? g_steal_pointer(&name) : NULL;
}

void state_info_free(StateInfo *s) {
        if (!s)
                return;
        g_free(s->name);
        stream_header_clear(&s->header);
        g_free(s);
}

/* The identity as the stream's header records it. A header that is not
 * there yet (a save that just began) or not sound leaves it empty: the
 * listing is not the place to judge a stream, Load is. */
static void read_header(int fd, StreamHeader *ret) {
        g_autoptr(StreamReader) reader = stream_reader_new();
        uint8_t buf[4096];
        StreamEvent ev = {};

        /* bounded: the header's strings are at most STREAM_MAX_STRING each */
        for (size_t total = 0; total < 8 * STREAM_MAX_STRING;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n <= 0 || stream_reader_push(reader, buf, n) < 0 || stream_reader_next(reader, &ev) < 0)
                        break;
                if (ev.type == STREAM_EVENT_HEADER) {
                        const StreamHeader *h = stream_reader_header(reader);

                        *ret = (StreamHeader) {
                                .migration_type = g_strdup(h->migration_type),
                                .migration_version = g_strdup(h->migration_version),
                                .device = g_strdup(h->device),
                                .iommu = g_strdup(h->iommu),
                                .migration_flags = h->migration_flags,
                                .expected_size = h->expected_size,
                        };
                        return;
                }
                total += n;
        }
        *ret = (StreamHeader) { g_strdup(""), g_strdup(""), g_strdup(""), g_strdup("") };
}

/* NULL for what is no saved state: other hidden files, links, FIFOs. */
static StateInfo *state_info_of(int dir_fd, const char *file) {
        g_autofree char *target = NULL;
        StateInfo *s;
        struct stat st;
        int fd;

        target = states_temp_target(file);
        if (!target && !name_is_plain_file(file))
                return NULL;
        fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return NULL;    /* gone meanwhile, or a link */
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return NULL;
        }
        s = g_new0(StateInfo, 1);
        s->name = g_strdup(file);
        s->size = st.st_size;
        s->mtime_usec = (uint64_t) st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000;
        s->complete = !target;
        read_header(fd, &s->header);
        close(fd);
        return s;
}

static int compare_states(gconstpointer a, gconstpointer b) {
        const StateInfo *x = *(StateInfo **) a, *y = *(StateInfo **) b;

        return strcmp(x->name, y->name);
}

int states_list(const char *dir, GPtrArray **ret, char **ret_error) {
        g_autoptr(GPtrArray) l = g_ptr_array_new_with_free_func((GDestroyNotify) state_info_free);
        g_autoptr(GDir) d = NULL;
        g_autoptr(GError) e = NULL;
        const char *n;
        int dir_fd;

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0 && errno == ENOENT) {
                *ret = g_steal_pointer(&l);     /* nothing saved yet */
                return 0;
        }
        if (dir_fd < 0)
                return errno_message(ret_error, errno, "Cannot open %s: %s", dir, g_strerror(errno));
        d = g_dir_open(dir, 0, &e);
        if (!d) {
                close(dir_fd);
                return errno_message(ret_error, EIO, "Cannot read %s: %s", dir, e->message);
        }
        while ((n = g_dir_read_name(d))) {
                StateInfo *s = state_info_of(dir_fd, n);

                if (s)
                        g_ptr_array_add(l, s);
        }
        close(dir_fd);
        g_ptr_array_sort(l, compare_states);
        *ret = g_steal_pointer(&l);
        return 0;
}

int states_remove(const char *dir, const char *name, char **ret_error) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;

        /* only what states_list() lists: a link or FIFO of that name was
         * put there by someone else, for their own reasons */
        if (lstat(path, &st) < 0 && errno == ENOENT)
                return errno_message(ret_error, ENOENT, "No saved state named %s in %s", name, dir);
        if (lstat(path, &st) < 0)
                return errno_message(ret_error, errno, "Cannot look at %s: %s", path, g_strerror(errno));
        if (!S_ISREG(st.st_mode))
                return errno_message(ret_error, EINVAL, "%s is not a regular file, not a saved state", path);
        if (unlink(path) < 0)
                return errno_message(ret_error, errno, "Cannot remove %s: %s", path, g_strerror(errno));
        return 0;
}
