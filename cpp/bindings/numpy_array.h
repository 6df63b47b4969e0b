// numpy arrays through numpy's C API: fresh ones for render(), views of the
// caller's samples for push().
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include <nanobind/nanobind.h>

#include "audio/sample_format.h"

namespace sinkcast::bindings {

// Loads numpy's C API; called once when the module is imported.
// Throws nb::python_error when numpy cannot be imported.
void import_numpy_api();

// A new C-contiguous float32 array shaped (rows, columns), owned by numpy,
// and the address of its samples. Held with the GIL.
std::pair<nanobind::object, float*> new_float32_array(size_t rows, size_t columns);

// An array's samples as push() reads them, in place.
struct SamplesView {
    const void* data = nullptr;
    std::optional<SampleFormat> format;  // empty: a dtype push() does not take
    bool byte_swapped = false;           // not in this machine's byte order
    int ndim = 0;
    size_t shape[2] = {0, 0};  // the first min(ndim, 2) extents
    bool c_contiguous = false;
};

// Describes `object` when it is a numpy array (false otherwise). The view is
// valid while the array lives and is not resized. Held with the GIL.
bool view_numpy_samples(nanobind::handle object, SamplesView& view);

}  // namespace sinkcast::bindings
