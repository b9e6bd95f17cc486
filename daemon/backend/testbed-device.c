/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fsm.h"
#include "log.h"
#include "names.h"
#include "backend/testbed-device.h"
#include "unaligned.h"
#include "util.h"
#include "vfio-uapi.h"

#define SIM_MAGIC       "VFMSIM01"
#define SIM_PAGE        4096u
#define SIM_HEAD_FIXED  26u             /* magic, page size, pages, seed, tag length */
#define SIM_RECORD_HEAD 8u              /* page index, version */
#define SIM_PIPE_SIZE   (1024 * 1024)
#define NOT_RECEIVED    UINT32_MAX

typedef struct SimDevice SimDevice;

/* A data session. Its thread gets it as its argument: the device may drop
 * its pointer to the session (session_end) before the thread ever runs. */
typedef struct Session {
        SimDevice *dev;
        bool resume;
        int fd;                 /* our end: write end (save), read end (resume) */
        int wake;               /* eventfd: stop the thread */
        GThread *thread;
        bool stop;              /* under the device lock, as all below */

        /* saving */
        bool stopcopy;          /* end the stream once everything queued is out */
        bool header_sent;
        uint32_t cursor;        /* next page of the initial pass */
        GQueue dirty;           /* pages queued for resending */
        uint64_t written, initial_total, dirty_total;
        uint64_t stall_after;   /* 0: no stall */

        /* resuming */
        uint64_t in_seed;
        uint32_t *in_versions;
        int error;              /* first problem with the incoming data */
        char *error_text;
        bool header_ok;
        bool busy;              /* the consumer holds bytes it has not checked yet */
} Session;

struct SimDevice {
        char *name, *tag;
        const char *persist_dir;        /* the testbed's, kept: NULL, no persistence */
        const char *node_dir;           /* the node is node_dir/name; NULL: none */
        int node_fd;            /* flock()ed while a handle is open */
        uint32_t flags, page_size, npages;
        uint64_t size;

        GMutex lock;
        uint32_t state;
        bool open;
        uint64_t seed;
        uint32_t *versions;
        bool versions_saved;    /* the persisted copy is current */
        uint8_t *dirty;         /* changed since last sent or queued */
        uint64_t dirty_rate, dirty_last_usec, dirty_counter;
        double dirty_carry;
        GArray *faults;         /* SimFault; NULL until one is injected */
        Session *session;
        uint64_t io_read, io_written;   /* through read_data/write_data, this session */
        GArray *history;        /* SimArc, the last HISTORY_MAX; NULL until the first */
};

#define HISTORY_MAX 256
static gint history_seq;

typedef struct SimHandle {
        DeviceHandle handle;
        SimDevice *dev;
} SimHandle;

/* splitmix64: page contents and dirty choices, cheap and reproducible */
static uint64_t mix(uint64_t x) {
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}

static void page_bytes(uint64_t seed, uint32_t page, uint32_t version, uint8_t *buf, size_t len) {
        uint64_t x = mix(seed ^ ((uint64_t) page << 32) ^ version);
        size_t i = 0;

        for (; i + 8 <= len; i += 8) {
                x = mix(x);
                memcpy(buf + i, &x, 8);
        }
        x = mix(x);
        memcpy(buf + i, &x, len - i);
}

static size_t page_len(const SimDevice *d, uint32_t page) {
        return page + 1 < d->npages ? d->page_size : d->size - (uint64_t) page * d->page_size;
}

static size_t header_len(const SimDevice *d) {
        return SIM_HEAD_FIXED + strlen(d->tag);
}

/* ---- state, dirtying, persistence (all with the lock held) ---- */

static bool running(uint32_t state) {
        return state == VFIO_STATE_RUNNING || state == VFIO_STATE_PRE_COPY ||
               state == VFIO_STATE_RUNNING_P2P || state == VFIO_STATE_PRE_COPY_P2P;
}

/* The workload: while the device runs, dirty_rate bytes' worth of pages
 * change per second. Computed lazily whenever someone looks. */
static void advance(SimDevice *d) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        double bytes;
        uint64_t n;

        if (!running(d->state) || d->dirty_rate == 0) {
                d->dirty_last_usec = now;
                return;
        }
        bytes = (double) d->dirty_rate * (double) (now - d->dirty_last_usec) / 1e6 + d->dirty_carry;
        d->dirty_last_usec = now;
        if (bytes >= (double) d->npages * d->page_size) {
                /* At least the whole state's worth: every page changed, and
                 * which ones changed twice nobody can tell. One pass, however
                 * long nobody looked and however high the rate, since this
                 * runs under the lock the main loop waits for. */
                for (uint32_t p = 0; p < d->npages; p++) {
                        d->versions[p]++;
                        d->dirty[p] = 1;
                }
                d->dirty_carry = 0;
                d->versions_saved = false;
                return;
        }
        n = (uint64_t) (bytes / d->page_size);
        d->dirty_carry = bytes - (double) n * d->page_size;
        for (uint64_t i = 0; i < n; i++) {
                uint32_t p = (uint32_t) (mix(d->seed ^ d->dirty_counter++) % d->npages);

                d->versions[p]++;
                d->dirty[p] = 1;
        }
        d->versions_saved &= n == 0;
}

/* Where the state is kept, made when needed: what every device would
 * hold for good is few bytes more than the name. */
static char *persist_path(const SimDevice *d, const char *suffix) {
        return g_strconcat(d->persist_dir, "/", d->name, suffix, NULL);
}

static char *node_path(const SimDevice *d) {
        return d->node_dir ? g_strconcat(d->node_dir, "/", d->name, NULL) : NULL;
}

