/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <libvirt/libvirt.h>

#include "log.h"
#include "util.h"
#include "libvirt/virt-api.h"
#include "libvirt/virt-event.h"

#define USEC_PER_MSEC ((uint64_t) 1000)

/* A handle or a timer as libvirt sees it. */
typedef struct Watch {
        int id;
        bool timer;
        int fd;                 /* handle: libvirt's fd, handed back to its callback */
        int events;             /* handle: VIR_EVENT_HANDLE_*, 0 = disabled */
        int interval;           /* timer: ms, -1 = disabled */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timer_cb;
        void *opaque;
        virFreeCallback ff;
        sd_event_source *source;        /* NULL once removed */
        sd_event_source *reaper;        /* runs ff and frees the watch */
} Watch;

static struct {
        sd_event *event;
        pid_t tid;
        GHashTable *watches;    /* id -> Watch, handles and timers alike */
        GPtrArray *reaping;     /* removed Watch, waiting for their reaper */
        int next_id;
} loop;

/* libvirt calls us from inside its API calls: only the loop's own
 * thread may touch the sources. */
static bool on_loop_thread(const char *what) {
        if (gettid() == loop.tid)
                return true;
        log_error("libvirt: %s called from thread %d, not the event loop's (%d); refused",
                  what, (int) gettid(), (int) loop.tid);
        return false;
}

static int watch_new_id(void) {
        int id;

        do {
                id = loop.next_id;
                loop.next_id = loop.next_id == INT_MAX ? 1 : loop.next_id + 1;
        } while (g_hash_table_contains(loop.watches, GINT_TO_POINTER(id)));
        return id;
}

static Watch *watch_get(int id, bool timer) {
        Watch *w = g_hash_table_lookup(loop.watches, GINT_TO_POINTER(id));

        return w && w->timer == timer ? w : NULL;
}

static int watch_add(Watch *w) {
        w->id = watch_new_id();
        g_hash_table_insert(loop.watches, GINT_TO_POINTER(w->id), w);
        return w->id;
}

static int on_reap(sd_event_source *s, void *userdata) {
        Watch *w = userdata;

        g_ptr_array_remove_fast(loop.reaping, w);
        if (w->ff)
                w->ff(w->opaque);
        sd_event_source_disable_unref(w->reaper);
        g_free(w);
        return 0;
}

void virt_event_flush(void) {
        while (loop.reaping && loop.reaping->len > 0)
                (void) on_reap(NULL, loop.reaping->pdata[0]);
}

/* The source goes at once, so nothing fires after this; the watch itself
 * (which a running callback may still be inside) and the opaque go on a
 * clean stack, from a defer source. */
static int watch_remove(int id, bool timer) {
        Watch *w = watch_get(id, timer);
        int r;

        if (!w)
                return -1;
        g_hash_table_remove(loop.watches, GINT_TO_POINTER(id));
        w->source = sd_event_source_disable_unref(w->source);
        r = sd_event_add_defer(loop.event, &w->reaper, on_reap, w);
        if (r < 0)
                /* Freeing here could deadlock libvirt (and a finished loop
                 * runs no defer source): virt_event_flush() frees it. */
                log_debug_errno(r, "libvirt: watch %d is freed at exit: %m", id);
        else
                (void) sd_event_source_set_description(w->reaper, "libvirt-reap");
        g_ptr_array_add(loop.reaping, w);
        return 0;
}

static uint32_t events_to_epoll(int events) {
        return (events & VIR_EVENT_HANDLE_READABLE ? EPOLLIN : 0) |
               (events & VIR_EVENT_HANDLE_WRITABLE ? EPOLLOUT : 0) |
               (events & VIR_EVENT_HANDLE_ERROR ? EPOLLERR : 0) |
               (events & VIR_EVENT_HANDLE_HANGUP ? EPOLLHUP : 0);
}

