/*
 * Bad input and failures through the C API: NULL pointers, invalid UTF-8,
 * zero lengths, a value over max_value_size, bad settings, a failing compute
 * callback, a Redis that is down and one that does not answer. Each must give
 * a result code (and a message), never a crash; out-parameters must stay
 * untouched on failure. Also checks the version, result names, the hook's
 * fields, and disabled and in-memory caches.
 *
 * usage: bad_input REDIS_URL DEAD_PORT NAMESPACE
 * (DEAD_PORT: a loopback port where no Redis runs)
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static const uint8_t bad_utf8[] = {'k', 0xff, 0xfe};
static rtc_value *const SENTINEL_VALUE = (rtc_value *)(uintptr_t)0x5e5e;
static rtc_cache *const SENTINEL_CACHE = (rtc_cache *)(uintptr_t)0x5e5e;
static rtc_ticket *const SENTINEL_TICKET = (rtc_ticket *)(uintptr_t)0x5e5e;

static int compute_calls = 0;

static int compute_ok(void *userdata, rtc_output *output) {
  compute_calls++;
  const char *v = userdata != NULL ? (const char *)userdata : "computed";
  return rtc_output_write(output, B(v)) == RTC_RESULT_OK ? 0 : 1;
}

static int compute_fails(void *userdata, rtc_output *output) {
  (void)userdata;
  compute_calls++;
  /* Writing part of a value and then failing must store nothing. */
  if (rtc_output_write(output, B("partial")) != RTC_RESULT_OK) return 1;
  return 42;
}

/* Writes 10 bytes, then 7 more (17, over a max_value_size of 16), and
 * returns 0 even though the second write was refused. */
static int compute_big(void *userdata, rtc_output *output) {
  (void)userdata;
  compute_calls++;
  CHECK_RC(rtc_output_write(output, B("0123456789")), RTC_RESULT_OK);
  CHECK_RC(rtc_output_write(output, B("abcdefg")), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(rtc_last_error_message(), "max_value_size") != NULL);
  return 0;
}

static int compute_bad_writes(void *userdata, rtc_output *output) {
  (void)userdata;
  compute_calls++;
  CHECK_RC(rtc_output_write(NULL, B("x")), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_output_write(output, NULL, 3), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_output_write(output, NULL, 0), RTC_RESULT_OK);
  return rtc_output_write(output, B("ok")) == RTC_RESULT_OK ? 0 : 1;
}

/* What the hook saw last. */
typedef struct {
  int calls;
  rtc_result error;
  char error_message[512];
  char key[128];
  size_t tags_len;
  bool tags_null, arguments_null;
  char first_tag[64];
  char module[64], type[64], name[64];
  size_t arguments_len;
  uint8_t arguments[64];
  bool method, hit, lock_full_hit, lock_full_miss;
  size_t serialized_size;
  uint64_t elapsed_ns, decorated_elapsed_ns;
  void *call_userdata;
} hook_record;

static void copy_bytes(char *dst, size_t cap, rtc_bytes b) {
  size_t n = b.len < cap - 1 ? b.len : cap - 1;
  if (n > 0) memcpy(dst, b.data, n);
  dst[n] = '\0';
}

static void record_hook(void *userdata, const rtc_cache_info *info) {
  hook_record *r = (hook_record *)userdata;
  r->calls++;
  r->error = rtc_cache_info_error(info);
  const char *message = rtc_cache_info_error_message(info);
  snprintf(r->error_message, sizeof r->error_message, "%s", message ? message : "");
  copy_bytes(r->key, sizeof r->key, rtc_cache_info_key(info));
  r->tags_len = rtc_cache_info_tags_len(info);
  /* Out of range: empty bytes, still a readable pointer. */
  r->tags_null = rtc_cache_info_tag(info, r->tags_len).len == 0 && rtc_cache_info_tag(info, r->tags_len).data != NULL;
  r->arguments_null = rtc_cache_info_arguments(info).data == NULL;
  r->first_tag[0] = '\0';
  if (r->tags_len > 0) copy_bytes(r->first_tag, sizeof r->first_tag, rtc_cache_info_tag(info, 0));
  snprintf(r->module, sizeof r->module, "%s", rtc_cache_info_function_module(info));
  snprintf(r->type, sizeof r->type, "%s", rtc_cache_info_function_type(info));
  snprintf(r->name, sizeof r->name, "%s", rtc_cache_info_function_name(info));
  rtc_bytes arguments = rtc_cache_info_arguments(info);
  r->arguments_len = arguments.len;
  if (arguments.len <= sizeof r->arguments && arguments.len > 0) memcpy(r->arguments, arguments.data, arguments.len);
  r->method = rtc_cache_info_method(info);
  r->hit = rtc_cache_info_hit(info);
  r->lock_full_hit = rtc_cache_info_lock_full_hit(info);
  r->lock_full_miss = rtc_cache_info_lock_full_miss(info);
  r->serialized_size = rtc_cache_info_serialized_size(info);
  r->elapsed_ns = rtc_cache_info_elapsed_ns(info);
  r->decorated_elapsed_ns = rtc_cache_info_decorated_elapsed_ns(info);
  r->call_userdata = rtc_cache_info_call_userdata(info);
}

