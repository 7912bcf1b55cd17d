/*
 * rtc.hpp: a header-only C++17 face over librtc's C interface (rtc.h).
 *
 * Nothing here is compiled into librtc: the header only calls the C
 * functions of rtc.h, so it works with the shared and the static library
 * alike and adds no ABI of its own to keep stable.
 *
 * Design, and why:
 * - Ownership is RAII: rtc::cache, rtc::cache_builder, rtc::compute_options
 *   and rtc::ticket each own one C handle and free it in their destructor.
 *   They are move-only (a handle has one owner, as in C) with noexcept
 *   moves, so they live in containers and std::optional without surprises.
 *   A moved-from object is empty: destroying or assigning it is fine, and
 *   any other call on it throws rtc::error(RTC_RESULT_NULL_PARAMETER), as
 *   the C function then refuses the NULL handle, rather than crashing.
 * - Errors are exceptions (rtc::error, a std::runtime_error carrying the
 *   rtc_result code and rtc_last_error_message()). Constructors such as
 *   rtc::cache(builder) cannot return a code, RAII needs them to either give
 *   a working object or none, and results like std::optional<std::string>
 *   have no room for a code. A program that prefers codes already has them:
 *   the C API returns them, and every wrapper exposes native_handle().
 * - A miss is not an error: get returns std::nullopt, distinct from an
 *   entry whose value is empty; del returns false.
 * - Text and bytes go in as std::string_view (no copy: rtc copies what it
 *   keeps); values come out as std::string (they are bytes: a std::string
 *   may hold any, NULs included). Tags go in as an rtc::tag_list, built
 *   implicitly from a braced list ({"users", "user:1"}) or from any range of
 *   strings (std::vector<std::string>, std::array<std::string_view, N>,
 *   std::span...), which points into the caller's strings and allocates
 *   only past 8 tags.
 * - delete is a C++ keyword, so the operation is named del: Redis's own name
 *   for the command (DEL), a word rather than a name with a trailing
 *   underscore, which many C++ styles keep for private members.
 * - Names follow the C API's (rtc_cache_set -> rtc::cache::set,
 *   rtc_cache_builder_set_url -> rtc::cache_builder::set_url) and units stay
 *   in the names (_ms, lifetimes in seconds), so rtc.h's documentation of
 *   each call applies word for word; classes use the standard library's
 *   snake_case.
 * - No exception ever unwinds through librtc (that would cross Rust frames:
 *   undefined behaviour). The compute callback's trampoline catches every
 *   exception, stores it as a std::exception_ptr, fails the computation, and
 *   rethrows it, with its own type, once rtc_cache_get_or_compute has
 *   returned (nothing stored, the lock released). A hook's trampoline is
 *   noexcept and swallows whatever the hook throws: a hook only observes, and
 *   the call it reports on has already succeeded.
 * - A hook is a std::function owned through a std::shared_ptr: the builder
 *   holds one reference and every cache built from it another, so the
 *   function outlives every cache that may call it, whatever the order in
 *   which builder and caches are destroyed or moved.
 * - The non-blocking API (rtc_async_*) is not wrapped, but nothing here
 *   stands in its way: cache_builder::native_handle() goes to rtc_async_new
 *   (keep cache_builder::hook() alive as long as the context), and
 *   rtc::ticket adopts and gives up raw tickets.
 *
 * Thread-safety is rtc.h's: one rtc::cache may be used from many threads at
 * once (every const member function is thread-safe); builders and options
 * are set up from one thread at a time. A hook may run on many threads at
 * once.
 */
#ifndef RTC_HPP
#define RTC_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rtc.h"

/// The C++ face of librtc: see the top of this header for its design.
namespace rtc {

/// A `lifetime` argument: use the cache's default lifetime (RTC_LIFETIME_DEFAULT).
inline constexpr std::int64_t lifetime_default = RTC_LIFETIME_DEFAULT;

/// A `lifetime` argument: never expire (RTC_LIFETIME_FOREVER). Any positive
/// value is a number of seconds.
inline constexpr std::int64_t lifetime_forever = RTC_LIFETIME_FOREVER;

/// The near cache's counters (rtc.h's struct, whose fields are documented there).
using near_stats = rtc_near_stats;

/// How the near cache learns of changes (rtc_cache_builder_set_near_cache_tracking).
enum class near_tracking : std::uint32_t {
  /// Redis pushes a change only to the processes holding the entry (the default).
  per_reader = RTC_NEAR_TRACKING_PER_READER,
  /// Every process hears of every entry written in the namespace.
  broadcast = RTC_NEAR_TRACKING_BROADCAST,
};

/// Returns the library's version (e.g. "0.1.0"); compare it with
/// RTC_VERSION, the header's, to detect a mismatch.
inline std::string_view version() noexcept { return rtc_version(); }

/// Returns the name of a result code, e.g. "RTC_RESULT_MISS".
inline std::string_view result_name(rtc_result code) noexcept { return rtc_result_name(code); }

/// An rtc failure: the rtc_result code and a message saying which call
/// failed and why (rtc_last_error_message(), copied when the call failed,
/// since the next rtc call on the thread may replace it).
class error : public std::runtime_error {
 public:
  /// Makes an error with `code` and the full message `what`.
  error(rtc_result code, const std::string &what) : std::runtime_error(what), code_(code) {}

  /// The RTC_RESULT_* code (never RTC_RESULT_OK nor RTC_RESULT_MISS).
  rtc_result code() const noexcept { return code_; }

