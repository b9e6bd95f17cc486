/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt's event loop on sd-event (daemon/libvirt/virt-event.c): the
 * handle and timeout rules libvirt relies on, driven through libvirt's
 * public virEvent*() calls, then libvirt's test driver delivering domain
 * events through the loop, and the metadata and PCI edits of
 * domain-xml.c as libvirt takes them. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <systemd/sd-event.h>

#include "libvirt/domain-xml.h"
#include "unit-test.h"
#include "util.h"
#include "libvirt/virt-event.h"

#define NODE_URI "test://" UNIT_DATA_DIR "/libvirt-node.xml"
#define DOMAIN "vm-vfio"
#define MDEV "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
#define PCI "0000:65:00.1"

static sd_event *event;

/* Runs the loop until *counter reaches want or a second passes. */
static bool run_until(const unsigned *counter, unsigned want) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + USEC_PER_SEC;

        while (*counter < want && now_usec(CLOCK_MONOTONIC) < deadline)
                g_assert_cmpint(sd_event_run(event, 100 * 1000), >=, 0);
        return *counter >= want;
}

/* Runs the loop for a while, for things that must not happen. */
static void run_for(uint64_t usec) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + usec;

        while (now_usec(CLOCK_MONOTONIC) < deadline)
                g_assert_cmpint(sd_event_run(event, 10 * 1000), >=, 0);
}

static void run_iterations(unsigned n) {
        for (unsigned i = 0; i < n; i++)
                g_assert_cmpint(sd_event_run(event, 0), >=, 0);
}

/* What a callback and a free function saw. */
typedef struct Probe {
        unsigned fired, freed;
        int id, last_events, last_fd;
        bool remove_in_callback;
        bool in_callback;               /* set while a callback runs */
        bool freed_inside_callback;
        bool freed_inside_remove;
        bool in_remove;
        int read_fd;                    /* handle: drain this */
} Probe;

static void probe_free(void *opaque) {
        Probe *p = opaque;

        p->freed++;
        p->freed_inside_callback |= p->in_callback;
        p->freed_inside_remove |= p->in_remove;
}

static void remove_timeout(Probe *p) {
        p->in_remove = true;
        g_assert_cmpint(virEventRemoveTimeout(p->id), ==, 0);
        p->in_remove = false;
}

static void remove_handle(Probe *p) {
        p->in_remove = true;
        g_assert_cmpint(virEventRemoveHandle(p->id), ==, 0);
        p->in_remove = false;
}

static void on_timeout(int timer, void *opaque) {
        Probe *p = opaque;

        g_assert_cmpint(timer, ==, p->id);
        p->in_callback = true;
        p->fired++;
        if (p->remove_in_callback)
                remove_timeout(p);
        p->in_callback = false;
}

static void on_handle(int watch, int fd, int events, void *opaque) {
        Probe *p = opaque;
        char buf[64];

        g_assert_cmpint(watch, ==, p->id);
        p->in_callback = true;
        p->fired++;
        p->last_events = events;
        p->last_fd = fd;
        if (p->read_fd >= 0 && (events & VIR_EVENT_HANDLE_READABLE))
                (void) read(p->read_fd, buf, sizeof(buf));
        if (p->remove_in_callback)
                remove_handle(p);
        p->in_callback = false;
}

static void test_register_once(void) {
        g_assert_cmpint(virt_event_register(event), ==, -EALREADY);
}

/* 0 fires on every iteration, -1 never, N after N ms; a removed timer is
 * gone at once and its opaque freed exactly once, later. */
