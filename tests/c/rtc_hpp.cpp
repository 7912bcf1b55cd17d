// include/rtc.hpp, the header-only C++ wrapper, against a real Redis: every
// operation, the miss/empty-value distinction, exceptions from a compute
// callable (their own type, nothing stored, the lock released), hooks
// (their std::function outliving the builder; a throwing hook swallowed),
// errors as rtc::error with the right code, and moves of every handle.
//
// usage: rtc_hpp REDIS_URL NAMESPACE DEAD_PORT
#include "rtc.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// testutil.h is C (it uses _Atomic): these are its CHECK macros for C++.
// Atomic: hooks check from the threads that call get_or_compute.
std::atomic<int> checks{0};
std::atomic<int> failures{0};

void check(bool ok, const char *what, int line) {
  ++checks;
  if (!ok) {
    std::printf("FAIL line %d: %s\n", line, what);
    ++failures;
  }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// Runs `f` and returns the code of the rtc::error it throws (RTC_RESULT_OK if none).
template <typename F>
rtc_result code_of(F &&f) {
  try {
    f();
  } catch (const rtc::error &e) {
    return e.code();
  }
  return RTC_RESULT_OK;
}

void check_code(rtc_result got, rtc_result want, const char *what, int line) {
  ++checks;
  if (got != want) {
    std::printf("FAIL line %d: %s threw %s, want %s\n", line, what, rtc_result_name(got), rtc_result_name(want));
    ++failures;
  }
}
// Checks that `expr` throws rtc::error with `code`.
#define CHECK_THROWS(code, expr) check_code(code_of([&] { (void)(expr); }), (code), #expr, __LINE__)

using opt = std::optional<std::string>;

// What the hooks saw, from the last call and in all.
struct hook_log {
  std::mutex m;
  int calls = 0;
  int hits = 0;
  int misses = 0;
  int stale = 0;
  std::string key;
  std::vector<std::string> tags;
  std::string module, type, function, arguments;
  bool method = false;
  bool full_hit = false, full_miss = false;
  std::uint64_t elapsed_ns = 0, decorated_ns = 0, lock_waiting_ms = 0;
  std::size_t size = 0;
  rtc_result error = RTC_RESULT_OK;
  std::string error_message;
  void *userdata = nullptr;

  void record(const rtc::cache_info &info) {
    std::lock_guard<std::mutex> lock(m);
    ++calls;
    ++(info.hit() ? hits : misses);
    if (info.stale()) ++stale;
    key = std::string(info.key());
    tags.clear();
    for (std::string_view t : info.tags()) tags.emplace_back(t);
    CHECK(info.tags_len() == tags.size());
    CHECK(info.tag(info.tags_len()).empty());  // past the end: empty
    module = std::string(info.function_module());
    type = std::string(info.function_type());
    function = std::string(info.function_name());
    arguments = std::string(info.arguments());
    method = info.method();
    full_hit = info.lock_full_hit();
    full_miss = info.lock_full_miss();
    elapsed_ns = info.elapsed_ns();
    decorated_ns = info.decorated_elapsed_ns();
    lock_waiting_ms = info.lock_waiting_ms();
    size = info.serialized_size();
    error = info.error();
    error_message = std::string(info.error_message());
    userdata = info.call_userdata();
    CHECK(info.native_handle() != nullptr);
  }
};

// A builder on the test's Redis and namespace.
rtc::cache_builder builder_for(const char *url, const std::string &ns) {
  rtc::cache_builder b;
  b.set_url(url).set_namespace(ns);
  return b;
}

// A computation's own exception type, to see it come back as itself.
struct db_down : std::runtime_error {
  db_down() : std::runtime_error("db down") {}
};

// Something convertible to std::string (not to std::string_view).
struct report {
  int n;
  operator std::string() const { return "report " + std::to_string(n); }  // NOLINT: implicit on purpose
};

std::string free_function() { return "from a function"; }

// Handles are move-only with noexcept moves.
template <typename T>
constexpr bool move_only_v = std::is_nothrow_move_constructible_v<T> && std::is_nothrow_move_assignable_v<T> &&
                             !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T>;
static_assert(move_only_v<rtc::cache>, "rtc::cache is move-only");
static_assert(move_only_v<rtc::cache_builder>, "rtc::cache_builder is move-only");
static_assert(move_only_v<rtc::compute_options>, "rtc::compute_options is move-only");
static_assert(move_only_v<rtc::ticket>, "rtc::ticket is move-only");
static_assert(std::is_nothrow_move_constructible_v<rtc::get_or_lock_result>, "results move without throwing");
static_assert(std::is_base_of_v<std::runtime_error, rtc::error>, "rtc::error is a std::runtime_error");

void version() {
  CHECK(rtc::version() == RTC_VERSION);
  CHECK(rtc::result_name(RTC_RESULT_MISS) == "RTC_RESULT_MISS");
  std::printf("version: %s\n", std::string(rtc::version()).c_str());
}

void set_get_delete(const rtc::cache &cache) {
  cache.set("user:1", "Ada", {"users", "user:1"});
  const opt hit = cache.get("user:1", {"user:1", "users"});  // tags in any order
  CHECK(hit == opt("Ada"));
  CHECK(cache.get("user:1", {"users"}) == std::nullopt);  // another set of tags: another entry
  CHECK(cache.get("user:1") == std::nullopt);

  // An empty value is a hit, distinct from a miss.
  cache.set("empty", "");
  const opt empty = cache.get("empty");
  const opt absent = cache.get("absent");
  CHECK(empty.has_value() && empty->empty());
  CHECK(!absent.has_value());
  std::printf("get: hit \"%s\", empty value %s (%zu bytes), absent %s\n", hit.value_or("?").c_str(),
              empty ? "is a hit" : "is a miss", empty ? empty->size() : 0, absent ? "is a hit" : "is a miss");

  // Values are bytes: NULs and non-UTF-8 bytes round-trip.
  const std::string binary("a\0b\xff\xfe", 5);
  cache.set("binary", binary);
  CHECK(cache.get("binary") == opt(binary));

  // Tags from other containers, and more than fit inline.
  const std::vector<std::string> vec{"v1", "v2"};
  cache.set("from-vector", "x", vec);
  const std::vector<std::string_view> views{"v2", "v1"};
  CHECK(cache.get("from-vector", views) == opt("x"));
  const std::array<const char *, 2> arr{"v1", "v2"};
  CHECK(cache.get("from-vector", arr) == opt("x"));
  std::vector<std::string> many;
  for (int i = 0; i < 12; ++i) many.push_back("many-" + std::to_string(i));
  const rtc::tag_list many_tags(many);
  CHECK(many_tags.size() == 12 && !many_tags.empty() && many_tags.data() != nullptr);
  CHECK(rtc::tag_list().data() == nullptr && rtc::tag_list().empty());
  cache.set("many", "12 tags", many_tags);
  std::vector<std::string> reversed(many.rbegin(), many.rend());
  CHECK(cache.get("many", reversed) == opt("12 tags"));
  cache.invalidate("many-11");
  CHECK(cache.get("many", many) == std::nullopt);

  // del: true when there was an entry.
  const bool first = cache.del("user:1", {"users", "user:1"});
  const bool second = cache.del("user:1", {"users", "user:1"});
  CHECK(first && !second);
  CHECK(cache.get("user:1", {"users", "user:1"}) == std::nullopt);
  std::printf("del: %s then %s\n", first ? "true" : "false", second ? "true" : "false");
}

void invalidation(const char *url, const std::string &ns, const rtc::cache &cache) {
  cache.set("i1", "1", {"t1"});
  cache.set("i2", "2", {"t2"});
  cache.set("i3", "3", {"t3", "t1x"});
  cache.set("i4", "4", {"t4"});
  cache.invalidate("t1");  // one tag
  CHECK(cache.get("i1", {"t1"}) == std::nullopt);
  CHECK(cache.get("i2", {"t2"}) == opt("2"));
  cache.invalidate({"t2", "t3"});  // many
  CHECK(cache.get("i2", {"t2"}) == std::nullopt);
  CHECK(cache.get("i3", {"t3", "t1x"}) == std::nullopt);
  cache.invalidate({"t-none"});  // a braced list of one: the many-tags overload
  cache.invalidate({});          // none: a no-op
  CHECK(cache.get("i4", {"t4"}) == opt("4"));
  const std::vector<std::string> t4{"t4"};
  cache.invalidate(t4);  // a container
  CHECK(cache.get("i4", {"t4"}) == std::nullopt);

  // invalidate_all: this namespace only.
  const rtc::cache other = builder_for(url, ns + "-other").build();
  cache.set("a1", "1");
  cache.set("a2", "2", {"x"});
  other.set("a1", "other");
  cache.invalidate_all();
  CHECK(cache.get("a1") == std::nullopt);
  CHECK(cache.get("a2", {"x"}) == std::nullopt);
  CHECK(other.get("a1") == opt("other"));
  cache.set("a1", "after");
  CHECK(cache.get("a1") == opt("after"));
  std::printf("invalidate: one tag, many tags, all (other namespace kept: %s)\n",
              other.get("a1") == opt("other") ? "yes" : "no");
}

void lifetimes(const char *url, const std::string &ns, const rtc::cache &cache) {
  const rtc::cache short_default = builder_for(url, ns).set_default_lifetime(1).set_lifetime_for_tags(86400).build();
  cache.set("one-second", "v", {}, 1);
  cache.set("an-hour", "v", {}, 3600);
  short_default.set("default", "v");  // the builder's default: 1 s
  short_default.set("forever", "v", {}, rtc::lifetime_forever);
  rtc::compute_options computed("computed-one-second");
  computed.set_lifetime(1);
  CHECK(cache.get_or_compute(computed, [] { return "v"; }) == "v");
  CHECK(cache.get("one-second") == opt("v") && short_default.get("default") == opt("v"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  const bool expired = !cache.get("one-second") && !short_default.get("default") && !cache.get("computed-one-second");
  const bool kept = cache.get("an-hour") == opt("v") && short_default.get("forever") == opt("v");
  CHECK(expired && kept);
  std::printf("lifetimes: 1 s entries expired: %s, longer and forever kept: %s\n", expired ? "yes" : "no",
              kept ? "yes" : "no");

  // A bad lifetime is refused, at once.
  const rtc_result bad = code_of([&] { cache.set("k", "v", {}, -5); });
  check_code(bad, RTC_RESULT_INVALID_ARGUMENT, "set with lifetime -5", __LINE__);
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, computed.set_lifetime(INT64_MAX));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, computed.set_lifetime(3153600001));
  computed.set_lifetime(3153600000);
  std::printf("bad lifetime: rtc::error %s\n", rtc_result_name(bad));
}

void get_or_compute(const char *url, const std::string &ns) {
  auto log = std::make_shared<hook_log>();
  rtc::cache cache;
  CHECK(!cache);
  {
    rtc::cache_builder b = builder_for(url, ns);
    b.set_hook([log](const rtc::cache_info &info) { log->record(info); });
    CHECK(b.hook() != nullptr);
    cache = b.build();
  }  // the builder is gone: the cache keeps its hook alive (ASan would see it freed)
  CHECK(static_cast<bool>(cache));

  int runs = 0;
  auto load = [&runs] {
    ++runs;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::string("report body");
  };
  rtc::compute_options options("report");
  options.set_tags({"reports", "r:1"}).set_lock(true).set_lock_timeout_ms(30000);
  CHECK(static_cast<bool>(options));
  const std::string first = cache.get_or_compute(options, load);
  CHECK(log->calls == 1 && log->misses == 1 && log->full_miss && log->decorated_ns > 0);
  CHECK(log->key == "report" && log->tags == (std::vector<std::string>{"reports", "r:1"}));
  CHECK(log->size == 11 && log->error == RTC_RESULT_OK && log->error_message.empty());
  CHECK(log->function.empty() && log->module.empty() && !log->method && log->userdata == nullptr);
  const std::string second = cache.get_or_compute(options, load);
  CHECK(first == "report body" && second == first);
  CHECK(runs == 1 && log->calls == 2 && log->hits == 1 && log->full_hit && log->decorated_ns == 0);
  CHECK(log->elapsed_ns > 0);
  std::printf("compute: %d computation(s) for 2 calls, hook saw %d miss then %d hit\n", runs, log->misses,
              log->hits);

  // Callables returning what converts to std::string_view or std::string.
  CHECK(cache.get_or_compute(rtc::compute_options("c-str"), [] { return "a C string"; }) == "a C string");
  CHECK(cache.get_or_compute(rtc::compute_options("view"), [] { return std::string_view("a view"); }) == "a view");
  CHECK(cache.get_or_compute(rtc::compute_options("convertible"), [] { return report{7}; }) == "report 7");
  CHECK(cache.get_or_compute(rtc::compute_options("function"), free_function) == "from a function");
  CHECK(cache.get_or_compute(rtc::compute_options("empty"), [] { return std::string(); }).empty());
  CHECK(cache.get("empty") == opt(""));  // stored, as an empty value
  int counter = 0;
  auto mutable_lambda = [counter]() mutable { return std::to_string(++counter); };
  CHECK(cache.get_or_compute(rtc::compute_options("mutable"), mutable_lambda) == "1");
  const auto const_lambda = [] { return std::string("const"); };
  CHECK(cache.get_or_compute(rtc::compute_options("const"), const_lambda) == "const");

  // A key derived from a function's identity and arguments, as the hook sees it.
  int marker = 0;
  rtc::compute_options call = rtc::compute_options::call("app::users", "", "load", std::string_view("\x01\x02", 2));
  call.set_hook_userdata(&marker);
  CHECK(cache.get_or_compute(call, [] { return "user 1-2"; }) == "user 1-2");
  CHECK(log->module == "app::users" && log->function == "load" && log->type.empty() && !log->method);
  CHECK(!log->arguments.empty() && !log->key.empty() && log->userdata == &marker);
  rtc::compute_options method = rtc::compute_options::call("app", "User", "name", "");
  CHECK(cache.get_or_compute(method, [] { return "Ada"; }) == "Ada");
  CHECK(log->type == "User" && log->method);
  method.set_method(false);
  CHECK(cache.get_or_compute(method, [] { return "Ada"; }) == "Ada");
  CHECK(!log->method);
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::compute_options::call("a", std::string_view("b\0c", 3), "f", ""));

  // Many threads, one cold key, the lock: one computation, every call hooked.
  std::atomic<int> computations{0};
  std::vector<std::string> results(8);
  std::vector<std::thread> pool;
  rtc::compute_options cold("cold");
  cold.set_lock(true);
  const int before = log->calls;
  for (std::size_t i = 0; i < results.size(); ++i) {
    pool.emplace_back([&, i] {
      results[i] = cache.get_or_compute(cold, [&] {
        ++computations;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return std::string("once");
      });
    });
  }
  for (auto &t : pool) t.join();
  bool all_once = true;
  for (const auto &r : results) all_once = all_once && r == "once";
  CHECK(all_once && computations == 1 && log->calls == before + 8);
  CHECK(cache.single_flight_waiters() == 0);
  std::printf("threads: 8 callers, %d computation(s)\n", computations.load());
}

