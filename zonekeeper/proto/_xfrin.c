/*
 * The answer section of an inbound transfer message, read in C: zonekeeper/proto/xfrin.py
 * explains the form (``_parse``: one (owner key, type, TTL, RR) tuple per record, the RR
 * in blob form C0 0C TYPE CLASS TTL RDLEN RDATA with the names inside the RDATA written
 * out in full). This file does what that loop does, record for record and with the same
 * checks; the Python loop stays as the reference (a build without a C compiler uses it,
 * and tests/unit/test_xfrin.py holds the two to the same answers and errors).
 *
 * Every error is made by a Python callable, fail(kind, rdtype, value), which returns the
 * exception to raise, so the messages are written once, in xfrin.py. RDATA of a type this
 * file has no layout for goes to another callable, other(wire, pos, end, rdtype), which
 * returns the RDATA to store (or raises).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define NAME_MAX_WIRE 255
#define MAX_HOPS 128  /* compression pointers followed for one name */

/* Error kinds: the strings fail() receives. */
#define E_PTR "ptr"
#define E_LABEL "label"
#define E_LONG "long"
#define E_HOPS "hops"
#define E_TRUNC "trunc"
#define E_PAST "past"
#define E_CLASS "class"
#define E_ZONE "zone"
#define E_FIXED "fixed"
#define E_TXT "txt"
#define E_HEAD "head"
#define E_SSHFP "sshfp"
#define E_CAA "caa"
#define E_META "meta"
#define E_OVER "over"
#define E_TRAIL "trailing"

typedef struct {
    const unsigned char *w;
    Py_ssize_t n;
    PyObject *wire;
    PyObject *fail;
} Ctx;

static void raise_kind(Ctx *c, const char *kind, int rdtype, PyObject *value) {
    PyObject *exc = PyObject_CallFunction(c->fail, "siO", kind, rdtype, value ? value : Py_None);
    if (exc == NULL)
        return;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

static void raise_int(Ctx *c, const char *kind, int rdtype, long value) {
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL)
        return;
    raise_kind(c, kind, rdtype, v);
    Py_DECREF(v);
}

/* The name at *pos written out in full into out (at most 255 octets); *pos moves past it.
 * Returns its length, or -1 with an exception set. Pointers must point backwards (before
 * where this name began, and before each pointer followed), as in xfrin._name. */
static int read_name(Ctx *c, Py_ssize_t *pos, unsigned char *out) {
    Py_ssize_t p = *pos, start = *pos, after = -1;
    int len = 0, hops = 0;
    for (;;) {
        if (p >= c->n) {
            raise_kind(c, E_TRUNC, 0, NULL);
            return -1;
        }
        unsigned int b = c->w[p];
        if (b == 0) {
            if (len < NAME_MAX_WIRE)
                out[len] = 0;
            len++;
            if (after < 0)
                after = p + 1;
            break;
        }
        if (b < 64) {
            if (p + 1 + b >= c->n) {
                raise_kind(c, E_TRUNC, 0, NULL);
                return -1;
            }
            /* Past 255 octets nothing more is copied; the name is refused once read
             * whole (a bad pointer further on is the error then, as in xfrin._name). */
            if (len + 1 + (int)b <= NAME_MAX_WIRE)
                memcpy(out + len, c->w + p, b + 1);
            len += b + 1;
            p += b + 1;
            continue;
        }
        if (b < 0xC0) {
            raise_kind(c, E_LABEL, 0, NULL);
            return -1;
        }
        if (p + 1 >= c->n) {
            raise_kind(c, E_TRUNC, 0, NULL);
            return -1;
        }
        Py_ssize_t ptr = ((b & 0x3F) << 8) | c->w[p + 1];
        if (ptr >= start) {
            raise_kind(c, E_PTR, 0, NULL);
            return -1;
        }
        if (++hops > MAX_HOPS) {
            raise_kind(c, E_HOPS, 0, NULL);
            return -1;
        }
        if (after < 0)
            after = p + 2;
        start = ptr;
        p = ptr;
    }
    if (len > NAME_MAX_WIRE) {
        raise_kind(c, E_LONG, 0, NULL);
        return -1;
    }
    *pos = after;
    return len;
}

/* Fixed-length head of types without names whose RDATA is a head and free octets. */
static int headed(int t) {
    switch (t) {
    case 44: return 2;           /* SSHFP */
    case 52: case 53: return 3;  /* TLSA SMIMEA */
    case 43: case 59: return 4;  /* DS CDS */
    default: return -1;
    }
}

/* Name-carrying layouts: a string of 'n' (a name) and digits 1-9 / 'k' (20) fixed runs. */
static const char *layout(int t) {
    switch (t) {
    case 2: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 39: return "n";
    case 6: return "nnT";        /* SOA: two names, 20 octets */
    case 14: case 17: return "nn";
    case 15: case 18: case 21: case 36: return "2n";
    case 33: return "6n";
    case 26: return "2nn";
    default: return NULL;
    }
}

