/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "compat/compat.h"
#include "iommu-facet.h"
#include "libvirt/domain-xml.h"
#include "libvirt/xml-api.h"
#include "names.h"
#include "util.h"

/* libxml2, once an entry point has loaded it (xml_ready()): every call
 * into the library goes through this table. */
static const XmlApi *libxml(void) {
        return xml_api(NULL);
}

static int xml_ready(char **error) {
        g_autofree char *why = NULL;

        if (xml_api(&why))
                return 0;
        return errno_message(error, ELIBACC, "%s", why);
}

static void doc_free(xmlDoc *doc) {
        libxml()->FreeDoc(doc);
}

static void parser_free(xmlParserCtxt *ctxt) {
        libxml()->FreeParserCtxt(ctxt);
}

static void xpath_context_free(xmlXPathContext *xp) {
        libxml()->XPathFreeContext(xp);
}

static void xpath_object_free(xmlXPathObject *o) {
        libxml()->XPathFreeObject(o);
}

static void buffer_free(xmlBuffer *buf) {
        libxml()->BufferFree(buf);
}

static void xml_free(void *p) {
        (*libxml()->Free)(p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, doc_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlParserCtxt, parser_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathContext, xpath_context_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathObject, xpath_object_free);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlBuffer, buffer_free);

#define BASIS_WORD_MAX 32

/* A hostdev is an mdev or a PCI function: a vDPA device is no hostdev. */
static char *normalize_hostdev_key(const char *key) {
        return name_is_uuid(key) || name_is_pci_address(key) ? name_normalize_device(key) : NULL;
}

DomainDeviceMeta *domain_device_meta_new(const char *key, const char *migration_type,
                                         const char *migration_version, const char *basis,
                                         uint32_t flags, const char *mdev_type, const char *parent) {
        DomainDeviceMeta *m = g_new0(DomainDeviceMeta, 1);

        /* keys compare as the kernel spells them */
        m->key = normalize_hostdev_key(key) ?: g_strdup(key ?: "");
        m->migration_type = g_strdup(migration_type ?: "");
        m->migration_version = g_strdup(migration_version ?: "");
        m->basis = g_strdup(basis ?: "");
        m->flags = flags;
        m->mdev_type = g_strdup(mdev_type ?: "");
        m->parent = g_strdup(parent ?: "");
        m->iommu = g_strdup("");
        return m;
}

void domain_device_meta_free(DomainDeviceMeta *m) {
        if (!m)
                return;
        g_free(m->key);
        g_free(m->migration_type);
        g_free(m->migration_version);
        g_free(m->basis);
        g_free(m->mdev_type);
        g_free(m->parent);
        g_free(m->iommu);
        g_free(m);
}

GPtrArray *domain_metadata_new(void) {
        return g_ptr_array_new_with_free_func((GDestroyNotify) domain_device_meta_free);
}

static void domain_hostdev_free(DomainHostdev *h) {
        if (!h)
                return;
        g_free(h->key);
        g_free(h->model);
        g_free(h);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainHostdev, domain_hostdev_free);

void domain_info_free(DomainInfo *info) {
        if (!info)
                return;
        g_free(info->name);
        g_free(info->uuid);
        if (info->hostdevs)
                g_ptr_array_unref(info->hostdevs);
        if (info->metadata)
                g_ptr_array_unref(info->metadata);
        g_free(info->metadata_error);
        g_free(info);
}

/* Reading */

typedef struct ParseState {
        char *error;            /* libxml2's first complaint */
        bool doctype;
} ParseState;

static void on_xml_error(void *userdata, xmlErrorPtr e) {
        ParseState *st = userdata;

        if (st->error || !e || !e->message)
                return;
        st->error = g_strdup_printf("line %d: %s", e->line, e->message);
        g_strchomp(st->error);
}

