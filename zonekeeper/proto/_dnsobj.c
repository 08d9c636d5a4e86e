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
 * NameSlots, name_slots(...): hash() and the comparisons of those names in C (see below).
 *
 * Attributes are set as object.__setattr__ sets them (dnspython's objects refuse
 * ``setattr`` once made: they are immutable).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

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

/* ---------------------------------------------------------------------------------------
 * NameSlots: hash() and the comparisons of zonefile._Name in C. _Name derives from it (after
 * dns.name.Name) and takes its __hash__ and rich comparisons, so that a dict keyed by names
 * (an import's owners, looked up and set several times a record) calls no Python function
 * for them: the Python __hash__ only returned the hash make_name had set, and the Python
 * __eq__ compared the names' lower-case wire forms, but entering each cost ~0.3 us, and
 * dnspython's hash puts many names in one bucket (``host09`` and ``host10``), so a lookup
 * often compares a few. name_slots(cls, labels, hash, key, fallbacks, key_of) binds it to
 * ``cls``: the member descriptors of its ``labels``, ``_hash`` and ``_key`` slots, six
 * functions for <, <=, ==, !=, >, >= where the other side is not a ``cls`` (dns.name.Name's
 * own: a plain Name compares as it always did) and ``key_of(name)`` for a lower-case wire
 * form not made yet. Hash as Python takes it from a __hash__ that returns an int.
 * ------------------------------------------------------------------------------------- */
static PyTypeObject *ns_cls;
static Py_ssize_t ns_off_labels, ns_off_hash, ns_off_key;
static PyObject *ns_fallbacks, *ns_key_of;

#define NS_SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))


static Py_hash_t ns_hash(PyObject *self) {
    if (ns_cls == NULL || Py_TYPE(self) != ns_cls) {
        PyErr_SetString(PyExc_TypeError, "NameSlots hashes only the class bound by name_slots()");
        return -1;
    }
    PyObject *h = NS_SLOT(self, ns_off_hash);
    if (h == NULL || h == Py_None) {
        PyObject *labels = NS_SLOT(self, ns_off_labels);
        if (labels == NULL) {
            PyErr_SetString(PyExc_AttributeError, "labels");
            return -1;
        }
        h = name_hash(NULL, labels);
        if (h == NULL)
            return -1;
        PyObject *old = NS_SLOT(self, ns_off_hash);
        NS_SLOT(self, ns_off_hash) = h; /* kept, as the Python way kept it */
        Py_XDECREF(old);
    }
    Py_ssize_t v = PyLong_AsSsize_t(h);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        v = PyLong_Type.tp_hash(h);
    }
    return v == -1 ? -2 : v;
}

/* The name's lower-case wire form (a new reference). */
static PyObject *ns_key(PyObject *name) {
    PyObject *key = NS_SLOT(name, ns_off_key);
    if (key != NULL && PyBytes_CheckExact(key)) {
        Py_INCREF(key);
        return key;
    }
    key = PyObject_CallOneArg(ns_key_of, name);
    if (key != NULL && !PyBytes_Check(key)) {
        Py_DECREF(key);
        PyErr_SetString(PyExc_TypeError, "key_of() gives bytes");
        return NULL;
    }
    return key;
}

static PyObject *ns_richcompare(PyObject *self, PyObject *other, int op) {
    if (ns_cls == NULL || op < Py_LT || op > Py_GE) {
        PyErr_SetString(PyExc_TypeError, "NameSlots compares only the class bound by name_slots()");
        return NULL;
    }
    if ((op == Py_EQ || op == Py_NE) && Py_TYPE(self) == ns_cls && Py_TYPE(other) == ns_cls) {
        int same = self == other;
        if (!same) {
            PyObject *a = ns_key(self);
            if (a == NULL)
                return NULL;
            PyObject *b = ns_key(other);
            if (b == NULL) {
                Py_DECREF(a);
                return NULL;
            }
            same = PyBytes_GET_SIZE(a) == PyBytes_GET_SIZE(b) &&
                   memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), PyBytes_GET_SIZE(a)) == 0;
            Py_DECREF(a);
            Py_DECREF(b);
        }
        return PyBool_FromLong(op == Py_EQ ? same : !same);
    }
    return PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(ns_fallbacks, op), self, other, NULL);
}

static PyTypeObject NameSlotsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zonekeeper.proto._dnsobj.NameSlots",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "hash() and comparisons of zonefile._Name, in C (see name_slots).",
    .tp_hash = ns_hash,
    .tp_richcompare = ns_richcompare,
};

static Py_ssize_t member_offset(PyObject *descr) {
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_SetString(PyExc_TypeError, "name_slots: a slot's member descriptor is needed");
        return -1;
    }
    return ((PyMemberDescrObject *)descr)->d_member->offset;
}

static PyObject *name_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6 || !PyType_Check(args[0]) ||
        !PyType_IsSubtype((PyTypeObject *)args[0], &NameSlotsType) || !PyTuple_Check(args[4]) ||
        PyTuple_GET_SIZE(args[4]) != 6 || !PyCallable_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "name_slots(cls, labels, hash, key, fallbacks, key_of): "
                                         "cls a NameSlots, six fallbacks");
        return NULL;
    }
    Py_ssize_t labels = member_offset(args[1]), hash = member_offset(args[2]),
               key = member_offset(args[3]);
    if (labels < 0 || hash < 0 || key < 0)
        return NULL;
    if (ns_cls != NULL && ns_cls != (PyTypeObject *)args[0]) {
        PyErr_SetString(PyExc_RuntimeError, "name_slots: bound to another class already");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_INCREF(args[4]);
    Py_INCREF(args[5]);
    Py_XSETREF(ns_fallbacks, args[4]);
    Py_XSETREF(ns_key_of, args[5]);
    ns_off_labels = labels;
    ns_off_hash = hash;
    ns_off_key = key;
    if (ns_cls == NULL)
        ns_cls = (PyTypeObject *)args[0];
    else
        Py_DECREF(args[0]);
    Py_RETURN_NONE;
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

/* set(obj, name, value): object.__setattr__(obj, name, value). The objects made here are
 * slotted (dnspython's names and rdata, the model's dataclasses), and the generic way looks
 * the slot up by its name in the class at every call: ~0.4 us of every record read, ten or
 * more sets each. So where ``name`` is a plain writable slot of ``obj``'s class, its offset
 * is found once and kept for that (class, name) pair (the class and the name held, so
 * neither pointer can be reused), and the value is stored there as the slot's own setter
 * stores it. Anything else (a dict attribute, a property, a full table) goes the generic
 * way. */
#define SLOT_CACHE 256
static struct {
    PyTypeObject *type;
    PyObject *name;
    Py_ssize_t offset; /* -1: not a plain slot, set the generic way */
} slot_cache[SLOT_CACHE];

static Py_ssize_t slot_offset(PyTypeObject *tp, PyObject *name) {
    size_t h = (size_t)((((uintptr_t)tp) >> 4) ^ (((uintptr_t)name) >> 4) * 31) % SLOT_CACHE;
    for (size_t k = 0; k < SLOT_CACHE; k++) {
        size_t i = (h + k) % SLOT_CACHE;
        if (slot_cache[i].type == tp && slot_cache[i].name == name)
            return slot_cache[i].offset;
        if (slot_cache[i].type == NULL) {
            PyObject *descr = _PyType_Lookup(tp, name); /* borrowed */
            Py_ssize_t offset = -1;
            if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
                PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
                if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
                    offset = m->offset;
            }
            Py_INCREF(tp);
            Py_INCREF(name);
            slot_cache[i].type = tp;
            slot_cache[i].name = name;
            slot_cache[i].offset = offset;
            return offset;
        }
    }
    return -1;
}