static int is_meta(int t) {
    return t == 41 || t == 250 || t == 249 || t == 251 || t == 252 || t == 253 || t == 254 ||
           t == 255 || t == 0;
}

static int is_alnum_ascii(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* One record's RR in blob form: C0 0C, TYPE CLASS(1) TTL RDLEN, rdata. */
static PyObject *make_rr(int rdtype, uint32_t ttl, const unsigned char *rd, Py_ssize_t rdlen) {
    PyObject *rr = PyBytes_FromStringAndSize(NULL, 12 + rdlen);
    if (rr == NULL)
        return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(rr);
    o[0] = 0xC0; o[1] = 0x0C;
    o[2] = rdtype >> 8; o[3] = rdtype & 0xFF;
    o[4] = 0; o[5] = 1;
    o[6] = ttl >> 24; o[7] = (ttl >> 16) & 0xFF; o[8] = (ttl >> 8) & 0xFF; o[9] = ttl & 0xFF;
    o[10] = (rdlen >> 8) & 0xFF; o[11] = rdlen & 0xFF;
    memcpy(o + 12, rd, rdlen);
    return rr;
}

/* The RR of one record whose RDATA spans [pos, end): checked, names written out. */
static PyObject *record_rr(Ctx *c, PyObject *other, int rdtype, uint32_t ttl, Py_ssize_t pos,
                           Py_ssize_t end) {
    const unsigned char *w = c->w;
    Py_ssize_t rdlen = end - pos;
    if (rdtype == 1 || rdtype == 28) {
        if (rdlen != (rdtype == 1 ? 4 : 16)) {
            raise_int(c, E_FIXED, rdtype, (long)rdlen);
            return NULL;
        }
        return make_rr(rdtype, ttl, w + pos, rdlen);
    }
    if (rdtype == 16) {
        Py_ssize_t p = pos;
        while (p < end)
            p += w[p] + 1;
        if (p != end || end == pos) {
            raise_kind(c, E_TXT, rdtype, NULL);
            return NULL;
        }
        return make_rr(rdtype, ttl, w + pos, rdlen);
    }
    int head = headed(rdtype);
    if (head >= 0) {
        if (rdlen < head) {
            raise_int(c, E_HEAD, rdtype, head);
            return NULL;
        }
        if (rdtype == 44) {
            int fp = w[pos + 1];
            Py_ssize_t want = fp == 1 ? 20 : fp == 2 ? 32 : rdlen - 2;
            if (want != rdlen - 2) {
                raise_kind(c, E_SSHFP, rdtype, NULL);
                return NULL;
            }
        }
        return make_rr(rdtype, ttl, w + pos, rdlen);
    }
    if (rdtype == 257) {
        int taglen = rdlen >= 2 ? w[pos + 1] : 0;
        int ok = taglen > 0 && taglen <= rdlen - 2;
        for (int i = 0; ok && i < taglen; i++)
            ok = is_alnum_ascii(w[pos + 2 + i]);
        if (!ok) {
            raise_kind(c, E_CAA, rdtype, NULL);
            return NULL;
        }
        return make_rr(rdtype, ttl, w + pos, rdlen);
    }
    const char *lay = layout(rdtype);
    if (lay == NULL) {
        if (is_meta(rdtype)) {
            raise_kind(c, E_META, rdtype, NULL);
            return NULL;
        }
        PyObject *rd = PyObject_CallFunction(other, "Onni", c->wire, pos, end, rdtype);
        if (rd == NULL)
            return NULL;
        if (!PyBytes_Check(rd)) {
            Py_DECREF(rd);
            PyErr_SetString(PyExc_TypeError, "other() must return bytes");
            return NULL;
        }
        if (PyBytes_GET_SIZE(rd) > 0xFFFF) {  /* names written out past RDLENGTH's range */
            Py_DECREF(rd);
            raise_kind(c, E_TRUNC, rdtype, NULL);  /* as the Python reader's struct.error */
            return NULL;
        }
        PyObject *rr = make_rr(rdtype, ttl, (unsigned char *)PyBytes_AS_STRING(rd),
                               PyBytes_GET_SIZE(rd));
        Py_DECREF(rd);
        return rr;
    }
    /* Names and fixed runs: at most 2 names of 255 and 20 octets. */
    unsigned char buf[2 * NAME_MAX_WIRE + 32];
    Py_ssize_t len = 0, p = pos;
    for (const char *item = lay; *item; item++) {
        if (*item == 'n') {
            /* A name may run past RDLENGTH; it is read within the message, then refused. */
            int nl = read_name(c, &p, buf + len);
            if (nl < 0)
                return NULL;
            len += nl;
        } else {
            int run = *item == 'T' ? 20 : *item - '0';
            if (p + run > end) {
                raise_kind(c, E_OVER, rdtype, NULL);
                return NULL;
            }
            memcpy(buf + len, w + p, run);
            len += run;
            p += run;
        }
        if (p > end) {
            raise_kind(c, E_OVER, rdtype, NULL);
            return NULL;
        }
    }
    if (p != end) {
        raise_kind(c, E_TRAIL, rdtype, NULL);
        return NULL;
    }
    return make_rr(rdtype, ttl, buf, len);
}

/* answers(wire, pos, count, origin, fail, other) -> (answers, deep, pos) */
static PyObject *answers(PyObject *self, PyObject *args) {
    PyObject *wire, *origin, *fail, *other;
    Py_ssize_t pos, count;
    if (!PyArg_ParseTuple(args, "SnnSOO", &wire, &pos, &count, &origin, &fail, &other))
        return NULL;
    Ctx c = {(const unsigned char *)PyBytes_AS_STRING(wire), PyBytes_GET_SIZE(wire), wire, fail};
    const unsigned char *w = c.w;
    const unsigned char *org = (const unsigned char *)PyBytes_AS_STRING(origin);
    Py_ssize_t olen = PyBytes_GET_SIZE(origin);
    PyObject *out = PyList_New(0), *deep = PyList_New(0), *key = NULL;
    unsigned char raw[NAME_MAX_WIRE + 1], owner[NAME_MAX_WIRE + 1], last[NAME_MAX_WIRE + 1];
    int last_len = -1;
    if (out == NULL || deep == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        int olen_now = read_name(&c, &pos, raw);
        if (olen_now < 0)
            goto fail;
        if (pos + 10 > c.n) {
            raise_kind(&c, E_TRUNC, 0, NULL);
            goto fail;
        }
        int rdtype = (w[pos] << 8) | w[pos + 1];
        int rdclass = (w[pos + 2] << 8) | w[pos + 3];
        uint32_t ttl = ((uint32_t)w[pos + 4] << 24) | ((uint32_t)w[pos + 5] << 16) |
                       ((uint32_t)w[pos + 6] << 8) | w[pos + 7];
        Py_ssize_t rdlen = (w[pos + 8] << 8) | w[pos + 9];
        pos += 10;
        Py_ssize_t end = pos + rdlen;
        if (end > c.n) {
            raise_kind(&c, E_PAST, 0, NULL);
            goto fail;
        }
        if (rdclass != 1) {
            raise_int(&c, E_CLASS, rdtype, rdclass);
            goto fail;
        }
        for (int k = 0; k < olen_now; k++) {
            unsigned char ch = raw[k];
            owner[k] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
        }
        /* Label lengths are below 'A' (65 > 63), so lower-casing the whole wire form
         * leaves them as they were. */
        if (olen_now != last_len || memcmp(owner, last, olen_now) != 0) {
            Py_ssize_t stop = olen_now - olen, p = 0;
            while (p < stop)
                p += owner[p] + 1;
            if (p != stop || stop < 0 || memcmp(owner + stop, org, olen) != 0) {
                PyObject *o = PyBytes_FromStringAndSize((char *)raw, olen_now);
                if (o != NULL) {
                    raise_kind(&c, E_ZONE, rdtype, o);
                    Py_DECREF(o);
                }
                goto fail;
            }
            Py_XDECREF(key);
            key = PyBytes_FromStringAndSize((char *)owner, olen_now);
            if (key == NULL)
                goto fail;
            memcpy(last, owner, olen_now);
            last_len = olen_now;
            if (stop && owner[0] + 1 != stop && PyList_Append(deep, key) < 0)
                goto fail;
        }
        PyObject *rr;
        if (ttl > 0x7FFFFFFF) {
            ttl = 0;  /* RFC 2181 section 8 */
        }
        rr = record_rr(&c, other, rdtype, ttl, pos, end);
        if (rr == NULL)
            goto fail;
        PyObject *tup = PyTuple_New(4);
        if (tup == NULL) {
            Py_DECREF(rr);
            goto fail;
        }
        Py_INCREF(key);
        PyTuple_SET_ITEM(tup, 0, key);
        PyTuple_SET_ITEM(tup, 1, PyLong_FromLong(rdtype));
        PyTuple_SET_ITEM(tup, 2, PyLong_FromUnsignedLong(ttl));
        PyTuple_SET_ITEM(tup, 3, rr);
        if (PyTuple_GET_ITEM(tup, 1) == NULL || PyTuple_GET_ITEM(tup, 2) == NULL ||
            PyList_Append(out, tup) < 0) {
            Py_DECREF(tup);
            goto fail;
        }
        Py_DECREF(tup);
        pos = end;
    }
    Py_XDECREF(key);
    return Py_BuildValue("(NNn)", out, deep, pos);
fail:
    Py_XDECREF(key);
    Py_XDECREF(out);
    Py_XDECREF(deep);
    return NULL;
}

static PyMethodDef methods[] = {
    {"answers", answers, METH_VARARGS,
     "answers(wire, pos, count, origin, fail, other) -> (answers, deep, pos): the answer "
     "section of a transfer message (see xfrin.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_xfrin", "Transfer messages' answer sections read in C (see xfrin.py).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__xfrin(void) { return PyModule_Create(&module); }