static void test_timeout_rules(void) {
        Probe p = { .read_fd = -1 };
        uint64_t start;

        p.id = virEventAddTimeout(0, on_timeout, &p, probe_free);
        g_assert_cmpint(p.id, >, 0);
        g_assert_cmpuint(p.fired, ==, 0);       /* nothing runs inside the add */
        run_iterations(5);
        g_assert_cmpuint(p.fired, ==, 5);

        virEventUpdateTimeout(p.id, -1);
        run_for(50 * 1000);
        g_assert_cmpuint(p.fired, ==, 5);

        start = now_usec(CLOCK_MONOTONIC);
        virEventUpdateTimeout(p.id, 30);
        run_iterations(3);
        g_assert_cmpuint(p.fired, ==, 5);
        g_assert_true(run_until(&p.fired, 6));
        g_assert_cmpuint(now_usec(CLOCK_MONOTONIC) - start, >=, 30 * 1000);
        /* periodic: it comes back, after the interval again */
        start = now_usec(CLOCK_MONOTONIC);
        g_assert_true(run_until(&p.fired, 7));
        g_assert_cmpuint(now_usec(CLOCK_MONOTONIC) - start, >=, 20 * 1000);

        remove_timeout(&p);
        g_assert_cmpuint(p.freed, ==, 0);
        g_assert_cmpint(virEventRemoveTimeout(p.id), ==, -1);
        virEventUpdateTimeout(p.id, 0);         /* ignored */
        run_iterations(3);
        g_assert_cmpuint(p.fired, ==, 7);
        g_assert_cmpuint(p.freed, ==, 1);
        g_assert_false(p.freed_inside_remove);
        run_for(50 * 1000);
        g_assert_cmpuint(p.freed, ==, 1);
        g_assert_cmpuint(p.fired, ==, 7);
}

/* A timer that removes itself from its callback (libvirt's test driver
 * does nearly that): it fires once, and its opaque is freed after the
 * callback returned. */
static void test_timeout_remove_inside_callback(void) {
        Probe p = { .remove_in_callback = true, .read_fd = -1 };

        p.id = virEventAddTimeout(0, on_timeout, &p, probe_free);
        g_assert_cmpint(p.id, >, 0);
        run_iterations(5);
        g_assert_cmpuint(p.fired, ==, 1);
        g_assert_cmpuint(p.freed, ==, 1);
        g_assert_false(p.freed_inside_callback);
        g_assert_false(p.freed_inside_remove);
}

/* A timer and a handle share one id space in libvirt's eyes: removing a
 * timer by a handle's call must not work. */
static void test_ids_not_mixed(void) {
        Probe p = { .read_fd = -1 };

        p.id = virEventAddTimeout(-1, on_timeout, &p, probe_free);
        g_assert_cmpint(p.id, >, 0);
        g_assert_cmpint(virEventRemoveHandle(p.id), ==, -1);
        remove_timeout(&p);
        run_iterations(2);
        g_assert_cmpuint(p.freed, ==, 1);
        g_assert_cmpint(virEventRemoveTimeout(4242), ==, -1);
}

/* Readable data comes as READABLE with libvirt's fd; events 0 silences
 * the handle even when a hangup is pending (epoll would report it). */
static void test_handle_rules(void) {
        Probe p = { .read_fd = -1 };
        int fds[2];

        g_assert_cmpint(pipe2(fds, O_CLOEXEC | O_NONBLOCK), ==, 0);
        p.read_fd = fds[0];
        p.id = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, probe_free);
        g_assert_cmpint(p.id, >, 0);
        run_iterations(3);
        g_assert_cmpuint(p.fired, ==, 0);

        g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
        g_assert_true(run_until(&p.fired, 1));
        g_assert_cmpint(p.last_events, ==, VIR_EVENT_HANDLE_READABLE);
        g_assert_cmpint(p.last_fd, ==, fds[0]);
        run_iterations(3);                      /* drained: quiet again */
        g_assert_cmpuint(p.fired, ==, 1);

        virEventUpdateHandle(p.id, 0);
        p.read_fd = -1;                         /* leave data and a hangup pending */
        g_assert_cmpint(write(fds[1], "y", 1), ==, 1);
        close(fds[1]);
        run_for(50 * 1000);
        g_assert_cmpuint(p.fired, ==, 1);

        virEventUpdateHandle(p.id, VIR_EVENT_HANDLE_READABLE);
        g_assert_true(run_until(&p.fired, 2));
        g_assert_true(p.last_events & VIR_EVENT_HANDLE_READABLE);
        g_assert_true(p.last_events & VIR_EVENT_HANDLE_HANGUP);

        p.remove_in_callback = true;
        g_assert_true(run_until(&p.fired, 3));
        g_assert_cmpuint(p.freed, ==, 0);       /* not from inside the callback */
        run_iterations(3);
        g_assert_cmpuint(p.fired, ==, 3);
        g_assert_cmpuint(p.freed, ==, 1);
        g_assert_false(p.freed_inside_callback);
        g_assert_false(p.freed_inside_remove);
        g_assert_cmpint(virEventRemoveHandle(p.id), ==, -1);
        close(fds[0]);
}