static int set(PyObject *obj, PyObject *name, PyObject *value) {
    Py_ssize_t offset = PyUnicode_CheckExact(name) ? slot_offset(Py_TYPE(obj), name) : -1;
    if (offset < 0 || value == NULL)
        return PyObject_GenericSetAttr(obj, name, value);
    PyObject **addr = (PyObject **)((char *)obj + offset);
    PyObject *old = *addr;
    Py_INCREF(value);
    *addr = value;
    Py_XDECREF(old);
    return 0;
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

/* Let a thread waiting for the GIL (the event loop, a query) take it: the loops below,
 * which may run for seconds on a large zone, call ``breather`` (a Python function that
 * does nothing) every YIELD_EVERY items; entering it runs the interpreter's check for a
 * thread that asked for the GIL, which hands it over as a Python loop does. Letting go of
 * the GIL and taking it back often does not (see _axfrbuild.c, yield_gil). */
#define YIELD_EVERY 256
static PyObject *breather;
static int yield_gil(void) {
    PyObject *r = PyObject_CallNoArgs(breather);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------
 * read_records(text, origin, current, max_records, env): ``zonefile._fast_records``'s loop
 * in C, the same records made the same way (the Python loop is the reference where this
 * module is not built; tests/unit/test_zonefile.py holds the two to each other and to
 * dnspython's reader). ``text`` is ASCII without a NUL (the caller checks: a
 * C string ends there, a Python one does not). It returns the list of
 * (name, ttl, rdata, line) tuples, or None where the Python loop raises ``_Unusual``: the
 * text is for dnspython's reader. A callback's exception of one of env's ``unusual`` classes
 * means the same; any other is raised (ShuttingDown from the cancel check).
 *
 * env: (name_cls, py_name, rdtype_of, ttl_of, ttl_strict, origin_of, ipv4, ipv6, other,
 *       check_cancel, unusual, rdclass, types, types_cache)
 *   py_name(value, current)            zonefile._name, where make_name leaves it undecided
 *   rdtype_of(word) -> int             zonefile._rdtype
 *   ttl_of(word) -> int | None         zonefile._ttl, for a word with units
 *   ttl_strict(word) -> int            dns.ttl.from_text ($TTL)
 *   origin_of(word, current) -> _Name  the name $ORIGIN sets
 *   ipv4(text), ipv6(text) -> str      zonefile._ipv4/_ipv6, where the C library's form is
 *                                      not the text itself (or it refuses the text)
 *   other(line, words, at, rdtype, current) -> rdata
 *                                      every type and form this loop does not make itself
 *   check_cancel() or None             called before every 1,024th record
 *   types: ((cls, enum, keys) for A, AAAA, NS, CNAME, PTR, MX, TXT, SRV, SOA)
 *   types_cache: zonefile._TYPES (type word -> number), read before rdtype_of is asked
 * ------------------------------------------------------------------------------------- */
#include <arpa/inet.h>

enum { E_CLS, E_PYNAME, E_RDTYPE, E_TTL, E_TTLSTRICT, E_ORIGIN, E_IPV4, E_IPV6, E_OTHER,
       E_CANCEL, E_UNUSUAL, E_RDCLASS, E_TYPES, E_TYPECACHE, E_COUNT };
enum { T_A, T_AAAA, T_NS, T_CNAME, T_PTR, T_MX, T_TXT, T_SRV, T_SOA, T_COUNT };

#define MAX_TTL_VALUE 4294967295ULL
#define NAMES_CACHED 100000

typedef struct {
    const char *p;
    Py_ssize_t len;
} Span;

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_put(Buf *b, const char *p, Py_ssize_t len) {
    if (b->len + len + 1 > b->cap) {
        Py_ssize_t cap = (b->len + len + 1) * 2;
        char *d = PyMem_Realloc(b->data, cap);
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return 0;
}

/* What the reader returns from a step: go on, the text is unusual, or an error is set. */
enum { OK = 0, UNUSUAL = 1, ERROR = -1 };

typedef struct {
    PyObject **env;
    PyObject *types[T_COUNT][3];
    PyObject *current, *current_labels, *current_text;
    PyObject *names; /* text -> name under ``current`` */
} Reader;

/* After a failed call: UNUSUAL if the exception is one of env's ``unusual``, else ERROR. */
static int failed(Reader *r) {
    if (PyErr_ExceptionMatches(r->env[E_UNUSUAL])) {
        PyErr_Clear();
        return UNUSUAL;
    }
    return ERROR;
}

/* ``line`` without its comment (a ``;`` inside a quoted string is data); UNUSUAL for a
 * string left open at the end of the line (zonefile._strip_comment). */
static int strip_comment(const char *p, Py_ssize_t len, Py_ssize_t *out) {
    int quoted = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (p[i] == ';' && !quoted) {
            *out = i;
            return OK;
        }
    }
    if (quoted)
        return UNUSUAL;
    *out = len;
    return OK;
}

static Py_ssize_t count_of(const char *p, Py_ssize_t len, char c) {
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < len; i++)
        n += p[i] == c;
    return n;
}

static const char *find(const char *p, Py_ssize_t len, char c) { return memchr(p, c, len); }

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* Upper case of an ASCII letter, whatever the process's C locale. */
static char upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }

/* The words of a line (str.split(): the text holds no other white space). */
static int split_words(const char *p, Py_ssize_t len, Span **words, Py_ssize_t *n, Py_ssize_t *cap) {
    *n = 0;
    Py_ssize_t i = 0;
    while (i < len) {
        while (i < len && is_space(p[i]))
            i++;
        if (i >= len)
            break;
        Py_ssize_t start = i;
        while (i < len && !is_space(p[i]))
            i++;
        if (*n == *cap) {
            Py_ssize_t cap2 = *cap * 2;
            Span *w = PyMem_Realloc(*words, cap2 * sizeof(Span));
            if (w == NULL) {
                PyErr_NoMemory();
                return ERROR;
            }
            *words = w;
            *cap = cap2;
        }
        (*words)[*n].p = p + start;
        (*words)[*n].len = i - start;
        (*n)++;
    }
    return OK;
}

static int all_digits(Span w) {
    if (w.len == 0)
        return 0;
    for (Py_ssize_t i = 0; i < w.len; i++)
        if (w.p[i] < '0' || w.p[i] > '9')
            return 0;
    return 1;
}

/* A decimal field of at most ``top`` (zonefile._uint); -1: unusual. */
static long uint_field(Span w, long top) {
    if (!all_digits(w))
        return -1;
    long v = 0;
    for (Py_ssize_t i = 0; i < w.len; i++) {
        v = v * 10 + (w.p[i] - '0');
        if (v > top)
            return -1;
    }
    return v;
}

static PyObject *text_of(Span w) { return PyUnicode_FromStringAndSize(w.p, w.len); }

