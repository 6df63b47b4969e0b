#include "bindings/numpy_array.h"

// Built against numpy 2's headers (pyproject.toml; cpp/CMakeLists.txt refuses
// older ones), for numpy 1.24 and newer at run time: the oldest API this file
// may use is the one the package needs. This is the only file that includes
// numpy; another one would define NO_IMPORT_ARRAY and share the symbol below.
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define NPY_TARGET_VERSION NPY_1_24_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL sinkcast_numpy_api
#include <numpy/arrayobject.h>

namespace nb = nanobind;

namespace sinkcast::bindings {

void import_numpy_api() {
    // import_array() is a macro that returns from the calling function.
    if (_import_array() < 0) throw nb::python_error();
}

// Through the C API rather than numpy.empty(): render() allocates a period
// every call, and numpy.empty's argument parsing, and reading the address
// back through the buffer protocol, cost as much as mixing eight sources.
std::pair<nb::object, float*> new_float32_array(size_t rows, size_t columns) {
    npy_intp shape[2] = {static_cast<npy_intp>(rows), static_cast<npy_intp>(columns)};
    PyObject* array = PyArray_SimpleNew(2, shape, NPY_FLOAT32);
    if (!array) throw nb::python_error();
    float* samples = static_cast<float*>(PyArray_DATA(reinterpret_cast<PyArrayObject*>(array)));
    return {nb::steal(array), samples};
}

bool view_numpy_samples(nb::handle object, SamplesView& view) {
    if (!PyArray_Check(object.ptr())) return false;
    auto* array = reinterpret_cast<PyArrayObject*>(object.ptr());
    view = SamplesView{};
    view.data = PyArray_DATA(array);
    // By kind and size rather than by type number: int32 is NPY_INT on some
    // platforms and NPY_LONG on others.
    const char kind = PyArray_DESCR(array)->kind;
    const npy_intp size = PyArray_ITEMSIZE(array);
    if (kind == 'i' && size == 2) view.format = SampleFormat::Int16;
    if (kind == 'i' && size == 4) view.format = SampleFormat::Int32;
    if (kind == 'f' && size == 4) view.format = SampleFormat::Float32;
    view.byte_swapped = !PyArray_ISNOTSWAPPED(array);
    view.ndim = PyArray_NDIM(array);
    for (int i = 0; i < view.ndim && i < 2; ++i) view.shape[i] = static_cast<size_t>(PyArray_DIM(array, i));
    view.c_contiguous = PyArray_IS_C_CONTIGUOUS(array);
    return true;
}

}  // namespace sinkcast::bindings
