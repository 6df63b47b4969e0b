# Soxr.cmake — provides the target sinkcast::soxr (libsoxr, LGPL-2.1).
#
# Include convention: `#include <soxr.h>`.
#
# Source: libsoxr vendored in the sdist soxr==1.1.0 (subdir libsoxr), built
# static + PIC with OpenMP off (no hidden worker threads: soxr runs on the
# calling thread), no tests, examples or libsamplerate bindings.  With
# SINKCAST_SYSTEM_SOXR (or SINKCAST_USE_SYSTEM_LIBS): pkg-config `soxr`.

include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/SinkcastOptions.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/FetchSdist.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/BuildCachedDependency.cmake")

set(SINKCAST_SOXR_SDIST_NAME    soxr)
set(SINKCAST_SOXR_SDIST_VERSION 1.1.0)
set(SINKCAST_SOXR_SDIST_SHA256  9f228ae21c78fa9359ca98d8a5e8e91f30639e438e574133dace62c5b5309e44)

function(_sinkcast_provide_soxr)
  if(TARGET sinkcast::soxr)
    return()
  endif()

  if(SINKCAST_USE_SYSTEM_SOXR)
    add_library(sinkcast::soxr INTERFACE IMPORTED GLOBAL)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(SINKCAST_PC_SOXR REQUIRED IMPORTED_TARGET GLOBAL soxr)
    target_link_libraries(sinkcast::soxr INTERFACE PkgConfig::SINKCAST_PC_SOXR)
    message(STATUS "sinkcast: soxr: system (pkg-config soxr ${SINKCAST_PC_SOXR_VERSION})")
    return()
  endif()

  sinkcast_fetch_sdist(${SINKCAST_SOXR_SDIST_NAME} ${SINKCAST_SOXR_SDIST_VERSION}
                       ${SINKCAST_SOXR_SDIST_SHA256} sdist_dir)
  sinkcast_build_cached_dependency(
    NAME soxr VERSION "${SINKCAST_SOXR_SDIST_NAME}-${SINKCAST_SOXR_SDIST_VERSION}"
    SOURCE_DIR "${sdist_dir}/libsoxr"
    OPTIONS
      -DWITH_OPENMP=OFF
      -DBUILD_TESTS=OFF
      -DBUILD_EXAMPLES=OFF
      -DWITH_LSR_BINDINGS=OFF
      -DWITH_DEV_GPROF=OFF
      -DWITH_AVFFT=OFF
    OUT_PREFIX prefix
    OUT_STATUS status)

  # libsoxr installs no CMake package; describe the static library by hand.
  set(lib "${prefix}/lib/${CMAKE_STATIC_LIBRARY_PREFIX}soxr${CMAKE_STATIC_LIBRARY_SUFFIX}")
  if(NOT EXISTS "${lib}" OR NOT EXISTS "${prefix}/include/soxr.h")
    message(FATAL_ERROR "sinkcast: soxr install in ${prefix} lacks ${lib} or include/soxr.h; "
                        "delete ${prefix} to rebuild")
  endif()
  add_library(sinkcast::soxr STATIC IMPORTED GLOBAL)
  set_target_properties(sinkcast::soxr PROPERTIES
    IMPORTED_LOCATION "${lib}"
    IMPORTED_LINK_INTERFACE_LANGUAGES C
    INTERFACE_INCLUDE_DIRECTORIES "${prefix}/include")
  if(UNIX AND NOT APPLE)
    set_property(TARGET sinkcast::soxr APPEND PROPERTY INTERFACE_LINK_LIBRARIES m)
  endif()
  sinkcast_hide_archive_symbols(sinkcast::soxr)
  message(STATUS "sinkcast: soxr: ${status} (${SINKCAST_SOXR_SDIST_NAME}==${SINKCAST_SOXR_SDIST_VERSION}, sdist ${sdist_dir_STATUS}) -> ${prefix}")
endfunction()

_sinkcast_provide_soxr()
