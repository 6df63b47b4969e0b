// Translation of engine exceptions into sinkcast's Python exceptions.
#pragma once

#include <nanobind/nanobind.h>

namespace sinkcast::bindings {

void register_error_translator();

}  // namespace sinkcast::bindings
