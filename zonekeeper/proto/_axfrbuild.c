/* The served form's hot loops in C: the AXFR image's renderer (below), rrwire.sort_key,
 * rrwire.make_blob, rrwire.count_records, snapshot.compile_content's owners and
 * zone_store._rrset_rows (near the end). Each has its Python twin where
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
#include <arpa/inet.h>

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

/* ---------------------------------------------------------------------------------------
 * NodeMap: a published version's node table (rrwire's served form) in one buffer.
 *
 * A dict of a million owners holds a bytes object per key and per blob (33 bytes of header
 * each) and a 40 MB hash table: ~170 MB where the keys and blobs themselves are ~60 MB.
 * Here each entry is [key length (1)][key][value length (4, native)][value] in one buffer,
 * the value in the persisted form (rrwire.encode_node: b"", one blob, or 00 00 + (LEN(4)
 * BLOB)*), and an open-addressing table of (hash tag, entry) slots finds them by the key's
 * bytes hash (SipHash, seeded per process as Python's is).
 *
 * A map read from Python behaves as a read-only dict of bytes -> bytes | tuple of bytes
 * (values made on each read); the C readers (_udpfast's answers, the AXFR renderer) read
 * the value's bytes in place. ``updated(changes)`` is an edit's next version: it shares
 * this one's buffer and keeps the changed owners in a small dict beside it (encoded, None
 * for a removed owner); past a share of the table that dict is folded into a new buffer.
 * A map is never changed once made, so a reader keeps the version it began with.
 * ------------------------------------------------------------------------------------- */

typedef struct NodeMap {
    PyObject_HEAD
    /* The flat part: own (base == NULL) or shared with ``base`` (a flat map). */
    struct NodeMap *base;
    unsigned char *data;
    size_t data_len;
    size_t *offs;     /* entry -> offset in data */
    Py_ssize_t nflat; /* entries in data */
    uint64_t *table;  /* slots: hash tag (high 32 bits) | entry + 1 (low 32); 0 empty */
    size_t cap;       /* a power of two, or 0 */
    /* The changes over the flat part: key -> encoded value, or None (removed); or NULL. */
    PyObject *over;
    Py_ssize_t count; /* owners in the map */
} NodeMap;

static PyTypeObject NodeMapType;

#define NM_FLAT(m) ((m)->base ? (m)->base : (m))

static inline uint32_t nm_vlen_at(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The flat entry of key[:klen] (hash h), or -1. */
static Py_ssize_t nm_find_flat(NodeMap *f, const unsigned char *k, Py_ssize_t klen, Py_hash_t h) {
    if (!f->cap) return -1;
    size_t mask = f->cap - 1, j = (size_t)h & mask;
    uint64_t tag = (uint64_t)((uint64_t)h >> 32) << 32;
    for (;;) {
        uint64_t s = f->table[j];
        if (!s) return -1;
        if ((s & 0xFFFFFFFF00000000ULL) == tag) {
            Py_ssize_t e = (Py_ssize_t)(s & 0xFFFFFFFFULL) - 1;
            const unsigned char *p = f->data + f->offs[e];
            if (p[0] == klen && memcmp(p + 1, k, (size_t)klen) == 0) return e;
        }
        j = (j + 1) & mask;
    }
}

static inline void nm_entry(NodeMap *f, Py_ssize_t e, const unsigned char **k, Py_ssize_t *klen,
                            const unsigned char **v, Py_ssize_t *vlen) {
    const unsigned char *p = f->data + f->offs[e];
    *klen = p[0];
    *k = p + 1;
    *vlen = nm_vlen_at(p + 1 + p[0]);
    *v = p + 5 + p[0];
}

/* The value of key (a bytes object) as a span, borrowed from the map: 1 found, 0 not, -1
 * error. The C readers' way in (also through the capsule). */
static int nm_lookup(PyObject *map, PyObject *key, const unsigned char **v, Py_ssize_t *vlen) {
    NodeMap *m = (NodeMap *)map;
    if (!PyBytes_Check(key)) return 0;
    if (m->over) {
        PyObject *got = PyDict_GetItemWithError(m->over, key);
        if (got) {
            if (got == Py_None) return 0;
            *v = (const unsigned char *)PyBytes_AS_STRING(got);
            *vlen = PyBytes_GET_SIZE(got);
            return 1;
        }
        if (PyErr_Occurred()) return -1;
    }
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1) return -1;
    NodeMap *f = NM_FLAT(m);
    Py_ssize_t e = nm_find_flat(f, (const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), h);
    if (e < 0) return 0;
    const unsigned char *k;
    Py_ssize_t klen;
    nm_entry(f, e, &k, &klen, v, vlen);
    return 1;
}

/* The next blob of an encoded value from *pos (start at 0): 1 and the span, 0 at the end,
 * -1 (ValueError set) on a malformed value. An empty non-terminal has none; a single blob
 * is the whole value; the multi form is 00 00 then (LEN(4) BLOB)*. */
static int value_next(const unsigned char *v, Py_ssize_t vlen, Py_ssize_t *pos,
                      const unsigned char **blob, Py_ssize_t *len) {
    if (vlen < 2 || v[0] || v[1]) {
        if (*pos || !vlen) return 0;
        *pos = vlen;
        *blob = v;
        *len = vlen;
        return 1;
    }
    if (*pos == 0) *pos = 2;
    if (*pos >= vlen) return 0;
    if (*pos + 4 > vlen) goto bad;
    const unsigned char *p = v + *pos;
    Py_ssize_t n = (Py_ssize_t)p[0] << 24 | (Py_ssize_t)p[1] << 16 | p[2] << 8 | p[3];
    if (*pos + 4 + n > vlen) goto bad;
    *blob = p + 4;
    *len = n;
    *pos += 4 + n;
    return 1;
bad:
    PyErr_SetString(PyExc_ValueError, "a malformed node");
    return -1;
}

/* The number of blobs of an encoded value, or -1 (ValueError set). */
static Py_ssize_t value_count(const unsigned char *v, Py_ssize_t vlen) {
    Py_ssize_t pos = 0, n = 0, len;
    const unsigned char *b;
    int r;
    while ((r = value_next(v, vlen, &pos, &b, &len)) > 0) n++;
    return r < 0 ? -1 : n;
}

/* The Python node of an encoded value: bytes, or a tuple of bytes. */
static PyObject *value_object(const unsigned char *v, Py_ssize_t vlen) {
    if (vlen < 2 || v[0] || v[1]) return PyBytes_FromStringAndSize((const char *)v, vlen);
    Py_ssize_t n = value_count(v, vlen);
    if (n < 0) return NULL;
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    Py_ssize_t pos = 0, len;
    const unsigned char *b;
    for (Py_ssize_t i = 0; i < n && value_next(v, vlen, &pos, &b, &len) > 0; i++) {
        PyObject *o = PyBytes_FromStringAndSize((const char *)b, len);
        if (!o) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, o);
    }
    return t;
}

/* A Python node in the encoded form (a new reference); TypeError/ValueError if it is not
 * a node. */
/* The size of tuple node ``node`` in the multi form (00 00, then LEN(4) BLOB each), or -1
 * (TypeError, ValueError) when a blob is not bytes or the whole is past 4 GB. */
static Py_ssize_t multi_size(PyObject *node) {
    Py_ssize_t size = 2;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(node); i++) {
        PyObject *b = PyTuple_GET_ITEM(node, i);
        if (!PyBytes_Check(b)) {
            PyErr_SetString(PyExc_TypeError, "a node's blobs are bytes");
            return -1;
        }
        size += 4 + PyBytes_GET_SIZE(b);
    }
    if (size > 0xFFFFFFFFLL) {
        PyErr_SetString(PyExc_ValueError, "a node over 4 GB");
        return -1;
    }
    return size;
}

/* Writes tuple node ``node`` in the multi form at ``o`` (multi_size octets). */
static void multi_write(unsigned char *o, PyObject *node) {
    o[0] = o[1] = 0;
    o += 2;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(node); i++) {
        PyObject *b = PyTuple_GET_ITEM(node, i);
        Py_ssize_t len = PyBytes_GET_SIZE(b);
        o[0] = (unsigned char)(len >> 24); o[1] = (len >> 16) & 0xFF; o[2] = (len >> 8) & 0xFF; o[3] = len & 0xFF;
        memcpy(o + 4, PyBytes_AS_STRING(b), (size_t)len);
        o += 4 + len;
    }
}

static PyObject *encode_value(PyObject *node) {
    if (PyBytes_Check(node)) {
        Py_ssize_t n = PyBytes_GET_SIZE(node);
        const char *p = PyBytes_AS_STRING(node);
        if (n >= 2 && !p[0] && !p[1]) {
            PyErr_SetString(PyExc_ValueError, "a blob of type 0");
            return NULL;
        }
        if (n > 0xFFFFFFFFLL) {
            PyErr_SetString(PyExc_ValueError, "a node over 4 GB");
            return NULL;
        }
        Py_INCREF(node);
        return node;
    }
    if (!PyTuple_Check(node)) {
        PyErr_SetString(PyExc_TypeError, "a node is bytes or a tuple of bytes");
        return NULL;
    }
    Py_ssize_t size = multi_size(node);
    if (size < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (!out) return NULL;
    multi_write((unsigned char *)PyBytes_AS_STRING(out), node);
    return out;
}

/* Room for ``need`` octets in a flat map's buffer (capacity *dcap), grown by half. */
static int nm_reserve(NodeMap *f, size_t *dcap, size_t need) {
    if (need <= *dcap) return 0;
    size_t ncap = *dcap ? *dcap : 4096;
    while (ncap < need) ncap += ncap / 2 + 4096;
    unsigned char *nd = PyMem_Realloc(f->data, ncap);
    if (!nd) {
        PyErr_NoMemory();
        return -1;
    }
    f->data = nd;
    *dcap = ncap;
    return 0;
}

/* A flat map being built: entries appended, then the table made by nm_index. */
static int nm_append(NodeMap *f, size_t *dcap, Py_ssize_t *ocap, const unsigned char *k,
                     Py_ssize_t klen, const unsigned char *v, Py_ssize_t vlen) {
    if (klen < 1 || klen > 255) {
        PyErr_SetString(PyExc_ValueError, "a key is 1 to 255 octets");
        return -1;
    }
    if ((uint64_t)vlen > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_ValueError, "a node over 4 GB");
        return -1;
    }
    size_t need = f->data_len + 5 + (size_t)klen + (size_t)vlen;
    if (nm_reserve(f, dcap, need) < 0) return -1;
    if (f->nflat >= *ocap) {
        Py_ssize_t ncap = *ocap ? *ocap + *ocap / 2 + 16 : 1024;
        if (ncap >= 0xFFFFFFFFLL) {
            PyErr_SetString(PyExc_ValueError, "too many owners");
            return -1;
        }
        size_t *no = PyMem_Realloc(f->offs, (size_t)ncap * sizeof(size_t));
        if (!no) {
            PyErr_NoMemory();
            return -1;
        }
        f->offs = no;
        *ocap = ncap;
    }
    unsigned char *p = f->data + f->data_len;
    uint32_t vl = (uint32_t)vlen;
    p[0] = (unsigned char)klen;
    memcpy(p + 1, k, (size_t)klen);
    memcpy(p + 1 + klen, &vl, 4);
    if (vlen) memcpy(p + 5 + klen, v, (size_t)vlen);
    f->offs[f->nflat++] = f->data_len;
    f->data_len = need;
    return 0;
}

