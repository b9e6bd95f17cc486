/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* domain-xml.c: reading hostdevs and vfiomig's metadata out of libvirt
 * domain XML, writing the metadata element, rewriting a PCI hostdev's
 * source, and refusing what a hostile hook input could do (entities,
 * external files, size). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <libxml/c14n.h>
#include <libxml/parser.h>

#include "libvirt/domain-xml.h"
#include "unit-test.h"
#include "util.h"

#define MDEV "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"

static char *read_data(const char *name, size_t *len) {
        g_autofree char *path = g_build_filename(UNIT_DATA_DIR, name, NULL);
        g_autoptr(GError) e = NULL;
        char *data;

        g_assert_true(g_file_get_contents(path, &data, len, &e));
        return data;
}

static DomainInfo *parse_ok(const char *xml) {
        g_autofree char *error = NULL;
        DomainInfo *info = NULL;
        int r = domain_xml_parse(xml, strlen(xml), &info, &error);

        if (r < 0)
                fail("parse failed: %s", error);
        g_assert_cmpint(r, ==, 0);
        g_assert_null(error);
        return info;
}

/* Parsing fails with r, and the message names the problem. */
static void parse_fails(const char *xml, size_t len, int r, const char *needle) {
        g_autofree char *error = NULL;
        DomainInfo *info = NULL;
        int got = domain_xml_parse(xml, len, &info, &error);

        if (got != r)
                fail("expected %d, got %d (%s) for: %.200s", r, got, error ?: "no message", xml);
        g_assert_null(info);
        if (got < 0 && (!error || !strstr(error, needle)))
                fail("message '%s' lacks '%s'", error ?: "(null)", needle);
}

static const DomainHostdev *hostdev(const DomainInfo *info, unsigned i) {
        g_assert_cmpuint(i, <, info->hostdevs->len);
        return info->hostdevs->pdata[i];
}

static void assert_hostdev(const DomainInfo *info, unsigned i, DeviceKind kind, const char *key, const char *model) {
        const DomainHostdev *h = hostdev(info, i);

        g_assert_cmpint(h->kind, ==, kind);
        g_assert_cmpstr(h->key, ==, key);
        g_assert_cmpstr(h->model, ==, model);
}

/* mdev and PCI hostdevs in document order, keys as the kernel spells
 * them, numbers read as libvirt reads them (0x hex, 0 octal, decimal);
 * USB, capabilities, disks and guest-side addresses are not hostdevs of
 * ours. */
static void test_hostdevs(void) {
        size_t len;
        g_autofree char *xml = read_data("domain-hostdevs.xml", &len);
        g_autoptr(DomainInfo) info = parse_ok(xml);

        g_assert_cmpstr(info->name, ==, "guest-\xc3\xa4");
        g_assert_cmpstr(info->uuid, ==, "0d6e4e6c-8b0a-4f45-9d3a-3c1f3c2a1a01");
        g_assert_cmpuint(info->hostdevs->len, ==, 4);
        assert_hostdev(info, 0, DEVICE_KIND_MDEV, MDEV, "vfio-pci");
        assert_hostdev(info, 1, DEVICE_KIND_PCI, "0000:65:00.1", "");
        assert_hostdev(info, 2, DEVICE_KIND_PCI, "0000:65:08.7", "");           /* 101, 010, 07 */
        assert_hostdev(info, 3, DEVICE_KIND_MDEV, "90c6c135-ad44-4a9f-8b6a-f1fbd9c1f3d1", "vfio-ccw");
}

static void test_no_hostdevs(void) {
        g_autoptr(DomainInfo) a = parse_ok("<domain><name>a</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>");
        g_autoptr(DomainInfo) b = parse_ok("<domain><name>b</name><uuid>11111111222233334444555555555555</uuid>"
                                           "<devices><disk/><hostdev type='usb'/></devices></domain>");

        g_assert_cmpuint(a->hostdevs->len, ==, 0);
        g_assert_null(a->metadata);
        g_assert_null(a->metadata_error);
        g_assert_cmpuint(b->hostdevs->len, ==, 0);
        g_assert_cmpstr(b->uuid, ==, "11111111-2222-3333-4444-555555555555");
}

#define HEAD "<domain><name>d</name><uuid>11111111-2222-3333-4444-555555555555</uuid><devices>"
#define TAIL "</devices></domain>"
#define PCI_SRC(attrs) HEAD "<hostdev mode='subsystem' type='pci'><source><address " attrs "/></source></hostdev>" TAIL
#define MDEV_SRC(attrs) HEAD "<hostdev mode='subsystem' type='mdev'><source><address " attrs "/></source></hostdev>" TAIL