  /// The code's name, e.g. "RTC_RESULT_BACKEND_UNAVAILABLE".
  std::string_view name() const noexcept { return rtc_result_name(code_); }

 private:
  rtc_result code_;
};

/// What the header needs internally; not part of its interface.
namespace detail {

/// Throws the error `code` of the C function `function`, with the thread's last message.
[[noreturn]] inline void throw_error(rtc_result code, const char *function) {
  // Copied first: it is valid only until the next rtc call on this thread.
  std::string message = rtc_last_error_message();
  std::string what = function;
  what += ": ";
  what += rtc_result_name(code);
  if (!message.empty()) {
    what += ": ";
    what += message;
  }
  throw error(code, what);
}

/// Throws unless `code` is RTC_RESULT_OK (callers handle RTC_RESULT_MISS before).
inline void check(rtc_result code, const char *function) {
  if (code != RTC_RESULT_OK) throw_error(code, function);
}

/// The bytes of `s`, as rtc takes them.
inline const std::uint8_t *bytes(std::string_view s) noexcept {
  return reinterpret_cast<const std::uint8_t *>(s.data());
}

/// An rtc_bytes as a view.
inline std::string_view view(rtc_bytes b) noexcept {
  return b.len == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char *>(b.data), b.len);
}

/// A NUL-terminated copy of `s`, for the C functions that take C strings;
/// throws RTC_RESULT_INVALID_ARGUMENT for a NUL inside, which C would
/// silently cut the string at.
inline std::string c_string(std::string_view s, const char *function) {
  if (s.find('\0') != std::string_view::npos) {
    throw error(RTC_RESULT_INVALID_ARGUMENT,
                std::string(function) + ": RTC_RESULT_INVALID_ARGUMENT: the text contains a NUL byte");
  }
  return std::string(s);
}

/// An rtc_value owned for the time of turning it into a std::string.
class value {
 public:
  explicit value(rtc_value *v) noexcept : v_(v) {}
  value(const value &) = delete;
  value &operator=(const value &) = delete;
  ~value() { rtc_value_free(v_); }

  /// A copy of the bytes (an empty string for no value).
  std::string str() const {
    const std::size_t n = rtc_value_len(v_);
    return n == 0 ? std::string() : std::string(reinterpret_cast<const char *>(rtc_value_data(v_)), n);
  }

 private:
  rtc_value *v_;
};

/// Whether `T` is a range whose elements convert to std::string_view.
template <typename T, typename = void>
struct is_string_range : std::false_type {};
template <typename T>
struct is_string_range<T, std::void_t<decltype(std::begin(std::declval<const T &>())),
                                      decltype(std::end(std::declval<const T &>()))>>
    : std::is_convertible<decltype(*std::begin(std::declval<const T &>())), std::string_view> {};

}  // namespace detail

/// The tags of a call: a view of the caller's strings, made implicitly from
/// a braced list (`{"users", "user:1"}`) or any range of strings, so a call
/// reads `cache.set("user:1", "Ada", {"users", "user:1"})`.
///
/// It points into those strings: they must outlive it (a tag list made in
/// the call's argument list lives as long as the call). Up to 8 tags are
/// held inline; more take one allocation. Tags are a set: give each once,
/// in any order.
class tag_list {
 public:
  /// No tags.
  tag_list() noexcept = default;

  /// The tags of a braced list.
  tag_list(std::initializer_list<std::string_view> tags) {
    for (std::string_view t : tags) push(t);
  }

  /// The tags of any range whose elements convert to std::string_view
  /// (std::vector<std::string>, std::array<const char *, N>, std::span...).
  /// Its elements must be the range's own strings (or views), not
  /// temporaries made while iterating, which would be gone by the call.
  template <typename Range, typename = std::enable_if_t<!std::is_same_v<std::decay_t<Range>, tag_list> &&
                                                        detail::is_string_range<Range>::value>>
  tag_list(const Range &tags) {  // NOLINT(google-explicit-constructor): implicit on purpose
    using element = decltype(*std::begin(tags));
    static_assert(std::is_lvalue_reference_v<element> ||
                      std::is_same_v<std::decay_t<element>, std::string_view> ||
                      std::is_pointer_v<std::decay_t<element>>,
                  "rtc::tag_list: the range makes temporary strings, which would dangle");
    for (const auto &t : tags) push(std::string_view(t));
  }

  /// The rtc_bytes array rtc takes (NULL when empty).
  const rtc_bytes *data() const noexcept {
    return size_ == 0 ? nullptr : heap_.empty() ? inline_.data() : heap_.data();
  }

  /// The number of tags.
  std::size_t size() const noexcept { return size_; }

  /// True when there is no tag.
  bool empty() const noexcept { return size_ == 0; }

 private:
  static constexpr std::size_t inline_capacity = 8;

  void push(std::string_view t) {
    const rtc_bytes b{detail::bytes(t), t.size()};
    if (size_ < inline_capacity) {
      inline_[size_] = b;
    } else {
      if (heap_.empty()) heap_.assign(inline_.begin(), inline_.end());
      heap_.push_back(b);
    }
    ++size_;
  }

  std::array<rtc_bytes, inline_capacity> inline_{};
  std::vector<rtc_bytes> heap_;  // all the tags, once there are more than fit inline
  std::size_t size_ = 0;
};

