/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fault syntax (daemon/backend/testbed-device.c): Fault= in testbed files and
 * Testbed.InjectFault over D-Bus, where any caller's string lands. */
#include <errno.h>

#include "fuzz.h"
#include "backend/testbed-device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *spec = fuzz_text(data, size);
        g_autofree char *msg = NULL;
        SimFault f;
        int k;

        if (!spec)
                return 0;
        k = sim_fault_parse(spec, &f, &msg);
        if (k < 0) {
                check(k == -EINVAL && msg);
                return 0;
        }
        check(!msg);
        check(f.type < _SIM_FAULT_MAX);
        check(f.chunk > 0);
        check(f.delay_ms <= 60000);
        check(f.error >= 0 && f.error < 4096);
        return 0;
}
