/*
 * The UDP receive loop, in C: zonekeeper/server/udpfast.py explains the design.
 *
 * One Listener owns one UDP socket. run() loops in the calling thread with the GIL
 * released: it takes a batch of datagrams with recvmmsg, answers the ones whose answer it
 * holds (the same question, flags and EDNS record as a query Python answered before: the
 * ID and the question's case are the new query's), hands the others to a Python callback
 * (GIL held, one batch of them at a time), and sends every answer of the batch with
 * sendmmsg. The callback returns (answer or None, cacheable); a cacheable answer to a query
 * of the shape this file can key is kept for the next identical query.
 *
 * run() may be called from several threads at once (one worker per CPU): they share the
 * socket (the kernel hands each datagram to one of them) and the table, read under a
 * read lock once per batch and written under the write lock (a new answer, a clearing).
 * No thread waits for the GIL while it holds the lock, so the two cannot deadlock. Each
 * thread has its own buffers; counters are summed per batch.
 *
 * A query the table has no answer for is first tried here too (resolve_plain, GIL held),
 * for a name of a served zone with no zone cut on the way: an RRset of the asked type at
 * the name (from the node's pre-rendered blob), or the zone's SOA when there is no such
 * name and no wildcard where it would be (NXDOMAIN) or the name has no RRset of the type
 * and no CNAME (NODATA), built as Python's answer engine builds them (proto/answer.py,
 * server/handler.py). Any other case (a cut, a CNAME to follow, a wildcard, ANY, an
 * answer over the size limit, a zone not in service) goes to the callback.
 *
 * Other threads only call invalidate(), which bumps a generation; a loop empties the table
 * when it sees a generation newer than the table's right after a receive, so a query that
 * reached the socket after invalidate() returned never gets an older answer. An answer
 * computed while the generation moved is not kept.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64              /* datagrams taken per recvmmsg */
#define DGRAM_MAX 65536       /* a UDP payload fits */
#define KEY_MAX (255 + 4 + 2 + 2 + 4)  /* qname, type, class, header flags, payload, OPT TTL */
#define POLL_MS 200           /* how often a stop() is noticed */
#define RCODE_SLOTS 17        /* answers by RCODE 0-15; slot 16: none sent */

typedef struct Entry {
    uint64_t hash;
    uint16_t keylen;
    uint16_t anslen;
    unsigned char data[];     /* key, then the answer */
} Entry;

typedef struct {
    PyObject_HEAD
    int fd;
    PyObject *callback;
    Entry **slots;
    size_t mask;              /* slots - 1 (a power of two) */
    size_t count;
    size_t max_entries;
    uint64_t table_gen;       /* the generation the table's entries were made in */
    uint64_t gen;             /* bumped by invalidate(), read by the loops */
    pthread_rwlock_t lock;    /* the table: slots, count, table_gen */
    int lock_ready;
    int stop;
    unsigned long long hits[RCODE_SLOTS];   /* atomic adds, once per batch */
    unsigned long long misses;
    unsigned long long resolved[RCODE_SLOTS];  /* misses answered by resolve_plain, by RCODE */
    PyObject *zones;              /* the registry's dict: origin key -> ZoneSnapshot */
    PyObject *ok_state;           /* ZoneState.OK: a zone in any other state goes to Python */
    unsigned udp_max_payload;     /* the OPT payload size answered, the cap on the limit */
} Listener;

static PyObject *str_state, *str_cuts, *str_nodes, *str_neg_soa;

/* The node tables of published versions: dicts, or NodeMaps (proto/_axfrbuild.c), read
 * through its capsule; NULL when that module is not built (its maps then go to Python). */
typedef struct {
    size_t size; /* sizeof(NodeMapAPI) as _axfrbuild.c was built: checked at import */
    PyTypeObject *type;
    int (*lookup)(PyObject *map, PyObject *key, const unsigned char **v, Py_ssize_t *vlen);
    int (*value_next)(const unsigned char *v, Py_ssize_t vlen, Py_ssize_t *pos,
                      const unsigned char **blob, Py_ssize_t *len);
} NodeMapAPI;
static NodeMapAPI *nodemap;

