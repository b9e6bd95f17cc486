/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "vfio-uapi.h"

/* sysfs attributes are at most a page; read one more byte to notice
 * anything larger, which is not an attribute we understand. */
#define SYSFS_ATTR_MAX 4096

int sysfs_read(const char *dir, const char *attr, char **ret) {
        g_autofree char *path = g_build_filename(dir, attr, NULL);
        g_autofree char *buf = g_malloc(SYSFS_ATTR_MAX + 2);
        ssize_t n;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, SYSFS_ATTR_MAX + 1);
        if (n < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        close(fd);
        if (n > SYSFS_ATTR_MAX || memchr(buf, '\0', n))
                return -EBADMSG;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                n--;
        buf[n] = '\0';
        *ret = g_steal_pointer(&buf);
        return 0;
}

int sysfs_read_uint(const char *dir, const char *attr, unsigned *ret) {
        g_autofree char *s = NULL;
        guint64 v;
        int r;

        r = sysfs_read(dir, attr, &s);
        if (r < 0)
                return r;
        if (!g_ascii_string_to_unsigned(s, 10, 0, UINT_MAX, &v, NULL))
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

int sysfs_write(const char *dir, const char *attr, const char *value) {
        g_autofree char *path = g_build_filename(dir, attr, NULL);
        size_t len = strlen(value);
        ssize_t n;
        int fd, r = 0;

        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = write(fd, value, len);
        if (n < 0)
                r = -errno;
        else if ((size_t) n != len)
                r = -EIO;
        close(fd);
        return r;
}

int sysfs_link_basename(const char *dir, const char *link, char **ret) {
        g_autofree char *path = g_build_filename(dir, link, NULL);
        char target[PATH_MAX];
        ssize_t n;

        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        *ret = g_path_get_basename(target);
        return 0;
}

bool sysfs_exists(const char *dir, const char *entry) {
        g_autofree char *path = g_build_filename(dir, entry, NULL);

        return access(path, F_OK) == 0;
}

/* Not g_file_set_contents_full(): with CONSISTENT it fsyncs a file that
 * exists, and these files (the journal, simulated device state written on
 * every transition) guard against the end of the daemon, not of the
 * machine; an fsync would sit inside a migration's downtime. */
int write_file_atomic(const char *path, const void *data, size_t len) {
        g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
        const uint8_t *p = data;
        int fd, r = 0;

        /* journals, simulated devices, probe results: root's alone */
        fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (len > 0 && r == 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno != EINTR)
                        r = -errno;
                else if (n > 0)
                        p += n, len -= (size_t) n;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

void free_and_strdup(char **p, const char *s) {
        g_free(*p);
        *p = g_strdup(s ? s : "");
}

uint64_t now_usec(int clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000ULL;
}

static const struct {
        uint32_t bit;
        const char *name;
} migration_flag_names[] = {
        { VFIO_MIGRATION_STOP_COPY, "stop-copy" },
        { VFIO_MIGRATION_P2P,       "p2p" },
        { VFIO_MIGRATION_PRE_COPY,  "pre-copy" },
};

char **migration_flags_to_strv(uint32_t flags) {
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();

        for (size_t i = 0; i < G_N_ELEMENTS(migration_flag_names); i++)
                if (flags & migration_flag_names[i].bit)
                        g_strv_builder_add(b, migration_flag_names[i].name);
        return g_strv_builder_end(b);
}

char *migration_flags_to_string(uint32_t flags, const char *sep) {
        g_auto(GStrv) v = migration_flags_to_strv(flags);

        return g_strjoinv(sep, v);
}

const char *migration_flags_text(uint32_t flags) {
        /* indexed by the three bits, stop-copy (1), p2p (2), pre-copy (4) */
        static const char *const text[8] = {
                "", "stop-copy", "p2p", "stop-copy,p2p",
                "pre-copy", "stop-copy,pre-copy", "p2p,pre-copy", "stop-copy,p2p,pre-copy",
        };

        G_STATIC_ASSERT(VFIO_MIGRATION_STOP_COPY == 1 && VFIO_MIGRATION_P2P == 2 && VFIO_MIGRATION_PRE_COPY == 4);
        return text[flags & 7];
}

/* Accepts the names separated by ',', ';' or whitespace. */
int migration_flags_from_string(const char *s, uint32_t *ret) {
        g_auto(GStrv) words = g_strsplit_set(s, ",; \t", -1);
        uint32_t flags = 0;

        for (char **w = words; *w; w++) {
                size_t i;

                if (**w == '\0')
                        continue;
                for (i = 0; i < G_N_ELEMENTS(migration_flag_names); i++)
                        if (strcmp(*w, migration_flag_names[i].name) == 0)
                                break;
                if (i == G_N_ELEMENTS(migration_flag_names))
                        return -EINVAL;
                flags |= migration_flag_names[i].bit;
        }
        *ret = flags;
        return 0;
}

int errno_message(char **ret_error, int r, const char *format, ...) {
        va_list ap;

        if (!ret_error)
                return -abs(r);
        va_start(ap, format);
        *ret_error = g_strdup_vprintf(format, ap);
        va_end(ap);
        return -abs(r);
}
