/*
 * Many pthreads sharing one rtc_cache against a real Redis.
 *
 * usage: threads REDIS_URL REDIS_PORT NAMESPACE DEAD_PORT
 *
 * 1. get-or-compute with the lock: THREADS callers on one cold key. The
 *    computation waits until Redis reports every other caller blocked on the
 *    lock's wake-up list (INFO clients: blocked_clients), so the callers
 *    really overlap; it must run exactly once, and the hook must report one
 *    full miss and THREADS - 1 waiters that got its value.
 * 2. The split form: THREADS callers of get-or-lock on another cold key;
 *    exactly one gets a ticket holding the lock, and once it stores the value
 *    with set-and-unlock every other caller returns that value.
 * 3. Mixed traffic: set, get, delete and invalidate from every thread at once.
 * 4. The split form with Redis unreachable (DEAD_PORT: nothing listens), where
 *    the Redis lock fails open: still one ticket in this process, stored once
 *    every other caller waits for it (rtc_cache_single_flight_waiters), and
 *    THREADS - 1 callers get its value.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define THREADS 48
#define MIXED_THREADS 16
#define MIXED_ROUNDS 100

static rtc_cache *cache;
static int redis_port;
static pthread_barrier_t start;

/* ---- A minimal Redis probe: INFO clients over a raw socket. ---- */

/* Returns Redis's blocked_clients count, or -1 on error. */
static int blocked_clients(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)redis_port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int result = -1;
  char reply[8192];
  size_t got = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
      write(fd, "INFO clients\r\n", 14) == 14) {
    /* A bulk reply: $LEN\r\n...\r\n; read until blocked_clients is in it. */
    while (got < sizeof reply - 1) {
      ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
      if (n <= 0) break;
      got += (size_t)n;
      reply[got] = '\0';
      char *p = strstr(reply, "blocked_clients:");
      if (p != NULL && strchr(p, '\n') != NULL) {
        result = atoi(p + strlen("blocked_clients:"));
        break;
      }
    }
  }
  close(fd);
  return result;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits until `want` clients are blocked in Redis; false after 20 s. */
static bool wait_blocked(int want) {
  double deadline = now_s() + 20.0;
  struct timespec pause = {0, 1000000}; /* poll every millisecond */
  while (now_s() < deadline) {
    if (blocked_clients() >= want) return true;
    nanosleep(&pause, NULL);
  }
  printf("only %d of %d callers blocked on the lock\n", blocked_clients(), want);
  return false;
}

/* ---- Phase 1: get-or-compute with the lock. ---- */

static atomic_int computations;
static atomic_int hook_calls, hook_full_miss, hook_waiters, hook_first_read_hits, hook_errors;
static atomic_bool waited_for_all;
static rtc_compute_options *cold_options;

static void hook(void *userdata, const rtc_cache_info *info) {
  atomic_int *calls = (atomic_int *)userdata;
  atomic_fetch_add(calls, 1);
  if (rtc_cache_info_error(info) != RTC_RESULT_OK) atomic_fetch_add(&hook_errors, 1);
  if (rtc_cache_info_lock_full_miss(info) && !rtc_cache_info_hit(info)) atomic_fetch_add(&hook_full_miss, 1);
  else if (rtc_cache_info_lock_full_hit(info) && rtc_cache_info_hit(info)) atomic_fetch_add(&hook_first_read_hits, 1);
  else if (rtc_cache_info_hit(info)) atomic_fetch_add(&hook_waiters, 1);
}

static int slow_compute(void *userdata, rtc_output *output) {
  (void)userdata;
  atomic_fetch_add(&computations, 1);
  /* Hold the lock until every other caller waits for it. */
  atomic_store(&waited_for_all, wait_blocked(THREADS - 1));
  return rtc_output_write(output, B("computed-once")) == RTC_RESULT_OK ? 0 : 1;
}

static void *lock_caller(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start);
  rtc_value *value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, cold_options, slow_compute, NULL, &value), RTC_RESULT_OK);
  CHECK(value_is(value, "computed-once"));
  rtc_value_free(value);
  return NULL;
}

/* ---- Phase 2: get-or-lock / set-and-unlock. ---- */

static atomic_int tickets, locked_tickets, hits;
static rtc_compute_options *split_options;