static rtc_cache *cache_with(const char *url, const char *ns, size_t max_value_size, hook_record *hook) {
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(b != NULL);
  REQUIRE(rtc_cache_builder_set_url(b, url) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(b, ns) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_max_value_size(b, max_value_size) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_socket_timeout_ms(b, 300) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_socket_connect_timeout_ms(b, 300) == RTC_RESULT_OK);
  if (hook != NULL) REQUIRE(rtc_cache_builder_set_hook(b, record_hook, hook) == RTC_RESULT_OK);
  rtc_cache *cache = NULL;
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(b);
  return cache;
}

static void version_and_names(void) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", RTC_VERSION_MAJOR, RTC_VERSION_MINOR, RTC_VERSION_PATCH);
  CHECK(strcmp(rtc_version(), RTC_VERSION) == 0);
  CHECK(strcmp(rtc_version(), want) == 0);
  CHECK(RTC_RESULT_OK == 0);
  CHECK(strcmp(rtc_result_name(RTC_RESULT_MISS), "RTC_RESULT_MISS") == 0);
  CHECK(strcmp(rtc_result_name(RTC_RESULT_PANIC), "RTC_RESULT_PANIC") == 0);
  CHECK(strcmp(rtc_result_name(12345), "RTC_RESULT_UNKNOWN") == 0);
  CHECK(rtc_last_error_message() != NULL);
}

