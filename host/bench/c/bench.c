/*
 * bench.c: the C library's leg of `rtc bench`.
 *
 * Measures librtc the way `rtc bench` (host/bench/src/lib.rs) measures the native
 * engine: the same keys, tags (3) and value size (100 bytes), the same five
 * workloads, run interleaved in blocks (a block of each workload, then the
 * next round) on T threads that share ONE rtc_cache, each block's threads
 * started behind a barrier, every operation timed alone with
 * clock_gettime(CLOCK_MONOTONIC), and the wall time of each workload summed
 * over its blocks (thread start-up included, as in the native measurement).
 * An unmeasured warm-up first fills rtc's connection pool.
 *
 * usage: bench --url URL [--ops N] [--block B] [--threads T]
 *              [--namespace NS] [--round-trips N] [--only WORKLOAD] [--stepped]
 *
 *   --ops N          operations per workload per thread (rounded up to whole
 *                    blocks), as `rtc bench --ops` (default 20000)
 *   --block B        operations per thread per block (default 1000)
 *   --threads T      threads sharing the cache (default 1)
 *   --namespace NS   the cache's namespace (default "default")
 *   --round-trips N  afterwards, run N operations of each workload on one
 *                    thread between two `INFO stats` and report Redis's
 *                    total_reads_processed per operation (default 200; 0
 *                    skips it; skipped too for URLs other than plain
 *                    redis://host:port without credentials)
 *   --only WORKLOAD  run only the workload of that name ("c get hit"); the
 *                    others report 0 operations (`rtc bench --instructions`
 *                    runs one operation under valgrind this way)
 *   --stepped        print "ready" once set up and warmed up, then run each
 *                    round only after reading a line on stdin, and
 *                    acknowledge it with a line "round N" on stdout: `rtc
 *                    bench` interleaves these rounds with its native ones, so
 *                    both see the same conditions on a noisy machine
 *
 * Prints one JSON object on one line of stdout (after "ready" and the
 * "round N" lines in stepped mode):
 *   {"engine":"c","threads":T,"results":[{"workload":"c set","threads":T,
 *    "ops":..,"ops_per_s":..,"p50_us":..,"p99_us":..}, ...],
 *    "round_trips":{"c set":1.00,...}|null,"peak_rss_kib":..}
 * with the workloads "c set", "c get hit", "c get miss",
 * "c get-or-compute hit" and "c invalidate". Every rtc_result is checked: an
 * operation that does not return what its workload expects (RTC_RESULT_OK, or
 * RTC_RESULT_MISS for the miss) is reported on stderr and the program exits 1
 * after printing the report. Exit 2 is a usage or setup error (no report).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rtc.h"

/* The same constants as host/bench/src/lib.rs. */
#define VALUE_SIZE 100
#define TAG_COUNT 3
static const char *const TAG_NAMES[TAG_COUNT] = {"bench:a", "bench:b", "bench:c"};
static const char INVALIDATED_TAG[] = "bench:invalidated";
static const char HIT_KEY[] = "bench:hit";
static const char MISS_KEY[] = "bench:absent";
static const char GOC_KEY[] = "bench:goc";

/* ---- What every operation shares (read-only once set up). ---- */

typedef struct {
  rtc_cache *cache;
  /* One non-blocking context per thread (and one for the round-trip
   * count): completions must come back to the thread that started them. */
  rtc_async **nb;
  rtc_bytes tags[TAG_COUNT];
  rtc_bytes invalidated;
  rtc_compute_options *goc;
  uint8_t value[VALUE_SIZE];
} bench_ctx;

/* The first failure seen by one thread in one block. */
typedef struct {
  size_t count;
  char message[256];
} failures;

/* Records a failed call: `what` returned `rc`, which its workload does not expect. */
static void fail(failures *f, const char *what, rtc_result rc) {
  if (f->count++ > 0) return;
  if (rc == RTC_RESULT_OK || rc == RTC_RESULT_MISS) {
    snprintf(f->message, sizeof f->message, "%s returned %s", what, rtc_result_name(rc));
  } else {
    snprintf(f->message, sizeof f->message, "%s returned %s: %s", what, rtc_result_name(rc),
             rtc_last_error_message());
  }
}

