# BuildCachedDependency.cmake — configure, build and install a dependency's
# CMake project AT CONFIGURE TIME into a prefix in the sinkcast cache, so that
# its imported targets exist when the rest of the project is configured, and
# so that the next build (any build tree, any `pip install .`) reuses it.
#
#   sinkcast_build_cached_dependency(
#     NAME <name> VERSION <version>
#     SOURCE_DIR <dir>                 # the dependency's CMake project
#     [OPTIONS -DFOO=ON ...]           # extra cache entries for it
#     OUT_PREFIX <var>                 # receives the install prefix
#     [OUT_STATUS <var>])              # receives "cache hit" or "built in Ns"
#
# The prefix is <cache>/install/<name>-<version>-<hash>, the hash covering
# everything that changes the produced binaries: C/C++ compiler id and
# version, target system/processor, the dependency build type, the option
# list, and CMAKE_C_FLAGS/CMAKE_CXX_FLAGS (so sanitizer or -march flags get a
# prefix of their own).  The parent's build type does not matter: dependencies
# are always built Release.
#
# A stamp file is written only after a successful install; without it the
# prefix is wiped and rebuilt.  Builds of the same key are serialised with a
# file lock, so two concurrent configures build once.  Output goes to
# <cache>/logs/<key>/{configure,build,install}.log; on failure the log path
# and its tail are printed and the build dir is kept for inspection.

include_guard(GLOBAL)
include("${CMAKE_CURRENT_LIST_DIR}/FetchSdist.cmake")  # sinkcast_cache_dir

# Bump when the way dependencies are built changes in a way the key does not
# capture (forces a rebuild everywhere).
set(_SINKCAST_DEP_RECIPE_VERSION 1)

function(_sinkcast_print_log_tail log nbytes)
  if(NOT EXISTS "${log}")
    return()
  endif()
  # Raw bytes (file(STRINGS) would split at ';' and mangle UTF-8 quotes).
  file(SIZE "${log}" size)
  set(offset 0)
  if(size GREATER nbytes)
    math(EXPR offset "${size} - ${nbytes}")
  endif()
  file(READ "${log}" text OFFSET ${offset})
  message("---- tail of ${log} ----\n${text}\n---- end of ${log} ----")
endfunction()

function(_sinkcast_run_step what log)
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE rc
                  OUTPUT_FILE "${log}"
                  ERROR_FILE "${log}")
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmdline "${ARGN}")
    _sinkcast_print_log_tail("${log}" 4000)
    message(FATAL_ERROR
      "sinkcast: ${what} failed (exit ${rc}).\n"
      "Full log: ${log}\n"
      "Command: ${cmdline}")
  endif()
endfunction()

# The flags a dependency is compiled with: the parent's, plus sanitizers when
# SINKCAST_SANITIZE_DEPS asks for them.
function(sinkcast_dependency_flags out_c out_cxx)
  set(cflags "${CMAKE_C_FLAGS}")
  set(cxxflags "${CMAKE_CXX_FLAGS}")
  if(SINKCAST_SANITIZE_DEPS AND NOT "${SINKCAST_SANITIZE}" STREQUAL "")
    set(san "-fsanitize=${SINKCAST_SANITIZE} -fno-omit-frame-pointer")
    string(STRIP "${cflags} ${san}" cflags)
    string(STRIP "${cxxflags} ${san}" cxxflags)
  endif()
  set(${out_c} "${cflags}" PARENT_SCOPE)
  set(${out_cxx} "${cxxflags}" PARENT_SCOPE)
endfunction()