/* libvirt may watch one fd twice for different events; epoll alone
 * would refuse the second. */
static void test_handle_same_fd_twice(void) {
        Probe r = { .read_fd = -1 }, w = { .read_fd = -1 };
        int sv[2];

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), ==, 0);
        r.read_fd = sv[0];
        r.id = virEventAddHandle(sv[0], VIR_EVENT_HANDLE_READABLE, on_handle, &r, probe_free);
        w.id = virEventAddHandle(sv[0], VIR_EVENT_HANDLE_WRITABLE, on_handle, &w, probe_free);
        g_assert_cmpint(r.id, >, 0);
        g_assert_cmpint(w.id, >, 0);
        g_assert_cmpint(r.id, !=, w.id);

        g_assert_true(run_until(&w.fired, 1));
        g_assert_cmpint(w.last_events, ==, VIR_EVENT_HANDLE_WRITABLE);
        g_assert_cmpint(w.last_fd, ==, sv[0]);  /* libvirt's fd, not our duplicate */
        g_assert_cmpuint(r.fired, ==, 0);
        virEventUpdateHandle(w.id, 0);

        g_assert_cmpint(write(sv[1], "x", 1), ==, 1);
        g_assert_true(run_until(&r.fired, 1));
        g_assert_cmpint(r.last_events, ==, VIR_EVENT_HANDLE_READABLE);
        g_assert_cmpint(r.last_fd, ==, sv[0]);

        remove_handle(&r);
        remove_handle(&w);
        run_iterations(3);
        g_assert_cmpuint(r.freed, ==, 1);
        g_assert_cmpuint(w.freed, ==, 1);
        close(sv[0]);
        close(sv[1]);
}

/* libvirt, through its test driver */

typedef struct Lifecycle {
        unsigned count;
        int events[8], details[8];
        char *names[8];
} Lifecycle;

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int ev, int detail, void *opaque) {
        Lifecycle *l = opaque;

        if (l->count < G_N_ELEMENTS(l->events)) {
                l->events[l->count] = ev;
                l->details[l->count] = detail;
                l->names[l->count] = g_strdup(virDomainGetName(dom));
        }
        l->count++;
        return 0;
}

static void lifecycle_clear(Lifecycle *l) {
        for (unsigned i = 0; i < G_N_ELEMENTS(l->names); i++)
                g_free(l->names[i]);
}

static void expect_event(Lifecycle *l, unsigned index, int ev, int detail) {
        g_assert_true(run_until(&l->count, index + 1));
        g_assert_cmpint(l->events[index], ==, ev);
        g_assert_cmpint(l->details[index], ==, detail);
        g_assert_cmpstr(l->names[index], ==, DOMAIN);
}