/// What a hook learns about one get-or-compute: a view of rtc_cache_info
/// (see its accessors in rtc.h). Valid only during the hook call, as is
/// every view it returns: copy what you keep.
class cache_info {
 public:
  /// A view of `info`, as the hook receives it.
  explicit cache_info(const rtc_cache_info *info) noexcept : info_(info) {}

  /// The cache key (given, or derived from the function and its arguments).
  std::string_view key() const noexcept { return detail::view(rtc_cache_info_key(info_)); }
  /// The number of the entry's tags.
  std::size_t tags_len() const noexcept { return rtc_cache_info_tags_len(info_); }
  /// The tag at `index` (empty past the end).
  std::string_view tag(std::size_t index) const noexcept { return detail::view(rtc_cache_info_tag(info_, index)); }
  /// Every tag, in order (a convenience that allocates the vector).
  std::vector<std::string_view> tags() const {
    std::vector<std::string_view> out;
    out.reserve(tags_len());
    for (std::size_t i = 0; i < tags_len(); ++i) out.push_back(tag(i));
    return out;
  }
  /// The cached function's module ("" for a fixed key).
  std::string_view function_module() const noexcept { return rtc_cache_info_function_module(info_); }
  /// The cached function's type, for a method ("" otherwise).
  std::string_view function_type() const noexcept { return rtc_cache_info_function_type(info_); }
  /// The cached function's name ("" for a fixed key).
  std::string_view function_name() const noexcept { return rtc_cache_info_function_name(info_); }
  /// The call's arguments as CBOR (empty for a fixed key).
  std::string_view arguments() const noexcept { return detail::view(rtc_cache_info_arguments(info_)); }
  /// True when the cached function is a method.
  bool method() const noexcept { return rtc_cache_info_method(info_); }
  /// True when the value came from the cache.
  bool hit() const noexcept { return rtc_cache_info_hit(info_); }
  /// True when the value is a fail-safe value (also a hit).
  bool stale() const noexcept { return rtc_cache_info_stale(info_); }
  /// The whole call in nanoseconds, computation included, hook excluded.
  std::uint64_t elapsed_ns() const noexcept { return rtc_cache_info_elapsed_ns(info_); }
  /// Time spent computing the value in nanoseconds (0 on a hit).
  std::uint64_t decorated_elapsed_ns() const noexcept { return rtc_cache_info_decorated_elapsed_ns(info_); }
  /// Time spent waiting for another caller's lock, in milliseconds.
  std::uint64_t lock_waiting_ms() const noexcept { return rtc_cache_info_lock_waiting_ms(info_); }
  /// With the lock: the value was there at the first read.
  bool lock_full_hit() const noexcept { return rtc_cache_info_lock_full_hit(info_); }
  /// With the lock: no value even after locking, so this caller computed it.
  bool lock_full_miss() const noexcept { return rtc_cache_info_lock_full_miss(info_); }
  /// Size of the value's bytes as stored (0 if nothing was read or written).
  std::size_t serialized_size() const noexcept { return rtc_cache_info_serialized_size(info_); }
  /// RTC_RESULT_OK, or the error that made the call bypass the cache.
  rtc_result error() const noexcept { return rtc_cache_info_error(info_); }
  /// The error's message ("" when there is none).
  std::string_view error_message() const noexcept {
    const char *m = rtc_cache_info_error_message(info_);
    return m == nullptr ? std::string_view() : std::string_view(m);
  }
  /// The call's compute_options::set_hook_userdata pointer, or nullptr.
  void *call_userdata() const noexcept { return rtc_cache_info_call_userdata(info_); }
  /// The C handle, for the accessors a later rtc.h may add.
  const rtc_cache_info *native_handle() const noexcept { return info_; }

 private:
  const rtc_cache_info *info_;
};

/// A hook: called after every get-or-compute, whether in one call
/// (cache::get_or_compute) or in two (cache::get_or_lock's hit, or the end
/// of its ticket), with its measurements, possibly on many threads at once:
/// it must be thread-safe. Whatever it throws is swallowed.
using hook_function = std::function<void(const cache_info &)>;

namespace detail {

/// The C hook: calls the std::function behind `userdata`; never lets an exception out.
inline void run_hook(void *userdata, const rtc_cache_info *info) noexcept {
  try {
    (*static_cast<const hook_function *>(userdata))(cache_info(info));
  } catch (...) {  // NOLINT(bugprone-empty-catch): a hook only observes; unwinding into rtc is UB
  }
}

}  // namespace detail

class cache;

/// The configuration caches are built from (rtc_cache_builder): made with
/// the reference library's defaults, changed with chained setters, built
/// into any number of caches. Setters throw rtc::error for a value rtc
/// refuses; text goes in as std::string_view (a NUL inside is refused).
class cache_builder {
 public:
  /// A builder holding the default configuration.
  cache_builder() : handle_(rtc_cache_builder_new()) {
    if (handle_ == nullptr) detail::throw_error(RTC_RESULT_OTHER, "rtc_cache_builder_new");
  }
  /// Takes ownership of a builder made by rtc_cache_builder_new (its hook,
  /// if any, is the caller's to keep alive).
  explicit cache_builder(rtc_cache_builder *adopt) noexcept : handle_(adopt) {}
  /// Moves the builder and its hook; `other` is left empty.
  cache_builder(cache_builder &&other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), hook_(std::move(other.hook_)) {}
  /// Frees this builder, then takes `other`'s.
  cache_builder &operator=(cache_builder &&other) noexcept {
    if (this != &other) {
      rtc_cache_builder_free(std::exchange(handle_, std::exchange(other.handle_, nullptr)));
      hook_ = std::move(other.hook_);
    }
    return *this;
  }
  /// Not copyable: a handle has one owner, as in C.
  cache_builder(const cache_builder &) = delete;
  cache_builder &operator=(const cache_builder &) = delete;
  /// Frees the builder; caches built from it keep their configuration and hook.
  ~cache_builder() { rtc_cache_builder_free(handle_); }