/* zonefile._ttl: a TTL, or (into *none) not one. */
static int ttl_word(Reader *r, Span w, long long *ttl, int *none) {
    *none = 1;
    if (w.p[0] < '0' || w.p[0] > '9')
        return OK;
    if (all_digits(w)) {
        unsigned long long v = 0;
        for (Py_ssize_t i = 0; i < w.len; i++) {
            v = v * 10 + (unsigned)(w.p[i] - '0');
            if (v > MAX_TTL_VALUE)
                return OK; /* BadTTL: not a TTL */
        }
        *ttl = (long long)v;
        *none = 0;
        return OK;
    }
    PyObject *word = text_of(w);
    if (word == NULL)
        return ERROR;
    PyObject *got = PyObject_CallOneArg(r->env[E_TTL], word);
    Py_DECREF(word);
    if (got == NULL)
        return failed(r);
    if (got != Py_None) {
        *ttl = PyLong_AsLongLong(got);
        *none = 0;
    }
    Py_DECREF(got);
    return PyErr_Occurred() ? ERROR : OK;
}

static PyObject *make_name(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *make_rdata(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

static int set_current(Reader *r, PyObject *current) {
    PyObject *labels = PyObject_GetAttrString(current, "labels");
    if (labels == NULL)
        return ERROR;
    PyObject *text = PyObject_CallMethod(current, "to_text", NULL);
    if (text == NULL || !PyTuple_Check(labels) || !PyUnicode_Check(text)) {
        Py_DECREF(labels);
        Py_XDECREF(text);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "read_records: the origin's labels and text");
        return ERROR;
    }
    Py_INCREF(current);
    Py_XSETREF(r->current, current);
    Py_XSETREF(r->current_labels, labels);
    Py_XSETREF(r->current_text, text);
    PyDict_Clear(r->names);
    return OK;
}

/* zonefile._fast_records' name_of: a name as written, completed with ``current``. */
static int name_of(Reader *r, Span w, PyObject **out) {
    if (w.len == 1 && w.p[0] == '@') {
        Py_INCREF(r->current);
        *out = r->current;
        return OK;
    }
    PyObject *value = text_of(w);
    if (value == NULL)
        return ERROR;
    PyObject *got = PyDict_GetItemWithError(r->names, value);
    if (got != NULL) {
        Py_DECREF(value);
        Py_INCREF(got);
        *out = got;
        return OK;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(value);
        return ERROR;
    }
    PyObject *args[4] = {r->env[E_CLS], value, r->current_labels, r->current_text};
    got = make_name(NULL, args, 4);
    if (got == Py_None) {
        Py_DECREF(got);
        got = PyObject_CallFunctionObjArgs(r->env[E_PYNAME], value, r->current, NULL);
        if (got == NULL) {
            Py_DECREF(value);
            return failed(r);
        }
    }
    if (got == NULL || (PyDict_GET_SIZE(r->names) < NAMES_CACHED &&
                        PyDict_SetItem(r->names, value, got) < 0)) {
        Py_DECREF(value);
        Py_XDECREF(got);
        return ERROR;
    }
    Py_DECREF(value);
    *out = got;
    return OK;
}

/* An address field: the C library's text of it where that is the text as written (then the
 * word itself, as zonefile._ipv4/_ipv6 give), else the Python function's answer. */
static int address(Reader *r, Span w, int family, PyObject **out) {
    char word[64], printed[64];
    unsigned char packed[16];
    static const unsigned char zero10[10];
    /* (an IPv6 address whose first ten octets are zero is an embedded IPv4 form, which
     * dnspython prints its own way: the Python function's) */
    if (w.len < (Py_ssize_t)sizeof(word)) {
        memcpy(word, w.p, w.len);
        word[w.len] = 0;
        if (inet_pton(family, word, packed) == 1 &&
            !(family == AF_INET6 && memcmp(packed, zero10, 10) == 0) &&
            inet_ntop(family, packed, printed, sizeof(printed)) != NULL &&
            (family == AF_INET6 || strcmp(printed, word) == 0)) {
            *out = PyUnicode_FromString(family == AF_INET6 ? printed : word);
            return *out == NULL ? ERROR : OK;
        }
    }
    PyObject *value = text_of(w);
    if (value == NULL)
        return ERROR;
    *out = PyObject_CallOneArg(r->env[family == AF_INET ? E_IPV4 : E_IPV6], value);
    Py_DECREF(value);
    return *out == NULL ? failed(r) : OK;
}

/* TXT data that is quoted strings only (zonefile._QUOTED_ONLY), each at most 255 octets:
 * the strings as a tuple of bytes into *out; *out NULL if the data is anything else. */
static int quoted_only(const char *p, Py_ssize_t len, PyObject **out) {
    *out = NULL;
    Py_ssize_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        Py_ssize_t i = 0, k = 0;
        while (i < len && is_space(p[i]))
            i++;
        if (i >= len)
            return OK;
        while (i < len) {
            if (p[i] != '"')
                return OK;
            const char *end = memchr(p + i + 1, '"', len - i - 1);
            if (end == NULL)
                return OK;
            Py_ssize_t slen = end - (p + i + 1);
            if (pass == 0 && slen > 255)
                return UNUSUAL; /* dnspython's reader says what is wrong */
            if (pass == 1) {
                PyObject *b = PyBytes_FromStringAndSize(p + i + 1, slen);
                if (b == NULL) {
                    Py_CLEAR(*out);
                    return ERROR;
                }
                PyTuple_SET_ITEM(*out, k, b);
            }
            k++;
            i = end - p + 1;
            while (i < len && is_space(p[i]))
                i++;
        }
        if (pass == 0) {
            n = k;
            if ((*out = PyTuple_New(n)) == NULL)
                return ERROR;
        }
    }
    return OK;
}

/* The rdata of ``kind`` with ``values`` (stolen references; any may be NULL on error). */
static PyObject *rdata_of(Reader *r, int kind, PyObject **values, Py_ssize_t n) {
    PyObject *args[12];
    PyObject *rd = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (values[i] == NULL)
            goto done;
    args[0] = r->types[kind][0];
    args[1] = r->env[E_RDCLASS];
    args[2] = r->types[kind][1];
    args[3] = r->types[kind][2];
    for (Py_ssize_t i = 0; i < n; i++)
        args[4 + i] = values[i];
    rd = make_rdata(NULL, args, 4 + n);
done:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(values[i]);
    return rd;
}

typedef struct {
    PyObject *last_name;
    long long last_ttl, default_ttl;
    int last_ttl_known, default_known, default_from_soa;
    Span *words;
    Py_ssize_t nwords, cap;
} State;

