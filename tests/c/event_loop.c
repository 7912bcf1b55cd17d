/* The non-blocking API in an epoll loop, against a real Redis: many gets in
 * flight at once, a get-or-compute under the stampede lock computed once,
 * the in-flight bound, cancellation, a Redis that is down, freeing with
 * operations in flight, fail-safe after a failed computation, and the hook
 * run on the loop's thread.
 *
 * usage: event_loop REDIS_URL NAMESPACE DEAD_PORT
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "testutil.h"

#define GETS 64
#define LOCKERS 16

static pthread_t loop_thread;
static int hooks_run = 0;
static int hooks_off_thread = 0;

/* The hook: rtc_async_take runs it on the loop's thread. */
static void hook(void *userdata, const rtc_cache_info *info) {
  (void)userdata;
  hooks_run++;
  if (!pthread_equal(pthread_self(), loop_thread)) hooks_off_thread++;
  /* A call's own report (reports_reach_their_call): counted where it points. */
  int *reported = rtc_cache_info_call_userdata(info);
  if (reported != NULL) (*reported)++;
}

/* Waits (epoll) until the context's descriptor is readable, then takes what
 * is ready into `out`; returns how many. */
static size_t wait_and_take(int epfd, rtc_async *ctx, rtc_completion *out, size_t max) {
  for (;;) {
    struct epoll_event ev;
    int n = epoll_wait(epfd, &ev, 1, 10000);
    REQUIRE(n == 1); /* 10 s with nothing: an operation hung */
    size_t got = rtc_async_take(ctx, out, max, sizeof(rtc_completion));
    if (got > 0) return got;
  }
}

static int add_to_loop(rtc_async *ctx) {
  int epfd = epoll_create1(0);
  REQUIRE(epfd >= 0);
  struct epoll_event ev = {.events = EPOLLIN, .data = {.ptr = ctx}};
  REQUIRE(rtc_async_fd(ctx) >= 0);
  REQUIRE(epoll_ctl(epfd, EPOLL_CTL_ADD, rtc_async_fd(ctx), &ev) == 0);
  return epfd;
}

static rtc_cache_builder *builder_for(const char *url, const char *ns) {
  rtc_cache_builder *b = rtc_cache_builder_new();
  REQUIRE(b != NULL);
  CHECK_RC(rtc_cache_builder_set_url(b, url), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_namespace(b, ns), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_socket_timeout_ms(b, 2000), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_builder_set_hook(b, hook, NULL), RTC_RESULT_OK);
  return b;
}

/* Many gets in flight at once: every value comes back to its own userdata. */
static void many_gets(rtc_async *ctx, int epfd) {
  rtc_bytes tags[] = {{B("users")}};
  char keys[GETS][24];
  rtc_op op;
  int pending = 0;
  for (int i = 0; i < GETS; i++) {
    snprintf(keys[i], sizeof keys[i], "user:%d", i);
    CHECK_RC(rtc_async_set(ctx, B(keys[i]), B(keys[i]), tags, 1, RTC_LIFETIME_DEFAULT, keys[i], &op), RTC_RESULT_OK);
    pending++;
  }
  rtc_completion done[GETS];
  while (pending > 0) {
    size_t n = wait_and_take(epfd, ctx, done, GETS);
    for (size_t i = 0; i < n; i++) {
      CHECK(done[i].kind == RTC_OP_SET);
      CHECK_RC(done[i].result, RTC_RESULT_OK);
      pending--;
    }
  }
  for (int i = 0; i < GETS; i++) {
    CHECK_RC(rtc_async_get(ctx, B(keys[i]), tags, 1, keys[i], &op), RTC_RESULT_OK);
    CHECK(op != 0);
  }
  CHECK_RC(rtc_async_get(ctx, B("absent"), tags, 1, NULL, &op), RTC_RESULT_OK);
  CHECK(rtc_async_in_flight(ctx) <= GETS + 1);
  int hits = 0, misses = 0;
  pending = GETS + 1;
  while (pending > 0) {
    size_t n = wait_and_take(epfd, ctx, done, 7); /* small batches: the rest stays ready */
    for (size_t i = 0; i < n; i++) {
      CHECK(done[i].kind == RTC_OP_GET);
      if (done[i].userdata == NULL) {
        CHECK_RC(done[i].result, RTC_RESULT_MISS);
        CHECK(done[i].value == NULL);
        misses++;
      } else {
        const char *key = done[i].userdata;
        CHECK_RC(done[i].result, RTC_RESULT_OK);
        CHECK(done[i].value != NULL && rtc_value_len(done[i].value) == strlen(key) &&
              memcmp(rtc_value_data(done[i].value), key, strlen(key)) == 0);
        CHECK(done[i].error_message != NULL && done[i].error_message[0] == '\0');
        rtc_value_free(done[i].value);
        hits++;
      }
      pending--;
    }
  }
  CHECK(hits == GETS && misses == 1);
  CHECK(rtc_async_in_flight(ctx) == 0);
  printf("gets: %d hits, %d miss, in flight at once\n", hits, misses);
}

