/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/devops.h"

/* Moving bytes for a migration worker: every wait can be cancelled (an
 * eventfd the main loop writes) and gives up after io_timeout_usec
 * without progress, so a stalled device or peer never hangs a job.
 *
 * An endpoint is a data session fd of a device (I/O through its ops) or a
 * client's fd (a file, pipe or socket). */

typedef struct Xfer {
        int cancel_fd;
        uint64_t io_timeout_usec;
        /* xfer_copy()'s buffer, made by the caller ahead of time; NULL:
         * it makes one of its own when it needs one */
        uint8_t *buf;
        size_t buf_size;
} Xfer;

typedef struct XferEnd {
        int fd;
        DeviceHandle *device;   /* NULL for a client's fd */
        bool socket;            /* use MSG_DONTWAIT: its file description is shared */
        bool pipe;              /* a client's pipe, moved through relay with splice() */
        int relay[2];           /* our own pipe, when pipe is set */
} XferEnd;

/* Makes a client's fd safe to use without blocking and without more
 * rights than the client gave: the fd is used as passed (dup'ed), never
 * reopened. Its file description is shared with the client, so its
 * O_NONBLOCK flag is left alone: a socket gets MSG_DONTWAIT, a pipe is
 * moved through a relay pipe of ours with SPLICE_F_NONBLOCK, a regular
 * file cannot block. -EBADF if the fd is not open for the direction
 * asked (O_PATH, read-only for a save, write-only for a load). */
int xfer_end_from_client_fd(int fd, bool for_write, XferEnd *ret);
/* A device's data fd: ours alone, so it is simply set non-blocking. */
int xfer_end_from_device(DeviceHandle *device, int fd, XferEnd *ret);
/* Writes out what a client pipe's relay still holds. */
int xfer_flush(const Xfer *x, const XferEnd *e);
void xfer_end_close(XferEnd *e);

/* One read; 0 at end of stream. -ENOMSG is passed through: in PRE_COPY
 * it marks the end of the data available for now. -ECANCELED,
 * -ETIMEDOUT while waiting. */
ssize_t xfer_read(const Xfer *x, const XferEnd *e, void *buf, size_t len);
/* Reads until len bytes, end of stream, or (in PRE_COPY) the end of the
 * data available for now; returns the bytes read. */
ssize_t xfer_read_full(const Xfer *x, const XferEnd *e, void *buf, size_t len);
int xfer_write_all(const Xfer *x, const XferEnd *e, const void *buf, size_t len);

/* Copies from one device session to another, at most limit bytes, and
 * for pre-copy (temporary_end) stops early at a 0 read or ENOMSG. Uses
 * splice() between two plain pipes, else a buffer. Reports progress as it
 * goes. Returns the bytes copied; on failure *ret_dst_failed tells which
 * end it was. */
typedef void (*XferProgress)(void *userdata, uint64_t delta);
int64_t xfer_copy(const Xfer *x, const XferEnd *src, const XferEnd *dst, uint64_t limit, bool temporary_end,
                  XferProgress progress, void *userdata, bool *ret_dst_failed);
