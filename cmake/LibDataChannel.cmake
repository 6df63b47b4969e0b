# LibDataChannel.cmake — provides
#
#   sinkcast::datachannel  libdatachannel 0.24.6 (C++ API, media on, no
#                          WebSocket) + OpenSSL + Threads.  Include as
#                          `#include <rtc/rtc.hpp>`.  Carries RTC_STATIC,
#                          RTC_ENABLE_WEBSOCKET=0, RTC_ENABLE_MEDIA=1.
#   sinkcast::json         nlohmann/json, header-only: `#include <nlohmann/json.hpp>`.
#   sinkcast::usrsctp_headers  usrsctp.h of the bundled build (Linux/BSD only;
#                          absent with a system libdatachannel).
#
# Source: vendor/libdatachannel of the sdist aiolibdatachannel==2026.10.15
# (which also carries libjuice, usrsctp, libsrtp, plog and json under deps/).
# Built static + PIC; the static install exports libjuice, usrsctp and
# libsrtp2 as LibDataChannel::{LibJuice,usrsctp,srtp2}, linked transitively.
# OpenSSL comes from the system (OPENSSL_ROOT_DIR is honoured).
#
# With SINKCAST_SYSTEM_LIBDATACHANNEL (or SINKCAST_USE_SYSTEM_LIBS):
# find_package(LibDataChannel) from the system, and nlohmann_json from the
# system if it has one (else the headers of the pinned sdist).

include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/SinkcastOptions.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/FetchSdist.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/BuildCachedDependency.cmake")

set(SINKCAST_LDC_SDIST_NAME    aiolibdatachannel)
set(SINKCAST_LDC_SDIST_VERSION 2026.10.15)
set(SINKCAST_LDC_SDIST_SHA256  dfc60977c32660e26dec1d5bb0fb9283b135e5b6042f75b24264aa2e142759ea)
set(SINKCAST_LDC_VERSION       0.24.6)

# nlohmann/json headers from the extracted sdist.
function(_sinkcast_json_from_sdist sdist_dir)
  set(base "${sdist_dir}/vendor/libdatachannel/deps/json")
  foreach(sub single_include include)
    if(EXISTS "${base}/${sub}/nlohmann/json.hpp")
      set_property(TARGET sinkcast::json APPEND PROPERTY
                   INTERFACE_INCLUDE_DIRECTORIES "${base}/${sub}")
      message(STATUS "sinkcast: json: headers from the ${SINKCAST_LDC_SDIST_NAME} sdist (${base}/${sub})")
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "sinkcast: no nlohmann/json.hpp under ${base}")
endfunction()

