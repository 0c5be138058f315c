/*
 * Optional C versions of ingest hot spots. daemon/alert.py falls back to pure Python
 * when this module is not built, so every function here must give exactly the pure
 * Python result (tests/test_speedups.py checks that with hypothesis).
 *
 * fingerprint(labels): FNV-1a 64 over the label set as Prometheus' LabelSet.Fingerprint
 * hashes it: names in sorted order, each as "name 0xFF value 0xFF" in UTF-8. In pure
 * Python the byte loop is the single most expensive step of posting an alert.
 *
 * posted_labels(labels): interns every value in place (as sys.intern would), then
 * returns fingerprint(labels). One call per posted alert instead of one per label.
 *
 * str_values(d): True if every value of dict d is exactly a str (the decoder's fast-path
 * type check, without a generator per alert).
 *
 * untrack(obj): takes obj out of the cyclic collector's lists and returns it. Only for
 * objects that can never be part of a reference cycle (an Alert holds str dicts and
 * numbers): the collector could never free them, yet every full pass over 100k stored
 * alerts walked each one, which was an event-loop pause of 100-200 ms. Refcounting
 * still frees them. The pure Python fallback returns obj unchanged (still tracked).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t
fnv_bytes(uint64_t h, const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    /* The 0xFF separator after every name and value. */
    h ^= 0xFF;
    h *= FNV_PRIME;
    return h;
}

/* Hash one str; -1 with an exception set if it is not a str or has no UTF-8 form. */
static int
fnv_str(uint64_t *h, PyObject *s)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "label names and values must be str, not %.100s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    if (PyUnicode_IS_ASCII(s)) {
        /* ASCII strings are their own UTF-8: hash the object's buffer in place. */
        *h = fnv_bytes(*h, PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s));
        return 0;
    }
    /* A temporary bytes object rather than PyUnicode_AsUTF8AndSize, which would keep
     * a UTF-8 copy attached to every stored non-ASCII label value. Lone surrogates
     * raise UnicodeEncodeError, as str.encode() does in the pure Python version. */
    PyObject *utf8 = PyUnicode_AsUTF8String(s);
    if (utf8 == NULL) {
        return -1;
    }
    *h = fnv_bytes(*h, (const unsigned char *)PyBytes_AS_STRING(utf8),
                   PyBytes_GET_SIZE(utf8));
    Py_DECREF(utf8);
    return 0;
}

static PyObject *
speedups_fingerprint(PyObject *module, PyObject *labels)
{
    if (!PyDict_Check(labels)) {
        PyErr_Format(PyExc_TypeError, "labels must be a dict, not %.100s",
                     Py_TYPE(labels)->tp_name);
        return NULL;
    }
    uint64_t h = FNV_OFFSET;
    if (PyDict_GET_SIZE(labels) == 0) {
        return PyLong_FromUnsignedLongLong(h);
    }
    PyObject *names = PyDict_Keys(labels);
    if (names == NULL) {
        return NULL;
    }
    /* Code point order, as sorted() gives; for UTF-8 it equals Go's byte order. */
    if (PyList_Sort(names) < 0) {
        Py_DECREF(names);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(names, i);
        PyObject *value = PyDict_GetItemWithError(labels, name);
        if (value == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, name);
            }
            Py_DECREF(names);
            return NULL;
        }
        if (fnv_str(&h, name) < 0 || fnv_str(&h, value) < 0) {
            Py_DECREF(names);
            return NULL;
        }
    }
    Py_DECREF(names);
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *
speedups_posted_labels(PyObject *module, PyObject *labels)
{
    if (!PyDict_Check(labels)) {
        PyErr_Format(PyExc_TypeError, "labels must be a dict, not %.100s",
                     Py_TYPE(labels)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    /* Replacing the value of an existing key keeps the dict's key set, which the C API
     * allows during PyDict_Next. */
    while (PyDict_Next(labels, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(value) || PyUnicode_CHECK_INTERNED(value)) {
            continue;
        }
        Py_INCREF(value);
        PyObject *interned = value;
        PyUnicode_InternInPlace(&interned);
        int failed = interned != value && PyDict_SetItem(labels, name, interned) < 0;
        Py_DECREF(interned);
        if (failed) {
            return NULL;
        }
    }
    return speedups_fingerprint(module, labels);
}

static PyObject *
speedups_str_values(PyObject *module, PyObject *d)
{
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "expected a dict, not %.100s", Py_TYPE(d)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(value)) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyObject *
speedups_untrack(PyObject *module, PyObject *obj)
{
    /* PyObject_GC_UnTrack is a no-op for an object already untracked. */
    if (PyObject_IS_GC(obj)) {
        PyObject_GC_UnTrack(obj);
    }
    Py_INCREF(obj);
    return obj;
}

static PyMethodDef speedups_methods[] = {
    {"fingerprint", speedups_fingerprint, METH_O,
     "FNV-1a 64 of a label dict, as Prometheus' LabelSet.Fingerprint."},
    {"posted_labels", speedups_posted_labels, METH_O,
     "Intern the label values in place; return the fingerprint."},
    {"str_values", speedups_str_values, METH_O, "True if every value of the dict is a str."},
    {"untrack", speedups_untrack, METH_O,
     "Take an object that can never be in a reference cycle out of the cyclic GC; return it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "daemon._speedups",
    "C versions of tocsin's ingest hot spots (optional; pure Python fallbacks exist).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