static void persist(SimDevice *d) {
        g_autofree char *keyfile = NULL, *path = NULL, *vpath = NULL;
        int r;

        if (!d->persist_dir)
                return;
        keyfile = g_strdup_printf("[Device]\nState=%s\nSeed=%" G_GUINT64_FORMAT "\n",
                                  fsm_state_to_string(d->state), d->seed);
        path = persist_path(d, ".sim");
        vpath = persist_path(d, ".versions");
        /* no fsync: this lives in /run and must not add milliseconds to
         * every state change; the pages only when they changed (a 64 GiB
         * state has 64 MiB of versions) */
        r = d->versions_saved ? 0 : write_file_atomic(vpath, d->versions, d->npages * sizeof(uint32_t));
        d->versions_saved = r >= 0;
        if (r >= 0)
                r = write_file_atomic(path, keyfile, strlen(keyfile));
        if (r < 0)
                log_warning("testbed %s: cannot persist state: %s", d->name, g_strerror(-r));
}

void sim_device_restore(SimDevice *d) {
        g_autofree char *path = NULL, *vpath = NULL;
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autofree char *state = NULL, *versions = NULL;
        gsize len;
        int s;

        if (!d->persist_dir)
                return;
        path = persist_path(d, ".sim");
        vpath = persist_path(d, ".versions");
        if (!g_key_file_load_from_file(k, path, G_KEY_FILE_NONE, NULL))
                return;
        state = g_key_file_get_string(k, "Device", "State", NULL);
        s = state ? fsm_state_from_string(state) : -EINVAL;
        if (s >= 0 && fsm_state_supported((uint32_t) s, d->flags))
                d->state = (uint32_t) s;
        d->seed = g_key_file_get_uint64(k, "Device", "Seed", NULL);
        if (g_file_get_contents(vpath, &versions, &len, NULL) && len == (gsize) d->npages * sizeof(uint32_t))
                memcpy(d->versions, versions, len);
        log_debug("testbed %s: restored in state %s", d->name, fsm_state_to_string(d->state));
}

/* ---- faults ---- */

static const char *const fault_names[_SIM_FAULT_MAX] = {
        [SIM_FAULT_TRANSITION] = "transition",
        [SIM_FAULT_READ_ERROR] = "read-error",
        [SIM_FAULT_WRITE_ERROR] = "write-error",
        [SIM_FAULT_SHORT_IO] = "short-io",
        [SIM_FAULT_STALL] = "stall",
        [SIM_FAULT_PRECOPY_INFO] = "precopy-info",
        [SIM_FAULT_RESET] = "reset",
};

static int errno_from_name(const char *s) {
        static const struct { const char *name; int value; } names[] = {
                { "EIO", EIO }, { "EINVAL", EINVAL }, { "EFAULT", EFAULT }, { "ENOMEM", ENOMEM },
                { "EBUSY", EBUSY }, { "ENODEV", ENODEV }, { "ETIMEDOUT", ETIMEDOUT }, { "EPERM", EPERM },
                { "ENOSPC", ENOSPC }, { "EAGAIN", EAGAIN },
        };
        guint64 v;

        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                if (g_ascii_strcasecmp(s, names[i].name) == 0)
                        return names[i].value;
        return g_ascii_string_to_unsigned(s, 10, 1, 4095, &v, NULL) ? (int) v : -EINVAL;
}

static int parse_state_arg(const char *v, int *ret) {
        int s;

        if (g_str_equal(v, "any")) {
                *ret = -1;
                return 0;
        }
        s = fsm_state_from_string(v);
        if (s < 0)
                return s;
        *ret = s;
        return 0;
}

/* The numeric keys and what they accept: a count above UINT_MAX would
 * wrap, a delay is bounded so that no test can park a job for an hour. */
static const struct {
        const char *key;
        uint64_t min, max;
        const char *unit;
} numeric_keys[] = {
        { "after", 0, UINT64_MAX,       "bytes" },
        { "chunk", 1, SIZE_MAX,         "bytes" },
        { "count", 0, UINT_MAX,         "times, 0 for always" },
        { "delay", 0, SIM_DELAY_MAX_MS, "milliseconds" },
};

static int parse_numeric_arg(SimFault *f, const char *key, const char *v, char **why) {
        guint64 n;
        size_t i;

        for (i = 0; i < G_N_ELEMENTS(numeric_keys); i++)
                if (g_str_equal(key, numeric_keys[i].key))
                        break;
        if (i == G_N_ELEMENTS(numeric_keys)) {
                g_autofree char *q = name_quote(key);

                *why = g_strdup_printf("unknown key %s", q);
                return -EINVAL;
        }
        if (!g_ascii_string_to_unsigned(v, 10, numeric_keys[i].min, numeric_keys[i].max, &n, NULL)) {
                g_autofree char *q = name_quote(v);

                *why = g_strdup_printf("%s=%s: expected a number from %" PRIu64 " to %" PRIu64 " (%s)", key, q,
                                       numeric_keys[i].min, numeric_keys[i].max, numeric_keys[i].unit);
                return -EINVAL;
        }
        if (g_str_equal(key, "after"))
                f->after = n;
        else if (g_str_equal(key, "chunk"))
                f->chunk = (size_t) n;
        else if (g_str_equal(key, "count"))
                f->count = (unsigned) n;
        else
                f->delay_ms = (unsigned) n;
        return 0;
}

