// The extension module `manifpt_ext._C`. It exposes no Python functions: importing it runs the
// TORCH_LIBRARY registrations of every op, which are then reached through torch.ops.manifpt.*
// (wrapped in manifpt_ext/ops.py). No pybind11 is needed for that.
#include <Python.h>

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "manifpt native ops (registered with torch.library)", -1,
                                      nullptr};
  return PyModule_Create(&module);
}
