/*
 * Shared helpers of the libFuzzer harnesses: a byte reader over the fuzz
 * input (every read is defined, zeros once the input runs out), a CHECK
 * that aborts with the failed condition (libFuzzer then saves the input),
 * and the runtime every runtime harness shares.
 *
 * Pointers never come from fuzz bytes: a struct read from the input gets
 * its pointer fields replaced by known values (code pointers such as a
 * child's start function are trusted by design, exactly as tr_spawn's fn).
 */
#ifndef TR_FUZZ_UTIL_H
#define TR_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "troupe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* CHECK that an error code is one of a set (up to 6, 1 terminates). */
static inline int fz_one_of(int rc, const int *ok, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (rc == ok[i]) return 1;
  return 0;
}
#define CHECK_RC(rc, ...)                                                    \
  do {                                                                       \
    const int fz_ok_[] = {__VA_ARGS__};                                      \
    int fz_rc_ = (rc);                                                       \
    if (!fz_one_of(fz_rc_, fz_ok_, sizeof(fz_ok_) / sizeof(fz_ok_[0]))) {    \
      fprintf(stderr, "%s:%d: unexpected %s = %d (%s)\n", __FILE__,          \
              __LINE__, #rc, fz_rc_, tr_err_name(fz_rc_));                   \
      abort();                                                               \
    }                                                                        \
  } while (0)

typedef struct {
  const uint8_t *p;
  size_t n;
} fz_t;

static inline uint8_t fz_u8(fz_t *f) {
  if (f->n == 0) return 0;
  f->n--;
  return *f->p++;
}

static inline uint16_t fz_u16(fz_t *f) {
  uint16_t v = fz_u8(f);
  return (uint16_t)(v << 8 | fz_u8(f));
}

static inline uint32_t fz_u32(fz_t *f) {
  uint32_t v = fz_u16(f);
  return v << 16 | fz_u16(f);
}

static inline uint64_t fz_u64(fz_t *f) {
  uint64_t v = fz_u32(f);
  return v << 32 | fz_u32(f);
}

/* Copies up to n bytes into dst, zero-filling what the input lacks. */
static inline void fz_take(fz_t *f, void *dst, size_t n) {
  size_t k = n < f->n ? n : f->n;
  memcpy(dst, f->p, k);
  memset((char *)dst + k, 0, n - k);
  f->p += k;
  f->n -= k;
}

/* A slice of up to max bytes (length from one byte of input, or two when
 * max > 255); *len gets its length. Points into the input. */
static inline const uint8_t *fz_slice(fz_t *f, size_t max, size_t *len) {
  size_t want = max > 255 ? fz_u16(f) : fz_u8(f);
  const uint8_t *p = f->p;
  if (want > max) want = want % (max + 1);
  if (want > f->n) want = f->n;
  f->p += want;
  f->n -= want;
  *len = want;
  return p;
}

/* A NUL-terminated string of up to max - 1 bytes from the input, in buf. */
static inline char *fz_str(fz_t *f, char *buf, size_t max) {
  size_t len;
  const uint8_t *p = fz_slice(f, max - 1, &len);
  memcpy(buf, p, len);
  buf[len] = '\0';
  return buf;
}

/* A config for harness runtimes: faults go straight to ASan / libFuzzer
 * (no actor crashes on purpose here), no logger. */
static inline tr_config_t fz_config(void) {
  tr_config_t cfg;
  tr_config_init(&cfg);
  cfg.catch_faults = 0;
  cfg.stop_timeout_ms = 1000;
  return cfg;
}

#endif