  /// The namespace (default "default"): caches in different namespaces never see each other's entries.
  cache_builder &set_namespace(std::string_view name) {
    detail::check(rtc_cache_builder_set_namespace(handle_, c_str(name).c_str()), "rtc_cache_builder_set_namespace");
    return *this;
  }
  /// The Redis host (default "localhost"; ignored when a URL is set).
  cache_builder &set_host(std::string_view host) {
    detail::check(rtc_cache_builder_set_host(handle_, c_str(host).c_str()), "rtc_cache_builder_set_host");
    return *this;
  }
  /// The Redis port (default 6379; ignored when a URL is set).
  cache_builder &set_port(std::uint16_t port) {
    detail::check(rtc_cache_builder_set_port(handle_, port), "rtc_cache_builder_set_port");
    return *this;
  }
  /// The Redis database number (default 0; ignored when a URL is set).
  cache_builder &set_db(std::int64_t db) {
    detail::check(rtc_cache_builder_set_db(handle_, db), "rtc_cache_builder_set_db");
    return *this;
  }
  /// TLS on or off (default off; ignored when a URL is set: use rediss://).
  cache_builder &set_ssl(bool ssl) {
    detail::check(rtc_cache_builder_set_ssl(handle_, ssl), "rtc_cache_builder_set_ssl");
    return *this;
  }
  /// The ACL user name (ignored when a URL is set).
  cache_builder &set_username(std::string_view username) {
    detail::check(rtc_cache_builder_set_username(handle_, c_str(username).c_str()), "rtc_cache_builder_set_username");
    return *this;
  }
  /// No ACL user name (the default).
  cache_builder &set_username(std::nullopt_t) {
    detail::check(rtc_cache_builder_set_username(handle_, nullptr), "rtc_cache_builder_set_username");
    return *this;
  }
  /// The password (ignored when a URL is set).
  cache_builder &set_password(std::string_view password) {
    detail::check(rtc_cache_builder_set_password(handle_, c_str(password).c_str()), "rtc_cache_builder_set_password");
    return *this;
  }
  /// No password (the default).
  cache_builder &set_password(std::nullopt_t) {
    detail::check(rtc_cache_builder_set_password(handle_, nullptr), "rtc_cache_builder_set_password");
    return *this;
  }
  /// A redis://, rediss:// or redis+unix:// URL, replacing host, port, db,
  /// ssl, username and password; checked when a cache is built.
  cache_builder &set_url(std::string_view url) {
    detail::check(rtc_cache_builder_set_url(handle_, c_str(url).c_str()), "rtc_cache_builder_set_url");
    return *this;
  }
  /// No URL (the default): host, port, db, ssl, username and password apply.
  cache_builder &set_url(std::nullopt_t) {
    detail::check(rtc_cache_builder_set_url(handle_, nullptr), "rtc_cache_builder_set_url");
    return *this;
  }
  /// Adds a Redis Cluster seed node (redis://host:port or rediss://); with
  /// one, the cache talks to that cluster and ignores URL, host, port and db.
  cache_builder &add_cluster_node(std::string_view node) {
    detail::check(rtc_cache_builder_add_cluster_node(handle_, c_str(node).c_str()),
                  "rtc_cache_builder_add_cluster_node");
    return *this;
  }
  /// Adds a Redis Sentinel node (redis://[user:password@]host:port, the
  /// sentinel's own credentials, or rediss://); with one and a master name,
  /// the cache follows the master the sentinels name across failovers.
  cache_builder &add_sentinel_node(std::string_view node) {
    detail::check(rtc_cache_builder_add_sentinel_node(handle_, c_str(node).c_str()),
                  "rtc_cache_builder_add_sentinel_node");
    return *this;
  }
  /// The name of the master the Sentinel nodes monitor.
  cache_builder &set_sentinel_master_name(std::string_view name) {
    detail::check(rtc_cache_builder_set_sentinel_master_name(handle_, c_str(name).c_str()),
                  "rtc_cache_builder_set_sentinel_master_name");
    return *this;
  }
  /// No master name (the default).
  cache_builder &set_sentinel_master_name(std::nullopt_t) {
    detail::check(rtc_cache_builder_set_sentinel_master_name(handle_, nullptr),
                  "rtc_cache_builder_set_sentinel_master_name");
    return *this;
  }
  /// A private certificate authority (PEM bytes) to verify TLS servers with.
  cache_builder &set_tls_ca_cert(std::string_view pem) {
    detail::check(rtc_cache_builder_set_tls_ca_cert(handle_, detail::bytes(pem), pem.size()),
                  "rtc_cache_builder_set_tls_ca_cert");
    return *this;
  }
  /// The system's roots instead (the default).
  cache_builder &set_tls_ca_cert(std::nullopt_t) {
    detail::check(rtc_cache_builder_set_tls_ca_cert(handle_, nullptr, 0), "rtc_cache_builder_set_tls_ca_cert");
    return *this;
  }
  /// The timeout of one Redis round trip in milliseconds (default 5000; 0: none).
  cache_builder &set_socket_timeout_ms(std::uint64_t timeout_ms) {
    detail::check(rtc_cache_builder_set_socket_timeout_ms(handle_, timeout_ms),
                  "rtc_cache_builder_set_socket_timeout_ms");
    return *this;
  }
  /// The connect timeout in milliseconds, handshake included (default 5000).
  cache_builder &set_socket_connect_timeout_ms(std::uint64_t timeout_ms) {
    detail::check(rtc_cache_builder_set_socket_connect_timeout_ms(handle_, timeout_ms),
                  "rtc_cache_builder_set_socket_connect_timeout_ms");
    return *this;
  }
  /// The lifetime of entries stored with lifetime_default, in seconds
  /// (default 3600; 0: forever).
  cache_builder &set_default_lifetime(std::uint64_t seconds) {
    detail::check(rtc_cache_builder_set_default_lifetime(handle_, seconds), "rtc_cache_builder_set_default_lifetime");
    return *this;
  }
  /// The lifetime of tags in seconds (default 86400; 0: forever).
  cache_builder &set_lifetime_for_tags(std::uint64_t seconds) {
    detail::check(rtc_cache_builder_set_lifetime_for_tags(handle_, seconds),
                  "rtc_cache_builder_set_lifetime_for_tags");
    return *this;
  }
  /// Disabled: nothing is stored, every read misses, get-or-compute always computes.
  cache_builder &set_disabled(bool disabled) {
    detail::check(rtc_cache_builder_set_disabled(handle_, disabled), "rtc_cache_builder_set_disabled");
    return *this;
  }
  /// An in-process store instead of Redis, for tests and single-process programs.
  cache_builder &set_in_local_memory(bool in_local_memory) {
    detail::check(rtc_cache_builder_set_in_local_memory(handle_, in_local_memory),
                  "rtc_cache_builder_set_in_local_memory");
    return *this;
  }
  /// The largest value accepted, in bytes (default 512 MiB).
  cache_builder &set_max_value_size(std::size_t max_value_size) {
    detail::check(rtc_cache_builder_set_max_value_size(handle_, max_value_size),
                  "rtc_cache_builder_set_max_value_size");
    return *this;
  }
  /// Fail-safe: a failed Redis or computation returns the last value this
  /// process confirmed current within `max_duration_ms` (0: off), keeping
  /// at most `max_bytes` of such values.
  cache_builder &set_fail_safe(std::uint64_t max_duration_ms, std::size_t max_bytes) {
    detail::check(rtc_cache_builder_set_fail_safe(handle_, max_duration_ms, max_bytes),
                  "rtc_cache_builder_set_fail_safe");
    return *this;
  }
  /// The near cache: at most `max_entries` (0: off) and `max_bytes` served
  /// from this process's memory, each for at most `max_lifetime_ms`.
  cache_builder &set_near_cache(std::size_t max_entries, std::size_t max_bytes, std::uint64_t max_lifetime_ms) {
    detail::check(rtc_cache_builder_set_near_cache(handle_, max_entries, max_bytes, max_lifetime_ms),
                  "rtc_cache_builder_set_near_cache");
    return *this;
  }
  /// How the near cache learns of changes.
  cache_builder &set_near_cache_tracking(near_tracking mode) {
    detail::check(rtc_cache_builder_set_near_cache_tracking(handle_, static_cast<std::uint32_t>(mode)),
                  "rtc_cache_builder_set_near_cache_tracking");
    return *this;
  }
  /// The hook of the caches built from now on (an empty function removes
  /// it). The builder shares ownership of the function with each cache it
  /// builds, so it lives as long as the last of them; caches built before
  /// keep the hook they were built with.
  cache_builder &set_hook(hook_function hook) {
    if (!hook) {
      detail::check(rtc_cache_builder_set_hook(handle_, nullptr, nullptr), "rtc_cache_builder_set_hook");
      hook_.reset();
      return *this;
    }
    auto owned = std::make_shared<const hook_function>(std::move(hook));
    // rtc only hands the pointer back to run_hook, which calls it as const.
    void *userdata = const_cast<void *>(static_cast<const void *>(owned.get()));
    detail::check(rtc_cache_builder_set_hook(handle_, &detail::run_hook, userdata), "rtc_cache_builder_set_hook");
    hook_ = std::move(owned);
    return *this;
  }