/* One logical line (comments gone, parentheses joined). */
static int read_line(Reader *r, State *st, const char *line, Py_ssize_t len, long number,
                     PyObject *out, Py_ssize_t max_records) {
    if (split_words(line, len, &st->words, &st->nwords, &st->cap) < 0)
        return ERROR;
    Py_ssize_t nw = st->nwords;
    Span *w = st->words;
    if (nw == 0)
        return OK;
    if (w[0].p[0] == '$' && !is_space(line[0])) {
        char d[8] = {0};
        if (w[0].len > 7 || nw != 2)
            return UNUSUAL;
        for (Py_ssize_t i = 0; i < w[0].len; i++)
            d[i] = upper(w[0].p[i]);
        PyObject *word = text_of(w[1]);
        if (word == NULL)
            return ERROR;
        int rc = OK;
        if (strcmp(d, "$TTL") == 0) {
            PyObject *got = PyObject_CallOneArg(r->env[E_TTLSTRICT], word);
            if (got == NULL)
                rc = failed(r);
            else {
                st->default_ttl = PyLong_AsLongLong(got);
                st->default_known = 1;
                st->default_from_soa = 0;
                Py_DECREF(got);
                rc = PyErr_Occurred() ? ERROR : OK;
            }
        } else if (strcmp(d, "$ORIGIN") == 0) {
            PyObject *got = PyObject_CallFunctionObjArgs(r->env[E_ORIGIN], word, r->current, NULL);
            if (got == NULL)
                rc = failed(r);
            else {
                rc = set_current(r, got);
                Py_DECREF(got);
            }
        } else
            rc = UNUSUAL;
        Py_DECREF(word);
        return rc;
    }
    Py_ssize_t at;
    if (is_space(line[0]))
        at = 0;
    else {
        PyObject *name;
        int rc = name_of(r, w[0], &name);
        if (rc != OK)
            return rc;
        Py_SETREF(st->last_name, name);
        at = 1;
    }
    long long ttl = 0;
    int none = 1;
    if (at < nw) {
        int rc = ttl_word(r, w[at], &ttl, &none);
        if (rc != OK)
            return rc;
        if (!none)
            at++;
    }
    if (at < nw && w[at].len == 2 && upper(w[at].p[0]) == 'I' &&
        upper(w[at].p[1]) == 'N')
        at++;
    if (none && at < nw) {
        int rc = ttl_word(r, w[at], &ttl, &none);
        if (rc != OK)
            return rc;
        if (!none)
            at++;
    }
    if (!none) {
        st->last_ttl = ttl;
        st->last_ttl_known = 1;
    }
    if (at >= nw)
        return UNUSUAL;
    /* The type. */
    long rdtype;
    {
        PyObject *word = text_of(w[at]);
        if (word == NULL)
            return ERROR;
        PyObject *got = PyDict_GetItemWithError(r->env[E_TYPECACHE], word);
        if (got != NULL)
            Py_INCREF(got);
        else if (PyErr_Occurred()) {
            Py_DECREF(word);
            return ERROR;
        } else {
            got = PyObject_CallOneArg(r->env[E_RDTYPE], word);
            if (got == NULL) {
                Py_DECREF(word);
                return failed(r);
            }
        }
        Py_DECREF(word);
        rdtype = PyLong_AsLong(got);
        Py_DECREF(got);
        if (rdtype == -1 && PyErr_Occurred())
            return ERROR;
    }
    if (rdtype > 255 && w[at].len >= 4 && upper(w[at].p[0]) == 'T' &&
        upper(w[at].p[1]) == 'Y' && upper(w[at].p[2]) == 'P' && upper(w[at].p[3]) == 'E')
        return UNUSUAL; /* generic syntax is for dnspython */
    Span *rest = w + at + 1;
    Py_ssize_t nrest = nw - at - 1;
    const char *data = w[at].p + w[at].len; /* _data_start: just past the type */
    Py_ssize_t data_len = line + len - data;
    PyObject *rd = NULL;
    int rc = OK;
    if (rdtype == 1 && nrest == 1) {
        PyObject *v[1] = {NULL};
        rc = address(r, rest[0], AF_INET, &v[0]);
        if (rc != OK)
            return rc;
        rd = rdata_of(r, T_A, v, 1);
    } else if (rdtype == 28 && nrest == 1) {
        PyObject *v[1] = {NULL};
        rc = address(r, rest[0], AF_INET6, &v[0]);
        if (rc != OK)
            return rc;
        rd = rdata_of(r, T_AAAA, v, 1);
    } else if ((rdtype == 2 || rdtype == 5 || rdtype == 12) && nrest == 1) {
        PyObject *v[1] = {NULL};
        rc = name_of(r, rest[0], &v[0]);
        if (rc != OK)
            return rc;
        rd = rdata_of(r, rdtype == 2 ? T_NS : rdtype == 5 ? T_CNAME : T_PTR, v, 1);
    } else if (rdtype == 15 && nrest == 2) {
        long pref = uint_field(rest[0], 65535);
        if (pref < 0)
            return UNUSUAL;
        PyObject *v[2] = {PyLong_FromLong(pref), NULL};
        if (v[0] == NULL)
            return ERROR;
        rc = name_of(r, rest[1], &v[1]);
        if (rc != OK) {
            Py_XDECREF(v[0]);
            return rc;
        }
        rd = rdata_of(r, T_MX, v, 2);
    } else if (rdtype == 33 && nrest == 4) {
        long f[3];
        for (int i = 0; i < 3; i++)
            if ((f[i] = uint_field(rest[i], 65535)) < 0)
                return UNUSUAL;
        PyObject *v[4] = {PyLong_FromLong(f[0]), PyLong_FromLong(f[1]), PyLong_FromLong(f[2]), NULL};
        rc = v[0] && v[1] && v[2] ? name_of(r, rest[3], &v[3]) : ERROR;
        if (rc != OK) {
            for (int i = 0; i < 3; i++)
                Py_XDECREF(v[i]);
            return rc;
        }
        rd = rdata_of(r, T_SRV, v, 4);
    } else if (rdtype == 6 && nrest == 7 && all_digits(rest[2]) && all_digits(rest[3]) &&
               all_digits(rest[4]) && all_digits(rest[5]) && all_digits(rest[6])) {
        /* The serial (32 bits) and four TTLs (at most 2**32 - 1 too) in digits; TTLs with
         * units go the Python way. */
        PyObject *v[7] = {NULL};
        for (int i = 0; i < 5; i++) {
            long long f = uint_field(rest[2 + i], 4294967295L);
            if (f < 0)
                goto soa_unusual;
            if ((v[2 + i] = PyLong_FromLongLong(f)) == NULL)
                goto soa_error;
        }
        if ((rc = name_of(r, rest[0], &v[0])) != OK || (rc = name_of(r, rest[1], &v[1])) != OK)
            goto soa_out;
        rd = rdata_of(r, T_SOA, v, 7);
        goto soa_done;
    soa_unusual:
        rc = UNUSUAL;
        goto soa_out;
    soa_error:
        rc = ERROR;
    soa_out:
        for (int i = 0; i < 7; i++)
            Py_XDECREF(v[i]);
        return rc;
    soa_done:;
    } else {
        PyObject *strings = NULL;
        if (rdtype == 16) {
            rc = quoted_only(data, data_len, &strings);
            if (rc != OK)
                return rc;
        }
        if (strings != NULL) {
            PyObject *v[1] = {strings};
            rd = rdata_of(r, T_TXT, v, 1);
        } else {
            /* Everything else: the Python loop's own branches (zonefile._other_rdata). */
            PyObject *text = PyUnicode_FromStringAndSize(line, len);
            PyObject *words = PyList_New(nw);
            PyObject *at_o = PyLong_FromSsize_t(at), *type_o = PyLong_FromLong(rdtype);
            if (text == NULL || words == NULL || at_o == NULL || type_o == NULL)
                goto other_fail;
            for (Py_ssize_t i = 0; i < nw; i++) {
                PyObject *x = text_of(w[i]);
                if (x == NULL)
                    goto other_fail;
                PyList_SET_ITEM(words, i, x);
            }
            rd = PyObject_CallFunctionObjArgs(r->env[E_OTHER], text, words, at_o, type_o, r->current, NULL);
            if (rd == NULL)
                rc = failed(r);
        other_fail:
            Py_XDECREF(text);
            Py_XDECREF(words);
            Py_XDECREF(at_o);
            Py_XDECREF(type_o);
            if (rd == NULL)
                return rc != OK ? rc : ERROR;
        }
    }
    if (rd == NULL)
        return ERROR;
    if (none) {
        if (st->last_ttl_known && (!st->default_known || st->default_from_soa)) {
            ttl = st->last_ttl;
            none = 0;
        } else if (st->default_known) {
            ttl = st->default_ttl;
            none = 0;
        }
    }
    if (!st->default_known && rdtype == 6) {
        PyObject *minimum = PyObject_GetAttrString(rd, "minimum");
        if (minimum == NULL) {
            Py_DECREF(rd);
            return failed(r);
        }
        st->default_ttl = PyLong_AsLongLong(minimum);
        Py_DECREF(minimum);
        if (PyErr_Occurred()) {
            Py_DECREF(rd);
            return ERROR;
        }
        st->default_known = st->default_from_soa = 1;
        if (none) {
            ttl = st->last_ttl_known ? st->last_ttl : st->default_ttl;
            none = 0;
        }
    }
    if (none || PyList_GET_SIZE(out) >= max_records) {
        Py_DECREF(rd);
        return UNUSUAL;
    }
    if (PyList_GET_SIZE(out) % 1024 == 0 && r->env[E_CANCEL] != Py_None) {
        PyObject *got = PyObject_CallNoArgs(r->env[E_CANCEL]);
        if (got == NULL) {
            Py_DECREF(rd);
            return ERROR;
        }
        Py_DECREF(got);
    }
    PyObject *item = PyTuple_New(4);
    PyObject *ttl_o = PyLong_FromLongLong(ttl), *num_o = PyLong_FromLong(number);
    if (item == NULL || ttl_o == NULL || num_o == NULL) {
        Py_XDECREF(item);
        Py_XDECREF(ttl_o);
        Py_XDECREF(num_o);
        Py_DECREF(rd);
        return ERROR;
    }
    Py_INCREF(st->last_name);
    PyTuple_SET_ITEM(item, 0, st->last_name);
    PyTuple_SET_ITEM(item, 1, ttl_o);
    PyTuple_SET_ITEM(item, 2, rd);
    PyTuple_SET_ITEM(item, 3, num_o);
    rc = PyList_Append(out, item) < 0 ? ERROR : OK;
    Py_DECREF(item);
    return rc;
}

