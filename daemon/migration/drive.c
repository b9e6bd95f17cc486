/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <unistd.h>

#include <glib.h>

#include "migration/drive.h"
#include "fsm.h"
#include "log.h"
#include "vfio-uapi.h"

/* How many arcs of path (n of them, from `from` on) one SET takes: up to
 * the first that opens a data session, that one included. */
static size_t stretch(uint32_t from, const uint32_t *path, size_t n) {
        for (size_t k = 0; k < n; k++)
                if (fsm_arc_opens_session(k == 0 ? from : path[k - 1], path[k]))
                        return k + 1;
        return n;
}

/* After a failed SET from `from` along path[0..n): the device is where
 * the kernel's walk stopped, on the path or off it (ERROR). */
static void locate_failure(DeviceHandle *h, uint32_t from, const uint32_t *path, size_t n, DriveFailure *ret) {
        uint32_t now;

        if (h->ops->get_state(h, &now) < 0)
                now = VFIO_STATE_ERROR;
        *ret = (DriveFailure) { .from = from, .to = path[n - 1], .now = now };
        if (now == from) {
                ret->to = path[0];
                return;
        }
        for (size_t j = 0; j + 1 < n; j++)
                if (path[j] == now) {
                        ret->from = now;
                        ret->to = path[j + 1];
                        return;
                }
}

int drive_walk(DeviceHandle *h, uint32_t flags, uint32_t *state, uint32_t want, const DriveHooks *hooks,
               void *userdata, DriveFailure *ret_failure) {
        uint32_t path[FSM_MAX_PATH];
        size_t n;
        int r;

        r = fsm_path(*state, want, flags, path, &n);
        if (r < 0) {
                if (ret_failure)
                        *ret_failure = (DriveFailure) { VFIO_STATE_ERROR, VFIO_STATE_ERROR, *state };
                return r;
        }
        for (size_t i = 0; i < n;) {
                size_t k = stretch(*state, path + i, n - i);
                uint32_t to = path[i + k - 1];
                int fd = -1;

                if (hooks && hooks->before)
                        hooks->before(userdata, *state, to);
                r = h->ops->set_state(h, to, &fd);
                if (r < 0) {
                        if (fd >= 0)
                                close(fd);
                        if (ret_failure)
                                locate_failure(h, *state, path + i, k, ret_failure);
                        return r;
                }
                *state = to;
                i += k;
                if (hooks && hooks->arrived)
                        r = hooks->arrived(userdata, to, fd);
                else if (fd >= 0)
                        close(fd);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int keep_fd(void *userdata, uint32_t to, int fd) {
        int *ret_fd = userdata;

        if (fd >= 0) {
                if (*ret_fd >= 0)
                        close(*ret_fd);
                *ret_fd = fd;
        }
        return 0;
}

int drive_to(DeviceHandle *h, uint32_t flags, uint32_t want, int *ret_fd) {
        static const DriveHooks hooks = { .arrived = keep_fd };
        uint32_t cur;
        int r;

        r = h->ops->get_state(h, &cur);
        return r < 0 ? r : drive_walk(h, flags, &cur, want, &hooks, ret_fd, NULL);
}

char *drive_restore(DeviceHandle *h, uint32_t flags) {
        uint32_t actual = VFIO_STATE_ERROR, cur;
        FsmRecovery rec;
        int r;

        if (h->ops->get_state(h, &actual) < 0)
                actual = VFIO_STATE_ERROR;
        rec = fsm_recovery(actual, VFIO_STATE_RUNNING, flags, NULL);
        if (rec == FSM_RECOVERY_NONE)
                return g_strdup("running");
        if (rec == FSM_RECOVERY_SET) {
                cur = actual;
                r = drive_walk(h, flags, &cur, VFIO_STATE_RUNNING, NULL, NULL, NULL);
                if (r >= 0)
                        return g_strdup_printf("restored to running (was %s)", fsm_state_to_string(actual));
                log_warning("%s: %s -> running failed: %s; resetting", h->name, fsm_state_to_string(actual),
                            g_strerror(-r));
        }
        r = h->ops->reset(h);
        if (r < 0)
                return g_strdup_printf("reset failed: %s (device left in %s)", g_strerror(-r),
                                       fsm_state_to_string(actual));
        return g_strdup_printf("reset to running (was %s)", fsm_state_to_string(actual));
}

char *drive_reset(DeviceHandle *h) {
        int r = h->ops->reset(h);

        return r < 0 ? g_strdup_printf("reset failed: %s", g_strerror(-r)) : g_strdup("reset");
}