  /// Builds a cache (see rtc::cache's constructor). Does not connect.
  cache build() const;

  /// The hook set (nullptr for none), for code that passes native_handle()
  /// to rtc_async_new: keep this alive as long as the context.
  std::shared_ptr<const hook_function> hook() const noexcept { return hook_; }
  /// The C handle (nullptr when empty); the builder still owns it.
  rtc_cache_builder *native_handle() const noexcept { return handle_; }
  /// False when empty (moved from).
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  static std::string c_str(std::string_view s) { return detail::c_string(s, "rtc::cache_builder"); }

  rtc_cache_builder *handle_;
  std::shared_ptr<const hook_function> hook_;
};

/// The options of a get_or_compute or get_or_lock call (rtc_compute_options):
/// the key, tags, lifetime and stampede lock. Set up with chained setters,
/// then passed to calls, from many threads at once if need be (calls only
/// read it).
class compute_options {
 public:
  /// Options for a fixed `key` (UTF-8), with no tags, the default lifetime,
  /// no lock and a lock timeout of 5000 ms.
  explicit compute_options(std::string_view key) {
    detail::check(rtc_compute_options_new(detail::bytes(key), key.size(), &handle_), "rtc_compute_options_new");
  }
  /// Takes ownership of options made by rtc_compute_options_new(_call).
  explicit compute_options(rtc_compute_options *adopt) noexcept : handle_(adopt) {}
  /// Options whose key is derived from a function's identity (`type_name`
  /// "" for a free function, else it is a method) and its `arguments` bytes,
  /// the same key as the other surfaces' for the same call.
  static compute_options call(std::string_view module, std::string_view type_name, std::string_view function,
                              std::string_view arguments) {
    const char *what = "rtc_compute_options_new_call";
    rtc_compute_options *raw = nullptr;
    detail::check(rtc_compute_options_new_call(detail::c_string(module, what).c_str(),
                                               detail::c_string(type_name, what).c_str(),
                                               detail::c_string(function, what).c_str(), detail::bytes(arguments),
                                               arguments.size(), &raw),
                  what);
    return compute_options(raw);
  }
  /// Moves the options; `other` is left empty.
  compute_options(compute_options &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  /// Frees these options, then takes `other`'s.
  compute_options &operator=(compute_options &&other) noexcept {
    if (this != &other) rtc_compute_options_free(std::exchange(handle_, std::exchange(other.handle_, nullptr)));
    return *this;
  }
  /// Not copyable: a handle has one owner, as in C.
  compute_options(const compute_options &) = delete;
  compute_options &operator=(const compute_options &) = delete;
  /// Frees the options.
  ~compute_options() { rtc_compute_options_free(handle_); }

  /// The entry's tags (copied).
  compute_options &set_tags(const tag_list &tags) {
    detail::check(rtc_compute_options_set_tags(handle_, tags.data(), tags.size()), "rtc_compute_options_set_tags");
    return *this;
  }
  /// The computed entry's lifetime: lifetime_default, lifetime_forever, or
  /// seconds (at most 100 years); a bad one is refused here, at once.
  compute_options &set_lifetime(std::int64_t lifetime) {
    detail::check(rtc_compute_options_set_lifetime(handle_, lifetime), "rtc_compute_options_set_lifetime");
    return *this;
  }
  /// The stampede lock on or off (default off): on a miss, one caller
  /// computes and the others wait for its value.
  compute_options &set_lock(bool lock) {
    detail::check(rtc_compute_options_set_lock(handle_, lock), "rtc_compute_options_set_lock");
    return *this;
  }
  /// How long the lock is held at most, and waited for (default 5000 ms; at most a day).
  compute_options &set_lock_timeout_ms(std::uint64_t timeout_ms) {
    detail::check(rtc_compute_options_set_lock_timeout_ms(handle_, timeout_ms),
                  "rtc_compute_options_set_lock_timeout_ms");
    return *this;
  }
  /// Marks the cached function as a method, or not (reported to the hook).
  compute_options &set_method(bool method) {
    detail::check(rtc_compute_options_set_method(handle_, method), "rtc_compute_options_set_method");
    return *this;
  }
  /// A pointer handed to the hook as cache_info::call_userdata(); rtc never touches it.
  compute_options &set_hook_userdata(void *call_userdata) {
    detail::check(rtc_compute_options_set_hook_userdata(handle_, call_userdata),
                  "rtc_compute_options_set_hook_userdata");
    return *this;
  }

  /// The C handle (nullptr when empty); the options still own it.
  rtc_compute_options *native_handle() const noexcept { return handle_; }
  /// False when empty (moved from).
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  rtc_compute_options *handle_ = nullptr;
};

/// The right to store one computed value (rtc_ticket), from
/// cache::get_or_lock's miss, holding the stampede lock if holds_lock().
/// Pass it to cache::set_and_unlock or cache::fail_and_unlock (which consume
/// it); destroying it, or release(), gives it up: the lock is released and
/// the waiters woken, so one of them computes.
class ticket {
 public:
  /// No ticket.
  ticket() noexcept = default;
  /// Takes ownership of a raw ticket (from rtc_cache_get_or_lock, or the
  /// non-blocking API's, which this class then frees without blocking).
  explicit ticket(rtc_ticket *adopt) noexcept : handle_(adopt) {}
  /// Moves the ticket; `other` is left empty.
  ticket(ticket &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  /// Gives up this ticket, then takes `other`'s.
  ticket &operator=(ticket &&other) noexcept {
    if (this != &other) rtc_ticket_free(std::exchange(handle_, std::exchange(other.handle_, nullptr)));
    return *this;
  }
  /// Not copyable: a handle has one owner, as in C.
  ticket(const ticket &) = delete;
  ticket &operator=(const ticket &) = delete;
  /// Gives the ticket up (see release).
  ~ticket() { release(); }

  /// True when the ticket holds the stampede lock.
  bool holds_lock() const noexcept { return rtc_ticket_holds_lock(handle_); }
  /// How long get_or_lock waited for another caller's lock, in milliseconds.
  std::uint64_t lock_waiting_ms() const noexcept { return rtc_ticket_lock_waiting_ms(handle_); }
  /// Gives the ticket up without storing a value (rtc_ticket_free): its
  /// lock is released (one round trip) and the waiters woken. Leaves the
  /// ticket empty; a no-op on an empty one.
  void release() noexcept { rtc_ticket_free(std::exchange(handle_, nullptr)); }
  /// Hands the raw ticket over to the caller, leaving this one empty (for
  /// the C functions that consume a ticket, such as the non-blocking API's).
  rtc_ticket *detach() noexcept { return std::exchange(handle_, nullptr); }

  /// The C handle (nullptr when empty); the ticket still owns it.
  rtc_ticket *native_handle() const noexcept { return handle_; }
  /// False when empty: moved from, consumed, released, or none was handed out.
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  rtc_ticket *handle_ = nullptr;
};

/// What cache::get_or_lock found: a hit's value, or, on a miss, the
/// ticket to store the computed value with.
struct get_or_lock_result {
  /// The value of a hit; std::nullopt on a miss.
  std::optional<std::string> value;
  /// The ticket of a miss (empty on a hit).
  ::rtc::ticket ticket;