/* A domain holding a device we cannot name must not pass for one that
 * holds none. */
static void test_missing_elements(void) {
        static const struct {
                const char *xml, *needle;
        } cases[] = {
                { "<domain><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>", "no <name>" },
                { "<domain><name></name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>", "no <name>" },
                { "<domain><name>x</name></domain>", "no <uuid>" },
                { "<domain><name>x</name><uuid>11111111-2222-3333-4444</uuid></domain>", "not a UUID" },
                { HEAD "<hostdev mode='subsystem' type='mdev'/>" TAIL, "hostdev 1 (type mdev) has no <source><address>" },
                { HEAD "<hostdev type='disk'/><hostdev type='pci'><source/></hostdev>" TAIL,
                  "hostdev 2 (type pci) has no <source><address>" },
                { MDEV_SRC(""), "has no uuid" },
                { PCI_SRC("domain='0' slot='0' function='0'"), "has no bus" },
                { PCI_SRC("bus='0' function='0'"), "has no slot" },
                { PCI_SRC("bus='0' slot='0'"), "has no function" },
                { PCI_SRC("bus='0x100' slot='0' function='0'"), "bus '0x100' is not a number up to 0xff" },
                { PCI_SRC("bus='0' slot='0x20' function='0'"), "slot '0x20'" },
                { PCI_SRC("bus='0' slot='0' function='8'"), "function '8'" },
                { PCI_SRC("bus='-1' slot='0' function='0'"), "bus '-1'" },
                { PCI_SRC("bus=' 1' slot='0' function='0'"), "bus ' 1'" },
                { PCI_SRC("bus='0x' slot='0' function='0'"), "bus '0x'" },
                { PCI_SRC("bus='08' slot='0' function='0'"), "bus '08'" },            /* not octal */
                { PCI_SRC("domain='0x100000000' bus='0' slot='0' function='0'"), "domain '0x100000000'" },
                { PCI_SRC("bus='99999999999999999999999' slot='0' function='0'"), "bus '99999999999999999999999'" },
                { "<devices/>", "not a <domain>" },
                { "<domain xmlns='urn:not-libvirt'><name>x</name></domain>", "in another namespace" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                parse_fails(cases[i].xml, strlen(cases[i].xml), -EBADMSG, cases[i].needle);
}

static void test_bad_uuid(void) {
        static const char *const bad[] = {
                "not-a-uuid",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa100",          /* short */
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa10011",        /* long */
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa100g",
                "83b8f4f2509f382f3c1ee6bfe0fa100",               /* 31 digits, no dashes */
                "../../../../sys/bus/mdev/devices/x",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 ",
                "",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *xml = g_strdup_printf(HEAD "<hostdev mode='subsystem' type='mdev'><source>"
                                                       "<address uuid='%s'/></source></hostdev>" TAIL, bad[i]);

                parse_fails(xml, strlen(xml), -EBADMSG, "is not a UUID");
        }
}

static void test_not_xml(void) {
        static const char nul[] = "<domain><name>a\0b</name></domain>";
        static const char *const bad[] = {
                "<domain>", "<domain><name>x</domain>", "garbage", "<domain><name>\xff\xfe</name></domain>",
                "<a/><b/>", "<domain><name>&undefined;</name></domain>",
        };

        parse_fails("", 0, -EBADMSG, "empty");
        parse_fails(nul, sizeof(nul) - 1, -EBADMSG, "not well-formed");
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                parse_fails(bad[i], strlen(bad[i]), -EBADMSG, "not well-formed XML: line 1");
}

#define META(children) HEAD "</devices><metadata>" children "</metadata><devices>" TAIL

/* Our element is found by its namespace URI, not its prefix; children
 * count in our namespace or none; a bad entry makes the element
 * unusable but leaves the hostdevs. */
static void test_odd_namespaces(void) {
        g_autoptr(DomainInfo) other_prefix = parse_ok(META(
                "<x:devices xmlns:x='urn:vfiomig:domain:1'><x:device key='" MDEV "' type='t' basis='rule'/></x:devices>"));
        g_autoptr(DomainInfo) default_ns = parse_ok(META(
                "<devices xmlns='urn:vfiomig:domain:1'><device key='" MDEV "' type='t' basis='rule'/></devices>"));
        g_autoptr(DomainInfo) unprefixed_children = parse_ok(META(
                "<vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:1'><device key='" MDEV "' type='t' basis='rule'/>"
                "</vfiomig:devices>"));
        g_autoptr(DomainInfo) wrong_uri = parse_ok(META(
                "<vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:2'><vfiomig:device key='" MDEV "' type='t' basis='rule'/>"
                "</vfiomig:devices>"));
        g_autoptr(DomainInfo) foreign_children = parse_ok(META(
                "<vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:1' xmlns:o='urn:other'>"
                "<o:device key='" MDEV "' type='t' basis='rule'/><vfiomig:future/></vfiomig:devices>"));
        g_autoptr(DomainInfo) twice = parse_ok(META(
                "<a:devices xmlns:a='urn:vfiomig:domain:1'/><b:devices xmlns:b='urn:vfiomig:domain:1'/>"));
        g_autoptr(DomainInfo) bad_entry = parse_ok(
                "<domain><name>d</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
                "<metadata><v:devices xmlns:v='urn:vfiomig:domain:1'><v:device key='" MDEV "' type='t' basis='rule' flags='-1'/>"
                "</v:devices></metadata><devices><hostdev type='mdev'><source><address uuid='" MDEV "'/></source></hostdev>"
                "</devices></domain>");
        g_autoptr(DomainInfo) foreign_devices = parse_ok(
                "<domain><name>d</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
                "<devices xmlns='urn:other'><hostdev type='mdev'><source><address uuid='bad'/></source></hostdev></devices>"
                "</domain>");

        g_assert_nonnull(other_prefix->metadata);
        g_assert_cmpuint(other_prefix->metadata->len, ==, 1);
        g_assert_cmpstr(((DomainDeviceMeta *) other_prefix->metadata->pdata[0])->key, ==, MDEV);
        g_assert_nonnull(default_ns->metadata);
        g_assert_cmpuint(default_ns->metadata->len, ==, 1);
        g_assert_nonnull(unprefixed_children->metadata);
        g_assert_cmpuint(unprefixed_children->metadata->len, ==, 1);

        g_assert_null(wrong_uri->metadata);
        g_assert_null(wrong_uri->metadata_error);
        g_assert_nonnull(foreign_children->metadata);
        g_assert_cmpuint(foreign_children->metadata->len, ==, 0);

        g_assert_null(twice->metadata);
        g_assert_cmpstr(twice->metadata_error, ==, "more than one vfiomig metadata element");
        g_assert_null(bad_entry->metadata);
        g_assert_nonnull(bad_entry->metadata_error);
        g_assert_nonnull(strstr(bad_entry->metadata_error, "flags"));
        g_assert_cmpuint(bad_entry->hostdevs->len, ==, 1);

        /* libvirt finds no hostdevs in a foreign namespace either */
        g_assert_cmpuint(foreign_devices->hostdevs->len, ==, 0);
}

/* Touch and read a file: inotify sees every open, so "not read" is a
 * fact, not a guess from the output. */
typedef struct Watched {
        char *path;
        int inotify;
} Watched;

static Watched watch_file(void) {
        Watched w = {};
        int fd;

        fd = g_file_open_tmp("vfiomig-xxe-XXXXXX", &w.path, NULL);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, "SECRET-MARKER", 13), ==, 13);
        close(fd);
        w.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        g_assert_cmpint(w.inotify, >=, 0);
        g_assert_cmpint(inotify_add_watch(w.inotify, w.path, IN_OPEN | IN_ACCESS), >=, 0);
        return w;
}

