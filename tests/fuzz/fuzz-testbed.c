/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Testbed files (daemon/backend/testbed.c, --testbed=FILE): parents, types and
 * simulated devices with their Fault= lines. */
#include "conffile.h"
#include "fuzz.h"
#include "registry.h"
#include "backend/testbed.h"

/* A simulated device costs memory in proportion to its state size, by
 * design: a file of many huge devices needs gigabytes and is no parser
 * bug. Leave out inputs of more than 64 GiB of simulated state in all. */
static bool too_big(ConfFile *c) {
        uint64_t devices = 0, largest = 64 * 1024;

        for (const char *const *g = conf_file_groups(c); *g; g++) {
                g_autoptr(GError) e = NULL;
                uint64_t size = 0;

                devices += g_str_has_prefix(*g, "Device ");
                if (conf_file_get_size(c, *g, "StateSize", 0, &size, &e))
                        largest = MAX(largest, size);
        }
        return largest > (UINT64_C(64) << 30) / MAX(devices, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = fuzz_text(data, size);
        g_autoptr(ConfFile) c = NULL;
        g_autoptr(Registry) r = registry_new();
        g_autoptr(Backend) s = NULL;
        g_autoptr(GError) error = NULL;

        if (!text)
                return 0;
        c = conf_file_parse(text, "fuzz.conf", &error);
        if (!c || too_big(c))
                return 0;
        /* no persist directory: nothing the fuzzer says reaches the disk */
        s = testbed_new(c, r, NULL, &error);
        check(!s == !!error);
        /* "on error r is untouched" */
        if (!s)
                check(registry_device_count(r) == 0);
        else {
                g_autoptr(GPtrArray) devices = registry_list_devices(r);

                for (guint i = 0; i < devices->len; i++) {
                        const Device *d = devices->pdata[i];

                        check(testbed_get_sim(s, d->name) != NULL);
                        check(d->kind != DEVICE_KIND_MDEV || registry_find_type(r, d->parent, d->mdev_type));
                }
        }
        /* the source goes before the registry it fills */
        g_clear_pointer(&s, backend_free);
        return 0;
}
