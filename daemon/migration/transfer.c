/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "migration/transfer.h"

#define COPY_BUFFER (1024 * 1024)       /* as QEMU's data buffer */

/* Waits for fd, the cancel eventfd, or the inactivity timeout. */
static int wait_fd(const Xfer *x, int fd, short events) {
        struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = x->cancel_fd, .events = POLLIN } };
        int timeout = x->io_timeout_usec ? (int) MIN(x->io_timeout_usec / 1000, (uint64_t) G_MAXINT) : -1;
        int r;

        do
                r = poll(p, 2, timeout);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (p[1].revents & POLLIN)
                return -ECANCELED;
        if (r == 0)
                return -ETIMEDOUT;
        return 0;
}

/* The client decides what may happen to its fd: we neither reopen it
 * (that would use root's rights on it) nor change its flags (it shares
 * them). */
static int check_access_mode(int fd, bool for_write) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return -errno;
        if (flags & O_PATH)
                return -EBADF;
        switch (flags & O_ACCMODE) {
        case O_RDWR:
                return 0;
        case O_WRONLY:
                return for_write ? 0 : -EBADF;
        default:
                return for_write ? -EBADF : 0;
        }
}

static int open_relay(XferEnd *e) {
        if (pipe2(e->relay, O_NONBLOCK | O_CLOEXEC) < 0)
                return -errno;
        /* room for one whole COPY_BUFFER; the default 64 KiB also works */
        (void) fcntl(e->relay[1], F_SETPIPE_SZ, COPY_BUFFER);
        e->pipe = true;
        return 0;
}

int xfer_end_from_client_fd(int fd, bool for_write, XferEnd *ret) {
        struct stat st;
        int r;

        *ret = (XferEnd) { .fd = -1 };
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISREG(st.st_mode))
                return -EBADFD;         /* ttys, devices: not a stream we can frame */
        r = check_access_mode(fd, for_write);
        if (r < 0)
                return r;
        ret->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (ret->fd < 0)
                return -errno;
        ret->socket = S_ISSOCK(st.st_mode);
        if (S_ISFIFO(st.st_mode)) {
                r = open_relay(ret);
                if (r < 0) {
                        xfer_end_close(ret);
                        return r;
                }
        }
        return 0;
}

int xfer_end_from_device(DeviceHandle *device, int fd, XferEnd *ret) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        *ret = (XferEnd) { .fd = fd, .device = device };
        return 0;
}

void xfer_end_close(XferEnd *e) {
        if (e->fd >= 0)
                close(e->fd);
        if (e->pipe) {
                close(e->relay[0]);
                close(e->relay[1]);
        }
        *e = (XferEnd) { .fd = -1 };
}

static size_t relay_pending(const XferEnd *e) {
        int n = 0;

        return ioctl(e->relay[0], FIONREAD, &n) < 0 ? 0 : (size_t) n;
}

/* SPLICE_F_NONBLOCK makes the client's pipe non-blocking for this call
 * alone, whatever its O_NONBLOCK says. */
static ssize_t relay_splice(int from, int to, size_t len) {
        ssize_t n = splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

        return n < 0 ? -errno : n;
}

static ssize_t relay_read(const XferEnd *e, void *buf, size_t len) {
        ssize_t n = read(e->relay[0], buf, len);

        if (n >= 0 || errno != EAGAIN)
                return n < 0 ? -errno : n;
        n = relay_splice(e->fd, e->relay[1], MIN(len, (size_t) COPY_BUFFER));
        if (n <= 0)
                return n;       /* 0: the writer closed its end */
        n = read(e->relay[0], buf, len);
        return n < 0 ? -errno : n;
}

/* Moves what the relay holds into the client's pipe: 0 when it is all
 * out, -EAGAIN when the pipe is full. */
static int relay_drain(const XferEnd *e) {
        for (size_t pending; (pending = relay_pending(e)) > 0;) {
                ssize_t n = relay_splice(e->relay[0], e->fd, pending);

                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -EPIPE;
        }
        return 0;
}

/* Accepts bytes only into an empty relay, so they leave in order and a
 * flush has at most one buffer to wait for. */
static ssize_t relay_write(const XferEnd *e, const void *buf, size_t len) {
        ssize_t n;
        int r;

        r = relay_drain(e);
        if (r < 0)
                return r;
        n = write(e->relay[1], buf, len);
        if (n < 0)
                return -errno;
        r = relay_drain(e);
        return r < 0 && r != -EAGAIN ? r : n;
}

int xfer_flush(const Xfer *x, const XferEnd *e) {
        while (e->pipe) {
                int r = relay_drain(e);

                if (r != -EAGAIN)
                        return r;
                r = wait_fd(x, e->fd, POLLOUT);
                if (r < 0)
                        return r;
        }
        return 0;
}