/* Records a value that is not the one stored. */
static void wrong_value(failures *f, const char *what, size_t len) {
  if (f->count++ > 0) return;
  snprintf(f->message, sizeof f->message, "%s returned a value of %zu bytes, not %d", what, len, VALUE_SIZE);
}

/* One measured operation: `thread` and `i` make keys unique where needed. */
typedef void (*op_fn)(const bench_ctx *ctx, size_t thread, size_t i, failures *f);

static void op_set(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  char key[64];
  int n = snprintf(key, sizeof key, "bench:set:%zu:%zu", thread, i);
  rtc_result rc = rtc_cache_set(ctx->cache, (const uint8_t *)key, (size_t)n, ctx->value, VALUE_SIZE,
                                ctx->tags, TAG_COUNT, RTC_LIFETIME_DEFAULT);
  if (rc != RTC_RESULT_OK) fail(f, "rtc_cache_set", rc);
}

static void op_get_hit(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)thread;
  (void)i;
  rtc_value *value = NULL;
  rtc_result rc = rtc_cache_get(ctx->cache, (const uint8_t *)HIT_KEY, sizeof HIT_KEY - 1, ctx->tags,
                                TAG_COUNT, &value);
  if (rc != RTC_RESULT_OK) {
    fail(f, "rtc_cache_get (hit)", rc);
    return;
  }
  if (rtc_value_len(value) != VALUE_SIZE) wrong_value(f, "rtc_cache_get (hit)", rtc_value_len(value));
  rtc_value_free(value);
}

static void op_get_miss(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)thread;
  (void)i;
  rtc_value *value = NULL;
  rtc_result rc = rtc_cache_get(ctx->cache, (const uint8_t *)MISS_KEY, sizeof MISS_KEY - 1,
                                ctx->tags, TAG_COUNT, &value);
  if (rc != RTC_RESULT_MISS) {
    fail(f, "rtc_cache_get (miss)", rc);
    rtc_value_free(value); /* written only on RTC_RESULT_OK; NULL otherwise */
  }
}

/* The computation of the get-or-compute workload: the 100-byte value. */
static int compute_value(void *userdata, rtc_output *output) {
  const bench_ctx *ctx = (const bench_ctx *)userdata;
  return rtc_output_write(output, ctx->value, VALUE_SIZE) == RTC_RESULT_OK ? 0 : 1;
}

static void op_get_or_compute(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)thread;
  (void)i;
  rtc_value *value = NULL;
  rtc_result rc = rtc_cache_get_or_compute(ctx->cache, ctx->goc, compute_value, (void *)ctx, &value);
  if (rc != RTC_RESULT_OK) {
    fail(f, "rtc_cache_get_or_compute", rc);
    return;
  }
  if (rtc_value_len(value) != VALUE_SIZE) wrong_value(f, "rtc_cache_get_or_compute", rtc_value_len(value));
  rtc_value_free(value);
}

static void op_invalidate(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)thread;
  (void)i;
  rtc_result rc = rtc_cache_invalidate(ctx->cache, &ctx->invalidated, 1);
  if (rc != RTC_RESULT_OK) fail(f, "rtc_cache_invalidate", rc);
}

/* Gets of the non-blocking workloads per call of their op. */
#define NB_PER_CALL 256

/* NB_PER_CALL get hits through the non-blocking API, `window` in flight at
 * once, waiting for completions in poll() on the context's descriptor as an
 * event loop would. */