/* Called at "<!DOCTYPE name ...", before any declaration inside it is
 * read: stopping here is what keeps entity definitions (and with them
 * expansion bombs and external entities) out, whatever libxml2's own
 * limits are. */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id, const xmlChar *system_id) {
        xmlParserCtxt *ctxt = ctx;
        ParseState *st = ctxt->_private;

        st->doctype = true;
        libxml()->StopParser(ctxt);
}

static int xml_read(const char *xml, size_t len, xmlDoc **ret, char **error) {
        g_autoptr(xmlParserCtxt) ctxt = NULL;
        g_autoptr(xmlDoc) doc = NULL;
        xmlStructuredErrorFunc saved_handler;
        void *saved_context;
        ParseState st = {};
        int r;

        r = xml_ready(error);
        if (r < 0)
                return r;
        if (len == 0)
                return errno_message(error, EBADMSG, "empty document");
        if (len > DOMAIN_XML_MAX)
                return errno_message(error, EFBIG, "document of %zu bytes, more than the %u allowed",
                                     len, DOMAIN_XML_MAX);
        ctxt = libxml()->CreateMemoryParserCtxt(xml, (int) len);
        if (!ctxt)
                return errno_message(error, ENOMEM, "cannot create an XML parser");
        /* no NOENT, DTDLOAD, DTDATTR, XINCLUDE or HUGE: nothing is
         * substituted or loaded, and libxml2's size limits stay on */
        (void) libxml()->CtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        ctxt->sax->internalSubset = on_doctype;
        ctxt->_private = &st;

        /* Thread-local in libxml2: catches what the parser reports
         * outside its context too, and nothing reaches stderr. */
        saved_handler = *libxml()->StructuredError();
        saved_context = *libxml()->StructuredErrorContext();
        libxml()->SetStructuredErrorFunc(&st, on_xml_error);
        (void) libxml()->ParseDocument(ctxt);
        libxml()->SetStructuredErrorFunc(saved_context, saved_handler);

        doc = g_steal_pointer(&ctxt->myDoc);
        if (st.doctype)
                r = errno_message(error, EBADMSG, "a DOCTYPE is not allowed in domain XML");
        else if (!ctxt->wellFormed || !doc || !libxml()->DocGetRootElement(doc))
                r = errno_message(error, EBADMSG, "not well-formed XML: %s", st.error ?: "no document");
        g_free(st.error);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&doc);
        return 0;
}

/* An attribute without a namespace, as libvirt writes them all. */
static char *prop(xmlNode *n, const char *name) {
        xmlChar *v = libxml()->GetNoNsProp(n, (const xmlChar *) name);
        char *s;

        if (!v)
                return NULL;
        s = g_strdup((const char *) v);
        xml_free(v);
        return s;
}

static bool is_element(xmlNode *n, const char *name, const char *ns_uri) {
        if (n->type != XML_ELEMENT_NODE || !g_str_equal((const char *) n->name, name))
                return false;
        if (!ns_uri)
                return !n->ns;
        return n->ns && n->ns->href && g_str_equal((const char *) n->ns->href, ns_uri);
}

static xmlNode *root_element(xmlDoc *doc, const char *name, const char *ns_uri, char **error) {
        xmlNode *root = libxml()->DocGetRootElement(doc);

        if (is_element(root, name, ns_uri) || (ns_uri && is_element(root, name, NULL)))
                return root;
        errno_message(error, EBADMSG, "the document is not a <%s> (its root is <%s>%s)", name,
                      (const char *) root->name, root->ns ? " in another namespace" : "");
        return NULL;
}

/* Nodes matching expr, relative to node; NULL only on an error of ours
 * or no memory. */
static xmlXPathObject *xpath(xmlXPathContext *xp, xmlNode *node, const char *expr) {
        xp->node = node;
        return libxml()->XPathEvalExpression((const xmlChar *) expr, xp);
}

static unsigned xpath_count(const xmlXPathObject *o) {
        return o && o->type == XPATH_NODESET && o->nodesetval ? (unsigned) o->nodesetval->nodeNr : 0;
}