/* Get-or-compute under the lock: LOCKERS callers of one cold key, one
 * ticket; the loop computes and stores, the others get its value. */
static void compute_once(rtc_async *ctx, int epfd) {
  rtc_compute_options *options = NULL;
  CHECK_RC(rtc_compute_options_new(B("report"), &options), RTC_RESULT_OK);
  REQUIRE(options != NULL);
  rtc_bytes tags[] = {{B("orders")}};
  CHECK_RC(rtc_compute_options_set_tags(options, tags, 1), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock(options, true), RTC_RESULT_OK);
  rtc_op op;
  for (int i = 0; i < LOCKERS; i++) CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
  int tickets = 0, hits = 0, pending = LOCKERS, stored = 0;
  rtc_completion done[LOCKERS];
  while (pending > 0) {
    size_t n = wait_and_take(epfd, ctx, done, LOCKERS);
    for (size_t i = 0; i < n; i++, pending--) {
      if (done[i].kind == RTC_OP_SET_AND_UNLOCK) {
        CHECK_RC(done[i].result, RTC_RESULT_OK);
        stored++;
        continue;
      }
      CHECK(done[i].kind == RTC_OP_GET_OR_LOCK);
      if (done[i].result == RTC_RESULT_MISS) {
        CHECK(done[i].ticket != NULL && rtc_ticket_holds_lock(done[i].ticket));
        tickets++;
        /* The computation runs here, on the loop: the others wait on the
         * library's threads, not on this one. */
        CHECK_RC(rtc_async_set_and_unlock(ctx, done[i].ticket, B("42 orders"), RTC_LIFETIME_DEFAULT, NULL, &op),
                 RTC_RESULT_OK);
        pending++; /* its own completion */
      } else {
        CHECK_RC(done[i].result, RTC_RESULT_OK);
        CHECK(done[i].value != NULL && rtc_value_len(done[i].value) == 9);
        rtc_value_free(done[i].value);
        hits++;
      }
    }
  }
  CHECK(tickets == 1 && hits == LOCKERS - 1 && stored == 1);
  printf("lock: %d callers, %d ticket(s), %d hits\n", LOCKERS, tickets, hits);
  rtc_compute_options_free(options);
}

/* A call's report (the hook, with its options' call userdata) reaches it
 * before or with its completion, never after: a program frees what the
 * userdata points to once the operation is done. Rounds of REPORTED hits in
 * flight, each call with its own counter, freed as soon as it completes. */