/* The line of ``text`` (``n`` octets) at *pos, its comment cut off (*len: what is left;
 * *rc: UNUSUAL for a string left open); *pos moves past it and *number counts it. */
static const char *next_line(const char *text, Py_ssize_t n, Py_ssize_t *pos, long *number,
                             Py_ssize_t *len, int *rc) {
    const char *line = text + *pos;
    const char *nl = memchr(line, '\n', n - *pos);
    Py_ssize_t raw = nl ? nl - line : n - *pos;
    *pos += raw + 1;
    (*number)++;
    *rc = strip_comment(line, raw, len);
    return line;
}

static PyObject *read_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 5 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[4]) ||
        PyTuple_GET_SIZE(args[4]) != E_COUNT || !PyUnicode_IS_ASCII(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "read_records(ascii_text, origin, current, max_records, env)");
        return NULL;
    }
    Py_ssize_t max_records = PyLong_AsSsize_t(args[3]);
    if (max_records == -1 && PyErr_Occurred())
        return NULL;
    Reader r = {0};
    r.env = &PyTuple_GET_ITEM(args[4], 0);
    PyObject *types = r.env[E_TYPES];
    if (!PyTuple_Check(types) || PyTuple_GET_SIZE(types) != T_COUNT || !PyDict_Check(r.env[E_TYPECACHE])) {
        PyErr_SetString(PyExc_TypeError, "read_records: env's types");
        return NULL;
    }
    for (int k = 0; k < T_COUNT; k++) {
        PyObject *t = PyTuple_GET_ITEM(types, k);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            PyErr_SetString(PyExc_TypeError, "read_records: env's types");
            return NULL;
        }
        for (int j = 0; j < 3; j++)
            r.types[k][j] = PyTuple_GET_ITEM(t, j);
    }
    const char *text = (const char *)PyUnicode_DATA(args[0]);
    Py_ssize_t n = PyUnicode_GET_LENGTH(args[0]);
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == 0) {
            PyErr_SetString(PyExc_ValueError, "read_records: a text with a NUL (the Python loop's)");
            return NULL;
        }
        if (c == '\\' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1f))
            Py_RETURN_NONE; /* dnspython separates words by spaces and tabs only */
    }
    PyObject *out = PyList_New(0);
    r.names = PyDict_New();
    State st = {0};
    Buf joined = {0};
    st.cap = 16;
    st.words = PyMem_Malloc(st.cap * sizeof(Span));
    int rc = OK;
    if (out == NULL || r.names == NULL || st.words == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        rc = ERROR;
        goto done;
    }
    Py_INCREF(args[1]);
    st.last_name = args[1];
    if ((rc = set_current(&r, args[2])) != OK)
        goto done;
    Py_ssize_t pos = 0, logical = 0;
    long number = 0;
    while (pos <= n && rc == OK) {
        if (++logical % YIELD_EVERY == 0 && yield_gil() < 0) {
            rc = ERROR;
            break;
        }
        Py_ssize_t len;
        const char *line = next_line(text, n, &pos, &number, &len, &rc);
        long first = number;
        if (rc != OK)
            break;
        if (find(line, len, '(') || find(line, len, ')')) {
            const char *open = find(line, len, '(');
            const char *close = find(line, len, ')');
            if (find(line, len, '"') || count_of(line, len, '(') != 1 || (close && close < open)) {
                rc = UNUSUAL;
                break;
            }
            joined.len = 0;
            if (buf_put(&joined, line, len) < 0) {
                rc = ERROR;
                break;
            }
            joined.data[open - line] = ' ';
            Py_ssize_t last = 0; /* where the last part starts in ``joined`` */
            while (!find(joined.data + last, joined.len - last, ')')) {
                if (pos > n) {
                    rc = UNUSUAL;
                    break;
                }
                Py_ssize_t len2;
                const char *next = next_line(text, n, &pos, &number, &len2, &rc);
                if (rc != OK)
                    break;
                if (find(next, len2, '(') || find(next, len2, '"')) {
                    rc = UNUSUAL;
                    break;
                }
                if (buf_put(&joined, " ", 1) < 0 || buf_put(&joined, next, len2) < 0) {
                    rc = ERROR;
                    break;
                }
                last = joined.len - len2;
            }
            if (rc != OK)
                break;
            const char *lp = joined.data + last;
            Py_ssize_t ll = joined.len - last;
            if (count_of(lp, ll, ')') != 1) {
                rc = UNUSUAL;
                break;
            }
            char *c = (char *)find(lp, ll, ')');
            for (const char *q = c + 1; q < lp + ll; q++)
                if (!is_space(*q)) {
                    rc = UNUSUAL;
                    break;
                }
            if (rc != OK)
                break;
            *c = ' ';
            rc = read_line(&r, &st, joined.data, joined.len, first, out, max_records);
        } else {
            rc = read_line(&r, &st, line, len, first, out, max_records);
        }
    }