static xmlNode *xpath_first(xmlXPathContext *xp, xmlNode *node, const char *expr) {
        g_autoptr(xmlXPathObject) o = xpath(xp, node, expr);

        return xpath_count(o) > 0 ? o->nodesetval->nodeTab[0] : NULL;
}

static char *xpath_text(xmlXPathContext *xp, xmlNode *node, const char *expr) {
        xmlNode *n = xpath_first(xp, node, expr);
        xmlChar *v;
        char *s;

        if (!n)
                return NULL;
        v = libxml()->NodeGetContent(n);
        s = g_strdup(v ? (const char *) v : "");
        xml_free(v);
        return s;
}

/* A number the way libvirt reads PCI address attributes (strtoul with
 * base 0: 0x hex, 0 octal, else decimal), but no sign or spaces. */
static int parse_pci_field(xmlNode *addr, const char *attr, unsigned max, bool optional, unsigned *ret,
                           unsigned index, char **error) {
        g_autofree char *s = prop(addr, attr);
        g_autofree char *q = NULL;
        guint64 v = 0;
        char *end = NULL;

        if (!s) {
                if (optional) {
                        *ret = 0;
                        return 0;
                }
                return errno_message(error, EBADMSG, "hostdev %u: PCI source address has no %s", index, attr);
        }
        if (g_ascii_isdigit(s[0])) {
                errno = 0;
                v = g_ascii_strtoull(s, &end, 0);
        }
        if (!end || *end || errno != 0 || v > max) {
                q = name_quote(s);
                return errno_message(error, EBADMSG, "hostdev %u: PCI source address %s %s is not a number up to 0x%x",
                                     index, attr, q, max);
        }
        *ret = (unsigned) v;
        return 0;
}

static int parse_pci_address(xmlNode *addr, unsigned index, char **ret, char **error) {
        unsigned domain, bus, slot, function;
        int r;

        r = parse_pci_field(addr, "domain", UINT32_MAX, true, &domain, index, error);
        if (r >= 0)
                r = parse_pci_field(addr, "bus", 0xff, false, &bus, index, error);
        if (r >= 0)
                r = parse_pci_field(addr, "slot", 0x1f, false, &slot, index, error);
        if (r >= 0)
                r = parse_pci_field(addr, "function", 7, false, &function, index, error);
        if (r < 0)
                return r;
        *ret = g_strdup_printf("%04x:%02x:%02x.%x", domain, bus, slot, function);
        return 0;
}

/* libvirt reads a UUID with or without its dashes and writes it with
 * them, as names.c expects it; NULL if it is neither. */
static char *uuid_normalize(const char *s) {
        char buf[37];

        if (name_is_uuid(s))
                return g_ascii_strdown(s, -1);
        if (strlen(s) != 32)
                return NULL;
        for (size_t i = 0; i < 32; i++)
                if (!g_ascii_isxdigit(s[i]))
                        return NULL;
        snprintf(buf, sizeof(buf), "%.8s-%.4s-%.4s-%.4s-%.12s", s, s + 8, s + 12, s + 16, s + 20);
        return g_ascii_strdown(buf, -1);
}

static int parse_mdev_address(xmlNode *addr, unsigned index, char **ret, char **error) {
        g_autofree char *uuid = prop(addr, "uuid");
        g_autofree char *q = NULL;

        if (!uuid)
                return errno_message(error, EBADMSG, "hostdev %u: mdev source address has no uuid", index);
        *ret = uuid_normalize(uuid);
        if (!*ret) {
                q = name_quote(uuid);
                return errno_message(error, EBADMSG, "hostdev %u: mdev uuid %s is not a UUID", index, q);
        }
        return 0;
}

/* The index (from 1) names the hostdev in messages. *ret stays NULL for
 * a hostdev that is neither an mdev nor a PCI function. */