#define REPORTED 64
static void reports_reach_their_call(rtc_async *ctx, int epfd) {
  rtc_compute_options *options[REPORTED];
  rtc_op op;
  int late = 0, doubled = 0;
  for (int i = 0; i < REPORTED; i++) {
    CHECK_RC(rtc_compute_options_new(B("reported"), &options[i]), RTC_RESULT_OK);
    REQUIRE(options[i] != NULL);
  }
  CHECK_RC(rtc_async_set(ctx, B("reported"), B("value"), NULL, 0, RTC_LIFETIME_DEFAULT, NULL, &op), RTC_RESULT_OK);
  rtc_completion done[REPORTED];
  CHECK(wait_and_take(epfd, ctx, done, REPORTED) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_OK);
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < REPORTED; i++) {
      int *reported = calloc(1, sizeof *reported);
      REQUIRE(reported != NULL);
      CHECK_RC(rtc_compute_options_set_hook_userdata(options[i], reported), RTC_RESULT_OK);
      CHECK_RC(rtc_async_get_or_lock(ctx, options[i], reported, &op), RTC_RESULT_OK);
    }
    for (int pending = REPORTED; pending > 0;) {
      size_t n = wait_and_take(epfd, ctx, done, 5); /* small batches: completions arrive while reports do */
      for (size_t i = 0; i < n; i++, pending--) {
        CHECK_RC(done[i].result, RTC_RESULT_OK);
        rtc_value_free(done[i].value);
        int *reported = done[i].userdata;
        if (*reported == 0) late++;
        if (*reported > 1) doubled++;
        free(reported); /* a report arriving later would write freed memory */
      }
    }
  }
  CHECK(late == 0);
  CHECK(doubled == 0);
  printf("reports: %d calls, %d reported after their completion\n", 50 * REPORTED, late);
  for (int i = 0; i < REPORTED; i++) rtc_compute_options_free(options[i]);
}

/* The bound, cancellation and a lock left waiting: followers of a held
 * ticket stay in flight until it is stored, so the bound is reached for sure. */
