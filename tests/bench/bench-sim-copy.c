/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baseline for the migration throughput benchmark: the same simulated
 * devices as the testbed's, their stop-copy and resuming sessions joined
 * by the plainest relay there is (a splice() loop), no daemon, no D-Bus.
 * Prints the seconds the transfer took: session open to committed load.
 *
 *   bench-sim-copy BYTES */

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

static void die(const char *what, int r) {
        fprintf(stderr, "bench-sim-copy: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

int main(int argc, char *argv[]) {
        SimConfig c = { .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, .tag = "mdev:sim-1g" };
        DeviceHandle *src, *dst;
        int sfd = -1, dfd = -1, r;
        uint64_t t0, t1, total = 0;
        SimDevice *a, *b;

        if (argc != 2)
                return EXIT_FAILURE;
        c.state_size = strtoull(argv[1], NULL, 10);
        a = sim_device_new("source", &c, NULL);
        b = sim_device_new("target", &c, NULL);
        if (sim_device_open(a, &src, NULL) < 0 || sim_device_open(b, &dst, NULL) < 0)
                die("open", -EBUSY);

        t0 = now_usec(CLOCK_MONOTONIC);
        r = dst->ops->set_state(dst, VFIO_STATE_RESUMING, &dfd);
        if (r < 0)
                die("target to RESUMING", r);
        r = src->ops->set_state(src, VFIO_STATE_STOP_COPY, &sfd);
        if (r < 0)
                die("source to STOP_COPY", r);
        for (;;) {
                ssize_t n = splice(sfd, NULL, dfd, NULL, 1 << 20, SPLICE_F_MOVE);

                if (n < 0)
                        die("splice", -errno);
                if (n == 0)
                        break;
                total += (uint64_t) n;
        }
        close(sfd);
        close(dfd);
        r = dst->ops->set_state(dst, VFIO_STATE_STOP, &dfd);
        if (r < 0)
                die("target to STOP", r);
        t1 = now_usec(CLOCK_MONOTONIC);

        printf("%.6f %" PRIu64 "\n", (double) (t1 - t0) / 1e6, total);
        device_handle_close(src);
        device_handle_close(dst);
        sim_device_free(a);
        sim_device_free(b);
        return 0;
}
