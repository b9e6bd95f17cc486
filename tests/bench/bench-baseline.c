/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Baselines for bench-migration.py: what a bare program takes to do the
 * work a migration, a save or a load does, on the same simulated devices
 * as the testbed's and the same files, with no daemon, no D-Bus, no job.
 * Device data fds are used as vfiomigd's transfer.c uses them:
 * non-blocking, with poll() when they cannot go on. Each prints the
 * seconds it took and the bytes it moved.
 *
 *   bench-baseline relay BYTES       stop-copy session into a resuming one
 *                                    through a splice() loop, to the commit
 *   bench-baseline save FILE BYTES   a device's stop-copy data into FILE as
 *                                    a stream (CRC per record, the head and
 *                                    the payload written from one buffer),
 *                                    then fdatasync(FILE); FILE - is
 *                                    standard output, not synced
 *   bench-baseline write FILE BYTES  BYTES written into FILE in save's
 *                                    shape (head, payload, ...) from
 *                                    memory, then fdatasync(FILE): the
 *                                    storage alone
 *   bench-baseline load FILE BYTES   the stream in FILE, every CRC checked,
 *                                    into a resuming device, to the commit;
 *                                    FILE - is standard input
 *   bench-baseline read FILE         the same into /dev/null: the reading
 *                                    and checking alone
 *
 * BYTES is the device's state size (for write: the file's size). */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/testbed-device.h"
#include "migration/crc32c.h"
#include "migration/stream.h"
#include "unaligned.h"
#include "util.h"
#include "vfio-uapi.h"

#define CHUNK (1024 * 1024)     /* as vfiomigd's buffer */
#define HEAD 24

static void die(const char *what, int r) {
        fprintf(stderr, "bench-baseline: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static void set_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                die("O_NONBLOCK", -errno);
}

static void wait_for(int fd, short events) {
        struct pollfd p = { .fd = fd, .events = events };

        while (poll(&p, 1, -1) < 0)
                if (errno != EINTR)
                        die("poll", -errno);
}

/* To standard error when standard output carries a stream. */
static FILE *report_to = NULL;

static void report(uint64_t t0, uint64_t bytes) {
        fprintf(report_to ?: stdout, "%.6f %" PRIu64 "\n", (double) (now_usec(CLOCK_MONOTONIC) - t0) / 1e6, bytes);
}

static SimDevice *sim_new(const char *name, uint64_t size, DeviceHandle **ret) {
        SimConfig c = { .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, .tag = "mdev:sim-1g",
                        .state_size = size };
        SimDevice *d = sim_device_new(name, &c, NULL);

        if (sim_device_open(d, ret, NULL) < 0)
                die("open", -EBUSY);
        return d;
}

static void sim_free(SimDevice *d, DeviceHandle *h) {
        device_handle_close(h);
        sim_device_free(d);
}

static int session(DeviceHandle *h, uint32_t state) {
        int fd = -1, r = h->ops->set_state(h, state, &fd);

        if (r < 0)
                die(state == VFIO_STATE_RESUMING ? "target to RESUMING" : "source to STOP_COPY", r);
        set_nonblock(fd);
        return fd;
}

static void commit(DeviceHandle *h) {
        int fd = -1, r = h->ops->set_state(h, VFIO_STATE_STOP, &fd);

        if (r < 0)
                die("target to STOP", r);
}

static void write_all(int fd, const void *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EAGAIN) {
                        wait_for(fd, POLLOUT);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        die("write", n < 0 ? -errno : -EIO);
                p = (const uint8_t *) p + n;
                len -= (size_t) n;
        }
}

/* Reads len bytes, fewer only at the end of the file. */
static size_t read_full(int fd, void *p, size_t len) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = read(fd, (uint8_t *) p + done, len - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die("read", -errno);
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return done;
}

static int create(const char *path) {
        int fd = !strcmp(path, "-") ? dup(STDOUT_FILENO) : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0)
                die(path, -errno);
        return fd;
}

static void sync_close(int fd) {
        if (fdatasync(fd) < 0 && errno != EINVAL)       /* EINVAL: a pipe, nothing to sync */
                die("fdatasync", -errno);
        close(fd);
}

static int relay(uint64_t size) {
        DeviceHandle *src, *dst;
        SimDevice *a = sim_new("source", size, &src), *b = sim_new("target", size, &dst);
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), total = 0;
        int dfd = session(dst, VFIO_STATE_RESUMING), sfd = session(src, VFIO_STATE_STOP_COPY);

        for (;;) {
                ssize_t n = splice(sfd, NULL, dfd, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

                if (n < 0 && errno == EAGAIN) {
                        wait_for(sfd, POLLIN);  /* either end may be the one */
                        wait_for(dfd, POLLOUT);
                        continue;
                }
                if (n < 0)
                        die("splice", -errno);
                if (n == 0)
                        break;
                total += (uint64_t) n;
        }
        close(sfd);
        close(dfd);
        commit(dst);
        report(t0, total);
        sim_free(a, src);
        sim_free(b, dst);
        return 0;
}

static void write_header(int fd, uint64_t size) {
        StreamHeader h = { .migration_type = (char *) "bench", .device = (char *) "bench", .expected_size = size };
        g_autoptr(GByteArray) out = g_byte_array_new();

        stream_write_header(out, &h);
        write_all(fd, out->data, out->len);
}