/* Owner ``key`` in ``nodes`` (a dict, or a NodeMap): 1 if it is there, with its RRset of
 * type tc (2 bytes) in *blob (NULL: none) and whether it holds a CNAME; 0 if not; -1 on an
 * error. A dict's node is bytes (one blob, or b"" for an empty non-terminal) or a tuple;
 * a NodeMap's is its encoded value. */
static int node_find(PyObject *nodes, PyObject *key, const unsigned char *tc,
                     const unsigned char **blob, Py_ssize_t *blen, int *cname) {
    *blob = NULL;
    *blen = 0;
    *cname = 0;
    if (nodemap != NULL && Py_IS_TYPE(nodes, nodemap->type)) {
        const unsigned char *v, *b;
        Py_ssize_t vlen, pos = 0, len;
        int r = nodemap->lookup(nodes, key, &v, &vlen);
        if (r <= 0)
            return r;
        while ((r = nodemap->value_next(v, vlen, &pos, &b, &len)) > 0) {
            if (len < 2)
                continue;
            if (b[0] == 0 && b[1] == 5)
                *cname = 1;
            if (*blob == NULL && len >= 4 && b[0] == tc[0] && b[1] == tc[1]) {
                *blob = b;
                *blen = len;
            }
        }
        return r < 0 ? -1 : 1;
    }
    PyObject *node = PyDict_GetItemWithError(nodes, key);
    if (node == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *one[1] = {node};
    PyObject **items = one;
    Py_ssize_t n = 1;
    if (PyTuple_Check(node)) {
        items = &PyTuple_GET_ITEM(node, 0);
        n = PyTuple_GET_SIZE(node);
    } else if (!PyBytes_Check(node)) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = items[i];
        if (!PyBytes_Check(o)) {
            *cname = 1; /* not a node this reads: Python answers */
            continue;
        }
        const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(o);
        Py_ssize_t len = PyBytes_GET_SIZE(o);
        if (len < 2)
            continue;
        if (b[0] == 0 && b[1] == 5)
            *cname = 1;
        if (*blob == NULL && len >= 4 && b[0] == tc[0] && b[1] == tc[1]) {
            *blob = b;
            *blen = len;
        }
    }
    return 1;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static void table_clear(Listener *self) {
    if (self->slots == NULL)
        return;
    for (size_t i = 0; i <= self->mask; i++) {
        free(self->slots[i]);
        self->slots[i] = NULL;
    }
    self->count = 0;
}

static Entry *table_find(Listener *self, const unsigned char *key, size_t keylen, uint64_t h) {
    size_t i = h & self->mask;
    for (;;) {
        Entry *e = self->slots[i];
        if (e == NULL)
            return NULL;
        if (e->hash == h && e->keylen == keylen && memcmp(e->data, key, keylen) == 0)
            return e;
        i = (i + 1) & self->mask;
    }
}

static void table_put(Listener *self, const unsigned char *key, size_t keylen, uint64_t h,
                      const unsigned char *ans, size_t anslen) {
    if (self->max_entries == 0 || anslen > 0xFFFF)
        return;
    if (self->count >= self->max_entries)
        table_clear(self);  /* full: start again, as the Python cache does */
    size_t i = h & self->mask;
    for (;;) {
        Entry *e = self->slots[i];
        if (e == NULL)
            break;
        if (e->hash == h && e->keylen == keylen && memcmp(e->data, key, keylen) == 0) {
            free(e);
            self->slots[i] = NULL;
            self->count--;
            break;
        }
        i = (i + 1) & self->mask;
    }
    Entry *e = malloc(sizeof(Entry) + keylen + anslen);
    if (e == NULL)
        return;
    e->hash = h;
    e->keylen = (uint16_t)keylen;
    e->anslen = (uint16_t)anslen;
    memcpy(e->data, key, keylen);
    memcpy(e->data + keylen, ans, anslen);
    self->slots[i] = e;
    self->count++;
}

/* Keep an answer made while the generation was ``before`` (GIL held: no thread waits for
 * it under the lock), unless the zones changed meanwhile. */
static void table_keep(Listener *self, uint64_t before, const unsigned char *key, size_t keylen,
                       uint64_t h, const unsigned char *ans, size_t anslen) {
    pthread_rwlock_wrlock(&self->lock);
    if (before == __atomic_load_n(&self->gen, __ATOMIC_ACQUIRE) && before == self->table_gen)
        table_put(self, key, keylen, h, ans, anslen);
    pthread_rwlock_unlock(&self->lock);
}

/* The key of a query this file can answer from the table, or 0: the header (ID aside),
 * one question with an uncompressed name, no other record than an OPT record without
 * options ending the datagram. The name goes in lower case (the answer's question is
 * the query's own); *qend is where the question ends. */
static size_t query_key(const unsigned char *q, size_t n, unsigned char *key, size_t *qend) {
    if (n < 17 || n > 512)
        return 0;
    if ((q[2] & 0xF8) != 0)                 /* a query (QR clear), opcode QUERY */
        return 0;
    if (q[4] != 0 || q[5] != 1 || q[6] | q[7] | q[8] | q[9] || q[10] != 0 || q[11] > 1)
        return 0;
    size_t p = 12, k = 0;
    for (;;) {
        if (p >= n)
            return 0;
        unsigned len = q[p];
        if (len > 63 || p + 1 + len > n || k + 1 + len > 255)
            return 0;                        /* a pointer, an odd label type, too long, cut short */
        key[k++] = (unsigned char)len;
        p++;
        if (len == 0)
            break;
        for (unsigned j = 0; j < len; j++) {
            unsigned char c = q[p + j];
            key[k++] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
        }
        p += len;
    }
    if (p + 4 > n)
        return 0;
    memcpy(key + k, q + p, 4);               /* type, class */
    k += 4;
    p += 4;
    *qend = p;
    key[k++] = q[2];
    key[k++] = q[3];
    if (q[11] == 0) {
        if (p != n)
            return 0;
        key[k++] = 0;                        /* no OPT */
        return k;
    }
    /* OPT: root owner, type 41, class (payload), TTL (ext. RCODE, version, flags), no data */
    if (p + 11 != n || q[p] != 0 || q[p + 1] != 0 || q[p + 2] != 41 || q[p + 9] | q[p + 10])
        return 0;
    key[k++] = 1;
    memcpy(key + k, q + p + 3, 6);           /* payload size and the TTL field */
    k += 6;
    return k;
}

static PyObject *address_of(const struct sockaddr_storage *sa) {
    char text[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, text, sizeof text) == NULL)
            return NULL;
        return Py_BuildValue("(si)", text, ntohs(a->sin_port));
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text) == NULL)
            return NULL;
        return Py_BuildValue("(siII)", text, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    return NULL;
}