/* Owners past which building or walking a map lets the GIL go now and then. */
#define NM_BIG 65536

/* The table of a flat map's entries (after the last nm_append); the buffers trimmed to
 * size. ValueError on a key given twice. */

static int nm_index(NodeMap *f, const Py_hash_t *hashes) {
    if (f->nflat) {
        unsigned char *nd = PyMem_Realloc(f->data, f->data_len);
        if (nd) f->data = nd;
        size_t *no = PyMem_Realloc(f->offs, (size_t)f->nflat * sizeof(size_t));
        if (no) f->offs = no;
    }
    size_t cap = 8;
    while (cap < (size_t)f->nflat + (size_t)f->nflat / 3 + 1) cap <<= 1;
    f->table = PyMem_Calloc(cap, sizeof(uint64_t));
    if (!f->table) {
        PyErr_NoMemory();
        return -1;
    }
    f->cap = cap;
    /* No Python object is touched below (the map is not visible to anyone yet): for a
     * big table other threads (the UDP loop's answers) run meanwhile. Not for a small
     * one: taking the GIL back can wait a switch interval (5 ms) behind busy threads. */
    int twice = 0;
    PyThreadState *saved = f->nflat >= NM_BIG ? PyEval_SaveThread() : NULL;
    for (Py_ssize_t e = 0; e < f->nflat; e++) {
        const unsigned char *k, *v;
        Py_ssize_t klen, vlen;
        nm_entry(f, e, &k, &klen, &v, &vlen);
        Py_hash_t h = hashes ? hashes[e] : _Py_HashBytes(k, klen);
        if (!hashes && nm_find_flat(f, k, klen, h) >= 0) {
            twice = 1;
            break;
        }
        size_t j = (size_t)h & (cap - 1);
        while (f->table[j]) j = (j + 1) & (cap - 1);
        f->table[j] = ((uint64_t)((uint64_t)h >> 32) << 32) | (uint64_t)(e + 1);
    }
    if (saved) PyEval_RestoreThread(saved);
    if (twice) {
        PyErr_SetString(PyExc_ValueError, "a key given twice");
        return -1;
    }
    f->count = f->nflat;
    return 0;
}

static NodeMap *nm_alloc(void) {
    NodeMap *m = PyObject_New(NodeMap, &NodeMapType);
    if (!m) return NULL;
    m->base = NULL;
    m->data = NULL;
    m->data_len = 0;
    m->offs = NULL;
    m->nflat = 0;
    m->table = NULL;
    m->cap = 0;
    m->over = NULL;
    m->count = 0;
    return m;
}

static void nm_dealloc(NodeMap *m) {
    Py_XDECREF(m->base);
    Py_XDECREF(m->over);
    if (!m->base) {
        PyMem_Free(m->data);
        PyMem_Free(m->offs);
        PyMem_Free(m->table);
    }
    PyObject_Free(m);
}

/* A flat map of a dict's or a NodeMap's items (through Python's mapping protocol for
 * anything else with ``items()``). */
static PyObject *nm_flat_of(PyObject *src);

/* For each owner of ``m`` in order (the flat part's, then the changed ones): fn(key span,
 * value span, arg); stops at a non-zero return. The changed owners' spans point into
 * their bytes objects; None ones are skipped. */
typedef int (*nm_visit)(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                        Py_ssize_t vlen, void *arg);

static int nm_each(NodeMap *m, nm_visit fn, void *arg) {
    NodeMap *f = NM_FLAT(m);
    unsigned char *skip = NULL; /* a bit per flat entry that a change replaces */
    if (m->over && PyDict_GET_SIZE(m->over)) {
        skip = PyMem_Calloc((size_t)f->nflat / 8 + 1, 1);
        if (!skip) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        while (PyDict_Next(m->over, &pos, &key, &val)) {
            Py_hash_t h = PyObject_Hash(key);
            if (h == -1) {
                PyMem_Free(skip);
                return -1;
            }
            Py_ssize_t e = nm_find_flat(f, (const unsigned char *)PyBytes_AS_STRING(key),
                                        PyBytes_GET_SIZE(key), h);
            if (e >= 0) skip[e / 8] |= (unsigned char)(1 << (e % 8));
        }
    }
    int rc = 0;
    for (Py_ssize_t e = 0; e < f->nflat && !rc; e++) {
        if (e % NM_BIG == NM_BIG - 1) { /* the map never changes: other threads may run */
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
        }
        if (skip && skip[e / 8] & (1 << (e % 8))) continue;
        const unsigned char *k, *v;
        Py_ssize_t klen, vlen;
        nm_entry(f, e, &k, &klen, &v, &vlen);
        rc = fn(k, klen, v, vlen, arg);
    }
    PyMem_Free(skip);
    if (rc) return rc;
    if (m->over) {
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        while (PyDict_Next(m->over, &pos, &key, &val)) {
            if (val == Py_None) continue;
            rc = fn((const unsigned char *)PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key),
                    (const unsigned char *)PyBytes_AS_STRING(val), PyBytes_GET_SIZE(val), arg);
            if (rc) return rc;
        }
    }
    return 0;
}

typedef struct {
    NodeMap *f;
    size_t dcap;
    Py_ssize_t ocap;
} Builder;

static int build_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                       Py_ssize_t vlen, void *arg) {
    Builder *b = arg;
    return nm_append(b->f, &b->dcap, &b->ocap, k, klen, v, vlen);
}

/* Appends owner ``key`` with Python node ``node`` (bytes, or a tuple of bytes), encoded
 * straight into the buffer. */
static int nm_append_node(NodeMap *f, Builder *b, PyObject *key, PyObject *node) {
    if (!PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "a key is bytes");
        return -1;
    }
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(key);
    Py_ssize_t klen = PyBytes_GET_SIZE(key);
    if (PyBytes_Check(node)) {
        const unsigned char *v = (const unsigned char *)PyBytes_AS_STRING(node);
        Py_ssize_t vlen = PyBytes_GET_SIZE(node);
        if (vlen >= 2 && !v[0] && !v[1]) {
            PyErr_SetString(PyExc_ValueError, "a blob of type 0");
            return -1;
        }
        return nm_append(f, &b->dcap, &b->ocap, k, klen, v, vlen);
    }
    if (!PyTuple_Check(node)) {
        PyErr_SetString(PyExc_TypeError, "a node is bytes or a tuple of bytes");
        return -1;
    }
    Py_ssize_t vlen = multi_size(node);
    if (vlen < 0) return -1;
    /* The entry made with an empty value, then the value written in place. */
    if (nm_append(f, &b->dcap, &b->ocap, k, klen, NULL, 0) < 0) return -1;
    size_t need = f->data_len + (size_t)vlen;
    if (nm_reserve(f, &b->dcap, need) < 0) return -1;
    unsigned char *p = f->data + f->offs[f->nflat - 1];
    uint32_t vl = (uint32_t)vlen;
    memcpy(p + 1 + klen, &vl, 4);
    multi_write(p + 5 + klen, node);
    f->data_len = need;
    return 0;
}

/* The flat map of a dict's items: sized in a first pass (no buffer grows), the keys'
 * hashes taken from the key objects (a dict's keys have theirs already). ``consume``:
 * each value is replaced by None once copied, and the dict emptied at the end. */
static int yield_gil(void);
#define NM_YIELD 4096

static PyObject *nm_of_dict(PyObject *d, int consume) {
    NodeMap *f = nm_alloc();
    if (!f) return NULL;
    Builder b = {f, 0, 0};
    Py_hash_t *hashes = NULL;
    Py_ssize_t pos = 0, n = PyDict_GET_SIZE(d);
    PyObject *key, *node, *keys = NULL;
    size_t size = 0;
    Py_ssize_t seen = 0;
    while (PyDict_Next(d, &pos, &key, &node)) {
        /* A consumed dict is the caller's own (nobody changes it meanwhile): a thread that
         * asked for the GIL gets it now and then during this pass (yield_gil). */
        if (consume && ++seen % NM_YIELD == 0 && yield_gil() < 0) {
            Py_DECREF(f);
            return NULL;
        }
        if (PyBytes_Check(key)) size += 5 + (size_t)PyBytes_GET_SIZE(key);
        if (PyBytes_Check(node)) {
            size += (size_t)PyBytes_GET_SIZE(node);
        } else if (PyTuple_Check(node)) {
            size += 2;
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(node); i++) {
                PyObject *o = PyTuple_GET_ITEM(node, i);
                size += 4 + (PyBytes_Check(o) ? (size_t)PyBytes_GET_SIZE(o) : 0);
            }
        }
    }
    if (n >= 0xFFFFFFFFLL) {
        PyErr_SetString(PyExc_ValueError, "too many owners");
        goto fail;
    }
    f->data = PyMem_Malloc(size ? size : 1);
    f->offs = PyMem_Malloc(n ? (size_t)n * sizeof(size_t) : 1);
    hashes = PyMem_Malloc(n ? (size_t)n * sizeof(Py_hash_t) : 1);
    if (!f->data || !f->offs || !hashes) {
        PyErr_NoMemory();
        goto fail;
    }
    b.dcap = size ? size : 1;
    b.ocap = n;
    if (consume) {
        /* Owner by owner in the order they were made, each key and node let go once
         * copied: the objects' memory goes back as the buffer fills (pymalloc frees an
         * arena when it is empty, and a transfer made them in this order). The dict is
         * the caller's own: nobody else reads it meanwhile, so a thread that asked for the
         * GIL gets it now and then (yield_gil: a bare release every NM_BIG owners kept a
         * waiting thread out for ~100 ms at a million). */
        keys = PyDict_Keys(d);
        if (!keys) goto fail;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            key = PyList_GET_ITEM(keys, i);
            node = PyDict_GetItemWithError(d, key);
            if (!node) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_RuntimeError, "the dict changed while it was read");
                goto fail;
            }
            Py_hash_t h = PyObject_Hash(key);
            if (h == -1 || f->nflat >= n || nm_append_node(f, &b, key, node) < 0) goto fail;
            hashes[f->nflat - 1] = h;
            if (PyDict_DelItem(d, key) < 0) goto fail;
            PyList_SET_ITEM(keys, i, NULL);
            Py_DECREF(key);
            if (i % NM_YIELD == NM_YIELD - 1 && yield_gil() < 0) goto fail;
        }
        Py_CLEAR(keys);
        PyDict_Clear(d);
    } else {
        pos = 0;
        while (PyDict_Next(d, &pos, &key, &node)) {
            if (f->nflat >= n) {
                PyErr_SetString(PyExc_RuntimeError, "the dict changed while it was read");
                goto fail;
            }
            Py_hash_t h = PyObject_Hash(key);
            if (h == -1 || nm_append_node(f, &b, key, node) < 0) goto fail;
            hashes[f->nflat - 1] = h;
        }
    }
    if (nm_index(f, hashes) < 0) goto fail;
    PyMem_Free(hashes);
    return (PyObject *)f;
