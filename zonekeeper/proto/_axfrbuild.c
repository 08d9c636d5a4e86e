/* The served form's hot loops in C: the AXFR image's renderer (below), rrwire.sort_key,
 * rrwire.make_blob and rrwire.count_records (near the end). Each has its Python twin where
 * this is not built; on well-formed input (what the server makes) both give the same
 * output, and the unit tests hold them to it; on malformed input the C ones raise
 * (a truncated blob, an rdata that is not bytes).
 *
 * The AXFR image's renderer: zonekeeper/proto/axfr.py's ``_partition`` (owners cut
 * into buckets, each the answer section of one message, names compressed), the same
 * bytes from the same input; axfr.py keeps the Python one for where this is not built,
 * and the tests hold the two to the same output.
 *
 * partition(keys, nodes, origin_key, base, first_base, most, chunk_end, start,
 *           max_buckets) -> ([(owners tuple, chunks tuple of (bytes, count), count, size),
 *                            ...], next index)
 *
 * keys: owner keys (lower-case wire names) in order; nodes: key -> blob or tuple of blobs
 * (rrwire's served form: type, 2 bytes, then RRs of owner pointer, type, class, TTL,
 * RDLENGTH, RDATA). The names kept in the compression table and the RRs waiting for a
 * chunk's tail point into the keys' and blobs' bytes, borrowed: the call relies on the rule
 * that a published version's node table is never changed in place (an edit or a transfer
 * makes a new dict: services/zone_store.py, proto/xfrin.py), and on ``keys`` being the
 * caller's own list. Well-formed tables give the Python renderer's bytes; a malformed RR
 * (truncated) is refused with ValueError where the Python one would write broken bytes.
 *
 * ``start`` and ``max_buckets``: begin at keys[start] (a bucket's first owner) and stop
 * once ``max_buckets`` buckets are done, returning where to go on; the caller goes on in
 * Python, so that a thread waiting for the GIL (the event loop, a query) gets it between
 * two calls instead of waiting for the whole image (~0.3 s at a million records).
 * Returns (buckets, next index). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define POINTER_LIMIT 0x4000
#define MAX_MESSAGE 65535
#define TSIG_RESERVE 512
/* OPT_RESERVE and so _CHUNK_END come from axfr.py (edns.OPTIONS_MAX): passed in. */

typedef struct {
    const unsigned char *p;
    Py_ssize_t len;
    long off;
    unsigned long gen; /* the entry holds only while this is the table's generation */
} Entry;

/* The compression table of one chunk (axfr._Renderer.names): emptied at every chunk by
 * moving to the next generation, not by clearing the slots. */
typedef struct {
    Entry *slots;
    size_t cap; /* a power of two */
    size_t used;
    unsigned long gen;
} Names;

typedef struct {
    PyObject *key; /* borrowed */
    long at;
    int rdtype;
    const unsigned char *blob;
    Py_ssize_t s, e;
} Pending;

typedef struct {
    long chunk_end;
    const unsigned char *origin;
    Py_ssize_t origin_len;
    long base;
    long pos;
    long count;
    long owner_at;
    unsigned char *buf; /* the chunk's bytes */
    Py_ssize_t len, cap;
    Names names;
    Pending *pending;
    Py_ssize_t npending, cappending;
    PyObject *chunks; /* list of (bytes, count) */
} R;