void throwing_compute(const rtc::cache &cache) {
  rtc::compute_options options("flaky");
  options.set_tags({"f"}).set_lock(true).set_lock_timeout_ms(30000);
  bool own_type = false;
  try {
    cache.get_or_compute(options, []() -> std::string { throw db_down(); });
  } catch (const db_down &e) {
    own_type = std::strcmp(e.what(), "db down") == 0;
  } catch (...) {
  }
  CHECK(own_type);
  const bool stored = cache.get("flaky", {"f"}).has_value();
  CHECK(!stored);
  // The lock was released: the next caller takes it at once, not after 30 s.
  rtc::get_or_lock_result next = cache.get_or_lock(options);
  const bool released = !next.hit() && next.ticket && next.ticket.holds_lock() && next.ticket.lock_waiting_ms() < 1000;
  CHECK(released);
  next.ticket.release();
  CHECK(!next.ticket);
  std::printf("throwing compute: %s propagated, %s, lock %s\n", own_type ? "db_down" : "another exception",
              stored ? "stored" : "nothing stored", released ? "released" : "held");

  // Not only std::exception: anything thrown comes back.
  int thrown = 0;
  try {
    cache.get_or_compute(options, []() -> std::string { throw 42; });
  } catch (int v) {
    thrown = v;
  }
  CHECK(thrown == 42);
  // An rtc::error thrown by an rtc call inside the callable comes back as itself.
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, cache.get_or_compute(options, [&] {
    cache.set("inner", "v", {}, -2);
    return std::string("unreachable");
  }));
  // And afterwards the key computes normally.
  CHECK(cache.get_or_compute(options, [] { return "second try"; }) == "second try");
  CHECK(cache.get("flaky", {"f"}) == opt("second try"));
}

