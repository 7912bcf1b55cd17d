/* The C program of ffi/python/README.md: reads the user the Python service
 * cached, then invalidates its tag for every language at once. */
#include <stdio.h>
#include <string.h>

#include <rtc.h>

#define BYTES(s) (const uint8_t *)(s), strlen(s)

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s REDIS_URL USER_ID\n", argv[0]);
    return 2;
  }
  char key[64];
  snprintf(key, sizeof key, "user:%s", argv[2]);

  rtc_cache_builder *builder = rtc_cache_builder_new();
  rtc_cache_builder_set_url(builder, argv[1]);
  rtc_cache_builder_set_namespace(builder, "shop"); /* the Python service's namespace */
  rtc_cache *cache = NULL;
  rtc_result rc = rtc_cache_new(builder, &cache);
  rtc_cache_builder_free(builder);
  if (rc != RTC_RESULT_OK) {
    fprintf(stderr, "rtc: %s\n", rtc_last_error_message());
    return 1;
  }

  /* The tags the Python decorator gave, in any order. */
  rtc_bytes tags[] = {{BYTES("users")}, {BYTES(key)}};
  rtc_value *value = NULL;
  rc = rtc_cache_get(cache, BYTES(key), tags, 2, &value);
  if (rc == RTC_RESULT_OK) {
    printf("c: cached by python: %.*s\n", (int)rtc_value_len(value), (const char *)rtc_value_data(value));
    rtc_value_free(value);
  } else {
    printf("c: %s\n", rtc_result_name(rc));
  }

  /* The user changed: every entry tagged user:ID goes, in Python too. */
  rc = rtc_cache_invalidate(cache, &tags[1], 1);
  printf("c: invalidated %s: %s\n", key, rtc_result_name(rc));
  rtc_cache_free(cache);
  return rc == RTC_RESULT_OK ? 0 : 1;
}
