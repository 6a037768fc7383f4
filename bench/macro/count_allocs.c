/* Counts the calls to malloc, calloc and realloc a process makes and writes the total to the file
 * named by $ALLOC_COUNT_FILE at exit. Loaded with LD_PRELOAD by profile.sh, which runs airbag
 * twice (warm-up only, warm-up plus the counted requests) and divides the difference. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_long calls;
static void* (*real_malloc)(size_t);
static void* (*real_calloc)(size_t, size_t);
static void* (*real_realloc)(void*, size_t);
/* dlsym may itself calloc: serve that one from a small static buffer. */
static char bootstrap[4096];
static size_t bootstrap_used;

void* malloc(size_t n) {
  if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc");
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_malloc(n);
}

void* calloc(size_t n, size_t size) {
  if (!real_calloc) {
    size_t want = (n * size + 15) & ~(size_t)15;
    if (bootstrap_used + want > sizeof(bootstrap)) return NULL;
    void* p = bootstrap + bootstrap_used;
    bootstrap_used += want;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    return p;
  }
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_calloc(n, size);
}

void* realloc(void* p, size_t n) {
  if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc");
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return real_realloc(p, n);
}

void free(void* p) {
  static void (*real_free)(void*);
  if ((char*)p >= bootstrap && (char*)p < bootstrap + sizeof(bootstrap)) return;
  if (!real_free) real_free = dlsym(RTLD_NEXT, "free");
  real_free(p);
}

__attribute__((destructor)) static void report(void) {
  const char* path = getenv("ALLOC_COUNT_FILE");
  if (!path) return;
  FILE* f = fopen(path, "w");
  if (!f) return;
  fprintf(f, "%ld\n", atomic_load(&calls));
  fclose(f);
}