static void bound_and_cancel(const char *url, const char *ns) {
  rtc_cache_builder *b = builder_for(url, ns);
  rtc_async *ctx = NULL;
  CHECK_RC(rtc_async_new(b, 1, 3, &ctx), RTC_RESULT_OK);
  REQUIRE(ctx != NULL);
  int epfd = add_to_loop(ctx);
  rtc_compute_options *options = NULL;
  CHECK_RC(rtc_compute_options_new(B("slow"), &options), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock(options, true), RTC_RESULT_OK);
  rtc_op op, followers[3];
  rtc_completion done[4];
  CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 4) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  rtc_ticket *ticket = done[0].ticket;
  for (int i = 0; i < 3; i++) CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &followers[i]), RTC_RESULT_OK);
  CHECK(rtc_async_in_flight(ctx) == 3);
  CHECK_RC(rtc_async_get(ctx, B("k"), NULL, 0, NULL, &op), RTC_RESULT_FULL);
  CHECK_RC(rtc_async_cancel(ctx, followers[0]), RTC_RESULT_OK);
  CHECK_RC(rtc_async_cancel(ctx, followers[0]), RTC_RESULT_MISS); /* no longer in flight */
  CHECK(wait_and_take(epfd, ctx, done, 4) == 1);
  CHECK(done[0].op == followers[0]);
  CHECK_RC(done[0].result, RTC_RESULT_CANCELLED);
  rtc_cache *blocking = NULL;
  CHECK_RC(rtc_cache_new(b, &blocking), RTC_RESULT_OK);
  CHECK_RC(rtc_async_set_and_unlock(ctx, ticket, B("done"), RTC_LIFETIME_DEFAULT, NULL, &op), RTC_RESULT_OK);
  int hits = 0;
  for (int pending = 3; pending > 0;) {
    size_t n = wait_and_take(epfd, ctx, done, 4);
    for (size_t i = 0; i < n; i++, pending--) {
      if (done[i].kind == RTC_OP_GET_OR_LOCK) {
        CHECK_RC(done[i].result, RTC_RESULT_OK);
        rtc_value_free(done[i].value);
        hits++;
      } else {
        CHECK(done[i].kind == RTC_OP_SET_AND_UNLOCK);
        CHECK_RC(done[i].result, RTC_RESULT_OK);
      }
    }
  }
  CHECK(hits == 2);
  /* A ticket of the blocking API is refused by the non-blocking one. */
  rtc_value *value = NULL;
  rtc_ticket *blocking_ticket = NULL;
  rtc_compute_options *other = NULL;
  CHECK_RC(rtc_compute_options_new(B("blocking-ticket"), &other), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get_or_lock(blocking, other, &value, &blocking_ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_async_set_and_unlock(ctx, blocking_ticket, B("x"), RTC_LIFETIME_DEFAULT, NULL, &op),
           RTC_RESULT_INVALID_ARGUMENT);
  rtc_compute_options_free(other);
  rtc_cache_free(blocking);
  /* Freed with an operation in flight: a follower waits on a lock this loop
   * holds; the ticket outlives the context. */
  rtc_compute_options *held = NULL;
  CHECK_RC(rtc_compute_options_new(B("held"), &held), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock(held, true), RTC_RESULT_OK);
  CHECK_RC(rtc_async_get_or_lock(ctx, held, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 4) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  rtc_ticket *kept = done[0].ticket;
  CHECK_RC(rtc_async_get_or_lock(ctx, held, NULL, &op), RTC_RESULT_OK);
  CHECK(rtc_async_in_flight(ctx) == 1);
  rtc_compute_options_free(held);
  rtc_compute_options_free(options);
  printf("bound: full at 3, cancelled 1, %d hits after the store\n", hits);
  rtc_async_free(ctx);
  rtc_ticket_free(kept); /* released without blocking, on the threads it keeps */
  close(epfd);
  rtc_cache_builder_free(b);
}

/* A computation that fails ends its ticket with rtc_async_fail_and_unlock
 * (and rtc_cache_fail_and_unlock): the fail-safe value when fail-safe keeps
 * one, else a miss; the lock goes back at once either way. Another cache of
 * the namespace deletes the entry (as an eviction would: this one cannot
 * know), so only fail-safe still has the value. */
static void fail_safe_after_a_failed_computation(const char *url, const char *ns) {
  rtc_cache_builder *b = builder_for(url, ns);
  CHECK_RC(rtc_cache_builder_set_fail_safe(b, 60000, 1 << 20), RTC_RESULT_OK);
  rtc_async *ctx = NULL;
  CHECK_RC(rtc_async_new(b, 1, 0, &ctx), RTC_RESULT_OK);
  REQUIRE(ctx != NULL);
  rtc_cache *blocking = NULL, *other = NULL;
  CHECK_RC(rtc_cache_new(b, &blocking), RTC_RESULT_OK);
  rtc_cache_builder *plain = builder_for(url, ns);
  CHECK_RC(rtc_cache_new(plain, &other), RTC_RESULT_OK);
  int epfd = add_to_loop(ctx);
  rtc_bytes tags[] = {{B("fs")}};
  rtc_compute_options *options = NULL;
  CHECK_RC(rtc_compute_options_new(B("fail-safe"), &options), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_tags(options, tags, 1), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock(options, true), RTC_RESULT_OK);
  CHECK_RC(rtc_compute_options_set_lock_timeout_ms(options, 30000), RTC_RESULT_OK);
  rtc_op op;
  rtc_completion done[1];
  /* Computed and stored once: fail-safe keeps it. */
  CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  CHECK_RC(rtc_async_set_and_unlock(ctx, done[0].ticket, B("v1"), RTC_LIFETIME_DEFAULT, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_OK);
  bool deleted = false;
  CHECK_RC(rtc_cache_delete(other, B("fail-safe"), tags, 1, &deleted), RTC_RESULT_OK);
  CHECK(deleted);
  /* The computation fails: the fail-safe value, and the lock is free at once
   * (the next caller gets a ticket without waiting its 30 s). */
  int served = 0, missed = 0;
  for (int round = 0; round < 2; round++) {
    CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
    CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
    CHECK_RC(done[0].result, RTC_RESULT_MISS);
    CHECK(done[0].ticket != NULL && rtc_ticket_holds_lock(done[0].ticket));
    CHECK_RC(rtc_async_fail_and_unlock(ctx, done[0].ticket, NULL, &op), RTC_RESULT_OK);
    CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
    CHECK(done[0].kind == RTC_OP_FAIL_AND_UNLOCK);
    CHECK_RC(done[0].result, RTC_RESULT_OK);
    CHECK(done[0].value != NULL && rtc_value_len(done[0].value) == 2 && memcmp(rtc_value_data(done[0].value), "v1", 2) == 0);
    rtc_value_free(done[0].value);
    served++;
  }
  /* The blocking API, on a cache whose fail-safe saw nothing: a miss. */
  rtc_value *value = NULL;
  rtc_ticket *ticket = NULL;
  CHECK_RC(rtc_cache_get_or_lock(blocking, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_cache_fail_and_unlock(blocking, ticket, &value), RTC_RESULT_MISS);
  CHECK(value == NULL);
  missed++;
  /* Computed by the blocking cache, deleted by the other: its fail-safe value. */
  CHECK_RC(rtc_cache_get_or_lock(blocking, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_cache_set_and_unlock(blocking, ticket, B("v2"), RTC_LIFETIME_DEFAULT), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_delete(other, B("fail-safe"), tags, 1, &deleted), RTC_RESULT_OK);
  CHECK_RC(rtc_cache_get_or_lock(blocking, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_cache_fail_and_unlock(blocking, ticket, &value), RTC_RESULT_OK);
  CHECK(value != NULL && rtc_value_len(value) == 2 && memcmp(rtc_value_data(value), "v2", 2) == 0);
  rtc_value_free(value);
  served++;
  /* This process invalidates the tag: known invalidated, never served. */
  CHECK_RC(rtc_async_invalidate(ctx, tags, 1, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  CHECK_RC(rtc_async_fail_and_unlock(ctx, done[0].ticket, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  CHECK(done[0].value == NULL);
  missed++;
  /* A ticket of the other API is refused (and released). */
  CHECK_RC(rtc_cache_get_or_lock(blocking, options, &value, &ticket), RTC_RESULT_MISS);
  CHECK_RC(rtc_async_fail_and_unlock(ctx, ticket, NULL, &op), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_async_get_or_lock(ctx, options, NULL, &op), RTC_RESULT_OK);
  CHECK(wait_and_take(epfd, ctx, done, 1) == 1);
  CHECK_RC(done[0].result, RTC_RESULT_MISS);
  CHECK_RC(rtc_cache_fail_and_unlock(blocking, done[0].ticket, &value), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_cache_fail_and_unlock(blocking, NULL, &value), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_async_fail_and_unlock(ctx, NULL, NULL, &op), RTC_RESULT_NULL_PARAMETER);
  printf("fail-safe: %d failed computations served the fail-safe value, %d missed\n", served, missed);
  rtc_compute_options_free(options);
  rtc_cache_free(other);
  rtc_cache_free(blocking);
  rtc_async_free(ctx);
  close(epfd);
  rtc_cache_builder_free(plain);
  rtc_cache_builder_free(b);
}

/* Redis down: each operation completes with the error the blocking API gives. */
static void redis_down(const char *ns, const char *dead_port) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%s/", dead_port);
  rtc_cache_builder *b = builder_for(url, ns);
  rtc_async *ctx = NULL;
  CHECK_RC(rtc_async_new(b, 0, 0, &ctx), RTC_RESULT_OK);
  int epfd = add_to_loop(ctx);
  rtc_op op;
  rtc_bytes tags[] = {{B("t")}};
  CHECK_RC(rtc_async_get(ctx, B("k"), tags, 1, NULL, &op), RTC_RESULT_OK);
  CHECK_RC(rtc_async_set(ctx, B("k"), B("v"), tags, 1, RTC_LIFETIME_DEFAULT, NULL, &op), RTC_RESULT_OK);
  CHECK_RC(rtc_async_invalidate(ctx, tags, 1, NULL, &op), RTC_RESULT_OK);
  rtc_completion done[3];
  int failed = 0;
  for (int pending = 3; pending > 0;) {
    size_t n = wait_and_take(epfd, ctx, done, 3);
    for (size_t i = 0; i < n; i++, pending--) {
      CHECK_RC(done[i].result, RTC_RESULT_BACKEND_UNAVAILABLE);
      CHECK(done[i].error_message != NULL && strlen(done[i].error_message) > 0);
      failed++;
    }
  }
  printf("redis down: %d operations failed with BACKEND_UNAVAILABLE\n", failed);
  rtc_async_free(ctx);
  close(epfd);
  rtc_cache_builder_free(b);
}

static void bad_input(const char *url, const char *ns) {
  rtc_op op;
  rtc_completion done[1];
  CHECK_RC(rtc_async_new(NULL, 0, 0, NULL), RTC_RESULT_NULL_PARAMETER);
  rtc_cache_builder *b = builder_for(url, ns);
  rtc_async *ctx = NULL;
  CHECK_RC(rtc_async_new(b, 65, 0, &ctx), RTC_RESULT_INVALID_ARGUMENT);
  CHECK(ctx == NULL);
  CHECK_RC(rtc_async_new(b, 1, 0, &ctx), RTC_RESULT_OK);
  CHECK_RC(rtc_async_get(NULL, B("k"), NULL, 0, NULL, &op), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_async_get(ctx, B("k"), NULL, 0, NULL, NULL), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_async_get(ctx, (const uint8_t *)"\xff", 1, NULL, 0, NULL, &op), RTC_RESULT_INVALID_UTF8);
  CHECK_RC(rtc_async_set(ctx, B("k"), B("v"), NULL, 0, -5, NULL, &op), RTC_RESULT_INVALID_ARGUMENT);
  CHECK_RC(rtc_async_set_and_unlock(ctx, NULL, B("v"), RTC_LIFETIME_DEFAULT, NULL, &op), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_async_cancel(NULL, 1), RTC_RESULT_NULL_PARAMETER);
  CHECK_RC(rtc_async_cancel(ctx, 12345), RTC_RESULT_MISS);
  CHECK(rtc_async_fd(NULL) == -1);
  CHECK(rtc_async_take(NULL, done, 1, sizeof(rtc_completion)) == 0);
  CHECK(rtc_async_take(ctx, done, 1, 4) == 0); /* smaller than the struct */
  CHECK(rtc_async_in_flight(NULL) == 0);
  CHECK(rtc_async_cancel_all(NULL) == 0);
  CHECK(strcmp(rtc_result_name(RTC_RESULT_FULL), "RTC_RESULT_FULL") == 0);
  CHECK(strcmp(rtc_result_name(RTC_RESULT_CANCELLED), "RTC_RESULT_CANCELLED") == 0);
  rtc_async_free(ctx);
  rtc_async_free(NULL);
  rtc_cache_builder_free(b);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REDIS_URL NAMESPACE DEAD_PORT\n", argv[0]);
    return 2;
  }
  loop_thread = pthread_self();
  const char *url = argv[1], *ns = argv[2], *dead_port = argv[3];
  rtc_cache_builder *b = builder_for(url, ns);
  rtc_async *ctx = NULL;
  CHECK_RC(rtc_async_new(b, 2, 256, &ctx), RTC_RESULT_OK);
  REQUIRE(ctx != NULL);
  int epfd = add_to_loop(ctx);
  many_gets(ctx, epfd);
  compute_once(ctx, epfd);
  reports_reach_their_call(ctx, epfd);
  rtc_async_free(ctx);
  close(epfd);
  rtc_cache_builder_free(b);
  bound_and_cancel(url, ns);
  fail_safe_after_a_failed_computation(url, ns);
  redis_down(ns, dead_port);
  bad_input(url, ns);
  CHECK(hooks_run >= LOCKERS);
  CHECK(hooks_off_thread == 0);
  printf("hooks: %d run, %d off the loop's thread\n", hooks_run, hooks_off_thread);
  printf("event-loop: %d checks, %d failed\n", testutil_checks, testutil_failures);
  return testutil_failures == 0 ? 0 : 1;
}
