/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <stdbool.h>

#include <glib.h>

#include "libvirt/virt-api.h"

/* libvirt's soname since its first release. */
#define LIBVIRT_LIBRARY "libvirt.so.0"

const VirtApi *virt_api(char **ret_error) {
        static VirtApi api;
        static bool loaded;
        static char *failed;
        void *lib;

        if (loaded)
                return &api;
        if (!failed) {
                /* kept loaded for good: libvirt cannot be unloaded safely */
                lib = dlopen(LIBVIRT_LIBRARY, RTLD_NOW | RTLD_LOCAL);
                if (!lib)
                        failed = g_strdup(dlerror());
#define VIRT_API_LOAD(f) \
                if (!failed && !(api.f = (__typeof__(api.f)) dlsym(lib, "vir" #f))) \
                        failed = g_strdup_printf("%s has no vir%s", LIBVIRT_LIBRARY, #f);
                VIRT_API_FUNCTIONS(VIRT_API_LOAD)
#undef VIRT_API_LOAD
                loaded = !failed;
                if (loaded)
                        return &api;
        }
        if (ret_error)
                *ret_error = g_strdup(failed);
        return NULL;
}
