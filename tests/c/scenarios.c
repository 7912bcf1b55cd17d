/*
 * Runs the scenario table (tests/scenarios.txt, the one every surface runs)
 * through the C API against a real Redis.
 *
 * usage: scenarios REDIS_URL SCENARIOS_TXT NAMESPACE_PREFIX
 * Prints one line per failed step and "c-scenarios: N scenarios, M steps"
 * at the end; exits 0 when every step passed, 1 when one failed, 2 when the
 * table cannot be read or parsed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc.h"

#define MAX_FIELDS 8
#define MAX_TAGS 16
#define MAX_BYTES 1024

/* A decoded VALUE field: a token, or x:HEX. */
typedef struct {
  uint8_t bytes[MAX_BYTES];
  size_t len;
} buffer;

/* A decoded TAGS field: "-" or a comma-separated list (pointing into the line). */
typedef struct {
  rtc_bytes tags[MAX_TAGS];
  size_t len;
} tag_list;

static int failures = 0;
static int steps = 0;

static void fail(const char *scenario, int line, const char *what, rtc_result rc) {
  printf("FAIL %s (line %d): %s [%s: %s]\n", scenario, line, what, rtc_result_name(rc),
         rc == RTC_RESULT_OK || rc == RTC_RESULT_MISS ? "" : rtc_last_error_message());
  failures++;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool parse_value(const char *field, buffer *out) {
  size_t n = strlen(field);
  if (strncmp(field, "x:", 2) != 0) {
    if (n > MAX_BYTES) return false;
    memcpy(out->bytes, field, n);
    out->len = n;
    return true;
  }
  const char *hex = field + 2;
  size_t h = n - 2;
  if (h % 2 != 0 || h / 2 > MAX_BYTES) return false;
  for (size_t i = 0; i < h; i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->bytes[i / 2] = (uint8_t)(hi * 16 + lo);
  }
  out->len = h / 2;
  return true;
}

/* Splits `field` in place on commas. */
static bool parse_tags(char *field, tag_list *out) {
  out->len = 0;
  if (strcmp(field, "-") == 0) return true;
  char *start = field;
  for (;;) {
    char *comma = strchr(start, ',');
    if (out->len == MAX_TAGS) return false;
    size_t len = comma ? (size_t)(comma - start) : strlen(start);
    out->tags[out->len].data = (const uint8_t *)start;
    out->tags[out->len].len = len;
    out->len++;
    if (!comma) return true;
    *comma = '\0';
    start = comma + 1;
  }
}

static bool same(const rtc_value *v, const buffer *want) {
  return rtc_value_len(v) == want->len &&
         (want->len == 0 || memcmp(rtc_value_data(v), want->bytes, want->len) == 0);
}

/* The computation of a get_or_compute step: returns NEW and records that it ran. */
typedef struct {
  const buffer *value;
  bool ran;
} compute_state;

static int compute(void *userdata, rtc_output *output) {
  compute_state *state = (compute_state *)userdata;
  state->ran = true;
  return rtc_output_write(output, state->value->bytes, state->value->len) == RTC_RESULT_OK ? 0 : 1;
}

static rtc_cache *new_cache(const char *url, const char *prefix, const char *scenario) {
  char ns[512];
  snprintf(ns, sizeof ns, "%s-%s", prefix, scenario);
  rtc_cache_builder *b = rtc_cache_builder_new();
  rtc_cache *cache = NULL;
  bool configured = b != NULL;
  if (configured && strncmp(url, "cluster:", 8) == 0) {
    /* "cluster:URL1,URL2,...": the seed nodes of a Redis Cluster. */
    char nodes[4096];
    snprintf(nodes, sizeof nodes, "%s", url + 8);
    for (char *node = strtok(nodes, ","); node != NULL && configured; node = strtok(NULL, ",")) {
      configured = rtc_cache_builder_add_cluster_node(b, node) == RTC_RESULT_OK;
    }
  } else if (configured) {
    configured = rtc_cache_builder_set_url(b, url) == RTC_RESULT_OK;
  }
  if (!configured ||
      rtc_cache_builder_set_namespace(b, ns) != RTC_RESULT_OK ||
      rtc_cache_new(b, &cache) != RTC_RESULT_OK) {
    printf("FATAL: cannot build a cache for %s: %s\n", ns, rtc_last_error_message());
    exit(2);
  }
  rtc_cache_builder_free(b);
  return cache;
}

/* Runs one step; returns false when the line is not a known step. */
static bool run_step(rtc_cache *cache, const char *scenario, int line, char **f, int n) {
  buffer value, expect;
  tag_list tags;
  rtc_result rc;
  if (strcmp(f[0], "set") == 0 && n == 4) {
    if (!parse_value(f[2], &value) || !parse_tags(f[3], &tags)) return false;
    rc = rtc_cache_set(cache, (const uint8_t *)f[1], strlen(f[1]), value.bytes, value.len, tags.tags,
                       tags.len, RTC_LIFETIME_DEFAULT);
    if (rc != RTC_RESULT_OK) fail(scenario, line, "set failed", rc);
  } else if (strcmp(f[0], "get") == 0 && ((n == 4 && strcmp(f[3], "miss") == 0) ||
                                          (n == 5 && strcmp(f[3], "hit") == 0))) {
    bool hit = n == 5;
    if (!parse_tags(f[2], &tags) || (hit && !parse_value(f[4], &expect))) return false;
    rtc_value *got = NULL;
    rc = rtc_cache_get(cache, (const uint8_t *)f[1], strlen(f[1]), tags.tags, tags.len, &got);
    if (hit && rc != RTC_RESULT_OK) fail(scenario, line, "get must hit", rc);
    if (hit && rc == RTC_RESULT_OK && !same(got, &expect)) fail(scenario, line, "get hit a wrong value", rc);
    if (!hit && rc != RTC_RESULT_MISS) fail(scenario, line, "get must miss", rc);
    if (!hit && got != NULL) fail(scenario, line, "a miss wrote value_out", rc);
    rtc_value_free(got);
  } else if (strcmp(f[0], "delete") == 0 && n == 4 &&
             (strcmp(f[3], "deleted") == 0 || strcmp(f[3], "absent") == 0)) {
    if (!parse_tags(f[2], &tags)) return false;
    bool deleted = false;
    rc = rtc_cache_delete(cache, (const uint8_t *)f[1], strlen(f[1]), tags.tags, tags.len, &deleted);
    if (rc != RTC_RESULT_OK) fail(scenario, line, "delete failed", rc);
    else if (deleted != (strcmp(f[3], "deleted") == 0)) fail(scenario, line, "delete: wrong outcome", rc);
  } else if (strcmp(f[0], "invalidate") == 0 && n == 2) {
    if (!parse_tags(f[1], &tags)) return false;
    rc = rtc_cache_invalidate(cache, tags.tags, tags.len);
    if (rc != RTC_RESULT_OK) fail(scenario, line, "invalidate failed", rc);
  } else if (strcmp(f[0], "invalidate_all") == 0 && n == 1) {
    rc = rtc_cache_invalidate_all(cache);
    if (rc != RTC_RESULT_OK) fail(scenario, line, "invalidate_all failed", rc);
  } else if (strcmp(f[0], "get_or_compute") == 0 && n == 6 &&
             (strcmp(f[5], "ran") == 0 || strcmp(f[5], "cached") == 0)) {
    if (!parse_tags(f[2], &tags) || !parse_value(f[3], &value) || !parse_value(f[4], &expect)) return false;
    rtc_compute_options *options = NULL;
    if (rtc_compute_options_new((const uint8_t *)f[1], strlen(f[1]), &options) != RTC_RESULT_OK ||
        rtc_compute_options_set_tags(options, tags.tags, tags.len) != RTC_RESULT_OK ||
        rtc_compute_options_set_lock(options, true) != RTC_RESULT_OK) {
      fail(scenario, line, "cannot make compute options", RTC_RESULT_OTHER);
      rtc_compute_options_free(options);
      return true;
    }
    compute_state state = {&value, false};
    rtc_value *got = NULL;
    rc = rtc_cache_get_or_compute(cache, options, compute, &state, &got);
    if (rc != RTC_RESULT_OK) fail(scenario, line, "get_or_compute failed", rc);
    else if (!same(got, &expect)) fail(scenario, line, "get_or_compute returned a wrong value", rc);
    else if (state.ran != (strcmp(f[5], "ran") == 0)) fail(scenario, line, "the computation ran or not wrongly", rc);
    rtc_value_free(got);
    rtc_compute_options_free(options);
  } else {
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REDIS_URL|cluster:URL,URL,... SCENARIOS_TXT NAMESPACE_PREFIX\n", argv[0]);
    return 2;
  }
  const char *url = argv[1], *path = argv[2], *prefix = argv[3];
  FILE *table = fopen(path, "r");
  if (table == NULL) {
    perror(path);
    return 2;
  }
  char line[4096], scenario[256] = "";
  int line_no = 0, scenarios = 0;
  rtc_cache *cache = NULL;
  while (fgets(line, sizeof line, table) != NULL) {
    line_no++;
    const char *first = line + strspn(line, " \t");
    if (*first == '#') continue;
    char *fields[MAX_FIELDS];
    int n = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok != NULL; tok = strtok(NULL, " \t\r\n")) {
      if (n == MAX_FIELDS) {
        printf("FATAL line %d: too many fields\n", line_no);
        return 2;
      }
      fields[n++] = tok;
    }
    if (n == 0) continue;
    if (strcmp(fields[0], "scenario") == 0 && n == 2) {
      snprintf(scenario, sizeof scenario, "%s", fields[1]);
      rtc_cache_free(cache);
      cache = new_cache(url, prefix, scenario);
      scenarios++;
      continue;
    }
    if (cache == NULL || !run_step(cache, scenario, line_no, fields, n)) {
      printf("FATAL line %d: cannot parse step\n", line_no);
      return 2;
    }
    steps++;
  }
  fclose(table);
  rtc_cache_free(cache);
  printf("c-scenarios: %d scenarios, %d steps\n", scenarios, steps);
  printf("c-scenarios: %d passed, %d failed\n", scenarios * (failures == 0), failures);
  return failures == 0 ? 0 : 1;
}