static int parse_hostdev(xmlXPathContext *xp, xmlNode *n, unsigned index, DomainHostdev **ret,
                         xmlNode **ret_addr, char **error) {
        g_autofree char *mode = prop(n, "mode"), *type = prop(n, "type");
        g_autoptr(DomainHostdev) h = NULL;
        xmlNode *addr;
        int r;

        *ret = NULL;
        /* libvirt's default mode is subsystem */
        if (mode && !g_str_equal(mode, "subsystem"))
                return 0;
        if (!type || (!g_str_equal(type, "mdev") && !g_str_equal(type, "pci")))
                return 0;

        h = g_new0(DomainHostdev, 1);
        h->kind = g_str_equal(type, "mdev") ? DEVICE_KIND_MDEV : DEVICE_KIND_PCI;
        addr = xpath_first(xp, n, "source/address");
        if (!addr)
                return errno_message(error, EBADMSG, "hostdev %u (type %s) has no <source><address>", index, type);
        if (h->kind == DEVICE_KIND_MDEV) {
                r = parse_mdev_address(addr, index, &h->key, error);
                h->model = prop(n, "model");
        } else
                r = parse_pci_address(addr, index, &h->key, error);
        if (r < 0)
                return r;
        if (!h->model)
                h->model = g_strdup("");
        if (ret_addr)
                *ret_addr = addr;
        *ret = g_steal_pointer(&h);
        return 0;
}

static int parse_hostdevs(xmlXPathContext *xp, xmlNode *root, GPtrArray **ret, GPtrArray **ret_addrs,
                          char **error) {
        g_autoptr(xmlXPathObject) o = xpath(xp, root, "devices/hostdev");
        g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func((GDestroyNotify) domain_hostdev_free);
        g_autoptr(GPtrArray) addrs = g_ptr_array_new();

        if (!o)
                return errno_message(error, ENOMEM, "cannot evaluate XPath");
        for (unsigned i = 0; i < xpath_count(o); i++) {
                DomainHostdev *h;
                xmlNode *addr = NULL;
                int r;

                r = parse_hostdev(xp, o->nodesetval->nodeTab[i], i + 1, &h, &addr, error);
                if (r < 0)
                        return r;
                if (!h)
                        continue;
                g_ptr_array_add(list, h);
                g_ptr_array_add(addrs, addr);
        }
        *ret = g_steal_pointer(&list);
        if (ret_addrs)
                *ret_addrs = g_steal_pointer(&addrs);
        return 0;
}

static bool is_basis_word(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > BASIS_WORD_MAX || !g_ascii_islower(s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_islower(s[i]) && !g_ascii_isdigit(s[i]) && s[i] != '-')
                        return false;
        return true;
}

/* What parsing accepts is exactly what formatting writes. */
static int meta_check(const DomainDeviceMeta *m, char **error) {
        g_autofree char *q = name_quote(m->key), *key = normalize_hostdev_key(m->key), *facet = NULL;

        if (!key || !g_str_equal(key, m->key))
                return errno_message(error, EBADMSG, "device key %s is neither an mdev UUID nor a PCI address in lower case", q);
        if (!vendor_string_valid(m->migration_type))
                return errno_message(error, EBADMSG, "device %s: migration type is not 1 to %d printable ASCII characters",
                                     q, VENDOR_VERSION_MAX);
        if (*m->migration_version && !vendor_string_valid(m->migration_version))
                return errno_message(error, EBADMSG, "device %s: migration version is not up to %d printable ASCII characters",
                                     q, VENDOR_VERSION_MAX);
        if (!is_basis_word(m->basis))
                return errno_message(error, EBADMSG, "device %s: basis is not a lower-case word", q);
        if (*m->mdev_type && !name_is_sysfs_component(m->mdev_type))
                return errno_message(error, EBADMSG, "device %s: mdev type is not a sysfs name", q);
        if (*m->parent && !name_is_sysfs_component(m->parent))
                return errno_message(error, EBADMSG, "device %s: parent is not a sysfs name", q);
        /* one spelling, so that equal metadata compares equal */
        if (iommu_facet_canonicalize(m->iommu, &facet, NULL) < 0 || !g_str_equal(facet, m->iommu))
                return errno_message(error, EBADMSG, "device %s: iommu is not an IOMMU facet in its canonical form",
                                     q);
        return 0;
}