static int parse_fault_arg(SimFault *f, const char *key, const char *v, char **why) {
        g_autofree char *q = NULL;
        int r;

        if (g_str_equal(key, "from"))
                r = parse_state_arg(v, &f->from);
        else if (g_str_equal(key, "to"))
                r = parse_state_arg(v, &f->to);
        else if (g_str_equal(key, "land"))
                r = g_str_equal(v, "stay") ? (f->land = -1, 0) : parse_state_arg(v, &f->land);
        else if (g_str_equal(key, "errno"))
                r = g_str_equal(v, "0") ? (f->error = 0) : (f->error = errno_from_name(v)) < 0 ? -EINVAL : 0;
        else
                return parse_numeric_arg(f, key, v, why);
        if (r >= 0)
                return 0;
        q = name_quote(v);
        if (g_str_equal(key, "errno"))
                *why = g_strdup_printf("errno=%s: expected an errno name or a number from 1 to 4095", q);
        else
                *why = g_strdup_printf("%s=%s: expected a migration state", key, q);
        return -EINVAL;
}

int sim_fault_parse(const char *spec, SimFault *ret, char **ret_error) {
        g_auto(GStrv) words = g_strsplit_set(spec, " \t", -1);
        SimFault f = { .type = _SIM_FAULT_MAX, .from = -1, .to = -1, .land = -1, .error = EIO, .chunk = 7 };
        g_autofree char *why = NULL;
        int type = -1;

        for (char **w = words; *w; w++) {
                const char *eq = strchr(*w, '=');
                g_autofree char *key = NULL;

                if (!**w)
                        continue;
                if (type < 0) {
                        for (int i = 0; i < _SIM_FAULT_MAX; i++)
                                if (g_str_equal(*w, fault_names[i]))
                                        type = i;
                        if (type < 0)
                                goto fail;
                        continue;
                }
                if (!eq)
                        goto fail;
                key = g_strndup(*w, eq - *w);
                if (parse_fault_arg(&f, key, eq + 1, &why) < 0)
                        goto fail;
        }
        if (type < 0)
                goto fail;
        f.type = (SimFaultType) type;
        *ret = f;
        return 0;
fail:
        if (ret_error) {
                g_autofree char *q = name_quote(spec);

                *ret_error = why ? g_strdup_printf("%s is not a fault: %s", q, why)
                                 : g_strdup_printf("%s is not a fault: expected one of transition, read-error, "
                                                   "write-error, short-io, stall, precopy-info, reset, followed by "
                                                   "key=value words (from, to, land, errno, after, chunk, count, "
                                                   "delay)", q);
        }
        return -EINVAL;
}

/* The matching fault, consumed if it fires a limited number of times. */
static bool take_fault(SimDevice *d, SimFaultType type, int from, int to, SimFault *ret) {
        for (guint i = 0; d->faults && i < d->faults->len; i++) {
                SimFault *f = &g_array_index(d->faults, SimFault, i);

                if (f->type != type || (f->from >= 0 && f->from != from) || (f->to >= 0 && f->to != to))
                        continue;
                *ret = *f;
                if (f->count > 0 && --f->count == 0)
                        g_array_remove_index(d->faults, i);
                return true;
        }
        return false;
}

static bool peek_fault(SimDevice *d, SimFaultType type, SimFault *ret) {
        for (guint i = 0; d->faults && i < d->faults->len; i++)
                if (g_array_index(d->faults, SimFault, i).type == type) {
                        *ret = g_array_index(d->faults, SimFault, i);
                        return true;
                }
        return false;
}

/* ---- sessions ---- */

static int make_pipe(int fds[2]) {
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        /* Bigger pipes: fewer wakeups per GiB. Best effort. */
        (void) fcntl(fds[0], F_SETPIPE_SZ, SIM_PIPE_SIZE);
        return 0;
}

/* Waits until fd is ready (events may be 0) or someone kicks the session;
 * callers then look at s->stop themselves. */
static void session_wait(Session *s, short events) {
        struct pollfd p[2] = { { .fd = s->fd, .events = events }, { .fd = s->wake, .events = POLLIN } };
        uint64_t count;

        while (poll(p, 2, -1) < 0 && errno == EINTR)
                ;
        if (p[1].revents & POLLIN)
                (void) read(s->wake, &count, sizeof(count));    /* drain */
}

static bool session_stopped(SimDevice *d, Session *s) {
        bool stop;

        g_mutex_lock(&d->lock);
        stop = s->stop;
        g_mutex_unlock(&d->lock);
        return stop;
}

/* Wakes the session's thread: to stop, or because new work was queued. */
static void session_kick(Session *s) {
        uint64_t one = 1;

        if (write(s->wake, &one, sizeof(one)) < 0)
                log_debug("cannot wake session thread: %m");
}

static void session_free(Session *s) {
        if (!s)
                return;
        if (s->fd >= 0)
                close(s->fd);
        if (s->wake >= 0)
                close(s->wake);
        g_queue_clear(&s->dirty);
        g_free(s->in_versions);
        g_free(s->error_text);
        g_free(s);
}

/* Stops the session's thread and frees it. Drops the lock while joining:
 * the thread takes it. */
static void session_end(SimDevice *d) {
        Session *s = d->session;

        if (!s)
                return;
        d->session = NULL;
        s->stop = true;
        if (s->thread) {
                session_kick(s);
                g_mutex_unlock(&d->lock);
                g_thread_join(s->thread);
                g_mutex_lock(&d->lock);
        }
        session_free(s);
}

typedef struct Item {
        enum { ITEM_NONE, ITEM_HEADER, ITEM_PAGE, ITEM_END } type;
        uint32_t page, version;
} Item;