function(_sinkcast_provide_libdatachannel)
  if(TARGET sinkcast::datachannel)
    return()
  endif()
  add_library(sinkcast::datachannel INTERFACE IMPORTED GLOBAL)
  add_library(sinkcast::json INTERFACE IMPORTED GLOBAL)

  set(THREADS_PREFER_PTHREAD_FLAG ON)
  find_package(Threads REQUIRED)
  find_package(OpenSSL REQUIRED)

  # ---- system ---------------------------------------------------------------
  if(SINKCAST_USE_SYSTEM_LIBDATACHANNEL)
    # A tree that was configured with the bundled build remembers our cache
    # prefix in LibDataChannel_DIR; forget it so the system one is searched.
    sinkcast_cache_dir(cache)
    string(FIND "${LibDataChannel_DIR}" "${cache}/" pos)
    if(pos EQUAL 0)
      unset(LibDataChannel_DIR CACHE)
    endif()
    find_package(LibDataChannel CONFIG REQUIRED)
    if(TARGET LibDataChannel::LibDataChannelStatic)
      set(ldc LibDataChannel::LibDataChannelStatic)
    else()
      set(ldc LibDataChannel::LibDataChannel)
    endif()
    # The package's own interface definitions describe how it was built
    # (RTC_STATIC, RTC_ENABLE_*); we only check that media support is there.
    get_target_property(defs ${ldc} INTERFACE_COMPILE_DEFINITIONS)
    if(defs AND "RTC_ENABLE_MEDIA=0" IN_LIST defs)
      message(FATAL_ERROR "sinkcast: the system libdatachannel was built with NO_MEDIA; sinkcast needs media support")
    endif()
    target_link_libraries(sinkcast::datachannel INTERFACE ${ldc} OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
    message(STATUS "sinkcast: libdatachannel: system (${ldc} ${LibDataChannel_VERSION}, ${LibDataChannel_DIR})")

    find_package(nlohmann_json 3 CONFIG QUIET)
    if(TARGET nlohmann_json::nlohmann_json)
      target_link_libraries(sinkcast::json INTERFACE nlohmann_json::nlohmann_json)
      message(STATUS "sinkcast: json: system (nlohmann_json ${nlohmann_json_VERSION})")
    else()
      sinkcast_fetch_sdist(${SINKCAST_LDC_SDIST_NAME} ${SINKCAST_LDC_SDIST_VERSION}
                           ${SINKCAST_LDC_SDIST_SHA256} sdist_dir)
      _sinkcast_json_from_sdist("${sdist_dir}")
    endif()
    return()
  endif()

  # ---- bundled --------------------------------------------------------------
  sinkcast_fetch_sdist(${SINKCAST_LDC_SDIST_NAME} ${SINKCAST_LDC_SDIST_VERSION}
                       ${SINKCAST_LDC_SDIST_SHA256} sdist_dir)
  set(opts
    -DNO_WEBSOCKET=ON
    -DNO_MEDIA=OFF
    -DNO_EXAMPLES=ON
    -DNO_TESTS=ON
    -DUSE_GNUTLS=OFF
    -DUSE_MBEDTLS=OFF
    -DUSE_NICE=OFF
    -DPREFER_SYSTEM_LIB=OFF
    -DBUILD_SHARED_DEPS_LIBS=OFF
    -DWARNINGS_AS_ERRORS=OFF
    -DCAPI_STDCALL=OFF
    # deps/: no werror (a newer compiler must not break the build), no extras
    -DENABLE_WARNINGS_AS_ERRORS=OFF
    -DLIBSRTP_TEST_APPS=OFF
    -Dsctp_werror=OFF
    -Dsctp_build_programs=OFF
    -DNO_SERVER=ON)
  if(OPENSSL_ROOT_DIR)
    list(APPEND opts "-DOPENSSL_ROOT_DIR=${OPENSSL_ROOT_DIR}")
  endif()
  sinkcast_build_cached_dependency(
    NAME libdatachannel VERSION "${SINKCAST_LDC_VERSION}"
    SOURCE_DIR "${sdist_dir}/vendor/libdatachannel"
    OPTIONS ${opts}
    OUT_PREFIX prefix
    OUT_STATUS status)

  unset(LibDataChannel_DIR CACHE)
  find_package(LibDataChannel CONFIG REQUIRED PATHS "${prefix}" NO_DEFAULT_PATH)
  if(NOT TARGET LibDataChannel::LibDataChannel)
    message(FATAL_ERROR "sinkcast: ${prefix} has no LibDataChannel::LibDataChannel target")
  endif()
  # Make the imported targets usable from any directory of the project.
  foreach(t LibDataChannel::LibDataChannel LibDataChannel::LibJuice
            LibDataChannel::usrsctp LibDataChannel::srtp2)
    if(TARGET ${t})
      set_target_properties(${t} PROPERTIES IMPORTED_GLOBAL TRUE)
    endif()
  endforeach()

  target_link_libraries(sinkcast::datachannel INTERFACE
    LibDataChannel::LibDataChannel OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
  target_compile_definitions(sinkcast::datachannel INTERFACE
    RTC_STATIC RTC_ENABLE_WEBSOCKET=0 RTC_ENABLE_MEDIA=1)
  sinkcast_hide_archive_symbols(sinkcast::datachannel)

  # usrsctp's header, for cpp/webrtc/sctp_timer_on_demand.cpp, which replaces
  # usrsctp's always-on 10 ms timer thread with one that runs only while a data
  # channel exists. That needs this static usrsctp and a linker with --wrap.
  if(TARGET LibDataChannel::usrsctp AND CMAKE_SYSTEM_NAME MATCHES "Linux|BSD|GNU" AND NOT APPLE)
    add_library(sinkcast::usrsctp_headers INTERFACE IMPORTED GLOBAL)
    set_target_properties(sinkcast::usrsctp_headers PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${sdist_dir}/vendor/libdatachannel/deps/usrsctp/usrsctplib")
  endif()
  message(STATUS "sinkcast: libdatachannel: ${status} (${SINKCAST_LDC_VERSION} from ${SINKCAST_LDC_SDIST_NAME}==${SINKCAST_LDC_SDIST_VERSION}, sdist ${sdist_dir_STATUS}) -> ${prefix}")

  _sinkcast_json_from_sdist("${sdist_dir}")
endfunction()

_sinkcast_provide_libdatachannel()