static void test_domain_lifecycle(void) {
        Lifecycle l = {};
        virConnectPtr conn = virConnectOpen(NODE_URI);
        virDomainPtr dom;
        int id;

        g_assert_nonnull(conn);
        dom = virDomainLookupByName(conn, DOMAIN);
        g_assert_nonnull(dom);
        id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &l, NULL);
        g_assert_cmpint(id, >=, 0);

        /* Events are queued by the API call and delivered by the loop. */
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        g_assert_cmpuint(l.count, ==, 0);
        expect_event(&l, 0, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED);

        g_assert_cmpint(virDomainCreate(dom), ==, 0);
        g_assert_cmpint(virDomainSuspend(dom), ==, 0);
        g_assert_cmpint(virDomainResume(dom), ==, 0);
        expect_event(&l, 1, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        expect_event(&l, 2, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_PAUSED);
        expect_event(&l, 3, VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_UNPAUSED);

        /* Deregistered: the loop delivers nothing more. */
        g_assert_cmpint(virConnectDomainEventDeregisterAny(conn, id), ==, 0);
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        run_for(100 * 1000);
        g_assert_cmpuint(l.count, ==, 4);

        virDomainFree(dom);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        run_iterations(5);
        lifecycle_clear(&l);
}

static void on_close(virConnectPtr conn, int reason, void *opaque) {
        (*(unsigned *) opaque)++;
}

/* The test driver takes a close callback and never calls it (it has no
 * connection to lose); registering must not keep the connection alive
 * once it is taken back. It has no keepalive (measured: -1, "not
 * supported"), so that is left to a real libvirtd. */
static void test_close_callback(void) {
        unsigned closed = 0;
        virConnectPtr conn = virConnectOpen(NODE_URI);

        g_assert_nonnull(conn);
        g_assert_cmpint(virConnectRegisterCloseCallback(conn, on_close, &closed, NULL), ==, 0);
        g_assert_cmpint(virConnectIsAlive(conn), ==, 1);
        run_for(50 * 1000);
        g_assert_cmpint(virConnectUnregisterCloseCallback(conn, on_close), ==, 0);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        run_iterations(3);
        g_assert_cmpuint(closed, ==, 0);
}

static void on_metadata_change(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque) {
        if (type == VIR_DOMAIN_METADATA_ELEMENT && g_strcmp0(nsuri, DOMAIN_XML_NS_URI) == 0)
                (*(unsigned *) opaque)++;
}

static GPtrArray *wanted_metadata(void) {
        GPtrArray *m = domain_metadata_new();

        g_ptr_array_add(m, domain_device_meta_new(MDEV, "mtty-2", "1.0 <&'\">", "vendor", 3, "mtty-2", "mtty"));
        g_ptr_array_add(m, domain_device_meta_new(PCI, "vfio-pci:vfio-pci:0x8086:0x1572:0x8086:0x0000", "",
                                                  "type-match", 1, "", ""));
        return m;
}

/* What domain_xml_metadata_format() writes, libvirt takes, reports with a
 * metadata-change event, and hands back (through virDomainGetMetadata
 * and in the domain XML) as the same entries. */
static void test_metadata_through_libvirt(void) {
        g_autoptr(GPtrArray) wanted = wanted_metadata(), got = NULL;
        g_autoptr(DomainInfo) info = NULL;
        g_autofree char *element = NULL, *error = NULL, *xml = NULL, *stored = NULL;
        unsigned changes = 0;
        virConnectPtr conn = virConnectOpen(NODE_URI);
        virDomainPtr dom;
        int id;

        g_assert_nonnull(conn);
        dom = virDomainLookupByName(conn, DOMAIN);
        g_assert_nonnull(dom);
        id = virConnectDomainEventRegisterAny(conn, dom, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_metadata_change), &changes, NULL);
        g_assert_cmpint(id, >=, 0);

        g_assert_cmpint(domain_xml_metadata_format(wanted, &element, &error), ==, 0);
        g_assert_cmpint(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, element, DOMAIN_XML_NS_KEY,
                                             DOMAIN_XML_NS_URI, VIR_DOMAIN_AFFECT_LIVE), ==, 0);
        g_assert_true(run_until(&changes, 1));

        stored = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, DOMAIN_XML_NS_URI, VIR_DOMAIN_AFFECT_LIVE);
        g_assert_nonnull(stored);
        g_assert_cmpint(domain_xml_metadata_parse(stored, strlen(stored), &got, &error), ==, 0);
        g_assert_true(domain_metadata_equal(got, wanted));

        xml = virDomainGetXMLDesc(dom, 0);
        g_assert_nonnull(xml);
        g_assert_nonnull(strstr(xml, "<" DOMAIN_XML_NS_KEY ":devices xmlns:" DOMAIN_XML_NS_KEY "=\"" DOMAIN_XML_NS_URI "\">"));
        g_assert_cmpint(domain_xml_parse(xml, strlen(xml), &info, &error), ==, 0);
        g_assert_null(info->metadata_error);
        g_assert_true(domain_metadata_equal(info->metadata, wanted));
        g_assert_cmpuint(info->hostdevs->len, ==, 2);

        g_assert_cmpint(virConnectDomainEventDeregisterAny(conn, id), ==, 0);
        virDomainFree(dom);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        run_iterations(3);
}