static Item next_item(SimDevice *d, Session *s) {
        Item it = { ITEM_NONE };

        if (!s->header_sent) {
                s->header_sent = true;
                it.type = ITEM_HEADER;
        } else if (s->cursor < d->npages || !g_queue_is_empty(&s->dirty)) {
                it.page = s->cursor < d->npages ? s->cursor++ : GPOINTER_TO_UINT(g_queue_pop_head(&s->dirty));
                it.type = ITEM_PAGE;
                it.version = d->versions[it.page];
                d->dirty[it.page] = 0;
        } else if (s->stopcopy)
                it.type = ITEM_END;
        return it;
}

static size_t encode_item(SimDevice *d, uint64_t seed, const Item *it, uint8_t *buf) {
        size_t len;

        if (it->type == ITEM_HEADER) {
                memcpy(buf, SIM_MAGIC, 8);
                unaligned_write_le32(buf + 8, d->page_size);
                unaligned_write_le32(buf + 12, d->npages);
                unaligned_write_le64(buf + 16, seed);
                unaligned_write_le16(buf + 24, (uint16_t) strlen(d->tag));
                memcpy(buf + SIM_HEAD_FIXED, d->tag, strlen(d->tag));
                return header_len(d);
        }
        len = page_len(d, it->page);
        unaligned_write_le32(buf, it->page);
        unaligned_write_le32(buf + 4, it->version);
        page_bytes(seed, it->page, it->version, buf + SIM_RECORD_HEAD, len);
        return SIM_RECORD_HEAD + len;
}

/* The non-blocking write and the count of written bytes happen under one
 * lock: PRECOPY_INFO computes what is left from the count and the pipe's
 * fill level, and must never see bytes in the pipe it has not counted. */
static bool write_all(Session *s, SimDevice *d, const uint8_t *buf, size_t len) {
        while (len > 0) {
                ssize_t n = -1;
                int e = EAGAIN;
                bool stalled;

                g_mutex_lock(&d->lock);
                stalled = s->stall_after > 0 && s->written >= s->stall_after;
                if (!stalled) {
                        /* a stall cuts the batch: one write fills a big pipe */
                        size_t want = s->stall_after > 0 ? MIN(len, s->stall_after - s->written) : len;

                        n = write(s->fd, buf, want);
                        e = errno;
                        if (n > 0)
                                s->written += (uint64_t) n;
                }
                g_mutex_unlock(&d->lock);
                if (stalled) {          /* produce nothing more, until stopped */
                        while (!session_stopped(d, s))
                                session_wait(s, 0);
                        return false;
                }
                if (n < 0 && e == EAGAIN) {
                        session_wait(s, POLLOUT);
                        if (session_stopped(d, s))
                                return false;
                        continue;
                }
                if (n < 0)
                        return false;   /* reader gone */
                buf += n;
                len -= (size_t) n;
        }
        return true;
}

#define PRODUCER_BATCH (256 * 1024)

/* Writes records in batches: one syscall per page would make the
 * simulation, not the daemon, the slowest part of every benchmark. */
static gpointer producer(gpointer userdata) {
        Session *s = userdata;
        SimDevice *d = s->dev;
        size_t item_max = MAX(header_len(d), SIM_RECORD_HEAD + d->page_size);
        g_autofree uint8_t *buf = g_malloc(PRODUCER_BATCH + item_max);
        bool end = false;

        while (!end) {
                size_t len = 0;

                g_mutex_lock(&d->lock);
                while (len < PRODUCER_BATCH && !s->stop) {
                        Item it = next_item(d, s);

                        if (it.type == ITEM_END)
                                end = true;
                        if (it.type == ITEM_NONE || it.type == ITEM_END)
                                break;
                        len += encode_item(d, d->seed, &it, buf + len);
                }
                if (s->stop) {
                        g_mutex_unlock(&d->lock);
                        break;
                }
                g_mutex_unlock(&d->lock);

                if (len > 0 && !write_all(s, d, buf, len))
                        break;
                if (len == 0 && !end)
                        session_wait(s, 0);     /* pre-copy: wait for more */
        }
        /* End of stream: the reader sees EOF. */
        g_mutex_lock(&d->lock);
        close(s->fd);
        s->fd = -1;
        g_mutex_unlock(&d->lock);
        return NULL;
}

static uint64_t record_bytes(const SimDevice *d, uint32_t page) {
        return SIM_RECORD_HEAD + page_len(d, page);
}

static int start_save(SimDevice *d, bool stopcopy, int *ret_fd) {
        Session *s = g_new0(Session, 1);
        SimFault f;
        int fds[2], r;

        r = make_pipe(fds);
        if (r < 0) {
                g_free(s);
                return r;
        }
        s->fd = fds[1];
        s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        (void) fcntl(s->fd, F_SETFL, O_NONBLOCK);
        g_queue_init(&s->dirty);
        s->stopcopy = stopcopy;
        s->initial_total = header_len(d);
        for (uint32_t p = 0; p < d->npages; p++)
                s->initial_total += record_bytes(d, p);
        memset(d->dirty, 0, d->npages);
        if (peek_fault(d, SIM_FAULT_STALL, &f))
                s->stall_after = MAX(f.after, 1);
        d->session = s;
        d->io_read = d->io_written = 0;
        s->dev = d;
        s->thread = g_thread_new("sim-producer", producer, s);
        *ret_fd = fds[0];
        return 0;
}

/* Moves pages dirtied since the last look into the resend queue. */
static void queue_dirty(SimDevice *d, Session *s) {
        for (uint32_t p = 0; p < d->npages; p++)
                if (d->dirty[p]) {
                        d->dirty[p] = 0;
                        g_queue_push_tail(&s->dirty, GUINT_TO_POINTER(p));
                        s->dirty_total += record_bytes(d, p);
                }
}

/* ---- resuming ---- */