void get_or_lock(const char *url, const std::string &ns) {
  auto log = std::make_shared<hook_log>();
  const rtc::cache cache =
      builder_for(url, ns).set_hook([log](const rtc::cache_info &info) { log->record(info); }).build();
  rtc::compute_options options("split");
  options.set_tags({"s"}).set_lock(true).set_lock_timeout_ms(30000);

  rtc::get_or_lock_result miss = cache.get_or_lock(options);
  CHECK(!miss.hit() && !miss.value && miss.ticket && miss.ticket.holds_lock());
  CHECK(miss.ticket.native_handle() != nullptr);
  CHECK(log->calls == 0);  // a miss is reported when the ticket ends
  rtc::ticket moved = std::move(miss.ticket);
  CHECK(!miss.ticket && moved);
  cache.set_and_unlock(std::move(moved), "computed elsewhere");
  CHECK(!moved);
  CHECK(log->calls == 1 && log->misses == 1 && log->key == "split");
  const rtc::get_or_lock_result hit = cache.get_or_lock(options);
  CHECK(hit.hit() && hit.value == opt("computed elsewhere") && !hit.ticket);
  CHECK(log->calls == 2 && log->hits == 1);
  CHECK(cache.get("split", {"s"}) == opt("computed elsewhere"));
  std::printf("get_or_lock: miss with a ticket holding the lock, set_and_unlock, then hit \"%s\"\n",
              hit.value.value_or("?").c_str());

  // set_and_unlock with a lifetime; a dropped ticket releases its lock.
  rtc::compute_options dropped("dropped");
  dropped.set_lock(true).set_lock_timeout_ms(30000);
  {
    rtc::get_or_lock_result r = cache.get_or_lock(dropped);
    CHECK(r.ticket.holds_lock());
  }  // the destructor gives the ticket up
  rtc::get_or_lock_result again = cache.get_or_lock(dropped);
  CHECK(again.ticket.holds_lock() && again.ticket.lock_waiting_ms() < 1000);
  rtc::ticket assigned;
  assigned = std::move(again.ticket);  // move assignment
  cache.set_and_unlock(std::move(assigned), "v", 60);
  CHECK(cache.get_or_lock(dropped).value == opt("v"));

  // fail_and_unlock without fail-safe: a miss, and the lock back at once.
  rtc::compute_options failing("failing");
  failing.set_lock(true).set_lock_timeout_ms(30000);
  rtc::get_or_lock_result f = cache.get_or_lock(failing);
  const opt none = cache.fail_and_unlock(std::move(f.ticket));
  CHECK(!none && !f.ticket);
  rtc::get_or_lock_result f2 = cache.get_or_lock(failing);
  CHECK(f2.ticket.holds_lock() && f2.ticket.lock_waiting_ms() < 1000);
  // A ticket adopted from, and detached to, the C API.
  rtc_ticket *raw = f2.ticket.detach();
  CHECK(raw != nullptr && !f2.ticket);
  rtc::ticket adopted(raw);
  CHECK(adopted.holds_lock());

  // Consumed tickets and tickets of another cache are refused.
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, cache.set_and_unlock(rtc::ticket(), "v"));
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, cache.fail_and_unlock(rtc::ticket()));
  const rtc::cache other = builder_for(url, ns).build();
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, other.set_and_unlock(std::move(adopted), "v"));
  CHECK(!adopted);
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, cache.set_and_unlock(cache.get_or_lock(failing).ticket, "v", -7));
}

