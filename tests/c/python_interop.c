/*
 * librtc against the Python reference (redis-tagged-cache 0.12.1, identity
 * bytes serializer) on one Redis and one namespace. tests/tests/python_interop.rs
 * runs the Python side and calls this program for one action at a time.
 *
 * usage: python_interop REDIS_URL NAMESPACE ACTION ARGS...
 *
 *   expect-hit KEY VALUE [TAG...]   rtc_cache_get must return VALUE
 *   expect-miss KEY [TAG...]        rtc_cache_get must miss
 *   set KEY VALUE [TAG...]          rtc_cache_set, default lifetime
 *   invalidate TAG...               rtc_cache_invalidate
 *   invalidate-all                  rtc_cache_invalidate_all
 *   wait KEY WANT [TAG...]          rtc_cache_get_or_compute with the lock on,
 *                                   while someone else holds the lock: the
 *                                   computation must not run, the value must
 *                                   be WANT, and the hook must report a wait
 *                                   (neither lock_full_hit nor lock_full_miss)
 *   hold KEY VALUE [TAG...]         rtc_cache_get_or_lock with the lock on:
 *                                   must miss and hold the lock; prints
 *                                   "locked", waits for a line on stdin, then
 *                                   rtc_cache_set_and_unlock(VALUE)
 *
 * Ends with "c-python-interop: N passed, N failed"; exit status 0 when none failed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_TAGS 16

/* What the hook saw of the last get-or-compute (the info itself lives only during the hook). */
static struct {
  bool hit, lock_full_hit, lock_full_miss;
  rtc_result error;
  uint64_t lock_waiting_ms;
} last_info;
static int hook_calls = 0;

static void hook(void *userdata, const rtc_cache_info *info) {
  (void)userdata;
  last_info.hit = rtc_cache_info_hit(info);
  last_info.lock_full_hit = rtc_cache_info_lock_full_hit(info);
  last_info.lock_full_miss = rtc_cache_info_lock_full_miss(info);
  last_info.error = rtc_cache_info_error(info);
  last_info.lock_waiting_ms = rtc_cache_info_lock_waiting_ms(info);
  hook_calls++;
}

static int must_not_run(void *userdata, rtc_output *output) {
  (void)output;
  printf("FAIL: the computation of %s ran: the lock holder's value must be reused\n", (const char *)userdata);
  testutil_failures++;
  return 1;
}

static bool equal(const rtc_value *value, const char *want) { return value_is(value, want); }

static void print_value(const char *what, const rtc_value *value) {
  printf("%s: %.*s\n", what, (int)rtc_value_len(value), (const char *)rtc_value_data(value));
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s REDIS_URL NAMESPACE ACTION ARGS...\n", argv[0]);
    return 2;
  }
  const char *action = argv[3];
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(b != NULL);
  REQUIRE(rtc_cache_builder_set_url(b, argv[1]) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(b, argv[2]) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_hook(b, hook, NULL) == RTC_RESULT_OK);
  rtc_cache *cache = NULL;
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(b);

  /* Tags are the arguments after KEY (and VALUE). */
  int first_tag = (!strcmp(action, "expect-miss")) ? 5 : (!strcmp(action, "invalidate")) ? 4 : 6;
  rtc_bytes tags[MAX_TAGS];
  size_t n = 0;
  for (int i = first_tag; i < argc && n < MAX_TAGS; i++) tags[n++] = tag(argv[i]);
  REQUIRE(argc - first_tag <= MAX_TAGS);
  const char *key = argc > 4 ? argv[4] : "";
  const char *value_arg = argc > 5 ? argv[5] : "";

  if (!strcmp(action, "expect-hit") && argc >= 6) {
    rtc_value *value = NULL;
    rtc_result rc = rtc_cache_get(cache, B(key), tags, n, &value);
    CHECK_RC(rc, RTC_RESULT_OK);
    if (rc == RTC_RESULT_OK) {
      print_value("hit", value);
      CHECK(equal(value, value_arg));
    }
    rtc_value_free(value);
  } else if (!strcmp(action, "expect-miss") && argc >= 5) {
    rtc_value *value = NULL;
    CHECK_RC(rtc_cache_get(cache, B(key), tags, n, &value), RTC_RESULT_MISS);
    rtc_value_free(value);
  } else if (!strcmp(action, "set") && argc >= 6) {
    CHECK_RC(rtc_cache_set(cache, B(key), B(value_arg), tags, n, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  } else if (!strcmp(action, "invalidate") && argc >= 5) {
    CHECK_RC(rtc_cache_invalidate(cache, tags, n), RTC_RESULT_OK);
  } else if (!strcmp(action, "invalidate-all") && argc == 4) {
    CHECK_RC(rtc_cache_invalidate_all(cache), RTC_RESULT_OK);
  } else if (!strcmp(action, "wait") && argc >= 6) {
    rtc_compute_options *options = NULL;
    REQUIRE(rtc_compute_options_new(B(key), &options) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_tags(options, tags, n) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
    rtc_value *value = NULL;
    rtc_result rc = rtc_cache_get_or_compute(cache, options, must_not_run, (void *)key, &value);
    CHECK_RC(rc, RTC_RESULT_OK);
    if (rc == RTC_RESULT_OK) {
      print_value("value", value);
      CHECK(equal(value, value_arg));
    }
    CHECK(hook_calls == 1);
    CHECK(last_info.hit);
    CHECK(last_info.error == RTC_RESULT_OK);
    /* Neither flag: the value came from another holder while this caller waited. */
    CHECK(!last_info.lock_full_hit);
    CHECK(!last_info.lock_full_miss);
    printf("waited: %llu ms\n", (unsigned long long)last_info.lock_waiting_ms);
    rtc_value_free(value);
    rtc_compute_options_free(options);
  } else if (!strcmp(action, "hold") && argc >= 6) {
    rtc_compute_options *options = NULL;
    REQUIRE(rtc_compute_options_new(B(key), &options) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_tags(options, tags, n) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
    rtc_value *value = NULL;
    rtc_ticket *ticket = NULL;
    rtc_result rc = rtc_cache_get_or_lock(cache, options, &value, &ticket);
    CHECK_RC(rc, RTC_RESULT_MISS);
    REQUIRE(rc == RTC_RESULT_MISS && ticket != NULL);
    CHECK(rtc_ticket_holds_lock(ticket));
    printf("locked\n");
    fflush(stdout);
    char line[64];
    REQUIRE(fgets(line, sizeof line, stdin) != NULL);
    CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, B(value_arg), RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
    rtc_value_free(value);
    rtc_compute_options_free(options);
  } else {
    fprintf(stderr, "unknown action or missing arguments: %s\n", action);
    rtc_cache_free(cache);
    return 2;
  }
  rtc_cache_free(cache);
  return testutil_finish("c-python-interop");
}