static void resume_fail(Session *s, int error, const char *format, ...) G_GNUC_PRINTF(3, 4);
static void resume_fail(Session *s, int error, const char *format, ...) {
        va_list ap;

        if (s->error)
                return;
        s->error = error;
        va_start(ap, format);
        s->error_text = g_strdup_vprintf(format, ap);
        va_end(ap);
}

/* Parses as much of buf as forms whole items; returns bytes used. */
static size_t consume(SimDevice *d, Session *s, const uint8_t *buf, size_t len) {
        size_t used = 0;
        g_autofree uint8_t *expect = NULL;

        if (!s->header_ok) {
                size_t want = SIM_HEAD_FIXED;

                if (len < want)
                        return 0;
                want += unaligned_read_le16(buf + 24);
                if (len < want)
                        return 0;
                if (memcmp(buf, SIM_MAGIC, 8) != 0 || unaligned_read_le32(buf + 8) != d->page_size ||
                    unaligned_read_le32(buf + 12) != d->npages || want != header_len(d) ||
                    memcmp(buf + SIM_HEAD_FIXED, d->tag, strlen(d->tag)) != 0) {
                        resume_fail(s, EFAULT, "vendor header does not match this device (tag %s)", d->tag);
                        return len;
                }
                s->in_seed = unaligned_read_le64(buf + 16);
                s->header_ok = true;
                used = want;
        }
        expect = g_malloc(d->page_size);
        while (len - used >= SIM_RECORD_HEAD) {
                uint32_t page = unaligned_read_le32(buf + used), version = unaligned_read_le32(buf + used + 4);
                size_t plen;

                if (page >= d->npages) {
                        resume_fail(s, EINVAL, "record for page %u of %u", page, d->npages);
                        return len;
                }
                plen = page_len(d, page);
                if (len - used < SIM_RECORD_HEAD + plen)
                        break;
                page_bytes(s->in_seed, page, version, expect, plen);
                if (memcmp(expect, buf + used + SIM_RECORD_HEAD, plen) != 0) {
                        resume_fail(s, EINVAL, "page %u version %u: data corrupt", page, version);
                        return len;
                }
                s->in_versions[page] = version;
                used += SIM_RECORD_HEAD + plen;
        }
        return used;
}

#define CONSUMER_READ (1024 * 1024)

static gpointer consumer(gpointer userdata) {
        Session *s = userdata;
        SimDevice *d = s->dev;
        g_autoptr(GByteArray) pending = g_byte_array_new();
        g_autofree uint8_t *buf = g_malloc(CONSUMER_READ);

        for (;;) {
                ssize_t n;
                size_t used;

                g_mutex_lock(&d->lock);
                s->busy = true;
                g_mutex_unlock(&d->lock);
                n = read(s->fd, buf, CONSUMER_READ);
                if (n < 0 && errno == EAGAIN) {
                        g_mutex_lock(&d->lock);
                        s->busy = false;
                        g_mutex_unlock(&d->lock);
                        session_wait(s, POLLIN);
                        if (session_stopped(d, s))
                                break;
                        continue;
                }
                if (n <= 0)
                        break;
                g_byte_array_append(pending, buf, (guint) n);
                g_mutex_lock(&d->lock);
                used = consume(d, s, pending->data, pending->len);
                g_byte_array_remove_range(pending, 0, (guint) used);
                s->busy = false;
                if (s->error) {
                        /* like a driver refusing the data: writes fail from now */
                        close(s->fd);
                        s->fd = -1;
                        g_mutex_unlock(&d->lock);
                        return NULL;
                }
                g_mutex_unlock(&d->lock);
        }
        g_mutex_lock(&d->lock);
        s->busy = false;
        if (pending->len > 0)
                resume_fail(s, EINVAL, "%u bytes of an incomplete record", pending->len);
        g_mutex_unlock(&d->lock);
        return NULL;
}

static int start_resume(SimDevice *d, int *ret_fd) {
        Session *s = g_new0(Session, 1);
        int fds[2], r;

        r = make_pipe(fds);
        if (r < 0) {
                g_free(s);
                return r;
        }
        s->resume = true;
        s->fd = fds[0];
        s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        (void) fcntl(s->fd, F_SETFL, O_NONBLOCK);
        g_queue_init(&s->dirty);
        s->in_versions = g_new(uint32_t, d->npages);
        memset(s->in_versions, 0xff, d->npages * sizeof(uint32_t));
        d->session = s;
        d->io_read = d->io_written = 0;
        s->dev = d;
        s->thread = g_thread_new("sim-consumer", consumer, s);
        *ret_fd = fds[1];
        return 0;
}

/* RESUMING -> STOP: the caller has closed its end; take what arrived and
 * commit it only if it is a whole, valid state. */
static int finish_resume(SimDevice *d) {
        Session *s = d->session;
        uint32_t missing = 0;

        g_mutex_unlock(&d->lock);
        g_thread_join(s->thread);      /* ends at EOF or on bad data */
        s->thread = NULL;
        g_mutex_lock(&d->lock);
        for (uint32_t p = 0; p < d->npages; p++)
                missing += s->in_versions[p] == NOT_RECEIVED;
        if (!s->error && (!s->header_ok || missing > 0))
                resume_fail(s, EINVAL, "incomplete state: %s%u of %u pages missing",
                            s->header_ok ? "" : "no header, ", missing, d->npages);
        if (s->error) {
                /* like the kernel: the device stays RESUMING until reset */
                log_debug("testbed %s: RESUMING -> STOP refused: %s", d->name, s->error_text);
                return -EINVAL;
        }
        d->seed = s->in_seed;
        memcpy(d->versions, s->in_versions, d->npages * sizeof(uint32_t));
        d->versions_saved = false;
        d->session = NULL;
        session_free(s);
        return 0;
}

