/* The C example of ffi/README.md (compiled and run by tests/tests/c_programs.rs). */
#include <stdio.h>
#include <string.h>

#include <rtc.h>

#define BYTES(s) (const uint8_t *)(s), strlen(s)

/* Computes a value on a miss: `userdata` first, the value goes to `out`. */
static int load_report(void *userdata, rtc_output *out) {
  const char *body = userdata; /* stands for a slow query */
  return rtc_output_write(out, BYTES(body)) == RTC_RESULT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  rtc_cache_builder *builder = rtc_cache_builder_new();
  rtc_cache_builder_set_url(builder, argc > 1 ? argv[1] : "redis://127.0.0.1:6379/");
  rtc_cache_builder_set_namespace(builder, "shop");
  rtc_cache *cache = NULL;
  rtc_result rc = rtc_cache_new(builder, &cache); /* one cache, shared by all threads */
  rtc_cache_builder_free(builder);
  if (rc != RTC_RESULT_OK) {
    fprintf(stderr, "rtc: %s\n", rtc_last_error_message());
    return 1;
  }

  rtc_bytes tags[] = {{BYTES("users")}, {BYTES("user:1")}};
  rc = rtc_cache_set(cache, BYTES("user:1"), BYTES("Ada"), tags, 2, RTC_LIFETIME_DEFAULT);

  rtc_value *value = NULL;
  if (rc == RTC_RESULT_OK) rc = rtc_cache_get(cache, BYTES("user:1"), tags, 2, &value);
  if (rc == RTC_RESULT_OK) {
    printf("hit: %.*s\n", (int)rtc_value_len(value), (const char *)rtc_value_data(value));
    rtc_value_free(value); /* the caller owns what rtc returns */
  }

  rtc_cache_invalidate(cache, &tags[1], 1); /* one write, however many entries */
  rc = rtc_cache_get(cache, BYTES("user:1"), tags, 2, &value);
  printf("after invalidate: %s\n", rc == RTC_RESULT_MISS ? "miss" : rtc_result_name(rc));

  rtc_compute_options *options = NULL;
  rtc_compute_options_new(BYTES("report:daily"), &options);
  rtc_compute_options_set_lock(options, true); /* concurrent callers compute once */
  rc = rtc_cache_get_or_compute(cache, options, load_report, "42 orders", &value);
  if (rc == RTC_RESULT_OK) {
    printf("report: %.*s\n", (int)rtc_value_len(value), (const char *)rtc_value_data(value));
    rtc_value_free(value);
  }
  rtc_compute_options_free(options);
  rtc_cache_free(cache);
  return rc == RTC_RESULT_OK ? 0 : 1;
}
