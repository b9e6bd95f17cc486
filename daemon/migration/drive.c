/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <unistd.h>

#include <glib.h>

#include "migration/drive.h"
#include "fsm.h"
#include "log.h"
#include "vfio-uapi.h"

int drive_walk(DeviceHandle *h, uint32_t flags, uint32_t *state, uint32_t want, const DriveHooks *hooks,
               void *userdata, uint32_t *ret_arc) {
        uint32_t path[FSM_MAX_PATH];
        size_t n;
        int r;

        *ret_arc = VFIO_STATE_ERROR;
        r = fsm_path(*state, want, flags, path, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                int fd = -1;

                *ret_arc = path[i];
                if (hooks && hooks->before)
                        hooks->before(userdata, *state, path[i]);
                r = h->ops->set_state(h, path[i], &fd);
                if (r < 0) {
                        if (fd >= 0)
                                close(fd);
                        return r;
                }
                *state = path[i];
                if (hooks && hooks->arrived)
                        r = hooks->arrived(userdata, path[i], fd);
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
        uint32_t cur, arc;
        int r;

        r = h->ops->get_state(h, &cur);
        return r < 0 ? r : drive_walk(h, flags, &cur, want, &hooks, ret_fd, &arc);
}

char *drive_restore(DeviceHandle *h, uint32_t flags) {
        uint32_t actual = VFIO_STATE_ERROR, cur, arc;
        FsmRecovery rec;
        int r;

        if (h->ops->get_state(h, &actual) < 0)
                actual = VFIO_STATE_ERROR;
        rec = fsm_recovery(actual, VFIO_STATE_RUNNING, flags, NULL);
        if (rec == FSM_RECOVERY_NONE)
                return g_strdup("running");
        if (rec == FSM_RECOVERY_SET) {
                cur = actual;
                r = drive_walk(h, flags, &cur, VFIO_STATE_RUNNING, NULL, NULL, &arc);
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