/* ---- the ops ---- */

static SimDevice *dev_of(DeviceHandle *h) {
        return ((SimHandle *) h)->dev;
}

static int sim_get_flags(DeviceHandle *h, uint32_t *ret) {
        SimDevice *d = dev_of(h);

        if (!(d->flags & VFIO_MIGRATION_STOP_COPY))
                return -ENOTTY;
        *ret = d->flags;
        return 0;
}

static int sim_get_state(DeviceHandle *h, uint32_t *ret) {
        SimDevice *d = dev_of(h);

        g_mutex_lock(&d->lock);
        *ret = d->state;
        g_mutex_unlock(&d->lock);
        return 0;
}

/* One arc's side effects on data sessions. */
static int apply_arc(SimDevice *d, uint32_t from, uint32_t to, int *ret_fd) {
        if (fsm_arc_opens_session(from, to)) {
                session_end(d);
                if (to == VFIO_STATE_RESUMING)
                        return start_resume(d, ret_fd);
                return start_save(d, to == VFIO_STATE_STOP_COPY, ret_fd);
        }
        if (to == VFIO_STATE_STOP_COPY && d->session && !d->session->resume) {
                /* PRE_COPY_P2P/PRE_COPY -> STOP_COPY: same fd, final part */
                advance(d);
                queue_dirty(d, d->session);
                d->session->stopcopy = true;
                session_kick(d->session);
                return 0;
        }
        if (from == VFIO_STATE_RESUMING)
                return finish_resume(d);
        if (fsm_state_is_saving(from) && !fsm_state_is_saving(to))
                session_end(d);
        return 0;
}

static void record_arc(SimDevice *d, uint32_t from, uint32_t to) {
        SimArc arc = { (uint32_t) g_atomic_int_add(&history_seq, 1), from, to };

        if (!d->history)
                d->history = g_array_new(FALSE, FALSE, sizeof(SimArc));
        if (d->history->len >= HISTORY_MAX)
                g_array_remove_index(d->history, 0);
        g_array_append_val(d->history, arc);
}

static int sim_set_state(DeviceHandle *h, uint32_t want, int *ret_data_fd) {
        SimDevice *d = dev_of(h);
        uint32_t path[FSM_MAX_PATH];
        size_t n;
        int r, fd = -1;

        *ret_data_fd = -1;
        g_mutex_lock(&d->lock);
        advance(d);
        r = fsm_path(d->state, want, d->flags, path, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                SimFault f;
                bool fault;

                fault = take_fault(d, SIM_FAULT_TRANSITION, (int) d->state, (int) path[i], &f);

                if (fault && f.delay_ms > 0) {
                        /* A slow driver. Not under the lock: the main loop
                         * takes it to answer GetDeviceState(), GetDigest()
                         * and the like, and must not wait out the delay.
                         * Only this handle's holder changes the state, so
                         * the path stays valid meanwhile. */
                        g_mutex_unlock(&d->lock);
                        g_usleep((gulong) f.delay_ms * 1000);
                        g_mutex_lock(&d->lock);
                }
                if (fault && f.error != 0) {
                        log_debug("testbed %s: injected failure of %s -> %s", d->name,
                                  fsm_state_to_string(d->state), fsm_state_to_string(path[i]));
                        if (f.land >= 0) {
                                session_end(d);
                                d->state = (uint32_t) f.land;
                                persist(d);
                        }
                        r = -f.error;
                        break;
                }
                r = apply_arc(d, d->state, path[i], &fd);
                if (r < 0)
                        break;
                record_arc(d, d->state, path[i]);
                d->state = path[i];
                /* A driver's state moves with each step: a user that dies
                 * mid-request finds the device there. */
                persist(d);
                if (fd >= 0 && i + 1 < n) {
                        /* as drivers do (mtty_set_state()): no session opens
                         * before the end of a request */
                        close(fd), fd = -1;
                        r = -EINVAL;
                }
        }
        g_mutex_unlock(&d->lock);
        if (r < 0 && fd >= 0)
                close(fd), fd = -1;
        *ret_data_fd = fd;
        return r < 0 ? r : 0;
}

static int sim_data_size(DeviceHandle *h, uint64_t *ret) {
        SimDevice *d = dev_of(h);
        uint64_t size = 0;

        g_mutex_lock(&d->lock);
        advance(d);
        if (d->session && !d->session->resume && d->session->cursor >= d->npages) {
                for (uint32_t p = 0; p < d->npages; p++)
                        size += d->dirty[p] ? record_bytes(d, p) : 0;
        } else {
                size = header_len(d);
                for (uint32_t p = 0; p < d->npages; p++)
                        size += record_bytes(d, p);
        }
        g_mutex_unlock(&d->lock);
        *ret = size;
        return 0;
}

static int sim_precopy_info(DeviceHandle *h, int data_fd, uint64_t *ret_initial, uint64_t *ret_dirty) {
        SimDevice *d = dev_of(h);
        Session *s;
        SimFault f;
        int inpipe = 0, r = 0;
        uint64_t consumed;

        g_mutex_lock(&d->lock);
        s = d->session;
        if (d->state != VFIO_STATE_PRE_COPY && d->state != VFIO_STATE_PRE_COPY_P2P)
                r = -EINVAL;
        else if (take_fault(d, SIM_FAULT_PRECOPY_INFO, -1, -1, &f))
                r = -f.error;
        else if (!s || s->resume || ioctl(data_fd, FIONREAD, &inpipe) < 0)
                r = -EINVAL;
        if (r < 0) {
                g_mutex_unlock(&d->lock);
                return r;
        }
        advance(d);
        queue_dirty(d, s);
        session_kick(s);
        consumed = s->written - (uint64_t) inpipe;
        *ret_initial = s->initial_total - MIN(consumed, s->initial_total);
        *ret_dirty = s->dirty_total - (consumed > s->initial_total ? consumed - s->initial_total : 0);
        g_mutex_unlock(&d->lock);
        return 0;
}