  /// True for a hit.
  bool hit() const noexcept { return value.has_value(); }
};

namespace detail {

/// One get_or_compute call's callable and the exception it threw, behind
/// the C callback's userdata.
template <typename F>
struct compute_call {
  F *compute;
  std::exception_ptr thrown;

  /// The C compute callback: runs the callable and writes its value;
  /// catches everything, as nothing may unwind through rtc.
  static int run(void *userdata, rtc_output *output) noexcept {
    auto *call = static_cast<compute_call *>(userdata);
    try {
      auto &&result = std::invoke(*call->compute);
      using result_type = decltype(result);
      if constexpr (std::is_convertible_v<result_type, std::string_view>) {
        const std::string_view v = result;
        return rtc_output_write(output, bytes(v), v.size()) == RTC_RESULT_OK ? 0 : 1;
      } else {
        static_assert(std::is_convertible_v<result_type, std::string>,
                      "rtc::cache::get_or_compute: the callable must return std::string or something "
                      "convertible to std::string_view or std::string");
        const std::string v = std::forward<result_type>(result);
        return rtc_output_write(output, bytes(v), v.size()) == RTC_RESULT_OK ? 0 : 1;
      }
    } catch (...) {
      call->thrown = std::current_exception();
      return 1;
    }
  }
};

}  // namespace detail

/// A cache (rtc_cache): a connection pool to one Redis (or an in-process
/// store) and one namespace. Thread-safe: share one per process. Every
/// operation throws rtc::error on failure; a miss is not one.
class cache {
 public:
  /// An empty cache (every operation throws RTC_RESULT_NULL_PARAMETER), to assign one to later.
  cache() noexcept = default;
  /// Builds a cache from `builder` (not consumed), sharing its hook. Does
  /// not connect: a cache built while Redis is down works once it is up.
  /// Throws RTC_RESULT_INVALID_ARGUMENT for an unusable URL or address.
  explicit cache(const cache_builder &builder) : hook_(builder.hook()) {
    detail::check(rtc_cache_new(builder.native_handle(), &handle_), "rtc_cache_new");
  }
  /// Takes ownership of a cache made by rtc_cache_new (its hook, if any, is
  /// the caller's to keep alive).
  explicit cache(rtc_cache *adopt) noexcept : handle_(adopt) {}
  /// Moves the cache and its share of the hook; `other` is left empty.
  cache(cache &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)), hook_(std::move(other.hook_)) {}
  /// Frees this cache (before letting go of its hook), then takes `other`'s.
  cache &operator=(cache &&other) noexcept {
    if (this != &other) {
      rtc_cache_free(std::exchange(handle_, std::exchange(other.handle_, nullptr)));
      hook_ = std::move(other.hook_);
    }
    return *this;
  }
  /// Not copyable: a handle has one owner, as in C.
  cache(const cache &) = delete;
  cache &operator=(const cache &) = delete;
  /// Frees the cache and closes its connections; then the hook is let go.
  /// Must not run while other threads still use the cache.
  ~cache() { rtc_cache_free(handle_); }