static int parse_meta_entry(xmlNode *n, DomainDeviceMeta **ret, char **error) {
        g_autofree char *key = prop(n, "key"), *type = prop(n, "type"), *version = prop(n, "version");
        g_autofree char *basis = prop(n, "basis"), *flags = prop(n, "flags");
        g_autofree char *mdev_type = prop(n, "mdev-type"), *parent = prop(n, "parent"), *iommu = prop(n, "iommu");
        g_autoptr(DomainDeviceMeta) m = NULL;
        guint64 f = 0;
        int r;

        if (!key || !type || !basis)
                return errno_message(error, EBADMSG, "a <device> lacks key, type or basis");
        if (flags && !g_ascii_string_to_unsigned(flags, 10, 0, UINT32_MAX, &f, NULL))
                return errno_message(error, EBADMSG, "device %s: flags are not an unsigned 32-bit number",
                                     key);
        m = domain_device_meta_new(key, type, version, basis, (uint32_t) f, mdev_type, parent);
        if (iommu)
                free_and_strdup(&m->iommu, iommu);
        r = meta_check(m, error);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&m);
        return 0;
}

static int meta_compare(gconstpointer a, gconstpointer b) {
        const DomainDeviceMeta *x = *(DomainDeviceMeta *const *) a, *y = *(DomainDeviceMeta *const *) b;

        return strcmp(x->key, y->key);
}

/* The <device> children in our namespace or in none: libvirt hands the
 * element back without one, and in the domain XML each child carries
 * our prefix. Other elements are a later version's and skipped. */
static int parse_meta_element(xmlNode *devices, GPtrArray **ret, char **error) {
        g_autoptr(GPtrArray) list = domain_metadata_new();

        for (xmlNode *c = devices->children; c; c = c->next) {
                DomainDeviceMeta *m = NULL;
                int r;

                if (!is_element(c, "device", DOMAIN_XML_NS_URI) && !is_element(c, "device", NULL))
                        continue;
                r = parse_meta_entry(c, &m, error);
                if (r < 0)
                        return r;
                g_ptr_array_add(list, m);
        }
        g_ptr_array_sort(list, meta_compare);
        for (unsigned i = 1; i < list->len; i++)
                if (meta_compare(&list->pdata[i - 1], &list->pdata[i]) == 0)
                        return errno_message(error, EBADMSG, "device %s is listed twice",
                                             ((DomainDeviceMeta *) list->pdata[i])->key);
        *ret = g_steal_pointer(&list);
        return 0;
}

static void parse_domain_metadata(xmlXPathContext *xp, xmlNode *root, DomainInfo *info) {
        g_autoptr(xmlXPathObject) o = xpath(xp, root, "metadata/" DOMAIN_XML_NS_KEY ":devices");
        g_autofree char *error = NULL;

        if (xpath_count(o) == 0)
                return;
        if (xpath_count(o) > 1) {
                info->metadata_error = g_strdup("more than one vfiomig metadata element");
                return;
        }
        if (parse_meta_element(o->nodesetval->nodeTab[0], &info->metadata, &error) < 0)
                info->metadata_error = g_steal_pointer(&error);
}

static xmlXPathContext *xpath_new(xmlDoc *doc) {
        xmlXPathContext *xp = libxml()->XPathNewContext(doc);

        /* the prefix in our expressions, whatever the document calls it */
        if (xp && libxml()->XPathRegisterNs(xp, (const xmlChar *) DOMAIN_XML_NS_KEY,
                                     (const xmlChar *) DOMAIN_XML_NS_URI) < 0)
                g_clear_pointer(&xp, xpath_context_free);
        return xp;
}