static int sim_reset(DeviceHandle *h) {
        SimDevice *d = dev_of(h);
        SimFault f;
        int r = 0;

        g_mutex_lock(&d->lock);
        if (take_fault(d, SIM_FAULT_RESET, -1, -1, &f))
                r = -f.error;
        else {
                session_end(d);
                d->state = VFIO_STATE_RUNNING;
                persist(d);
        }
        g_mutex_unlock(&d->lock);
        return r;
}

/* Under d->lock: the I/O faults for one read or write after done bytes.
 * Cuts len at a short-io chunk or where an error fault is due, or fails
 * with the fault's errno once it is. */
static int admit_io(SimDevice *d, SimFaultType error_fault, uint64_t done, size_t *len) {
        SimFault f;

        if (peek_fault(d, SIM_FAULT_SHORT_IO, &f))
                *len = MIN(*len, f.chunk);
        if (!peek_fault(d, error_fault, &f))
                return 0;
        if (done >= f.after) {
                take_fault(d, error_fault, -1, -1, &f);
                return -f.error;
        }
        *len = MIN(*len, f.after - done);
        return 0;
}

static ssize_t sim_read_data(DeviceHandle *h, int fd, void *buf, size_t len) {
        SimDevice *d = dev_of(h);
        ssize_t n;
        int r;

        g_mutex_lock(&d->lock);
        r = admit_io(d, SIM_FAULT_READ_ERROR, d->io_read, &len);
        g_mutex_unlock(&d->lock);
        if (r < 0)
                return r;
        n = read(fd, buf, len);
        if (n < 0)
                return -errno;
        g_mutex_lock(&d->lock);
        d->io_read += (uint64_t) n;
        g_mutex_unlock(&d->lock);
        return n;
}

static ssize_t sim_write_data(DeviceHandle *h, int fd, const void *buf, size_t len) {
        SimDevice *d = dev_of(h);
        ssize_t n;
        int r;

        g_mutex_lock(&d->lock);
        if (d->session && d->session->resume && d->session->error) {
                int e = d->session->error;      /* the device refused the data */

                g_mutex_unlock(&d->lock);
                return -e;
        }
        r = admit_io(d, SIM_FAULT_WRITE_ERROR, d->io_written, &len);
        g_mutex_unlock(&d->lock);
        if (r < 0)
                return r;
        n = write(fd, buf, len);
        if (n < 0)
                return errno == EPIPE ? -EFAULT : -errno;
        g_mutex_lock(&d->lock);
        d->io_written += (uint64_t) n;
        g_mutex_unlock(&d->lock);
        return n;
}

static void sim_close(DeviceHandle *h) {
        SimDevice *d = dev_of(h);

        g_mutex_lock(&d->lock);
        /* like a driver's close_device(): sessions end, the state stays */
        session_end(d);
        d->open = false;
        if (d->node_fd >= 0)
                close(d->node_fd);
        d->node_fd = -1;
        g_mutex_unlock(&d->lock);
        g_free(h->name);
        g_free(h);
}

/* Waits (a little) until the consumer has looked at everything written. */
static int sim_resume_status(DeviceHandle *h) {
        SimDevice *d = dev_of(h);

        for (int i = 0; i < 1000; i++) {
                int inpipe = 0, r = 0;
                bool done;

                g_mutex_lock(&d->lock);
                if (!d->session || !d->session->resume)
                        r = -EINVAL;
                else if (d->session->error)
                        r = -d->session->error;
                done = r < 0 || d->session->fd < 0 ||
                       (!d->session->busy && ioctl(d->session->fd, FIONREAD, &inpipe) >= 0 && inpipe == 0);
                g_mutex_unlock(&d->lock);
                if (done)
                        return r;
                g_usleep(1000);
        }
        return 0;
}

/* Without I/O faults the data fds are used plainly, as the kernel's are,
 * and two simulated devices can splice() their pipes directly. */
static const DeviceOps sim_ops_plain = {
        .get_flags = sim_get_flags,
        .get_state = sim_get_state,
        .set_state = sim_set_state,
        .data_size = sim_data_size,
        .precopy_info = sim_precopy_info,
        .reset = sim_reset,
        .close = sim_close,
        .resume_status = sim_resume_status,
};

static const DeviceOps sim_ops = {
        .get_flags = sim_get_flags,
        .get_state = sim_get_state,
        .set_state = sim_set_state,
        .data_size = sim_data_size,
        .precopy_info = sim_precopy_info,
        .reset = sim_reset,
        .close = sim_close,
        .read_data = sim_read_data,
        .write_data = sim_write_data,
        .resume_status = sim_resume_status,
};

/* ---- lifetime and views ---- */

