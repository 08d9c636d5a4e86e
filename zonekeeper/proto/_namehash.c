/*
 * dnspython's hash of a name, in C (zonekeeper/zones/zonefile.py, ``_Name``).
 *
 * ``dns.name.Name.__hash__`` folds every octet of every label, lower-cased, into
 * h = 9 * h + octet, in Python: ~2.5 us for a name of 20 octets, a quarter of the time of
 * reading a zone file's records. The h it returns is an unbounded integer, which ``hash()``
 * takes as it is when it fits a Py_ssize_t and otherwise hashes as an int: h mod (2**61 - 1)
 * (``sys.hash_info.modulus`` on 64-bit builds; h is never negative). This gives the same
 * number: h itself while it fits in 63 bits, its residue once it has grown past them (it
 * never shrinks). The caller checks the modulus and the width, and uses dnspython's own
 * hash where they differ.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define MODULUS ((((uint64_t)1) << 61) - 1)

static PyObject *name_hash(PyObject *self, PyObject *labels) {
    (void)self;
    if (!PyTuple_Check(labels)) {
        PyErr_SetString(PyExc_TypeError, "name_hash(labels): a tuple of bytes");
        return NULL;
    }
    uint64_t h = 0;
    int big = 0; /* h has passed 2**63 - 1: from then on it is kept modulo MODULUS */
    Py_ssize_t n = PyTuple_GET_SIZE(labels);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *label = PyTuple_GET_ITEM(labels, i);
        if (!PyBytes_Check(label)) {
            PyErr_SetString(PyExc_TypeError, "name_hash(labels): a tuple of bytes");
            return NULL;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(label);
        Py_ssize_t len = PyBytes_GET_SIZE(label);
        for (Py_ssize_t j = 0; j < len; j++) {
            unsigned c = p[j];
            if (c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            /* h < 2**63, so t < 2**67; 2**61 = 1 modulo MODULUS: fold the high bits twice. */
            unsigned __int128 t = (unsigned __int128)h * 9 + c;
            if (!big && t <= (unsigned __int128)INT64_MAX) {
                h = (uint64_t)t;
                continue;
            }
            big = 1;
            uint64_t r = (uint64_t)(t & MODULUS) + (uint64_t)(t >> 61);
            r = (r & MODULUS) + (r >> 61);
            h = r >= MODULUS ? r - MODULUS : r;
        }
    }
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef methods[] = {
    {"name_hash", name_hash, METH_O,
     "name_hash(labels) -> int: hash(dns.name.Name(labels)) on a 64-bit build (hash modulus 2**61 - 1)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_namehash", "dnspython's name hash in C (see zones/zonefile.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__namehash(void) { return PyModule_Create(&module); }
