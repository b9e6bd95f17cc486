/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiomigd's copy path (xfer_copy(), migration/transfer.c) between null
 * endpoints, next to a bare loop of the same kind in the same run, so that
 * what is measured is the copy loop itself. Both of xfer_copy()'s modes:
 *
 * - splice() between two pipes, as between two simulated devices: a
 *   thread vmsplice()s zeros into the source pipe (no copy, no page
 *   allocation) and a thread splices the destination pipe into
 *   /dev/null. The bare loop makes the same calls: splice() with
 *   SPLICE_F_NONBLOCK and, when it cannot go on, poll() of the end that
 *   is not ready and of a cancel eventfd, with a timeout: a copy that can
 *   be cancelled and time out must wait so. For scale, a blocking
 *   splice() loop, which can do neither.
 * - read() and write() through a buffer, the path every real VFIO data fd
 *   takes: /dev/zero into /dev/null, which, like VFIO data fds, cannot be
 *   spliced to each other, so xfer_copy() gets there the way it does for
 *   a device, by its first splice() failing. The bare loop reads and
 *   writes with a buffer of the same size.
 *
 * Prints numbers, asserts none; exits non-zero only if bytes go missing.
 *
 *   bench-xfer [MiB]      (default 1024: 4 GiB per run) */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib.h>

#include "migration/transfer.h"
#include "util.h"

#define MiB (1024u * 1024u)
#define CHUNK MiB               /* transfer.c's COPY_BUFFER */
#define PIPE_SIZE MiB           /* as the simulated devices' pipes */
#define ROUNDS 11

static void die(const char *what, int r) {
        fprintf(stderr, "bench-xfer: %s: %s\n", what, g_strerror(-r));
        exit(EXIT_FAILURE);
}

static int open_dev(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC);

        if (fd < 0)
                die(path, -errno);
        return fd;
}

/* ---- the ends ---- */

typedef struct Ends {
        int from, to;           /* what the copy gets */
        bool pipes;
        int src[2], dst[2];     /* with pipes */
        uint64_t bytes;         /* what the source gives */
        uint64_t drained;       /* what the destination took */
        GThread *producer, *consumer;
} Ends;

static void *produce(void *userdata) {
        static const uint8_t zeros[CHUNK] __attribute__((aligned(4096)));
        Ends *e = userdata;

        for (uint64_t left = e->bytes; left > 0;) {
                struct iovec iov = { (void *) zeros, MIN(left, (uint64_t) CHUNK) };
                ssize_t n = vmsplice(e->src[1], &iov, 1, 0);

                if (n <= 0)
                        die("vmsplice", n < 0 ? -errno : -EIO);
                left -= (uint64_t) n;
        }
        close(e->src[1]);
        return NULL;
}

static void *consume(void *userdata) {
        Ends *e = userdata;
        int null = open_dev("/dev/null", O_WRONLY);

        for (;;) {
                ssize_t n = splice(e->dst[0], NULL, null, NULL, CHUNK, 0);

                if (n < 0)
                        die("splice into /dev/null", -errno);
                if (n == 0)
                        break;
                e->drained += (uint64_t) n;
        }
        close(null);
        close(e->dst[0]);
        return NULL;
}

static void make_pipe(int fds[2]) {
        if (pipe2(fds, O_CLOEXEC) < 0)
                die("pipe", -errno);
        (void) fcntl(fds[0], F_SETPIPE_SZ, PIPE_SIZE);
}

static void ends_start(Ends *e, bool pipes, uint64_t bytes) {
        *e = (Ends) { .pipes = pipes, .bytes = bytes };
        if (!pipes) {
                e->from = open_dev("/dev/zero", O_RDONLY);
                e->to = open_dev("/dev/null", O_WRONLY);
                return;
        }
        make_pipe(e->src);
        make_pipe(e->dst);
        e->from = e->src[0];
        e->to = e->dst[1];
        e->producer = g_thread_new("producer", produce, e);
        e->consumer = g_thread_new("consumer", consume, e);
}

/* The copy has closed from and to. */
static void ends_finish(Ends *e, uint64_t copied) {
        if (e->pipes) {
                g_thread_join(e->producer);
                g_thread_join(e->consumer);
        } else
                e->drained = copied;
        if (copied != e->bytes || e->drained != e->bytes)
                die("bytes lost", -EIO);
}