SimDevice *sim_device_new(const char *name, const SimConfig *c, const char *persist_dir) {
        SimDevice *d = g_new0(SimDevice, 1);

        d->name = g_strdup(name);
        d->node_fd = -1;
        d->tag = g_ref_string_new_intern(c->tag);       /* one per type, mostly */
        d->flags = c->flags;
        /* testbed.c refuses larger values; never more than the bounds */
        d->size = CLAMP(c->state_size, 1, SIM_STATE_SIZE_MAX);
        d->page_size = (uint32_t) MIN(d->size, SIM_PAGE);
        d->npages = (uint32_t) ((d->size + d->page_size - 1) / d->page_size);
        d->dirty_rate = MIN(c->dirty_rate, SIM_DIRTY_RATE_MAX);
        d->state = VFIO_STATE_RUNNING;
        d->seed = mix(g_str_hash(name));        /* every device starts different */
        /* one block: a device of one page holds 5 bytes of it */
        d->versions = g_malloc0(d->npages * (sizeof(uint32_t) + 1));
        d->dirty = (uint8_t *) (d->versions + d->npages);
        d->dirty_last_usec = now_usec(CLOCK_MONOTONIC);
        g_mutex_init(&d->lock);
        d->persist_dir = persist_dir;
        return d;
}

const char *sim_device_name(SimDevice *d) {
        return d->name;
}

void sim_device_free(SimDevice *d) {
        if (!d)
                return;
        g_mutex_lock(&d->lock);
        session_end(d);
        g_mutex_unlock(&d->lock);
        g_mutex_clear(&d->lock);
        if (d->faults)
                g_array_unref(d->faults);
        if (d->history)
                g_array_unref(d->history);
        g_free(d->versions);
        g_ref_string_release(d->tag);
        g_free(d->name);
        g_free(d);
}

void sim_device_forget(SimDevice *d) {
        g_autofree char *node = NULL, *path = NULL, *vpath = NULL;

        if (!d)
                return;
        node = node_path(d);
        if (node)
                (void) unlink(node);
        if (!d->persist_dir)
                return;
        path = persist_path(d, ".sim");
        vpath = persist_path(d, ".versions");
        (void) unlink(path);
        (void) unlink(vpath);
}

static bool has_io_faults(SimDevice *d) {
        SimFault f;

        return peek_fault(d, SIM_FAULT_READ_ERROR, &f) || peek_fault(d, SIM_FAULT_WRITE_ERROR, &f) ||
               peek_fault(d, SIM_FAULT_SHORT_IO, &f);
}

void sim_device_set_node_dir(SimDevice *d, const char *dir) {
        d->node_dir = dir;
}

/* As the kernel's open of a group someone else holds: EBUSY. */
static int take_node(SimDevice *d) {
        g_autofree char *node = node_path(d);
        int fd;

        if (!node)
                return 0;
        fd = open(node, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                close(fd);
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        }
        d->node_fd = fd;
        return 0;
}

int sim_device_open(SimDevice *d, DeviceHandle **ret, char **ret_error) {
        SimHandle *h;
        int r;

        g_mutex_lock(&d->lock);
        r = d->open ? -EBUSY : take_node(d);
        if (r < 0) {
                g_autofree char *node = node_path(d);

                g_mutex_unlock(&d->lock);
                if (ret_error)
                        *ret_error = r == -EBUSY ? g_strdup_printf("%s: device is in use by another process", d->name)
                                                 : g_strdup_printf("%s: cannot open %s: %s", d->name, node,
                                                                   g_strerror(-r));
                return r;
        }
        d->open = true;
        h = g_new0(SimHandle, 1);
        h->handle.ops = has_io_faults(d) ? &sim_ops : &sim_ops_plain;
        g_mutex_unlock(&d->lock);
        h->handle.name = g_strdup(d->name);
        h->dev = d;
        *ret = &h->handle;
        return 0;
}

char *sim_device_digest(SimDevice *d) {
        g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
        char *digest;

        g_mutex_lock(&d->lock);
        advance(d);
        g_checksum_update(c, (const guchar *) &d->seed, sizeof(d->seed));
        g_checksum_update(c, (const guchar *) &d->size, sizeof(d->size));
        g_checksum_update(c, (const guchar *) d->versions, d->npages * sizeof(uint32_t));
        g_mutex_unlock(&d->lock);
        digest = g_strndup(g_checksum_get_string(c), 16);
        return digest;
}

uint32_t sim_device_state(SimDevice *d) {
        uint32_t s;

        g_mutex_lock(&d->lock);
        s = d->state;
        g_mutex_unlock(&d->lock);
        return s;
}

int sim_device_set_dirty_rate(SimDevice *d, uint64_t bytes_per_second) {
        if (bytes_per_second > SIM_DIRTY_RATE_MAX)
                return -ERANGE;
        g_mutex_lock(&d->lock);
        advance(d);
        d->dirty_rate = bytes_per_second;
        g_mutex_unlock(&d->lock);
        return 0;
}

int sim_device_reset(SimDevice *d) {
        g_mutex_lock(&d->lock);
        if (d->open) {
                g_mutex_unlock(&d->lock);
                return -EBUSY;
        }
        session_end(d);
        d->state = VFIO_STATE_RUNNING;
        persist(d);
        g_mutex_unlock(&d->lock);
        return 0;
}

void sim_device_add_fault(SimDevice *d, const SimFault *f) {
        g_mutex_lock(&d->lock);
        if (!d->faults)
                d->faults = g_array_new(FALSE, FALSE, sizeof(SimFault));
        g_array_append_val(d->faults, *f);
        g_mutex_unlock(&d->lock);
}

GArray *sim_device_history(SimDevice *d) {
        GArray *copy;

        g_mutex_lock(&d->lock);
        copy = d->history ? g_array_copy(d->history) : g_array_new(FALSE, FALSE, sizeof(SimArc));
        g_mutex_unlock(&d->lock);
        return copy;
}

void sim_device_clear_faults(SimDevice *d) {
        g_mutex_lock(&d->lock);
        if (d->faults)
                g_array_set_size(d->faults, 0);
        g_mutex_unlock(&d->lock);
}
