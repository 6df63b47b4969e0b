# SinkcastDependencies.cmake — every third-party C/C++ dependency of sinkcast.
#
# After include(), these targets exist (all IMPORTED GLOBAL, so any directory
# of the project can link them):
#
#   sinkcast::opus                    #include <opus.h>
#   sinkcast::soxr                    #include <soxr.h>
#   sinkcast::datachannel             #include <rtc/rtc.hpp>  (+ OpenSSL, Threads;
#                                     RTC_STATIC, RTC_ENABLE_WEBSOCKET=0, RTC_ENABLE_MEDIA=1)
#   sinkcast::json                    #include <nlohmann/json.hpp>
#   sinkcast::warnings_and_sanitizers (from SinkcastOptions.cmake; our code only)
#
# Bundled dependencies come from pinned, sha256-checked PyPI source
# distributions and are built once into SINKCAST_CACHE_DIR (see
# FetchSdist.cmake and BuildCachedDependency.cmake); a warm configure neither
# downloads nor builds anything.  Each module prints one status line saying
# where its dependency came from (cache hit / built / system).
#
# Needs the C and CXX languages enabled, and preferably Python_EXECUTABLE set
# (pip is used for downloads; otherwise a Python interpreter is searched).

include_guard(GLOBAL)

get_property(_sinkcast_langs GLOBAL PROPERTY ENABLED_LANGUAGES)
foreach(_lang C CXX)
  if(NOT _lang IN_LIST _sinkcast_langs)
    message(FATAL_ERROR "sinkcast dependencies need project(... LANGUAGES C CXX)")
  endif()
endforeach()
unset(_sinkcast_langs)
unset(_lang)

include("${CMAKE_CURRENT_LIST_DIR}/SinkcastOptions.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/FetchSdist.cmake")
if(NOT (SINKCAST_USE_SYSTEM_OPUS AND SINKCAST_USE_SYSTEM_SOXR AND SINKCAST_USE_SYSTEM_LIBDATACHANNEL))
  sinkcast_cache_dir(_sinkcast_cache)
  message(STATUS "sinkcast: dependency cache: ${_sinkcast_cache}")
  unset(_sinkcast_cache)
endif()
include("${CMAKE_CURRENT_LIST_DIR}/Opus.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/Soxr.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/LibDataChannel.cmake")