static uint64_t hash_bytes(const unsigned char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int names_grow(Names *t) {
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    Entry *ns = PyMem_Calloc(ncap, sizeof(Entry));
    if (!ns) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        Entry *e = &t->slots[i];
        if (e->gen != t->gen) continue;
        size_t j = hash_bytes(e->p, e->len) & (ncap - 1);
        while (ns[j].gen == t->gen) j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    PyMem_Free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

static long names_get(Names *t, const unsigned char *p, Py_ssize_t n) {
    size_t j = hash_bytes(p, n) & (t->cap - 1);
    for (;;) {
        Entry *e = &t->slots[j];
        if (e->gen != t->gen) return -1;
        if (e->len == n && memcmp(e->p, p, n) == 0) return e->off;
        j = (j + 1) & (t->cap - 1);
    }
}

/* Adds p[:n] (not present: the caller looked it up). */
static int names_put(Names *t, const unsigned char *p, Py_ssize_t n, long off) {
    if ((t->used + 1) * 2 > t->cap && names_grow(t) < 0) return -1;
    size_t j = hash_bytes(p, n) & (t->cap - 1);
    while (t->slots[j].gen == t->gen) j = (j + 1) & (t->cap - 1);
    t->slots[j].p = p;
    t->slots[j].len = n;
    t->slots[j].off = off;
    t->slots[j].gen = t->gen;
    t->used++;
    return 0;
}

static void names_clear(Names *t) {
    t->gen++; /* (calloc'd slots are generation 0; the first table is generation 1) */
    t->used = 0;
}

static int reserve(R *r, Py_ssize_t more) {
    if (r->len + more <= r->cap) return 0;
    Py_ssize_t ncap = r->cap ? r->cap : 65536;
    while (ncap < r->len + more) ncap *= 2;
    unsigned char *nb = PyMem_Realloc(r->buf, ncap);
    if (!nb) {
        PyErr_NoMemory();
        return -1;
    }
    r->buf = nb;
    r->cap = ncap;
    return 0;
}

static int put(R *r, const unsigned char *p, Py_ssize_t n) {
    if (reserve(r, n) < 0) return -1;
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
}

static int put_pointer(R *r, long off) {
    unsigned char b[2] = {(unsigned char)(0xC0 | (off >> 8)), (unsigned char)(off & 0xFF)};
    return put(r, b, 2);
}

/* The end of the uncompressed name at p[pos:], or -1 past ``end``. */
static Py_ssize_t name_end(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end) {
    while (pos < end && p[pos]) pos += p[pos] + 1;
    return pos < end ? pos + 1 : -1;
}

/* axfr._compress: ``name`` (n bytes, uncompressed) written at offset ``pos`` into the
 * buffer; its longest suffix in the table becomes a pointer; the suffixes written before
 * it (below the pointer limit) are added. Returns the bytes written, or -1. */
static Py_ssize_t compress(R *r, const unsigned char *name, Py_ssize_t n, long pos) {
    Py_ssize_t i = 0;
    long off = names_get(&r->names, name, n);
    while (off < 0 && i < n && name[i]) {
        i += name[i] + 1;
        if (i >= n) break;
        off = names_get(&r->names, name + i, n - i);
    }
    Py_ssize_t j = 0;
    while (j < i && pos + j < POINTER_LIMIT) {
        if (names_put(&r->names, name + j, n - j, pos + (long)j) < 0) return -1;
        j += name[j] + 1;
    }
    if (off < 0) {
        if (put(r, name, n) < 0) return -1;
        return n;
    }
    if (put(r, name, i) < 0 || put_pointer(r, off) < 0) return -1;
    return i + 2;
}

static int is_name_type(int t, Py_ssize_t *at) {
    switch (t) {
    case 2: case 5: case 12: *at = 0; return 1; /* NS, CNAME, PTR */
    case 15: *at = 2; return 1; /* MX */
    default: return 0;
    }
}

/* axfr._Renderer._rr with the owner already in the buffer (``owner_len`` bytes, written
 * at ``start``): the fixed fields and the RDATA, names compressed where they may be. */
static int rr_rest(R *r, long start, Py_ssize_t owner_len, int rdtype,
                   const unsigned char *blob, Py_ssize_t s, Py_ssize_t e) {
    Py_ssize_t at;
    int named = is_name_type(rdtype, &at);
    if (!named && rdtype != 6) return put(r, blob + s + 2, e - s - 2);
    const unsigned char *rd = blob + s + 12;
    Py_ssize_t rdn = e - s - 12;
    long rdpos = start + (long)owner_len + 10; /* where the RDATA goes */
    if (put(r, blob + s + 2, 8) < 0) return -1;
    Py_ssize_t len_at = r->len;
    if (put(r, (const unsigned char *)"\0\0", 2) < 0) return -1;
    Py_ssize_t before = r->len;
    if (named) {
        if (at > rdn) at = rdn;
        if (put(r, rd, at) < 0) return -1;
        if (rdn > at && compress(r, rd + at, rdn - at, rdpos + (long)at) < 0) return -1;
    } else { /* SOA */
        Py_ssize_t m_end = name_end(rd, 0, rdn);
        Py_ssize_t r_end = m_end < 0 ? -1 : name_end(rd, m_end, rdn);
        if (r_end < 0) {
            PyErr_SetString(PyExc_ValueError, "an SOA RDATA without its names");
            return -1;
        }
        Py_ssize_t m = compress(r, rd, m_end, rdpos);
        if (m < 0) return -1;
        if (compress(r, rd + m_end, r_end - m_end, rdpos + (long)m) < 0) return -1;
        if (put(r, rd + r_end, rdn - r_end) < 0) return -1;
    }
    Py_ssize_t rdlen = r->len - before;
    r->buf[len_at] = (unsigned char)(rdlen >> 8);
    r->buf[len_at + 1] = (unsigned char)(rdlen & 0xFF);
    return 0;
}

/* axfr._Renderer._open: a new chunk at offset ``start``, names reset to the apex's. */
static int r_open(R *r, long start) {
    r->pos = start;
    r->len = 0;
    r->count = 0;
    names_clear(&r->names);
    r->owner_at = 0;
    r->npending = 0;
    return names_put(&r->names, r->origin, r->origin_len, 12);
}

static int r_init(R *r, const unsigned char *origin, Py_ssize_t origin_len, long base,
                  long first_base, long chunk_end) {
    memset(r, 0, sizeof(*r));
    r->chunk_end = chunk_end;
    r->origin = origin;
    r->origin_len = origin_len;
    r->base = base;
    r->chunks = PyList_New(0);
    if (!r->chunks || names_grow(&r->names) < 0) return -1;
    return r_open(r, first_base);
}

static void r_free(R *r) {
    PyMem_Free(r->buf);
    PyMem_Free(r->names.slots);
    PyMem_Free(r->pending);
    Py_XDECREF(r->chunks);
    memset(r, 0, sizeof(*r));
}

static int head_rr(R *r, PyObject *key, int rdtype, const unsigned char *blob, Py_ssize_t s,
                   Py_ssize_t e, int first);

static int r_close(R *r) {
    Pending *pending = r->pending;
    Py_ssize_t n = r->npending, i;
    r->pending = NULL;
    r->npending = r->cappending = 0;
    for (i = 0; i < n; i++) {
        Pending *p = &pending[i];
        if (r->pos + (p->e - p->s) > r->chunk_end) break;
        if (put_pointer(r, p->at) < 0 || put(r, p->blob + p->s + 2, p->e - p->s - 2) < 0) {
            PyMem_Free(pending);
            return -1;
        }
        r->pos += (long)(p->e - p->s);
        r->count++;
    }
    if (r->count) {
        PyObject *data = PyBytes_FromStringAndSize((const char *)r->buf, r->len);
        PyObject *item = data ? Py_BuildValue("(Nl)", data, r->count) : NULL;
        if (!item || PyList_Append(r->chunks, item) < 0) {
            Py_XDECREF(item);
            PyMem_Free(pending);
            return -1;
        }
        Py_DECREF(item);
    }
    if (r_open(r, r->base) < 0) {
        PyMem_Free(pending);
        return -1;
    }
    PyObject *last = NULL;
    for (; i < n; i++) {
        Pending *p = &pending[i];
        int first = last == NULL ? 1 : (PyBytes_GET_SIZE(p->key) != PyBytes_GET_SIZE(last)
                                         || memcmp(PyBytes_AS_STRING(p->key), PyBytes_AS_STRING(last),
                                                   PyBytes_GET_SIZE(last)) != 0);
        if (head_rr(r, p->key, p->rdtype, p->blob, p->s, p->e, first) < 0) {
            PyMem_Free(pending);
            return -1;
        }
        last = p->key;
    }
    PyMem_Free(pending);
    return 0;
}

static int head_rr(R *r, PyObject *key, int rdtype, const unsigned char *blob, Py_ssize_t s,
                   Py_ssize_t e, int first) {
    Py_ssize_t unused;
    if (!first && r->owner_at < POINTER_LIMIT && !is_name_type(rdtype, &unused) && rdtype != 6) {
        if (r->npending == r->cappending) {
            Py_ssize_t ncap = r->cappending ? r->cappending * 2 : 256;
            Pending *np = PyMem_Realloc(r->pending, ncap * sizeof(Pending));
            if (!np) {
                PyErr_NoMemory();
                return -1;
            }
            r->pending = np;
            r->cappending = ncap;
        }
        Pending *p = &r->pending[r->npending++];
        p->key = key;
        p->at = r->owner_at;
        p->rdtype = rdtype;
        p->blob = blob;
        p->s = s;
        p->e = e;
        return 0;
    }
    Py_ssize_t klen = PyBytes_GET_SIZE(key);
    if (r->pos + klen + (e - s) - 2 > r->chunk_end && r->count) {
        if (r_close(r) < 0) return -1;
    }
    long at = r->pos;
    Py_ssize_t start_len = r->len;
    Py_ssize_t owner = compress(r, (const unsigned char *)PyBytes_AS_STRING(key), klen, at);
    if (owner < 0 || rr_rest(r, at, owner, rdtype, blob, s, e) < 0) return -1;
    Py_ssize_t rr = r->len - start_len;
    if (at + rr > r->chunk_end) {
        PyErr_SetString(PyExc_ValueError, "a single RR does not fit in one message");
        return -1;
    }
    r->pos += (long)rr;
    r->count++;
    r->owner_at = at;
    return 0;
}

/* axfr._Renderer.owner */
static int r_owner(R *r, PyObject *key, PyObject *node) {
    if (r->pos >= POINTER_LIMIT && r_close(r) < 0) return -1;
    int apex = PyBytes_GET_SIZE(key) == r->origin_len
               && memcmp(PyBytes_AS_STRING(key), r->origin, r->origin_len) == 0;
    int first = 1;
    PyObject *one[1];
    PyObject **blobs;
    Py_ssize_t nblobs;
    if (PyBytes_Check(node)) {
        one[0] = node;
        blobs = one;
        nblobs = PyBytes_GET_SIZE(node) ? 1 : 0;
    } else if (PyTuple_Check(node)) {
        blobs = &PyTuple_GET_ITEM(node, 0);
        nblobs = PyTuple_GET_SIZE(node);
    } else {
        PyErr_SetString(PyExc_TypeError, "a node is bytes or a tuple of bytes");
        return -1;
    }
    for (Py_ssize_t b = 0; b < nblobs; b++) {
        PyObject *bo = blobs[b];
        if (!PyBytes_Check(bo)) {
            PyErr_SetString(PyExc_TypeError, "a node's blobs are bytes");
            return -1;
        }
        const unsigned char *blob = (const unsigned char *)PyBytes_AS_STRING(bo);
        Py_ssize_t end = PyBytes_GET_SIZE(bo);
        if (end < 4) continue;
        int rdtype = (blob[0] << 8) | blob[1];
        if (apex && rdtype == 6) continue;
        Py_ssize_t pos = 4;
        while (pos < end) {
            if (pos + 12 > end) {
                PyErr_SetString(PyExc_ValueError, "a truncated RR in a node");
                return -1;
            }
            Py_ssize_t nxt = pos + 12 + ((blob[pos + 10] << 8) | blob[pos + 11]);
            if (nxt > end) {
                PyErr_SetString(PyExc_ValueError, "a truncated RR in a node");
                return -1;
            }
            if (head_rr(r, key, rdtype, blob, pos, nxt, first) < 0) return -1;
            first = 0;
            pos = nxt;
        }
    }
    return 0;
}

/* axfr._partition's close(): the bucket of ``taken`` owners, from r's finish(). */
static int close_bucket(R *r, PyObject *taken, PyObject *out) {
    while (r->npending || r->count) {
        if (r_close(r) < 0) return -1;
    }
    PyObject *chunks = PyList_AsTuple(r->chunks);
    if (!chunks) return -1;
    long long count = 0, size = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(chunks); i++) {
        PyObject *c = PyTuple_GET_ITEM(chunks, i);
        count += PyLong_AsLongLong(PyTuple_GET_ITEM(c, 1));
        size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(c, 0));
    }
    PyObject *owners = PyList_AsTuple(taken);
    if (!owners) {
        Py_DECREF(chunks);
        return -1;
    }
    PyObject *item = Py_BuildValue("(NNLL)", owners, chunks, count, size);
    if (!item) return -1;
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *partition(PyObject *self, PyObject *args) {
    PyObject *keys, *nodes;
    const char *origin;
    Py_ssize_t origin_len;
    long base, first_base, most, chunk_end;
    Py_ssize_t start, max_buckets;
    if (!PyArg_ParseTuple(args, "O!O!y#llllnn", &PyList_Type, &keys, &PyDict_Type, &nodes,
                          &origin, &origin_len, &base, &first_base, &most, &chunk_end, &start,
                          &max_buckets))
        return NULL;
    R r;
    memset(&r, 0, sizeof(r));
    PyObject *out = PyList_New(0);
    PyObject *taken = PyList_New(0);
    if (!out || !taken || r_init(&r, (const unsigned char *)origin, origin_len, base, first_base,
                                 chunk_end) < 0)
        goto fail;
    Py_ssize_t i;
    for (i = start < 0 ? 0 : start; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "owner keys are bytes");
            goto fail;
        }
        PyObject *node = PyDict_GetItemWithError(nodes, key);
        if (!node) {
            if (PyErr_Occurred()) goto fail;
            continue;
        }
        int truthy = PyObject_IsTrue(node);
        if (truthy < 0) goto fail;
        if (!truthy) continue;
        if (PyList_GET_SIZE(taken) && (r.pos >= POINTER_LIMIT || PyList_GET_SIZE(taken) >= most)) {
            if (close_bucket(&r, taken, out) < 0) goto fail;
            if (PyList_GET_SIZE(out) >= max_buckets) { /* owner i begins the next call's */
                r_free(&r);
                Py_DECREF(taken);
                return Py_BuildValue("(Nn)", out, i);
            }
            r_free(&r);
            Py_SETREF(taken, PyList_New(0));
            if (!taken || r_init(&r, (const unsigned char *)origin, origin_len, base, base,
                                 chunk_end) < 0)
                goto fail;
        }
        if (r_owner(&r, key, node) < 0 || PyList_Append(taken, key) < 0) goto fail;
    }
    if (close_bucket(&r, taken, out) < 0) goto fail;
    r_free(&r);
    Py_DECREF(taken);
    return Py_BuildValue("(Nn)", out, i);
