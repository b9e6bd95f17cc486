/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vDPA input from outside: facet text (CheckIdentityEx, testbed files)
 * and the kernel's netlink replies (or a recording of them). The first
 * byte picks which; the rest is the input. */
#include <errno.h>

#include "backend/vdpa-kernel.h"
#include "backend/vdpa-netlink.h"
#include "fuzz.h"
#include "vdpa-facet.h"

/* Two facets, split at the first newline: each parses to a canonical form
 * that parses to itself, and judging them never fails to give a reason. */
static void facets(const uint8_t *data, size_t size) {
        g_autofree char *s = fuzz_text(data, size);
        g_auto(GStrv) parts = s ? g_strsplit(s, "\n", 2) : NULL;
        VdpaFacet f[2];
        int ok = 0;

        for (int i = 0; parts && parts[i] && i < 2; i++) {
                g_autofree char *c = NULL, *again = NULL, *error = NULL;

                if (vdpa_facet_parse(parts[i], &f[i], &error) < 0) {
                        check(error && g_str_has_prefix(error, "vDPA facet"));
                        return;
                }
                c = vdpa_facet_format(&f[i]);
                check(vdpa_facet_canonicalize(c, &again, NULL) == 0 && g_str_equal(c, again));
                ok++;
        }
        if (ok == 2) {
                g_autofree char *reason = NULL, *self = NULL;
                VdpaVerdict v = vdpa_facet_judge(&f[0], &f[1], &reason);
                uint64_t required;

                check(reason && v <= VDPA_VERDICT_UNKNOWN);
                /* a device can always take its own guest, unless it lacks
                 * what a legacy driver or an unknown config needs */
                if (f[0].known && vdpa_facet_required(&f[0], &required) && f[0].legacy == VDPA_LEGACY_YES)
                        check(vdpa_facet_judge(&f[0], &f[0], &self) == VDPA_VERDICT_COMPATIBLE);
        }
}

static void replies(uint8_t which, const uint8_t *data, size_t size) {
        g_autoptr(GArray) list = g_array_new(false, true, sizeof(VdpaMgmtInfo));
        g_auto(VdpaDeviceInfo) d = {};
        int r;

        g_array_set_clear_func(list, (GDestroyNotify) vdpa_mgmt_info_clear);
        if (which == 1)
                r = vdpa_netlink_parse_mgmt(data, size, list);
        else if (which == 2)
                r = vdpa_netlink_parse_device(data, size, &d);
        else
                r = vdpa_netlink_parse_config(data, size, &d);
        check(r <= 0);
        if (r < 0 && which == 1)
                check(list->len == 0);  /* a failed dump adds nothing */
        /* what the kernel backend makes of a reply is a facet that parses */
        if (r == 0 && which != 1) {
                g_autofree char *facet = vdpa_kernel_device_facet(&d);
                VdpaFacet f;

                if (vdpa_facet_parse(facet, &f, NULL) < 0)
                        fprintf(stderr, "facet: '%s'\n", facet);
                check(vdpa_facet_parse(facet, &f, NULL) == 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        if (data[0] % 4 == 0)
                facets(data + 1, size - 1);
        else {
                /* aligned, as every buffer the daemon parses is (netlink.h) */
                g_autofree void *aligned = g_memdup2(data + 1, size - 1);

                replies(data[0] % 4, aligned, size - 1);
        }
        return 0;
}