static int parse_identity(xmlXPathContext *xp, xmlNode *root, DomainInfo *info, char **error) {
        g_autofree char *uuid = NULL, *q = NULL;

        info->name = xpath_text(xp, root, "name");
        if (!info->name || !*info->name)
                return errno_message(error, EBADMSG, "the domain has no <name>");
        uuid = xpath_text(xp, root, "uuid");
        if (!uuid)
                return errno_message(error, EBADMSG, "the domain has no <uuid>");
        info->uuid = uuid_normalize(g_strstrip(uuid));
        if (!info->uuid) {
                q = name_quote(uuid);
                return errno_message(error, EBADMSG, "the domain's uuid %s is not a UUID", q);
        }
        return 0;
}

int domain_xml_parse(const char *xml, size_t len, DomainInfo **ret, char **error) {
        g_autoptr(xmlDoc) doc = NULL;
        g_autoptr(xmlXPathContext) xp = NULL;
        g_autoptr(DomainInfo) info = NULL;
        xmlNode *root;
        int r;

        r = xml_read(xml, len, &doc, error);
        if (r < 0)
                return r;
        root = root_element(doc, "domain", NULL, error);
        if (!root)
                return -EBADMSG;
        xp = xpath_new(doc);
        if (!xp)
                return errno_message(error, ENOMEM, "cannot create an XPath context");

        info = g_new0(DomainInfo, 1);
        r = parse_identity(xp, root, info, error);
        if (r >= 0)
                r = parse_hostdevs(xp, root, &info->hostdevs, NULL, error);
        if (r < 0)
                return r;
        parse_domain_metadata(xp, root, info);
        *ret = g_steal_pointer(&info);
        return 0;
}

int domain_xml_metadata_parse(const char *xml, size_t len, GPtrArray **ret, char **error) {
        g_autoptr(xmlDoc) doc = NULL;
        xmlNode *root;
        int r;

        r = xml_read(xml, len, &doc, error);
        if (r < 0)
                return r;
        root = root_element(doc, "devices", DOMAIN_XML_NS_URI, error);
        if (!root)
                return -EBADMSG;
        return parse_meta_element(root, ret, error);
}

/* Writing */

static int xml_write(xmlDoc *doc, bool declaration, char **ret, char **error) {
        g_autoptr(xmlBuffer) buf = libxml()->BufferCreate();
        xmlSaveCtxt *save;
        long r;

        if (!buf)
                return errno_message(error, ENOMEM, "cannot allocate an XML buffer");
        /* UTF-8, so that text outside ASCII stays as it was rather than
         * turning into character references */
        save = libxml()->SaveToBuffer(buf, "UTF-8", declaration ? 0 : XML_SAVE_NO_DECL);
        if (!save)
                return errno_message(error, ENOMEM, "cannot serialize XML");
        r = libxml()->SaveDoc(save, doc);
        if (libxml()->SaveClose(save) < 0 || r < 0)
                return errno_message(error, EIO, "cannot serialize XML");
        *ret = g_strndup((const char *) libxml()->BufferContent(buf), libxml()->BufferLength(buf));
        return 0;
}

static void add_prop(xmlNode *n, const char *name, const char *value) {
        if (*value)
                libxml()->NewProp(n, (const xmlChar *) name, (const xmlChar *) value);
}

