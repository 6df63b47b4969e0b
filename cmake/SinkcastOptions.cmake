# SinkcastOptions.cmake — the project's build options and the
# sinkcast::warnings_and_sanitizers interface target.
#
# Options (all cache variables, settable with -D or, under pip, through the
# environment variables of the same name; see pyproject.toml):
#
#   SINKCAST_USE_SYSTEM_LIBS        OFF  take opus, soxr and libdatachannel from
#                                        the system (umbrella for the three below)
#   SINKCAST_SYSTEM_OPUS            OFF  libopus via pkg-config `opus`
#   SINKCAST_SYSTEM_SOXR            OFF  libsoxr via pkg-config `soxr`
#   SINKCAST_SYSTEM_LIBDATACHANNEL  OFF  find_package(LibDataChannel)
#   SINKCAST_SANITIZE               ""   e.g. "address,undefined": -fsanitize=...
#                                        on targets linking
#                                        sinkcast::warnings_and_sanitizers
#   SINKCAST_SANITIZE_DEPS          OFF  also build the bundled deps with it
#                                        (they get their own cache prefix)
#   SINKCAST_WERROR                 OFF  warnings are errors (our code only)
#   SINKCAST_BUILD_CPP_TESTS        OFF  build the C++ tests in tests/cpp/ (run them with ctest)
#   SINKCAST_CACHE_DIR              see FetchSdist.cmake
#
# Link sinkcast::warnings_and_sanitizers PRIVATE(ly) from our own targets
# only; it carries warning flags and, when SINKCAST_SANITIZE is set, the
# -fsanitize compile and link options.  With ASan, a Python process loading
# the extension needs the runtime preloaded, e.g.
#   LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 pytest
# SINKCAST_SANITIZER_PRELOAD holds that path (empty if none is needed/known),
# for build steps that import the module (e.g. stub generation).

include_guard(GLOBAL)

option(SINKCAST_USE_SYSTEM_LIBS "Use system opus, soxr and libdatachannel instead of building them from pinned sdists" OFF)
option(SINKCAST_SYSTEM_OPUS "Use the system libopus (pkg-config opus)" OFF)
option(SINKCAST_SYSTEM_SOXR "Use the system libsoxr (pkg-config soxr)" OFF)
option(SINKCAST_SYSTEM_LIBDATACHANNEL "Use the system libdatachannel (find_package(LibDataChannel))" OFF)
set(SINKCAST_SANITIZE "" CACHE STRING "Sanitizers for our targets, e.g. 'address,undefined' (empty: none)")
option(SINKCAST_SANITIZE_DEPS "Also build the bundled dependencies with SINKCAST_SANITIZE" OFF)
option(SINKCAST_WERROR "Treat compiler warnings in sinkcast code as errors" OFF)
option(SINKCAST_BUILD_CPP_TESTS "Build the C++ tests" OFF)

# Effective per-dependency choices (the umbrella wins).
foreach(_dep OPUS SOXR LIBDATACHANNEL)
  if(SINKCAST_USE_SYSTEM_LIBS OR SINKCAST_SYSTEM_${_dep})
    set(SINKCAST_USE_SYSTEM_${_dep} ON)
  else()
    set(SINKCAST_USE_SYSTEM_${_dep} OFF)
  endif()
endforeach()
unset(_dep)

if(NOT TARGET sinkcast_warnings_and_sanitizers)
  add_library(sinkcast_warnings_and_sanitizers INTERFACE)
  add_library(sinkcast::warnings_and_sanitizers ALIAS sinkcast_warnings_and_sanitizers)

  if(MSVC)
    target_compile_options(sinkcast_warnings_and_sanitizers INTERFACE /W4 $<$<BOOL:${SINKCAST_WERROR}>:/WX>)
  else()
    target_compile_options(sinkcast_warnings_and_sanitizers INTERFACE
      -Wall -Wextra
      $<$<BOOL:${SINKCAST_WERROR}>:-Werror>)
  endif()

  string(STRIP "${SINKCAST_SANITIZE}" _san)
  if(NOT _san STREQUAL "")
    if(MSVC)
      if(NOT _san STREQUAL "address")
        message(FATAL_ERROR "sinkcast: MSVC supports only SINKCAST_SANITIZE=address")
      endif()
      target_compile_options(sinkcast_warnings_and_sanitizers INTERFACE /fsanitize=address)
    else()
      target_compile_options(sinkcast_warnings_and_sanitizers INTERFACE
        "-fsanitize=${_san}" -fno-omit-frame-pointer)
      if(_san MATCHES "undefined")
        # make UB fatal so tests notice it
        target_compile_options(sinkcast_warnings_and_sanitizers INTERFACE -fno-sanitize-recover=undefined)
      endif()
      target_link_options(sinkcast_warnings_and_sanitizers INTERFACE "-fsanitize=${_san}")
    endif()
    # For tools that import the extension during the build (stub
    # generation) or tests: the ASan (or TSan) runtime a Python process must
    # preload; without it, loading a TSan module fails ("cannot allocate
    # memory in static TLS block").
    set(SINKCAST_SANITIZER_PRELOAD "")
    if(_san MATCHES "address" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=libasan.so
                      OUTPUT_VARIABLE SINKCAST_SANITIZER_PRELOAD
                      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    elseif(_san MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=libtsan.so
                      OUTPUT_VARIABLE SINKCAST_SANITIZER_PRELOAD
                      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    elseif(_san MATCHES "address" AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=libclang_rt.asan-${CMAKE_SYSTEM_PROCESSOR}.so
                      OUTPUT_VARIABLE SINKCAST_SANITIZER_PRELOAD
                      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    endif()
    if(SINKCAST_SANITIZE_DEPS)
      message(STATUS "sinkcast: sanitizers '${_san}' on sinkcast targets and on the bundled dependencies")
    else()
      message(STATUS "sinkcast: sanitizers '${_san}' on sinkcast targets (dependencies unsanitized)")
    endif()
  endif()
  unset(_san)
endif()

if(SINKCAST_BUILD_CPP_TESTS)
  enable_testing()
endif()