void fail_safe(const char *url, const std::string &ns) {
  auto log = std::make_shared<hook_log>();
  const rtc::cache cache = builder_for(url, ns)
                               .set_fail_safe(60000, 1 << 20)
                               .set_hook([log](const rtc::cache_info &info) { log->record(info); })
                               .build();
  const rtc::cache other = builder_for(url, ns).build();  // deletes as an eviction would
  rtc::compute_options options("fail-safe");
  options.set_tags({"fs"}).set_lock(true).set_lock_timeout_ms(30000);
  rtc::get_or_lock_result r = cache.get_or_lock(options);
  cache.set_and_unlock(std::move(r.ticket), "v1");
  CHECK(other.del("fail-safe", {"fs"}));

  // The computation elsewhere failed: the fail-safe value, a stale hit.
  rtc::get_or_lock_result miss = cache.get_or_lock(options);
  CHECK(!miss.hit() && miss.ticket.holds_lock());
  const opt served = cache.fail_and_unlock(std::move(miss.ticket));
  CHECK(served == opt("v1") && log->stale == 1 && log->hits == 1);
  // get_or_compute whose callable throws: the fail-safe value, no exception.
  bool threw = false;
  std::string value;
  try {
    value = cache.get_or_compute(options, []() -> std::string { throw db_down(); });
  } catch (const db_down &) {
    threw = true;
  }
  CHECK(!threw && value == "v1" && log->stale == 2);
  // Known invalidated: never served; the exception comes back.
  cache.invalidate("fs");
  threw = false;
  try {
    cache.get_or_compute(options, []() -> std::string { throw db_down(); });
  } catch (const db_down &) {
    threw = true;
  }
  CHECK(threw && log->stale == 2);
  std::printf("fail-safe: fail_and_unlock served \"%s\" (%s), a throwing compute served \"%s\"\n",
              served.value_or("?").c_str(), log->stale >= 1 ? "stale" : "fresh", value.c_str());
}