static void null_pointers(rtc_cache *cache) {
  rtc_bytes tags[] = {tag("a")};
  rtc_bytes null_tag[] = {{NULL, 3}};
  rtc_value *value = SENTINEL_VALUE;
  rtc_cache *built = SENTINEL_CACHE;

  /* The free functions accept NULL. */
  rtc_cache_free(NULL);
  rtc_cache_builder_free(NULL);
  rtc_value_free(NULL);
  rtc_compute_options_free(NULL);
  rtc_ticket_free(NULL);
  CHECK(rtc_value_data(NULL) == NULL && rtc_value_len(NULL) == 0);
  CHECK(!rtc_ticket_holds_lock(NULL) && rtc_ticket_lock_waiting_ms(NULL) == 0);

  /* Builder setters and rtc_cache_new. */
  CHECK_RC(rtc_cache_builder_set_namespace(NULL, "ns"), RTC_RESULT_NULL_PARAMETER);
  CHECK(strstr(rtc_last_error_message(), "builder") != NULL);
  CHECK_RC(rtc_cache_builder_set_host(NULL, "h"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_port(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_db(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_ssl(NULL, true), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_username(NULL, "u"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_password(NULL, "p"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_url(NULL, "redis://x/"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_socket_timeout_ms(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_socket_connect_timeout_ms(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_default_lifetime(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_lifetime_for_tags(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_disabled(NULL, true), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_in_local_memory(NULL, true), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_max_value_size(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_fail_safe(NULL, 1000, 1024), RTC_RESULT_NULL_PARAMETER);
  CHECK(!rtc_cache_info_stale(NULL));
  CHECK_RC(rtc_cache_builder_set_hook(NULL, NULL, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_new(NULL, &built), RTC_RESULT_NULL_PARAMETER);
  CHECK(built == SENTINEL_CACHE);
  rtc_cache_builder *b = rtc_cache_builder_new();
  CHECK_RC(rtc_cache_builder_set_fail_safe(b, 1000, 0), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(rtc_last_error_message(), "max_bytes") != NULL);
  CHECK_RC(rtc_cache_builder_set_fail_safe(b, 0, 0), RTC_RESULT_OK); /* off */
  CHECK_RC(rtc_cache_builder_set_namespace(b, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_host(b, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_url(b, NULL), RTC_RESULT_OK); /* NULL unsets the URL */
  CHECK_RC(rtc_cache_builder_set_username(b, NULL), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_password(b, NULL), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_new(b, NULL), RTC_RESULT_NULL_PARAMETER);
  rtc_cache_builder_free(b);

  /* Operations. */
  CHECK_RC(rtc_cache_set(NULL, B("k"), B("v"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  CHECK(strstr(rtc_last_error_message(), "cache is NULL") != NULL);
  CHECK_RC(rtc_cache_set(cache, NULL, 1, B("v"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_set(cache, B("k"), NULL, 5, tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), NULL, 2, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), null_tag, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get(NULL, B("k"), tags, 1, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get(cache, NULL, 2, tags, 1, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get(cache, B("k"), NULL, 1, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get(cache, B("k"), tags, 1, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK(value == SENTINEL_VALUE);
  CHECK_RC(rtc_cache_delete(NULL, B("k"), tags, 1, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_delete(cache, NULL, 1, tags, 1, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_invalidate(NULL, tags, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_invalidate(cache, NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_invalidate(cache, null_tag, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_invalidate_all(NULL), RTC_RESULT_NULL_PARAMETER);

  /* Compute options and get-or-compute / get-or-lock / set-and-unlock. */
  rtc_compute_options *options = NULL;
  CHECK_RC(rtc_compute_options_new(NULL, 1, &options), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_new(B("k"), NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_new_call(NULL, "", "f", NULL, 0, &options), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_new_call("m", NULL, "f", NULL, 0, &options), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_new_call("m", "", NULL, NULL, 0, &options), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_new_call("m", "", "f", NULL, 4, &options), RTC_RESULT_NULL_PARAMETER);
  CHECK(options == NULL);
  CHECK_RC(rtc_compute_options_set_tags(NULL, tags, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_set_lifetime(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_set_lock(NULL, true), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_set_lock_timeout_ms(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_set_method(NULL, true), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_compute_options_set_hook_userdata(NULL, NULL), RTC_RESULT_NULL_PARAMETER);
  REQUIRE(rtc_compute_options_new(B("nk"), &options) == RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_tags(options, NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_compute(NULL, options, compute_ok, NULL, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_compute(cache, NULL, compute_ok, NULL, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_compute(cache, options, NULL, NULL, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, NULL, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK(value == SENTINEL_VALUE);
  rtc_ticket *ticket = SENTINEL_TICKET;
  CHECK_RC(rtc_cache_get_or_lock(NULL, options, &value, &ticket), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_lock(cache, NULL, &value, &ticket), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_lock(cache, options, NULL, &ticket), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK(value == SENTINEL_VALUE && ticket == SENTINEL_TICKET);
  CHECK_RC(rtc_cache_set_and_unlock(cache, NULL, B("v"), RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  /* A NULL value consumes (and releases) the ticket anyway. */
  ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, NULL, 2, RTC_LIFETIME_DEFAULT), RTC_RESULT_NULL_PARAMETER);
  rtc_compute_options_free(options);
}

static void invalid_utf8(rtc_cache *cache) {
  rtc_bytes tags[] = {tag("ok"), {bad_utf8, sizeof bad_utf8}};
  rtc_value *value = SENTINEL_VALUE;
  CHECK_RC(rtc_cache_set(cache, bad_utf8, sizeof bad_utf8, B("v"), NULL, 0, RTC_LIFETIME_DEFAULT),
           RTC_RESULT_INVALID_UTF8);
  CHECK(strstr(rtc_last_error_message(), "UTF-8") != NULL);
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), tags, 2, RTC_LIFETIME_DEFAULT), RTC_RESULT_INVALID_UTF8);
  CHECK(strstr(rtc_last_error_message(), "tag 1") != NULL);
  CHECK_RC(rtc_cache_get(cache, bad_utf8, sizeof bad_utf8, NULL, 0, &value), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_get(cache, B("k"), tags, 2, &value), RTC_RESULT_INVALID_UTF8);
  CHECK(value == SENTINEL_VALUE);
  CHECK_RC(rtc_cache_delete(cache, bad_utf8, sizeof bad_utf8, NULL, 0, NULL), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_invalidate(cache, tags, 2), RTC_RESULT_INVALID_UTF8);
  /* Values are bytes: invalid UTF-8 in a value is fine. */
  CHECK_RC(rtc_cache_set(cache, B("bin"), bad_utf8, sizeof bad_utf8, NULL, 0, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  value = NULL;
  CHECK_RC(rtc_cache_get(cache, B("bin"), NULL, 0, &value), RTC_RESULT_OK);
  CHECK(rtc_value_len(value) == sizeof bad_utf8 && memcmp(rtc_value_data(value), bad_utf8, sizeof bad_utf8) == 0);
  rtc_value_free(value);

  char bad_cstr[] = {'n', (char)0xc3, (char)0x28, 0};
  rtc_cache_builder *b = rtc_cache_builder_new();
  CHECK_RC(rtc_cache_builder_set_namespace(b, bad_cstr), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_builder_set_host(b, bad_cstr), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_builder_set_url(b, bad_cstr), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_builder_set_username(b, bad_cstr), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_builder_set_password(b, bad_cstr), RTC_RESULT_INVALID_UTF8);
  rtc_cache_builder_free(b);
  rtc_compute_options *options = NULL;
  CHECK_RC(rtc_compute_options_new(bad_utf8, sizeof bad_utf8, &options), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_compute_options_new_call(bad_cstr, "", "f", NULL, 0, &options), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_compute_options_new_call("m", bad_cstr, "f", NULL, 0, &options), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_compute_options_new_call("m", "", bad_cstr, NULL, 0, &options), RTC_RESULT_INVALID_UTF8);
  CHECK(options == NULL);
  REQUIRE(rtc_compute_options_new(B("k"), &options) == RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_tags(options, tags, 2), RTC_RESULT_INVALID_UTF8);
  rtc_compute_options_free(options);
}

static void zero_lengths_and_limits(rtc_cache *cache) {
  rtc_value *value = NULL;
  /* An empty key and an empty value are legal; NULL with length 0 too. */
  CHECK_RC(rtc_cache_set(cache, NULL, 0, NULL, 0, NULL, 0, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get(cache, (const uint8_t *)"", 0, NULL, 0, &value), RTC_RESULT_OK);
  CHECK(value != NULL && rtc_value_len(value) == 0 && rtc_value_data(value) != NULL);
  rtc_value_free(value);
  value = NULL;
  rtc_bytes empty_tag[] = {{NULL, 0}};
  CHECK_RC(rtc_cache_set(cache, B("k0"), B("v0"), empty_tag, 1, RTC_LIFETIME_FOREVER), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get(cache, B("k0"), empty_tag, 1, &value), RTC_RESULT_OK);
  CHECK(value_is(value, "v0"));
  rtc_value_free(value);
  CHECK_RC(rtc_cache_invalidate(cache, NULL, 0), RTC_RESULT_OK);

  /* Lifetimes: default, forever, seconds; other negatives are refused. */
  CHECK_RC(rtc_cache_set(cache, B("life"), B("v"), NULL, 0, 30), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_set(cache, B("life"), B("v"), NULL, 0, -2), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(rtc_last_error_message(), "lifetime") != NULL);
  CHECK_RC(rtc_cache_set(cache, B("life"), B("v"), NULL, 0, INT64_MIN), RTC_RESULT_INVALID_ARGUMENT);

  /* max_value_size is 16 for this cache. */
  char big[17];
  memset(big, 'x', sizeof big);
  CHECK_RC(rtc_cache_set(cache, B("big"), (const uint8_t *)big, 16, NULL, 0, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_set(cache, B("big"), (const uint8_t *)big, 17, NULL, 0, RTC_LIFETIME_DEFAULT),
           RTC_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(rtc_last_error_message(), "max_value_size") != NULL);
  /* An impossible length is refused before the buffer is touched. */
  CHECK_RC(rtc_cache_set(cache, B("big"), (const uint8_t *)big, SIZE_MAX, NULL, 0, RTC_LIFETIME_DEFAULT),
           RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_get(cache, (const uint8_t *)"k", SIZE_MAX, NULL, 0, &value), RTC_RESULT_INVALID_ARGUMENT);
  rtc_bytes huge_tag[] = {{(const uint8_t *)"t", SIZE_MAX}};
  CHECK_RC(rtc_cache_invalidate(cache, huge_tag, 1), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_invalidate(cache, huge_tag, SIZE_MAX), RTC_RESULT_INVALID_ARGUMENT);

  /* set-and-unlock refuses an oversized value, and releases the lock. */
  rtc_compute_options *options = NULL;
  REQUIRE(rtc_compute_options_new(B("locked-big"), &options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(options, 20000) == RTC_RESULT_OK);
  rtc_ticket *ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket));
  CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, (const uint8_t *)big, 17, RTC_LIFETIME_DEFAULT),
           RTC_RESULT_INVALID_ARGUMENT);
  ticket = NULL;
  /* Had the lock leaked, this would wait 20 s and come back without it. */
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket) && rtc_ticket_lock_waiting_ms(ticket) < 1000);
  CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, B("fits"), -7), RTC_RESULT_INVALID_ARGUMENT);
  ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket));
  CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, B("fits"), RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  ticket = NULL;
  value = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_OK);
  CHECK(value_is(value, "fits") && ticket == NULL);
  rtc_value_free(value);
  CHECK_RC(rtc_compute_options_set_lifetime(options, -3), RTC_RESULT_INVALID_ARGUMENT);
  rtc_compute_options_free(options);

  /* A computed value over the limit is refused while it is written, as
   * rtc_cache_set refuses it: the write fails, the call fails with the same
   * code whatever the callback returns, nothing is cached or returned, and
   * the lock is released at once. */
  REQUIRE(rtc_compute_options_new(B("computed-big"), &options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(options, 20000) == RTC_RESULT_OK);
  value = SENTINEL_VALUE;
  compute_calls = 0;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_big, NULL, &value), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(strstr(rtc_last_error_message(), "max_value_size") != NULL);
  CHECK(value == SENTINEL_VALUE && compute_calls == 1);
  value = NULL;
  CHECK_RC(rtc_cache_get(cache, B("computed-big"), NULL, 0, &value), RTC_RESULT_MISS);
  /* Had the lock leaked, this would wait 20 s and come back without it. */
  ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket) && rtc_ticket_lock_waiting_ms(ticket) < 1000);
  rtc_ticket_free(ticket);
  /* A value that fits exactly is computed, returned and cached. */
  value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, "sixteen-bytes!!!", &value), RTC_RESULT_OK);
  CHECK(value_is(value, "sixteen-bytes!!!"));
  rtc_value_free(value);
  value = NULL;
  CHECK_RC(rtc_cache_get(cache, B("computed-big"), NULL, 0, &value), RTC_RESULT_OK);
  rtc_value_free(value);
  rtc_compute_options_free(options);
}

static void bad_settings(void) {
  rtc_cache *cache = SENTINEL_CACHE;
  rtc_cache_builder *b = rtc_cache_builder_new();
  CHECK_RC(rtc_cache_builder_set_url(b, "definitely not a url"), RTC_RESULT_OK); /* checked at build time */
  CHECK_RC(rtc_cache_new(b, &cache), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(cache == SENTINEL_CACHE);
  CHECK(strlen(rtc_last_error_message()) > 0);
  CHECK_RC(rtc_cache_builder_set_url(b, "ftp://127.0.0.1/"), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_new(b, &cache), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(cache == SENTINEL_CACHE);
  rtc_cache_builder_free(b);

  /* Redis Sentinel: nodes need a master name, and refuse a URL beside them. */
  b = rtc_cache_builder_new();
  CHECK_RC(rtc_cache_builder_add_sentinel_node(NULL, "redis://127.0.0.1:26379"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_add_sentinel_node(b, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_add_sentinel_node(b, "\xff"), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_cache_builder_set_sentinel_master_name(NULL, "m"), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_add_sentinel_node(b, "redis://127.0.0.1:26379"), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_new(b, &cache), RTC_RESULT_INVALID_ARGUMENT); /* no master name */
  CHECK(strstr(rtc_last_error_message(), "sentinel_master_name") != NULL);
  CHECK_RC(rtc_cache_builder_set_sentinel_master_name(b, "mymaster"), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_url(b, "redis://127.0.0.1:6379/"), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_new(b, &cache), RTC_RESULT_INVALID_ARGUMENT); /* a URL and Sentinel */
  CHECK(cache == SENTINEL_CACHE);
  CHECK_RC(rtc_cache_builder_set_url(b, NULL), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_sentinel_master_name(b, NULL), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_new(b, &cache), RTC_RESULT_INVALID_ARGUMENT); /* unset again */
  rtc_cache_builder_free(b);
}

static void failing_computations(rtc_cache *cache) {
  rtc_compute_options *options = NULL;
  rtc_bytes tags[] = {tag("t")};
  REQUIRE(rtc_compute_options_new(B("fails"), &options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_tags(options, tags, 1) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(options, 20000) == RTC_RESULT_OK);
  rtc_value *value = SENTINEL_VALUE;
  compute_calls = 0;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_fails, NULL, &value), RTC_RESULT_COMPUTE_FAILED);
  CHECK(value == SENTINEL_VALUE && compute_calls == 1);
  CHECK(strstr(rtc_last_error_message(), "42") != NULL);
  value = NULL;
  CHECK_RC(rtc_cache_get(cache, B("fails"), tags, 1, &value), RTC_RESULT_MISS);
  /* The lock was released: the next caller locks at once. */
  rtc_ticket *ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket) && rtc_ticket_lock_waiting_ms(ticket) < 1000);
  rtc_ticket_free(ticket); /* gives up: releases the lock again */
  ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(rtc_ticket_holds_lock(ticket) && rtc_ticket_lock_waiting_ms(ticket) < 1000);
  rtc_ticket_free(ticket);
  /* A callback misusing rtc_output gets codes, and its value is used. */
  value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_bad_writes, NULL, &value), RTC_RESULT_OK);
  CHECK(value_is(value, "ok"));
  rtc_value_free(value);
  rtc_compute_options_free(options);
}

static void hook_fields(const char *url, const char *ns) {
  hook_record r;
  memset(&r, 0, sizeof r);
  rtc_cache *cache = cache_with(url, ns, 1024, &r);
  rtc_compute_options *options = NULL;
  const uint8_t args[] = {1, 2, 3};
  int marker = 0;
  rtc_bytes tags[] = {tag("users"), tag("user:7")};
  REQUIRE(rtc_compute_options_new_call("app::users", "UserRepo", "load", args, sizeof args, &options) ==
          RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_tags(options, tags, 2) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_hook_userdata(options, &marker) == RTC_RESULT_OK);
  rtc_value *value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, "user-7", &value), RTC_RESULT_OK);
  CHECK(value_is(value, "user-7"));
  rtc_value_free(value);
  CHECK(r.calls == 1 && r.error == RTC_RESULT_OK && r.error_message[0] == '\0');
  CHECK(strcmp(r.module, "app::users") == 0 && strcmp(r.type, "UserRepo") == 0 && strcmp(r.name, "load") == 0);
  CHECK(r.method && !r.hit && r.lock_full_miss && !r.lock_full_hit);
  CHECK(r.tags_len == 2 && strcmp(r.first_tag, "users") == 0);
  CHECK(strlen(r.key) > 0); /* derived from the identity and the arguments */
  /* The arguments as one CBOR byte string: 0x43 (bytes, length 3), then the bytes. */
  CHECK(r.arguments_len == 4 && r.arguments[0] == 0x43 && memcmp(r.arguments + 1, args, 3) == 0);
  CHECK(r.serialized_size == strlen("user-7"));
  CHECK(r.elapsed_ns >= r.decorated_elapsed_ns && r.elapsed_ns > 0);
  CHECK(r.call_userdata == &marker);
  value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, "other", &value), RTC_RESULT_OK);
  CHECK(value_is(value, "user-7"));
  rtc_value_free(value);
  CHECK(r.calls == 2 && r.hit && r.lock_full_hit && !r.lock_full_miss && r.decorated_elapsed_ns == 0);
  rtc_compute_options_free(options);

  /* The same identity with other arguments is another key. */
  const uint8_t other_args[] = {9};
  REQUIRE(rtc_compute_options_new_call("app::users", "UserRepo", "load", other_args, 1, &options) == RTC_RESULT_OK);
  value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, "user-9", &value), RTC_RESULT_OK);
  CHECK(value_is(value, "user-9") && r.call_userdata == NULL && !r.hit);
  CHECK(r.tags_len == 0 && r.tags_null && !r.arguments_null);
  rtc_value_free(value);
  rtc_compute_options_free(options);
  rtc_cache_free(cache);
}

/* Bad per-call settings are refused when they are set, not after a computation. */
static void options_refuse_at_once(void) {
  rtc_compute_options *options = NULL;
  REQUIRE(rtc_compute_options_new(B("k"), &options) == RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lifetime(options, INT64_MAX), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_compute_options_set_lifetime(options, 3153600001), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_compute_options_set_lifetime(options, 3153600000), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock_timeout_ms(options, UINT64_MAX), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_compute_options_set_lock_timeout_ms(options, 86400001), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_compute_options_set_lock_timeout_ms(options, 86400000), RTC_RESULT_OK);
  rtc_compute_options_free(options);
}

static void redis_down(int dead_port, const char *ns) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/", dead_port);
  hook_record r;
  memset(&r, 0, sizeof r);
  rtc_cache *cache = cache_with(url, ns, 1024, &r); /* building does not connect */
  rtc_bytes tags[] = {tag("t")};
  rtc_value *value = SENTINEL_VALUE;
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_BACKEND_UNAVAILABLE);
  CHECK(strstr(rtc_last_error_message(), "backend-unavailable") != NULL);
  /* A failed read is an error, never a miss. */
  CHECK_RC(rtc_cache_get(cache, B("k"), tags, 1, &value), RTC_RESULT_BACKEND_UNAVAILABLE);
  CHECK(value == SENTINEL_VALUE);
  CHECK_RC(rtc_cache_delete(cache, B("k"), tags, 1, NULL), RTC_RESULT_BACKEND_UNAVAILABLE);
  CHECK_RC(rtc_cache_invalidate(cache, tags, 1), RTC_RESULT_BACKEND_UNAVAILABLE);
  CHECK_RC(rtc_cache_invalidate_all(cache), RTC_RESULT_BACKEND_UNAVAILABLE);
  rtc_compute_options *options = NULL;
  REQUIRE(rtc_compute_options_new(B("k"), &options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(options, true) == RTC_RESULT_OK);
  rtc_ticket *ticket = SENTINEL_TICKET;
  /* A failed lookup still gives a ticket (it leads this process's flight, so
     concurrent callers compute once); it stores nothing. */
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK(value == SENTINEL_VALUE && ticket != SENTINEL_TICKET && ticket != NULL);
  CHECK(!rtc_ticket_holds_lock(ticket));
  CHECK(r.calls == 0);
  /* Its end reports the failed lookup to the hook and returns it: never silent. */
  CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, B("v"), RTC_LIFETIME_DEFAULT), RTC_RESULT_BACKEND_UNAVAILABLE);
  CHECK(r.calls == 1 && r.error == RTC_RESULT_BACKEND_UNAVAILABLE && !r.hit);
  /* Given up instead, the same. */
  ticket = SENTINEL_TICKET;
  CHECK_RC(rtc_cache_get_or_lock(cache, options, &value, &ticket), RTC_RESULT_MISS);
  rtc_ticket_free(ticket);
  CHECK(r.calls == 2 && r.error == RTC_RESULT_BACKEND_UNAVAILABLE && !r.hit);
  /* get-or-compute bypasses the cache: computes, returns, reports the error to the hook. */
  value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, options, compute_ok, "fallback", &value), RTC_RESULT_OK);
  CHECK(value_is(value, "fallback"));
  rtc_value_free(value);
  CHECK(r.calls == 3 && r.error == RTC_RESULT_BACKEND_UNAVAILABLE && !r.hit);
  CHECK(strlen(r.error_message) > 0);
  rtc_compute_options_free(options);
  rtc_cache_free(cache);
}

static void redis_silent(const char *ns) {
  /* A listening socket that never answers: the connect succeeds, reads time out. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 16) == 0);
  REQUIRE(getsockname(fd, (struct sockaddr *)&addr, &len) == 0);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/", ntohs(addr.sin_port));
  rtc_cache *cache = cache_with(url, ns, 1024, NULL);
  rtc_value *value = SENTINEL_VALUE;
  CHECK_RC(rtc_cache_get(cache, B("k"), NULL, 0, &value), RTC_RESULT_TIMEOUT);
  CHECK(value == SENTINEL_VALUE);
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), NULL, 0, RTC_LIFETIME_DEFAULT), RTC_RESULT_TIMEOUT);
  rtc_cache_free(cache);
  close(fd);
}

static void disabled_and_memory(void) {
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(rtc_cache_builder_set_disabled(b, true) == RTC_RESULT_OK);
  rtc_cache *cache = NULL;
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_value *value = NULL;
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), NULL, 0, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get(cache, B("k"), NULL, 0, &value), RTC_RESULT_MISS);
  rtc_cache_free(cache);

  REQUIRE(rtc_cache_builder_set_disabled(b, false) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_in_local_memory(b, true) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_host(b, "nowhere.invalid") == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_port(b, 1) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_db(b, 3) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_ssl(b, false) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_username(b, "app") == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_password(b, "secret") == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_default_lifetime(b, 0) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_lifetime_for_tags(b, 0) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(b);
  rtc_bytes tags[] = {tag("t")};
  CHECK_RC(rtc_cache_set(cache, B("k"), B("v"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get(cache, B("k"), tags, 1, &value), RTC_RESULT_OK);
  CHECK(value_is(value, "v"));
  rtc_value_free(value);
  value = NULL;
  CHECK_RC(rtc_cache_invalidate(cache, tags, 1), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get(cache, B("k"), tags, 1, &value), RTC_RESULT_MISS);
  rtc_cache_free(cache);
}

/* The near cache from C: configured on the builder, its counters read
 * through the size-versioned rtc_near_stats; bad arguments refused. */
static void near_cache(const char *url, const char *ns) {
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(rtc_cache_builder_set_url(b, url) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(b, ns) == RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_near_cache(NULL, 10, 1000, 1000), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_near_cache(b, 10, 0, 1000), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_builder_set_near_cache(b, 10, 1 << 20, 0), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_builder_set_near_cache(b, 1000, 1 << 20, 60000), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_near_cache_tracking(NULL, RTC_NEAR_TRACKING_BROADCAST), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_builder_set_near_cache_tracking(b, 7), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_builder_set_near_cache_tracking(b, RTC_NEAR_TRACKING_BROADCAST), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_near_cache_tracking(b, RTC_NEAR_TRACKING_PER_READER), RTC_RESULT_OK);
  rtc_cache *cache = NULL;
  REQUIRE(rtc_cache_new(b, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(b);

  rtc_near_stats stats;
  CHECK_RC(rtc_cache_near_stats(NULL, &stats, sizeof stats), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_near_stats(cache, NULL, sizeof stats), RTC_RESULT_NULL_PARAMETER);
  /* Smaller than the struct's first version (up to `live`): refused. */
  CHECK_RC(rtc_cache_near_stats(cache, &stats, offsetof(rtc_near_stats, live)), RTC_RESULT_INVALID_ARGUMENT);
  /* A program built against the first version passes its size: the fields
   * appended since (evictions) are not written. */
  memset(&stats, 0xAB, sizeof stats);
  CHECK_RC(rtc_cache_near_stats(cache, &stats, offsetof(rtc_near_stats, evictions)), RTC_RESULT_OK);
  CHECK(stats.evictions == 0xABABABABABABABABull);
  CHECK_RC(rtc_cache_near_stats(cache, &stats, sizeof stats), RTC_RESULT_OK);
  CHECK(stats.evictions == 0);
  /* The tracking connection comes up in the background (polled, with a deadline). */
  memset(&stats, 0, sizeof stats);
  for (int i = 0; i < 10000000 && !stats.live; i++) {
    REQUIRE(rtc_cache_near_stats(cache, &stats, sizeof stats) == RTC_RESULT_OK);
  }
  CHECK(stats.live);
  CHECK(stats.tracking == RTC_NEAR_TRACKING_PER_READER);
  rtc_bytes tags[] = {{(const uint8_t *)"t", 1}};
  CHECK_RC(rtc_cache_set(cache, B("near"), B("v"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  uint64_t hits = 0;
  for (int i = 0; i < 100000 && hits == 0; i++) {
    rtc_value *value = NULL;
    CHECK_RC(rtc_cache_get(cache, B("near"), tags, 1, &value), RTC_RESULT_OK);
    rtc_value_free(value);
    REQUIRE(rtc_cache_near_stats(cache, &stats, sizeof stats) == RTC_RESULT_OK);
    hits = stats.hits;
  }
  if (hits == 0) printf("near stats: hits %llu misses %llu invalidations %llu flushes %llu entries %llu live %d\n", (unsigned long long)stats.hits, (unsigned long long)stats.misses, (unsigned long long)stats.invalidations, (unsigned long long)stats.flushes, (unsigned long long)stats.entries, stats.live);
  CHECK(hits >= 1 && stats.entries >= 1 && stats.bytes > 0);
  /* A near hit read with rtc_cache_get_leased_into carries a lease that
   * holds while the stamp reads the same; the own invalidation below ends it. */
  const uint64_t *stamp = rtc_cache_near_stamp(cache);
  CHECK(stamp != NULL);
  uint8_t buf[8];
  size_t len = 0;
  rtc_value *big = NULL;
  rtc_near_lease lease = {0, 0};
  /* Polled: a flush (a heartbeat missed on a loaded machine) empties the near cache. */
  for (int i = 0; i < 100000 && lease.stamp == 0; i++) {
    CHECK_RC(rtc_cache_get_leased_into(cache, B("near"), tags, 1, buf, sizeof buf, &len, &big, &lease), RTC_RESULT_OK);
  }
  CHECK(len == 1 && buf[0] == 'v' && big == NULL);
  CHECK((lease.stamp & 1) == 1 && lease.valid_ns > 0); /* found while live: odd */
  CHECK_RC(rtc_cache_get_leased_into(cache, B("near"), tags, 1, buf, sizeof buf, &len, &big, NULL),
           RTC_RESULT_NULL_PARAMETER);
  /* An own invalidation applies at once, and ends the lease. */
  CHECK_RC(rtc_cache_invalidate(cache, tags, 1), RTC_RESULT_OK);
  CHECK(stamp != NULL && *stamp != lease.stamp);
  rtc_value *value = SENTINEL_VALUE;
  CHECK_RC(rtc_cache_get(cache, B("near"), tags, 1, &value), RTC_RESULT_MISS);
  rtc_cache_free(cache);

  /* Off: RTC_RESULT_MISS, no stamp, and hits without a lease. */
  rtc_cache *plain = cache_with(url, ns, 16, NULL);
  CHECK_RC(rtc_cache_near_stats(plain, &stats, sizeof stats), RTC_RESULT_MISS);
  CHECK(rtc_cache_near_stamp(plain) == NULL && rtc_cache_near_stamp(NULL) == NULL);
  CHECK_RC(rtc_cache_set(plain, B("leased"), B("w"), tags, 1, RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  lease.stamp = lease.valid_ns = 99;
  CHECK_RC(rtc_cache_get_leased_into(plain, B("leased"), tags, 1, buf, sizeof buf, &len, &big, &lease), RTC_RESULT_OK);
  CHECK(len == 1 && buf[0] == 'w' && lease.stamp == 0 && lease.valid_ns == 0);
  lease.stamp = 99;
  CHECK_RC(rtc_cache_get_leased_into(plain, B("absent"), tags, 1, buf, sizeof buf, &len, &big, &lease), RTC_RESULT_MISS);
  CHECK(lease.stamp == 0);
  rtc_cache_free(plain);
}

/* rtc_cache_get_into: a value that fits is copied, one that does not comes
 * as an rtc_value (no second read), a miss writes nothing, bad buffers are
 * refused. */
static void get_into(rtc_cache *cache) {
  rtc_bytes tags[] = {tag("t")};
  uint8_t buf[8];
  size_t len = 12345;
  rtc_value *value = NULL;
  REQUIRE(rtc_cache_set(cache, B("into-small"), B("abc"), tags, 1, RTC_LIFETIME_DEFAULT) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_set(cache, B("into-big"), B("0123456789"), tags, 1, RTC_LIFETIME_DEFAULT) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_set(cache, B("into-empty"), NULL, 0, tags, 1, RTC_LIFETIME_DEFAULT) == RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get_into(cache, B("into-small"), tags, 1, buf, sizeof buf, &len, &value), RTC_RESULT_OK);
  CHECK(len == 3 && memcmp(buf, "abc", 3) == 0 && value == NULL);
  CHECK_RC(rtc_cache_get_into(cache, B("into-big"), tags, 1, buf, sizeof buf, &len, &value), RTC_RESULT_OK);
  CHECK(len == 10 && value != NULL && value_is(value, "0123456789"));
  rtc_value_free(value);
  value = NULL;
  CHECK_RC(rtc_cache_get_into(cache, B("into-empty"), tags, 1, NULL, 0, &len, &value), RTC_RESULT_OK);
  CHECK(len == 0 && value == NULL);
  len = 777;
  CHECK_RC(rtc_cache_get_into(cache, B("into-absent"), tags, 1, buf, sizeof buf, &len, &value), RTC_RESULT_MISS);
  CHECK(len == 777 && value == NULL);
  CHECK_RC(rtc_cache_get_into(cache, B("into-small"), tags, 1, NULL, 8, &len, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_into(cache, B("into-small"), tags, 1, buf, sizeof buf, NULL, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_into(cache, B("into-small"), tags, 1, buf, sizeof buf, &len, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_cache_get_into(NULL, B("into-small"), tags, 1, buf, sizeof buf, &len, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK(value == NULL);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REDIS_URL DEAD_PORT NAMESPACE\n", argv[0]);
    return 2;
  }
  const char *url = argv[1], *ns = argv[3];
  rtc_cache *cache = cache_with(url, ns, 16, NULL);
  version_and_names();
  null_pointers(cache);
  invalid_utf8(cache);
  zero_lengths_and_limits(cache);
  bad_settings();
  failing_computations(cache);
  get_into(cache);
  rtc_cache_free(cache);
  hook_fields(url, ns);
  options_refuse_at_once();
  redis_down(atoi(argv[2]), ns);
  redis_silent(ns);
  disabled_and_memory();
  near_cache(url, ns);
  return testutil_finish("c-bad-input");
}
