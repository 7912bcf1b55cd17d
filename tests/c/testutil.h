/* Small helpers shared by the C test programs in tests/c/ (not part of librtc). */
#ifndef RTC_TESTUTIL_H
#define RTC_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc.h"

static _Atomic int testutil_checks = 0; /* atomic: threads.c checks from many threads */
static _Atomic int testutil_failures = 0;

/* Records a failure (and keeps going) unless `cond` holds. */
#define CHECK(cond)                                                                   \
  do {                                                                                \
    testutil_checks++;                                                                \
    if (!(cond)) {                                                                    \
      printf("FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond,          \
             rtc_last_error_message());                                               \
      testutil_failures++;                                                            \
    }                                                                                 \
  } while (0)

/* Checks that `call` returns the result code `want`. */
#define CHECK_RC(call, want)                                                          \
  do {                                                                                \
    rtc_result rc_ = (call);                                                          \
    testutil_checks++;                                                                \
    if (rc_ != (rtc_result)(want)) {                                                  \
      printf("FAIL %s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__,      \
             __LINE__, #call, rtc_result_name(rc_), rtc_result_name(want),            \
             rtc_last_error_message());                                               \
      testutil_failures++;                                                            \
    }                                                                                 \
  } while (0)

/* Stops the program: for failures that make the rest meaningless. */
#define REQUIRE(cond)                                                                 \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      printf("FATAL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond,         \
             rtc_last_error_message());                                               \
      exit(2);                                                                        \
    }                                                                                 \
  } while (0)

/* A C string as rtc bytes: pointer and length (no NUL). */
#define B(s) ((const uint8_t *)(s)), strlen(s)

/* A C string as an rtc_bytes (a tag). */
static inline rtc_bytes tag(const char *s) {
  rtc_bytes b;
  b.data = (const uint8_t *)s;
  b.len = strlen(s);
  return b;
}

/* True when `value` holds exactly the bytes of the C string `s`. */
static inline int value_is(const rtc_value *value, const char *s) {
  size_t n = strlen(s);
  return value != NULL && rtc_value_len(value) == n &&
         (n == 0 || memcmp(rtc_value_data(value), s, n) == 0);
}

/* Builds a cache on `url` in namespace `ns`; exits on failure. */
static inline rtc_cache *testutil_cache(const char *url, const char *ns) {
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(b != NULL);
  REQUIRE(rtc_cache_builder_set_url(b, url) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(b, ns) == RTC_RESULT_OK);
  rtc_cache *cache = NULL;
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(b);
  return cache;
}

/* Prints the plain closing line (checks passed and failed) and returns the exit status. */
static inline int testutil_finish(const char *program) {
  printf("%s: %d passed, %d failed\n", program, testutil_checks - testutil_failures, testutil_failures);
  return testutil_failures == 0 ? 0 : 1;
}

#endif /* RTC_TESTUTIL_H */