static void send_all(int fd, struct mmsghdr *out, int n) {
    int done = 0, tries = 0;
    while (done < n) {
        int r = sendmmsg(fd, out + done, (unsigned)(n - done), 0);
        if (r > 0) {
            done += r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && tries++ < 3) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            poll(&pfd, 1, 20);
            continue;
        }
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            done++;  /* this one cannot go (a bad address): drop it, send the rest */
            continue;
        }
        return;      /* the socket stays full: drop what is left, as a kernel would */
    }
}

/* Answer a query of the table's shape (``key`` and ``qend`` from query_key) into ``o``
 * when it is an answer this file makes (see the top: an RRset, NXDOMAIN, NODATA); its
 * length, or 0 when Python must answer. GIL held. */
static size_t resolve_plain(Listener *self, const unsigned char *q, const unsigned char *key,
                            size_t qend, unsigned char *o) {
    if (self->zones == NULL)
        return 0;
    size_t namelen = qend - 12 - 4;                /* the name's wire length, root included */
    const unsigned char *tc = key + namelen;       /* type, class */
    unsigned qtype = (unsigned)tc[0] << 8 | tc[1];
    if (tc[2] != 0 || tc[3] != 1 || qtype == 0 || qtype == 251 || qtype == 252 || qtype == 255)
        return 0;                                  /* not IN; IXFR, AXFR, ANY */
    int opt = q[11] == 1;
    size_t limit = 512;
    if (opt) {
        const unsigned char *r = q + qend;         /* root, type 41, payload, ext, version, flags */
        if (r[6] != 0)
            return 0;                              /* EDNS version other than 0: BADVERS */
        size_t payload = (size_t)r[3] << 8 | r[4];
        if (payload > self->udp_max_payload)
            payload = self->udp_max_payload;
        if (payload > limit)
            limit = payload;
    }
    /* The suffixes of the name from the whole name up, until one is a zone's apex. */
    PyObject *suffix[128];
    size_t nsuffix = 0, pos = 0, answer = 0;
    PyObject *zone = NULL;
    for (;;) {
        PyObject *k = PyBytes_FromStringAndSize((const char *)key + pos, (Py_ssize_t)(namelen - pos));
        if (k == NULL)
            goto fail;
        suffix[nsuffix++] = k;
        zone = PyDict_GetItemWithError(self->zones, k);  /* borrowed */
        if (zone != NULL)
            break;
        if (PyErr_Occurred())
            goto fail;
        unsigned len = key[pos];
        if (len == 0 || nsuffix == 128)
            goto done;                             /* no zone here: REFUSED, by Python */
        pos += len + 1;
    }
    PyObject *state = PyObject_GetAttr(zone, str_state);
    if (state == NULL)
        goto fail;
    int ok = state == self->ok_state;
    Py_DECREF(state);
    if (!ok)
        goto done;
    /* A cut at or above the name (the apex aside): a referral, or DS at the cut. */
    PyObject *cuts = PyObject_GetAttr(zone, str_cuts);
    if (cuts == NULL)
        goto fail;
    int cut = 0;
    if (PyAnySet_Check(cuts) && PySet_GET_SIZE(cuts) > 0) {
        for (size_t i = 0; i + 1 < nsuffix && !cut; i++) {
            int r = PySet_Contains(cuts, suffix[i]);
            if (r < 0) {
                Py_DECREF(cuts);
                goto fail;
            }
            cut = r;
        }
    } else if (!PyAnySet_Check(cuts)) {
        cut = 1;
    }
    Py_DECREF(cuts);
    if (cut)
        goto done;
    PyObject *nodes = PyObject_GetAttr(zone, str_nodes);
    if (nodes == NULL)
        goto fail;
    if (!PyDict_Check(nodes) && (nodemap == NULL || !Py_IS_TYPE(nodes, nodemap->type))) {
        Py_DECREF(nodes);
        goto done;
    }
    const unsigned char *blob = NULL;
    Py_ssize_t blen = 0;
    int cname = 0;
    int found = node_find(nodes, suffix[0], tc, &blob, &blen, &cname);
    if (found < 0) {
        Py_DECREF(nodes);
        goto fail;
    }
    /* What is answered: the RRset (rcode 0), or the SOA in authority (rcode 0 or 3). */
    int rcode = -1;
    if (blob != NULL) {
        rcode = 0;
    } else if (!found) {
        /* No such name: the closest name above it that exists decides (the apex does); a
         * wildcard child of it would answer (Python synthesizes), else NXDOMAIN. */
        for (size_t i = 1; i < nsuffix && rcode < 0; i++) {
            const unsigned char *ob;
            Py_ssize_t olen;
            int oc;
            int has = node_find(nodes, suffix[i], tc, &ob, &olen, &oc);
            if (has < 0)
                break;
            if (!has)
                continue;
            Py_ssize_t wlen = PyBytes_GET_SIZE(suffix[i]);
            PyObject *wild = PyBytes_FromStringAndSize(NULL, wlen + 2);
            if (wild == NULL)
                break;
            PyBytes_AS_STRING(wild)[0] = 1;
            PyBytes_AS_STRING(wild)[1] = '*';
            memcpy(PyBytes_AS_STRING(wild) + 2, PyBytes_AS_STRING(suffix[i]), (size_t)wlen);
            has = node_find(nodes, wild, tc, &ob, &olen, &oc);
            Py_DECREF(wild);
            if (has == 0)
                rcode = 3;
            break;  /* a wildcard (or an error): Python */
        }
    } else if (qtype == 5 || !cname) {
        /* The name, without the type: NODATA, unless a CNAME is to be followed. */
        rcode = 0;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(nodes);
        goto fail;
    }
    const unsigned char *body = NULL;
    size_t bodylen = 0;
    PyObject *soa = NULL;
    unsigned char ptr[2];
    if (rcode == 0 && blob != NULL) {
        if (blen > 4 && blob[0] == tc[0] && blob[1] == tc[1]) {
            body = blob + 4;                                       /* owners point at the question */
            bodylen = (size_t)blen - 4;
        }
    } else if (rcode >= 0) {
        soa = PyObject_GetAttr(zone, str_neg_soa);
        if (soa == NULL || !PyBytes_Check(soa) || PyBytes_GET_SIZE(soa) < 10) {
            Py_XDECREF(soa);
            Py_DECREF(nodes);
            goto fail;
        }
        /* The SOA's owner: a pointer to where the apex starts in the question. */
        size_t apex = 12 + (namelen - (size_t)PyBytes_GET_SIZE(suffix[nsuffix - 1]));
        ptr[0] = (unsigned char)(0xC0 | (apex >> 8));
        ptr[1] = (unsigned char)(apex & 0xFF);
        body = (const unsigned char *)PyBytes_AS_STRING(soa);
        bodylen = (size_t)PyBytes_GET_SIZE(soa);
    }
    size_t size = qend + (soa != NULL ? 2 : 0) + bodylen + (opt ? 11 : 0);
    if (body != NULL && size <= limit) {
        o[0] = q[0];
        o[1] = q[1];
        o[2] = (unsigned char)(0x80 | (q[2] & 0x01) | 0x04);  /* QR, RD echoed, AA */
        o[3] = (unsigned char)((q[3] & 0x10) | rcode);        /* CD echoed */
        o[4] = 0;
        o[5] = 1;
        if (soa == NULL) {
            o[6] = blob[2];                                    /* the RRset's count */
            o[7] = blob[3];
            o[8] = o[9] = 0;
        } else {
            o[6] = o[7] = 0;
            o[8] = 0;
            o[9] = 1;                                          /* the SOA */
        }
        o[10] = 0;
        o[11] = (unsigned char)opt;
        memcpy(o + 12, q + 12, qend - 12);                     /* the question as asked */
        unsigned char *w = o + qend;
        if (soa != NULL) {
            memcpy(w, ptr, 2);
            w += 2;
        }
        memcpy(w, body, bodylen);
        w += bodylen;
        if (opt) {
            w[0] = 0;
            w[1] = 0;
            w[2] = 41;
            w[3] = (unsigned char)(self->udp_max_payload >> 8);
            w[4] = (unsigned char)(self->udp_max_payload & 0xFF);
            w[5] = w[6] = 0;
            w[7] = (unsigned char)(q[qend + 7] & 0x80);        /* DO echoed */
            w[8] = w[9] = w[10] = 0;
        }
        answer = size;
    }
    Py_XDECREF(soa);
    Py_DECREF(nodes);
done:
    for (size_t i = 0; i < nsuffix; i++)
        Py_DECREF(suffix[i]);
    return answer;
fail:
    PyErr_Clear();  /* Python answers it, and says what is wrong if it is */
    answer = 0;
    goto done;
}

