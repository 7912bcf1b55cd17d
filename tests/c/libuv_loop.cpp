// The non-blocking API driven by libuv from C++: the completion descriptor
// in a uv_poll_t, many gets in flight at once, and a get-or-compute under the
// stampede lock computed once on the loop, against a real Redis.
//
// usage: libuv_loop REDIS_URL NAMESPACE
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "rtc.h"

namespace {

int checks = 0;
int failures = 0;

void check(bool ok, const char *what, int line) {
  checks++;
  if (!ok) {
    std::printf("FAIL line %d: %s (last error: %s)\n", line, what, rtc_last_error_message());
    failures++;
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

const uint8_t *bytes(const std::string &s) { return reinterpret_cast<const uint8_t *>(s.data()); }
const uint8_t *bytes(const char *s) { return reinterpret_cast<const uint8_t *>(s); }

// What the loop is doing: the operations it waits for and what came back.
struct Run {
  rtc_async *ctx = nullptr;
  rtc_compute_options *options = nullptr;
  uv_poll_t poll{};
  int pending = 0;
  int hits = 0;
  int misses = 0;
  int tickets = 0;
  int locked_hits = 0;
  std::vector<std::string> keys;
};

// The descriptor is readable: take every completion and act on it.
void on_ready(uv_poll_t *handle, int status, int events) {
  Run &run = *static_cast<Run *>(handle->data);
  CHECK(status == 0 && (events & UV_READABLE));
  rtc_completion done[16];
  size_t n;
  while ((n = rtc_async_take(run.ctx, done, 16, sizeof(rtc_completion))) > 0) {
    for (size_t i = 0; i < n; i++) {
      const rtc_completion &c = done[i];
      run.pending--;
      switch (c.kind) {
        case RTC_OP_SET:
          CHECK(c.result == RTC_RESULT_OK);
          break;
        case RTC_OP_GET: {
          if (c.userdata == nullptr) {
            CHECK(c.result == RTC_RESULT_MISS);
            run.misses++;
            break;
          }
          const std::string &key = *static_cast<const std::string *>(c.userdata);
          CHECK(c.result == RTC_RESULT_OK && c.value != nullptr);
          if (c.value != nullptr) {
            CHECK(std::string(reinterpret_cast<const char *>(rtc_value_data(c.value)), rtc_value_len(c.value)) == key);
            rtc_value_free(c.value);
          }
          run.hits++;
          break;
        }
        case RTC_OP_GET_OR_LOCK:
          if (c.result == RTC_RESULT_MISS) {
            run.tickets++;
            rtc_op op;
            const std::string value = "computed once";
            CHECK(rtc_async_set_and_unlock(run.ctx, c.ticket, bytes(value), value.size(), RTC_LIFETIME_DEFAULT,
                                           nullptr, &op) == RTC_RESULT_OK);
            run.pending++;
          } else {
            CHECK(c.result == RTC_RESULT_OK && c.value != nullptr);
            rtc_value_free(c.value);
            run.locked_hits++;
          }
          break;
        case RTC_OP_SET_AND_UNLOCK:
          CHECK(c.result == RTC_RESULT_OK);
          break;
        default:
          CHECK(!"an unexpected completion");
      }
    }
  }
  if (run.pending == 0) uv_poll_stop(handle);
}

// Runs the loop until every operation started has completed.
void run_loop(uv_loop_t *loop, Run &run) {
  while (run.pending > 0) uv_run(loop, UV_RUN_ONCE);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s REDIS_URL NAMESPACE\n", argv[0]);
    return 2;
  }
  rtc_cache_builder *builder = rtc_cache_builder_new();
  CHECK(rtc_cache_builder_set_url(builder, argv[1]) == RTC_RESULT_OK);
  CHECK(rtc_cache_builder_set_namespace(builder, argv[2]) == RTC_RESULT_OK);
  Run run;
  CHECK(rtc_async_new(builder, 2, 0, &run.ctx) == RTC_RESULT_OK);
  if (run.ctx == nullptr) return 1;
  uv_loop_t *loop = uv_default_loop();
  CHECK(uv_poll_init(loop, &run.poll, rtc_async_fd(run.ctx)) == 0);
  run.poll.data = &run;

  const rtc_bytes tags[] = {{bytes("users"), 5}};
  for (int i = 0; i < 100; i++) run.keys.push_back("user:" + std::to_string(i));
  rtc_op op;
  for (const std::string &key : run.keys) {
    CHECK(rtc_async_set(run.ctx, bytes(key), key.size(), bytes(key), key.size(), tags, 1, RTC_LIFETIME_DEFAULT,
                        nullptr, &op) == RTC_RESULT_OK);
    run.pending++;
  }
  uv_poll_start(&run.poll, UV_READABLE, on_ready);
  run_loop(loop, run);

  for (const std::string &key : run.keys) {
    CHECK(rtc_async_get(run.ctx, bytes(key), key.size(), tags, 1, const_cast<std::string *>(&key), &op) ==
          RTC_RESULT_OK);
    run.pending++;
  }
  CHECK(rtc_async_get(run.ctx, bytes("absent"), 6, tags, 1, nullptr, &op) == RTC_RESULT_OK);
  run.pending++;
  uv_poll_start(&run.poll, UV_READABLE, on_ready);
  run_loop(loop, run);
  CHECK(run.hits == 100 && run.misses == 1);

  CHECK(rtc_compute_options_new(bytes("report"), 6, &run.options) == RTC_RESULT_OK);
  CHECK(rtc_compute_options_set_lock(run.options, true) == RTC_RESULT_OK);
  for (int i = 0; i < 20; i++) {
    CHECK(rtc_async_get_or_lock(run.ctx, run.options, nullptr, &op) == RTC_RESULT_OK);
    run.pending++;
  }
  uv_poll_start(&run.poll, UV_READABLE, on_ready);
  run_loop(loop, run);
  CHECK(run.tickets == 1 && run.locked_hits == 19);

  uv_close(reinterpret_cast<uv_handle_t *>(&run.poll), nullptr);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  rtc_compute_options_free(run.options);
  rtc_async_free(run.ctx);
  rtc_cache_builder_free(builder);
  std::printf("libuv: %d gets (%d hits, %d miss), lock: 20 callers, %d ticket(s), %d hits\n", run.hits + run.misses,
              run.hits, run.misses, run.tickets, run.locked_hits);
  std::printf("libuv-loop: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
