/* Shared helpers for troupe's benchmark programs. Each measurement is one
 * stdout line `RESULT <workload> troupe <threads> <value> <unit>`; anything
 * else goes to stderr (see bench/README.md). */
#ifndef TR_BENCH_UTIL_H
#define TR_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int quick;
  int threads;
} bench_args_t;

static inline void bench_parse(int argc, char **argv, bench_args_t *a) {
  a->quick = getenv("QUICK") != NULL && strcmp(getenv("QUICK"), "0") != 0;
  a->threads = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) a->quick = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      a->threads = atoi(argv[++i]);
  }
  if (a->threads < 1) a->threads = 1;
#ifndef BENCH_HONOURS_THREADS
  /* W2 and W4 run --threads schedulers; the others one. */
  if (a->threads != 1)
    fprintf(stderr, "note: this benchmark runs one scheduler; "
                    "--threads %d measured with 1\n", a->threads);
#endif
}

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline long bench_rss_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline int bench_vma_count(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  int n = 0, c;
  if (f == NULL) return -1;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

/* A msgpack uint64 (0xcf, then 8 bytes big-endian: fixed width, so the
 * message size never changes), packed and read with one byte swap each
 * way, as an application would write it. bench_pack_u64 returns 9. */
static inline uint64_t bench_be64(uint64_t v) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return __builtin_bswap64(v);
#else
  return v;
#endif
}

static inline size_t bench_pack_u64(unsigned char *b, uint64_t v) {
  uint64_t be = bench_be64(v);
  b[0] = 0xcf;
  memcpy(b + 1, &be, 8);
  return 9;
}

static inline uint64_t bench_read_u64(const unsigned char *b) {
  uint64_t be;
  memcpy(&be, b + 1, 8);
  return bench_be64(be); /* its own inverse */
}

static inline void bench_result(const char *workload, int threads, double value,
                                const char *unit) {
  printf("RESULT %s troupe %d %.2f %s\n", workload, threads, value, unit);
  fflush(stdout);
}

#endif
