/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

/* libvirt's event loop on sd-event. libvirt needs an event loop for
 * domain events, keepalives and its remote driver's socket; rather than
 * a second main loop or a polling thread, its watches and timers become
 * sources of the daemon's one loop:
 *
 *   handles   sd_event_add_io(), VIR_EVENT_HANDLE_* <-> EPOLL*; events 0
 *             disables the watch (epoll would still report ERR and HUP)
 *   timeouts  sd_event_add_time(CLOCK_MONOTONIC), in milliseconds from
 *             now, periodic; -1 disables, 0 fires on every iteration
 *
 * A removed watch or timer never fires again, and its free function runs
 * later from a defer source, never from inside the remove call (libvirt
 * takes locks there that its free functions take again).
 *
 * libvirt keeps one event implementation per process, and what it added
 * to one loop cannot move to another: register once, before the first
 * virConnectOpen*(). A second call returns -EALREADY. The loop is
 * referenced for the rest of the process. Every libvirt call must come
 * from the thread that runs e: libvirt adds and changes its watches
 * inside API calls, and sd-event is not thread-safe; calls from another
 * thread are refused and logged. -ELIBACC if libvirt cannot be loaded
 * (virt-api.h). */
int virt_event_register(sd_event *e);

/* Runs the free functions of removed watches and timers now rather than
 * from the loop: at exit, after the last libvirt call, when the loop
 * will not run again. */
void virt_event_flush(void);
