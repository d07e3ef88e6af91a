// The extension module `manifpt_ext._C`. It exposes no Python functions: importing it runs the
// TORCH_LIBRARY registrations of every op, which are then reached through torch.ops.manifpt.*
// (wrapped in manifpt_ext/ops.py). No pybind11 is needed for that.
//
// Its one attribute, `torch_version`, is the torch it was compiled against: the C++ ABI of torch changes
// between releases, so manifpt_ext compares it with the torch it runs with and says what to do.
#include <Python.h>

#ifndef MANIFPT_TORCH_VERSION
#define MANIFPT_TORCH_VERSION "unknown"
#endif

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "manifpt native ops (registered with torch.library)", -1,
                                      nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr && PyModule_AddStringConstant(m, "torch_version", MANIFPT_TORCH_VERSION) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
