/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "registry.h"

/* Migration compatibility rules: for devices whose drivers publish no
 * migration_version, an administrator or vendor says which version a
 * device has and how versions compare. Files *.rules in the rule
 * directories, GKeyFile syntax, one [Rule NAME] section each:
 *
 *   [Rule cx7-fw28]
 *   Driver=mlx5_vfio_pci          match keys: Driver, MdevType, Vendor,
 *   Vendor=0x15b3                 Device, SubsystemVendor, SubsystemDevice;
 *   Device=0x101e                 all given must match, at least one given
 *   Version=28.39.1010            required
 *   Compare=same-major            exact (default) or same-major
 *   Type=...                      optional: the migration type to report
 *   IgnoreFacets=iommu            optional: facets of the identity not to
 *                                 judge; with it, Version= may be absent
 *                                 (the device keeps its own version)
 *
 * A file in a later directory replaces one of the same name in an earlier
 * directory (/etc overrides /usr/share); files are read in name order and
 * the first rule that matches a device wins. Pure apart from reading the
 * files. */

typedef enum RuleCompare {
        RULE_COMPARE_EXACT,
        RULE_COMPARE_SAME_MAJOR,
} RuleCompare;

typedef enum RuleFacet {
        RULE_FACET_IOMMU = 1 << 0,
} RuleFacet;

typedef struct Rule {
        char *name;             /* "file.rules:Rule NAME" for messages */
        char *driver, *mdev_type, *vendor_id, *device_id, *subsystem_vendor_id, *subsystem_device_id;
        char *version, *type;
        RuleCompare compare;
        unsigned ignore_facets; /* RuleFacet */
} Rule;

typedef struct Rules Rules;

Rules *rules_new(void);
void rules_free(Rules *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Rules, rules_free);

/* Adds the rules of one file's text; on error nothing of it is added and
 * error names the file and line. */
bool rules_add_data(Rules *r, const char *data, const char *filename, GError **error);
/* Loads *.rules from dirs (later ones override earlier by file name).
 * Unreadable or malformed files are logged with their line and skipped:
 * one bad file must not take the others down. Returns how many loaded. */
unsigned rules_load_dirs(Rules *r, const char *const *dirs);

unsigned rules_count(const Rules *r);
/* The driver an mdev type's id names ("<driver>-<name>"), or fallback if
 * it has no "-". Rules match an mdev and its type by it, so both get the
 * same rule: a virtual parent may have no driver, and an mdev's own driver
 * may differ from its parent's. */
char *rules_mdev_driver(const char *type_id, const char *fallback);
/* The first rule matching a device (or an mdev type: pass the driver
 * rules_mdev_driver() gives and its id as mdev_type), or NULL. */
const Rule *rules_match(const Rules *r, const Device *d);
const Rule *rules_match_type(const Rules *r, const char *driver, const char *mdev_type);

/* Whether version a (of a source) may go to b (a target) under cmp. */
bool rules_versions_compatible(RuleCompare cmp, const char *a, const char *b);