function(sinkcast_build_cached_dependency)
  cmake_parse_arguments(PARSE_ARGV 0 A "" "NAME;VERSION;SOURCE_DIR;OUT_PREFIX;OUT_STATUS" "OPTIONS")
  foreach(req NAME VERSION SOURCE_DIR OUT_PREFIX)
    if(NOT A_${req})
      message(FATAL_ERROR "sinkcast_build_cached_dependency: ${req} is required")
    endif()
  endforeach()
  if(NOT EXISTS "${A_SOURCE_DIR}/CMakeLists.txt")
    message(FATAL_ERROR "sinkcast: no CMakeLists.txt in ${A_SOURCE_DIR} (${A_NAME} ${A_VERSION})")
  endif()

  sinkcast_cache_dir(cache)
  sinkcast_dependency_flags(cflags cxxflags)
  set(build_type Release)

  # ---- the key -------------------------------------------------------------
  set(desc
    "recipe=${_SINKCAST_DEP_RECIPE_VERSION}"
    "name=${A_NAME}"
    "version=${A_VERSION}"
    "c=${CMAKE_C_COMPILER_ID}-${CMAKE_C_COMPILER_VERSION}"
    "cxx=${CMAKE_CXX_COMPILER_ID}-${CMAKE_CXX_COMPILER_VERSION}"
    "system=${CMAKE_SYSTEM_NAME}-${CMAKE_SYSTEM_PROCESSOR}"
    "osx_arch=${CMAKE_OSX_ARCHITECTURES}"
    "osx_target=${CMAKE_OSX_DEPLOYMENT_TARGET}"
    "toolchain=${CMAKE_TOOLCHAIN_FILE}"
    "build_type=${build_type}"
    "cflags=${cflags}"
    "cxxflags=${cxxflags}"
    "options=${A_OPTIONS}")
  string(REPLACE ";" "\n" desc_text "${desc}")
  string(SHA256 key_hash "${desc_text}")
  string(SUBSTRING "${key_hash}" 0 10 key_hash)
  set(key "${A_NAME}-${A_VERSION}-${key_hash}")

  set(prefix "${cache}/install/${key}")
  set(stamp "${prefix}/.sinkcast-install-stamp")

  # ---- warm path: nothing to do ---------------------------------------------
  if(EXISTS "${stamp}")
    set(${A_OUT_PREFIX} "${prefix}" PARENT_SCOPE)
    if(A_OUT_STATUS)
      set(${A_OUT_STATUS} "cache hit" PARENT_SCOPE)
    endif()
    return()
  endif()

  file(MAKE_DIRECTORY "${cache}/locks" "${cache}/install" "${cache}/build" "${cache}/logs/${key}")
  _sinkcast_lock_or_wait("${cache}/locks/install-${key}.lock"
                         "building ${A_NAME} ${A_VERSION}")
  if(EXISTS "${stamp}")  # built by a concurrent configure while we waited
    set(${A_OUT_PREFIX} "${prefix}" PARENT_SCOPE)
    if(A_OUT_STATUS)
      set(${A_OUT_STATUS} "cache hit" PARENT_SCOPE)
    endif()
    return()
  endif()

  # ---- cold path -------------------------------------------------------------
  set(build_dir "${cache}/build/${key}")
  set(logdir "${cache}/logs/${key}")
  file(REMOVE_RECURSE "${prefix}" "${build_dir}")
  file(MAKE_DIRECTORY "${build_dir}")

  # Generator: reuse the parent's Ninja, else any ninja, else the parent's.
  set(gen_args)
  if(CMAKE_GENERATOR MATCHES "Ninja" AND CMAKE_MAKE_PROGRAM)
    list(APPEND gen_args -G Ninja "-DCMAKE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
  else()
    find_program(SINKCAST_NINJA_EXECUTABLE NAMES ninja ninja-build)
    mark_as_advanced(SINKCAST_NINJA_EXECUTABLE)
    if(SINKCAST_NINJA_EXECUTABLE)
      list(APPEND gen_args -G Ninja "-DCMAKE_MAKE_PROGRAM=${SINKCAST_NINJA_EXECUTABLE}")
    else()
      list(APPEND gen_args -G "${CMAKE_GENERATOR}")
      if(CMAKE_GENERATOR_PLATFORM)
        list(APPEND gen_args -A "${CMAKE_GENERATOR_PLATFORM}")
      endif()
      if(CMAKE_GENERATOR_TOOLSET)
        list(APPEND gen_args -T "${CMAKE_GENERATOR_TOOLSET}")
      endif()
      if(CMAKE_MAKE_PROGRAM)
        list(APPEND gen_args "-DCMAKE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
      endif()
    endif()
  endif()

  set(args
    "-DCMAKE_BUILD_TYPE=${build_type}"
    "-DCMAKE_INSTALL_PREFIX=${prefix}"
    -DCMAKE_INSTALL_LIBDIR=lib
    -DCMAKE_INSTALL_BINDIR=bin
    -DCMAKE_INSTALL_INCLUDEDIR=include
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    -DBUILD_SHARED_LIBS=OFF
    -DBUILD_TESTING=OFF
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON
    -DCMAKE_INSTALL_MESSAGE=LAZY
    "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}"
    "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
    "-DCMAKE_C_FLAGS=${cflags}"
    "-DCMAKE_CXX_FLAGS=${cxxflags}")
  foreach(v CMAKE_TOOLCHAIN_FILE CMAKE_OSX_ARCHITECTURES CMAKE_OSX_DEPLOYMENT_TARGET
            CMAKE_OSX_SYSROOT CMAKE_C_COMPILER_LAUNCHER CMAKE_CXX_COMPILER_LAUNCHER
            CMAKE_AR CMAKE_RANLIB)
    if(DEFINED ${v} AND NOT "${${v}}" STREQUAL "")
      list(APPEND args "-D${v}=${${v}}")
    endif()
  endforeach()
  list(APPEND args ${A_OPTIONS})

  cmake_host_system_information(RESULT ncores QUERY NUMBER_OF_LOGICAL_CORES)
  if(NOT ncores OR ncores LESS 1)
    set(ncores 2)
  endif()

  message(STATUS "sinkcast: building ${A_NAME} ${A_VERSION} into ${prefix} "
                 "(${ncores} jobs; logs in ${logdir})")
  string(TIMESTAMP t0 "%s")

  _sinkcast_run_step("configuring ${A_NAME} ${A_VERSION}" "${logdir}/configure.log"
    "${CMAKE_COMMAND}" -S "${A_SOURCE_DIR}" -B "${build_dir}" -Wno-dev --no-warn-unused-cli ${gen_args} ${args})
  _sinkcast_run_step("building ${A_NAME} ${A_VERSION}" "${logdir}/build.log"
    "${CMAKE_COMMAND}" --build "${build_dir}" --config ${build_type} --parallel ${ncores})
  _sinkcast_run_step("installing ${A_NAME} ${A_VERSION}" "${logdir}/install.log"
    "${CMAKE_COMMAND}" --install "${build_dir}" --config ${build_type})

  # Stamp last, atomically; then drop the (large) build tree.
  file(WRITE "${stamp}.tmp" "${desc_text}\n")
  file(RENAME "${stamp}.tmp" "${stamp}")
  file(REMOVE_RECURSE "${build_dir}")

  string(TIMESTAMP t1 "%s")
  math(EXPR dt "${t1} - ${t0}")
  set(${A_OUT_PREFIX} "${prefix}" PARENT_SCOPE)
  if(A_OUT_STATUS)
    set(${A_OUT_STATUS} "built in ${dt} s" PARENT_SCOPE)
  endif()
endfunction()

# Bundled dependencies are static archives linked into the Python extension;
# keep their symbols out of its dynamic symbol table so they never clash with
# another copy (aiortc's libsrtp, PyAV's libopus, ...) in the same process.
# --exclude-libs only affects symbols that come from archives: the module's
# own PyInit_* (compiled into the module target) stays exported. The archives
# are named one by one, not ALL: ALL would also hide the symbols of static
# runtime archives (a sanitizer's malloc/free interceptors, libgcc's unwinder),
# which broke ASan and libFuzzer builds.
set(SINKCAST_HIDDEN_ARCHIVES
    "libdatachannel.a:libjuice.a:libsrtp2.a:libusrsctp.a:libopus.a:libsoxr.a"
    CACHE INTERNAL "static archives whose symbols the extension does not export")
function(sinkcast_hide_archive_symbols target)
  if(CMAKE_SYSTEM_NAME MATCHES "Linux|BSD|GNU" AND NOT APPLE)
    set_property(TARGET ${target} APPEND PROPERTY
                 INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,${SINKCAST_HIDDEN_ARCHIVES}")
  endif()
endfunction()