fail:
    Py_XDECREF(keys);
    PyMem_Free(hashes);
    Py_DECREF(f);
    return NULL;
}

static PyObject *nm_flat_of(PyObject *src) {
    NodeMap *f = nm_alloc();
    if (!f) return NULL;
    Builder b = {f, 0, 0};
    if (Py_IS_TYPE(src, &NodeMapType)) {
        NodeMap *m = (NodeMap *)src;
        size_t reserve = NM_FLAT(m)->data_len;
        if (reserve) {
            f->data = PyMem_Malloc(reserve);
            if (!f->data) {
                PyErr_NoMemory();
                goto fail;
            }
            b.dcap = reserve;
        }
        if (nm_each(m, build_visit, &b) < 0) goto fail;
    } else if (PyDict_Check(src)) {
        return nm_of_dict(src, 0);
    } else {
        PyObject *items = PyMapping_Items(src);
        if (!items) goto fail;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
            PyObject *kv = PyList_GET_ITEM(items, i);
            if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
                PyErr_SetString(PyExc_TypeError, "items() gives (key, node) pairs");
                Py_DECREF(items);
                goto fail;
            }
            if (nm_append_node(f, &b, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1)) < 0) {
                Py_DECREF(items);
                goto fail;
            }
        }
        Py_DECREF(items);
    }
    if (nm_index(f, NULL) < 0) goto fail;
    return (PyObject *)f;
fail:
    Py_DECREF(f);
    return NULL;
}

/* NodeMap.consume(d): the map of dict ``d``'s items, ``d`` emptied on the way (each value
 * dropped once copied, then the keys): a million-owner table is never held twice whole. */
static PyObject *nm_consume(PyObject *cls, PyObject *d) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "consume takes a dict");
        return NULL;
    }
    return nm_of_dict(d, 1);
}

static PyObject *nm_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *src = NULL;
    static char *kwlist[] = {"nodes", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:NodeMap", kwlist, &src)) return NULL;
    if (src == NULL) {
        NodeMap *f = nm_alloc();
        if (f && nm_index(f, NULL) < 0) Py_CLEAR(f);
        return (PyObject *)f;
    }
    if (Py_IS_TYPE(src, &NodeMapType)) {
        Py_INCREF(src);
        return src;
    }
    return nm_flat_of(src);
}

/* NodeMap.from_rows(rows, sortkeys): a map of (key, encoded value) pairs, or (sort key,
 * encoded value) with sortkeys true: the ``nodes`` table's rows, values kept as stored. */
static PyObject *nm_from_rows(PyObject *cls, PyObject *args) {
    PyObject *rows;
    int sortkeys = 0;
    if (!PyArg_ParseTuple(args, "O|p:from_rows", &rows, &sortkeys)) return NULL;
    PyObject *it = PyObject_GetIter(rows);
    if (!it) return NULL;
    NodeMap *f = nm_alloc();
    if (!f) {
        Py_DECREF(it);
        return NULL;
    }
    Builder b = {f, 0, 0};
    PyObject *row;
    while ((row = PyIter_Next(it))) {
        PyObject *seq = PySequence_Fast(row, "a row is (key, value)");
        Py_DECREF(row);
        if (!seq) goto fail;
        if (PySequence_Fast_GET_SIZE(seq) != 2) {
            PyErr_SetString(PyExc_ValueError, "a row is (key, value)");
            Py_DECREF(seq);
            goto fail;
        }
        Py_buffer kb, vb;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, 0), &kb, PyBUF_SIMPLE) < 0) {
            Py_DECREF(seq);
            goto fail;
        }
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, 1), &vb, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&kb);
            Py_DECREF(seq);
            goto fail;
        }
        const unsigned char *v = vb.buf;
        int rc = value_count(v, vb.len) < 0 ? -1 : 0; /* a malformed value refused now */
        if (rc == 0 && sortkeys) {
            /* key_of_sort_key's labels in reverse order, then the root label */
            const unsigned char *sk = kb.buf;
            Py_ssize_t n = kb.len, starts[128], pos = 0;
            int count = 0;
            unsigned char key[256];
            while (pos < n && rc == 0) {
                if (count == 128 || sk[pos] == 0 || pos + 1 + sk[pos] > n || n + 1 > 255) {
                    PyErr_SetString(PyExc_ValueError, "not a sort key");
                    rc = -1;
                    break;
                }
                starts[count++] = pos;
                pos += 1 + sk[pos];
            }
            if (rc == 0) {
                unsigned char *o = key;
                for (int i = count - 1; i >= 0; i--) {
                    memcpy(o, sk + starts[i], (size_t)sk[starts[i]] + 1);
                    o += sk[starts[i]] + 1;
                }
                *o++ = 0;
                rc = nm_append(f, &b.dcap, &b.ocap, key, o - key, v, vb.len);
            }
        } else if (rc == 0) {
            rc = nm_append(f, &b.dcap, &b.ocap, kb.buf, kb.len, v, vb.len);
        }
        PyBuffer_Release(&kb);
        PyBuffer_Release(&vb);
        Py_DECREF(seq);
        if (rc < 0) goto fail;
    }
    if (PyErr_Occurred()) goto fail;
    Py_DECREF(it);
    if (nm_index(f, NULL) < 0) {
        Py_DECREF(f);
        return NULL;
    }
    return (PyObject *)f;
fail:
    Py_DECREF(it);
    Py_DECREF(f);
    return NULL;
}

/* Changed owners kept beside a shared buffer: folded into a new one once they are past
 * both this many and a 16th of the map. */
#define NM_OVER_MIN 1024

/* map.updated(changes): this version with ``changes`` (key -> node, or None: removed)
 * applied; this one unchanged. */
static PyObject *nm_updated(NodeMap *m, PyObject *changes) {
    if (!PyDict_Check(changes)) {
        PyErr_SetString(PyExc_TypeError, "changes is a dict");
        return NULL;
    }
    PyObject *over = m->over ? PyDict_Copy(m->over) : PyDict_New();
    if (!over) return NULL;
    Py_ssize_t count = m->count;
    NodeMap *f = NM_FLAT(m);
    Py_ssize_t pos = 0;
    PyObject *key, *node;
    while (PyDict_Next(changes, &pos, &key, &node)) {
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) < 1 || PyBytes_GET_SIZE(key) > 255) {
            PyErr_SetString(PyExc_ValueError, "a key is bytes of 1 to 255 octets");
            goto fail;
        }
        const unsigned char *v;
        Py_ssize_t vlen;
        int had = nm_lookup((PyObject *)m, key, &v, &vlen);
        if (had < 0) goto fail;
        PyObject *enc;
        if (node == Py_None) {
            /* None where the flat part has the key; else forgotten */
            Py_hash_t h = PyObject_Hash(key);
            if (h == -1) goto fail;
            int in_flat = nm_find_flat(f, (const unsigned char *)PyBytes_AS_STRING(key),
                                       PyBytes_GET_SIZE(key), h) >= 0;
            if (in_flat) {
                enc = Py_None;
                Py_INCREF(enc);
            } else {
                if (PyDict_DelItem(over, key) < 0) {
                    if (!PyErr_ExceptionMatches(PyExc_KeyError)) goto fail;
                    PyErr_Clear();
                }
                enc = NULL;
            }
            if (had) count--;
        } else {
            enc = encode_value(node);
            if (!enc) goto fail;
            if (!had) count++;
        }
        if (enc) {
            int rc = PyDict_SetItem(over, key, enc);
            Py_DECREF(enc);
            if (rc < 0) goto fail;
        }
    }
    NodeMap *out = nm_alloc();
    if (!out) goto fail;
    Py_INCREF(f);
    out->base = f;
    out->data = f->data;
    out->data_len = f->data_len;
    out->offs = f->offs;
    out->nflat = f->nflat;
    out->table = f->table;
    out->cap = f->cap;
    out->count = count;
    if (PyDict_GET_SIZE(over)) {
        out->over = over;
    } else {
        Py_DECREF(over);
    }
    if (out->over && PyDict_GET_SIZE(out->over) > NM_OVER_MIN
        && PyDict_GET_SIZE(out->over) > f->nflat / 16) {
        PyObject *flat = nm_flat_of((PyObject *)out);
        Py_DECREF(out);
        return flat;
    }
    return (PyObject *)out;
fail:
    Py_DECREF(over);
    return NULL;
}

static Py_ssize_t nm_len(NodeMap *m) { return m->count; }

static PyObject *nm_getitem(NodeMap *m, PyObject *key) {
    const unsigned char *v;
    Py_ssize_t vlen;
    int r = nm_lookup((PyObject *)m, key, &v, &vlen);
    if (r < 0) return NULL;
    if (!r) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return value_object(v, vlen);
}

static int nm_contains(NodeMap *m, PyObject *key) {
    const unsigned char *v;
    Py_ssize_t vlen;
    return nm_lookup((PyObject *)m, key, &v, &vlen);
}

