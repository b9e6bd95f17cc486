/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* xml-api.c: libxml2 loaded when first wanted, and what domain XML does
 * when it cannot be: every entry point refuses, naming the library and
 * why. This program links no libxml2 of its own, so a child started
 * with a broken libxml2.so.2 first in its library path has no other. */
#include <errno.h>

#include <glib/gstdio.h>

#include "libvirt/domain-xml.h"
#include "libvirt/xml-api.h"
#include "unit-test.h"

#define DOMAIN "<domain><name>vm</name><uuid>83b8f4f2-509f-382f-3c1e-e6bfe0fa1001</uuid></domain>"

static void test_loads(void) {
        g_autofree char *error = NULL;
        const XmlApi *api = xml_api(&error);

        g_assert_nonnull(api);
        g_assert_null(error);
#define CHECK_FIELD(f) g_assert_nonnull(api->f);
        XML_API_FUNCTIONS(CHECK_FIELD)
        XML_API_THREAD_GLOBALS(CHECK_FIELD)
#undef CHECK_FIELD
        g_assert_nonnull(api->Free);
        g_assert_nonnull(*api->Free);
        /* the same table, loaded once */
        g_assert_true(xml_api(NULL) == api);
}

static void assert_message(const char *error, const char *needle) {
        if (!error || !strstr(error, needle))
                fail("message '%s' lacks '%s'", error ?: "(null)", needle);
}

static void test_missing_library(void) {
        g_autofree char *error = NULL;

        g_assert_null(xml_api_load("libvfiomig-no-such-library.so.0", &error));
        assert_message(error, "cannot load libvfiomig-no-such-library.so.0: ");
        /* dlerror()'s reason */
        assert_message(error, "No such file");
        g_assert_null(xml_api_load("libvfiomig-no-such-library.so.0", NULL));
}

static void test_not_libxml2(void) {
        g_autofree char *error = NULL;

        g_assert_null(xml_api_load("libc.so.6", &error));
        g_assert_cmpstr(error, ==, "libc.so.6 has no xmlBufferContent");
}

/* In the child, which found the broken library. */
static void check_denied(void) {
        g_autofree char *error = NULL, *out = NULL;
        g_autoptr(DomainInfo) info = NULL;
        g_autoptr(GPtrArray) meta = NULL, entries = domain_metadata_new();

        g_assert_null(xml_api(&error));
        assert_message(error, "cannot load libxml2.so.2: ");
        assert_message(error, "file too short");
        g_clear_pointer(&error, g_free);

        g_assert_cmpint(domain_xml_parse(DOMAIN, strlen(DOMAIN), &info, &error), ==, -ELIBACC);
        g_assert_null(info);
        assert_message(error, "libxml2.so.2");
        g_clear_pointer(&error, g_free);
        g_assert_cmpint(domain_xml_metadata_parse("<devices/>", 10, &meta, &error), ==, -ELIBACC);
        g_assert_null(meta);
        assert_message(error, "libxml2.so.2");
        g_clear_pointer(&error, g_free);
        g_assert_cmpint(domain_xml_metadata_format(entries, &out, &error), ==, -ELIBACC);
        g_assert_null(out);
        assert_message(error, "libxml2.so.2");
        g_clear_pointer(&error, g_free);
        g_assert_cmpint(domain_xml_set_pci_source(DOMAIN, strlen(DOMAIN), "0000:01:00.0", "0000:02:00.0",
                                                  &out, &error), ==, -ELIBACC);
        g_assert_null(out);
        assert_message(error, "libxml2.so.2");
        /* nothing in it needs libxml2 */
        g_assert_true(domain_metadata_equal(entries, entries));
}

static void test_denied(void) {
        g_autofree char *dir = NULL, *lib = NULL;
        g_autoptr(GError) e = NULL;

        if (g_test_subprocess()) {
                check_denied();
                return;
        }
        dir = g_dir_make_tmp("test-xml-api-XXXXXX", &e);
        g_assert_no_error(e);
        lib = g_build_filename(dir, XML_API_LIBRARY, NULL);
        g_assert_true(g_file_set_contents(lib, "", 0, &e));
        /* read by the child's dynamic loader; this process's is long set */
        g_assert_true(g_setenv("LD_LIBRARY_PATH", dir, true));
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_unsetenv("LD_LIBRARY_PATH");
        g_assert_cmpint(g_unlink(lib), ==, 0);
        g_assert_cmpint(g_rmdir(dir), ==, 0);
        g_test_trap_assert_passed();
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/xml-api/loads", test_loads);
        g_test_add_func("/xml-api/missing-library", test_missing_library);
        g_test_add_func("/xml-api/not-libxml2", test_not_libxml2);
        g_test_add_func("/xml-api/denied", test_denied);
        return g_test_run();
}
