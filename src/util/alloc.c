/* alloc.c — see alloc.h. jemalloc's mallctl is declared weak, so this file links into binaries with
 * and without jemalloc and finds out at run time which allocator is there. */
#include "util/alloc.h"

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

/* jemalloc's MALLCTL_ARENAS_ALL (4096): "every arena" in an arena.<i>.* name. */
#define ARENAS_ALL 4096

void kc_alloc_release(void)
{
    if (mallctl) {
        char name[64];
        snprintf(name, sizeof name, "arena.%d.purge", ARENAS_ALL);
        mallctl(name, NULL, NULL, NULL, 0);
        return;
    }
    malloc_trim(0);
}

const char *kc_alloc_name(void) { return mallctl ? "jemalloc" : "glibc"; }