static PyObject *nm_get(NodeMap *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    const unsigned char *v;
    Py_ssize_t vlen;
    int r = nm_lookup((PyObject *)m, args[0], &v, &vlen);
    if (r < 0) return NULL;
    if (r) return value_object(v, vlen);
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

/* Iteration: 0 keys, 1 values, 2 items. Over the flat part's entries (skipping the
 * changed ones), then over the changes. */
typedef struct {
    PyObject_HEAD
    NodeMap *m;
    Py_ssize_t e;   /* next flat entry */
    Py_ssize_t pos; /* PyDict_Next position in the changes */
    int kind;
} NodeMapIter;

static PyTypeObject NodeMapIterType;

static PyObject *nm_make_iter(NodeMap *m, int kind) {
    NodeMapIter *it = PyObject_New(NodeMapIter, &NodeMapIterType);
    if (!it) return NULL;
    Py_INCREF(m);
    it->m = m;
    it->e = 0;
    it->pos = 0;
    it->kind = kind;
    return (PyObject *)it;
}

static void nmi_dealloc(NodeMapIter *it) {
    Py_DECREF(it->m);
    PyObject_Free(it);
}

static PyObject *nmi_result(int kind, PyObject *key, PyObject *value) {
    /* steals both */
    if (kind == 0) {
        Py_DECREF(value);
        return key;
    }
    if (kind == 1) {
        Py_DECREF(key);
        return value;
    }
    PyObject *t = PyTuple_New(2);
    if (!t) {
        Py_DECREF(key);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, key);
    PyTuple_SET_ITEM(t, 1, value);
    return t;
}

static PyObject *nmi_next(NodeMapIter *it) {
    NodeMap *m = it->m, *f = NM_FLAT(m);
    while (it->e < f->nflat) {
        const unsigned char *k, *v;
        Py_ssize_t klen, vlen;
        nm_entry(f, it->e++, &k, &klen, &v, &vlen);
        PyObject *key = PyBytes_FromStringAndSize((const char *)k, klen);
        if (!key) return NULL;
        if (m->over) {
            int has = PyDict_Contains(m->over, key);
            if (has) {
                Py_DECREF(key);
                if (has < 0) return NULL;
                continue;
            }
        }
        if (it->kind == 0) return key;
        PyObject *value = value_object(v, vlen);
        if (!value) {
            Py_DECREF(key);
            return NULL;
        }
        return nmi_result(it->kind, key, value);
    }
    if (m->over) {
        PyObject *key, *enc;
        while (PyDict_Next(m->over, &it->pos, &key, &enc)) {
            if (enc == Py_None) continue;
            Py_INCREF(key);
            if (it->kind == 0) return key;
            PyObject *value = value_object((const unsigned char *)PyBytes_AS_STRING(enc),
                                           PyBytes_GET_SIZE(enc));
            if (!value) {
                Py_DECREF(key);
                return NULL;
            }
            return nmi_result(it->kind, key, value);
        }
    }
    return NULL;
}

static PyObject *nm_iter(NodeMap *m) { return nm_make_iter(m, 0); }
static PyObject *nm_keys(NodeMap *m, PyObject *Py_UNUSED(x)) { return nm_make_iter(m, 0); }
static PyObject *nm_values(NodeMap *m, PyObject *Py_UNUSED(x)) { return nm_make_iter(m, 1); }
static PyObject *nm_items(NodeMap *m, PyObject *Py_UNUSED(x)) { return nm_make_iter(m, 2); }

/* Equal to a dict or a NodeMap of the same items. */
static PyObject *nm_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || !Py_IS_TYPE(a, &NodeMapType)
        || !(PyDict_Check(b) || Py_IS_TYPE(b, &NodeMapType)))
        Py_RETURN_NOTIMPLEMENTED;
    int equal = PyObject_Length(b) == ((NodeMap *)a)->count;
    if (PyErr_Occurred()) return NULL;
    if (equal) {
        PyObject *it = nm_make_iter((NodeMap *)a, 2), *kv;
        if (!it) return NULL;
        while (equal && (kv = PyIter_Next(it))) {
            PyObject *other = PyObject_GetItem(b, PyTuple_GET_ITEM(kv, 0));
            if (!other) {
                if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                    Py_DECREF(kv);
                    Py_DECREF(it);
                    return NULL;
                }
                PyErr_Clear();
                equal = 0;
            } else {
                equal = PyObject_RichCompareBool(PyTuple_GET_ITEM(kv, 1), other, Py_EQ);
                Py_DECREF(other);
            }
            Py_DECREF(kv);
            if (equal < 0) {
                Py_DECREF(it);
                return NULL;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyObject *nm_reduce(NodeMap *m, PyObject *Py_UNUSED(x)) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (PyDict_Update(d, (PyObject *)m) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(O(N))", Py_TYPE(m), d);
}

static PyObject *nm_sizeof(NodeMap *m, PyObject *Py_UNUSED(x)) {
    size_t size = sizeof(NodeMap);
    if (!m->base) size += m->data_len + (size_t)m->nflat * sizeof(size_t) + m->cap * sizeof(uint64_t);
    return PyLong_FromSize_t(size);
}

static PyObject *nm_changed(NodeMap *m, PyObject *Py_UNUSED(x)) {
    return PyLong_FromSsize_t(m->over ? PyDict_GET_SIZE(m->over) : 0);
}

/* Whether an encoded value holds anything (not b"", not an empty tuple). */
static inline int value_truthy(const unsigned char *v, Py_ssize_t vlen) {
    return vlen > 2 || (vlen > 0 && (vlen < 2 || v[0] || v[1]));
}

typedef struct {
    PyObject *list;
    int rdtype;         /* -1: any owner with data */
    unsigned long long records;
} Scan;

static int scan_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                      Py_ssize_t vlen, void *arg) {
    Scan *sc = arg;
    if (!value_truthy(v, vlen)) return 0;
    int take = sc->rdtype < 0;
    Py_ssize_t pos = 0, len;
    const unsigned char *b;
    int r;
    while ((r = value_next(v, vlen, &pos, &b, &len)) > 0) {
        if (len >= 4) {
            sc->records += (unsigned)b[2] << 8 | b[3];
            if (((b[0] << 8) | b[1]) == sc->rdtype) take = 1;
        }
    }
    if (r < 0) return -1;
    if (!take || !sc->list) return 0;
    PyObject *key = PyBytes_FromStringAndSize((const char *)k, klen);
    if (!key) return -1;
    int rc = PyList_Append(sc->list, key);
    Py_DECREF(key);
    return rc;
}

/* map.owners(rdtype=-1): the keys of the owners with data (with an RRset of ``rdtype``,
 * if given), in the map's order. */
static PyObject *nm_owners(NodeMap *m, PyObject *args) {
    int rdtype = -1;
    if (!PyArg_ParseTuple(args, "|i:owners", &rdtype)) return NULL;
    Scan sc = {PyList_New(0), rdtype, 0};
    if (!sc.list) return NULL;
    if (nm_each(m, scan_visit, &sc) < 0) {
        Py_DECREF(sc.list);
        return NULL;
    }
    return sc.list;
}

static int count_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                       Py_ssize_t vlen, void *arg) {
    *(Py_ssize_t *)arg += value_truthy(v, vlen);
    return 0;
}

/* map.owner_count(): how many owners hold data (the empty non-terminals left out). */
static PyObject *nm_owner_count(NodeMap *m, PyObject *Py_UNUSED(x)) {
    Py_ssize_t n = 0;
    if (nm_each(m, count_visit, &n) < 0) return NULL;
    return PyLong_FromSsize_t(n);
}

/* map.count_below(keys): for each key of the sequence, how many keys of the map are names
 * strictly below it (empty non-terminals count). One pass over the map: each map key's
 * proper suffixes (at its label boundaries) are looked up among the keys asked, in a hash
 * table of them, and only those of a length some asked key has; so the cost is the map's
 * size whatever the number of keys asked. An edit that empties owners asks this of them
 * and of their ancestors. */
typedef struct {
    PyObject *keys;              /* a tuple of bytes, held: the table points into them */
    Py_ssize_t *slots;           /* open addressing: a key's index + 1, or 0 */
    size_t mask;
    Py_ssize_t *counts;
    unsigned char lens[32];      /* a bit per key length (1..255) asked */
} Below;

static size_t below_hash(const unsigned char *p, Py_ssize_t n) {
    size_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void below_find(Below *b, const unsigned char *p, Py_ssize_t n) {
    if (n > 255 || !(b->lens[n >> 3] & (1 << (n & 7)))) return;
    for (size_t i = below_hash(p, n) & b->mask; b->slots[i]; i = (i + 1) & b->mask) {
        PyObject *q = PyTuple_GET_ITEM(b->keys, b->slots[i] - 1);
        if (PyBytes_GET_SIZE(q) == n && memcmp(PyBytes_AS_STRING(q), p, (size_t)n) == 0)
            b->counts[b->slots[i] - 1]++;
    }
}

static int below_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                       Py_ssize_t vlen, void *arg) {
    Py_ssize_t pos = klen ? k[0] + 1 : 0; /* the proper suffixes: from the second label on */
    while (pos < klen) {
        below_find(arg, k + pos, klen - pos);
        if (!k[pos]) break; /* the root label: the last suffix */
        pos += k[pos] + 1;
    }
    return 0;
}

static PyObject *nm_count_below(NodeMap *m, PyObject *keys) {
    Below b = {PySequence_Tuple(keys), NULL, 0, NULL, {0}};
    if (!b.keys) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(b.keys);
    PyObject *out = NULL;
    size_t size = 8;
    while (size < (size_t)n * 2 + 1) size <<= 1;
    b.mask = size - 1;
    b.slots = PyMem_Calloc(size, sizeof(Py_ssize_t));
    b.counts = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (!b.slots || !b.counts) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(b.keys, i);
        if (!PyBytes_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "keys is a sequence of bytes");
            goto done;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(k);
        if (len < 1 || len > 255) continue; /* no map key's suffix is that long: 0 below it */
        b.lens[len >> 3] |= (unsigned char)(1 << (len & 7));
        size_t j = below_hash((const unsigned char *)PyBytes_AS_STRING(k), len) & b.mask;
        while (b.slots[j]) j = (j + 1) & b.mask;
        b.slots[j] = i + 1;
    }
    if (nm_each(m, below_visit, &b) < 0) goto done;
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *c = PyLong_FromSsize_t(b.counts[i]);
        if (!c) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, c);
    }
done:
    PyMem_Free(b.slots);
    PyMem_Free(b.counts);
    Py_DECREF(b.keys);
    return out;
}

/* map.record_count(): the records of every node (their blobs' count fields). */
static PyObject *nm_record_count(NodeMap *m, PyObject *Py_UNUSED(x)) {
    Scan sc = {NULL, -2, 0};
    if (nm_each(m, scan_visit, &sc) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(sc.records);
}

/* map.to_bytes(): the map as one bytes object, for NodeMap.from_bytes in a later run:
 * "ZKNM1" then each entry as [key length (1)][key][value length (4, big-endian)][value]. */
static int dump_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                      Py_ssize_t vlen, void *arg) {
    unsigned char **o = arg;
    unsigned char *p = *o;
    p[0] = (unsigned char)klen;
    memcpy(p + 1, k, (size_t)klen);
    p += 1 + klen;
    p[0] = (unsigned char)(vlen >> 24); p[1] = (vlen >> 16) & 0xFF; p[2] = (vlen >> 8) & 0xFF; p[3] = vlen & 0xFF;
    if (vlen) memcpy(p + 4, v, (size_t)vlen);
    *o = p + 4 + vlen;
    return 0;
}

static int size_visit(const unsigned char *k, Py_ssize_t klen, const unsigned char *v,
                      Py_ssize_t vlen, void *arg) {
    *(size_t *)arg += 5 + (size_t)klen + (size_t)vlen;
    return 0;
}