static void *split_caller(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start);
  rtc_value *value = NULL;
  rtc_ticket *ticket = NULL;
  rtc_result rc = rtc_cache_get_or_lock(cache, split_options, &value, &ticket);
  if (rc == RTC_RESULT_MISS) {
    CHECK(value == NULL && ticket != NULL);
    atomic_fetch_add(&tickets, 1);
    if (rtc_ticket_holds_lock(ticket)) atomic_fetch_add(&locked_tickets, 1);
    CHECK(wait_blocked(THREADS - 1));
    CHECK_RC(rtc_cache_set_and_unlock(cache, ticket, B("split-value"), RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  } else {
    CHECK_RC(rc, RTC_RESULT_OK);
    CHECK(ticket == NULL);
    CHECK(value_is(value, "split-value"));
    atomic_fetch_add(&hits, 1);
    rtc_value_free(value);
  }
  return NULL;
}

/* ---- Phase 4: the split form with Redis unreachable. ---- */

static rtc_cache *down_cache;
static atomic_int down_tickets, down_hits, down_errors;

static void down_hook(void *userdata, const rtc_cache_info *info) {
  (void)userdata;
  if (rtc_cache_info_error(info) == RTC_RESULT_BACKEND_UNAVAILABLE) atomic_fetch_add(&down_errors, 1);
}

static void *down_caller(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start);
  rtc_value *value = NULL;
  rtc_ticket *ticket = NULL;
  rtc_result rc = rtc_cache_get_or_lock(down_cache, split_options, &value, &ticket);
  if (rc == RTC_RESULT_MISS) {
    CHECK(value == NULL && ticket != NULL && !rtc_ticket_holds_lock(ticket));
    atomic_fetch_add(&down_tickets, 1);
    /* Until every other caller follows this one (polled, with a deadline). */
    struct timespec deadline, now;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 20;
    while (rtc_cache_single_flight_waiters(down_cache) < THREADS - 1) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec > deadline.tv_sec) break;
      sched_yield();
    }
    CHECK(rtc_cache_single_flight_waiters(down_cache) == THREADS - 1);
    /* Nothing can be stored: the Redis error is returned (and reported). */
    CHECK_RC(rtc_cache_set_and_unlock(down_cache, ticket, B("down-value"), RTC_LIFETIME_DEFAULT),
             RTC_RESULT_BACKEND_UNAVAILABLE);
  } else {
    CHECK_RC(rc, RTC_RESULT_OK);
    CHECK(ticket == NULL);
    CHECK(value_is(value, "down-value"));
    atomic_fetch_add(&down_hits, 1);
    rtc_value_free(value);
  }
  return NULL;
}

/* ---- Phase 3: mixed traffic. ---- */

static void *mixed_caller(void *arg) {
  int id = (int)(intptr_t)arg;
  char key[64], own_tag[64], value[64];
  snprintf(own_tag, sizeof own_tag, "thread-%d", id);
  rtc_bytes tags[2] = {tag(own_tag), tag("shared")};
  pthread_barrier_wait(&start);
  for (int round = 0; round < MIXED_ROUNDS; round++) {
    snprintf(key, sizeof key, "k-%d-%d", id, round % 10);
    snprintf(value, sizeof value, "v-%d-%d", id, round);
    CHECK_RC(rtc_cache_set(cache, B(key), B(value), tags, 2, 60), RTC_RESULT_OK);
    rtc_value *got = NULL;
    /* Another thread may invalidate "shared" in between: a hit must be ours. */
    rtc_result rc = rtc_cache_get(cache, B(key), tags, 2, &got);
    CHECK(rc == RTC_RESULT_OK || rc == RTC_RESULT_MISS);
    if (rc == RTC_RESULT_OK) CHECK(value_is(got, value));
    rtc_value_free(got);
    if (round % 7 == 0) CHECK_RC(rtc_cache_invalidate(cache, &tags[0], 1), RTC_RESULT_OK);
    if (id == 0 && round % 25 == 0) CHECK_RC(rtc_cache_invalidate(cache, &tags[1], 1), RTC_RESULT_OK);
    if (round % 5 == 0) CHECK_RC(rtc_cache_delete(cache, B(key), tags, 2, NULL), RTC_RESULT_OK);
  }
  return NULL;
}

