#pragma once

// Names the calling thread, so `top -H`, perf and /proc/<pid>/task/*/comm tell
// the engine's threads apart from Python's and libdatachannel's ("juice poll",
// "RTC worker", ...). Linux keeps at most 15 characters; longer names are cut.

#include <string>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace sinkcast {

inline void name_this_thread(const std::string& name) {
#if defined(__linux__)
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
#else
    (void)name;
#endif
}

}  // namespace sinkcast