static bool watched_opened(Watched *w) {
        char buf[4096];

        return read(w->inotify, buf, sizeof(buf)) > 0;
}

static void unwatch_file(Watched *w) {
        close(w->inotify);
        unlink(w->path);
        g_free(w->path);
}

static void assert_refused_unread(const char *xml, Watched *w) {
        g_autofree char *error = NULL, *rewritten = NULL;
        DomainInfo *info = NULL;
        GPtrArray *meta = NULL;

        g_assert_cmpint(domain_xml_parse(xml, strlen(xml), &info, &error), ==, -EBADMSG);
        g_assert_nonnull(strstr(error, "DOCTYPE"));
        g_assert_null(strstr(error, "SECRET"));
        g_clear_pointer(&error, g_free);
        g_assert_cmpint(domain_xml_set_pci_source(xml, strlen(xml), "0000:00:02.0", "0000:00:03.0", &rewritten, &error),
                        ==, -EBADMSG);
        g_clear_pointer(&error, g_free);
        g_assert_cmpint(domain_xml_metadata_parse(xml, strlen(xml), &meta, &error), ==, -EBADMSG);
        g_assert_false(watched_opened(w));
}

/* External entities, an external DTD and parameter entities name a file;
 * none may be opened. The control at the end shows the watch works. */
