/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>

#include <glib.h>

#include "libvirt/xml-api.h"

typedef struct XmlLoad {
        XmlApi *api;
        char *error;
} XmlLoad;

XmlApi *xml_api_load(const char *library, char **ret_error) {
        g_autofree XmlApi *api = g_new0(XmlApi, 1);
        g_autofree char *error = NULL;
        void *lib;

        lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
                /* dlerror() names the library and the reason */
                error = g_strdup_printf("cannot load %s: %s", library, dlerror());
                goto fail;
        }
#define XML_API_LOAD(f) \
        if (!error && !(api->f = (__typeof__(api->f)) dlsym(lib, "xml" #f))) \
                error = g_strdup_printf("%s has no xml%s", library, #f);
        XML_API_FUNCTIONS(XML_API_LOAD)
#undef XML_API_LOAD
#define XML_API_LOAD_GLOBAL(f) \
        if (!error && !(api->f = (__typeof__(api->f)) dlsym(lib, "__xml" #f))) \
                error = g_strdup_printf("%s has no __xml%s", library, #f);
        XML_API_THREAD_GLOBALS(XML_API_LOAD_GLOBAL)
#undef XML_API_LOAD_GLOBAL
        if (!error && !(api->Free = dlsym(lib, "xmlFree")))
                error = g_strdup_printf("%s has no xmlFree", library);
        if (!error)
                return g_steal_pointer(&api);
        (void) dlclose(lib);
fail:
        if (ret_error)
                *ret_error = g_steal_pointer(&error);
        return NULL;
}

static gpointer load(gpointer unused) {
        XmlLoad *l = g_new0(XmlLoad, 1);

        l->api = xml_api_load(XML_API_LIBRARY, &l->error);
        if (l->api)
                l->api->InitParser();
        return l;
}

const XmlApi *xml_api(char **ret_error) {
        static GOnce once = G_ONCE_INIT;
        const XmlLoad *l = g_once(&once, load, NULL);

        if (!l->api && ret_error)
                *ret_error = g_strdup(l->error);
        return l->api;
}