int domain_xml_metadata_format(const GPtrArray *entries, char **ret, char **error) {
        g_autoptr(GPtrArray) sorted = g_ptr_array_new();
        g_autoptr(xmlDoc) doc = NULL;
        g_autoptr(xmlBuffer) buf = NULL;
        xmlNode *root;
        int r;

        r = xml_ready(error);
        if (r < 0)
                return r;
        doc = libxml()->NewDoc((const xmlChar *) "1.0");
        buf = libxml()->BufferCreate();
        if (!doc || !buf)
                return errno_message(error, ENOMEM, "cannot build XML");
        for (unsigned i = 0; i < entries->len; i++) {
                r = meta_check(entries->pdata[i], error);
                if (r < 0)
                        return -EINVAL;
                g_ptr_array_add(sorted, entries->pdata[i]);
        }
        g_ptr_array_sort(sorted, meta_compare);

        root = libxml()->NewDocNode(doc, NULL, (const xmlChar *) "devices", NULL);
        libxml()->DocSetRootElement(doc, root);
        for (unsigned i = 0; i < sorted->len; i++) {
                const DomainDeviceMeta *m = sorted->pdata[i];
                g_autofree char *flags = g_strdup_printf("%" PRIu32, m->flags);
                xmlNode *n;

                if (i > 0 && meta_compare(&sorted->pdata[i - 1], &sorted->pdata[i]) == 0)
                        return errno_message(error, EINVAL, "device %s is listed twice", m->key);
                n = libxml()->NewChild(root, NULL, (const xmlChar *) "device", NULL);
                add_prop(n, "key", m->key);
                add_prop(n, "type", m->migration_type);
                add_prop(n, "version", m->migration_version);
                add_prop(n, "basis", m->basis);
                add_prop(n, "flags", flags);
                add_prop(n, "mdev-type", m->mdev_type);
                add_prop(n, "parent", m->parent);
                if (*m->iommu)
                        add_prop(n, "iommu", m->iommu);
        }
        if (libxml()->NodeDump(buf, doc, root, 0, 1) < 0)
                return errno_message(error, ENOMEM, "cannot serialize XML");
        *ret = g_strndup((const char *) libxml()->BufferContent(buf), libxml()->BufferLength(buf));
        return 0;
}

static bool meta_equal(const DomainDeviceMeta *a, const DomainDeviceMeta *b) {
        return g_str_equal(a->key, b->key) &&
               g_str_equal(a->migration_type, b->migration_type) &&
               g_str_equal(a->migration_version, b->migration_version) &&
               g_str_equal(a->basis, b->basis) &&
               a->flags == b->flags &&
               g_str_equal(a->mdev_type, b->mdev_type) &&
               g_str_equal(a->parent, b->parent) &&
               g_str_equal(a->iommu, b->iommu);
}

static GPtrArray *sorted_copy(const GPtrArray *list) {
        GPtrArray *s = g_ptr_array_sized_new(list->len);

        for (unsigned i = 0; i < list->len; i++)
                g_ptr_array_add(s, list->pdata[i]);
        g_ptr_array_sort(s, meta_compare);
        return s;
}

bool domain_metadata_equal(const GPtrArray *current, const GPtrArray *wanted) {
        g_autoptr(GPtrArray) a = NULL, b = NULL;

        if (!current || !wanted)
                return current == wanted;
        if (current->len != wanted->len)
                return false;
        a = sorted_copy(current);
        b = sorted_copy(wanted);
        for (unsigned i = 0; i < a->len; i++)
                if (!meta_equal(a->pdata[i], b->pdata[i]))
                        return false;
        return true;
}

/* The XML declaration, if any, opens the document (after a byte order
 * mark); the serializer is told to write one only if there was one. */
static bool has_declaration(const char *xml, size_t len) {
        if (len >= 3 && memcmp(xml, "\xef\xbb\xbf", 3) == 0) {
                xml += 3;
                len -= 3;
        }
        return len > 5 && memcmp(xml, "<?xml", 5) == 0 && g_ascii_isspace(xml[5]);
}