static void run_threads(int n, void *(*body)(void *)) {
  pthread_t threads[THREADS];
  REQUIRE(pthread_barrier_init(&start, NULL, (unsigned)n) == 0);
  for (int i = 0; i < n; i++) REQUIRE(pthread_create(&threads[i], NULL, body, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < n; i++) REQUIRE(pthread_join(threads[i], NULL) == 0);
  pthread_barrier_destroy(&start);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s REDIS_URL REDIS_PORT NAMESPACE DEAD_PORT\n", argv[0]);
    return 2;
  }
  redis_port = atoi(argv[2]);
  REQUIRE(blocked_clients() == 0);

  rtc_cache_builder *builder = rtc_cache_builder_new();
  REQUIRE(rtc_cache_builder_set_url(builder, argv[1]) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(builder, argv[3]) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_hook(builder, hook, &hook_calls) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_new(builder, &cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(builder);

  /* Phase 1 */
  rtc_bytes cold_tags[] = {tag("reports"), tag("daily")};
  REQUIRE(rtc_compute_options_new(B("cold-key"), &cold_options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_tags(cold_options, cold_tags, 2) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(cold_options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(cold_options, 30000) == RTC_RESULT_OK);
  run_threads(THREADS, lock_caller);
  CHECK(atomic_load(&computations) == 1);
  CHECK(atomic_load(&waited_for_all));
  CHECK(atomic_load(&hook_calls) == THREADS);
  CHECK(atomic_load(&hook_full_miss) == 1);
  CHECK(atomic_load(&hook_waiters) == THREADS - 1);
  CHECK(atomic_load(&hook_first_read_hits) == 0);
  CHECK(atomic_load(&hook_errors) == 0);
  printf("lock: %d callers, %d computation(s), %d waiters\n", THREADS, atomic_load(&computations),
         atomic_load(&hook_waiters));
  /* Now warm: one more call is a first-read hit and computes nothing. */
  rtc_value *value = NULL;
  CHECK_RC(rtc_cache_get_or_compute(cache, cold_options, slow_compute, NULL, &value), RTC_RESULT_OK);
  CHECK(value_is(value, "computed-once") && atomic_load(&computations) == 1);
  CHECK(atomic_load(&hook_first_read_hits) == 1);
  rtc_value_free(value);
  rtc_compute_options_free(cold_options);

  /* Phase 2 */
  REQUIRE(rtc_compute_options_new(B("split-key"), &split_options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_tags(split_options, cold_tags, 2) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(split_options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(split_options, 30000) == RTC_RESULT_OK);
  run_threads(THREADS, split_caller);
  CHECK(atomic_load(&tickets) == 1);
  CHECK(atomic_load(&locked_tickets) == 1);
  CHECK(atomic_load(&hits) == THREADS - 1);
  printf("split: %d callers, %d ticket(s), %d hits\n", THREADS, atomic_load(&tickets), atomic_load(&hits));
  rtc_compute_options_free(split_options);

  /* Phase 3 */
  run_threads(MIXED_THREADS, mixed_caller);

  /* Phase 4 */
  char dead_url[64];
  snprintf(dead_url, sizeof dead_url, "redis://127.0.0.1:%d/", atoi(argv[4]));
  builder = rtc_cache_builder_new();
  REQUIRE(rtc_cache_builder_set_url(builder, dead_url) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_namespace(builder, argv[3]) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_socket_connect_timeout_ms(builder, 200) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_builder_set_hook(builder, down_hook, NULL) == RTC_RESULT_OK);
  REQUIRE(rtc_cache_new(builder, &down_cache) == RTC_RESULT_OK);
  rtc_cache_builder_free(builder);
  REQUIRE(rtc_compute_options_new(B("down-key"), &split_options) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock(split_options, true) == RTC_RESULT_OK);
  REQUIRE(rtc_compute_options_set_lock_timeout_ms(split_options, 30000) == RTC_RESULT_OK);
  run_threads(THREADS, down_caller);
  CHECK(atomic_load(&down_tickets) == 1);
  CHECK(atomic_load(&down_hits) == THREADS - 1);
  CHECK(atomic_load(&down_errors) == THREADS); /* every call says Redis was down */
  CHECK(rtc_cache_single_flight_waiters(down_cache) == 0);
  printf("split, Redis down: %d callers, %d ticket(s), %d hits\n", THREADS, atomic_load(&down_tickets),
         atomic_load(&down_hits));
  rtc_compute_options_free(split_options);
  rtc_cache_free(down_cache);

  rtc_cache_free(cache);
  return testutil_finish("c-threads");
}