static ssize_t read_once(const XferEnd *e, void *buf, size_t len) {
        ssize_t n;

        if (e->device && e->device->ops->read_data)
                return e->device->ops->read_data(e->device, e->fd, buf, len);
        if (e->pipe)
                return relay_read(e, buf, len);
        n = e->socket ? recv(e->fd, buf, len, MSG_DONTWAIT) : read(e->fd, buf, len);
        return n < 0 ? -errno : n;
}

static ssize_t write_once(const XferEnd *e, const void *buf, size_t len) {
        ssize_t n;

        if (e->device && e->device->ops->write_data)
                return e->device->ops->write_data(e->device, e->fd, buf, len);
        if (e->pipe)
                return relay_write(e, buf, len);
        n = e->socket ? send(e->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) : write(e->fd, buf, len);
        return n < 0 ? -errno : n;
}

ssize_t xfer_read(const Xfer *x, const XferEnd *e, void *buf, size_t len) {
        for (;;) {
                ssize_t n = read_once(e, buf, len);
                int r;

                if (n != -EAGAIN && n != -EINTR)
                        return n;
                r = wait_fd(x, e->fd, POLLIN);
                if (r < 0)
                        return r;
        }
}

ssize_t xfer_read_full(const Xfer *x, const XferEnd *e, void *buf, size_t len) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = xfer_read(x, e, (uint8_t *) buf + done, len - done);

                if (n == -ENOMSG || n == 0)
                        break;
                if (n < 0)
                        return n;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

int xfer_write_all(const Xfer *x, const XferEnd *e, const void *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write_once(e, buf, len);
                int r;

                if (n == -EAGAIN || n == -EINTR) {
                        r = wait_fd(x, e->fd, POLLOUT);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -EIO;
                buf = (const uint8_t *) buf + n;
                len -= (size_t) n;
        }
        return 0;
}

static bool plain(const XferEnd *e) {
        return !e->socket && !e->pipe && (!e->device || (!e->device->ops->read_data && !e->device->ops->write_data));
}

/* Pipe to pipe without copying through user space. -EINVAL: not
 * splice-able (VFIO data fds, for one); the caller falls back. */
static int64_t copy_splice(const Xfer *x, const XferEnd *src, const XferEnd *dst, uint64_t limit,
                           XferProgress progress, void *userdata, bool *ret_dst_failed) {
        bool dst_blocked = false, waited = false;
        int64_t total = 0;

        while ((uint64_t) total < limit) {
                ssize_t n = splice(src->fd, NULL, dst->fd, NULL, (size_t) MIN(limit - (uint64_t) total, COPY_BUFFER),
                                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                int r;

                if (n > 0) {
                        total += n;
                        progress(userdata, (uint64_t) n);
                        waited = false;
                        continue;
                }
                if (n == 0)
                        break;
                if (errno == EINVAL && total == 0)
                        return -EINVAL;
                if (errno != EAGAIN && errno != EINTR) {
                        *ret_dst_failed = errno == EPIPE;
                        return -errno;
                }
                /* Either end may be the one that is not ready. Wait for
                 * the one that held the last splice up, in a steady stream
                 * the same one every time: polling the ready end too cost
                 * a system call per wait, a tenth of the time between
                 * fast pipes. Still held up after a wait, it is the other. */
                if (waited)
                        dst_blocked = !dst_blocked;
                r = wait_fd(x, dst_blocked ? dst->fd : src->fd, dst_blocked ? POLLOUT : POLLIN);
                if (r < 0) {
                        *ret_dst_failed = dst_blocked;
                        return r;
                }
                waited = true;
        }
        return total;
}

int64_t xfer_copy(const Xfer *x, const XferEnd *src, const XferEnd *dst, uint64_t limit, bool temporary_end,
                  XferProgress progress, void *userdata, bool *ret_dst_failed) {
        g_autofree uint8_t *own = NULL;
        uint8_t *buf = x->buf;
        size_t size = x->buf_size;
        int64_t total = 0;

        *ret_dst_failed = false;
        if (!temporary_end && plain(src) && plain(dst)) {
                total = copy_splice(x, src, dst, limit, progress, userdata, ret_dst_failed);
                if (total != -EINVAL)
                        return total;
                total = 0;
        }
        if (!buf)
                buf = own = g_malloc(size = COPY_BUFFER);
        while ((uint64_t) total < limit) {
                ssize_t n = xfer_read(x, src, buf, (size_t) MIN(limit - (uint64_t) total, size));
                int r;

                if (n == -ENOMSG && temporary_end)
                        break;
                if (n < 0)
                        return n;
                if (n == 0)
                        break;
                r = xfer_write_all(x, dst, buf, (size_t) n);
                if (r < 0) {
                        *ret_dst_failed = true;
                        return r;
                }
                total += n;
                progress(userdata, (uint64_t) n);
        }
        return total;
}
