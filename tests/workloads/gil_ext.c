/* A tiny extension module that does not declare free-threading support: single-phase
 * initialisation, no `Py_mod_gil` slot. Importing it into a free-threaded CPython turns the
 * GIL on for the whole process. Compiled by tests/free_threaded.rs. */
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "The answer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gil_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_gil_ext(void) { return PyModule_Create(&module); }