/* ---- the copies ---- */

/* What the worker's progress callback does per chunk: a clock read and
 * a locked add. */
typedef struct Progress {
        GMutex lock;
        uint64_t bytes, last_usec;
} Progress;

static void progress(void *userdata, uint64_t delta) {
        Progress *p = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        g_mutex_lock(&p->lock);
        p->bytes += delta;
        p->last_usec = now;
        g_mutex_unlock(&p->lock);
}

/* Copies bytes from from to to, and closes both. */
typedef uint64_t (*copy_fn)(int from, int to, uint64_t bytes);

static uint64_t xfer(int from, int to, uint64_t bytes) {
        Xfer x = { .cancel_fd = eventfd(0, EFD_CLOEXEC), .io_timeout_usec = 60 * USEC_PER_SEC };
        XferEnd src, dst;
        Progress p = {};
        bool dst_failed;
        int64_t n;

        if (x.cancel_fd < 0)
                die("eventfd", -errno);
        g_mutex_init(&p.lock);
        /* as the worker takes a device's data fd */
        if (xfer_end_from_device(NULL, from, &src) < 0 || xfer_end_from_device(NULL, to, &dst) < 0)
                die("xfer_end_from_device", -errno);
        n = xfer_copy(&x, &src, &dst, bytes, false, progress, &p, &dst_failed);
        if (n < 0)
                die(dst_failed ? "xfer_copy, writing" : "xfer_copy, reading", (int) n);
        if ((uint64_t) n != p.bytes)
                die("progress", -EIO);
        xfer_end_close(&src);
        xfer_end_close(&dst);
        close(x.cancel_fd);
        g_mutex_clear(&p.lock);
        return (uint64_t) n;
}

/* A cancellable wait, as any copy that can be stopped needs: the fd and
 * an eventfd nobody writes, with the daemon's inactivity timeout. */
static void wait_for(int fd, short events, int cancel_fd) {
        struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = cancel_fd, .events = POLLIN } };

        while (poll(p, 2, 60 * 1000) < 0)
                if (errno != EINTR)
                        die("poll", -errno);
}

static void set_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                die("O_NONBLOCK", -errno);
}

/* The fewest calls we know: one poll() per wait, of the end that held
 * the last splice up, the other one if still held up after it (as
 * transfer.c does). Asking the source's fill level (FIONREAD) instead is
 * no faster: measured. */
