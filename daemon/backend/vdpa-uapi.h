/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The vDPA generic-netlink uAPI as the daemon uses it.
 *
 * <linux/vdpa.h> from Debian 12 (Linux 6.1) lacks the blk config
 * attributes (6.3) and calls attribute 20 VDPA_ATTR_VDPA_DEV_SUPPORTED_FEATURES,
 * which 6.2 renamed VDPA_ATTR_DEV_FEATURES (same number; 6.12 puts the
 * features the device offers there in DEV_CONFIG_GET, and accepts it in
 * DEV_NEW to provision them). The kernel's header is all enums, so
 * its names cannot be guarded with #ifndef; these are our own names for
 * the same numbers, checked against Linux 6.12's include/uapi/linux/vdpa.h.
 * Where the host's header has a number too, the build checks that both
 * agree. */

#include <linux/vdpa.h>

#define VDPA_NL_FAMILY_NAME "vdpa"
#define VDPA_NL_FAMILY_VERSION 1

/* enum vdpa_command */
#define VDPA_NL_CMD_MGMTDEV_NEW   1     /* what the kernel answers a MGMTDEV_GET with */
#define VDPA_NL_CMD_MGMTDEV_GET   2
#define VDPA_NL_CMD_DEV_NEW       3     /* what the kernel answers a DEV_GET with */
#define VDPA_NL_CMD_DEV_DEL       4
#define VDPA_NL_CMD_DEV_GET       5
#define VDPA_NL_CMD_DEV_CONFIG_GET 6

/* enum vdpa_attr */
#define VDPA_NL_ATTR_PAD                        0
#define VDPA_NL_ATTR_MGMTDEV_BUS_NAME           1       /* string */
#define VDPA_NL_ATTR_MGMTDEV_DEV_NAME           2       /* string */
#define VDPA_NL_ATTR_MGMTDEV_SUPPORTED_CLASSES  3       /* u64 */
#define VDPA_NL_ATTR_DEV_NAME                   4       /* string */
#define VDPA_NL_ATTR_DEV_ID                     5       /* u32 */
#define VDPA_NL_ATTR_DEV_VENDOR_ID              6       /* u32 */
#define VDPA_NL_ATTR_DEV_MAX_VQS                7       /* u32 */
#define VDPA_NL_ATTR_DEV_MAX_VQ_SIZE            8       /* u16 */
#define VDPA_NL_ATTR_DEV_MIN_VQ_SIZE            9       /* u16 */
#define VDPA_NL_ATTR_DEV_NET_CFG_MACADDR        10      /* binary */
#define VDPA_NL_ATTR_DEV_NET_STATUS             11      /* u8 */
#define VDPA_NL_ATTR_DEV_NET_CFG_MAX_VQP        12      /* u16 */
#define VDPA_NL_ATTR_DEV_NET_CFG_MTU            13      /* u16 */
#define VDPA_NL_ATTR_DEV_NEGOTIATED_FEATURES    14      /* u64 */
#define VDPA_NL_ATTR_DEV_MGMTDEV_MAX_VQS        15      /* u32 */
#define VDPA_NL_ATTR_DEV_SUPPORTED_FEATURES     16      /* u64, of the management device */
#define VDPA_NL_ATTR_DEV_QUEUE_INDEX            17      /* u32 */
#define VDPA_NL_ATTR_DEV_VENDOR_ATTR_NAME       18      /* string */
#define VDPA_NL_ATTR_DEV_VENDOR_ATTR_VALUE      19      /* u64 */
#define VDPA_NL_ATTR_DEV_FEATURES               20      /* u64, offered by the device */
#define VDPA_NL_ATTR_DEV_BLK_CFG_CAPACITY       21      /* u64 */
#define VDPA_NL_ATTR_DEV_BLK_CFG_SIZE_MAX       22      /* u32 */
#define VDPA_NL_ATTR_DEV_BLK_CFG_BLK_SIZE       23      /* u32 */
#define VDPA_NL_ATTR_DEV_BLK_CFG_SEG_MAX        24      /* u32 */
#define VDPA_NL_ATTR_DEV_BLK_CFG_NUM_QUEUES     25      /* u16 */

/* The same numbers under the host header's names (the ABI is stable;
 * this catches a typo here, not a kernel change). */
_Static_assert(VDPA_NL_CMD_MGMTDEV_GET == VDPA_CMD_MGMTDEV_GET, "vdpa uAPI");
_Static_assert(VDPA_NL_CMD_DEV_NEW == VDPA_CMD_DEV_NEW, "vdpa uAPI");
_Static_assert(VDPA_NL_CMD_DEV_GET == VDPA_CMD_DEV_GET, "vdpa uAPI");
_Static_assert(VDPA_NL_CMD_DEV_DEL == VDPA_CMD_DEV_DEL, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_MGMTDEV_BUS_NAME == VDPA_ATTR_MGMTDEV_BUS_NAME, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_MGMTDEV_DEV_NAME == VDPA_ATTR_MGMTDEV_DEV_NAME, "vdpa uAPI");
_Static_assert(VDPA_NL_CMD_DEV_CONFIG_GET == VDPA_CMD_DEV_CONFIG_GET, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_MGMTDEV_SUPPORTED_CLASSES == VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_DEV_NAME == VDPA_ATTR_DEV_NAME, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_DEV_MAX_VQ_SIZE == VDPA_ATTR_DEV_MAX_VQ_SIZE, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_DEV_NET_CFG_MTU == VDPA_ATTR_DEV_NET_CFG_MTU, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_DEV_NEGOTIATED_FEATURES == VDPA_ATTR_DEV_NEGOTIATED_FEATURES, "vdpa uAPI");
_Static_assert(VDPA_NL_ATTR_DEV_SUPPORTED_FEATURES == VDPA_ATTR_DEV_SUPPORTED_FEATURES, "vdpa uAPI");
