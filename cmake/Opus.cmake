# Opus.cmake — provides the target sinkcast::opus (libopus).
#
# Include convention: `#include <opus.h>` (the include dir is .../include/opus,
# as with the system's pkg-config `opus`).  With the bundled build
# <opus/opus.h> happens to work too, but do not rely on it.
#
# Source: libopus vendored in the sdist opuslib-next-bundled==0.1.1
# (subdir vendor/opus), built static + PIC, without DNN features (DRED, OSCE,
# deep PLC), tests and programs.  With SINKCAST_SYSTEM_OPUS (or
# SINKCAST_USE_SYSTEM_LIBS): pkg-config `opus` instead.

include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/SinkcastOptions.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/FetchSdist.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/BuildCachedDependency.cmake")

set(SINKCAST_OPUS_SDIST_NAME    opuslib-next-bundled)
set(SINKCAST_OPUS_SDIST_VERSION 0.1.1)
set(SINKCAST_OPUS_SDIST_SHA256  af36ac1585a841cd502a0fa260a7c18fd1b870a6767a42676fd7af39104b0c71)

function(_sinkcast_provide_opus)
  if(TARGET sinkcast::opus)
    return()
  endif()
  add_library(sinkcast::opus INTERFACE IMPORTED GLOBAL)

  if(SINKCAST_USE_SYSTEM_OPUS)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(SINKCAST_PC_OPUS REQUIRED IMPORTED_TARGET GLOBAL opus)
    target_link_libraries(sinkcast::opus INTERFACE PkgConfig::SINKCAST_PC_OPUS)
    message(STATUS "sinkcast: opus: system (pkg-config opus ${SINKCAST_PC_OPUS_VERSION})")
    return()
  endif()

  sinkcast_fetch_sdist(${SINKCAST_OPUS_SDIST_NAME} ${SINKCAST_OPUS_SDIST_VERSION}
                       ${SINKCAST_OPUS_SDIST_SHA256} sdist_dir)
  sinkcast_build_cached_dependency(
    NAME opus VERSION "${SINKCAST_OPUS_SDIST_NAME}-${SINKCAST_OPUS_SDIST_VERSION}"
    SOURCE_DIR "${sdist_dir}/vendor/opus"
    OPTIONS
      -DOPUS_BUILD_SHARED_LIBRARY=OFF
      -DOPUS_BUILD_TESTING=OFF
      -DOPUS_BUILD_PROGRAMS=OFF
      -DOPUS_DRED=OFF
      -DOPUS_OSCE=OFF
      -DOPUS_DEEP_PLC=OFF
      -DOPUS_CUSTOM_MODES=OFF
      -DOPUS_INSTALL_CMAKE_CONFIG_MODULE=ON
      -DOPUS_INSTALL_PKG_CONFIG_MODULE=ON
    OUT_PREFIX prefix
    OUT_STATUS status)

  # Opus_DIR is a cache entry; drop it so a new prefix (other flags) is found.
  unset(Opus_DIR CACHE)
  find_package(Opus CONFIG REQUIRED PATHS "${prefix}" NO_DEFAULT_PATH)
  set_target_properties(Opus::opus PROPERTIES IMPORTED_GLOBAL TRUE)
  target_link_libraries(sinkcast::opus INTERFACE Opus::opus)
  sinkcast_hide_archive_symbols(sinkcast::opus)
  set_property(TARGET sinkcast::opus APPEND PROPERTY
               INTERFACE_INCLUDE_DIRECTORIES "${prefix}/include/opus")
  message(STATUS "sinkcast: opus: ${status} (${SINKCAST_OPUS_SDIST_NAME}==${SINKCAST_OPUS_SDIST_VERSION}, sdist ${sdist_dir_STATUS}) -> ${prefix}")
endfunction()

_sinkcast_provide_opus()
