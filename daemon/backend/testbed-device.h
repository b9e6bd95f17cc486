/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "backend/devops.h"

/* A simulated migratable device behind the DeviceOps table.
 *
 * Its state is a number of pages, each with a version; a page's bytes are
 * a pure function of (seed, page, version), so a 1 GiB state costs 1 MiB
 * of memory and every received byte can be checked. While it runs with a
 * dirty rate, pages change (their version goes up) and pre-copy has
 * something to resend. The digest names the content exactly: equal
 * digests mean equal bytes.
 *
 * Data sessions use real pipes: a producer thread writes the stream of a
 * saving session, a consumer thread reads and checks a resuming one.
 * Stream: a vendor header (magic, geometry, seed, tag) and page records.
 * A resuming device refuses a header with another tag or geometry (it
 * closes its end: the next write fails, with EFAULT where I/O faults are
 * armed and the hooks run, else with EPIPE; mtty says EFAULT) and commits
 * only complete,
 * verified data at RESUMING -> STOP; a reset discards what it received.
 *
 * The migration state, seed and page versions persist in a directory, so
 * a daemon killed mid-migration finds the device where it left it. */

typedef struct SimDevice SimDevice;

/* What a simulated device accepts, from a testbed file or over D-Bus. A
 * state costs a 64th of its size in memory and, each time a running
 * device is looked at, at most one pass over its pages; a delayed
 * transition holds up only the thread that asked for it. */
#define SIM_STATE_SIZE_MAX      (UINT64_C(64) << 30)    /* 64 GiB */
#define SIM_DIRTY_RATE_MAX      (UINT64_C(64) << 30)    /* 64 GiB per second */
#define SIM_DELAY_MAX_MS        60000u

typedef struct SimConfig {
        uint32_t flags;         /* VFIO_MIGRATION_* */
        uint64_t state_size;    /* bytes, at most SIM_STATE_SIZE_MAX */
        uint64_t dirty_rate;    /* bytes per second while running, at most SIM_DIRTY_RATE_MAX */
        const char *tag;        /* compatibility tag in the vendor header */
} SimConfig;

typedef enum SimFaultType {
        SIM_FAULT_TRANSITION,   /* an arc fails with error, landing in `land` */
        SIM_FAULT_READ_ERROR,   /* reading the data fd fails after `after` bytes */
        SIM_FAULT_WRITE_ERROR,  /* writing the data fd fails after `after` bytes */
        SIM_FAULT_SHORT_IO,     /* reads and writes move at most `chunk` bytes */
        SIM_FAULT_STALL,        /* a saving session stops producing after `after` bytes */
        SIM_FAULT_PRECOPY_INFO, /* PRECOPY_INFO fails with error */
        SIM_FAULT_RESET,        /* reset fails with error */
        _SIM_FAULT_MAX,
} SimFaultType;

typedef struct SimFault {
        SimFaultType type;
        int from, to;           /* TRANSITION: VFIO_STATE_*, -1 = any */
        int land;               /* TRANSITION: state after failing, -1 = where it was */
        int error;              /* errno */
        uint64_t after;         /* bytes */
        size_t chunk;
        unsigned count;         /* how often it fires; 0 = every time */
        unsigned delay_ms;      /* TRANSITION: take this long first (errno=0: then succeed),
                                 * at most SIM_DELAY_MAX_MS; the device can be looked at meanwhile */
} SimFault;

/* Parses "transition from=stop-copy to=stop errno=EIO land=error count=1",
 * "transition to=running delay=500 errno=0" and the like (see vfiomig-testbed(5),
 * FAULTS). *ret_error says what is wrong, naming the limit a value
 * exceeds. */
int sim_fault_parse(const char *spec, SimFault *ret, char **ret_error);

/* The device keeps its state in persist_dir, which may be NULL (no
 * persistence); the string is kept, not copied, and must outlive it. */
SimDevice *sim_device_new(const char *name, const SimConfig *c, const char *persist_dir);
/* Takes up the state a daemon before this one persisted, if any. */
void sim_device_restore(SimDevice *d);
/* dir/NAME is a file that plays the device's VFIO node, which the
 * caller makes: another process that holds it open with an exclusive
 * flock(2) holds the device (the kernel's EBUSY for a second open), and
 * /proc shows who. dir is kept, not copied. */
void sim_device_set_node_dir(SimDevice *d, const char *dir);
void sim_device_free(SimDevice *d);
const char *sim_device_name(SimDevice *d);
/* Deletes the persisted state: the device is gone for good. */
void sim_device_forget(SimDevice *d);

/* One handle at a time: -EBUSY while another is open, here or (through
 * the node) elsewhere. I/O faults
 * (read-error, write-error, short-io) apply to handles opened after they
 * were injected. */
int sim_device_open(SimDevice *d, DeviceHandle **ret, char **ret_error);

/* Thread-safe views and controls, for the main loop and tests. */
char *sim_device_digest(SimDevice *d);
uint32_t sim_device_state(SimDevice *d);
/* -ERANGE above SIM_DIRTY_RATE_MAX. */
int sim_device_set_dirty_rate(SimDevice *d, uint64_t bytes_per_second);
/* What VFIO_DEVICE_RESET does, from outside: -EBUSY while a handle is open. */
int sim_device_reset(SimDevice *d);
void sim_device_add_fault(SimDevice *d, const SimFault *f);
void sim_device_clear_faults(SimDevice *d);

/* Every arc the device took, with a sequence number shared by all
 * simulated devices, so tests can order transitions across devices. */
typedef struct SimArc {
        uint32_t seq;
        uint32_t from, to;
} SimArc;
GArray *sim_device_history(SimDevice *d);