static void test_external_entity(void) {
        Watched w = watch_file();
        g_autofree char *entity = g_strdup_printf(
                "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file://%s'>]>"
                "<domain><name>&xxe;</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>", w.path);
        g_autofree char *dtd = g_strdup_printf(
                "<!DOCTYPE domain SYSTEM 'file://%s'>"
                "<domain><name>x</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>", w.path);
        g_autofree char *param = g_strdup_printf(
                "<!DOCTYPE domain [<!ENTITY %% p SYSTEM 'file://%s'> %%p;]>"
                "<domain><name>x</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>", w.path);
        g_autofree char *in_attr = g_strdup_printf(
                "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file://%s'>]>"
                "<domain><name>x</name><uuid>11111111-2222-3333-4444-555555555555</uuid><devices>"
                "<hostdev type='pci'><source><address bus='&xxe;' slot='0' function='0'/></source></hostdev>"
                "</devices></domain>", w.path);
        static const char passwd[] =
                "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
                "<domain><name>&xxe;</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>";
        g_autofree char *error = NULL;
        DomainInfo *info = NULL;
        g_autofree char *contents = NULL;

        assert_refused_unread(entity, &w);
        assert_refused_unread(dtd, &w);
        assert_refused_unread(param, &w);
        assert_refused_unread(in_attr, &w);
        g_assert_cmpint(domain_xml_parse(passwd, strlen(passwd), &info, &error), ==, -EBADMSG);
        g_assert_null(strstr(error, "root:"));

        g_assert_true(g_file_get_contents(w.path, &contents, NULL, NULL));
        g_assert_true(watched_opened(&w));
        unwatch_file(&w);
}

/* XInclude is not processed: the element stays an element. */
static void test_xinclude_ignored(void) {
        static const char xml[] =
                "<domain xmlns:xi='http://www.w3.org/2001/XInclude'><name>x</name>"
                "<uuid>11111111-2222-3333-4444-555555555555</uuid><devices>"
                "<hostdev type='pci'><source><address bus='0' slot='2' function='0'/></source></hostdev>"
                "<xi:include href='/etc/passwd' parse='text'/></devices></domain>";
        g_autofree char *out = NULL, *error = NULL;
        g_autoptr(DomainInfo) info = parse_ok(xml);

        g_assert_cmpuint(info->hostdevs->len, ==, 1);
        g_assert_cmpint(domain_xml_set_pci_source(xml, strlen(xml), "0000:00:02.0", "0000:00:03.0", &out, &error), ==, 0);
        g_assert_nonnull(strstr(out, "<xi:include href=\"/etc/passwd\" parse=\"text\"/>"));
        g_assert_null(strstr(out, "root:"));
}

/* A billion laughs: ten levels of ten references. Refused at the
 * DOCTYPE, before a single entity is defined, and at once. */
static void test_entity_expansion(void) {
        g_autoptr(GString) xml = g_string_new("<!DOCTYPE domain [<!ENTITY l0 'ha'>");
        g_autofree char *error = NULL;
        DomainInfo *info = NULL;
        uint64_t start;

        for (int i = 1; i <= 10; i++) {
                g_string_append_printf(xml, "<!ENTITY l%d '", i);
                for (int j = 0; j < 10; j++)
                        g_string_append_printf(xml, "&l%d;", i - 1);
                g_string_append(xml, "'>");
        }
        g_string_append(xml, "]><domain><name>&l10;</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>");

        start = now_usec(CLOCK_MONOTONIC);
        g_assert_cmpint(domain_xml_parse(xml->str, xml->len, &info, &error), ==, -EBADMSG);
        g_assert_cmpuint(now_usec(CLOCK_MONOTONIC) - start, <, USEC_PER_SEC / 10);
        g_assert_nonnull(strstr(error, "DOCTYPE"));
        g_assert_null(info);
}

static char *padded_domain(size_t size) {
        static const char head[] = "<domain><name>big</name><uuid>11111111-2222-3333-4444-555555555555</uuid><!--";
        static const char tail[] = "--></domain>";
        char *xml;

        g_assert_cmpuint(size, >, sizeof(head) + sizeof(tail));
        xml = g_malloc(size + 1);
        memcpy(xml, head, sizeof(head) - 1);
        memset(xml + sizeof(head) - 1, 'x', size - (sizeof(head) - 1) - (sizeof(tail) - 1));
        memcpy(xml + size - (sizeof(tail) - 1), tail, sizeof(tail));
        g_assert_cmpuint(strlen(xml), ==, size);
        return xml;
}

