/* Counts malloc calls of a process (LD_PRELOAD) and prints the total on stderr at exit: tools/bench uses it
   to show that svcplane allocates nothing per packet in steady state. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static unsigned long count;
static void *(*real_malloc)(size_t);
void *malloc(size_t n) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); count++; return real_malloc(n); }
__attribute__((destructor)) static void report(void) { char b[64]; int l = snprintf(b, sizeof b, "mallocs: %lu\n", count); write(2, b, l); }
