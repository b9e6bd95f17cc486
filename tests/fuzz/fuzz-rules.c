/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Rules files (daemon/compat/rules.c), as read from /etc/vfiomig/rules.d. */
#include "fuzz.h"
#include "registry.h"
#include "compat/rules.h"

/* Whatever a file says, a match hands back a rule that is complete. */
static void check_rule(const Rule *rule) {
        if (!rule)
                return;
        check(rule->name && rule->version && rule->type);
        check(rule->compare == RULE_COMPARE_EXACT || rule->compare == RULE_COMPARE_SAME_MAJOR);
        check(rules_versions_compatible(rule->compare, rule->version, rule->version));
}

static void match_devices(Rules *rules) {
        g_autoptr(Device) pci = device_new("0000:3b:00.1", DEVICE_KIND_PCI);
        g_autoptr(Device) mdev = device_new("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", DEVICE_KIND_MDEV);
        g_autofree char *driver = NULL;

        device_set_string(&pci->driver, "mlx5_vfio_pci");
        device_set_string(&pci->vendor_id, "0x15b3");
        device_set_string(&pci->device_id, "0x101e");
        check_rule(rules_match(rules, pci));

        device_set_string(&mdev->mdev_type, "mtty-2");
        device_set_string(&mdev->driver, "mtty");
        check_rule(rules_match(rules, mdev));

        driver = rules_mdev_driver("i915-GVTg_V5_4", "i915");
        check_rule(rules_match_type(rules, driver, "i915-GVTg_V5_4"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = fuzz_text(data, size);
        g_autoptr(Rules) rules = rules_new();
        g_autoptr(GError) error = NULL, error2 = NULL;
        unsigned n;
        bool ok;

        if (!text)
                return 0;
        ok = rules_add_data(rules, text, "fuzz.rules", &error);
        check(ok == (error == NULL));
        /* a refused file adds nothing */
        n = rules_count(rules);
        check(ok || n == 0);
        match_devices(rules);

        /* the same text again: the same verdict, and as many rules again */
        check(rules_add_data(rules, text, "fuzz.rules", &error2) == ok);
        check(rules_count(rules) == 2 * n);
        return 0;
}