static void test_huge(void) {
        g_autofree char *limit = padded_domain(DOMAIN_XML_MAX);
        g_autofree char *over = padded_domain(DOMAIN_XML_MAX + 1);
        g_autoptr(GString) deep = g_string_new(HEAD);
        g_autoptr(DomainInfo) info = parse_ok(limit);
        g_autofree char *out = NULL, *error = NULL;

        g_assert_cmpstr(info->name, ==, "big");
        parse_fails(over, DOMAIN_XML_MAX + 1, -EFBIG, "more than the 4194304 allowed");
        g_assert_cmpint(domain_xml_set_pci_source(over, DOMAIN_XML_MAX + 1, "0000:00:02.0", "0000:00:03.0", &out, &error),
                        ==, -EFBIG);

        /* nesting: libxml2's depth limit stays on */
        for (int i = 0; i < 100000; i++)
                g_string_append(deep, "<a>");
        parse_fails(deep->str, deep->len, -EBADMSG, "not well-formed");
}

static GPtrArray *sample_metadata(void) {
        GPtrArray *m = domain_metadata_new();

        g_ptr_array_add(m, domain_device_meta_new("0000:65:00.1", "vfio-pci:vfio-pci:0x8086:0x1572:0x8086:0x0000", "",
                                                  "type-match", 1, "", ""));
        g_ptr_array_add(m, domain_device_meta_new("83B8F4F2-509F-382F-3C1E-E6BFE0FA1001", "mtty-2",
                                                  "v1 <&'\"> ~", "vendor", 7, "mtty-2", "mtty"));
        return m;
}

static void assert_format_parse_equal(GPtrArray *entries) {
        g_autofree char *xml = NULL, *error = NULL;
        g_autoptr(GPtrArray) back = NULL;

        g_assert_cmpint(domain_xml_metadata_format(entries, &xml, &error), ==, 0);
        g_assert_cmpint(domain_xml_metadata_parse(xml, strlen(xml), &back, &error), ==, 0);
        g_assert_true(domain_metadata_equal(back, entries));
        g_assert_true(domain_metadata_equal(entries, back));
}

/* Formatted for virDomainSetMetadata: no namespace of its own, sorted,
 * escaped; parsed back it is equal, and equality sees every field. */
static void test_metadata_round_trip(void) {
        g_autoptr(GPtrArray) m = sample_metadata(), reversed = domain_metadata_new(), empty = domain_metadata_new();
        g_autofree char *xml = NULL, *error = NULL;
        size_t len;
        g_autofree char *domain = read_data("domain-hostdevs.xml", &len);
        g_autoptr(DomainInfo) info = parse_ok(domain);
        DomainDeviceMeta *mdev;

        g_assert_cmpint(domain_xml_metadata_format(m, &xml, &error), ==, 0);
        g_assert_cmpstr(xml, ==,
                        "<devices>\n"
                        "  <device key=\"0000:65:00.1\" type=\"vfio-pci:vfio-pci:0x8086:0x1572:0x8086:0x0000\" "
                        "basis=\"type-match\" flags=\"1\"/>\n"
                        "  <device key=\"" MDEV "\" type=\"mtty-2\" version=\"v1 &lt;&amp;'&quot;&gt; ~\" "
                        "basis=\"vendor\" flags=\"7\" mdev-type=\"mtty-2\" parent=\"mtty\"/>\n"
                        "</devices>");
        assert_format_parse_equal(m);

        /* order does not count */
        g_ptr_array_add(reversed, domain_device_meta_new(MDEV, "mtty-2", "v1 <&'\"> ~", "vendor", 7, "mtty-2", "mtty"));
        g_ptr_array_add(reversed, domain_device_meta_new("0000:65:00.1", "vfio-pci:vfio-pci:0x8086:0x1572:0x8086:0x0000",
                                                         "", "type-match", 1, "", ""));
        g_assert_true(domain_metadata_equal(reversed, m));

        /* absent, empty and full all differ */
        g_assert_true(domain_metadata_equal(NULL, NULL));
        g_assert_false(domain_metadata_equal(NULL, empty));
        g_assert_false(domain_metadata_equal(empty, m));
        assert_format_parse_equal(empty);

        /* every field counts */
        for (int field = 0; field < 8; field++) {
                g_autoptr(GPtrArray) changed = sample_metadata();
                DomainDeviceMeta *c = changed->pdata[1];
                char **s[] = { &c->key, &c->migration_type, &c->migration_version, &c->basis, &c->mdev_type, &c->parent,
                               NULL, &c->iommu };

                g_assert_true(domain_metadata_equal(changed, m));
                if (field == 6)
                        c->flags ^= 1;
                else {
                        g_free(*s[field]);
                        *s[field] = g_strdup(field == 0 ? "0000:00:02.0" : field == 3 ? "rule" :
                                             field == 7 ? "none" : "other");
                }
                if (domain_metadata_equal(changed, m))
                        fail("a change of field %d went unnoticed", field);
        }

        /* the data file's element as the domain carries it */
        g_assert_false(domain_metadata_equal(info->metadata, m));
        g_assert_nonnull(info->metadata);
        g_assert_cmpuint(info->metadata->len, ==, 2);
        mdev = info->metadata->pdata[1];
        g_assert_cmpstr(mdev->key, ==, MDEV);
        g_assert_cmpstr(mdev->migration_version, ==, "1");
        g_assert_cmpstr(mdev->parent, ==, "mtty");
        g_assert_cmpuint(mdev->flags, ==, 1);
        assert_format_parse_equal(info->metadata);
}