done:
    PyMem_Free(st.words);
    PyMem_Free(joined.data);
    Py_XDECREF(st.last_name);
    Py_XDECREF(r.current);
    Py_XDECREF(r.current_labels);
    Py_XDECREF(r.current_text);
    Py_XDECREF(r.names);
    if (rc == OK)
        return out;
    Py_XDECREF(out);
    if (rc == UNUSUAL)
        Py_RETURN_NONE;
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_SystemError, "read_records failed without an exception");
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * group_records(records, owners, lines, rrset_cls, record_cls, join, check_cancel):
 * ``zonefile.group``'s loop in C. Each (name, ttl, rdata, line) of ``records`` starts an
 * RRset (``rrset_cls(name, rdtype, ttl, [record_cls(rdata)])``, made as their dataclass
 * __init__ makes them) in ``owners[name][rdtype]``, with its line in ``lines[(name,
 * rdtype)]`` (unless ``lines`` is None: zonefile.RecordLines finds them in the records
 * when asked); a record whose RRset is already there goes to ``join(name, rdtype, ttl,
 * rdata, line, rrset)`` (duplicates, TTL differences: Python). check_cancel (or None) is
 * called before every 65,536th record.
 * ------------------------------------------------------------------------------------- */
static PyObject *s_name, *s_ttl, *s_records, *s_rdata, *s_disabled;

static PyObject *new_rrset(PyObject *rrset_cls, PyObject *record_cls, PyObject *name,
                           PyObject *rdtype, PyObject *ttl, PyObject *rdata) {
    PyObject *record = new_of(record_cls);
    if (record == NULL)
        return NULL;
    if (set(record, s_rdata, rdata) < 0 || set(record, s_disabled, Py_False) < 0) {
        Py_DECREF(record);
        return NULL;
    }
    PyObject *list = PyList_New(1);
    if (list == NULL) {
        Py_DECREF(record);
        return NULL;
    }
    PyList_SET_ITEM(list, 0, record);
    PyObject *rrset = new_of(rrset_cls);
    if (rrset == NULL || set(rrset, s_name, name) < 0 || set(rrset, s_rdtype, rdtype) < 0 ||
        set(rrset, s_ttl, ttl) < 0 || set(rrset, s_records, list) < 0) {
        Py_XDECREF(rrset);
        rrset = NULL;
    }
    Py_DECREF(list);
    return rrset;
}