  /// Stores `value` (any bytes) under `key` (UTF-8) and `tags`, for
  /// `lifetime` (lifetime_default, lifetime_forever, or seconds).
  void set(std::string_view key, std::string_view value, const tag_list &tags = {},
           std::int64_t lifetime = lifetime_default) const {
    detail::check(rtc_cache_set(handle_, detail::bytes(key), key.size(), detail::bytes(value), value.size(),
                                tags.data(), tags.size(), lifetime),
                  "rtc_cache_set");
  }

  /// Reads `key` under `tags` (the set it was stored with, in any order):
  /// the value, or std::nullopt on a miss (never stored, expired,
  /// invalidated, deleted), which an empty value is not. A Redis failure
  /// throws: it is never a miss.
  std::optional<std::string> get(std::string_view key, const tag_list &tags = {}) const {
    rtc_value *raw = nullptr;
    const rtc_result rc = rtc_cache_get(handle_, detail::bytes(key), key.size(), tags.data(), tags.size(), &raw);
    if (rc == RTC_RESULT_MISS) return std::nullopt;
    detail::check(rc, "rtc_cache_get");
    return detail::value(raw).str();
  }

  /// Deletes the entry of `key` under `tags`; returns whether there was one.
  /// Named del because delete is a keyword (and DEL is Redis's name for it).
  bool del(std::string_view key, const tag_list &tags = {}) const {
    bool deleted = false;
    detail::check(rtc_cache_delete(handle_, detail::bytes(key), key.size(), tags.data(), tags.size(), &deleted),
                  "rtc_cache_delete");
    return deleted;
  }

