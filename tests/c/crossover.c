/*
 * Crossover between the C library and the Rust API on one Redis and one
 * namespace: tests/tests/c_programs.rs writes with rtc_core, runs phase 1,
 * checks with rtc_core, runs phase 2, and checks again.
 *
 * usage: crossover REDIS_URL NAMESPACE PHASE
 *
 * Before phase 1, Rust has stored r1 = "from-rust" under [shared, r] and
 * r2 = "rust-keep" under [keep].
 * Phase 1 reads r1, writes c1 = "from-c" under [shared], c2 = "c-keep" under
 * [keep2], computes c3 = "c-computed" under [shared], computes a derived key
 * for app::users::load(01 02) = "c-call", and invalidates [keep].
 * Between the phases Rust invalidates [shared] and stores r3 = "rust-3" under
 * [keep2].
 * Phase 2 sees c1, c3 and r1 gone, c2 and r3 there, then invalidates all.
 *
 * With the `rtc` command: before phase cli1 it stores cli1 = "from-cli" under
 * [cli]; phase cli1 reads it and writes c-cli = "c-to-cli" under [cli2]; the
 * command reads that and invalidates [cli2]; phase cli2 sees c-cli gone.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int compute(void *userdata, rtc_output *output) {
  return rtc_output_write(output, B((const char *)userdata)) == RTC_RESULT_OK ? 0 : 1;
}

static int must_not_run(void *userdata, rtc_output *output) {
  (void)userdata;
  (void)output;
  CHECK(!"the value was written by Rust: the computation must not run");
  return 1;
}

static void expect_hit(rtc_cache *cache, const char *key, const rtc_bytes *tags, size_t n, const char *want) {
  rtc_value *value = NULL;
  rtc_result rc = rtc_cache_get(cache, B(key), tags, n, &value);
  if (rc != RTC_RESULT_OK || !value_is(value, want)) {
    printf("FAIL: get %s: %s, want hit %s\n", key, rtc_result_name(rc), want);
    testutil_failures++;
  }
  testutil_checks++;
  rtc_value_free(value);
}

static void expect_miss(rtc_cache *cache, const char *key, const rtc_bytes *tags, size_t n) {
  rtc_value *value = NULL;
  rtc_result rc = rtc_cache_get(cache, B(key), tags, n, &value);
  if (rc != RTC_RESULT_MISS) {
    printf("FAIL: get %s: %s, want miss\n", key, rtc_result_name(rc));
    testutil_failures++;
  }
  testutil_checks++;
  rtc_value_free(value);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REDIS_URL NAMESPACE PHASE\n", argv[0]);
    return 2;
  }
  rtc_cache *cache = testutil_cache(argv[1], argv[2]);
  rtc_bytes shared[] = {tag("shared")};
  rtc_bytes r_shared[] = {tag("r"), tag("shared")}; /* Rust wrote [shared, r]: order does not matter */
  rtc_bytes keep[] = {tag("keep")};
  rtc_bytes keep2[] = {tag("keep2")};
  const uint8_t call_args[] = {1, 2};

  if (strcmp(argv[3], "1") == 0) {
    expect_hit(cache, "r1", r_shared, 2, "from-rust");
    expect_hit(cache, "r2", keep, 1, "rust-keep");
    CHECK_RC(rtc_cache_set(cache, B("c1"), B("from-c"), shared, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
    CHECK_RC(rtc_cache_set(cache, B("c2"), B("c-keep"), keep2, 1, RTC_LIFETIME_FOREVER), RTC_RESULT_OK);

    rtc_compute_options *options = NULL;
    rtc_value *value = NULL;
    REQUIRE(rtc_compute_options_new(B("c3"), &options) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_tags(options, shared, 1) == RTC_RESULT_OK);
    REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
    CHECK_RC(rtc_cache_get_or_compute(cache, options, compute, "c-computed", &value), RTC_RESULT_OK);
    CHECK(value_is(value, "c-computed"));
    rtc_value_free(value);
    rtc_compute_options_free(options);

    REQUIRE(rtc_compute_options_new_call("app::users", "", "load", call_args, sizeof call_args, &options) ==
            RTC_RESULT_OK);
    value = NULL;
    CHECK_RC(rtc_cache_get_or_compute(cache, options, compute, "c-call", &value), RTC_RESULT_OK);
    CHECK(value_is(value, "c-call"));
    rtc_value_free(value);
    rtc_compute_options_free(options);

    /* Rust computed r-call for app::users::load(03) before phase 1. */
    const uint8_t rust_args[] = {3};
    REQUIRE(rtc_compute_options_new_call("app::users", "", "load", rust_args, 1, &options) == RTC_RESULT_OK);
    value = NULL;
    CHECK_RC(rtc_cache_get_or_compute(cache, options, must_not_run, NULL, &value), RTC_RESULT_OK);
    CHECK(value_is(value, "r-call"));
    rtc_value_free(value);
    rtc_compute_options_free(options);

    CHECK_RC(rtc_cache_invalidate(cache, keep, 1), RTC_RESULT_OK);
    expect_miss(cache, "r2", keep, 1);
  } else if (strcmp(argv[3], "2") == 0) {
    expect_miss(cache, "c1", shared, 1);
    expect_miss(cache, "c3", shared, 1);
    expect_miss(cache, "r1", r_shared, 2);
    expect_hit(cache, "c2", keep2, 1, "c-keep");
    expect_hit(cache, "r3", keep2, 1, "rust-3");
    CHECK_RC(rtc_cache_invalidate_all(cache), RTC_RESULT_OK);
    expect_miss(cache, "c2", keep2, 1);
  } else if (strcmp(argv[3], "cli1") == 0) {
    rtc_bytes cli[] = {tag("cli")}, cli2[] = {tag("cli2")};
    expect_hit(cache, "cli1", cli, 1, "from-cli");
    CHECK_RC(rtc_cache_set(cache, B("c-cli"), B("c-to-cli"), cli2, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  } else if (strcmp(argv[3], "cli2") == 0) {
    rtc_bytes cli2[] = {tag("cli2")};
    expect_miss(cache, "c-cli", cli2, 1);
  } else {
    fprintf(stderr, "unknown phase %s\n", argv[3]);
    return 2;
  }
  rtc_cache_free(cache);
  return testutil_finish("c-crossover");
}
