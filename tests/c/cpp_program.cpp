// librtc from C++: RAII ownership of every handle, lambdas as compute
// callbacks and hooks (through userdata), exceptions kept on the C++ side,
// and std::thread callers sharing one cache.
//
// usage: cpp_program REDIS_URL NAMESPACE
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rtc.h"

namespace {

int checks = 0;
int failures = 0;

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    ++checks;                                                                                    \
    if (!(cond)) {                                                                               \
      std::printf("FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond,               \
                  rtc_last_error_message());                                                     \
      ++failures;                                                                                \
    }                                                                                            \
  } while (0)

// An rtc error as a C++ exception.
struct rtc_error : std::runtime_error {
  rtc_result code;
  rtc_error(rtc_result c, const std::string &what)
      : std::runtime_error(what + ": " + rtc_result_name(c) + ": " + rtc_last_error_message()), code(c) {}
};

void ok(rtc_result rc, const char *what) {
  if (rc != RTC_RESULT_OK) throw rtc_error(rc, what);
}

struct free_cache { void operator()(rtc_cache *p) const { rtc_cache_free(p); } };
struct free_builder { void operator()(rtc_cache_builder *p) const { rtc_cache_builder_free(p); } };
struct free_options { void operator()(rtc_compute_options *p) const { rtc_compute_options_free(p); } };
struct free_value { void operator()(rtc_value *p) const { rtc_value_free(p); } };

using value_ptr = std::unique_ptr<rtc_value, free_value>;

const uint8_t *bytes(std::string_view s) { return reinterpret_cast<const uint8_t *>(s.data()); }

std::vector<rtc_bytes> tag_list(const std::vector<std::string> &tags) {
  std::vector<rtc_bytes> out;
  for (const auto &t : tags) out.push_back(rtc_bytes{bytes(t), t.size()});
  return out;
}

std::string to_string(const value_ptr &v) {
  return std::string(reinterpret_cast<const char *>(rtc_value_data(v.get())), rtc_value_len(v.get()));
}

// A thin C++ face over rtc_cache.
class Cache {
 public:
  using Hook = std::function<void(const rtc_cache_info *)>;

  Cache(const std::string &url, const std::string &ns, Hook hook) : hook_(std::move(hook)) {
    std::unique_ptr<rtc_cache_builder, free_builder> b(rtc_cache_builder_new());
    ok(rtc_cache_builder_set_url(b.get(), url.c_str()), "set_url");
    ok(rtc_cache_builder_set_namespace(b.get(), ns.c_str()), "set_namespace");
    ok(rtc_cache_builder_set_hook(b.get(), &Cache::on_hook, &hook_), "set_hook");
    rtc_cache *c = nullptr;
    ok(rtc_cache_new(b.get(), &c), "rtc_cache_new");
    cache_.reset(c);
  }

  void set(std::string_view key, std::string_view value, const std::vector<std::string> &tags) const {
    auto t = tag_list(tags);
    ok(rtc_cache_set(cache_.get(), bytes(key), key.size(), bytes(value), value.size(), t.data(), t.size(),
                     RTC_LIFETIME_DEFAULT),
       "set");
  }

  std::optional<std::string> get(std::string_view key, const std::vector<std::string> &tags) const {
    auto t = tag_list(tags);
    rtc_value *v = nullptr;
    rtc_result rc = rtc_cache_get(cache_.get(), bytes(key), key.size(), t.data(), t.size(), &v);
    if (rc == RTC_RESULT_MISS) return std::nullopt;
    ok(rc, "get");
    return to_string(value_ptr(v));
  }

  void invalidate(const std::vector<std::string> &tags) const {
    auto t = tag_list(tags);
    ok(rtc_cache_invalidate(cache_.get(), t.data(), t.size()), "invalidate");
  }

  // Returns the cached value, or computes it with `f` (any callable returning
  // std::string). An exception from `f` is rethrown here, after rtc has
  // released the lock and cached nothing.
  template <typename F>
  std::string get_or_compute(std::string_view key, const std::vector<std::string> &tags, F &&f) const {
    rtc_compute_options *o = nullptr;
    ok(rtc_compute_options_new(bytes(key), key.size(), &o), "rtc_compute_options_new");
    std::unique_ptr<rtc_compute_options, free_options> options(o);
    auto t = tag_list(tags);
    ok(rtc_compute_options_set_tags(o, t.data(), t.size()), "set_tags");
    ok(rtc_compute_options_set_lock(o, true), "set_lock");
    struct Call {
      F &f;
      std::exception_ptr error;
    } call{f, nullptr};
    auto trampoline = [](void *userdata, rtc_output *out) -> int {
      auto *c = static_cast<Call *>(userdata);
      try {  // no exception may unwind through rtc
        std::string v = c->f();
        return rtc_output_write(out, bytes(v), v.size()) == RTC_RESULT_OK ? 0 : 1;
      } catch (...) {
        c->error = std::current_exception();
        return 1;
      }
    };
    rtc_value *v = nullptr;
    rtc_result rc = rtc_cache_get_or_compute(cache_.get(), o, trampoline, &call, &v);
    if (call.error) std::rethrow_exception(call.error);
    ok(rc, "get_or_compute");
    return to_string(value_ptr(v));
  }

 private:
  static void on_hook(void *userdata, const rtc_cache_info *info) { (*static_cast<Hook *>(userdata))(info); }

  Hook hook_;  // outlives the cache: declared before it, destroyed after it
  std::unique_ptr<rtc_cache, free_cache> cache_;
};

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s REDIS_URL NAMESPACE\n", argv[0]);
    return 2;
  }
  std::atomic<int> hooks{0}, hook_hits{0};
  try {
    Cache cache(argv[1], argv[2], [&](const rtc_cache_info *info) {
      ++hooks;
      if (rtc_cache_info_hit(info)) ++hook_hits;
    });

    cache.set("user:1", "Ada", {"users", "user:1"});
    CHECK(cache.get("user:1", {"user:1", "users"}) == std::optional<std::string>("Ada"));
    CHECK(!cache.get("user:1", {"users"}).has_value());
    cache.invalidate({"user:1"});
    CHECK(!cache.get("user:1", {"users", "user:1"}).has_value());

    // get-or-compute with a lambda; the second call is a hit.
    int runs = 0;
    auto load = [&] {
      ++runs;
      return std::string("report body");
    };
    CHECK(cache.get_or_compute("report", {"reports"}, load) == "report body");
    CHECK(cache.get_or_compute("report", {"reports"}, load) == "report body");
    CHECK(runs == 1 && hooks == 2 && hook_hits == 1);

    // An exception stays in C++, caches nothing, and releases the lock.
    bool thrown = false;
    try {
      cache.get_or_compute("flaky", {}, []() -> std::string { throw std::runtime_error("db down"); });
    } catch (const std::runtime_error &e) {
      thrown = std::strcmp(e.what(), "db down") == 0;
    }
    CHECK(thrown);
    CHECK(cache.get_or_compute("flaky", {}, [] { return std::string("second try"); }) == "second try");

    // std::thread callers sharing the cache: the lock computes once.
    constexpr int threads = 32;
    std::atomic<int> computations{0};
    std::mutex m;
    std::condition_variable cv;
    int ready = 0;
    std::vector<std::thread> pool;
    std::vector<std::string> results(threads);
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        {
          std::unique_lock<std::mutex> lock(m);
          if (++ready == threads) cv.notify_all();
          cv.wait(lock, [&] { return ready == threads; });
        }
        results[i] = cache.get_or_compute("cold", {"t1", "t2"}, [&] {
          ++computations;
          return std::string("once");
        });
      });
    }
    for (auto &t : pool) t.join();
    CHECK(computations == 1);
    for (const auto &r : results) CHECK(r == "once");

    // Errors surface as codes, turned into exceptions by the wrapper.
    bool invalid = false;
    try {
      const std::string bad("\xff\xfe");
      cache.set(bad, "v", {});
    } catch (const rtc_error &e) {
      invalid = e.code == RTC_RESULT_INVALID_UTF8;
    }
    CHECK(invalid);
  } catch (const std::exception &e) {
    std::printf("FAIL: unexpected exception: %s\n", e.what());
    ++failures;
  }
  std::printf("c++: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