/* The IOMMU facet travels as an attribute, only when stated: metadata
 * of a vfiomigd that knew no facets reads as stating none. */
static void test_metadata_iommu(void) {
        g_autoptr(GPtrArray) m = domain_metadata_new(), back = NULL;
        g_autofree char *xml = NULL, *error = NULL;
        DomainDeviceMeta *e = domain_device_meta_new("0000:65:00.1", "t", "", "type-match", 1, "", "");

        free_and_strdup(&e->iommu, "width=48 pgsizes=0x40201000 dirty=no");
        g_ptr_array_add(m, e);
        g_assert_cmpint(domain_xml_metadata_format(m, &xml, &error), ==, 0);
        g_assert_nonnull(strstr(xml, " iommu=\"width=48 pgsizes=0x40201000 dirty=no\""));
        g_assert_cmpint(domain_xml_metadata_parse(xml, strlen(xml), &back, &error), ==, 0);
        g_assert_true(domain_metadata_equal(back, m));
        g_assert_cmpstr(((DomainDeviceMeta *) back->pdata[0])->iommu, ==, e->iommu);
}

static void format_refuses(DomainDeviceMeta *bad, const char *needle) {
        g_autoptr(GPtrArray) m = sample_metadata();
        g_autofree char *xml = NULL, *error = NULL;

        g_ptr_array_add(m, bad);
        g_assert_cmpint(domain_xml_metadata_format(m, &xml, &error), ==, -EINVAL);
        g_assert_null(xml);
        if (!strstr(error, needle))
                fail("message '%s' lacks '%s'", error, needle);
}

/* Writing what reading would refuse is refused too. */
static void test_metadata_format_refuses(void) {
        DomainDeviceMeta *upper = domain_device_meta_new(MDEV, "t", "", "rule", 0, "", "");

        format_refuses(domain_device_meta_new("mtty", "t", "", "rule", 0, "", ""), "neither an mdev UUID");
        memcpy(upper->key, "83B8", 4);          /* the constructor normalizes */
        format_refuses(upper, "in lower case");
        format_refuses(domain_device_meta_new("0000:00:02.0", "", "", "rule", 0, "", ""), "migration type");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t\n", "", "rule", 0, "", ""), "migration type");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t", "v\x01", "rule", 0, "", ""), "migration version");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t", "", "Vendor X", 0, "", ""), "basis");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t", "", "", 0, "", ""), "basis");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t", "", "rule", 0, "../x", ""), "mdev type");
        format_refuses(domain_device_meta_new("0000:00:02.0", "t", "", "rule", 0, "", "a/b"), "parent");
        format_refuses(domain_device_meta_new("0000:65:00.1", "t", "", "rule", 0, "", ""), "listed twice");
}