void hooks(const char *url, const std::string &ns) {
  // A hook that throws: swallowed, the call succeeds, the program goes on.
  std::atomic<int> thrown{0};
  rtc::cache_builder b = builder_for(url, ns);
  b.set_hook([&thrown](const rtc::cache_info &info) {
    ++thrown;
    if (info.hit()) throw 7;  // not even a std::exception
    throw std::runtime_error("hook failed");
  });
  const rtc::cache throwing = b.build();
  rtc::compute_options options("hooked");
  CHECK(throwing.get_or_compute(options, [] { return "fine"; }) == "fine");
  CHECK(throwing.get_or_compute(options, [] { return "unused"; }) == "fine");
  CHECK(thrown == 2);
  std::printf("throwing hook: swallowed, %d calls, both returned their value\n", thrown.load());

  // Replacing the hook: caches built before keep theirs; an empty one removes it.
  std::atomic<int> second{0};
  b.set_hook([&second](const rtc::cache_info &) { ++second; });
  const rtc::cache replaced = b.build();
  b.set_hook(nullptr);
  CHECK(b.hook() == nullptr);
  const rtc::cache unhooked = b.build();
  rtc::compute_options other("hooked-2");
  CHECK(throwing.get_or_compute(other, [] { return "x"; }) == "x");
  CHECK(replaced.get_or_compute(other, [] { return "x"; }) == "x");
  CHECK(unhooked.get_or_compute(other, [] { return "x"; }) == "x");
  CHECK(thrown == 3 && second == 1);
}