#define NM_MAGIC "ZKNM1"

static PyObject *nm_to_bytes(NodeMap *m, PyObject *Py_UNUSED(x)) {
    size_t size = 5;
    if (nm_each(m, size_visit, &size) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!out) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(o, NM_MAGIC, 5);
    o += 5;
    if (nm_each(m, dump_visit, &o) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* map.dump_part(start, most) -> (bytes, next): to_bytes' output from flat entry ``start``
 * on, whole entries up to ``most`` octets (at least one), and where the next part starts;
 * the parts of 0, next, ... joined are to_bytes(). A map with changes beside its buffer
 * is refused (``compacted`` first). */
static PyObject *nm_dump_part(NodeMap *m, PyObject *args) {
    Py_ssize_t start, most;
    if (!PyArg_ParseTuple(args, "nn:dump_part", &start, &most)) return NULL;
    if (m->over && PyDict_GET_SIZE(m->over)) {
        PyErr_SetString(PyExc_ValueError, "a map with changes beside its buffer: compacted() first");
        return NULL;
    }
    NodeMap *f = NM_FLAT(m);
    if (start < 0 || start > f->nflat) {
        PyErr_SetString(PyExc_IndexError, "start out of range");
        return NULL;
    }
    size_t size = start == 0 ? 5 : 0;
    Py_ssize_t e = start;
    while (e < f->nflat) {
        const unsigned char *k, *v;
        Py_ssize_t klen, vlen;
        nm_entry(f, e, &k, &klen, &v, &vlen);
        size_t es = 5 + (size_t)klen + (size_t)vlen;
        if (e > start && size + es > (size_t)most) break;
        size += es;
        e++;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!out) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    if (start == 0) {
        memcpy(o, NM_MAGIC, 5);
        o += 5;
    }
    for (Py_ssize_t i = start; i < e; i++) {
        const unsigned char *k, *v;
        Py_ssize_t klen, vlen;
        nm_entry(f, i, &k, &klen, &v, &vlen);
        dump_visit(k, klen, v, vlen, &o);
    }
    return Py_BuildValue("(Nn)", out, e);
}

/* map.compacted(): this map, or, with changes beside its buffer, the same in a new one. */
static PyObject *nm_compacted(NodeMap *m, PyObject *Py_UNUSED(x)) {
    if (m->over && PyDict_GET_SIZE(m->over)) return nm_flat_of((PyObject *)m);
    Py_INCREF(m);
    return (PyObject *)m;
}

/* NodeMap.from_bytes(data): the map that to_bytes wrote (any bytes-like object);
 * ValueError if ``data`` is not one. */
static PyObject *nm_from_bytes(PyObject *cls, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = b.buf, *end = p + b.len;
    NodeMap *f = NULL;
    if (b.len < 5 || memcmp(p, NM_MAGIC, 5) != 0) {
        PyErr_SetString(PyExc_ValueError, "not a node map");
        goto fail;
    }
    p += 5;
    f = nm_alloc();
    if (!f) goto fail;
    Builder bl = {f, 0, 0};
    if (end > p) {
        f->data = PyMem_Malloc((size_t)(end - p));
        if (!f->data) {
            PyErr_NoMemory();
            goto fail;
        }
        bl.dcap = (size_t)(end - p);
    }
    while (p < end) {
        Py_ssize_t klen = p[0];
        if (end - p < 5 + klen) goto bad;
        const unsigned char *k = p + 1, *q = p + 1 + klen;
        Py_ssize_t vlen = (Py_ssize_t)q[0] << 24 | (Py_ssize_t)q[1] << 16 | q[2] << 8 | q[3];
        if (end - (q + 4) < vlen) goto bad;
        if (value_count(q + 4, vlen) < 0) goto fail;
        if (nm_append(f, &bl.dcap, &bl.ocap, k, klen, q + 4, vlen) < 0) goto fail;
        p = q + 4 + vlen;
    }
    if (nm_index(f, NULL) < 0) goto fail;
    PyBuffer_Release(&b);
    return (PyObject *)f;
bad:
    PyErr_SetString(PyExc_ValueError, "a truncated node map");
fail:
    PyBuffer_Release(&b);
    Py_XDECREF(f);
    return NULL;
}

static PyMethodDef nm_methods[] = {
    {"get", (PyCFunction)(void (*)(void))nm_get, METH_FASTCALL, "the node of a key, or default"},
    {"keys", (PyCFunction)nm_keys, METH_NOARGS, "an iterator of the keys"},
    {"values", (PyCFunction)nm_values, METH_NOARGS, "an iterator of the nodes"},
    {"items", (PyCFunction)nm_items, METH_NOARGS, "an iterator of (key, node)"},
    {"updated", (PyCFunction)nm_updated, METH_O,
     "updated(changes): a new map with changes (key -> node, or None: removed) applied"},
    {"consume", (PyCFunction)nm_consume, METH_O | METH_CLASS,
     "consume(d): the map of dict d's items, d emptied on the way"},
    {"from_rows", (PyCFunction)nm_from_rows, METH_VARARGS | METH_CLASS,
     "from_rows(rows, sortkeys=False): a map of (key or sort key, encoded node) rows"},
    {"__reduce__", (PyCFunction)nm_reduce, METH_NOARGS, NULL},
    {"__sizeof__", (PyCFunction)nm_sizeof, METH_NOARGS, NULL},
    {"owners", (PyCFunction)nm_owners, METH_VARARGS,
     "owners(rdtype=-1): keys of the owners with data (with an RRset of rdtype, if given)"},
    {"record_count", (PyCFunction)nm_record_count, METH_NOARGS, "the records of every node"},
    {"owner_count", (PyCFunction)nm_owner_count, METH_NOARGS, "how many owners hold data"},
    {"count_below", (PyCFunction)nm_count_below, METH_O,
     "for each key of a list, how many keys of the map are names below it"},
    {"to_bytes", (PyCFunction)nm_to_bytes, METH_NOARGS, "the map as bytes, for from_bytes"},
    {"dump_part", (PyCFunction)nm_dump_part, METH_VARARGS,
     "dump_part(start, most) -> (bytes, next): to_bytes() a part at a time"},
    {"compacted", (PyCFunction)nm_compacted, METH_NOARGS,
     "this map, or the same with its changes folded into a new buffer"},
    {"from_bytes", (PyCFunction)nm_from_bytes, METH_O | METH_CLASS, "the map of to_bytes' bytes"},
    {"changed_count", (PyCFunction)nm_changed, METH_NOARGS,
     "owners kept beside the shared buffer (changed since it was made)"},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods nm_as_mapping = {(lenfunc)nm_len, (binaryfunc)nm_getitem, NULL};
static PySequenceMethods nm_as_sequence = {.sq_contains = (objobjproc)nm_contains};

static PyTypeObject NodeMapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zonekeeper.proto._axfrbuild.NodeMap",
    .tp_basicsize = sizeof(NodeMap),
    .tp_dealloc = (destructor)nm_dealloc,
    .tp_as_mapping = &nm_as_mapping,
    .tp_as_sequence = &nm_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A node table in one buffer: a read-only dict of key -> node.",
    .tp_iter = (getiterfunc)nm_iter,
    .tp_richcompare = nm_richcompare,
    .tp_methods = nm_methods,
    .tp_new = nm_new,
};

static PyTypeObject NodeMapIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zonekeeper.proto._axfrbuild.NodeMapIterator",
    .tp_basicsize = sizeof(NodeMapIter),
    .tp_dealloc = (destructor)nmi_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)nmi_next,
};

/* What _udpfast.c takes through the capsule "zonekeeper.proto._axfrbuild.NODEMAP_API". */
typedef struct {
    size_t size; /* sizeof(NodeMapAPI): the reader checks it is the one it was built for */
    PyTypeObject *type;
    int (*lookup)(PyObject *map, PyObject *key, const unsigned char **v, Py_ssize_t *vlen);
    int (*value_next)(const unsigned char *v, Py_ssize_t vlen, Py_ssize_t *pos,
                      const unsigned char **blob, Py_ssize_t *len);
} NodeMapAPI;

static NodeMapAPI nodemap_api = {sizeof(NodeMapAPI), &NodeMapType, nm_lookup, value_next};

/* One RRset blob of owner ``key`` into the chunk (``first``: the owner's first RR). */
static int r_blob(R *r, PyObject *key, int apex, const unsigned char *blob, Py_ssize_t end,
                  int *first) {
    if (end < 4) return 0;
    int rdtype = (blob[0] << 8) | blob[1];
    if (apex && rdtype == 6) return 0;
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
        if (head_rr(r, key, rdtype, blob, pos, nxt, *first) < 0) return -1;
        *first = 0;
        pos = nxt;
    }
    return 0;
}

/* Owner ``key``'s RRs: its node a Python one (``node``: bytes or a tuple of bytes) or,
 * with ``node`` NULL, the encoded value v[:vlen] of a NodeMap. */
static int r_owner(R *r, PyObject *key, PyObject *node, const unsigned char *v, Py_ssize_t vlen) {
    if (r->pos >= POINTER_LIMIT && r_close(r) < 0) return -1;
    int apex = PyBytes_GET_SIZE(key) == r->origin_len
               && memcmp(PyBytes_AS_STRING(key), r->origin, r->origin_len) == 0;
    int first = 1;
    if (!node) {
        Py_ssize_t pos = 0, len;
        const unsigned char *blob;
        int got;
        while ((got = value_next(v, vlen, &pos, &blob, &len)) > 0) {
            if (r_blob(r, key, apex, blob, len, &first) < 0) return -1;
        }
        return got;
    }
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
        if (r_blob(r, key, apex, (const unsigned char *)PyBytes_AS_STRING(bo),
                   PyBytes_GET_SIZE(bo), &first) < 0)
            return -1;
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
    if (!PyArg_ParseTuple(args, "O!Oy#llllnn", &PyList_Type, &keys, &nodes,
                          &origin, &origin_len, &base, &first_base, &most, &chunk_end, &start,
                          &max_buckets))
        return NULL;
    int flat = Py_IS_TYPE(nodes, &NodeMapType);
    if (!flat && !PyDict_Check(nodes)) {
        PyErr_SetString(PyExc_TypeError, "nodes is a dict or a NodeMap");
        return NULL;
    }
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
        PyObject *node = NULL;
        const unsigned char *v = NULL;
        Py_ssize_t vlen = 0;
        if (flat) {
            int got = nm_lookup(nodes, key, &v, &vlen);
            if (got < 0) goto fail;
            if (!got || !vlen || (vlen == 2 && !v[0] && !v[1])) continue;
        } else {
            node = PyDict_GetItemWithError(nodes, key);
            if (!node) {
                if (PyErr_Occurred()) goto fail;
                continue;
            }
            int truthy = PyObject_IsTrue(node);
            if (truthy < 0) goto fail;
            if (!truthy) continue;
        }
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
        if (r_owner(&r, key, node, v, vlen) < 0 || PyList_Append(taken, key) < 0) goto fail;
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
static PyObject *blob_from(Py_ssize_t rdtype, Py_ssize_t ttl, PyObject **items, Py_ssize_t n) {
    if (rdtype < 0 || rdtype > 0xFFFF || ttl < 0 || ttl > 0xFFFFFFFFLL || n > 0xFFFF) {
        PyErr_SetString(PyExc_OverflowError, "type, TTL or count out of range");
        return NULL;
    }
    Py_ssize_t size = 4;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "an rdata is bytes");
            return NULL;
        }
        if (PyBytes_GET_SIZE(items[i]) > 0xFFFF) {
            PyErr_SetString(PyExc_OverflowError, "an rdata is over 65535 octets");
            return NULL;
        }
        size += 12 + PyBytes_GET_SIZE(items[i]);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (!out) return NULL;
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
    return out;
}

