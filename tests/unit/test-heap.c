/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* heap.c: what start-up allocates after a reservation lands on pages
 * already there, and what it did not use goes back. Each case runs in a
 * child of its own, so that one case's heap is not the next one's. */
#include <malloc.h>
#include <stdbool.h>
#include <sys/resource.h>

#include <glib.h>

#include "heap.h"

#define RESERVE (16u << 20)
#define SMALL 96                        /* a device's strings, its structs */
#define COUNT ((RESERVE / 2) / (SMALL + 16))

/* ASan's allocator is not glibc's heap: nothing there to measure. */
static bool skip_sanitized(void) {
#ifdef __SANITIZE_ADDRESS__
        g_test_skip("a sanitizer's allocator, not glibc's heap");
        return true;
#else
        return false;
#endif
}

static long minor_faults(void) {
        struct rusage ru;

        g_assert_cmpint(getrusage(RUSAGE_SELF, &ru), ==, 0);
        return ru.ru_minflt;
}

/* Faults while allocating and filling 8 MiB in small blocks, as start-up
 * does; the blocks are kept (and leaked: the child exits). */
static long faults_of_small_allocations(void) {
        long before = minor_faults();

        for (size_t i = 0; i < COUNT; i++)
                memset(g_malloc(SMALL), 0xa5, SMALL);
        return minor_faults() - before;
}

static void test_fewer_faults_child(gboolean reserve) {
        long faults;

        if (reserve)
                heap_reserve(RESERVE);
        faults = faults_of_small_allocations();
        g_printerr("%s: %ld faults for %u blocks\n", reserve ? "reserved" : "not reserved", faults, (unsigned) COUNT);
        /* 8 MiB is 2,048 pages: one fault each without, a handful with */
        if (reserve)
                g_assert_cmpint(faults, <, 200);
        else
                g_assert_cmpint(faults, >, 1500);
}

/* True in the case's own child; in the parent, runs it there (and
 * checks it passed) and returns false. */
static bool in_child(void) {
        if (skip_sanitized())
                return false;
        if (g_test_subprocess())
                return true;
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_test_trap_assert_passed();
        return false;
}

static void test_fewer_faults(void) {
        if (g_test_subprocess()) {
                test_fewer_faults_child(g_strcmp0(g_getenv("HEAP_RESERVE"), "1") == 0);
                return;
        }
        g_setenv("HEAP_RESERVE", "0", TRUE);
        in_child();
        g_setenv("HEAP_RESERVE", "1", TRUE);
        in_child();
}

static void test_release_gives_back(void) {
        struct mallinfo2 reserved, released;

        if (!in_child())
                return;
        heap_reserve(RESERVE);
        reserved = mallinfo2();
        g_assert_cmpuint(reserved.arena, >=, RESERVE - (1u << 20));
        heap_release();
        released = mallinfo2();
        /* nothing was used: all of it back but malloc's own slack */
        g_assert_cmpuint(released.arena, <, reserved.arena - (RESERVE - (2u << 20)));
        heap_release();         /* once is all it takes; twice is harmless */
}

static void test_reserve_once(void) {
        struct mallinfo2 first, second;

        if (!in_child())
                return;
        heap_reserve(RESERVE);
        first = mallinfo2();
        heap_reserve(RESERVE);  /* a second one while the first is held: nothing */
        second = mallinfo2();
        g_assert_cmpuint(second.arena, ==, first.arena);
        heap_release();
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/heap/fewer-faults", test_fewer_faults);
        g_test_add_func("/heap/release-gives-back", test_release_gives_back);
        g_test_add_func("/heap/reserve-once", test_reserve_once);
        return g_test_run();
}