void errors(const char *url, const std::string &ns, const char *dead_port) {
  const rtc::cache cache = builder_for(url, ns).build();
  CHECK_THROWS(RTC_RESULT_INVALID_UTF8, cache.set("\xff", "v"));
  CHECK_THROWS(RTC_RESULT_INVALID_UTF8, cache.get("k", {"\xfe"}));
  CHECK_THROWS(RTC_RESULT_INVALID_UTF8, cache.invalidate("\xfe"));
  CHECK_THROWS(RTC_RESULT_INVALID_UTF8, rtc::compute_options("\xff"));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::compute_options("k").set_lock_timeout_ms(86400001));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, builder_for(url, ns).set_url("not a url").build());
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::cache_builder().add_cluster_node("not a url").build());
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::cache_builder().set_namespace(std::string_view("a\0b", 3)));
  CHECK_THROWS(RTC_RESULT_INVALID_UTF8, rtc::cache_builder().set_host("\xff"));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::cache_builder().set_fail_safe(1000, 0));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, rtc::cache_builder().set_near_cache(10, 0, 1000));
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT,
               rtc::cache_builder().set_near_cache_tracking(static_cast<rtc::near_tracking>(7)));

  // The message says which call failed and why.
  bool described = false;
  try {
    cache.set("k", "v", {}, -3);
  } catch (const std::runtime_error &e) {  // rtc::error is one
    const std::string what = e.what();
    described = what.find("rtc_cache_set") != std::string::npos &&
                what.find("RTC_RESULT_INVALID_ARGUMENT") != std::string::npos;
  }
  CHECK(described);

  // Redis down: a host and port (the URL unset) where nothing listens.
  const int port = std::atoi(dead_port);
  rtc::cache_builder down;
  down.set_url(url)
      .set_url(std::nullopt)
      .set_host("127.0.0.1")
      .set_port(static_cast<std::uint16_t>(port))
      .set_db(0)
      .set_ssl(false)
      .set_username("nobody")
      .set_username(std::nullopt)
      .set_password("secret")
      .set_password(std::nullopt)
      .set_tls_ca_cert("not a PEM")
      .set_tls_ca_cert(std::nullopt)
      .set_socket_connect_timeout_ms(1000)
      .set_socket_timeout_ms(1000)
      .set_namespace(ns);
  auto log = std::make_shared<hook_log>();
  down.set_hook([log](const rtc::cache_info &info) { log->record(info); });
  const rtc::cache dead = down.build();  // building does not connect
  rtc_result set_code = RTC_RESULT_OK;
  std::string message;
  try {
    dead.set("k", "v", {"t"});
  } catch (const rtc::error &e) {
    set_code = e.code();
    message = e.what();
    CHECK(e.name() == "RTC_RESULT_BACKEND_UNAVAILABLE");
  }
  check_code(set_code, RTC_RESULT_BACKEND_UNAVAILABLE, "set with Redis down", __LINE__);
  CHECK(message.find("backend-unavailable") != std::string::npos);
  CHECK_THROWS(RTC_RESULT_BACKEND_UNAVAILABLE, dead.get("k", {"t"}));  // never a miss
  CHECK_THROWS(RTC_RESULT_BACKEND_UNAVAILABLE, dead.del("k", {"t"}));
  CHECK_THROWS(RTC_RESULT_BACKEND_UNAVAILABLE, dead.invalidate("t"));
  CHECK_THROWS(RTC_RESULT_BACKEND_UNAVAILABLE, dead.invalidate_all());
  // get_or_compute bypasses the cache: computes, returns, tells the hook.
  CHECK(dead.get_or_compute(rtc::compute_options("k"), [] { return "fallback"; }) == "fallback");
  CHECK(log->calls == 1 && log->error == RTC_RESULT_BACKEND_UNAVAILABLE && !log->error_message.empty());
  // get_or_lock gives a ticket that stores nothing; its end reports the error.
  rtc::get_or_lock_result r = dead.get_or_lock(rtc::compute_options("k"));
  CHECK(!r.hit() && r.ticket && !r.ticket.holds_lock());
  CHECK_THROWS(RTC_RESULT_BACKEND_UNAVAILABLE, dead.set_and_unlock(std::move(r.ticket), "v"));
  std::printf("redis down: set threw rtc::error %s\n", rtc_result_name(set_code));

  // The same builder, in local memory: no Redis needed.
  const rtc::cache local = down.set_in_local_memory(true).build();
  local.set("k", "in memory", {"t"});
  CHECK(local.get("k", {"t"}) == opt("in memory"));
}