static void nb_gets(const bench_ctx *ctx, size_t thread, size_t window, failures *f) {
  rtc_async *a = ctx->nb[thread];
  size_t started = 0, done = 0, in_flight = 0;
  rtc_completion c[64];
  rtc_op op;
  while (done < NB_PER_CALL) {
    while (in_flight < window && started < NB_PER_CALL) {
      rtc_result rc = rtc_async_get(a, (const uint8_t *)HIT_KEY, sizeof HIT_KEY - 1, ctx->tags, TAG_COUNT, NULL, &op);
      if (rc != RTC_RESULT_OK) {
        fail(f, "rtc_async_get", rc);
        return;
      }
      started++;
      in_flight++;
    }
    size_t n = rtc_async_take(a, c, 64, sizeof c[0]);
    if (n == 0) {
      struct pollfd p = {.fd = rtc_async_fd(a), .events = POLLIN};
      if (poll(&p, 1, 10000) != 1) {
        fail(f, "poll on rtc_async_fd (10 s with no completion)", RTC_RESULT_OK);
        return;
      }
      continue;
    }
    for (size_t i = 0; i < n; i++) {
      if (c[i].result != RTC_RESULT_OK) {
        fail(f, "rtc_async_get (hit)", c[i].result);
      } else if (rtc_value_len(c[i].value) != VALUE_SIZE) {
        wrong_value(f, "rtc_async_get (hit)", rtc_value_len(c[i].value));
      }
      rtc_value_free(c[i].value);
      done++;
      in_flight--;
    }
  }
}

static void op_nb_get_1(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)i;
  nb_gets(ctx, thread, 1, f);
}

static void op_nb_get_64(const bench_ctx *ctx, size_t thread, size_t i, failures *f) {
  (void)i;
  nb_gets(ctx, thread, 64, f);
}

typedef struct {
  const char *name;
  op_fn op;
  /* Operations one call of `op` makes (ops/s counts them; latencies are per call). */
  size_t per_call;
} workload;

static const workload WORKLOADS[] = {
    {"c set", op_set, 1},
    {"c get hit", op_get_hit, 1},
    {"c get miss", op_get_miss, 1},
    {"c get-or-compute hit", op_get_or_compute, 1},
    {"c invalidate", op_invalidate, 1},
    {"c get hit, non-blocking, 1 in flight", op_nb_get_1, NB_PER_CALL},
    {"c get hit, non-blocking, 64 in flight", op_nb_get_64, NB_PER_CALL},
};
#define WORKLOAD_COUNT (sizeof WORKLOADS / sizeof WORKLOADS[0])

/* --only NAME: run that workload alone (rtc bench --instructions runs one
 * operation under valgrind, which would take minutes over all seven). */
static const char *only = NULL;

static bool skipped(const workload *w) { return only != NULL && strcmp(w->name, only) != 0; }

/* ---- Timing. ---- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One thread of one block. */
typedef struct {
  const bench_ctx *ctx;
  op_fn op;
  pthread_barrier_t *barrier;
  size_t thread;
  size_t first; /* index of the block's first operation */
  size_t block;
  uint64_t *latencies_ns; /* `block` slots */
  failures failed;
} worker;

static void *run_worker(void *arg) {
  worker *w = (worker *)arg;
  pthread_barrier_wait(w->barrier);
  for (size_t i = 0; i < w->block; i++) {
    uint64_t t0 = now_ns();
    w->op(w->ctx, w->thread, w->first + i, &w->failed);
    w->latencies_ns[i] = now_ns() - t0;
  }
  return NULL;
}

/* Everything measured for one workload. */
typedef struct {
  uint64_t *latencies_ns;
  size_t ops;
  size_t calls; /* calls of the op: latencies_ns has one slot each */
  uint64_t wall_ns;
  size_t failed;
  char first_error[256];
} sample;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* The p-th percentile in microseconds, as bench.rs: index round((n-1)*p). */
static double percentile_us(const uint64_t *sorted, size_t n, double p) {
  if (n == 0) return 0.0;
  size_t i = (size_t)((double)(n - 1) * p + 0.5);
  return (double)sorted[i] / 1000.0;
}

/* Records `failed` into `s`, keeping the first message. */
static void tally(sample *s, const failures *failed) {
  if (failed->count > 0 && s->failed == 0) snprintf(s->first_error, sizeof s->first_error, "%s", failed->message);
  s->failed += failed->count;
}

/* Threads and their slots, allocated once. */
typedef struct {
  size_t threads;
  worker *workers;
  pthread_t *ids;
} crew;

/* Runs one block of `op`: `threads` threads started behind a barrier, each
 * running `block` operations numbered from `first`, each timed into
 * `latencies_ns` (threads * block slots). Adds the wall time, thread start-up
 * included as in bench.rs, and the ops to `s`. */