static int events_from_epoll(uint32_t events) {
        return (events & (EPOLLIN | EPOLLPRI) ? VIR_EVENT_HANDLE_READABLE : 0) |
               (events & EPOLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
               (events & EPOLLERR ? VIR_EVENT_HANDLE_ERROR : 0) |
               (events & EPOLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Watch *w = userdata;

        w->handle_cb(w->id, w->fd, events_from_epoll(revents), w->opaque);
        return 0;
}

/* epoll reports ERR and HUP whether asked or not, so a handle libvirt
 * wants silent (events 0) is switched off instead. */
static int handle_apply(Watch *w) {
        int r;

        if (w->events == 0)
                return sd_event_source_set_enabled(w->source, SD_EVENT_OFF);
        r = sd_event_source_set_io_events(w->source, events_to_epoll(w->events));
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(w->source, SD_EVENT_ON);
}

/* libvirt may watch one fd twice (for different events); epoll takes an
 * fd only once, but a duplicate of it is another entry. */
static int handle_add_source(Watch *w) {
        int r, fd;

        r = sd_event_add_io(loop.event, &w->source, w->fd, events_to_epoll(w->events), on_io, w);
        if (r != -EEXIST)
                return r;
        fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        r = sd_event_add_io(loop.event, &w->source, fd, events_to_epoll(w->events), on_io, w);
        if (r < 0) {
                close(fd);
                return r;
        }
        return sd_event_source_set_io_fd_own(w->source, true);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        g_autofree Watch *w = NULL;
        int r;

        if (!on_loop_thread("virEventAddHandle"))
                return -1;
        w = g_new0(Watch, 1);
        *w = (Watch) { .fd = fd, .events = events, .handle_cb = cb, .opaque = opaque, .ff = ff };
        r = handle_add_source(w);
        if (r >= 0)
                r = handle_apply(w);
        if (r < 0) {
                w->source = sd_event_source_disable_unref(w->source);
                log_error_errno(r, "libvirt: cannot watch fd %d: %m", fd);
                return -1;
        }
        (void) sd_event_source_set_description(w->source, "libvirt-handle");
        return watch_add(g_steal_pointer(&w));
}

static void update_handle(int id, int events) {
        Watch *w;
        int r;

        if (!on_loop_thread("virEventUpdateHandle"))
                return;
        w = watch_get(id, false);
        if (!w) {
                log_debug("libvirt: update of unknown handle %d ignored", id);
                return;
        }
        w->events = events;
        r = handle_apply(w);
        if (r < 0)
                log_error_errno(r, "libvirt: cannot change events of fd %d: %m", w->fd);
}

static int remove_handle(int id) {
        if (!on_loop_thread("virEventRemoveHandle"))
                return -1;
        return watch_remove(id, false);
}

/* "From now", as libvirt's own loop counts, not from the start of the
 * iteration: a timer set long after the loop woke must not fire early. */
static int timer_arm(Watch *w, int interval) {
        int r;

        w->interval = interval;
        if (interval < 0)
                return sd_event_source_set_enabled(w->source, SD_EVENT_OFF);
        r = sd_event_source_set_time(w->source, now_usec(CLOCK_MONOTONIC) + (uint64_t) interval * USEC_PER_MSEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(w->source, SD_EVENT_ON);
}

/* Periodic: armed again before the callback, which may change or remove
 * it. An interval of 0 is due again at once, so it fires on every
 * iteration, after whatever else is pending. */
static int on_time(sd_event_source *s, uint64_t usec, void *userdata) {
        Watch *w = userdata;
        int r;

        r = timer_arm(w, w->interval);
        if (r < 0)
                log_error_errno(r, "libvirt: cannot rearm timer %d: %m", w->id);
        w->timer_cb(w->id, w->opaque);
        return 0;
}

static int add_timeout(int interval, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        g_autofree Watch *w = NULL;
        int r;

        if (!on_loop_thread("virEventAddTimeout"))
                return -1;
        w = g_new0(Watch, 1);
        *w = (Watch) { .timer = true, .fd = -1, .timer_cb = cb, .opaque = opaque, .ff = ff };
        /* libvirt asks in milliseconds: coalescing within one costs nothing */
        r = sd_event_add_time(loop.event, &w->source, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_time, w);
        if (r >= 0)
                r = timer_arm(w, interval);
        if (r < 0) {
                w->source = sd_event_source_disable_unref(w->source);
                log_error_errno(r, "libvirt: cannot add a timer: %m");
                return -1;
        }
        (void) sd_event_source_set_description(w->source, "libvirt-timer");
        return watch_add(g_steal_pointer(&w));
}

static void update_timeout(int id, int interval) {
        Watch *w;
        int r;

        if (!on_loop_thread("virEventUpdateTimeout"))
                return;
        w = watch_get(id, true);
        if (!w) {
                log_debug("libvirt: update of unknown timer %d ignored", id);
                return;
        }
        r = timer_arm(w, interval);
        if (r < 0)
                log_error_errno(r, "libvirt: cannot change timer %d: %m", id);
}

static int remove_timeout(int id) {
        if (!on_loop_thread("virEventRemoveTimeout"))
                return -1;
        return watch_remove(id, true);
}

int virt_event_register(sd_event *e) {
        const VirtApi *virt;

        if (loop.event)
                return -EALREADY;
        virt = virt_api(NULL);
        if (!virt)
                return -ELIBACC;
        loop.event = sd_event_ref(e);
        loop.tid = gettid();
        loop.watches = g_hash_table_new(NULL, NULL);
        loop.reaping = g_ptr_array_new();
        loop.next_id = 1;
        virt->EventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout, remove_timeout);
        return 0;
}
