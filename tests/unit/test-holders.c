/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "backend/holders.h"
#include "unit-test.h"

/* A /proc of the test's own: PID/comm and PID/fd/N links to whatever the
 * case says (readlink needs no target). */
static void add_process(const char *proc, int pid, const char *comm, const char *const *fds) {
        g_autofree char *dir = g_strdup_printf("%s/%d/fd", proc, pid);
        g_autofree char *comm_path = g_strdup_printf("%s/%d/comm", proc, pid);
        g_autofree char *text = g_strdup_printf("%s\n", comm);

        g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
        g_assert_true(g_file_set_contents(comm_path, text, -1, NULL));
        for (int i = 0; fds[i]; i++) {
                g_autofree char *link = g_strdup_printf("%s/%d", dir, i);

                g_assert_cmpint(symlink(fds[i], link), ==, 0);
        }
}

static const char *const group7[] = { "/dev/vfio/7", "/dev/vfio/devices/vfio3", NULL };

static void test_fake_proc(void) {
        g_autofree char *tmp = g_dir_make_tmp("holders-XXXXXX", NULL);
        g_autofree char *proc = g_build_filename(tmp, "proc", NULL);
        g_auto(Holder) h = {};

        add_process(proc, 45, "bash", (const char *[]) { "/dev/null", "/dev/vfio/vfio", "/dev/vfio/8", NULL });
        g_assert_cmpint(holders_find(proc, group7, 0, &h), ==, -ENOENT);

        /* a device fd without its group: a candidate only */
        add_process(proc, 123, "qemu-system-x86", (const char *[]) { "anon_inode:[vfio-device]", NULL });
        g_assert_cmpint(holders_find(proc, group7, 0, &h), ==, 0);
        g_assert_cmpint(h.pid, ==, 123);
        g_assert_false(h.exact);
        g_assert_cmpstr(h.comm, ==, "qemu-system-x86");
        holder_clear(&h);

        /* the group node itself wins over any candidate, wherever it is listed */
        add_process(proc, 7, "vfio-user", (const char *[]) { "/tmp/x", "/dev/vfio/7", NULL });
        g_assert_cmpint(holders_find(proc, group7, 0, &h), ==, 0);
        g_assert_cmpint(h.pid, ==, 7);
        g_assert_true(h.exact);
        holder_clear(&h);

        /* so does the cdev */
        add_process(proc, 300, "dpdk", (const char *[]) { "/dev/vfio/devices/vfio3", NULL });
        g_assert_cmpint(holders_find(proc, group7, 7, &h), ==, 0);
        g_assert_cmpint(h.pid, ==, 300);
        g_assert_true(h.exact);
        holder_clear(&h);

        /* ours do not count: the exact holder is skipped, any VFIO
         * device fd is still a candidate */
        g_assert_cmpint(holders_find(proc, (const char *[]) { "/dev/vfio/8", NULL }, 45, &h), ==, 0);
        g_assert_cmpint(h.pid, ==, 123);
        g_assert_false(h.exact);
        holder_clear(&h);
        g_assert_cmpint(holders_find("/nonexistent-proc", group7, 0, &h), ==, -ENOENT);
        g_assert_null(h.comm);
        {
                g_autofree char *rm = g_strdup_printf("rm -rf %s", tmp);

                (void) g_spawn_command_line_sync(rm, NULL, NULL, NULL, NULL);
        }
}

/* The real /proc: a child holding a file open is found by that file. */
static void test_real_proc(void) {
        g_autofree char *path = g_strdup_printf("%s/holders-node-%d", g_get_tmp_dir(), (int) getpid());
        int ready[2];
        pid_t child;
        char c;
        g_auto(Holder) h = {};

        g_assert_true(g_file_set_contents(path, "", 0, NULL));
        g_assert_cmpint(pipe(ready), ==, 0);
        child = fork();
        g_assert_cmpint(child, >=, 0);
        if (child == 0) {
                int fd = open(path, O_RDONLY);

                (void) !write(ready[1], fd >= 0 ? "y" : "n", 1);
                pause();
                _exit(0);
        }
        g_assert_cmpint(read(ready[0], &c, 1), ==, 1);
        g_assert_cmpint(c, ==, 'y');
        g_assert_cmpint(holders_find("/proc", (const char *[]) { path, NULL }, getpid(), &h), ==, 0);
        g_assert_cmpint(h.pid, ==, child);
        g_assert_true(h.exact);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        holder_clear(&h);
        g_assert_cmpint(holders_find("/proc", (const char *[]) { path, NULL }, getpid(), &h), ==, -ENOENT);
        g_unlink(path);
        close(ready[0]);
        close(ready[1]);
}

static void test_describe(void) {
        Holder exact = { 7, (char *) "qemu-system-x86", true }, maybe = { 9, (char *) "qemu", false };
        g_autofree char *a = holder_describe(&exact, NULL), *b = holder_describe(&exact, "vm1");
        g_autofree char *c = holder_describe(&maybe, ""), *d = holder_describe(&maybe, "vm2");

        g_assert_cmpstr(a, ==, "pid 7 (qemu-system-x86)");
        g_assert_cmpstr(b, ==, "domain vm1 (qemu pid 7)");
        g_assert_cmpstr(c, ==, "possibly pid 9 (qemu)");
        g_assert_cmpstr(d, ==, "domain vm2 (possibly qemu pid 9)");
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);

        g_test_add_func("/holders/fake-proc", test_fake_proc);
        g_test_add_func("/holders/real-proc", test_real_proc);
        g_test_add_func("/holders/describe", test_describe);
        return g_test_run();
}
