/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* vDPA devices and their management devices as the kernel's "vdpa"
 * generic-netlink family describes them (VDPA_CMD_MGMTDEV_GET,
 * VDPA_CMD_DEV_GET, VDPA_CMD_DEV_CONFIG_GET), through libmnl.
 *
 * A connection talks to the kernel, or replays answers the kernel gave
 * once, recorded in a directory (for tests where no vDPA kernel is at
 * hand): the parsing is the same either way. */

typedef struct VdpaMgmtInfo {
        char *name;                     /* "vduse", "vdpasim_net", "pci/0000:00:05.0" */
        uint64_t classes;               /* bit N: virtio device id N */
        bool has_supported_features;
        uint64_t supported_features;    /* what devices it makes can offer */
        uint32_t max_vqs;               /* 0 not stated */
} VdpaMgmtInfo;

typedef struct VdpaDeviceInfo {
        char *name;                     /* "vdpa0" */
        char *mgmtdev;                  /* as VdpaMgmtInfo.name */
        uint32_t device_id;             /* virtio device id: 1 net, 2 blk, ... */
        uint32_t vendor_id;
        uint32_t max_vqs;
        uint16_t max_vq_size;
        bool has_features;
        uint64_t features;              /* offered by the device */
        bool has_negotiated;
        uint64_t negotiated;            /* present once a driver set FEATURES_OK */
        /* net config (each only when the kernel states it) */
        bool has_mtu, has_max_vq_pairs;
        uint16_t mtu, max_vq_pairs;
        /* blk config */
        bool has_blk_size, has_num_queues;
        uint32_t blk_size;
        uint16_t num_queues;
} VdpaDeviceInfo;

void vdpa_mgmt_info_clear(VdpaMgmtInfo *m);
void vdpa_device_info_clear(VdpaDeviceInfo *d);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VdpaMgmtInfo, vdpa_mgmt_info_clear);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VdpaDeviceInfo, vdpa_device_info_clear);

typedef struct VdpaNetlink VdpaNetlink;

/* replay_dir NULL: the kernel. -ENOENT when the kernel has no vdpa family
 * (vdpa.ko not loaded): then there are no vDPA devices to speak of. */
int vdpa_netlink_open(const char *replay_dir, VdpaNetlink **ret);
void vdpa_netlink_free(VdpaNetlink *nl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VdpaNetlink, vdpa_netlink_free);

/* Every management device: a GArray of VdpaMgmtInfo (cleared on free). */
int vdpa_netlink_list_mgmt(VdpaNetlink *nl, GArray **ret);
/* One device, with its config (features, negotiated features, net or
 * blk config). -ENODEV when the kernel does not know it. */
int vdpa_netlink_get_device(VdpaNetlink *nl, const char *name, VdpaDeviceInfo *ret);

/* Parsing, on its own for tests: buf holds one or more netlink messages
 * as the kernel sent them (a dump ends with NLMSG_DONE), 4-byte aligned
 * as netlink messages are (any allocation is). -EBADMSG for
 * anything malformed, the kernel's -errno for an NLMSG_ERROR. */
int vdpa_netlink_parse_mgmt(const void *buf, size_t len, GArray *into);
int vdpa_netlink_parse_device(const void *buf, size_t len, VdpaDeviceInfo *into);
int vdpa_netlink_parse_config(const void *buf, size_t len, VdpaDeviceInfo *into);

/* Additions beyond the first contract: */

/* Every device, without config (VDPA_CMD_DEV_GET dump): a GArray of
 * VdpaDeviceInfo (cleared on free). Replay: devices.hex, -ENOENT if the
 * recording has none. */
int vdpa_netlink_list_devices(VdpaNetlink *nl, GArray **ret);
int vdpa_netlink_parse_devices(const void *buf, size_t len, GArray *into);

/* The raw reply bytes of one request, as the kernel sent them (or as
 * recorded): what `vdpa-tool record` writes, one file each. name only for
 * VDPA_REQUEST_DEV and VDPA_REQUEST_CONFIG. */
typedef enum VdpaRequest {
        VDPA_REQUEST_MGMT_DUMP,         /* mgmtdev.hex */
        VDPA_REQUEST_DEV_DUMP,          /* devices.hex */
        VDPA_REQUEST_DEV,               /* dev-NAME.hex */
        VDPA_REQUEST_CONFIG,            /* config-NAME.hex */
} VdpaRequest;
int vdpa_netlink_request(VdpaNetlink *nl, VdpaRequest req, const char *name, GBytes **ret);
/* The replay file that answers a request: "dev-vdpa0.hex". */
char *vdpa_request_file_name(VdpaRequest req, const char *name);

/* For test tools (vdpa-tool new/del), not the daemon: VDPA_CMD_DEV_NEW
 * of device name on management device mgmtdev ("vdpasim_net", or
 * "BUS/DEV"), offering features when has_features (the management device
 * checks them against what it supports: -EINVAL, or -EOPNOTSUPP when it
 * takes no per-device features), and VDPA_CMD_DEV_DEL. Both need
 * CAP_NET_ADMIN; a replay answers -EOPNOTSUPP. */
int vdpa_netlink_new_device(VdpaNetlink *nl, const char *name, const char *mgmtdev, bool has_features,
                            uint64_t features);
int vdpa_netlink_del_device(VdpaNetlink *nl, const char *name);

/* A plain kernel device name: not empty, no '/', not "." or "..", shorter
 * than a VDUSE name (256). Anything else is -EINVAL before any lookup. */
bool vdpa_device_name_is_valid(const char *name);
