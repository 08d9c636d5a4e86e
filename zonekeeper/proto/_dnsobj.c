/*
 * dnspython's objects as the zone-file reader makes them, in C (zonekeeper/zones/zonefile.py).
 *
 * name_hash(labels): ``dns.name.Name.__hash__`` folds every octet of every label,
 * lower-cased, into h = 9 * h + octet, in Python: ~2.5 us for a name of 20 octets. The h it
 * returns is an unbounded integer, which ``hash()`` takes as it is when it fits a
 * Py_ssize_t and otherwise hashes as an int: h mod (2**61 - 1) (``sys.hash_info.modulus``
 * on 64-bit builds; h is never negative). This gives the same number: h itself while it
 * fits in 63 bits, its residue once it has grown past them (it never shrinks). The caller
 * checks the modulus and the width, and uses dnspython's own hash where they differ.
 *
 * make_name(cls, value, origin_labels, origin_text): what ``zonefile._name`` makes of an
 * owner or a target as written (``www``, ``host.example.``), a ``_Name`` with its labels,
 * hash, text, wire form and lower-case wire form (the node table's key) set at once; ~0.5
 * us where the Python way took ~4.5 (label checks, five attribute sets, then the wire
 * forms and the hash at their first use). None where the Python way must decide: a name
 * that is not ASCII, the root, or one that breaks a label rule (the Python way raises
 * dnspython's own error for it).
 *
 * make_rdata(cls, rdclass, rdtype, keys, *values): ``zonefile._rdata``: an rdata of
 * ``cls`` with its fields set, without dnspython's constructor (fields already checked).
 *
 * Attributes are set as object.__setattr__ sets them (dnspython's objects refuse
 * ``setattr`` once made: they are immutable).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MODULUS ((((uint64_t)1) << 61) - 1)
#define NAME_MAX_WIRE 255
#define LABEL_MAX 63

/* h = 9 * h + c over the lower-cased octets, as name_hash() explains. */
typedef struct {
    uint64_t h;
    int big; /* h has passed 2**63 - 1: from then on it is kept modulo MODULUS */
} Hash;

static inline void hash_octets(Hash *s, const unsigned char *p, Py_ssize_t len) {
    for (Py_ssize_t j = 0; j < len; j++) {
        unsigned c = p[j];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        /* h < 2**63, so t < 2**67; 2**61 = 1 modulo MODULUS: fold the high bits twice. */
        unsigned __int128 t = (unsigned __int128)s->h * 9 + c;
        if (!s->big && t <= (unsigned __int128)INT64_MAX) {
            s->h = (uint64_t)t;
            continue;
        }
        s->big = 1;
        uint64_t r = (uint64_t)(t & MODULUS) + (uint64_t)(t >> 61);
        r = (r & MODULUS) + (r >> 61);
        s->h = r >= MODULUS ? r - MODULUS : r;
    }
}

static PyObject *name_hash(PyObject *self, PyObject *labels) {
    (void)self;
    if (!PyTuple_Check(labels)) {
        PyErr_SetString(PyExc_TypeError, "name_hash(labels): a tuple of bytes");
        return NULL;
    }
    Hash s = {0, 0};
    Py_ssize_t n = PyTuple_GET_SIZE(labels);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *label = PyTuple_GET_ITEM(labels, i);
        if (!PyBytes_Check(label)) {
            PyErr_SetString(PyExc_TypeError, "name_hash(labels): a tuple of bytes");
            return NULL;
        }
        hash_octets(&s, (const unsigned char *)PyBytes_AS_STRING(label), PyBytes_GET_SIZE(label));
    }
    return PyLong_FromUnsignedLongLong(s.h);
}

/* Attribute names, interned once. */
static PyObject *s_labels, *s_hash, *s_text, *s_wire, *s_key, *s_rdclass, *s_rdtype, *s_rdcomment;
static PyObject *empty_tuple;

/* An instance of ``cls`` as object.__new__(cls) makes it. */
static PyObject *new_of(PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "a class is needed");
        return NULL;
    }
    return PyBaseObject_Type.tp_new((PyTypeObject *)cls, empty_tuple, NULL);
}

static int set(PyObject *obj, PyObject *name, PyObject *value) {
    return PyObject_GenericSetAttr(obj, name, value);
}