static void write_end(int fd, uint32_t seq, uint64_t total) {
        g_autoptr(GByteArray) out = g_byte_array_new();

        stream_write_end(out, seq, total, seq);
        write_all(fd, out->data, out->len);
}

static int save(const char *path, uint64_t size) {
        g_autofree uint8_t *buf = g_malloc(CHUNK);
        DeviceHandle *src;
        SimDevice *a = sim_new("source", size, &src);
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), total = 0;
        int fd = create(path), sfd = session(src, VFIO_STATE_STOP_COPY);
        uint32_t seq = 0;

        write_header(fd, size);
        for (;;) {
                ssize_t n = read(sfd, buf, CHUNK);
                uint8_t head[HEAD];

                if (n < 0 && errno == EAGAIN) {
                        wait_for(sfd, POLLIN);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        die("read", -errno);
                if (n == 0)
                        break;
                stream_write_record_head(head, STREAM_RECORD_STOPCOPY, seq++, (uint32_t) n, crc32c(0, buf, n));
                write_all(fd, head, sizeof head);
                write_all(fd, buf, (size_t) n);
                total += (uint64_t) n;
        }
        close(sfd);
        write_end(fd, seq, total);
        sync_close(fd);
        report(t0, total);
        sim_free(a, src);
        return 0;
}

static int write_only(const char *path, uint64_t size) {
        g_autofree uint8_t *buf = g_malloc(CHUNK + HEAD);
        uint64_t t0, left = size;
        int fd;

        for (size_t i = 0; i < CHUNK + HEAD; i++)
                buf[i] = (uint8_t) (i * 131 + (i >> 9));
        t0 = now_usec(CLOCK_MONOTONIC);
        fd = create(path);
        while (left > 0) {
                size_t head = MIN(left, (uint64_t) HEAD), payload = MIN(left - head, (uint64_t) CHUNK);

                write_all(fd, buf, head);
                if (payload > 0)
                        write_all(fd, buf + HEAD, payload);
                left -= head + payload;
        }
        sync_close(fd);
        report(t0, size);
        return 0;
}

/* Reads a stream as a bare program would, one read per record: each
 * read takes a payload and the head after it. Every CRC is checked; the
 * payloads go to out. Returns the payload bytes. */
static uint64_t read_stream(int fd, int out) {
        g_autofree uint8_t *buf = g_malloc(STREAM_MAX_RECORD + HEAD);
        uint64_t total = 0;
        size_t len, got;

        got = read_full(fd, buf, 12);
        len = got == 12 ? unaligned_read_le16(buf + 10) : 0;
        if (len < 16 || read_full(fd, buf + 12, len - 12 + HEAD) != len - 12 + HEAD ||
            crc32c(0, buf, len - 4) != unaligned_read_le32(buf + len - 4))
                die("stream header", -EBADMSG);
        memmove(buf, buf + len, HEAD);
        for (;;) {
                uint32_t kind = unaligned_read_le32(buf), size = unaligned_read_le32(buf + 4),
                         crc = unaligned_read_le32(buf + 12);

                if (crc32c(0, buf, 16) != unaligned_read_le32(buf + 16) || size > STREAM_MAX_RECORD)
                        die("record head", -EBADMSG);
                got = read_full(fd, buf, size + (size_t) HEAD);
                if (got < size || crc32c(0, buf, size) != crc)
                        die("record", -EBADMSG);
                if (kind == STREAM_RECORD_END) {
                        if (got != size || unaligned_read_le64(buf) != total)
                                die("END record", -EBADMSG);
                        return total;
                }
                if (got != size + (size_t) HEAD)
                        die("truncated stream", -EBADMSG);
                write_all(out, buf, size);
                total += size;
                memmove(buf, buf + size, HEAD);
        }
}

static int open_stream(const char *path) {
        int fd = !strcmp(path, "-") ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                die(path, -errno);
        return fd;
}

static int load(const char *path, uint64_t size) {
        DeviceHandle *dst;
        SimDevice *b = sim_new("target", size, &dst);
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), total;
        int fd = open_stream(path), dfd = session(dst, VFIO_STATE_RESUMING);

        total = read_stream(fd, dfd);
        close(fd);
        close(dfd);
        commit(dst);
        report(t0, total);
        sim_free(b, dst);
        return 0;
}

static int read_null(const char *path) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), total;
        int fd = open_stream(path), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

        if (null < 0)
                die("/dev/null", -errno);
        total = read_stream(fd, null);
        close(fd);
        close(null);
        report(t0, total);
        return 0;
}

int main(int argc, char *argv[]) {
        const char *mode = argc > 1 ? argv[1] : "";

        if (!strcmp(mode, "relay") && argc == 3)
                return relay(strtoull(argv[2], NULL, 10));
        if (!strcmp(mode, "save") && argc == 4) {
                if (!strcmp(argv[2], "-"))
                        report_to = stderr;
                return save(argv[2], strtoull(argv[3], NULL, 10));
        }
        if (!strcmp(mode, "write") && argc == 4)
                return write_only(argv[2], strtoull(argv[3], NULL, 10));
        if (!strcmp(mode, "load") && argc == 4)
                return load(argv[2], strtoull(argv[3], NULL, 10));
        if (!strcmp(mode, "read") && argc == 3)
                return read_null(argv[2]);
        fprintf(stderr, "usage: bench-baseline relay BYTES | save FILE BYTES | write FILE BYTES | "
                        "load FILE BYTES | read FILE\n");
        return EXIT_FAILURE;
}