static void run_block(crew *c, const bench_ctx *ctx, const workload *w, size_t first, size_t block,
                      uint64_t *latencies_ns, sample *s) {
  op_fn op = w->op;
  pthread_barrier_t barrier;
  if (pthread_barrier_init(&barrier, NULL, (unsigned)c->threads) != 0) {
    fprintf(stderr, "bench: pthread_barrier_init failed\n");
    exit(2);
  }
  uint64_t started = now_ns();
  for (size_t t = 0; t < c->threads; t++) {
    c->workers[t] = (worker){
        .ctx = ctx,
        .op = op,
        .barrier = &barrier,
        .thread = t,
        .first = first,
        .block = block,
        .latencies_ns = latencies_ns + t * block,
    };
    int err = pthread_create(&c->ids[t], NULL, run_worker, &c->workers[t]);
    if (err != 0) {
      /* The barrier would never open: nothing can be measured. */
      fprintf(stderr, "bench: pthread_create failed: %s\n", strerror(err));
      exit(2);
    }
  }
  for (size_t t = 0; t < c->threads; t++) pthread_join(c->ids[t], NULL);
  s->wall_ns += now_ns() - started;
  s->ops += c->threads * block * w->per_call;
  s->calls += c->threads * block;
  pthread_barrier_destroy(&barrier);
  for (size_t t = 0; t < c->threads; t++) tally(s, &c->workers[t].failed);
}

/* Unmeasured warm-up: rtc's connection pool gives each new thread one of its
 * shards (16, round-robin), so 32 short-lived threads per workload leave
 * every shard a connection, as the native engine's pool is after its first
 * blocks. Failures count against the workload. */
static void warm_up(crew *c, const bench_ctx *ctx, sample *samples) {
  enum { OPS = 4 };
  uint64_t *scratch = calloc(c->threads * OPS, sizeof(uint64_t));
  if (scratch == NULL) {
    fprintf(stderr, "bench: out of memory\n");
    exit(2);
  }
  size_t blocks = (32 + c->threads - 1) / c->threads;
  for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
    if (skipped(&WORKLOADS[w])) continue;
    for (size_t b = 0; b < blocks; b++) {
      sample discard;
      memset(&discard, 0, sizeof discard);
      /* Numbered past every measured op: the set workload writes fresh keys. */
      run_block(c, ctx, &WORKLOADS[w], SIZE_MAX / 2 + b * OPS, OPS, scratch, &discard);
      if (discard.failed > 0 && samples[w].failed == 0) {
        snprintf(samples[w].first_error, sizeof samples[w].first_error, "%.200s (warm-up)", discard.first_error);
      }
      samples[w].failed += discard.failed;
    }
  }
  free(scratch);
}

/* Waits for the next "round" line on stdin (stepped mode); exits 2 on EOF. */
static void await_round(size_t round) {
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) {
    fprintf(stderr, "bench: stdin closed before round %zu\n", round);
    exit(2);
  }
}

/* Runs every workload `rounds` blocks of `block` operations on c->threads
 * threads, interleaved: round 0 of each workload, then round 1, ...
 * `stepped`: each round waits for a line on stdin and is acknowledged with
 * "round N" on stdout, so a driver can interleave other workloads with these. */
static void measure(crew *c, const bench_ctx *ctx, size_t rounds, size_t block, bool stepped, sample *samples) {
  for (size_t round = 0; round < rounds; round++) {
    if (stepped) await_round(round);
    for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
      if (skipped(&WORKLOADS[w])) continue;
      sample *s = &samples[w];
      run_block(c, ctx, &WORKLOADS[w], round * block, block, s->latencies_ns + s->calls, s);
    }
    if (stepped) {
      printf("round %zu\n", round);
      fflush(stdout);
    }
  }
}

/* ---- Round trips, counted by the server (INFO stats: total_reads_processed). ---- */

/* Host and port of a plain redis://[host][:port][/db] URL; false for any
 * other URL (TLS, unix sockets, credentials: then nothing is counted). */