fail:
    r_free(&r);
    Py_XDECREF(taken);
    Py_XDECREF(out);
    return NULL;
}

/* The labels of ``k`` that start at ``starts[0..count)`` (``size`` octets in all, each
 * label with its length byte), written in reverse order, then a root label if ``root``:
 * sort_key and its inverse. */
static PyObject *labels_reversed(const unsigned char *k, const Py_ssize_t *starts, int count,
                                 Py_ssize_t size, int root) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, size + (root ? 1 : 0));
    if (!out) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    for (int i = count - 1; i >= 0; i--) {
        Py_ssize_t len = 1 + k[starts[i]];
        memcpy(o, k + starts[i], len);
        o += len;
    }
    if (root) *o = 0;
    return out;
}

/* rrwire.sort_key: the labels of a wire name (uncompressed, ending in the root) in
 * reverse order, each with its length byte; the root label left out. */
static PyObject *sort_key(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "a key is bytes");
        return NULL;
    }
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    Py_ssize_t starts[128];
    int count = 0;
    Py_ssize_t pos = 0;
    while (pos < n && k[pos]) {
        if (count == 128 || pos + 1 + k[pos] > n) {
            PyErr_SetString(PyExc_ValueError, "not a wire name");
            return NULL;
        }
        starts[count++] = pos;
        pos += 1 + k[pos];
    }
    if (pos >= n) {
        PyErr_SetString(PyExc_ValueError, "not a wire name");
        return NULL;
    }
    return labels_reversed(k, starts, count, pos, 0);
}