void settings(const char *url, const std::string &ns) {
  // Disabled: nothing stored, every call computes.
  const rtc::cache disabled = builder_for(url, ns).set_disabled(true).build();
  disabled.set("k", "v");
  CHECK(disabled.get("k") == std::nullopt);
  int runs = 0;
  rtc::compute_options options("k");
  disabled.get_or_compute(options, [&] { return std::to_string(++runs); });
  CHECK(disabled.get_or_compute(options, [&] { return std::to_string(++runs); }) == "2");

  // max_value_size: larger values refused, by set and by a computation.
  const rtc::cache small = builder_for(url, ns).set_max_value_size(16).build();
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, small.set("big", std::string(17, 'x')));
  small.set("fits", std::string(16, 'x'));
  rtc::compute_options big("big-computed");
  CHECK_THROWS(RTC_RESULT_INVALID_ARGUMENT, small.get_or_compute(big, [] { return std::string(17, 'x'); }));
  CHECK(small.get("big-computed") == std::nullopt);

  // The near cache: its counters when on, std::nullopt when off.
  const rtc::cache near = builder_for(url, ns)
                              .set_near_cache(100, 1 << 20, 60000)
                              .set_near_cache_tracking(rtc::near_tracking::broadcast)
                              .build();
  near.set("near", "v");
  CHECK(near.get("near") == opt("v"));
  const std::optional<rtc::near_stats> stats = near.near_stats();
  CHECK(stats.has_value() && stats->tracking == RTC_NEAR_TRACKING_BROADCAST);
  CHECK(!small.near_stats().has_value());
  std::printf("near cache: stats %s, tracking %s; off: %s\n", stats ? "read" : "missing",
              stats && stats->tracking == RTC_NEAR_TRACKING_BROADCAST ? "broadcast" : "per reader",
              small.near_stats() ? "stats" : "nullopt");
}