  /// Invalidates every entry stored with `tag`, in one round trip.
  void invalidate(std::string_view tag) const {
    const rtc_bytes one{detail::bytes(tag), tag.size()};
    detail::check(rtc_cache_invalidate(handle_, &one, 1), "rtc_cache_invalidate");
  }
  /// Invalidates every entry stored with any of `tags`, in one round trip
  /// (none: a no-op). This overload makes `invalidate({"a"})` unambiguous.
  void invalidate(std::initializer_list<std::string_view> tags) const { invalidate(tag_list(tags)); }
  /// Invalidates every entry stored with any of `tags`, in one round trip.
  void invalidate(const tag_list &tags) const {
    detail::check(rtc_cache_invalidate(handle_, tags.data(), tags.size()), "rtc_cache_invalidate");
  }

  /// Invalidates every entry of the cache's namespace, in one write.
  void invalidate_all() const { detail::check(rtc_cache_invalidate_all(handle_), "rtc_cache_invalidate_all"); }

  /// Returns the cached value for `options`, or calls `compute` (no
  /// arguments; it returns std::string, or anything convertible to
  /// std::string_view or std::string), stores its value and returns it.
  /// With the lock on, concurrent callers of a cold key compute once.
  ///
  /// An exception from `compute` is rethrown here, with its own type, after
  /// rtc has stored nothing and released the lock, unless fail-safe
  /// (cache_builder::set_fail_safe) has a value for the entry: that value
  /// is then returned, which is what fail-safe is for (the hook sees it as
  /// stale). A Redis failure does not throw: the value is computed and
  /// returned, and the hook told.
  template <typename F>
  std::string get_or_compute(const compute_options &options, F &&compute) const {
    detail::compute_call<std::remove_reference_t<F>> call{&compute, nullptr};
    rtc_value *raw = nullptr;
    const rtc_result rc = rtc_cache_get_or_compute(handle_, options.native_handle(),
                                                   &detail::compute_call<std::remove_reference_t<F>>::run, &call, &raw);
    const detail::value owned(raw);  // owned before anything may throw
    if (rc == RTC_RESULT_OK) return owned.str();
    if (call.thrown) std::rethrow_exception(call.thrown);
    detail::throw_error(rc, "rtc_cache_get_or_compute");
  }

  /// Reads the entry of `options` and, on a miss, takes the stampede lock
  /// if the options have it on (waiting up to the lock timeout for another
  /// holder): a hit's value, or a ticket to compute the value with and pass
  /// to set_and_unlock (or fail_and_unlock, or drop to give up).
  get_or_lock_result get_or_lock(const compute_options &options) const {
    rtc_value *raw_value = nullptr;
    rtc_ticket *raw_ticket = nullptr;
    const rtc_result rc = rtc_cache_get_or_lock(handle_, options.native_handle(), &raw_value, &raw_ticket);
    get_or_lock_result result;
    if (rc == RTC_RESULT_MISS) {
      result.ticket = ticket(raw_ticket);
      return result;
    }
    detail::check(rc, "rtc_cache_get_or_lock");
    result.value = detail::value(raw_value).str();
    return result;
  }

  /// Stores `value` under the ticket's tag snapshot for `lifetime`,
  /// releases its lock, wakes the waiters and calls the hook. Consumes the
  /// ticket whatever happens (on an error its lock is released without
  /// storing).
  void set_and_unlock(ticket t, std::string_view value, std::int64_t lifetime = lifetime_default) const {
    detail::check(rtc_cache_set_and_unlock(handle_, t.detach(), detail::bytes(value), value.size(), lifetime),
                  "rtc_cache_set_and_unlock");
  }

  /// Ends a ticket whose computation failed: the fail-safe value if
  /// fail-safe keeps one (the lock released, a stale hit reported to the
  /// hook), else std::nullopt once the ticket is released. Consumes the ticket.
  std::optional<std::string> fail_and_unlock(ticket t) const {
    rtc_value *raw = nullptr;
    const rtc_result rc = rtc_cache_fail_and_unlock(handle_, t.detach(), &raw);
    if (rc == RTC_RESULT_MISS) return std::nullopt;
    detail::check(rc, "rtc_cache_fail_and_unlock");
    return detail::value(raw).str();
  }

  /// The near cache's counters, or std::nullopt when it is off.
  std::optional<rtc_near_stats> near_stats() const {
    rtc_near_stats stats{};
    const rtc_result rc = rtc_cache_near_stats(handle_, &stats, sizeof stats);
    if (rc == RTC_RESULT_MISS) return std::nullopt;
    detail::check(rc, "rtc_cache_near_stats");
    return stats;
  }

  /// How many get-or-compute calls with the lock wait, now, for another
  /// caller of this cache computing the same key (for monitoring and tests).
  std::size_t single_flight_waiters() const noexcept { return rtc_cache_single_flight_waiters(handle_); }

  /// The C handle (nullptr when empty); the cache still owns it.
  rtc_cache *native_handle() const noexcept { return handle_; }
  /// False when empty (default-made or moved from).
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  rtc_cache *handle_ = nullptr;
  // The hook rtc calls with this cache's calls: kept until the cache is freed.
  std::shared_ptr<const hook_function> hook_;
};

inline cache cache_builder::build() const { return cache(*this); }

}  // namespace rtc

#endif /* RTC_HPP */
