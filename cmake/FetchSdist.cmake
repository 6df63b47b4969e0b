# FetchSdist.cmake — fetch a pinned Python source distribution (sdist) by
# name and version, check its sha256, and extract it once into a cache that
# lives outside every build tree.
#
#   sinkcast_fetch_sdist(<pypi-name> <version> <sha256> <out_src_dir_var>)
#
# Sets <out_src_dir_var> (in the caller's scope) to the extracted top-level
# directory: <cache>/src/<pypi-name>-<version>.  Also sets
# <out_src_dir_var>_STATUS to "cached" or "downloaded".
#
# Cache layout (<cache>: see "Cache directory" below):
#   <cache>/sdist/<file>.tar.gz          verified archives
#   <cache>/src/<name>-<version>/        extracted tree, with a stamp file
#   <cache>/locks/                       lock files (concurrent builds wait)
#
# The download goes through `python -m pip download` so that whatever index
# configuration pip already has (pip.conf, PIP_INDEX_URL, proxies) is used;
# no index address is written here.  A warm cache neither downloads nor
# extracts nor even hashes anything: the stamp file records the sha256.
#
# To work offline, drop the sdist into <cache>/sdist/ by hand.

include_guard(GLOBAL)

# ---------------------------------------------------------------------------
# Cache directory
# ---------------------------------------------------------------------------
# SINKCAST_CACHE_DIR (cache variable) wins when non-empty; otherwise the
# environment decides, re-evaluated at every configure: $SINKCAST_CACHE_DIR,
# else $XDG_CACHE_HOME/sinkcast, else $HOME/.cache/sinkcast.
set(SINKCAST_CACHE_DIR "" CACHE PATH
    "Where sdists, extracted sources and built dependencies are kept, shared by all build trees (empty: $SINKCAST_CACHE_DIR, $XDG_CACHE_HOME/sinkcast or ~/.cache/sinkcast)")

set(SINKCAST_LOCK_TIMEOUT 3600 CACHE STRING
    "Seconds to wait for another build holding a sinkcast cache lock")
mark_as_advanced(SINKCAST_LOCK_TIMEOUT)