static void test_metadata_parse_errors(void) {
        static const struct {
                const char *xml, *needle;
        } cases[] = {
                { "<domain/>", "not a <devices>" },
                { "<devices xmlns='urn:other'/>", "in another namespace" },
                { "<devices><device type='t' basis='rule'/></devices>", "lacks key" },
                { "<devices><device key='0000:00:02.0' basis='rule'/></devices>", "lacks key, type or basis" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' flags='-1'/></devices>", "flags" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' flags='4294967296'/></devices>", "flags" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' flags='0x1'/></devices>", "flags" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule'/>"
                  "<device key='0000:00:02.0' type='u' basis='rule'/></devices>", "listed twice" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' parent='..'/></devices>", "parent" },
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' iommu='width=99'/></devices>", "iommu" },
                /* one spelling: equal metadata must compare equal */
                { "<devices><device key='0000:00:02.0' type='t' basis='rule' iommu='dirty=no width=48'/></devices>",
                  "canonical" },
        };
        g_autoptr(GPtrArray) ok = NULL;
        g_autofree char *error = NULL;
        static const char max_flags[] = "<devices><device key='0000:00:02.0' type='t' basis='rule' flags='4294967295'/></devices>";

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *e = NULL;
                GPtrArray *m = NULL;

                g_assert_cmpint(domain_xml_metadata_parse(cases[i].xml, strlen(cases[i].xml), &m, &e), ==, -EBADMSG);
                g_assert_null(m);
                if (!strstr(e, cases[i].needle))
                        fail("message '%s' lacks '%s'", e, cases[i].needle);
        }
        g_assert_cmpint(domain_xml_metadata_parse(max_flags, strlen(max_flags), &ok, &error), ==, 0);
        g_assert_cmpuint(((DomainDeviceMeta *) ok->pdata[0])->flags, ==, UINT32_MAX);
}

/* Canonical XML (C14N, comments kept): equal documents, whatever their
 * quoting and attribute order. */
static char *canonical(const char *xml) {
        xmlDoc *doc = xmlReadMemory(xml, strlen(xml), NULL, NULL, XML_PARSE_NONET);
        xmlChar *out = NULL;
        char *s;

        g_assert_nonnull(doc);
        g_assert_cmpint(xmlC14NDocDumpMemory(doc, NULL, XML_C14N_1_0, NULL, 1, &out), >=, 0);
        s = g_strdup((const char *) out);
        xmlFree(out);
        xmlFreeDoc(doc);
        return s;
}

static char *replace_once(const char *s, const char *old, const char *new) {
        const char *p = strstr(s, old);

        g_assert_nonnull(p);
        g_assert_null(strstr(p + 1, old));
        return g_strdup_printf("%.*s%s%s", (int) (p - s), s, new, p + strlen(old));
}

/* The PCI hostdev's <source><address> changes and nothing else: not the
 * guest-side address with the same numbers, not the disk's, not the
 * comments, the other namespaces or the text outside ASCII. */
static void test_pci_rewrite(void) {
        static const char old_source[] =
                "<source>\n        <address domain='0x0000' bus='0x65' slot='0x00' function='0x1'/>";
        static const char new_source[] =
                "<source>\n        <address domain='0x0000' bus='0x66' slot='0x01' function='0x2'/>";
        size_t len;
        g_autofree char *xml = read_data("domain-hostdevs.xml", &len);
        g_autofree char *out = NULL, *error = NULL, *expected = NULL, *got = NULL, *want = NULL, *before = NULL;
        g_autoptr(DomainInfo) info = NULL;

        g_assert_cmpint(domain_xml_set_pci_source(xml, len, "0000:65:00.1", "0000:66:01.2", &out, &error), ==, 0);
        g_assert_null(error);
        expected = replace_once(xml, old_source, new_source);
        got = canonical(out);
        want = canonical(expected);
        g_assert_cmpstr(got, ==, want);
        before = canonical(xml);
        g_assert_cmpstr(before, !=, want);
        g_assert_null(strstr(out, "<?xml"));            /* there was none */
        g_assert_nonnull(strstr(out, "guest-\xc3\xa4"));        /* no &#xE4; */

        info = parse_ok(out);
        g_assert_cmpuint(info->hostdevs->len, ==, 4);
        assert_hostdev(info, 0, DEVICE_KIND_MDEV, MDEV, "vfio-pci");
        assert_hostdev(info, 1, DEVICE_KIND_PCI, "0000:66:01.2", "");
        assert_hostdev(info, 2, DEVICE_KIND_PCI, "0000:65:08.7", "");
        g_assert_cmpuint(info->metadata->len, ==, 2);
}