/* rrwire.key_of_sort_key: sort_key's inverse. A sort key is labels (each with its length
 * byte) in reverse order, without the root; the key is the same labels in wire order
 * ending in the root label. */
static PyObject *key_of_sort_key(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "a sort key is bytes");
        return NULL;
    }
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    Py_ssize_t starts[128];
    int count = 0;
    Py_ssize_t pos = 0;
    while (pos < n) {
        if (count == 128 || k[pos] == 0 || pos + 1 + k[pos] > n) {
            PyErr_SetString(PyExc_ValueError, "not a sort key");
            return NULL;
        }
        starts[count++] = pos;
        pos += 1 + k[pos];
    }
    return labels_reversed(k, starts, count, n, 1);
}

/* rrwire.make_blob: one RRset in the node table's form, from its type, TTL and a list of
 * uncompressed rdata wire forms: type (2 bytes), count (2), then each RR as an owner
 * pointer to the question (c0 0c), type, class IN, TTL, RDLENGTH and RDATA. */
static PyObject *make_blob(PyObject *self, PyObject *args) {
    Py_ssize_t rdtype, ttl; /* "n": an OverflowError past Py_ssize_t, not a wrap */
    PyObject *given;
    if (!PyArg_ParseTuple(args, "nnO", &rdtype, &ttl, &given)) return NULL;
    PyObject *rdatas = PySequence_Fast(given, "rdatas is a sequence of bytes");
    if (!rdatas) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(rdatas);
    PyObject **items = PySequence_Fast_ITEMS(rdatas);
    PyObject *out = NULL;
    if (rdtype < 0 || rdtype > 0xFFFF || ttl < 0 || ttl > 0xFFFFFFFFLL || n > 0xFFFF) {
        PyErr_SetString(PyExc_OverflowError, "type, TTL or count out of range");
        goto done;
    }
    Py_ssize_t size = 4;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "an rdata is bytes");
            goto done;
        }
        if (PyBytes_GET_SIZE(items[i]) > 0xFFFF) {
            PyErr_SetString(PyExc_OverflowError, "an rdata is over 65535 octets");
            goto done;
        }
        size += 12 + PyBytes_GET_SIZE(items[i]);
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (!out) goto done;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    o[0] = rdtype >> 8; o[1] = rdtype & 0xFF;
    o[2] = n >> 8; o[3] = n & 0xFF;
    o += 4;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        o[0] = 0xC0; o[1] = 0x0C;
        o[2] = rdtype >> 8; o[3] = rdtype & 0xFF;
        o[4] = 0; o[5] = 1;
        o[6] = ttl >> 24; o[7] = (ttl >> 16) & 0xFF; o[8] = (ttl >> 8) & 0xFF; o[9] = ttl & 0xFF;
        o[10] = len >> 8; o[11] = len & 0xFF;
        memcpy(o + 12, PyBytes_AS_STRING(items[i]), len);
        o += 12 + len;
    }