# Resolve the cache dir to an absolute path and create it.
function(sinkcast_cache_dir out_var)
  if(NOT "${SINKCAST_CACHE_DIR}" STREQUAL "")
    set(dir "${SINKCAST_CACHE_DIR}")
  elseif(NOT "$ENV{SINKCAST_CACHE_DIR}" STREQUAL "")
    set(dir "$ENV{SINKCAST_CACHE_DIR}")
  elseif(NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
    set(dir "$ENV{XDG_CACHE_HOME}/sinkcast")
  elseif(NOT "$ENV{HOME}" STREQUAL "")
    set(dir "$ENV{HOME}/.cache/sinkcast")
  elseif(NOT "$ENV{LOCALAPPDATA}" STREQUAL "")
    set(dir "$ENV{LOCALAPPDATA}/sinkcast/cache")
  else()
    message(FATAL_ERROR "sinkcast: cannot choose a cache directory (no HOME); set SINKCAST_CACHE_DIR")
  endif()
  file(TO_CMAKE_PATH "${dir}" dir)
  if(NOT IS_ABSOLUTE "${dir}")
    message(WARNING "sinkcast: cache dir '${dir}' is relative; taking it relative to ${CMAKE_BINARY_DIR}")
    get_filename_component(dir "${dir}" ABSOLUTE BASE_DIR "${CMAKE_BINARY_DIR}")
  endif()
  file(MAKE_DIRECTORY "${dir}")
  set(${out_var} "${dir}" PARENT_SCOPE)
endfunction()

# A suffix unique enough for temp names shared between concurrent processes:
# different build trees hash differently, and the random part separates
# reruns in one tree.
function(_sinkcast_unique_suffix out_var)
  string(RANDOM LENGTH 8 ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz" rnd)
  string(TIMESTAMP now "%s")
  string(SHA1 h "${CMAKE_BINARY_DIR}|${now}|${rnd}")
  string(SUBSTRING "${h}" 0 12 h)
  set(${out_var} "${h}" PARENT_SCOPE)
endfunction()

# Take an exclusive cache lock for the rest of the CALLING function (a macro,
# so that GUARD FUNCTION binds to the caller); say so if we have to wait.
macro(_sinkcast_lock_or_wait _lock_path _what)
  file(LOCK "${_lock_path}" GUARD FUNCTION TIMEOUT 0 RESULT_VARIABLE _sinkcast_lock_rc)
  if(NOT _sinkcast_lock_rc EQUAL 0)
    message(STATUS "sinkcast: another build is ${_what}; waiting (lock ${_lock_path})")
    file(LOCK "${_lock_path}" GUARD FUNCTION TIMEOUT ${SINKCAST_LOCK_TIMEOUT}
         RESULT_VARIABLE _sinkcast_lock_rc)
    if(NOT _sinkcast_lock_rc EQUAL 0)
      message(FATAL_ERROR "sinkcast: could not lock ${_lock_path} within "
                          "${SINKCAST_LOCK_TIMEOUT} s: ${_sinkcast_lock_rc}")
    endif()
  endif()
endmacro()

# PEP 625 file names use the normalised project name (runs of -_. -> _,
# lower case); older sdists keep the name as published.  Try both.
function(_sinkcast_sdist_candidates name version out_var)
  string(TOLOWER "${name}" norm)
  string(REGEX REPLACE "[-_.]+" "_" norm "${norm}")
  set(c)
  foreach(base IN ITEMS "${norm}" "${name}")
    foreach(ext IN ITEMS tar.gz zip)
      list(APPEND c "${base}-${version}.${ext}")
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES c)
  set(${out_var} "${c}" PARENT_SCOPE)
endfunction()

# Locate a Python interpreter that has pip.
function(_sinkcast_pip_command out_var)
  set(py "${Python_EXECUTABLE}")
  if(NOT py AND Python3_EXECUTABLE)
    set(py "${Python3_EXECUTABLE}")
  endif()
  if(NOT py)
    find_package(Python COMPONENTS Interpreter QUIET)
    set(py "${Python_EXECUTABLE}")
  endif()
  if(py)
    execute_process(COMMAND "${py}" -m pip --version
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(${out_var} "${py};-m;pip" PARENT_SCOPE)
      return()
    endif()
  endif()
  # The isolated build environment of some frontends has no pip; fall back
  # to a pip on PATH.
  find_program(SINKCAST_PIP_EXECUTABLE NAMES pip3 pip)
  mark_as_advanced(SINKCAST_PIP_EXECUTABLE)
  if(SINKCAST_PIP_EXECUTABLE)
    set(${out_var} "${SINKCAST_PIP_EXECUTABLE}" PARENT_SCOPE)
    return()
  endif()
  set(${out_var} "" PARENT_SCOPE)
endfunction()

# Download <name>==<version> into the cache's sdist dir, verify, return path.
function(_sinkcast_download_sdist name version sha256 sdist_dir out_var)
  _sinkcast_pip_command(pip)
  _sinkcast_sdist_candidates("${name}" "${version}" cands)
  list(GET cands 0 expected_file)
  if(NOT pip)
    message(FATAL_ERROR
      "sinkcast: need pip to download the source distribution ${name}==${version}, "
      "but neither '${Python_EXECUTABLE} -m pip' nor a pip on PATH works.\n"
      "Either install pip, or put the file ${expected_file} "
      "(sha256 ${sha256}) into ${sdist_dir}/ yourself.")
  endif()

  _sinkcast_unique_suffix(sfx)
  set(tmpdir "${sdist_dir}/.download-${name}-${version}-${sfx}")
  file(REMOVE_RECURSE "${tmpdir}")
  file(MAKE_DIRECTORY "${tmpdir}")

  message(STATUS "sinkcast: downloading source distribution ${name}==${version} with pip")
  # --no-binary <name> (not :all:): only this package must come as an sdist;
  # pip may still use wheels for the sdist's own build requirements, which it
  # installs to prepare metadata.  Requires-Python of the carrier package is
  # irrelevant to us, hence --ignore-requires-python.
  execute_process(
    COMMAND ${pip} download
            --no-deps
            --no-binary "${name}"
            --ignore-requires-python
            --disable-pip-version-check
            --dest "${tmpdir}"
            "${name}==${version}"
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    file(REMOVE_RECURSE "${tmpdir}")
    message(FATAL_ERROR
      "sinkcast: 'pip download ${name}==${version}' failed (exit ${rc}).\n"
      "${out}\n${err}\n"
      "To build offline, put ${expected_file} (sha256 ${sha256}) into ${sdist_dir}/.")
  endif()

  file(GLOB got LIST_DIRECTORIES false "${tmpdir}/*.tar.gz" "${tmpdir}/*.zip")
  list(LENGTH got n)
  if(NOT n EQUAL 1)
    file(REMOVE_RECURSE "${tmpdir}")
    message(FATAL_ERROR
      "sinkcast: expected exactly one sdist from pip for ${name}==${version}, got: '${got}'\n${out}")
  endif()

  file(SHA256 "${got}" actual)
  if(NOT actual STREQUAL sha256)
    file(REMOVE_RECURSE "${tmpdir}")
    message(FATAL_ERROR
      "sinkcast: sha256 mismatch for the source distribution ${name}==${version}\n"
      "  expected: ${sha256}\n"
      "  actual:   ${actual}\n"
      "The file was discarded. If the pin was changed on purpose, update the "
      "sha256 in the cmake/ module; otherwise the download was corrupted or tampered with.")
  endif()

  get_filename_component(fname "${got}" NAME)
  set(dest "${sdist_dir}/${fname}")
  # rename() within one directory tree is atomic: a concurrent reader sees
  # either no file or the complete, verified one.
  file(RENAME "${got}" "${dest}")
  file(REMOVE_RECURSE "${tmpdir}")
  set(${out_var} "${dest}" PARENT_SCOPE)
endfunction()

function(sinkcast_fetch_sdist name version sha256 out_var)
  string(TOLOWER "${sha256}" sha256)
  sinkcast_cache_dir(cache)
  set(sdist_dir "${cache}/sdist")
  set(src_root "${cache}/src")
  set(src_dir "${src_root}/${name}-${version}")
  set(stamp "${src_dir}/.sinkcast-sdist-stamp")
  file(MAKE_DIRECTORY "${sdist_dir}" "${src_root}" "${cache}/locks")

  # Fast path, no lock needed: the stamp is written before the directory is
  # renamed into place, so its presence means a complete extraction.
  if(EXISTS "${stamp}")
    file(READ "${stamp}" stamped)
    string(STRIP "${stamped}" stamped)
    if(stamped STREQUAL sha256)
      set(${out_var} "${src_dir}" PARENT_SCOPE)
      set(${out_var}_STATUS "cached" PARENT_SCOPE)
      return()
    endif()
  endif()

  # Slow path: serialise with other builds fetching the same sdist.
  _sinkcast_lock_or_wait("${cache}/locks/sdist-${name}-${version}.lock"
                         "fetching ${name}==${version}")

  # Someone else may have finished while we waited.
  if(EXISTS "${stamp}")
    file(READ "${stamp}" stamped)
    string(STRIP "${stamped}" stamped)
    if(stamped STREQUAL sha256)
      set(${out_var} "${src_dir}" PARENT_SCOPE)
      set(${out_var}_STATUS "cached" PARENT_SCOPE)
      return()
    endif()
  endif()

  # 1. The archive: reuse a verified one from the cache, else download.
  _sinkcast_sdist_candidates("${name}" "${version}" cands)
  set(archive "")
  set(status "cached")
  foreach(c IN LISTS cands)
    if(EXISTS "${sdist_dir}/${c}")
      file(SHA256 "${sdist_dir}/${c}" actual)
      if(actual STREQUAL sha256)
        set(archive "${sdist_dir}/${c}")
        break()
      endif()
      # Not deleted: the pin may be what is wrong.  A good download replaces it.
      message(WARNING "sinkcast: ${sdist_dir}/${c} has sha256 ${actual}, expected ${sha256}; not using it")
    endif()
  endforeach()
  if(archive STREQUAL "")
    _sinkcast_download_sdist("${name}" "${version}" "${sha256}" "${sdist_dir}" archive)
    set(status "downloaded")
  endif()

  # 2. Extract into a private temp dir, stamp, then rename into place.
  _sinkcast_unique_suffix(sfx)
  set(tmp "${src_root}/.extract-${name}-${version}-${sfx}")
  file(REMOVE_RECURSE "${tmp}")
  file(MAKE_DIRECTORY "${tmp}")
  message(STATUS "sinkcast: extracting ${archive}")
  file(ARCHIVE_EXTRACT INPUT "${archive}" DESTINATION "${tmp}")

  # An sdist holds one top-level directory; use it as the source root.
  file(GLOB top LIST_DIRECTORIES true "${tmp}/*")
  list(LENGTH top ntop)
  if(ntop EQUAL 1 AND IS_DIRECTORY "${top}")
    set(tree "${top}")
  else()
    set(tree "${tmp}")
  endif()
  file(WRITE "${tree}/.sinkcast-sdist-stamp" "${sha256}\n")

  if(EXISTS "${src_dir}")
    # Left over from an interrupted or different extraction (stamp missing
    # or wrong); we hold the lock, so nobody else is using it.
    file(REMOVE_RECURSE "${src_dir}")
  endif()
  file(RENAME "${tree}" "${src_dir}")
  file(REMOVE_RECURSE "${tmp}")

  set(${out_var} "${src_dir}" PARENT_SCOPE)
  set(${out_var}_STATUS "${status}" PARENT_SCOPE)
endfunction()
