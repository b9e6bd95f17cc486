/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every D-Bus name of the org.vfiomig1 API, shared by daemon, client and
 * tests, so a rename is one edit. */

#define VFIOMIG_BUS_NAME               "org.vfiomig1"
#define VFIOMIG_OBJECT_PATH            "/org/vfiomig1"
#define VFIOMIG_DEVICE_PATH_PREFIX     "/org/vfiomig1/device"
#define VFIOMIG_TYPE_PATH_PREFIX       "/org/vfiomig1/type"
#define VFIOMIG_MIGRATION_PATH_PREFIX  "/org/vfiomig1/migration"

#define VFIOMIG_MANAGER_INTERFACE      "org.vfiomig1.Manager"
#define VFIOMIG_DEVICE_INTERFACE       "org.vfiomig1.Device"
#define VFIOMIG_TYPE_INTERFACE         "org.vfiomig1.MdevType"
#define VFIOMIG_MIGRATION_INTERFACE    "org.vfiomig1.Migration"
#define VFIOMIG_TESTBED_INTERFACE      "org.vfiomig1.Testbed"   /* only with --testbed */

#define VFIOMIG_ERROR_NO_SUCH_DEVICE    "org.vfiomig1.Error.NoSuchDevice"
#define VFIOMIG_ERROR_NO_SUCH_MIGRATION "org.vfiomig1.Error.NoSuchMigration"
#define VFIOMIG_ERROR_BUSY              "org.vfiomig1.Error.Busy"
#define VFIOMIG_ERROR_NOT_MIGRATABLE    "org.vfiomig1.Error.NotMigratable"
#define VFIOMIG_ERROR_INCOMPATIBLE      "org.vfiomig1.Error.Incompatible"
/* nothing says whether the target takes the state; allow-unknown tries */
#define VFIOMIG_ERROR_COMPATIBILITY_UNKNOWN "org.vfiomig1.Error.CompatibilityUnknown"
#define VFIOMIG_ERROR_DEVICE_FAILED     "org.vfiomig1.Error.DeviceFailed"
#define VFIOMIG_ERROR_STREAM_CORRUPT    "org.vfiomig1.Error.StreamCorrupt"
#define VFIOMIG_ERROR_CANCELLED         "org.vfiomig1.Error.Cancelled"
#define VFIOMIG_ERROR_INVALID_ARGUMENT  "org.vfiomig1.Error.InvalidArgument"
#define VFIOMIG_ERROR_ALREADY_EXISTS    "org.vfiomig1.Error.AlreadyExists"

#define VFIOMIG_POLKIT_MIGRATE         "org.vfiomig1.migrate"
#define VFIOMIG_POLKIT_MANAGE          "org.vfiomig1.manage"
