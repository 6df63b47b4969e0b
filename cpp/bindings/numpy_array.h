// Fresh numpy arrays, made through numpy's C API.
#pragma once

#include <cstddef>
#include <utility>

#include <nanobind/nanobind.h>

namespace sinkcast::bindings {

// Loads numpy's C API; called once when the module is imported.
// Throws nb::python_error when numpy cannot be imported.
void import_numpy_api();

// A new C-contiguous float32 array shaped (rows, columns), owned by numpy,
// and the address of its samples. Held with the GIL.
std::pair<nanobind::object, float*> new_float32_array(size_t rows, size_t columns);

}  // namespace sinkcast::bindings