static PyObject *Listener_run(Listener *self, PyObject *Py_UNUSED(ignored)) {
    /* This thread's buffers: BATCH datagrams received, BATCH answers. */
    unsigned char *inbuf = malloc((size_t)BATCH * DGRAM_MAX);
    unsigned char *outbuf = malloc((size_t)BATCH * DGRAM_MAX);
    if (inbuf == NULL || outbuf == NULL) {
        free(inbuf);
        free(outbuf);
        return PyErr_NoMemory();
    }
    struct mmsghdr in[BATCH], out[BATCH];
    struct iovec iin[BATCH], iout[BATCH];
    struct sockaddr_storage addrs[BATCH];
    size_t keylens[BATCH], qends[BATCH];
    unsigned char keys[BATCH][KEY_MAX + 8];
    uint64_t hashes[BATCH];
    int pending[BATCH];
    int fd = self->fd;

    for (int i = 0; i < BATCH; i++) {
        iin[i].iov_base = inbuf + (size_t)i * DGRAM_MAX;
        iin[i].iov_len = DGRAM_MAX;
    }
    PyThreadState *ts = PyEval_SaveThread();
    int idle = 1;  /* the last receive found nothing: wait in poll() before the next */
    while (!__atomic_load_n(&self->stop, __ATOMIC_ACQUIRE)) {
        if (idle) {
            struct pollfd pfd = {fd, POLLIN, 0};
            int pr = poll(&pfd, 1, POLL_MS);
            if (pr <= 0)
                continue;
            if (pfd.revents & (POLLNVAL))
                break;
        }
        memset(in, 0, sizeof in);
        for (int i = 0; i < BATCH; i++) {
            in[i].msg_hdr.msg_iov = &iin[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &addrs[i];
            in[i].msg_hdr.msg_namelen = sizeof addrs[i];
        }
        /* Under load the socket is rarely empty: receive at once, poll only when it was. */
        int n = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
        idle = n <= 0;
        if (n <= 0) {
            if (n < 0 && errno == EBADF)
                break;
            continue;
        }
        /* Seen after the datagrams arrived: a change made before they were sent is in. */
        uint64_t gen = __atomic_load_n(&self->gen, __ATOMIC_ACQUIRE);
        if (gen != __atomic_load_n(&self->table_gen, __ATOMIC_ACQUIRE)) {
            pthread_rwlock_wrlock(&self->lock);
            if (gen > self->table_gen) {  /* another loop may have cleared it already */
                table_clear(self);
                __atomic_store_n(&self->table_gen, gen, __ATOMIC_RELEASE);
            }
            pthread_rwlock_unlock(&self->lock);
        }
        /* Answers go out in the order the queries came: slot i of outbuf is datagram i's. */
        size_t outlen[BATCH];
        unsigned long long hits[RCODE_SLOTS] = {0};
        int npending = 0;
        pthread_rwlock_rdlock(&self->lock);
        for (int i = 0; i < n; i++) {
            const unsigned char *q = iin[i].iov_base;
            size_t len = in[i].msg_len;
            keylens[i] = 0;
            outlen[i] = 0;
            if (in[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue;  /* longer than any DNS message: nothing to answer */
            keylens[i] = query_key(q, len, keys[i], &qends[i]);
            if (keylens[i]) {
                hashes[i] = hash_bytes(keys[i], keylens[i]);
                Entry *e = table_find(self, keys[i], keylens[i], hashes[i]);
                if (e != NULL) {
                    const unsigned char *a = e->data + e->keylen;
                    unsigned char *o = outbuf + (size_t)i * DGRAM_MAX;
                    size_t qend = qends[i];
                    o[0] = q[0];
                    o[1] = q[1];
                    memcpy(o + 2, a + 2, 10);
                    memcpy(o + 12, q + 12, qend - 12);
                    memcpy(o + qend, a + qend, e->anslen - qend);
                    outlen[i] = e->anslen;
                    hits[a[3] & 15]++;
                    continue;
                }
            }
            pending[npending++] = i;
        }
        pthread_rwlock_unlock(&self->lock);
        for (int r = 0; r < RCODE_SLOTS; r++)
            if (hits[r])
                __atomic_add_fetch(&self->hits[r], hits[r], __ATOMIC_RELAXED);
        if (npending) {
            PyEval_RestoreThread(ts);
            for (int j = 0; j < npending; j++) {
                int i = pending[j];
                __atomic_add_fetch(&self->misses, 1, __ATOMIC_RELAXED);
                uint64_t before = __atomic_load_n(&self->gen, __ATOMIC_ACQUIRE);
                if (keylens[i]) {
                    unsigned char *o = outbuf + (size_t)i * DGRAM_MAX;
                    size_t alen = resolve_plain(self, iin[i].iov_base, keys[i], qends[i], o);
                    if (alen) {
                        outlen[i] = alen;
                        __atomic_add_fetch(&self->resolved[o[3] & 15], 1, __ATOMIC_RELAXED);
                        /* An NXDOMAIN is not kept: made again in ~1 us, and a flood of
                         * random names would fill the table and empty it of the answers
                         * asked for again and again. */
                        if ((o[3] & 15) != 3)
                            table_keep(self, before, keys[i], keylens[i], hashes[i], o, alen);
                        continue;
                    }
                }
                PyObject *addr = address_of(&addrs[i]);
                PyObject *data = PyBytes_FromStringAndSize(iin[i].iov_base, in[i].msg_len);
                PyObject *res = NULL;
                if (addr != NULL && data != NULL)
                    res = PyObject_CallFunctionObjArgs(self->callback, data, addr, NULL);
                Py_XDECREF(addr);
                Py_XDECREF(data);
                if (res == NULL) {
                    PyErr_WriteUnraisable(self->callback);
                    continue;
                }
                PyObject *ans = NULL;
                int cacheable = 0;
                if (PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
                    ans = PyTuple_GET_ITEM(res, 0);
                    cacheable = PyObject_IsTrue(PyTuple_GET_ITEM(res, 1)) == 1;
                }
                if (ans != NULL && PyBytes_Check(ans) && PyBytes_GET_SIZE(ans) >= 12
                    && PyBytes_GET_SIZE(ans) < DGRAM_MAX) {
                    size_t alen = (size_t)PyBytes_GET_SIZE(ans);
                    unsigned char *o = outbuf + (size_t)i * DGRAM_MAX;
                    memcpy(o, PyBytes_AS_STRING(ans), alen);
                    outlen[i] = alen;
                    /* Kept only when it carries the query's question where a hit puts the
                     * next query's: one question, the same bytes. */
                    if (cacheable && keylens[i] && alen >= qends[i] && o[4] == 0 && o[5] == 1
                        && memcmp(o + 12, (const unsigned char *)iin[i].iov_base + 12,
                                  qends[i] - 12) == 0) {
                        table_keep(self, before, keys[i], keylens[i], hashes[i], o, alen);
                    }
                }
                Py_DECREF(res);
            }
            ts = PyEval_SaveThread();
        }
        int nout = 0;
        for (int i = 0; i < n; i++) {
            if (outlen[i] == 0)
                continue;
            iout[nout].iov_base = outbuf + (size_t)i * DGRAM_MAX;
            iout[nout].iov_len = outlen[i];
            memset(&out[nout], 0, sizeof out[nout]);
            out[nout].msg_hdr.msg_iov = &iout[nout];
            out[nout].msg_hdr.msg_iovlen = 1;
            out[nout].msg_hdr.msg_name = &addrs[i];
            out[nout].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
            nout++;
        }
        if (nout)
            send_all(fd, out, nout);
    }
    PyEval_RestoreThread(ts);
    free(inbuf);
    free(outbuf);
    Py_RETURN_NONE;
}

static PyObject *Listener_stop(Listener *self, PyObject *Py_UNUSED(ignored)) {
    __atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyObject *Listener_invalidate(Listener *self, PyObject *Py_UNUSED(ignored)) {
    __atomic_add_fetch(&self->gen, 1, __ATOMIC_ACQ_REL);
    Py_RETURN_NONE;
}

static PyObject *Listener_counts(Listener *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *t = PyTuple_New(RCODE_SLOTS);
    if (t == NULL)
        return NULL;
    for (int i = 0; i < RCODE_SLOTS; i++) {
        unsigned long long n = __atomic_load_n(&self->hits[i], __ATOMIC_RELAXED)
                               + __atomic_load_n(&self->resolved[i], __ATOMIC_RELAXED);
        PyObject *v = PyLong_FromUnsignedLongLong(n);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *Listener_stats(Listener *self, PyObject *Py_UNUSED(ignored)) {
    unsigned long long hits = 0, resolved = 0;
    for (int i = 0; i < RCODE_SLOTS; i++) {
        hits += __atomic_load_n(&self->hits[i], __ATOMIC_RELAXED);
        resolved += __atomic_load_n(&self->resolved[i], __ATOMIC_RELAXED);
    }
    pthread_rwlock_rdlock(&self->lock);
    size_t entries = self->count;
    pthread_rwlock_unlock(&self->lock);
    return Py_BuildValue("{sKsKsKsn}", "hits", hits, "misses",
                         __atomic_load_n(&self->misses, __ATOMIC_RELAXED), "resolved",
                         resolved, "entries",
                         (Py_ssize_t)entries);
}

static int Listener_init(Listener *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"fd", "callback", "max_entries", "zones", "ok_state",
                            "udp_max_payload", NULL};
    int fd;
    PyObject *callback, *zones = NULL, *ok_state = NULL;
    Py_ssize_t max_entries;
    unsigned int udp_max_payload = 1232;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOn|OOI", names, &fd, &callback, &max_entries,
                                     &zones, &ok_state, &udp_max_payload))
        return -1;
    if (zones == Py_None)
        zones = NULL;
    if (zones != NULL && (!PyDict_Check(zones) || ok_state == NULL)) {
        PyErr_SetString(PyExc_TypeError, "zones must be a dict, given with ok_state");
        return -1;
    }
    if (udp_max_payload < 512 || udp_max_payload > 65535) {
        PyErr_SetString(PyExc_ValueError, "udp_max_payload must be 512 to 65535");
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable");
        return -1;
    }
    if (max_entries < 0) {
        PyErr_SetString(PyExc_ValueError, "max_entries must be >= 0");
        return -1;
    }
    if (self->slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a listener is set up once");
        return -1;
    }
    size_t size = 16;
    while (size < (size_t)max_entries * 2)
        size <<= 1;
    self->slots = calloc(size, sizeof(Entry *));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Writers first: a new answer or a clearing is not kept waiting by a stream of
     * lookups from the other loops. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int err = pthread_rwlock_init(&self->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (err != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_rwlock_init failed");
        return -1;
    }
    self->lock_ready = 1;
    self->mask = size - 1;
    self->max_entries = (size_t)max_entries;
    self->fd = fd;
    Py_INCREF(callback);
    self->callback = callback;
    Py_XINCREF(zones);
    self->zones = zones;
    Py_XINCREF(ok_state);
    self->ok_state = ok_state;
    self->udp_max_payload = udp_max_payload;
    return 0;
}

static void Listener_dealloc(Listener *self) {
    table_clear(self);
    free(self->slots);
    if (self->lock_ready)
        pthread_rwlock_destroy(&self->lock);
    Py_XDECREF(self->callback);
    Py_XDECREF(self->zones);
    Py_XDECREF(self->ok_state);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Listener_methods[] = {
    {"run", (PyCFunction)Listener_run, METH_NOARGS,
     "Receive and answer until stop(); call it from a thread of its own (from several "
     "threads for several workers on the socket)."},
    {"stop", (PyCFunction)Listener_stop, METH_NOARGS, "Make run() return (within 0.2 s)."},
    {"invalidate", (PyCFunction)Listener_invalidate, METH_NOARGS,
     "Forget every kept answer (call it after the data they came from changed)."},
    {"counts", (PyCFunction)Listener_counts, METH_NOARGS,
     "Answers sent from the table or resolved here, by RCODE (17 slots, the last always 0)."},
    {"stats", (PyCFunction)Listener_stats, METH_NOARGS,
     "hits, misses (resolved: those answered here, not by the callback) and entries."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ListenerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zonekeeper.server._udpfast.Listener",
    .tp_basicsize = sizeof(Listener),
    .tp_dealloc = (destructor)Listener_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A UDP socket's receive loop with a table of answers (see udpfast.py).",
    .tp_methods = Listener_methods,
    .tp_init = (initproc)Listener_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_udpfast", "The UDP receive loop in C (see udpfast.py).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__udpfast(void) {
    if (PyType_Ready(&ListenerType) < 0)
        return NULL;
    str_state = PyUnicode_InternFromString("state");
    str_cuts = PyUnicode_InternFromString("cuts");
    str_nodes = PyUnicode_InternFromString("nodes");
    str_neg_soa = PyUnicode_InternFromString("neg_soa");
    if (str_state == NULL || str_cuts == NULL || str_nodes == NULL || str_neg_soa == NULL)
        return NULL;
    /* (PyCapsule_Import reaches the module by attribute from the top package: it must be
     * imported first, whatever imported this module.) */
    PyObject *owner = PyImport_ImportModule("zonekeeper.proto._axfrbuild");
    Py_XDECREF(owner);
    nodemap = owner ? PyCapsule_Import("zonekeeper.proto._axfrbuild.NODEMAP_API", 0) : NULL;
    if (nodemap != NULL && nodemap->size != sizeof(NodeMapAPI))
        nodemap = NULL; /* built from another source: not read */
    if (nodemap == NULL)
        PyErr_Clear(); /* not built: its maps are answered by Python */
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* Whether NodeMap tables are answered here (else by Python): for the tests. */
    if (PyModule_AddIntConstant(m, "NODEMAP", nodemap != NULL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ListenerType);
    if (PyModule_AddObject(m, "Listener", (PyObject *)&ListenerType) < 0) {
        Py_DECREF(&ListenerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