static PyObject *make_blob(PyObject *self, PyObject *args) {
    Py_ssize_t rdtype, ttl; /* "n": an OverflowError past Py_ssize_t, not a wrap */
    PyObject *given;
    if (!PyArg_ParseTuple(args, "nnO", &rdtype, &ttl, &given)) return NULL;
    PyObject *rdatas = PySequence_Fast(given, "rdatas is a sequence of bytes");
    if (!rdatas) return NULL;
    PyObject *out = blob_from(rdtype, ttl, PySequence_Fast_ITEMS(rdatas), PySequence_Fast_GET_SIZE(rdatas));
    Py_DECREF(rdatas);
    return out;
}

/* Let a thread waiting for the GIL (the event loop, a query) take it, in owner_nodes and
 * rrset_rows, which may run for a second or more on a large zone: every YIELD_EVERY
 * owners they call ``breather``, a Python function that does nothing. Entering it runs the
 * interpreter's check for a thread that asked for the GIL, which hands it over as a Python
 * loop does. (Letting go of the GIL and taking it back, Py_BEGIN/END_ALLOW_THREADS, does
 * not when done often: a waiting thread asks for the GIL only after a switch interval with
 * no switch, and each such release counts as one, so it kept the waiter out for up to 1.8 s
 * at a time, measured. The NodeMap's loops do it only every NM_BIG owners, tens of
 * milliseconds apart, where it works.) */
#define YIELD_EVERY 256
static PyObject *breather;
static int yield_gil(void) {
    PyObject *r = PyObject_CallNoArgs(breather);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The next (name, {type: RRsetData}) pair of ``it`` (a new reference; NULL at the end or
 * with an error set), every YIELD_EVERY of them letting a waiting thread have the GIL. */
static PyObject *next_owner(PyObject *it, Py_ssize_t *seen, PyObject **name, PyObject **types) {
    if (++*seen % YIELD_EVERY == 0 && yield_gil() < 0) return NULL;
    PyObject *pair = PyIter_Next(it);
    if (!pair) return NULL;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyDict_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_SetString(PyExc_TypeError, "by_owner: (name, {type: RRsetData}) pairs");
        Py_DECREF(pair);
        return NULL;
    }
    *name = PyTuple_GET_ITEM(pair, 0);
    *types = PyTuple_GET_ITEM(pair, 1);
    return pair;
}

/* snapshot.compile_content: the node of each owner of a zone's content, as
 * compile_nodes makes them from ``served_rrsets()``.
 *
 * owner_nodes(by_owner, key_of, rdata_wire, a_cls, aaaa_cls, ns_owners, fast) -> dict
 *
 * by_owner: (name, {type: RRsetData}) pairs (ZoneContent.by_owner()); key_of(name): the
 * node key (rrwire.name_key), asked where the name has no ``_key`` bytes of its own (a
 * zonefile._Name has); rdata_wire(rdata): rrwire.rdata_wire, asked for every rdata but A
 * and AAAA (their address text parsed here, as rrwire.rdata_wire does) and those of the
 * classes of ``fast`` (fast_wire). Disabled records
 * are left out, an RRset with none left is not served, an owner with none is not in the
 * table; a node of several RRsets is their blobs in type order (make_node). The key of
 * each owner with an NS RRset is appended to ``ns_owners`` (for find_cuts). */
static PyObject *s_key, *s_rdtype, *s_ttl, *s_records, *s_rdata, *s_disabled, *s_address, *s_text,
    *s_target;

static int by_type(const void *a, const void *b) {
    const unsigned char *x = (const unsigned char *)PyBytes_AS_STRING(*(PyObject *const *)a);
    const unsigned char *y = (const unsigned char *)PyBytes_AS_STRING(*(PyObject *const *)b);
    return memcmp(x, y, 2);
}

static PyObject *address_wire(PyObject *rd, int family) {
    PyObject *text = PyObject_GetAttr(rd, s_address);
    if (!text) return NULL;
    unsigned char packed[16];
    const char *p = PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : NULL;
    PyObject *out = NULL;
    if (p && inet_pton(family, p, packed) == 1)
        out = PyBytes_FromStringAndSize((const char *)packed, family == AF_INET ? 4 : 16);
    Py_DECREF(text);
    if (!out && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "an address rdata holds no address text");
    return out;
}

/* The wire forms rrwire.rdata_wire writes for the common types with names or strings,
 * made here: ``fast`` is (classes of one name: CNAME, DNAME, NS, PTR; MX; SRV; TXT). A
 * name's form is its labels, each after its length, as dnspython's to_wire writes an
 * absolute name. 1: *out set; 0: not one of these, or a value of another kind
 * (rdata_wire decides, and raises what it raises); -1: an error. */
static PyObject *s_labels, *s_preference, *s_exchange, *s_priority, *s_weight, *s_port, *s_strings;

static Py_ssize_t name_wire_into(PyObject *name, unsigned char *buf) {
    PyObject *labels = PyObject_GetAttr(name, s_labels);
    if (!labels) return -1;
    Py_ssize_t len = 0, n = PyTuple_Check(labels) ? PyTuple_GET_SIZE(labels) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *l = PyTuple_GET_ITEM(labels, i);
        if (!PyBytes_Check(l)) { len = 0; break; }
        Py_ssize_t ll = PyBytes_GET_SIZE(l);
        /* only the last label empty (absolute), none over 63, the whole within 255 */
        if (ll > 63 || (ll == 0) != (i == n - 1) || len + 1 + ll > 255) { len = 0; break; }
        buf[len++] = (unsigned char)ll;
        memcpy(buf + len, PyBytes_AS_STRING(l), (size_t)ll);
        len += ll;
    }
    Py_DECREF(labels);
    return len;
}

static int u16_attr(PyObject *o, PyObject *attr, unsigned char *at) {
    PyObject *v = PyObject_GetAttr(o, attr);
    if (!v) return -1;
    long x = PyLong_Check(v) ? PyLong_AsLong(v) : -1;
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) PyErr_Clear();
    if (x < 0 || x > 65535) return 0;
    at[0] = (unsigned char)(x >> 8);
    at[1] = (unsigned char)(x & 0xFF);
    return 1;
}

static int fast_wire(PyObject *rd, PyObject *fast, PyObject **out) {
    PyObject *cls = (PyObject *)Py_TYPE(rd), *one = PyTuple_GET_ITEM(fast, 0);
    unsigned char buf[6 + 255];
    Py_ssize_t head = -1;
    PyObject *name_attr = s_target;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(one); i++)
        if (cls == PyTuple_GET_ITEM(one, i)) head = 0;
    if (cls == PyTuple_GET_ITEM(fast, 1)) {  /* MX: preference, exchange */
        int r = u16_attr(rd, s_preference, buf);
        if (r <= 0) return r;
        head = 2;
        name_attr = s_exchange;
    } else if (cls == PyTuple_GET_ITEM(fast, 2)) {  /* SRV: priority, weight, port, target */
        int r = u16_attr(rd, s_priority, buf);
        if (r > 0) r = u16_attr(rd, s_weight, buf + 2);
        if (r > 0) r = u16_attr(rd, s_port, buf + 4);
        if (r <= 0) return r;
        head = 6;
    } else if (cls == PyTuple_GET_ITEM(fast, 3)) {  /* TXT: each string after its length */
        PyObject *strings = PyObject_GetAttr(rd, s_strings);
        if (!strings) return -1;
        Py_ssize_t total = 0, n = PyTuple_Check(strings) ? PyTuple_GET_SIZE(strings) : -1;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *one_s = PyTuple_GET_ITEM(strings, i);
            if (!PyBytes_Check(one_s) || PyBytes_GET_SIZE(one_s) > 255) n = -1;
            else total += 1 + PyBytes_GET_SIZE(one_s);
        }
        if (n < 0) {
            Py_DECREF(strings);
            return 0;
        }
        *out = PyBytes_FromStringAndSize(NULL, total);
        if (*out) {
            unsigned char *p = (unsigned char *)PyBytes_AS_STRING(*out);
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *one_s = PyTuple_GET_ITEM(strings, i);
                *p++ = (unsigned char)PyBytes_GET_SIZE(one_s);
                memcpy(p, PyBytes_AS_STRING(one_s), (size_t)PyBytes_GET_SIZE(one_s));
                p += PyBytes_GET_SIZE(one_s);
            }
        }
        Py_DECREF(strings);
        return *out ? 1 : -1;
    }
    if (head < 0) return 0;
    PyObject *name = PyObject_GetAttr(rd, name_attr);
    if (!name) return -1;
    Py_ssize_t len = name_wire_into(name, buf + head);
    Py_DECREF(name);
    if (len <= 0) return (int)len;
    *out = PyBytes_FromStringAndSize((const char *)buf, head + len);
    return *out ? 1 : -1;
}