/* libvirt takes the rewritten document as a definition, and reads the
 * new address out of it. */
static void test_pci_rewrite_through_libvirt(void) {
        g_autoptr(DomainInfo) info = NULL;
        g_autofree char *error = NULL, *xml = NULL, *rewritten = NULL, *defined = NULL;
        virConnectPtr conn = virConnectOpen(NODE_URI);
        virDomainPtr dom, redefined;

        g_assert_nonnull(conn);
        dom = virDomainLookupByName(conn, DOMAIN);
        g_assert_nonnull(dom);
        xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
        g_assert_nonnull(xml);
        g_assert_cmpint(domain_xml_set_pci_source(xml, strlen(xml), PCI, "0000:66:01.2", &rewritten, &error), ==, 0);
        redefined = virDomainDefineXML(conn, rewritten);
        g_assert_nonnull(redefined);

        defined = virDomainGetXMLDesc(redefined, VIR_DOMAIN_XML_INACTIVE);
        g_assert_nonnull(defined);
        g_assert_cmpint(domain_xml_parse(defined, strlen(defined), &info, &error), ==, 0);
        g_assert_cmpuint(info->hostdevs->len, ==, 2);
        g_assert_cmpstr(((DomainHostdev *) info->hostdevs->pdata[0])->key, ==, MDEV);
        g_assert_cmpstr(((DomainHostdev *) info->hostdevs->pdata[1])->key, ==, "0000:66:01.2");

        virDomainFree(redefined);
        virDomainFree(dom);
        g_assert_cmpint(virConnectClose(conn), ==, 0);
        run_iterations(3);
}

static void ignore_libvirt_error(void *userdata, virErrorPtr e) {
        g_test_message("libvirt: %s", e->message);
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        virSetErrorFunc(NULL, ignore_libvirt_error);
        g_assert_cmpint(sd_event_new(&event), >=, 0);
        g_assert_cmpint(virt_event_register(event), ==, 0);

        g_test_add_func("/virt-event/register-once", test_register_once);
        g_test_add_func("/virt-event/timeout-rules", test_timeout_rules);
        g_test_add_func("/virt-event/timeout-remove-inside-callback", test_timeout_remove_inside_callback);
        g_test_add_func("/virt-event/ids-not-mixed", test_ids_not_mixed);
        g_test_add_func("/virt-event/handle-rules", test_handle_rules);
        g_test_add_func("/virt-event/handle-same-fd-twice", test_handle_same_fd_twice);
        g_test_add_func("/virt-event/domain-lifecycle", test_domain_lifecycle);
        g_test_add_func("/virt-event/close-callback", test_close_callback);
        g_test_add_func("/virt-event/metadata-through-libvirt", test_metadata_through_libvirt);
        g_test_add_func("/virt-event/pci-rewrite-through-libvirt", test_pci_rewrite_through_libvirt);
        return g_test_run();
}