static bool parse_url(const char *url, char *host, size_t host_len, char *port, size_t port_len) {
  const char *prefix = "redis://";
  if (strncmp(url, prefix, strlen(prefix)) != 0) return false;
  const char *p = url + strlen(prefix);
  const char *end = p + strcspn(p, "/?");
  if (memchr(p, '@', (size_t)(end - p)) != NULL) return false;
  const char *colon = NULL;
  const char *h = p, *h_end;
  if (*p == '[') { /* [IPv6]:port */
    h = p + 1;
    h_end = memchr(h, ']', (size_t)(end - h));
    if (h_end == NULL) return false;
    colon = (h_end + 1 < end && h_end[1] == ':') ? h_end + 1 : NULL;
  } else {
    colon = memchr(p, ':', (size_t)(end - p));
    h_end = colon != NULL ? colon : end;
  }
  size_t hn = (size_t)(h_end - h);
  const char *port_start = colon != NULL ? colon + 1 : "6379";
  size_t pn = colon != NULL ? (size_t)(end - port_start) : 4;
  if (hn == 0) {
    h = "localhost";
    hn = strlen(h);
  }
  if (hn >= host_len || pn == 0 || pn >= port_len) return false;
  memcpy(host, h, hn);
  host[hn] = '\0';
  memcpy(port, port_start, pn);
  port[pn] = '\0';
  return true;
}

static int connect_to(const char *host, const char *port) {
  struct addrinfo hints, *found = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &found) != 0) return -1;
  int fd = -1;
  for (struct addrinfo *a = found; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  return fd;
}

/* Sends INFO stats on `fd` and returns total_reads_processed, or -1. */
static int64_t total_reads(int fd) {
  static const char request[] = "INFO stats\r\n";
  if (write(fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) return -1;
  char reply[16384];
  size_t got = 0;
  long want = -1; /* the whole reply's size once its header is read */
  while (got < sizeof reply - 1 && (want < 0 || got < (size_t)want)) {
    ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
    if (n <= 0) return -1;
    got += (size_t)n;
    reply[got] = '\0';
    char *eol = strstr(reply, "\r\n");
    if (want < 0 && eol != NULL) {
      if (reply[0] != '$') return -1; /* an error, e.g. NOAUTH */
      want = (long)(eol - reply) + 2 + strtol(reply + 1, NULL, 10) + 2;
    }
  }
  const char *field = strstr(reply, "total_reads_processed:");
  if (field == NULL) return -1;
  return strtoll(field + strlen("total_reads_processed:"), NULL, 10);
}

/* Round trips per operation of each workload, written to `out`; false when
 * they cannot be counted (the reason is on stderr). */
static bool count_round_trips(const bench_ctx *ctx, const char *url, size_t n, size_t threads,
                              double *out, sample *samples) {
  char host[256], port[16];
  if (!parse_url(url, host, sizeof host, port, sizeof port)) {
    fprintf(stderr, "bench: round trips not counted for this URL (plain redis://host:port only)\n");
    return false;
  }
  int fd = connect_to(host, port);
  if (fd < 0) {
    fprintf(stderr, "bench: cannot connect to %s:%s to count round trips\n", host, port);
    return false;
  }
  bool ok = true;
  for (size_t w = 0; ok && w < WORKLOAD_COUNT; w++) {
    failures f = {0};
    int64_t before = total_reads(fd);
    for (size_t i = 0; i < n; i++) WORKLOADS[w].op(ctx, threads /* no measured thread has it */, i, &f);
    int64_t after = total_reads(fd);
    if (before < 0 || after < 0) {
      fprintf(stderr, "bench: INFO stats failed; round trips not counted\n");
      ok = false;
    }
    out[w] = (double)(after - before - 1) / (double)(n * WORKLOADS[w].per_call); /* minus the second INFO itself */
    tally(&samples[w], &f);
  }
  close(fd);
  return ok;
}

/* ---- Arguments. ---- */

static void usage(const char *why) {
  fprintf(stderr,
          "bench: %s\nusage: bench --url URL [--ops N] [--block B] [--threads T] [--namespace NS] "
          "[--round-trips N] [--only WORKLOAD] [--stepped]\n",
          why);
  exit(2);
}

static size_t parse_count(const char *flag, const char *text, size_t min) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > (1ull << 32)) {
    char why[128];
    snprintf(why, sizeof why, "%s wants a whole number >= %zu, not \"%s\"", flag, min, text);
    usage(why);
  }
  return (size_t)v;
}