static PyObject *owner_nodes(PyObject *self, PyObject *args) {
    PyObject *items, *key_of, *wire_of, *a_cls, *aaaa_cls, *ns_owners, *fast;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!", &items, &key_of, &wire_of, &a_cls, &aaaa_cls,
                          &PyList_Type, &ns_owners, &PyTuple_Type, &fast))
        return NULL;
    if (PyTuple_GET_SIZE(fast) != 4 || !PyTuple_Check(PyTuple_GET_ITEM(fast, 0))) {
        PyErr_SetString(PyExc_TypeError, "fast is (name classes, MX, SRV, TXT)");
        return NULL;
    }
    /* Sized for the owners and the empty non-terminals add_ents puts in later (an eighth
     * more at a million records): a growing dict's last resizes copy it whole, ~50 ms each
     * without a GIL switch. */
    Py_ssize_t hint = PyObject_LengthHint(items, 0);
    if (hint < 0) return NULL;
    PyObject *out = _PyDict_NewPresized(hint + hint / 4);
    PyObject *it = PyObject_GetIter(items);
    PyObject *pair = NULL, *key = NULL, *blobs = NULL, *wires = NULL, *typed = NULL;
    if (!out || !it) goto fail;
    Py_ssize_t seen = 0;
    PyObject *name, *types;
    while ((pair = next_owner(it, &seen, &name, &types))) {
        key = PyObject_GetAttr(name, s_key);
        if (!key || !PyBytes_Check(key)) {
            if (!key && !PyErr_ExceptionMatches(PyExc_AttributeError)) goto fail;
            PyErr_Clear();
            Py_XDECREF(key);
            key = PyObject_CallOneArg(key_of, name);
            if (!key) goto fail;
            if (!PyBytes_Check(key)) {
                PyErr_SetString(PyExc_TypeError, "a node key is bytes");
                goto fail;
            }
        }
        blobs = PyList_New(0);
        /* (type, RRset) pairs and records held here, not borrowed: rdata_wire runs Python */
        typed = PyDict_Items(types);
        if (!blobs || !typed) goto fail;
        for (Py_ssize_t t = 0; t < PyList_GET_SIZE(typed); t++) {
            PyObject *rdtype_o = PyTuple_GET_ITEM(PyList_GET_ITEM(typed, t), 0);
            PyObject *rrset = PyTuple_GET_ITEM(PyList_GET_ITEM(typed, t), 1);
            Py_ssize_t rdtype = PyLong_AsSsize_t(rdtype_o);
            if (rdtype == -1 && PyErr_Occurred()) goto fail;
            PyObject *ttl_o = PyObject_GetAttr(rrset, s_ttl);
            if (!ttl_o) goto fail;
            Py_ssize_t ttl = PyLong_AsSsize_t(ttl_o);
            Py_DECREF(ttl_o);
            if (ttl == -1 && PyErr_Occurred()) goto fail;
            PyObject *records = PyObject_GetAttr(rrset, s_records);
            if (!records) goto fail;
            PyObject *seq = PySequence_Tuple(records);
            Py_DECREF(records);
            if (!seq) goto fail;
            wires = PyList_New(0);
            if (!wires) { Py_DECREF(seq); goto fail; }
            Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *rec = PySequence_Fast_GET_ITEM(seq, i);
                PyObject *off = PyObject_GetAttr(rec, s_disabled);
                if (!off) { Py_DECREF(seq); goto fail; }
                int disabled = PyObject_IsTrue(off);
                Py_DECREF(off);
                if (disabled < 0) { Py_DECREF(seq); goto fail; }
                if (disabled) continue;
                PyObject *rd = PyObject_GetAttr(rec, s_rdata);
                if (!rd) { Py_DECREF(seq); goto fail; }
                PyObject *w = NULL;
                if ((PyObject *)Py_TYPE(rd) == a_cls) w = address_wire(rd, AF_INET);
                else if ((PyObject *)Py_TYPE(rd) == aaaa_cls) w = address_wire(rd, AF_INET6);
                else {
                    int r = fast_wire(rd, fast, &w);
                    if (r == 0) w = PyObject_CallOneArg(wire_of, rd);
                    else if (r < 0) w = NULL;
                }
                Py_DECREF(rd);
                if (!w || PyList_Append(wires, w) < 0) { Py_XDECREF(w); Py_DECREF(seq); goto fail; }
                Py_DECREF(w);
            }
            Py_DECREF(seq);
            if (PyList_GET_SIZE(wires) > 0) {
                PyObject *blob = blob_from(rdtype, ttl, &PyList_GET_ITEM(wires, 0), PyList_GET_SIZE(wires));
                if (!blob || PyList_Append(blobs, blob) < 0) { Py_XDECREF(blob); goto fail; }
                Py_DECREF(blob);
                if (rdtype == 2 && PyList_Append(ns_owners, key) < 0) goto fail;
            }
            Py_CLEAR(wires);
        }
        Py_ssize_t nb = PyList_GET_SIZE(blobs);
        if (nb > 0) {
            PyObject *node;
            if (nb == 1) {
                node = PyList_GET_ITEM(blobs, 0);
                Py_INCREF(node);
            } else {
                qsort(&PyList_GET_ITEM(blobs, 0), nb, sizeof(PyObject *), by_type);
                node = PyList_AsTuple(blobs);
                if (!node) goto fail;
            }
            int rc = PyDict_SetItem(out, key, node);
            Py_DECREF(node);
            if (rc < 0) goto fail;
        }
        Py_CLEAR(typed);
        Py_CLEAR(blobs);
        Py_CLEAR(key);
        Py_CLEAR(pair);
    }
    if (PyErr_Occurred()) goto fail;
    Py_DECREF(it);
    return out;
fail:
    Py_XDECREF(typed);
    Py_XDECREF(pair);
    Py_XDECREF(key);
    Py_XDECREF(blobs);
    Py_XDECREF(wires);
    Py_XDECREF(it);
    Py_XDECREF(out);
    return NULL;
}

/* zone_store._rrset_rows: the ``rrsets`` rows of a zone's content, (owner as
 * repo.row_name gives it, type, TTL, records as RRsetData.records_json writes them), for
 * each RRset with records, in the content's order.
 *
 * rrset_rows(by_owner, row_name, rdata_text, json_str, a_cls, aaaa_cls, name_classes
 *            [, txt_cls, mx_cls, srv_cls])
 *
 * An owner's text is its ``_text`` (zonefile._Name keeps the text dnspython prints) in
 * lower case, else row_name(name). A record's content is its address for A and AAAA
 * (kept as canonical text), its target's ``_text`` for the classes of ``name_classes``
 * (NS, CNAME, PTR: a name's text is the rdata's), a TXT's strings quoted where each is
 * printable ASCII but the quote and backslash, an MX's or SRV's numbers then its target's
 * ``_text``, else rdata_text(rdata); written as json_str writes a string (a quote or a
 * backslash escaped here, anything not printable ASCII by json_str). */
typedef struct { char *p; Py_ssize_t len, cap; } Out;

static int out_put(Out *o, const char *p, Py_ssize_t n) {
    if (o->len + n > o->cap) {
        Py_ssize_t cap = (o->len + n) * 2 + 64;
        char *q = PyMem_Realloc(o->p, cap);
        if (!q) { PyErr_NoMemory(); return -1; }
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

/* A str's text in JSON (as json.encoder.encode_basestring_ascii writes it). */
static int out_json(Out *o, PyObject *text, PyObject *json_str) {
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "a record's text is a str");
        return -1;
    }
    if (PyUnicode_IS_ASCII(text)) {
        /* Printable ASCII: written here, a quote or backslash escaped with a backslash as
         * json.dumps escapes them (a TXT's text is quoted strings); anything else (control
         * characters, other scripts) through json_str. */
        const char *p = (const char *)PyUnicode_DATA(text);
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        int plain = 1;
        for (Py_ssize_t i = 0; i < n && plain; i++)
            plain = p[i] >= 0x20 && p[i] < 0x7F;
        if (plain) {
            if (out_put(o, "\"", 1) < 0) return -1;
            Py_ssize_t from = 0;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (p[i] != '"' && p[i] != '\\') continue;
                if (out_put(o, p + from, i - from) < 0 || out_put(o, "\\", 1) < 0) return -1;
                from = i;
            }
            return out_put(o, p + from, n - from) < 0 || out_put(o, "\"", 1) < 0 ? -1 : 0;
        }
    }
    PyObject *quoted = PyObject_CallOneArg(json_str, text);
    if (!quoted) return -1;
    int rc = -1;
    if (PyUnicode_Check(quoted) && PyUnicode_IS_ASCII(quoted))
        rc = out_put(o, (const char *)PyUnicode_DATA(quoted), PyUnicode_GET_LENGTH(quoted));
    else
        PyErr_SetString(PyExc_TypeError, "json_str gives ASCII text");
    Py_DECREF(quoted);
    return rc;
}

/* ``obj._text`` if it is a str, else NULL (an error set only if it is not an
 * AttributeError). */
static PyObject *kept_text(PyObject *obj) {
    PyObject *t = PyObject_GetAttr(obj, s_text);
    if (t && PyUnicode_Check(t)) return t;
    Py_XDECREF(t);
    if (!t && PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
    return NULL;
}

/* A TXT's text as model.rdata_text writes it where every string is printable ASCII but the
 * quote and the backslash: each string quoted, one space between; else NULL (no error set:
 * the caller asks Python). */
static PyObject *txt_text(PyObject *rd) {
    PyObject *strings = PyObject_GetAttr(rd, s_strings);
    if (!strings) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = PyTuple_Check(strings) ? PyTuple_GET_SIZE(strings) : -1, len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyTuple_GET_ITEM(strings, i);
        if (!PyBytes_Check(b)) goto done;
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(b);
        for (Py_ssize_t j = 0; j < PyBytes_GET_SIZE(b); j++)
            if (p[j] < 0x20 || p[j] > 0x7E || p[j] == '"' || p[j] == '\\') goto done;
        len += PyBytes_GET_SIZE(b) + 2 + (i > 0);
    }
    if (n < 0) goto done;
    out = PyUnicode_New(len, 127);
    if (!out) {
        PyErr_Clear();
        goto done;
    }
    char *dst = (char *)PyUnicode_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyTuple_GET_ITEM(strings, i);
        if (i) *dst++ = ' ';
        *dst++ = '"';
        memcpy(dst, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
        dst += PyBytes_GET_SIZE(b);
        *dst++ = '"';
    }
done:
    Py_DECREF(strings);
    return out;
}

/* An MX's or SRV's text (``numbers`` of them, then the name ``target``) as its
 * to_styled_text writes it, where the name's text is kept; else NULL (an error set only
 * if it is not an AttributeError). */
static PyObject *numbers_then_name(PyObject *rd, PyObject **numbers, int count, PyObject *target) {
    PyObject *name = PyObject_GetAttr(rd, target);
    if (!name) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
        return NULL;
    }
    PyObject *t = kept_text(name);
    Py_DECREF(name);
    if (!t) return NULL;
    PyObject *v[3] = {NULL, NULL, NULL}, *out = NULL;
    for (int i = 0; i < count; i++) {
        v[i] = PyObject_GetAttr(rd, numbers[i]);
        if (!v[i] || !PyLong_CheckExact(v[i])) goto done;
    }
    out = count == 1 ? PyUnicode_FromFormat("%S %U", v[0], t)
                     : PyUnicode_FromFormat("%S %S %S %U", v[0], v[1], v[2], t);
done:
    if (!out && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
    for (int i = 0; i < count; i++) Py_XDECREF(v[i]);
    Py_DECREF(t);
    return out;
}

/* The classes whose text is written here besides A, AAAA and the name-only ones: TXT, MX,
 * SRV (rrset_rows' optional arguments; None: asked of Python). */