static PyObject *group_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyDict_Check(args[1]) || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_SetString(PyExc_TypeError, "group_records(records, owners, lines, rrset_cls, "
                                         "record_cls, join, check_cancel)");
        return NULL;
    }
    PyObject *owners = args[1], *lines = args[2], *rrset_cls = args[3], *record_cls = args[4];
    PyObject *join = args[5], *cancel = args[6];
    PyObject *it = PyObject_GetIter(args[0]);
    if (it == NULL)
        return NULL;
    PyObject *item;
    Py_ssize_t i = 0;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *rdtype = NULL, *key = NULL, *rrset = NULL;
        int ok = 0;
        if (i % YIELD_EVERY == YIELD_EVERY - 1 && yield_gil() < 0)
            goto next;
        if (i++ % 65536 == 0 && cancel != Py_None) {
            PyObject *got = PyObject_CallNoArgs(cancel);
            if (got == NULL)
                goto next;
            Py_DECREF(got);
        }
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 4) {
            PyErr_SetString(PyExc_TypeError, "group_records: (name, ttl, rdata, line) tuples");
            goto next;
        }
        PyObject *name = PyTuple_GET_ITEM(item, 0), *ttl = PyTuple_GET_ITEM(item, 1);
        PyObject *rdata = PyTuple_GET_ITEM(item, 2), *line = PyTuple_GET_ITEM(item, 3);
        {
            PyObject *enum_ = PyObject_GetAttr(rdata, s_rdtype);
            if (enum_ == NULL)
                goto next;
            rdtype = PyNumber_Long(enum_); /* int(rdata.rdtype) */
            Py_DECREF(enum_);
            if (rdtype == NULL)
                goto next;
        }
        PyObject *types = PyDict_GetItemWithError(owners, name);
        if (types == NULL && PyErr_Occurred())
            goto next;
        if (types != NULL) {
            PyObject *existing = PyDict_GetItemWithError(types, rdtype);
            if (existing != NULL) {
                PyObject *got = PyObject_CallFunctionObjArgs(join, name, rdtype, ttl, rdata, line,
                                                             existing, NULL);
                if (got == NULL)
                    goto next;
                Py_DECREF(got);
                ok = 1;
                goto next;
            }
            if (PyErr_Occurred())
                goto next;
        }
        rrset = new_rrset(rrset_cls, record_cls, name, rdtype, ttl, rdata);
        if (rrset == NULL)
            goto next;
        if (types == NULL) {
            PyObject *fresh = PyDict_New();
            if (fresh == NULL || PyDict_SetItem(fresh, rdtype, rrset) < 0 ||
                PyDict_SetItem(owners, name, fresh) < 0) {
                Py_XDECREF(fresh);
                goto next;
            }
            Py_DECREF(fresh);
        } else if (PyDict_SetItem(types, rdtype, rrset) < 0)
            goto next;
        if (lines != Py_None) {
            key = PyTuple_Pack(2, name, rdtype);
            if (key == NULL || PyDict_SetItem(lines, key, line) < 0)
                goto next;
        }
        ok = 1;
    next:
        Py_XDECREF(key);
        Py_XDECREF(rrset);
        Py_XDECREF(rdtype);
        Py_DECREF(item);
        if (!ok) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------
 * unplain(owners, origin_labels, deep, plain, txt, cname, room, max_ttl, content, targets,
 * sized): the owners of
 * ``owners`` (an iterable of (name, {type: RRsetData})) that ``validate.check`` must look at
 * in Python, as a list of those pairs; the others certainly have nothing to report, and
 * are most of a large zone (validate.py's Python loop took ~2.5 us an owner). An owner is
 * left out only when:
 *   - its labels end with the origin's (the same objects, or equal in ASCII case), and it
 *     is a child of the apex, or ``deep`` is true (there are no zone cuts below which it
 *     could be), or it holds only A and AAAA RRsets (keyed by their type: which are never
 *     reported below a cut);
 *   - each of its RRsets has a type of ``plain`` (a dict: type -> the longest RDATA of
 *     that type), ``txt`` (its size worked out from its strings) or ``cname`` (alone at
 *     the owner, one record), a TTL within 0..max_ttl, and a size (12 octets a record plus
 *     its RDATA, plus the owner's wire length) within ``room``, where the bound is taken
 *     for ``plain`` types as validate.py takes it; or a type of ``targets`` (a dict: type ->
 *     (the rdata's target attribute, the longest RDATA): MX, SRV), sized by that bound, whose
 *     every target is outside the zone or an owner of ``content`` (the content's dict of
 *     owners) with no CNAME; or a type of ``sized`` (a dict: type -> (octets, attributes):
 *     CAA, SSHFP), each record's RDATA that many octets plus the lengths of those bytes
 *     attributes;
 * Anything else (an attribute of another kind, a label that is not bytes) sends the owner
 * to Python, which decides; validate.py's Python loop stays the reference
 * (tests/unit/zones/test_validate.py holds the two to each other). */
static PyObject *s_strings;

static int same_label(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    if (!PyBytes_Check(a) || !PyBytes_Check(b)) return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(a);
    if (n != PyBytes_GET_SIZE(b)) return 0;
    const unsigned char *x = (const unsigned char *)PyBytes_AS_STRING(a);
    const unsigned char *y = (const unsigned char *)PyBytes_AS_STRING(b);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = x[i], d = y[i];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (d >= 'A' && d <= 'Z') d += 32;
        if (c != d) return 0;
    }
    return 1;
}

/* 1: nothing to report at this RRset (given what owner_plain checks); 0: Python decides;
 * -1: error. *size_out gets its size without the owner. */
typedef struct {
    PyObject *origin_labels, *content, *targets, *sized;
} Zone;

/* 1: ``name`` (an rdata's target) is outside the zone, or an owner with no CNAME or not an
 * owner; 0: it may be a CNAME, Python decides; -1: error. */
static int target_plain(const Zone *z, PyObject *name, long cname) {
    PyObject *labels = PyObject_GetAttr(name, s_labels);
    if (!labels) return -1;
    int ok = 0;
    if (!PyTuple_Check(labels)) goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(labels), o = PyTuple_GET_SIZE(z->origin_labels);
    int inside = n >= o;
    for (Py_ssize_t i = 0; i < o && inside; i++)
        inside = same_label(PyTuple_GET_ITEM(labels, n - o + i), PyTuple_GET_ITEM(z->origin_labels, i));
    if (!inside) {  /* (a label that is not bytes reads as not the same: Python decides) */
        for (Py_ssize_t i = 0; i < n; i++)
            if (!PyBytes_Check(PyTuple_GET_ITEM(labels, i))) goto done;
        ok = 1;
        goto done;
    }
    PyObject *types = PyDict_GetItemWithError(z->content, name);
    if (types == NULL) {
        ok = PyErr_Occurred() ? -1 : 1;
        goto done;
    }
    if (!PyDict_Check(types)) goto done;
    PyObject *key = PyLong_FromLong(cname);
    if (!key) {
        ok = -1;
        goto done;
    }
    PyObject *found = PyDict_GetItemWithError(types, key);
    Py_DECREF(key);
    ok = found != NULL ? 0 : PyErr_Occurred() ? -1 : 1;
done:
    Py_DECREF(labels);
    return ok;
}

/* The length of a bytes attribute of ``rd`` (a new length, or -1: not bytes; -2: error). */
static Py_ssize_t bytes_len(PyObject *rd, PyObject *attr) {
    PyObject *v = PyObject_GetAttr(rd, attr);
    if (!v) return -2;
    Py_ssize_t n = PyBytes_Check(v) ? PyBytes_GET_SIZE(v) : -1;
    Py_DECREF(v);
    return n;
}

static int rrset_plain(PyObject *rrset, const Zone *z, PyObject *plain, long txt, long cname,
                       int alone, long long max_ttl, long long *size_out) {
    int ok = 0;
    PyObject *t = PyObject_GetAttr(rrset, s_rdtype), *ttl = NULL, *records = NULL;
    if (!t) return -1;
    if (!PyLong_Check(t)) goto done;
    long rdtype = PyLong_AsLong(t);
    if (rdtype == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        goto done;
    }
    ttl = PyObject_GetAttr(rrset, s_ttl);
    if (!ttl) goto error;
    if (!PyLong_Check(ttl)) goto done;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(ttl, &overflow);
    if (v == -1 && PyErr_Occurred()) goto error;
    if (overflow || v < 0 || v > max_ttl) goto done;
    records = PyObject_GetAttr(rrset, s_records);
    if (!records) goto error;
    if (!PyList_Check(records)) goto done;
    Py_ssize_t n = PyList_GET_SIZE(records);
    if (rdtype == cname) {  /* alone at its owner, one record: its RDATA is one name */
        if (alone && n == 1) {
            *size_out = 12 + 255;
            ok = 1;
        }
        goto done;
    }
    PyObject *bound = PyDict_GetItemWithError(plain, t);
    if (bound) {
        long b = PyLong_AsLong(bound);
        if (b == -1 && PyErr_Occurred()) goto error;
        *size_out = (long long)n * (12 + b);
        ok = 1;
    } else if (PyErr_Occurred()) {
        goto error;
    } else if ((bound = PyDict_GetItemWithError(z->targets, t)) != NULL) {
        /* MX, SRV: (target attribute, longest RDATA) */
        if (!PyTuple_Check(bound) || PyTuple_GET_SIZE(bound) != 2) goto done;
        long b = PyLong_AsLong(PyTuple_GET_ITEM(bound, 1));
        if (b == -1 && PyErr_Occurred()) goto error;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *rd = PyObject_GetAttr(PyList_GET_ITEM(records, i), s_rdata);
            if (!rd) goto error;
            PyObject *target = PyObject_GetAttr(rd, PyTuple_GET_ITEM(bound, 0));
            Py_DECREF(rd);
            if (!target) goto error;
            int r = target_plain(z, target, cname);
            Py_DECREF(target);
            if (r < 0) goto error;
            if (r == 0) goto done;
        }
        *size_out = (long long)n * (12 + b);
        ok = 1;
    } else if (PyErr_Occurred()) {
        goto error;
    } else if ((bound = PyDict_GetItemWithError(z->sized, t)) != NULL) {
        /* CAA, SSHFP: (octets, (bytes attributes...)) */
        if (!PyTuple_Check(bound) || PyTuple_GET_SIZE(bound) != 2 ||
            !PyTuple_Check(PyTuple_GET_ITEM(bound, 1)))
            goto done;
        long fixed = PyLong_AsLong(PyTuple_GET_ITEM(bound, 0));
        if (fixed == -1 && PyErr_Occurred()) goto error;
        PyObject *attrs = PyTuple_GET_ITEM(bound, 1);
        long long size = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *rd = PyObject_GetAttr(PyList_GET_ITEM(records, i), s_rdata);
            if (!rd) goto error;
            size += 12 + fixed;
            int bad = 0;
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(attrs) && !bad; j++) {
                Py_ssize_t len = bytes_len(rd, PyTuple_GET_ITEM(attrs, j));
                if (len == -2) {
                    Py_DECREF(rd);
                    goto error;
                }
                bad = len < 0;
                size += len;
            }
            Py_DECREF(rd);
            if (bad) goto done;
        }
        *size_out = size;
        ok = 1;
    } else if (PyErr_Occurred()) {
        goto error;
    } else if (rdtype == txt) {
        long long size = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
            PyObject *rd = PyObject_GetAttr(PyList_GET_ITEM(records, i), s_rdata);
            if (!rd) goto error;
            PyObject *strings = PyObject_GetAttr(rd, s_strings);
            Py_DECREF(rd);
            if (!strings) goto error;
            int bad = !PyTuple_Check(strings);
            if (!bad) {
                size += 12 + PyTuple_GET_SIZE(strings);
                for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(strings) && !bad; j++) {
                    PyObject *one = PyTuple_GET_ITEM(strings, j);
                    bad = !PyBytes_Check(one);
                    if (!bad) size += PyBytes_GET_SIZE(one);
                }
            }
            Py_DECREF(strings);
            if (bad) goto done;
        }
        *size_out = size;
        ok = 1;
    }
    goto done;