static void test_pci_rewrite_declaration(void) {
        size_t len;
        g_autofree char *xml = read_data("domain-xml-declaration.xml", &len);
        g_autofree char *out = NULL, *error = NULL, *want = NULL, *c_out = NULL, *c_want = NULL;

        /* upper case in, the kernel's spelling out; the comment before the
         * root stays where it was */
        g_assert_cmpint(domain_xml_set_pci_source(xml, len, "0000:3B:00.0", "0000:3C:00.0", &out, &error), ==, 0);
        g_assert_true(g_str_has_prefix(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- what a hook"));
        want = replace_once(xml, "bus='0x3b'", "bus='0x3c'");
        c_out = canonical(out);
        c_want = canonical(want);
        g_assert_cmpstr(c_out, ==, c_want);
}

static void test_pci_rewrite_errors(void) {
        size_t len;
        g_autofree char *xml = read_data("domain-hostdevs.xml", &len);
        static const struct {
                const char *old, *new;
                int r;
                const char *needle;
        } cases[] = {
                { "0000:00:02.0", "0000:66:01.2", -ENOENT, "no PCI hostdev 0000:00:02.0" },
                { MDEV, "0000:66:01.2", -EINVAL, "not a PCI address" },
                { "0000:65:00.1", MDEV, -EINVAL, "not a PCI address" },
                { "0000:65:00.1", "0000:65:08.7", -EEXIST, "already assigned" },
                { "0000:65:00.1", "../../x", -EINVAL, "not a PCI address" },
                { "0000:06:00.0", "0000:66:01.2", -ENOENT, "no PCI hostdev" },     /* only a guest address */
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *out = NULL, *error = NULL;
                int r = domain_xml_set_pci_source(xml, len, cases[i].old, cases[i].new, &out, &error);

                if (r != cases[i].r || !error || !strstr(error, cases[i].needle))
                        fail("%s -> %s: %d (%s)", cases[i].old, cases[i].new, r, error ?: "no message");
                g_assert_null(out);
        }
}

/* A namespace URI libxml2 would write back unescaped (found by the
 * fuzzer): the document still parses, but no rewrite may return XML
 * that is not well-formed or has another namespace. */
static void test_pci_rewrite_unwritable_namespace(void) {
        static const char *const uris[] = { "urn:a&lt;b", "urn:a?x=1&amp;y=2", "urn:a&#10;b", "urn:a&#9;b" };

        for (size_t i = 0; i < G_N_ELEMENTS(uris); i++) {
                g_autofree char *xml = g_strdup_printf(
                        HEAD "<hostdev type='pci'><source><address bus='0' slot='2' function='0'/></source></hostdev>"
                        "</devices><metadata><o:x xmlns:o='%s'/></metadata><devices>" TAIL, uris[i]);
                g_autofree char *out = NULL, *error = NULL;
                g_autoptr(DomainInfo) info = parse_ok(xml);

                g_assert_cmpuint(info->hostdevs->len, ==, 1);
                g_assert_cmpint(domain_xml_set_pci_source(xml, strlen(xml), "0000:00:02.0", "0000:00:03.0", &out, &error),
                                ==, -EBADMSG);
                g_assert_null(out);
                g_assert_nonnull(strstr(error, "namespace URI"));
        }
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/domain-xml/hostdevs", test_hostdevs);
        g_test_add_func("/domain-xml/no-hostdevs", test_no_hostdevs);
        g_test_add_func("/domain-xml/missing-elements", test_missing_elements);
        g_test_add_func("/domain-xml/bad-uuid", test_bad_uuid);
        g_test_add_func("/domain-xml/not-xml", test_not_xml);
        g_test_add_func("/domain-xml/odd-namespaces", test_odd_namespaces);
        g_test_add_func("/domain-xml/external-entity", test_external_entity);
        g_test_add_func("/domain-xml/xinclude-ignored", test_xinclude_ignored);
        g_test_add_func("/domain-xml/entity-expansion", test_entity_expansion);
        g_test_add_func("/domain-xml/huge", test_huge);
        g_test_add_func("/domain-xml/metadata-round-trip", test_metadata_round_trip);
        g_test_add_func("/domain-xml/metadata-iommu", test_metadata_iommu);
        g_test_add_func("/domain-xml/metadata-format-refuses", test_metadata_format_refuses);
        g_test_add_func("/domain-xml/metadata-parse-errors", test_metadata_parse_errors);
        g_test_add_func("/domain-xml/pci-rewrite", test_pci_rewrite);
        g_test_add_func("/domain-xml/pci-rewrite-declaration", test_pci_rewrite_declaration);
        g_test_add_func("/domain-xml/pci-rewrite-errors", test_pci_rewrite_errors);
        g_test_add_func("/domain-xml/pci-rewrite-unwritable-namespace", test_pci_rewrite_unwritable_namespace);
        return g_test_run();
}