void moves(const char *url, const std::string &ns) {
  rtc::cache_builder b = builder_for(url, ns);
  rtc::cache_builder b2 = std::move(b);
  CHECK(!b && b2);
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, b.set_port(1));  // a moved-from builder refuses
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, b.build());
  b = std::move(b2);
  CHECK(b && !b2);

  rtc::cache a = b.build();
  a.set("moved", "v");
  rtc::cache c(std::move(a));
  CHECK(!a && c && c.native_handle() != nullptr);
  CHECK(c.get("moved") == opt("v"));
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, a.get("moved"));  // moved from: refused, no crash
  rtc::cache d = b.build();
  d = std::move(c);  // frees d's own cache first
  CHECK(!c && d.get("moved") == opt("v"));
  rtc::cache &same = d;
  d = std::move(same);  // self-move is harmless
  CHECK(d.get("moved") == opt("v"));
  // A cache made by the C API, adopted (b has no hook to keep alive).
  rtc_cache *raw = nullptr;
  CHECK(rtc_cache_new(b.native_handle(), &raw) == RTC_RESULT_OK);
  const rtc::cache adopted(raw);
  CHECK(adopted.get("moved") == opt("v"));

  rtc::compute_options o("moved-options");
  rtc::compute_options o2 = std::move(o);
  CHECK(!o && o2);
  CHECK_THROWS(RTC_RESULT_NULL_PARAMETER, d.get_or_compute(o, [] { return "x"; }));
  o = rtc::compute_options("reassigned");
  CHECK(d.get_or_compute(o, [] { return "x"; }) == "x");
  std::printf("moves: cache, builder, options, ticket moved; moved-from calls threw %s\n",
              rtc_result_name(code_of([&] { a.invalidate_all(); })));
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s REDIS_URL NAMESPACE DEAD_PORT\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  const std::string ns = argv[2];
  try {
    version();
    const rtc::cache cache = builder_for(url, ns)
                                 .set_socket_timeout_ms(5000)
                                 .set_socket_connect_timeout_ms(5000)
                                 .set_default_lifetime(3600)
                                 .build();
    set_get_delete(cache);
    invalidation(url, ns, cache);
    lifetimes(url, ns + "-lifetimes", cache);
    get_or_compute(url, ns + "-compute");
    throwing_compute(cache);
    get_or_lock(url, ns + "-lock");
    fail_safe(url, ns + "-fail-safe");
    hooks(url, ns + "-hooks");
    errors(url, ns + "-errors", argv[3]);
    settings(url, ns + "-settings");
    moves(url, ns + "-moves");
  } catch (const std::exception &e) {
    std::printf("FAIL: unexpected exception: %s\n", e.what());
    ++failures;
  }
  std::printf("rtc-hpp: %d checks, %d failed\n", checks.load(), failures.load());
  return failures == 0 ? 0 : 1;
}