static void set_pci_address(xmlNode *addr, const char *pci) {
        unsigned domain, bus, slot, function;
        char v[16];

        /* name_is_pci_address() checked the shape */
        if (sscanf(pci, "%x:%x:%x.%x", &domain, &bus, &slot, &function) != 4)
                g_assert_not_reached();
        /* libvirt's own spelling */
        snprintf(v, sizeof(v), "0x%04x", domain);
        libxml()->SetProp(addr, (const xmlChar *) "domain", (const xmlChar *) v);
        snprintf(v, sizeof(v), "0x%02x", bus);
        libxml()->SetProp(addr, (const xmlChar *) "bus", (const xmlChar *) v);
        snprintf(v, sizeof(v), "0x%02x", slot);
        libxml()->SetProp(addr, (const xmlChar *) "slot", (const xmlChar *) v);
        snprintf(v, sizeof(v), "0x%x", function);
        libxml()->SetProp(addr, (const xmlChar *) "function", (const xmlChar *) v);
}

/* The one PCI hostdev at old, when new is nobody's. */
static int find_pci_source(GPtrArray *hostdevs, GPtrArray *addrs, const char *old, const char *new,
                           xmlNode **ret, char **error) {
        xmlNode *found = NULL;

        for (unsigned i = 0; i < hostdevs->len; i++) {
                const DomainHostdev *h = hostdevs->pdata[i];

                if (h->kind != DEVICE_KIND_PCI)
                        continue;
                if (g_str_equal(h->key, old)) {
                        if (found)
                                return errno_message(error, EBADMSG, "PCI device %s is assigned twice", old);
                        found = addrs->pdata[i];
                } else if (g_str_equal(h->key, new))
                        return errno_message(error, EEXIST, "PCI device %s is already assigned to the domain", new);
        }
        if (!found)
                return errno_message(error, ENOENT, "the domain has no PCI hostdev %s", old);
        *ret = found;
        return 0;
}

static xmlNode *next_element(xmlNode *n, xmlNode *root) {
        xmlNode *next = libxml()->FirstElementChild(n);

        for (; !next && n != root; n = n->parent)
                next = libxml()->NextElementSibling(n);
        return next;
}

/* libxml2 (2.9.14, measured by the fuzzer) writes a namespace URI back
 * without escaping '<', '&' or control characters, which makes the
 * output ill-formed or changes the URI. libvirt writes its XML with the
 * same serializer, so no domain it formats carries one. */
static int check_namespaces_writable(xmlNode *root, char **error) {
        for (xmlNode *n = root; n; n = next_element(n, root))
                for (xmlNs *ns = n->nsDef; ns; ns = ns->next)
                        for (const xmlChar *c = ns->href; c && *c; c++)
                                if (*c == '<' || *c == '&' || *c < 0x20)
                                        return errno_message(error, EBADMSG,
                                                             "line %ld: a namespace URI with a character that "
                                                             "cannot be written back", libxml()->GetLineNo(n));
        return 0;
}

int domain_xml_set_pci_source(const char *xml, size_t len, const char *old_addr, const char *new_addr,
                              char **ret_xml, char **error) {
        g_autofree char *old = NULL, *new = NULL;
        g_autoptr(xmlDoc) doc = NULL;
        g_autoptr(xmlXPathContext) xp = NULL;
        g_autoptr(GPtrArray) hostdevs = NULL, addrs = NULL;
        xmlNode *root, *addr = NULL;
        int r;

        if (!name_is_pci_address(old_addr) || !name_is_pci_address(new_addr))
                return errno_message(error, EINVAL, "not a PCI address");
        old = name_normalize_device(old_addr);
        new = name_normalize_device(new_addr);

        r = xml_read(xml, len, &doc, error);
        if (r < 0)
                return r;
        root = root_element(doc, "domain", NULL, error);
        if (!root)
                return -EBADMSG;
        xp = xpath_new(doc);
        if (!xp)
                return errno_message(error, ENOMEM, "cannot create an XPath context");
        r = parse_hostdevs(xp, root, &hostdevs, &addrs, error);
        if (r >= 0)
                r = find_pci_source(hostdevs, addrs, old, new, &addr, error);
        if (r < 0)
                return r;
        r = check_namespaces_writable(root, error);
        if (r < 0)
                return r;
        set_pci_address(addr, new);
        return xml_write(doc, has_declaration(xml, len), ret_xml, error);
}
