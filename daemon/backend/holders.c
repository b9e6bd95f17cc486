/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/holders.h"

#define VFIO_DEVICE_INODE "anon_inode:[vfio-device]"

void holder_clear(Holder *h) {
        g_clear_pointer(&h->comm, g_free);
}

static bool is_pid(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!g_ascii_isdigit(*s))
                        return false;
        return true;
}

/* 2: one of nodes is open; 1: only a VFIO device fd of unknown origin;
 * 0: neither (or the process is gone, or not ours to read). */
static int scan_fds(const char *proc, const char *pid, const char *const *nodes) {
        g_autofree char *dir = g_build_filename(proc, pid, "fd", NULL);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *fd;
        int found = 0;

        while (d && (fd = g_dir_read_name(d))) {
                g_autofree char *link = g_build_filename(dir, fd, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);

                if (!target)
                        continue;
                if (g_strv_contains(nodes, target))
                        return 2;
                if (g_str_equal(target, VFIO_DEVICE_INODE))
                        found = 1;
        }
        return found;
}

static char *read_comm(const char *proc, const char *pid) {
        g_autofree char *path = g_build_filename(proc, pid, "comm", NULL);
        char *comm = NULL;

        if (!g_file_get_contents(path, &comm, NULL, NULL))
                return g_strdup("?");
        return g_strchomp(comm);
}

int holders_find(const char *proc, const char *const *nodes, pid_t skip, Holder *ret) {
        g_autoptr(GDir) d = g_dir_open(proc, 0, NULL);
        g_autofree char *candidate = NULL;
        const char *pid;

        if (!d)
                return -errno;
        while ((pid = g_dir_read_name(d))) {
                int r;

                if (!is_pid(pid) || atoi(pid) == skip)
                        continue;
                r = scan_fds(proc, pid, nodes);
                if (r == 2) {
                        *ret = (Holder) { atoi(pid), read_comm(proc, pid), true };
                        return 0;
                }
                if (r == 1 && !candidate)
                        candidate = g_strdup(pid);
        }
        if (!candidate)
                return -ENOENT;
        *ret = (Holder) { atoi(candidate), read_comm(proc, candidate), false };
        return 0;
}

char *holder_describe(const Holder *h, const char *domain) {
        const char *maybe = h->exact ? "" : "possibly ";

        if (domain && *domain)
                return g_strdup_printf("domain %s (%sqemu pid %d)", domain, maybe, (int) h->pid);
        return g_strdup_printf("%spid %d (%s)", maybe, (int) h->pid, h->comm);
}