/* ---- Main. ---- */

/* Exits 2 with the message of a failed setup call. */
static void setup(rtc_result rc, const char *what) {
  if (rc != RTC_RESULT_OK) {
    fprintf(stderr, "bench: %s returned %s: %s\n", what, rtc_result_name(rc), rtc_last_error_message());
    exit(2);
  }
}

int main(int argc, char **argv) {
  const char *url = NULL, *namespace = "default";
  size_t ops = 20000, block = 1000, threads = 1, trips = 200;
  bool stepped = false;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (strcmp(flag, "--stepped") == 0) {
      stepped = true;
      continue;
    }
    if (i + 1 >= argc) usage("every option takes a value");
    const char *v = argv[++i];
    if (strcmp(flag, "--url") == 0) url = v;
    else if (strcmp(flag, "--namespace") == 0) namespace = v;
    else if (strcmp(flag, "--ops") == 0) ops = parse_count(flag, v, 1);
    else if (strcmp(flag, "--block") == 0) block = parse_count(flag, v, 1);
    else if (strcmp(flag, "--threads") == 0) threads = parse_count(flag, v, 1);
    else if (strcmp(flag, "--round-trips") == 0) trips = parse_count(flag, v, 0);
    else if (strcmp(flag, "--only") == 0) only = v;
    else {
      char why[128];
      snprintf(why, sizeof why, "unknown option %s", flag);
      usage(why);
    }
  }
  if (url == NULL) usage("--url is required");
  if (only != NULL) {
    bool known = false;
    for (size_t w = 0; w < WORKLOAD_COUNT; w++) known |= strcmp(WORKLOADS[w].name, only) == 0;
    if (!known) usage("--only takes a workload's name, as the report gives it (\"c get hit\")");
  }
  if (threads > 4096) usage("--threads is at most 4096");
  if (strcmp(rtc_version(), RTC_VERSION) != 0) {
    fprintf(stderr, "bench: rtc.h is %s but librtc is %s\n", RTC_VERSION, rtc_version());
    return 2;
  }
  size_t rounds = (ops + block - 1) / block; /* as bench.rs: ops.div_ceil(block) */
  size_t per_workload = rounds * block * threads;

  bench_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  memset(ctx.value, 'x', VALUE_SIZE);
  for (size_t t = 0; t < TAG_COUNT; t++) {
    ctx.tags[t].data = (const uint8_t *)TAG_NAMES[t];
    ctx.tags[t].len = strlen(TAG_NAMES[t]);
  }
  ctx.invalidated.data = (const uint8_t *)INVALIDATED_TAG;
  ctx.invalidated.len = sizeof INVALIDATED_TAG - 1;

  rtc_cache_builder *builder = rtc_cache_builder_new();
  if (builder == NULL) {
    fprintf(stderr, "bench: rtc_cache_builder_new failed: %s\n", rtc_last_error_message());
    return 2;
  }
  setup(rtc_cache_builder_set_url(builder, url), "rtc_cache_builder_set_url");
  setup(rtc_cache_builder_set_namespace(builder, namespace), "rtc_cache_builder_set_namespace");
  setup(rtc_cache_new(builder, &ctx.cache), "rtc_cache_new");
  ctx.nb = calloc(threads + 1, sizeof(rtc_async *));
  if (ctx.nb == NULL) {
    fprintf(stderr, "bench: out of memory\n");
    return 2;
  }
  for (size_t t = 0; t <= threads; t++) setup(rtc_async_new(builder, 0, 64, &ctx.nb[t]), "rtc_async_new");
  rtc_cache_builder_free(builder);

  /* The entries the hit workloads read, as bench.rs stores them. */
  setup(rtc_cache_set(ctx.cache, (const uint8_t *)HIT_KEY, sizeof HIT_KEY - 1, ctx.value, VALUE_SIZE,
                      ctx.tags, TAG_COUNT, RTC_LIFETIME_DEFAULT),
        "rtc_cache_set (bench:hit)");
  setup(rtc_compute_options_new((const uint8_t *)GOC_KEY, sizeof GOC_KEY - 1, &ctx.goc),
        "rtc_compute_options_new");
  setup(rtc_compute_options_set_tags(ctx.goc, ctx.tags, TAG_COUNT), "rtc_compute_options_set_tags");
  rtc_value *primed = NULL;
  setup(rtc_cache_get_or_compute(ctx.cache, ctx.goc, compute_value, &ctx, &primed),
        "rtc_cache_get_or_compute (priming)");
  rtc_value_free(primed);

  sample samples[WORKLOAD_COUNT];
  memset(samples, 0, sizeof samples);
  for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
    samples[w].latencies_ns = calloc(per_workload, sizeof(uint64_t));
    if (samples[w].latencies_ns == NULL) {
      fprintf(stderr, "bench: cannot allocate %zu latencies\n", per_workload);
      return 2;
    }
  }

  crew c = {threads, calloc(threads, sizeof(worker)), calloc(threads, sizeof(pthread_t))};
  if (c.workers == NULL || c.ids == NULL) {
    fprintf(stderr, "bench: out of memory\n");
    return 2;
  }
  warm_up(&c, &ctx, samples);
  if (stepped) {
    /* Set up and warm: the driver's own measurements may start. */
    printf("ready\n");
    fflush(stdout);
  }
  measure(&c, &ctx, rounds, block, stepped, samples);
  free(c.workers);
  free(c.ids);
  double round_trips[WORKLOAD_COUNT];
  bool counted = trips > 0 && count_round_trips(&ctx, url, trips, threads, round_trips, samples);

  struct rusage usage_now;
  long peak_rss_kib = getrusage(RUSAGE_SELF, &usage_now) == 0 ? usage_now.ru_maxrss : -1;

  int status = 0;
  printf("{\"engine\":\"c\",\"rtc_version\":\"%s\",\"threads\":%zu,\"ops_per_workload\":%zu,\"block\":%zu,"
         "\"results\":[",
         rtc_version(), threads, ops, block);
  for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
    sample *s = &samples[w];
    qsort(s->latencies_ns, s->calls, sizeof(uint64_t), cmp_u64);
    double secs = (double)s->wall_ns / 1e9;
    printf("%s{\"workload\":\"%s\",\"threads\":%zu,\"ops\":%zu,\"ops_per_s\":%.0f,\"p50_us\":%.1f,"
           "\"p99_us\":%.1f}",
           w == 0 ? "" : ",", WORKLOADS[w].name, threads, s->ops, (double)s->ops / (secs > 1e-9 ? secs : 1e-9),
           percentile_us(s->latencies_ns, s->calls, 0.50), percentile_us(s->latencies_ns, s->calls, 0.99));
  }
  printf("],\"round_trips\":");
  if (counted) {
    printf("{");
    for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
      printf("%s\"%s\":%.2f", w == 0 ? "" : ",", WORKLOADS[w].name, round_trips[w]);
    }
    printf("}");
  } else {
    printf("null");
  }
  printf(",\"peak_rss_kib\":%ld}\n", peak_rss_kib);
  for (size_t w = 0; w < WORKLOAD_COUNT; w++) {
    if (samples[w].failed > 0) {
      fprintf(stderr, "bench: %s: %zu operation(s) failed; first: %s\n", WORKLOADS[w].name,
              samples[w].failed, samples[w].first_error);
      status = 1;
    }
  }

  for (size_t w = 0; w < WORKLOAD_COUNT; w++) free(samples[w].latencies_ns);
  rtc_compute_options_free(ctx.goc);
  for (size_t t = 0; t <= threads; t++) rtc_async_free(ctx.nb[t]);
  free(ctx.nb);
  rtc_cache_free(ctx.cache);
  if (fflush(stdout) != 0) status = 2;
  return status;
}
