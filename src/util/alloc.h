/* alloc.h — the process allocator, whichever it is.
 *
 * The kubec binary links jemalloc (CMake option KUBEC_JEMALLOC, docs/dependencies.md); unit tests and
 * sanitizer builds use glibc's malloc. Code that wants to hand freed memory back to the system calls
 * kc_alloc_release() and need not know which one is in the process. */
#pragma once

/* Returns unused free pages to the system: jemalloc's purge of every arena when jemalloc is the
 * allocator, malloc_trim(0) otherwise. */
void kc_alloc_release(void);

/* "jemalloc" or "glibc": for logs and /metrics. */
const char *kc_alloc_name(void);