/* Octets that dnspython prints as they are in a label; any other makes the text unknown
 * here (zonefile._ESCAPED: dnspython escapes it). */
static int printed_as_is(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#%&'*+,-/:<=>?[]^_`{|}~", c) != NULL;
}

static PyObject *make_name(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyUnicode_Check(args[1]) || !PyTuple_Check(args[2]) ||
        !PyUnicode_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "make_name(cls, value, origin_labels, origin_text)");
        return NULL;
    }
    PyObject *cls = args[0], *value = args[1], *origin = args[2], *origin_text = args[3];
    if (!PyUnicode_IS_ASCII(value))
        Py_RETURN_NONE;
    Py_ssize_t vlen = PyUnicode_GET_LENGTH(value);
    const unsigned char *v = (const unsigned char *)PyUnicode_DATA(value);
    if (vlen == 0 || (vlen == 1 && v[0] == '.'))
        Py_RETURN_NONE;
    int absolute = v[vlen - 1] == '.';
    Py_ssize_t body = absolute ? vlen - 1 : vlen; /* the labels as written, dots between */
    Py_ssize_t n_origin = absolute ? 0 : PyTuple_GET_SIZE(origin);

    /* The labels written: each non-empty, at most 63 octets. */
    Py_ssize_t n_written = 1;
    int plain = 1;
    for (Py_ssize_t i = 0; i < body; i++) {
        if (v[i] == '.')
            n_written++;
        else if (!printed_as_is(v[i]))
            plain = 0;
    }
    Py_ssize_t n_labels = n_written + (absolute ? 1 : n_origin);
    unsigned char wire[NAME_MAX_WIRE + LABEL_MAX + 2];
    Py_ssize_t w = 0;
    Hash h = {0, 0};
    PyObject *labels = PyTuple_New(n_labels);
    if (labels == NULL)
        return NULL;
    Py_ssize_t start = 0, k = 0;
    for (Py_ssize_t i = 0; i <= body; i++) {
        if (i < body && v[i] != '.')
            continue;
        Py_ssize_t len = i - start;
        if (len == 0 || len > LABEL_MAX || w + 1 + len > NAME_MAX_WIRE)
            goto undecided; /* empty label, too long, name too long: dnspython says which */
        PyObject *label = PyBytes_FromStringAndSize((const char *)v + start, len);
        if (label == NULL)
            goto fail;
        PyTuple_SET_ITEM(labels, k++, label);
        wire[w++] = (unsigned char)len;
        memcpy(wire + w, v + start, len);
        w += len;
        hash_octets(&h, v + start, len);
        start = i + 1;
    }
    if (absolute) {
        PyObject *root = PyBytes_FromStringAndSize("", 0);
        if (root == NULL)
            goto fail;
        PyTuple_SET_ITEM(labels, k++, root);
    } else {
        if (n_origin == 0)
            goto undecided;
        for (Py_ssize_t j = 0; j < n_origin; j++) {
            PyObject *label = PyTuple_GET_ITEM(origin, j);
            if (!PyBytes_Check(label))
                goto undecided;
            Py_ssize_t len = PyBytes_GET_SIZE(label);
            if (len > LABEL_MAX || w + 1 + len > NAME_MAX_WIRE || (len == 0 && j != n_origin - 1))
                goto undecided;
            if (j == n_origin - 1 && len != 0)
                goto undecided; /* a relative origin: not a _Name */
            Py_INCREF(label);
            PyTuple_SET_ITEM(labels, k++, label);
            wire[w++] = (unsigned char)len;
            memcpy(wire + w, PyBytes_AS_STRING(label), len);
            w += len;
            hash_octets(&h, (const unsigned char *)PyBytes_AS_STRING(label), len);
        }
    }
    if (absolute)
        wire[w++] = 0;
    if (w > NAME_MAX_WIRE)
        goto undecided;

    PyObject *text = NULL, *hash = NULL, *wire_b = NULL, *key_b = NULL, *name = NULL;
    if (plain) {
        if (absolute) {
            text = value;
            Py_INCREF(text);
        } else if (PyUnicode_GET_LENGTH(origin_text) == 1 &&
                   PyUnicode_READ_CHAR(origin_text, 0) == '.') {
            text = PyUnicode_Concat(value, origin_text);
        } else {
            text = PyUnicode_FromFormat("%U.%U", value, origin_text);
        }
        if (text == NULL)
            goto fail;
    } else {
        text = Py_None;
        Py_INCREF(text);
    }
    hash = PyLong_FromUnsignedLongLong(h.h);
    wire_b = PyBytes_FromStringAndSize((const char *)wire, w);
    if (hash == NULL || wire_b == NULL)
        goto fail_objects;
    /* (length octets are at most 63, below 'A': lower-casing the whole form leaves them) */
    int upper = 0;
    for (Py_ssize_t i = 0; i < w && !upper; i++)
        upper = wire[i] >= 'A' && wire[i] <= 'Z';
    if (!upper) {
        /* Already lower case (most names): the key is the wire form itself, not a copy
         * (~60 MB fewer at a million names). */
        key_b = wire_b;
        Py_INCREF(key_b);
    } else {
        key_b = PyBytes_FromStringAndSize(NULL, w);
        if (key_b == NULL)
            goto fail_objects;
        unsigned char *kp = (unsigned char *)PyBytes_AS_STRING(key_b);
        for (Py_ssize_t i = 0; i < w; i++) {
            unsigned char c = wire[i];
            kp[i] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
        }
    }
    name = new_of(cls);
    if (name == NULL || set(name, s_labels, labels) < 0 || set(name, s_hash, hash) < 0 ||
        set(name, s_text, text) < 0 || set(name, s_wire, wire_b) < 0 || set(name, s_key, key_b) < 0) {
        Py_XDECREF(name);
        name = NULL;
    }
