/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baseline of the downtime benchmark: the testbed's simulated
 * devices, persisted in DIR as the daemon's are in its runtime
 * directory, driven through the daemon's sequence with nothing else: the
 * target to RESUMING, the source through one pre-copy round, then the
 * window (source to STOP_COPY, its last data spliced across and the
 * target's session closed, the target to RUNNING in one SET) and the
 * source's session closed and the source to STOP after it. The two devices swap roles every run, as the
 * benchmark's migrations do.
 *
 * Prints one line per run, microseconds: the window, the time inside
 * device calls, the time moving the data, and the rest ("added"), the
 * same account vfiomigd logs.
 *
 *   bench-downtime-bare DIR RUNS STATE-BYTES */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/testbed-device.h"
#include "util.h"
#include "vfio-uapi.h"

#define BUFFER (1024 * 1024)

typedef struct Account {
        uint64_t device, data;
} Account;

static void die(const char *what, int r) {
        fprintf(stderr, "bench-downtime-bare: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static int set(DeviceHandle *h, uint32_t state, Account *a) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int fd = -1, r;

        r = h->ops->set_state(h, state, &fd);
        if (a)
                a->device += now_usec(CLOCK_MONOTONIC) - t0;
        if (r < 0)
                die("SET", r);
        return fd;
}

/* Pre-copy, as the daemon's rounds go: what the source says it has,
 * until it has nothing initial left and little dirty. */
static void precopy(DeviceHandle *src, int sfd, int dfd, uint8_t *buf) {
        for (int round = 0; round < 16; round++) {
                uint64_t initial, dirty, left;
                int r = src->ops->precopy_info(src, sfd, &initial, &dirty);

                if (r < 0)
                        die("PRECOPY_INFO", r);
                for (left = initial + dirty; left > 0;) {
                        ssize_t n = read(sfd, buf, left < BUFFER ? left : BUFFER);

                        if (n <= 0)
                                break;
                        if (write(dfd, buf, (size_t) n) != n)
                                die("write", -errno);
                        left -= (uint64_t) n;
                }
                if (initial == 0 && dirty <= 256 * 1024)
                        break;
        }
}

static void splice_all(int sfd, int dfd) {
        for (;;) {
                ssize_t n = splice(sfd, NULL, dfd, NULL, BUFFER, SPLICE_F_MOVE);

                if (n < 0)
                        die("splice", -errno);
                if (n == 0)
                        return;
        }
}

static void migrate(DeviceHandle *src, DeviceHandle *dst, uint8_t *buf) {
        Account a = {};
        uint64_t t0, t1, total;
        int sfd, dfd;

        dfd = set(dst, VFIO_STATE_RESUMING, NULL);
        sfd = set(src, VFIO_STATE_PRE_COPY, NULL);
        precopy(src, sfd, dfd, buf);

        t0 = now_usec(CLOCK_MONOTONIC);
        (void) set(src, VFIO_STATE_STOP_COPY, &a);     /* keeps the pre-copy session */
        t1 = now_usec(CLOCK_MONOTONIC);
        splice_all(sfd, dfd);
        close(dfd);                                     /* the end of the data */
        a.data += now_usec(CLOCK_MONOTONIC) - t1;
        (void) set(dst, VFIO_STATE_RUNNING, &a);
        total = now_usec(CLOCK_MONOTONIC) - t0;

        close(sfd);
        (void) set(src, VFIO_STATE_STOP, NULL);
        printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", total, a.device, a.data,
               total - MIN(total, a.device + a.data));
}

int main(int argc, char *argv[]) {
        SimConfig c = {
                .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
                .tag = "mdev:sim-small",
        };
        DeviceHandle *h[2];
        SimDevice *d[2];
        uint8_t *buf;
        int runs;

        if (argc != 4) {
                fprintf(stderr, "usage: bench-downtime-bare DIR RUNS STATE-BYTES\n");
                return EXIT_FAILURE;
        }
        runs = atoi(argv[2]);
        c.state_size = strtoull(argv[3], NULL, 10);
        buf = g_malloc(BUFFER);
        for (int i = 0; i < 2; i++) {
                d[i] = sim_device_new(i == 0 ? "bare-a" : "bare-b", &c, argv[1]);
                if (sim_device_open(d[i], &h[i], NULL) < 0)
                        die("open", -EBUSY);
        }
        for (int i = 0; i < runs; i++)
                migrate(h[i % 2], h[(i + 1) % 2], buf);

        for (int i = 0; i < 2; i++) {
                device_handle_close(h[i]);
                sim_device_forget(d[i]);
                sim_device_free(d[i]);
        }
        g_free(buf);
        return 0;
}
