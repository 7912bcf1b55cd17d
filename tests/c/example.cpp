// The C++ example of ffi/README.md (compiled and run by tests/tests/c_programs.rs).
#include <cstdio>
#include <memory>
#include <string>

#include <rtc.h>

static const uint8_t *bytes(const std::string &s) { return reinterpret_cast<const uint8_t *>(s.data()); }

int main(int argc, char **argv) {
  std::unique_ptr<rtc_cache_builder, decltype(&rtc_cache_builder_free)> builder(rtc_cache_builder_new(),
                                                                               rtc_cache_builder_free);
  rtc_cache_builder_set_url(builder.get(), argc > 1 ? argv[1] : "redis://127.0.0.1:6379/");
  rtc_cache *raw = nullptr;
  if (rtc_cache_new(builder.get(), &raw) != RTC_RESULT_OK) {
    std::fprintf(stderr, "rtc: %s\n", rtc_last_error_message());
    return 1;
  }
  std::unique_ptr<rtc_cache, decltype(&rtc_cache_free)> cache(raw, rtc_cache_free);

  // get-or-compute with a lambda: userdata carries it to a captureless trampoline.
  std::string key = "greeting", tag = "greetings";
  rtc_bytes tags[] = {{bytes(tag), tag.size()}};
  rtc_compute_options *raw_options = nullptr;
  rtc_compute_options_new(bytes(key), key.size(), &raw_options);
  std::unique_ptr<rtc_compute_options, decltype(&rtc_compute_options_free)> options(raw_options,
                                                                                    rtc_compute_options_free);
  rtc_compute_options_set_tags(options.get(), tags, 1);
  rtc_compute_options_set_lock(options.get(), true);

  auto compute = [](const std::string &who) { return "hello, " + who; };
  std::string who = "C++";
  struct Call { decltype(compute) &f; const std::string &arg; } call{compute, who};
  auto trampoline = [](void *userdata, rtc_output *out) -> int {
    auto *c = static_cast<Call *>(userdata);
    std::string v = c->f(c->arg);  // must not throw through rtc: catch here if it can
    return rtc_output_write(out, bytes(v), v.size()) == RTC_RESULT_OK ? 0 : 1;
  };

  rtc_value *raw_value = nullptr;
  if (rtc_cache_get_or_compute(cache.get(), options.get(), trampoline, &call, &raw_value) != RTC_RESULT_OK) {
    std::fprintf(stderr, "rtc: %s\n", rtc_last_error_message());
    return 1;
  }
  std::unique_ptr<rtc_value, decltype(&rtc_value_free)> value(raw_value, rtc_value_free);
  std::string text(reinterpret_cast<const char *>(rtc_value_data(value.get())), rtc_value_len(value.get()));
  std::printf("%s\n", text.c_str());
  return 0;
}