static uint64_t bare_splice(int from, int to, uint64_t bytes) {
        bool to_blocked = false, waited = false;
        int cancel_fd = eventfd(0, EFD_CLOEXEC);
        uint64_t total = 0;

        if (cancel_fd < 0)
                die("eventfd", -errno);
        set_nonblock(from);
        set_nonblock(to);
        while (total < bytes) {
                ssize_t n = splice(from, NULL, to, NULL, MIN(bytes - total, (uint64_t) CHUNK),
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

                if (n > 0) {
                        total += (uint64_t) n;
                        waited = false;
                        continue;
                }
                if (n == 0)
                        break;
                if (errno != EAGAIN)
                        die("splice", -errno);
                if (waited)
                        to_blocked = !to_blocked;
                wait_for(to_blocked ? to : from, to_blocked ? POLLOUT : POLLIN, cancel_fd);
                waited = true;
        }
        close(cancel_fd);
        close(from);
        close(to);
        return total;
}

static uint64_t blocking_splice(int from, int to, uint64_t bytes) {
        uint64_t total = 0;
        ssize_t n;

        while (total < bytes && (n = splice(from, NULL, to, NULL, MIN(bytes - total, (uint64_t) CHUNK),
                                            SPLICE_F_MOVE)) != 0) {
                if (n < 0)
                        die("splice", -errno);
                total += (uint64_t) n;
        }
        close(from);
        close(to);
        return total;
}

static uint64_t bare_buffered(int from, int to, uint64_t bytes) {
        g_autofree uint8_t *buf = g_malloc(CHUNK);
        uint64_t total = 0;

        while (total < bytes) {
                ssize_t n = read(from, buf, MIN(bytes - total, (uint64_t) CHUNK));

                if (n < 0)
                        die("read", -errno);
                if (n == 0)
                        break;
                for (ssize_t done = 0, w; done < n; done += w) {
                        w = write(to, buf + done, (size_t) (n - done));
                        if (w < 0)
                                die("write", -errno);
                }
                total += (uint64_t) n;
        }
        close(from);
        close(to);
        return total;
}

/* ---- measuring ---- */

static double thread_cpu(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct Run {
        double mbs;             /* MB/s (10^6 bytes per second), wall clock */
        double cpu_mbs;         /* by the copying thread's CPU time */
} Run;

static Run run_once(copy_fn fn, bool pipes, uint64_t bytes) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), copied;
        double c0 = thread_cpu(), cpu;
        Ends e;

        ends_start(&e, pipes, bytes);
        copied = fn(e.from, e.to, bytes);
        cpu = thread_cpu() - c0;
        ends_finish(&e, copied);
        return (Run) { bytes / ((now_usec(CLOCK_MONOTONIC) - t0) / 1e6) / 1e6, bytes / cpu / 1e6 };
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

static void sort(double *v) {
        qsort(v, ROUNDS, sizeof *v, compare_double);
}

static void print_spread(const char *name, double *v) {
        sort(v);
        printf("  %-30s min %8.0f  median %8.0f  max %8.0f MB/s\n", name, v[0], v[ROUNDS / 2], v[ROUNDS - 1]);
}

/* Taking turns, the order alternating, so that what the machine does
 * meanwhile falls on all of them; ratios are taken per round. */
static void compare(const char *mode, bool pipes, copy_fn bare, copy_fn blocking, uint64_t bytes) {
        double mbs[ROUNDS], bare_mbs[ROUNDS], block_mbs[ROUNDS], ratio[ROUNDS], cpu_ratio[ROUNDS], block_ratio[ROUNDS];

        for (unsigned i = 0; i < ROUNDS; i++) {
                Run x, b, k = {};

                if (i % 2)
                        x = run_once(xfer, pipes, bytes);
                b = run_once(bare, pipes, bytes);
                if (blocking)
                        k = run_once(blocking, pipes, bytes);
                if (!(i % 2))
                        x = run_once(xfer, pipes, bytes);
                mbs[i] = x.mbs;
                bare_mbs[i] = b.mbs;
                block_mbs[i] = k.mbs;
                ratio[i] = x.mbs / b.mbs;
                cpu_ratio[i] = x.cpu_mbs / b.cpu_mbs;
                block_ratio[i] = x.mbs / k.mbs;
        }
        printf("%s, %" PRIu64 " MiB per run, %d runs each:\n", mode, bytes / MiB, ROUNDS);
        print_spread("xfer_copy()", mbs);
        print_spread("bare loop", bare_mbs);
        sort(ratio);
        sort(cpu_ratio);
        printf("RATIO xfer/bare-loop (%s): median %.3f  (min %.3f, max %.3f over %d rounds)   (goal >= 0.95)\n",
               mode, ratio[ROUNDS / 2], ratio[0], ratio[ROUNDS - 1], ROUNDS);
        printf("  the same by the copying thread's CPU time: median %.3f  (min %.3f, max %.3f)\n",
               cpu_ratio[ROUNDS / 2], cpu_ratio[0], cpu_ratio[ROUNDS - 1]);
        if (blocking) {
                print_spread("blocking loop (no cancel)", block_mbs);
                sort(block_ratio);
                printf("  xfer_copy() at %.3f of it (median; min %.3f, max %.3f): the price of being able "
                       "to cancel and time out\n", block_ratio[ROUNDS / 2], block_ratio[0], block_ratio[ROUNDS - 1]);
        }
}

int main(int argc, char *argv[]) {
        uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;

        if (mib == 0) {
                fprintf(stderr, "usage: %s [MiB]\n", argv[0]);
                return EXIT_FAILURE;
        }
        printf("xfer_copy() between null endpoints, %u KiB buffer\n", CHUNK / 1024);
        compare("splice, pipe to pipe", true, bare_splice, blocking_splice, 4 * mib * MiB);
        compare("read/write, /dev/zero to /dev/null", false, bare_buffered, NULL, 4 * mib * MiB);
        return EXIT_SUCCESS;
}