typedef struct {
    PyObject *txt, *mx, *srv;
} TextClasses;

static PyObject *record_text(PyObject *rd, PyObject *rdata_text, PyObject *a_cls,
                             PyObject *aaaa_cls, PyObject *name_classes, const TextClasses *more) {
    PyObject *cls = (PyObject *)Py_TYPE(rd);
    if (cls == more->txt) {
        PyObject *t = txt_text(rd);
        if (t) return t;
    } else if (cls == more->mx) {
        PyObject *numbers[1] = {s_preference};
        PyObject *t = numbers_then_name(rd, numbers, 1, s_exchange);
        if (t || PyErr_Occurred()) return t;
    } else if (cls == more->srv) {
        PyObject *numbers[3] = {s_priority, s_weight, s_port};
        PyObject *t = numbers_then_name(rd, numbers, 3, s_target);
        if (t || PyErr_Occurred()) return t;
    }
    if (cls == a_cls || cls == aaaa_cls) {
        PyObject *t = PyObject_GetAttr(rd, s_address);
        if (t && PyUnicode_Check(t)) return t;
        Py_XDECREF(t);
        if (!t && !PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
        PyErr_Clear();
    } else {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(name_classes); i++) {
            if (cls != PyTuple_GET_ITEM(name_classes, i)) continue;
            PyObject *target = PyObject_GetAttr(rd, s_target);
            if (!target) {
                if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return NULL;
                PyErr_Clear();
                break;
            }
            PyObject *t = kept_text(target);
            Py_DECREF(target);
            if (t || PyErr_Occurred()) return t;
            break;
        }
    }
    return PyObject_CallOneArg(rdata_text, rd);
}

static PyObject *rrset_rows(PyObject *self, PyObject *args) {
    PyObject *items, *row_name, *rdata_text, *json_str, *a_cls, *aaaa_cls, *name_classes;
    TextClasses more = {Py_None, Py_None, Py_None};
    if (!PyArg_ParseTuple(args, "OOOOOOO!|OOO", &items, &row_name, &rdata_text, &json_str, &a_cls,
                          &aaaa_cls, &PyTuple_Type, &name_classes, &more.txt, &more.mx, &more.srv))
        return NULL;
    PyObject *out = PyList_New(0);
    PyObject *it = PyObject_GetIter(items);
    PyObject *pair = NULL, *owner = NULL, *records = NULL, *typed = NULL;
    Out buf = {0};
    if (!out || !it) goto fail;
    Py_ssize_t seen = 0;
    PyObject *name, *types;
    while ((pair = next_owner(it, &seen, &name, &types))) {
        /* RRsets and records held here, not borrowed: rdata_text and json_str run Python */
        typed = PyDict_Values(types);
        if (!typed) goto fail;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(typed); k++) {
            PyObject *rrset = PyList_GET_ITEM(typed, k);
            PyObject *list = PyObject_GetAttr(rrset, s_records);
            if (!list) goto fail;
            records = PySequence_Tuple(list);
            Py_DECREF(list);
            if (!records) goto fail;
            Py_ssize_t n = PyTuple_GET_SIZE(records);
            if (n == 0) { Py_CLEAR(records); continue; }
            if (!owner) {
                PyObject *t = kept_text(name);
                if (!t && PyErr_Occurred()) goto fail;
                if (t && PyUnicode_IS_ASCII(t)) {
                    owner = PyUnicode_New(PyUnicode_GET_LENGTH(t), 127);
                    if (owner) {
                        const char *src = (const char *)PyUnicode_DATA(t);
                        char *dst = (char *)PyUnicode_DATA(owner);
                        for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(t); i++)
                            dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i];
                    }
                } else
                    owner = PyObject_CallOneArg(row_name, name);
                Py_XDECREF(t);
                if (!owner) goto fail;
            }
            buf.len = 0;
            if (out_put(&buf, "[", 1) < 0) goto fail;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *rec = PyTuple_GET_ITEM(records, i);
                PyObject *rd = PyObject_GetAttr(rec, s_rdata);
                if (!rd) goto fail;
                PyObject *text = record_text(rd, rdata_text, a_cls, aaaa_cls, name_classes, &more);
                Py_DECREF(rd);
                if (!text) goto fail;
                PyObject *off = PyObject_GetAttr(rec, s_disabled);
                int disabled = off ? PyObject_IsTrue(off) : -1;
                Py_XDECREF(off);
                int rc = disabled < 0 || (i && out_put(&buf, ",", 1) < 0) ||
                         out_put(&buf, "{\"content\":", 11) < 0 || out_json(&buf, text, json_str) < 0 ||
                         (disabled ? out_put(&buf, ",\"disabled\":true}", 17) : out_put(&buf, ",\"disabled\":false}", 18)) < 0;
                Py_DECREF(text);
                if (rc) goto fail;
            }
            if (out_put(&buf, "]", 1) < 0) goto fail;
            PyObject *ttl = PyObject_GetAttr(rrset, s_ttl);
            PyObject *rdtype = ttl ? PyObject_GetAttr(rrset, s_rdtype) : NULL;
            PyObject *json = rdtype ? PyUnicode_DecodeASCII(buf.p, buf.len, NULL) : NULL;
            PyObject *row = json ? PyTuple_Pack(4, owner, rdtype, ttl, json) : NULL;
            Py_XDECREF(ttl);
            Py_XDECREF(rdtype);
            Py_XDECREF(json);
            if (!row || PyList_Append(out, row) < 0) { Py_XDECREF(row); goto fail; }
            Py_DECREF(row);
            Py_CLEAR(records);
        }
        Py_CLEAR(typed);
        Py_CLEAR(owner);
        Py_CLEAR(pair);
    }
    if (PyErr_Occurred()) goto fail;
    Py_DECREF(it);
    PyMem_Free(buf.p);
    return out;
fail:
    PyMem_Free(buf.p);
    Py_XDECREF(typed);
    Py_XDECREF(records);
    Py_XDECREF(owner);
    Py_XDECREF(pair);
    Py_XDECREF(it);
    Py_XDECREF(out);
    return NULL;
}

/* add_ents(nodes, origin_key): rrwire.add_ents over the whole table, in C: for every owner
 * deeper than a child of the apex that holds data, each of its ancestors up to the apex
 * that is not an owner becomes one with no data (b""), stopping at the first that is. The
 * keys are wire forms (length-prefixed labels) ending with ``origin_key``. */
static PyObject *add_ents(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *nodes, *origin;
    if (!PyArg_ParseTuple(args, "O!S", &PyDict_Type, &nodes, &origin)) return NULL;
    PyObject *keys = PyDict_Keys(nodes), *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (!keys || !empty) goto fail;
    Py_ssize_t child = PyBytes_GET_SIZE(origin) + 1, seen = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        if (++seen % (YIELD_EVERY * 16) == 0 && yield_gil() < 0) goto fail;
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) == 0) {
            PyErr_SetString(PyExc_TypeError, "add_ents: the keys are wire-form names");
            goto fail;
        }
        const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(key);
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        if (len - k[0] == child) continue;  /* a child of the apex (or the apex) */
        PyObject *node = PyDict_GetItemWithError(nodes, key);
        if (!node) {
            if (PyErr_Occurred()) goto fail;
            continue;
        }
        int full = PyObject_IsTrue(node);
        if (full < 0) goto fail;
        if (!full) continue;
        Py_ssize_t stop = len - PyBytes_GET_SIZE(origin);
        for (Py_ssize_t pos = k[0] ? k[0] + 1 : 0; pos < stop; pos += k[pos] + 1) {
            PyObject *anc = PyBytes_FromStringAndSize((const char *)k + pos, len - pos);
            if (!anc) goto fail;
            int there = PyDict_Contains(nodes, anc);
            if (there == 0 && PyDict_SetItem(nodes, anc, empty) < 0) there = -1;
            Py_DECREF(anc);
            if (there < 0) goto fail;
            if (there) break;
        }
    }
    Py_DECREF(keys);
    Py_DECREF(empty);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(keys);
    Py_XDECREF(empty);
    return NULL;
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
    {"owner_nodes", owner_nodes, METH_VARARGS, "snapshot.compile_content's owners in C"},
    {"add_ents", add_ents, METH_VARARGS, "rrwire.add_ents(nodes, origin_key) over the whole table, in C"},
    {"rrset_rows", rrset_rows, METH_VARARGS, "zone_store._rrset_rows in C"},
    {"partition", partition, METH_VARARGS, "axfr._partition in C: [(owners, chunks, count, size)]"},
    {"sort_key", sort_key, METH_O, "rrwire.sort_key in C"},
    {"key_of_sort_key", key_of_sort_key, METH_O, "rrwire.key_of_sort_key in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_axfrbuild", NULL, -1, methods};

PyMODINIT_FUNC PyInit__axfrbuild(void) {
    if (PyType_Ready(&NodeMapType) < 0 || PyType_Ready(&NodeMapIterType) < 0) return NULL;
    s_key = PyUnicode_InternFromString("_key");
    s_rdtype = PyUnicode_InternFromString("rdtype");
    s_ttl = PyUnicode_InternFromString("ttl");
    s_records = PyUnicode_InternFromString("records");
    s_rdata = PyUnicode_InternFromString("rdata");
    s_disabled = PyUnicode_InternFromString("disabled");
    s_address = PyUnicode_InternFromString("address");
    PyObject *scope = PyDict_New();
    if (!scope || PyDict_SetItemString(scope, "__builtins__", PyEval_GetBuiltins()) < 0) return NULL;
    breather = PyRun_String("lambda: None", Py_eval_input, scope, scope);
    Py_DECREF(scope);
    if (!breather) return NULL;
    s_text = PyUnicode_InternFromString("_text");
    s_target = PyUnicode_InternFromString("target");
    s_labels = PyUnicode_InternFromString("labels");
    s_preference = PyUnicode_InternFromString("preference");
    s_exchange = PyUnicode_InternFromString("exchange");
    s_priority = PyUnicode_InternFromString("priority");
    s_weight = PyUnicode_InternFromString("weight");
    s_port = PyUnicode_InternFromString("port");
    s_strings = PyUnicode_InternFromString("strings");
    if (!s_key || !s_rdtype || !s_ttl || !s_records || !s_rdata || !s_disabled || !s_address ||
        !s_text || !s_target || !s_labels || !s_preference || !s_exchange || !s_priority ||
        !s_weight || !s_port || !s_strings)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *capsule = PyCapsule_New(&nodemap_api, "zonekeeper.proto._axfrbuild.NODEMAP_API", NULL);
    if (!capsule || PyModule_AddObject(m, "NODEMAP_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&NodeMapType);
    if (PyModule_AddObject(m, "NodeMap", (PyObject *)&NodeMapType) < 0) {
        Py_DECREF(&NodeMapType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
