/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Domain XML (daemon/libvirt/domain-xml.c), as a libvirt qemu hook will
 * hand it over on stdin: parsed as a domain and as a metadata element;
 * whatever metadata comes out formats and parses back equal, and a PCI
 * hostdev's source rewritten changes that hostdev alone. */
#include <errno.h>

#include "libvirt/domain-xml.h"
#include "fuzz.h"
#include "names.h"

#define NEW_PCI "0000:ff:1f.7"

static void check_metadata_round_trip(const GPtrArray *entries) {
        g_autofree char *xml = NULL, *error = NULL;
        g_autoptr(GPtrArray) back = NULL;

        check(domain_xml_metadata_format(entries, &xml, &error) == 0);
        check(domain_xml_metadata_parse(xml, strlen(xml), &back, &error) == 0);
        check(domain_metadata_equal(back, entries));
}

static void check_info(const DomainInfo *info) {
        g_autofree char *uuid = name_normalize_device(info->uuid);

        check(info->name && *info->name);
        check(uuid && name_is_uuid(uuid) && g_str_equal(uuid, info->uuid));
        for (unsigned i = 0; i < info->hostdevs->len; i++) {
                const DomainHostdev *h = info->hostdevs->pdata[i];
                g_autofree char *key = name_normalize_device(h->key);

                check(key && g_str_equal(key, h->key));
                check(h->kind == DEVICE_KIND_PCI ? name_is_pci_address(h->key) : name_is_uuid(h->key));
                check(h->model);
        }
        check(!(info->metadata && info->metadata_error));
        if (info->metadata)
                check_metadata_round_trip(info->metadata);
}

static const DomainHostdev *first_pci(const DomainInfo *info) {
        for (unsigned i = 0; i < info->hostdevs->len; i++) {
                const DomainHostdev *h = info->hostdevs->pdata[i];

                if (h->kind == DEVICE_KIND_PCI)
                        return h;
        }
        return NULL;
}

static bool has_key(const DomainInfo *info, const char *key) {
        for (unsigned i = 0; i < info->hostdevs->len; i++)
                if (g_str_equal(((DomainHostdev *) info->hostdevs->pdata[i])->key, key))
                        return true;
        return false;
}

/* The rewritten document is still the same domain, with that one
 * hostdev's key changed. */
static void check_rewrite(const uint8_t *data, size_t size, const DomainInfo *info) {
        const DomainHostdev *pci = first_pci(info);
        g_autofree char *out = NULL, *error = NULL, *old = NULL;
        g_autoptr(DomainInfo) after = NULL;
        int r;

        if (!pci)
                return;
        old = g_strdup(pci->key);
        r = domain_xml_set_pci_source((const char *) data, size, old, NEW_PCI, &out, &error);
        if (r == -EEXIST) {
                check(has_key(info, NEW_PCI));
                return;
        }
        if (r == -EBADMSG || r == -EFBIG)       /* assigned twice; or grown past the limit */
                return;
        check(r == 0 && out && !error);
        r = domain_xml_parse(out, strlen(out), &after, &error);
        if (r == -EFBIG)
                return;
        check(r == 0);
        check(g_str_equal(after->name, info->name) && g_str_equal(after->uuid, info->uuid));
        check(after->hostdevs->len == info->hostdevs->len);
        for (unsigned i = 0; i < info->hostdevs->len; i++) {
                const DomainHostdev *a = info->hostdevs->pdata[i], *b = after->hostdevs->pdata[i];

                check(a->kind == b->kind && g_str_equal(a->model, b->model));
                check(g_str_equal(b->key, a == pci ? NEW_PCI : a->key));
        }
        check(domain_metadata_equal(after->metadata, info->metadata));
        check(!after->metadata_error == !info->metadata_error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autoptr(DomainInfo) info = NULL;
        g_autoptr(GPtrArray) meta = NULL;
        g_autofree char *error = NULL, *meta_error = NULL;
        int r;

        r = domain_xml_parse((const char *) data, size, &info, &error);
        check((r == 0) == (info != NULL));
        check((r < 0) == (error != NULL));
        check(r == 0 || r == -EBADMSG || r == -EFBIG);
        if (info) {
                check_info(info);
                check_rewrite(data, size, info);
        }

        r = domain_xml_metadata_parse((const char *) data, size, &meta, &meta_error);
        check((r == 0) == (meta != NULL));
        check((r < 0) == (meta_error != NULL));
        if (meta)
                check_metadata_round_trip(meta);
        return 0;
}