done:
    Py_DECREF(rdatas);
    return out;
}

/* ZoneSnapshot.record_count: the records of a node table's values (each a blob, b"" for
 * an empty non-terminal, or a tuple of blobs), read from each blob's count field. */
static PyObject *count_records(PyObject *self, PyObject *arg) {
    PyObject *it = PyObject_GetIter(arg);
    if (!it) return NULL;
    unsigned long long total = 0;
    PyObject *node;
    while ((node = PyIter_Next(it))) {
        PyObject *one[1] = {node};
        PyObject **blobs = one;
        Py_ssize_t n = 1;
        if (PyTuple_Check(node)) {
            blobs = &PyTuple_GET_ITEM(node, 0);
            n = PyTuple_GET_SIZE(node);
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyBytes_Check(blobs[i])) {
                PyErr_SetString(PyExc_TypeError, "a node is bytes or a tuple of bytes");
                Py_DECREF(node);
                Py_DECREF(it);
                return NULL;
            }
            Py_ssize_t len = PyBytes_GET_SIZE(blobs[i]);
            if (len == 0) continue;
            if (len < 4) {
                PyErr_SetString(PyExc_ValueError, "a blob is shorter than its header");
                Py_DECREF(node);
                Py_DECREF(it);
                return NULL;
            }
            const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(blobs[i]);
            total += ((unsigned)b[2] << 8) | b[3];
        }
        Py_DECREF(node);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromUnsignedLongLong(total);
}

static PyMethodDef methods[] = {
    {"count_records", count_records, METH_O, "records of node-table values (blob count fields)"},
    {"make_blob", make_blob, METH_VARARGS, "rrwire.make_blob in C (rdatas: a list of bytes)"},
    {"partition", partition, METH_VARARGS, "axfr._partition in C: [(owners, chunks, count, size)]"},
    {"sort_key", sort_key, METH_O, "rrwire.sort_key in C"},
    {"key_of_sort_key", key_of_sort_key, METH_O, "rrwire.key_of_sort_key in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_axfrbuild", NULL, -1, methods};

PyMODINIT_FUNC PyInit__axfrbuild(void) { return PyModule_Create(&module); }