fail_objects:
    Py_XDECREF(text);
    Py_XDECREF(hash);
    Py_XDECREF(wire_b);
    Py_XDECREF(key_b);
    Py_DECREF(labels);
    return name;

undecided:
    Py_DECREF(labels);
    Py_RETURN_NONE;
fail:
    Py_DECREF(labels);
    return NULL;
}

static PyObject *make_rdata(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 4 || !PyTuple_Check(args[3]) || PyTuple_GET_SIZE(args[3]) != nargs - 4) {
        PyErr_SetString(PyExc_TypeError, "make_rdata(cls, rdclass, rdtype, keys, *values)");
        return NULL;
    }
    PyObject *rd = new_of(args[0]);
    if (rd == NULL)
        return NULL;
    if (set(rd, s_rdclass, args[1]) < 0 || set(rd, s_rdtype, args[2]) < 0 ||
        set(rd, s_rdcomment, Py_None) < 0)
        goto fail;
    for (Py_ssize_t i = 4; i < nargs; i++)
        if (set(rd, PyTuple_GET_ITEM(args[3], i - 4), args[i]) < 0)
            goto fail;
    return rd;
fail:
    Py_DECREF(rd);
    return NULL;
}

static PyMethodDef methods[] = {
    {"name_hash", name_hash, METH_O,
     "name_hash(labels) -> int: hash(dns.name.Name(labels)) on a 64-bit build (hash modulus 2**61 - 1)."},
    {"make_name", (PyCFunction)(void (*)(void))make_name, METH_FASTCALL,
     "make_name(cls, value, origin_labels, origin_text) -> cls instance, or None: see the file's head."},
    {"make_rdata", (PyCFunction)(void (*)(void))make_rdata, METH_FASTCALL,
     "make_rdata(cls, rdclass, rdtype, keys, *values) -> an rdata of cls with those fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dnsobj",
    "dnspython's names and rdata made in C for the zone-file reader (see zones/zonefile.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__dnsobj(void) {
    s_labels = PyUnicode_InternFromString("labels");
    s_hash = PyUnicode_InternFromString("_hash");
    s_text = PyUnicode_InternFromString("_text");
    s_wire = PyUnicode_InternFromString("_wire");
    s_key = PyUnicode_InternFromString("_key");
    s_rdclass = PyUnicode_InternFromString("rdclass");
    s_rdtype = PyUnicode_InternFromString("rdtype");
    s_rdcomment = PyUnicode_InternFromString("rdcomment");
    empty_tuple = PyTuple_New(0);
    if (!s_labels || !s_hash || !s_text || !s_wire || !s_key || !s_rdclass || !s_rdtype ||
        !s_rdcomment || !empty_tuple)
        return NULL;
    return PyModule_Create(&module);
}
