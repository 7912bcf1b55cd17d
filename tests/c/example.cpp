// The C++ example of ffi/README.md (compiled and run by tests/tests/c_programs.rs,
// with pkg-config and with CMake): rtc.hpp, header-only over rtc.h.
#include <cstdio>
#include <string>

#include <rtc.hpp>

int main(int argc, char **argv) try {
  rtc::cache cache(rtc::cache_builder().set_url(argc > 1 ? argv[1] : "redis://127.0.0.1:6379/"));

  cache.set("user:1", "Ada", {"users", "user:1"});
  std::optional<std::string> hit = cache.get("user:1", {"users", "user:1"});  // std::nullopt on a miss
  cache.invalidate("users");                                                   // one write, however many entries
  bool miss = !cache.get("user:1", {"users", "user:1"});

  // get-or-compute with any callable, under the stampede lock; an exception
  // it throws comes back out of get_or_compute, with nothing stored.
  rtc::compute_options options("greeting");
  options.set_tags({"greetings"}).set_lock(true);
  std::string greeting = cache.get_or_compute(options, [] { return std::string("hello, C++"); });

  std::printf("%s\n", greeting.c_str());
  return hit == "Ada" && miss ? 0 : 1;
} catch (const rtc::error &e) {  // Redis unreachable, bad input: the rtc_result and its message
  std::fprintf(stderr, "rtc: %s (%s)\n", e.what(), std::string(e.name()).c_str());
  return 1;
}