error:
    ok = -1;
done:
    Py_DECREF(t);
    Py_XDECREF(ttl);
    Py_XDECREF(records);
    return ok;
}

/* 1: nothing to report at this owner; 0: Python decides; -1: error. */
static int owner_plain(PyObject *name, PyObject *types, const Zone *z, int deep,
                       PyObject *plain, long txt, long cname, long long room, long long max_ttl) {
    PyObject *origin_labels = z->origin_labels;
    if (!PyDict_Check(types)) return 0;
    PyObject *labels = PyObject_GetAttr(name, s_labels);
    if (!labels) return -1;
    int ok = 0;
    if (!PyTuple_Check(labels)) goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(labels), o = PyTuple_GET_SIZE(origin_labels);
    if (n < o + 1) goto done;
    /* below a zone cut, only address records (glue) have nothing to report */
    int glue_only = n > o + 1 && !deep;
    for (Py_ssize_t i = 0; i < o; i++)
        if (!same_label(PyTuple_GET_ITEM(labels, n - o + i), PyTuple_GET_ITEM(origin_labels, i)))
            goto done;
    long long owner_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *l = PyTuple_GET_ITEM(labels, i);
        if (!PyBytes_Check(l)) goto done;
        owner_len += 1 + PyBytes_GET_SIZE(l);
    }
    int alone = PyDict_GET_SIZE(types) == 1;
    Py_ssize_t pos = 0;
    PyObject *key, *rrset;
    while (PyDict_Next(types, &pos, &key, &rrset)) {
        long long size = 0;
        if (glue_only) {
            long k = PyLong_Check(key) ? PyLong_AsLong(key) : -1;
            if (k == -1 && PyErr_Occurred()) PyErr_Clear();
            if (k != 1 && k != 28) goto done;  /* A, AAAA */
        }
        Py_INCREF(rrset);  /* held across attribute reads, which may run Python code */
        int r = rrset_plain(rrset, z, plain, txt, cname, alone, max_ttl, &size);
        Py_DECREF(rrset);
        if (r <= 0) {
            ok = r;
            goto done;
        }
        if (size + owner_len > room) goto done;
    }
    ok = 1;
done:
    Py_DECREF(labels);
    return ok;
}

static PyObject *unplain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "unplain(owners, origin_labels, deep, plain, txt, cname, "
                                         "room, max_ttl, content, targets, sized)");
        return NULL;
    }
    PyObject *origin_labels = args[1], *plain = args[3];
    Zone z = {origin_labels, args[8], args[9], args[10]};
    if (!PyTuple_Check(origin_labels) || !PyDict_Check(plain) || !PyDict_Check(z.content) ||
        !PyDict_Check(z.targets) || !PyDict_Check(z.sized)) {
        PyErr_SetString(PyExc_TypeError, "origin_labels is a tuple; plain, content, targets and "
                                         "sized dicts");
        return NULL;
    }
    int deep = PyObject_IsTrue(args[2]);
    long txt = PyLong_AsLong(args[4]), cname = PyLong_AsLong(args[5]);
    long long room = PyLong_AsLongLong(args[6]), max_ttl = PyLong_AsLongLong(args[7]);
    if (deep < 0 || PyErr_Occurred()) return NULL;
    PyObject *it = PyObject_GetIter(args[0]);
    if (!it) return NULL;
    PyObject *out = PyList_New(0), *item;
    if (!out) {
        Py_DECREF(it);
        return NULL;
    }
    Py_ssize_t seen = 0;
    while ((item = PyIter_Next(it))) {
        int r = 0;
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2)
            r = owner_plain(PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), &z,
                            deep, plain, txt, cname, room, max_ttl);
        if (r == 0) r = PyList_Append(out, item) < 0 ? -1 : 0;
        Py_DECREF(item);
        if (r < 0 || (++seen % (YIELD_EVERY * 16) == 0 && yield_gil() < 0)) {
            Py_DECREF(it);
            Py_DECREF(out);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* presized(n): an empty dict with room for n keys (_PyDict_NewPresized): the grouping's
 * owners, so that a million-owner dict is not copied by its last resizes (~50 ms each,
 * without a GIL switch). */
static PyObject *presized(PyObject *self, PyObject *arg) {
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    return _PyDict_NewPresized(n < 0 ? 0 : n);
}

static PyMethodDef methods[] = {
    {"presized", presized, METH_O, "presized(n) -> an empty dict with room for n keys."},
    {"name_slots", (PyCFunction)(void (*)(void))name_slots, METH_FASTCALL,
     "name_slots(cls, labels, hash, key, fallbacks, key_of): bind NameSlots to cls (see above)."},
    {"name_hash", name_hash, METH_O,
     "name_hash(labels) -> int: hash(dns.name.Name(labels)) on a 64-bit build (hash modulus 2**61 - 1)."},
    {"make_name", (PyCFunction)(void (*)(void))make_name, METH_FASTCALL,
     "make_name(cls, value, origin_labels, origin_text) -> cls instance, or None: see the file's head."},
    {"make_rdata", (PyCFunction)(void (*)(void))make_rdata, METH_FASTCALL,
     "make_rdata(cls, rdclass, rdtype, keys, *values) -> an rdata of cls with those fields."},
    {"read_records", (PyCFunction)(void (*)(void))read_records, METH_FASTCALL,
     "read_records(ascii_text, origin, current, max_records, env) -> list | None: zonefile._fast_records' loop."},
    {"unplain", (PyCFunction)(void (*)(void))unplain, METH_FASTCALL,
     "unplain(owners, origin_labels, deep, plain, txt, cname, room, max_ttl, content, targets, sized) -> the owners validate.check looks at."},
    {"group_records", (PyCFunction)(void (*)(void))group_records, METH_FASTCALL,
     "group_records(records, owners, lines, rrset_cls, record_cls, join, check_cancel): zonefile.group's loop."},
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
    s_name = PyUnicode_InternFromString("name");
    s_ttl = PyUnicode_InternFromString("ttl");
    s_records = PyUnicode_InternFromString("records");
    s_rdata = PyUnicode_InternFromString("rdata");
    s_disabled = PyUnicode_InternFromString("disabled");
    s_strings = PyUnicode_InternFromString("strings");
    if (!s_name || !s_ttl || !s_records || !s_rdata || !s_disabled || !s_strings)
        return NULL;
    PyObject *scope = PyDict_New();
    if (!scope || PyDict_SetItemString(scope, "__builtins__", PyEval_GetBuiltins()) < 0)
        return NULL;
    breather = PyRun_String("lambda: None", Py_eval_input, scope, scope);
    Py_DECREF(scope);
    if (!breather)
        return NULL;
    empty_tuple = PyTuple_New(0);
    if (!s_labels || !s_hash || !s_text || !s_wire || !s_key || !s_rdclass || !s_rdtype ||
        !s_rdcomment || !empty_tuple)
        return NULL;
    if (PyType_Ready(&NameSlotsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&NameSlotsType);
    if (PyModule_AddObject(m, "NameSlots", (PyObject *)&NameSlotsType) < 0) {
        Py_DECREF(&NameSlotsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
