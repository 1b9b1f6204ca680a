/* Native hot loop of the offline store replay (issue 13, ADR 0012).
 *
 * Twin of pure Python code that stays the specification:
 *   loads(leaf)          depository.tlog.record._canonical_value's quick path: decode a leaf
 *                        and prove it is the RFC 8785 encoding of itself, in one pass
 *                        (no decode + re-encode). Returns None, with no error, for anything
 *                        it does not prove canonical; the caller then runs the Python path,
 *                        which decides and words the error. So the native engine accepts a
 *                        subset of what Python accepts, and decodes it to equal values.
 *   scan(rows)           loads + RFC 6962 leaf hash + stored leaf_hash compare for a chunk.
 *   nodes(hashes, n)     every complete perfect-subtree hash over n aligned leaf hashes.
 *   node(l, r)           one RFC 6962 interior hash.
 *   Db(uri).chunk(...)   the chunk scan on this module's own SQLite connection: leaves,
 *                        artifact and inline_blob rows in log order, puts proven sound
 *                        without decoding them to objects, artifact_meta rows into a keyed
 *                        multiset digest (store._meta_digest); Db.meta_digest: the table's
 *                        side; Db.nodes_equal: node rows against computed subtrees.
 *   apply_puts, pack_puts  the put replay's common case (store._Replay._put) and the
 *                        packing of confirmed puts for the pipe from a worker.
 *
 * Hostile input: every read is bounds-checked against the buffer length; recursion is
 * bounded by the depth limit passed from Python (safejson.MAX_DEPTH). SHA-256 is OpenSSL
 * libcrypto's. The GIL is held throughout: the work creates Python objects, and the
 * leaves are immutable (bytes owned by the caller's list, or SQLite's row buffer, read
 * before the statement steps again).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* SHA-256 through the low-level functions (deprecated in OpenSSL 3, still built): the same
 * assembly as EVP, without a provider dispatch per call (measured 30-60 ns per digest,
 * several digests per record), and a key's state copied as a plain struct. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

static PyObject *g_one, *g_zero; /* small ints for apply_puts */

static int sha256_2(const unsigned char *a, size_t na, const unsigned char *b, size_t nb,
                    const unsigned char *c, size_t nc, unsigned char out[32]) {
    SHA256_CTX x;
    if (SHA256_Init(&x) != 1) return -1;
    if (na && SHA256_Update(&x, a, na) != 1) return -1;
    if (nb && SHA256_Update(&x, b, nb) != 1) return -1;
    if (nc && SHA256_Update(&x, c, nc) != 1) return -1;
    if (SHA256_Final(out, &x) != 1) return -1;
    return 0;
}

/* ------------------------------------------------------------------ canonical parser */

#define MAX_SPANS 32

typedef struct {
    const unsigned char *key; /* into the leaf (keys with escapes are not recorded) */
    Py_ssize_t klen, start, end; /* the member's value is s[start:end] */
} Span;

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    Py_ssize_t i;
    int max_depth;
    int bad; /* not proven canonical (no Python error set) */
    unsigned char *buf; /* scratch for unescaped strings */
    Py_ssize_t cap;
    int want_spans; /* the next object is the envelope's body: record its members */
    int nspans;
    Span spans[MAX_SPANS];
} P;

static PyObject *parse_value(P *p, int depth);

#define BAD(p) do { (p)->bad = 1; return NULL; } while (0)

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* upper-case hex is not what the canonical encoder writes */
}

/* A string at p->i (a quote). On success out_len and out hold its decoded UTF-8 bytes
 * (pointing into the leaf when there are no escapes, else into p->buf). */
static int scan_string(P *p, const unsigned char **out, Py_ssize_t *out_len, int *ascii,
                       int *esc) {
    const unsigned char *s = p->s;
    Py_ssize_t i = p->i + 1, n = p->n, start = i;
    int escaped = 0;
    unsigned char high = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) return -1; /* a raw control character: the encoder escapes it */
        if (c == '\\') { escaped = 1; if (i + 1 >= n) return -1; i += 2; continue; }
        high |= c;
        i++;
    }
    if (i >= n) return -1; /* unterminated */
    *ascii = high < 0x80;
    *esc = escaped;
    if (!escaped) {
        *out = s + start;
        *out_len = i - start;
        p->i = i + 1;
        return 0;
    }
    Py_ssize_t need = i - start;
    if (need > p->cap) {
        unsigned char *nb = PyMem_Realloc(p->buf, (size_t)need + 1);
        if (nb == NULL) { PyErr_NoMemory(); return -2; }
        p->buf = nb;
        p->cap = need;
    }
    Py_ssize_t o = 0, j = start;
    while (j < i) {
        unsigned char c = s[j];
        if (c != '\\') { p->buf[o++] = c; j++; continue; }
        unsigned char e = s[j + 1]; /* j + 1 < i: the scan above stepped over pairs */
        switch (e) {
        case '"': p->buf[o++] = '"'; j += 2; break;
        case '\\': p->buf[o++] = '\\'; j += 2; break;
        case 'b': p->buf[o++] = '\b'; j += 2; break;
        case 'f': p->buf[o++] = '\f'; j += 2; break;
        case 'n': p->buf[o++] = '\n'; j += 2; break;
        case 'r': p->buf[o++] = '\r'; j += 2; break;
        case 't': p->buf[o++] = '\t'; j += 2; break;
        case 'u': {
            /* Only \u00XX for a control character without a short escape is canonical. */
            if (j + 6 > i) return -1;
            if (s[j + 2] != '0' || s[j + 3] != '0') return -1;
            int h = hexval(s[j + 4]), l = hexval(s[j + 5]);
            if (h < 0 || l < 0) return -1;
            int v = h * 16 + l;
            if (v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
                return -1;
            p->buf[o++] = (unsigned char)v;
            j += 6;
            break;
        }
        default:
            return -1; /* \/ and anything else: not canonical */
        }
    }
    *out = p->buf;
    *out_len = o;
    p->i = i + 1;
    return 0;
}

/* Short ASCII strings recur in every record (keys, types, products, actors, media types):
 * a direct-mapped cache hands back the same immutable str object, its hash already
 * computed, instead of a new one per occurrence. */
#define STR_CACHE 512
#define STR_CACHE_MAX 32
static PyObject *g_strs[STR_CACHE];

static PyObject *make_str(P *p, const unsigned char *b, Py_ssize_t len, int ascii) {
    if (ascii) { /* the common case: no decoder needed */
        PyObject **slot = NULL;
        if (len <= STR_CACHE_MAX) {
            uint32_t h = 2166136261u; /* FNV-1a */
            for (Py_ssize_t k = 0; k < len; k++) h = (h ^ b[k]) * 16777619u;
            slot = &g_strs[(h ^ (h >> 16)) & (STR_CACHE - 1)];
            PyObject *c = *slot;
            if (c != NULL && PyUnicode_GET_LENGTH(c) == len &&
                (len == 0 || memcmp(PyUnicode_DATA(c), b, (size_t)len) == 0))
                return Py_NewRef(c);
        }
        PyObject *a = PyUnicode_New(len, 127);
        if (a != NULL && len) memcpy(PyUnicode_DATA(a), b, (size_t)len);
        if (a != NULL && slot != NULL) Py_XSETREF(*slot, Py_NewRef(a));
        return a;
    }
    PyObject *o = PyUnicode_DecodeUTF8((const char *)b, len, "strict");
    if (o == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        p->bad = 1; /* invalid UTF-8 (overlong, surrogate, truncated): Python words it */
    }
    return o;
}

static PyObject *parse_string(P *p) {
    const unsigned char *b;
    Py_ssize_t len;
    int ascii, esc;
    int r = scan_string(p, &b, &len, &ascii, &esc);
    if (r == -2) return NULL;
    if (r < 0) BAD(p);
    return make_str(p, b, len, ascii);
}

/* Compare two keys' UTF-8 bytes: code point order, which is UTF-16 order below U+E000
 * (leaves with any byte from 0xEE up never reach the parser). */
static int key_cmp(const unsigned char *a, Py_ssize_t na, const unsigned char *b,
                   Py_ssize_t nb) {
    Py_ssize_t m = na < nb ? na : nb;
    int c = m ? memcmp(a, b, (size_t)m) : 0;
    if (c) return c;
    return na < nb ? -1 : na > nb ? 1 : 0;
}

static PyObject *parse_object(P *p, int depth) {
    if (depth > p->max_depth) BAD(p);
    int capture = p->want_spans; /* this object is the envelope's body */
    p->want_spans = 0;
    p->i++; /* '{' */
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
    const unsigned char *prev = NULL; /* previous key's decoded bytes */
    Py_ssize_t prev_len = 0;
    unsigned char *owned = NULL; /* a copy when the previous key had escapes */
    for (;;) {
        if (p->i >= p->n || p->s[p->i] != '"') goto bad;
        const unsigned char *kb;
        Py_ssize_t klen;
        int ascii, esc;
        int r = scan_string(p, &kb, &klen, &ascii, &esc);
        if (r == -2) goto err;
        if (r < 0) goto bad;
        if (prev != NULL && key_cmp(prev, prev_len, kb, klen) >= 0) goto bad; /* order, dupes */
        PyObject *key = make_str(p, kb, klen, ascii);
        if (key == NULL) goto err_or_bad;
        if (esc) { /* kb points into p->buf, which the next string overwrites */
            unsigned char *np = PyMem_Realloc(owned, (size_t)klen + 1);
            if (np == NULL) { Py_DECREF(key); PyErr_NoMemory(); goto err; }
            owned = np;
            if (klen) memcpy(owned, kb, (size_t)klen);
            prev = owned;
        } else {
            prev = kb;
        }
        prev_len = klen;
        if (p->i >= p->n || p->s[p->i] != ':') { Py_DECREF(key); goto bad; }
        p->i++;
        if (depth == 1 && !esc && klen == 4 && memcmp(kb, "body", 4) == 0) p->want_spans = 1;
        Py_ssize_t vstart = p->i;
        PyObject *v = parse_value(p, depth);
        p->want_spans = 0;
        if (v == NULL) { Py_DECREF(key); goto err_or_bad; }
        if (capture && !esc && p->nspans < MAX_SPANS) {
            Span *sp = &p->spans[p->nspans++];
            sp->key = kb;
            sp->klen = klen;
            sp->start = vstart;
            sp->end = p->i;
        }
        int sr = PyDict_SetItem(d, key, v);
        Py_DECREF(key);
        Py_DECREF(v);
        if (sr < 0) goto err;
        if (p->i >= p->n) goto bad;
        unsigned char c = p->s[p->i++];
        if (c == '}') break;
        if (c != ',') goto bad;
    }
    PyMem_Free(owned);
    return d;
bad:
    p->bad = 1;
err_or_bad:
err:
    PyMem_Free(owned);
    Py_DECREF(d);
    return NULL;
}

static PyObject *parse_array(P *p, int depth) {
    if (depth > p->max_depth) BAD(p);
    p->i++; /* '[' */
    PyObject *l = PyList_New(0);
    if (l == NULL) return NULL;
    if (p->i < p->n && p->s[p->i] == ']') { p->i++; return l; }
    for (;;) {
        PyObject *v = parse_value(p, depth);
        if (v == NULL) { Py_DECREF(l); return NULL; }
        int r = PyList_Append(l, v);
        Py_DECREF(v);
        if (r < 0) { Py_DECREF(l); return NULL; }
        if (p->i >= p->n) { Py_DECREF(l); BAD(p); }
        unsigned char c = p->s[p->i++];
        if (c == ']') break;
        if (c != ',') { Py_DECREF(l); BAD(p); }
    }
    return l;
}

static PyObject *parse_number(P *p) {
    const unsigned char *s = p->s;
    Py_ssize_t i = p->i, n = p->n;
    int neg = 0;
    if (s[i] == '-') { neg = 1; i++; }
    Py_ssize_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    Py_ssize_t nd = i - d0;
    if (nd == 0) BAD(p);
    if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) BAD(p); /* floats: exact path */
    if (nd > 15) BAD(p); /* 16+ digits: the exact path judges (2^53 and beyond) */
    if (s[d0] == '0' && (nd > 1 || neg)) BAD(p); /* leading zero, -0 */
    long long v = 0;
    for (Py_ssize_t k = d0; k < i; k++) v = v * 10 + (s[k] - '0');
    p->i = i;
    return PyLong_FromLongLong(neg ? -v : v);
}

static PyObject *parse_value(P *p, int depth) {
    if (p->i >= p->n) BAD(p);
    unsigned char c = p->s[p->i];
    switch (c) {
    case '{': return parse_object(p, depth + 1);
    case '[': return parse_array(p, depth + 1);
    case '"': return parse_string(p);
    case 't':
        if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) {
            p->i += 4; Py_RETURN_TRUE;
        }
        BAD(p);
    case 'f':
        if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) {
            p->i += 5; Py_RETURN_FALSE;
        }
        BAD(p);
    case 'n':
        if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
            p->i += 4; Py_RETURN_NONE;
        }
        BAD(p);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
        BAD(p);
    }
}

static int g_max_depth = 128;

/* New reference to the decoded value, Py_None (new ref) when not proven canonical,
 * NULL with an exception on memory errors. */
static PyObject *loads_p(P *p) {
    const unsigned char *s = p->s;
    Py_ssize_t n = p->n;
    if (n == 0) Py_RETURN_NONE;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (s[k] >= 0xEE) Py_RETURN_NONE; /* UTF-16 key order may differ: exact path */
    }
    PyObject *v = parse_value(p, 0);
    PyMem_Free(p->buf);
    p->buf = NULL;
    if (v == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (p->bad || p->i != n) { Py_DECREF(v); Py_RETURN_NONE; }
    return v;
}

static PyObject *loads_buf(const unsigned char *s, Py_ssize_t n) {
    P p;
    memset(&p, 0, sizeof p);
    p.s = s;
    p.n = n;
    p.max_depth = g_max_depth;
    return loads_p(&p);
}

static PyObject *py_loads(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "loads() takes bytes");
        return NULL;
    }
    return loads_buf((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
}

static PyObject *py_set_max_depth(PyObject *self, PyObject *arg) {
    (void)self;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (v < 1 || v > 10000) {
        PyErr_SetString(PyExc_ValueError, "depth limit must be 1..10000");
        return NULL;
    }
    g_max_depth = (int)v;
    Py_RETURN_NONE;
}


/* ------------------------------------------------------------------ artifact.put */
/* Twin of depository.verifier.store._prepare for the record type nearly every store is
 * made of. put_item returns the item _prepare would return when the record passes every
 * check _prepare makes; NULL without an error when it does not, or when anything is
 * outside what this code handles (the caller then runs _prepare, which words findings). */

static PyObject *K_v, *K_seq, *K_time, *K_type, *K_actor, *K_product, *K_body, *K_aid, *K_name,
    *K_sha256, *K_size, *K_media, *K_metadata, *K_provenance, *K_retain, *K_received,
    *K_storage, *S_put, *S_bulk, *S_null, *S_true, *S_false, *S_inline, *S_file;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int two(const char *t) { return (t[0] - '0') * 10 + (t[1] - '0'); }

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (ASCII digits; six fraction digits or none, as the
 * store writes it) as microseconds from a fixed epoch; -1 for anything else, including
 * dates datetime refuses (the caller falls back to Python's datetime). */
static long long time_us_b(const char *t, Py_ssize_t n);

static long long time_us(PyObject *o) {
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_COMPACT_ASCII(o)) return -1;
    return time_us_b((const char *)PyUnicode_DATA(o), PyUnicode_GET_LENGTH(o));
}

static long long time_us_b(const char *t, Py_ssize_t n) {
    if (n != 20 && n != 27) return -1;
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (int k = 0; k < 19; k++) {
        if (shape[k] == 'd' ? !is_digit(t[k]) : t[k] != shape[k]) return -1;
    }
    long long frac = 0;
    if (n == 27) {
        if (t[19] != '.' || t[26] != 'Z') return -1;
        for (int k = 20; k < 26; k++) {
            if (!is_digit(t[k])) return -1;
            frac = frac * 10 + (t[k] - '0');
        }
    } else if (t[19] != 'Z') {
        return -1;
    }
    int y = two(t) * 100 + two(t + 2), mo = two(t + 5), d = two(t + 8);
    int h = two(t + 11), mi = two(t + 14), sec = two(t + 17);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return -1;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap)) return -1;
    /* days from civil (proleptic Gregorian), H. Hinnant's algorithm */
    int yy = y - (mo <= 2);
    long long era = yy / 400;
    long long yoe = yy - era * 400;
    long long doy = (153LL * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long long days = era * 146097 + doe - 306; /* from 0001-01-01 */
    return ((days * 86400 + h * 3600LL + mi * 60LL + sec) * 1000000LL) + frac;
}

/* time_us("9999-12-31T23:59:59.999999Z"): datetime.max */
#define MAX_TIME_US 315537897599999999LL

static int nonempty_str(PyObject *o) {
    return o != NULL && PyUnicode_CheckExact(o) && PyUnicode_GET_LENGTH(o) > 0;
}

static int hex64(PyObject *o) {
    if (o == NULL || !PyUnicode_CheckExact(o) || !PyUnicode_IS_COMPACT_ASCII(o) ||
        PyUnicode_GET_LENGTH(o) != 64) return 0;
    const char *t = (const char *)PyUnicode_DATA(o);
    for (int k = 0; k < 64; k++) {
        if (!(is_digit(t[k]) || (t[k] >= 'a' && t[k] <= 'f'))) return 0;
    }
    return 1;
}

/* art_ + lower-case base32 of the first 15 bytes of SHA-256(product NUL name) */
static int artifact_id_matches_b(const char *ab, Py_ssize_t al, const char *pb,
                                 Py_ssize_t pl, const char *nb, Py_ssize_t nl);

static int artifact_id_matches(PyObject *aid, PyObject *product, PyObject *name) {
    Py_ssize_t pl, nl, al;
    const char *pb = PyUnicode_AsUTF8AndSize(product, &pl);
    const char *nb = pb ? PyUnicode_AsUTF8AndSize(name, &nl) : NULL;
    const char *ab = nb ? PyUnicode_AsUTF8AndSize(aid, &al) : NULL;
    if (ab == NULL) return -1;
    return artifact_id_matches_b(ab, al, pb, pl, nb, nl);
}

static int artifact_id_matches_b(const char *ab, Py_ssize_t al, const char *pb,
                                 Py_ssize_t pl, const char *nb, Py_ssize_t nl) {
    if (al != 28 || memcmp(ab, "art_", 4) != 0) return 0;
    unsigned char dg[32];
    static const unsigned char nul = 0;
    if (sha256_2((const unsigned char *)pb, (size_t)pl, &nul, 1, (const unsigned char *)nb,
                 (size_t)nl, dg) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return -1;
    }
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    char out[24];
    for (int k = 0; k < 24; k++) {
        int bit = k * 5, v = 0;
        for (int j = 0; j < 5; j++, bit++) v = (v << 1) | ((dg[bit >> 3] >> (7 - (bit & 7))) & 1);
        out[k] = b32[v];
    }
    return memcmp(ab + 4, out, 24) == 0;
}

static PyObject *span_text(P *p, const char *key) {
    size_t kl = strlen(key);
    for (int k = 0; k < p->nspans; k++) {
        Span *sp = &p->spans[k];
        if ((size_t)sp->klen == kl && memcmp(sp->key, key, kl) == 0) {
            return PyUnicode_DecodeUTF8((const char *)p->s + sp->start, sp->end - sp->start,
                                        "strict");
        }
    }
    return NULL; /* no error set: not handled */
}

typedef struct {
    PyObject *products; /* a set/frozenset, or None */
    long long min_retention_us;
    int has_min_retention;
    PyObject *token_prefix; /* str */
} Spec;

#define GET(d, k) PyDict_GetItemWithError((d), (k))

typedef struct Cmp Cmp;
static PyObject *put_confirm(P *p, Cmp *cmp, PyObject *idx, PyObject *typ, PyObject *product,
                             PyObject *t, PyObject *actor, PyObject *aid, PyObject *name,
                             PyObject *sha, PyObject *size, PyObject *media, PyObject *meta,
                             PyObject *retain, PyObject *storage, const Spec *spec);

static PyObject *put_item(P *p, PyObject *rec, PyObject *idx, const Spec *spec, Cmp *cmp) {
    if (!PyDict_CheckExact(rec) || PyDict_GET_SIZE(rec) != 7) return NULL;
    PyObject *typ = GET(rec, K_type);
    if (typ == NULL || !PyUnicode_CheckExact(typ) ||
        PyUnicode_Compare(typ, S_put) != 0) return NULL;
    if (PyErr_Occurred()) return NULL;
    PyObject *v = GET(rec, K_v), *seq = GET(rec, K_seq), *t = GET(rec, K_time);
    PyObject *actor = GET(rec, K_actor), *product = GET(rec, K_product);
    PyObject *body = GET(rec, K_body);
    if (v == NULL || seq == NULL || t == NULL || actor == NULL || product == NULL ||
        body == NULL) return NULL;
    if (!PyLong_CheckExact(v) || PyLong_AsLong(v) != 1) return NULL;
    if (!PyLong_CheckExact(seq) || PyObject_RichCompareBool(seq, idx, Py_EQ) != 1) return NULL;
    long long t_us = time_us(t);
    if (t_us < 0 || !nonempty_str(actor) || !nonempty_str(product) ||
        !PyDict_CheckExact(body)) return NULL;
    if (spec->products != Py_None) {
        int in = PySet_Contains(spec->products, product);
        if (in != 1) return NULL;
    }
    PyObject *aid = GET(body, K_aid), *name = GET(body, K_name), *sha = GET(body, K_sha256);
    PyObject *size = GET(body, K_size), *media = GET(body, K_media);
    PyObject *meta = GET(body, K_metadata), *prov = GET(body, K_provenance);
    PyObject *retain = GET(body, K_retain), *received = GET(body, K_received);
    PyObject *storage = GET(body, K_storage);
    if (PyErr_Occurred()) return NULL;
    if (!nonempty_str(aid) || !nonempty_str(name) || !hex64(sha)) return NULL;
    if (size == NULL || !PyLong_CheckExact(size) || PyLong_AsLongLong(size) < 0) return NULL;
    if (media == NULL || !PyUnicode_CheckExact(media)) return NULL;
    if (meta == NULL || !PyDict_CheckExact(meta) || prov == NULL || !PyDict_CheckExact(prov))
        return NULL;
    if (storage == NULL || !PyUnicode_CheckExact(storage) ||
        (PyUnicode_Compare(storage, S_inline) != 0 && PyUnicode_Compare(storage, S_file) != 0))
        return NULL;
    long long rec_us = received ? time_us(received) : -1;
    long long ret_us = retain ? time_us(retain) : -1;
    if (rec_us < 0 || ret_us < 0 || rec_us > t_us) return NULL;
    if (spec->has_min_retention) {
        long long floor_us = rec_us + spec->min_retention_us;
        /* beyond datetime's range Python raises: leave that case to Python */
        if (floor_us < 0 || floor_us > MAX_TIME_US) return NULL;
        if (ret_us < floor_us) return NULL;
    }
    int idm = artifact_id_matches(aid, product, name);
    if (idm != 1) return NULL;
    if (cmp != NULL)
        return put_confirm(p, cmp, idx, typ, product, t, actor, aid, name, sha, size, media,
                           meta, retain, storage, spec);
    PyObject *meta_text = span_text(p, "metadata");
    if (meta_text == NULL) return NULL;
    PyObject *prov_text = span_text(p, "provenance");
    if (prov_text == NULL) { Py_DECREF(meta_text); return NULL; }
    PyObject *row = PyTuple_Pack(13, aid, product, name, sha, size, media, meta_text, prov_text,
                                 retain, storage, actor, t, idx);
    Py_DECREF(meta_text);
    Py_DECREF(prov_text);
    if (row == NULL) return NULL;
    PyObject *rows = PyList_New(0);
    if (rows == NULL) { Py_DECREF(row); return NULL; }
    Py_ssize_t pos = 0;
    PyObject *k, *val;
    while (PyDict_Next(meta, &pos, &k, &val)) {
        /* insertion order is document order: code-point order in this decoder's domain */
        PyObject *text;
        if (PyUnicode_CheckExact(val)) text = Py_NewRef(val);
        else if (val == Py_None) text = Py_NewRef(S_null);
        else if (val == Py_True) text = Py_NewRef(S_true);
        else if (val == Py_False) text = Py_NewRef(S_false);
        else if (PyLong_CheckExact(val)) text = PyObject_Str(val); /* <= 15 digits */
        else if (PyDict_CheckExact(val) || PyList_CheckExact(val)) continue; /* not indexed */
        else { Py_DECREF(row); Py_DECREF(rows); return NULL; }
        if (text == NULL) { Py_DECREF(row); Py_DECREF(rows); return NULL; }
        PyObject *mrow = PyTuple_Pack(4, aid, product, k, text);
        Py_DECREF(text);
        if (mrow == NULL || PyList_Append(rows, mrow) < 0) {
            Py_XDECREF(mrow);
            Py_DECREF(row);
            Py_DECREF(rows);
            return NULL;
        }
        Py_DECREF(mrow);
    }
    PyObject *tok;
    int tk = PyUnicode_Tailmatch(actor, spec->token_prefix, 0, PY_SSIZE_T_MAX, -1);
    if (tk < 0) { Py_DECREF(row); Py_DECREF(rows); return NULL; }
    if (tk) {
        tok = PyUnicode_Substring(actor, PyUnicode_GET_LENGTH(spec->token_prefix),
                                  PyUnicode_GET_LENGTH(actor));
        if (tok == NULL) { Py_DECREF(row); Py_DECREF(rows); return NULL; }
    } else {
        tok = Py_NewRef(Py_None);
    }
    PyObject *payload = PyTuple_Pack(2, row, rows);
    Py_DECREF(row);
    Py_DECREF(rows);
    if (payload == NULL) { Py_DECREF(tok); return NULL; }
    PyObject *item = PyTuple_Pack(6, idx, typ, product, t, payload, tok);
    Py_DECREF(payload);
    Py_DECREF(tok);
    return item;
}

static int spec_from(PyObject *o, Spec *spec) {
    PyObject *products, *minret, *prefix;
    if (!PyTuple_Check(o) || !PyArg_ParseTuple(o, "OOU", &products, &minret, &prefix)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "spec is (products, min_retention_us, prefix)");
        return -1;
    }
    if (products != Py_None && !PyAnySet_Check(products)) {
        PyErr_SetString(PyExc_TypeError, "products must be a set or None");
        return -1;
    }
    spec->products = products;
    spec->token_prefix = prefix;
    spec->min_retention_us = 0;
    spec->has_min_retention = minret != Py_None;
    if (spec->has_min_retention) {
        spec->min_retention_us = PyLong_AsLongLong(minret);
        if (spec->min_retention_us == -1 && PyErr_Occurred()) return -1;
        if (spec->min_retention_us < -MAX_TIME_US || spec->min_retention_us > MAX_TIME_US) {
            PyErr_SetString(PyExc_ValueError, "min_retention_us out of range");
            return -1;
        }
    }
    return 0;
}

static PyObject *py_prepare_put(PyObject *self, PyObject *args) {
    /* prepare_put(leaf, idx, spec) -> the item, or None (for the differential tests) */
    (void)self;
    Py_buffer b;
    PyObject *idx, *spec_o;
    if (!PyArg_ParseTuple(args, "y*OO", &b, &idx, &spec_o)) return NULL;
    Spec spec;
    if (spec_from(spec_o, &spec) < 0) { PyBuffer_Release(&b); return NULL; }
    P p;
    memset(&p, 0, sizeof p);
    p.s = b.buf;
    p.n = b.len;
    p.max_depth = g_max_depth;
    PyObject *v = loads_p(&p);
    PyObject *out = NULL;
    if (v != NULL) {
        out = put_item(&p, v, idx, &spec, NULL);
        Py_DECREF(v);
        if (out == NULL && PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
            PyErr_Clear(); /* as scan() does: Python decides */
        if (out == NULL && !PyErr_Occurred()) out = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&b);
    return out;
}

/* ------------------------------------------------------------------ derived rows, in SQLite */
/* Twin of depository.verifier.store._confirm_rows / _meta_digest (pure Python is the
 * specification). The artifact rows of a chunk are read in log order beside its leaves and
 * compared column by column with what each put implies; the artifact_meta rows a put implies
 * are folded into a keyed multiset digest: the sum mod 2^256 of
 *     SHA-256(key || enc(product) || enc(key) || enc(value) || enc(log_idx))
 * with a 64-byte key drawn at random for each replay (the table's side is one sequential scan, so no
 * row is looked up by key). enc(text) = 't' || u64be(len) || UTF-8; enc(int) = 'i' ||
 * i64be; any other SQLite value: a tag of its own ('f', 'b', 'n') || u64be(len) || bytes. */

typedef struct { uint64_t w[4]; } Sum256; /* w[0] most significant */

static void sum_add_words(Sum256 *a, const uint64_t x[4]) {
    uint64_t carry = 0;
    for (int k = 3; k >= 0; k--) {
        uint64_t s = a->w[k] + x[k];
        uint64_t c1 = s < x[k];
        uint64_t s2 = s + carry;
        uint64_t c2 = s2 < s;
        a->w[k] = s2;
        carry = c1 | c2;
    }
}

static void sum_add(Sum256 *a, const unsigned char d[32]) {
    uint64_t x[4];
    for (int k = 0; k < 4; k++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v = (v << 8) | d[8 * k + j];
        x[k] = v;
    }
    sum_add_words(a, x);
}

static PyObject *sum_bytes(const Sum256 *a) {
    unsigned char out[32];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 8; j++) out[8 * k + j] = (unsigned char)(a->w[k] >> (56 - 8 * j));
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

typedef struct {
    int tag; /* 't' text, 'i' integer, 'f' real, 'b' blob, 'n' null */
    const unsigned char *b;
    Py_ssize_t n;
    long long i;
} Field;

/* The key fills SHA-256's first block: its state (kctx) is computed once and copied per row. */
static SHA256_CTX *key_ctx(const unsigned char key[64]) {
    SHA256_CTX *c = PyMem_Malloc(sizeof *c);
    if (c == NULL) return NULL;
    if (SHA256_Init(c) != 1 || SHA256_Update(c, key, 64) != 1) {
        PyMem_Free(c);
        return NULL;
    }
    return c;
}

static int row_digest(const SHA256_CTX *kctx, const Field *f, int nf, unsigned char out[32]) {
    SHA256_CTX x = *kctx;
    for (int k = 0; k < nf; k++) {
        unsigned char h[9];
        uint64_t v = f[k].tag == 'i' ? (uint64_t)f[k].i : (uint64_t)f[k].n;
        h[0] = (unsigned char)f[k].tag;
        for (int j = 0; j < 8; j++) h[1 + j] = (unsigned char)(v >> (56 - 8 * j));
        if (SHA256_Update(&x, h, 9) != 1) return -1;
        if (f[k].tag != 'i' && f[k].n && SHA256_Update(&x, f[k].b, (size_t)f[k].n) != 1)
            return -1;
    }
    if (SHA256_Final(out, &x) != 1) return -1;
    return 0;
}

/* Add one artifact_meta row's keyed digest to a sum (both sides of the comparison fold
 * rows through here). -1 with a Python error set. */
static int sum_row(const SHA256_CTX *kctx, const Field f[4], Sum256 *sum) {
    unsigned char d[32];
    if (row_digest(kctx, f, 4, d) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return -1;
    }
    sum_add(sum, d);
    return 0;
}

/* A column as a Field (pointers valid until the statement steps again). */
static void col_field(sqlite3_stmt *st, int col, Field *f) {
    int ty = sqlite3_column_type(st, col);
    f->i = 0;
    if (ty == SQLITE_INTEGER) {
        f->tag = 'i';
        f->i = sqlite3_column_int64(st, col);
        f->b = NULL;
        f->n = 0;
        return;
    }
    if (ty == SQLITE_TEXT) {
        f->tag = 't';
        f->b = sqlite3_column_text(st, col);
    } else {
        f->tag = ty == SQLITE_FLOAT ? 'f' : ty == SQLITE_BLOB ? 'b' : 'n';
        f->b = sqlite3_column_blob(st, col);
    }
    f->n = sqlite3_column_bytes(st, col);
    if (f->b == NULL) f->n = 0;
}

struct Cmp {
    sqlite3_stmt *art; /* the chunk's artifact rows, in log_idx order */
    int have;          /* art is on a row */
    long long cur;     /* that row's log_idx */
    int ok;            /* every row compared so far matched */
    long long count;   /* artifact rows confirmed */
    PyObject *skipped; /* log_idx of rows at no put this code confirmed (Python compares) */
    SHA256_CTX *kctx;  /* SHA-256 state after the key */
    Sum256 sum;        /* metadata rows the confirmed puts imply */
    long long meta_count;
    sqlite3_stmt *blob; /* the chunk's inline_blob rows, in log_idx order */
    int bhave;
    long long bcur;
    int bclean;         /* every row is the bytes of a confirmed inline put, none missing */
    long long blobs;    /* inline puts whose bytes hash to their record */
};

static void blob_step(Cmp *c) {
    int rc = sqlite3_step(c->blob);
    if (rc == SQLITE_ROW && sqlite3_column_type(c->blob, 0) == SQLITE_INTEGER) {
        c->bhave = 1;
        c->bcur = sqlite3_column_int64(c->blob, 0);
        return;
    }
    c->bhave = 0;
    if (rc != SQLITE_DONE) c->bclean = 0;
}

/* The inline bytes of the put at li, whose record says sha (64 hex digits). */
static int blob_check(Cmp *c, long long li, PyObject *sha) {
    while (c->bhave && c->bcur < li) { c->bclean = 0; blob_step(c); }
    if (!c->bhave || c->bcur != li || sqlite3_column_type(c->blob, 1) != SQLITE_BLOB) {
        c->bclean = 0;
        return 0;
    }
    const unsigned char *b = sqlite3_column_blob(c->blob, 1);
    Py_ssize_t n = sqlite3_column_bytes(c->blob, 1);
    static const unsigned char zero = 0;
    unsigned char d[32];
    if (sha256_2(b ? b : &zero, (size_t)n, NULL, 0, NULL, 0, d) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return -1;
    }
    static const char hx[] = "0123456789abcdef";
    char h[64];
    for (int k = 0; k < 32; k++) { h[2 * k] = hx[d[k] >> 4]; h[2 * k + 1] = hx[d[k] & 15]; }
    const char *want = (const char *)PyUnicode_DATA(sha); /* hex64: compact ASCII */
    if (memcmp(h, want, 64) == 0) c->blobs++;
    else c->bclean = 0;
    blob_step(c);
    return 0;
}

static void art_step(Cmp *c) {
    int rc = sqlite3_step(c->art);
    if (rc == SQLITE_ROW && sqlite3_column_type(c->art, 0) == SQLITE_INTEGER) {
        c->have = 1;
        c->cur = sqlite3_column_int64(c->art, 0);
        return;
    }
    c->have = 0;
    if (rc != SQLITE_DONE) c->ok = 0; /* unreadable: the row-by-row path words it */
}

/* Step the artifact rows up to log index li, noting each row passed over (no put of
 * its own in the log: the row-by-row path words it). -1 with a Python error set. */
static int art_seek(Cmp *c, long long li) {
    while (c->have && c->cur < li) {
        PyObject *o = PyLong_FromLongLong(c->cur);
        if (o == NULL || PyList_Append(c->skipped, o) < 0) {
            Py_XDECREF(o);
            return -1;
        }
        Py_DECREF(o);
        art_step(c);
    }
    return 0;
}

static int col_text_eq(sqlite3_stmt *st, int col, const char *b, Py_ssize_t n) {
    if (sqlite3_column_type(st, col) != SQLITE_TEXT) return 0;
    const unsigned char *t = sqlite3_column_text(st, col);
    Py_ssize_t tn = sqlite3_column_bytes(st, col);
    return t != NULL && tn == n && (n == 0 || memcmp(t, b, (size_t)n) == 0);
}

static int col_str_eq(sqlite3_stmt *st, int col, PyObject *o) {
    Py_ssize_t n;
    const char *b = PyUnicode_AsUTF8AndSize(o, &n);
    if (b == NULL) { PyErr_Clear(); return 0; }
    return col_text_eq(st, col, b, n);
}

static int span_find(P *p, const char *key, const char **b, Py_ssize_t *n) {
    size_t kl = strlen(key);
    for (int k = 0; k < p->nspans; k++) {
        Span *sp = &p->spans[k];
        if ((size_t)sp->klen == kl && memcmp(sp->key, key, kl) == 0) {
            *b = (const char *)p->s + sp->start;
            *n = sp->end - sp->start;
            return 1;
        }
    }
    return 0;
}

static PyObject *token_of(PyObject *actor, const Spec *spec) {
    int tk = PyUnicode_Tailmatch(actor, spec->token_prefix, 0, PY_SSIZE_T_MAX, -1);
    if (tk < 0) return NULL;
    if (!tk) return Py_NewRef(Py_None);
    return PyUnicode_Substring(actor, PyUnicode_GET_LENGTH(spec->token_prefix),
                               PyUnicode_GET_LENGTH(actor));
}

/* A put that passed every check of _prepare: confirm its artifact row (cmp->art at its index)
 * and add its metadata rows to the digest; return the compact item the parent's replay needs
 * (store._compact's shape). NULL without an error: Python prepares this record instead. */
static PyObject *put_confirm(P *p, Cmp *cmp, PyObject *idx, PyObject *typ, PyObject *product,
                             PyObject *t, PyObject *actor, PyObject *aid, PyObject *name,
                             PyObject *sha, PyObject *size, PyObject *media, PyObject *meta,
                             PyObject *retain, PyObject *storage, const Spec *spec) {
    long long li = PyLong_AsLongLong(idx);
    if (li == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t pl;
    const char *pb = PyUnicode_AsUTF8AndSize(product, &pl);
    if (pb == NULL) return NULL;
    const char *mb, *vb;
    Py_ssize_t mn, vn;
    if (!span_find(p, "metadata", &mb, &mn) || !span_find(p, "provenance", &vb, &vn))
        return NULL;
    /* 1. the metadata rows, into a local sum: nothing is consumed if this record goes back */
    Sum256 local = {{0, 0, 0, 0}};
    long long mcount = 0;
    Py_ssize_t pos = 0;
    PyObject *k, *val;
    while (PyDict_Next(meta, &pos, &k, &val)) {
        const char *tb;
        Py_ssize_t tn;
        char num[32];
        if (PyUnicode_CheckExact(val)) {
            tb = PyUnicode_AsUTF8AndSize(val, &tn);
            if (tb == NULL) return NULL;
        } else if (val == Py_None) {
            tb = "null"; tn = 4;
        } else if (val == Py_True) {
            tb = "true"; tn = 4;
        } else if (val == Py_False) {
            tb = "false"; tn = 5;
        } else if (PyLong_CheckExact(val)) { /* <= 15 digits: within +-2**53 */
            long long x = PyLong_AsLongLong(val);
            if (x == -1 && PyErr_Occurred()) return NULL;
            tn = snprintf(num, sizeof num, "%lld", x);
            tb = num;
        } else if (PyDict_CheckExact(val) || PyList_CheckExact(val)) {
            continue; /* not indexed */
        } else {
            return NULL;
        }
        Py_ssize_t kn;
        const char *kb = PyUnicode_AsUTF8AndSize(k, &kn);
        if (kb == NULL) return NULL;
        Field f[4] = {
            {'t', (const unsigned char *)pb, pl, 0}, {'t', (const unsigned char *)kb, kn, 0},
            {'t', (const unsigned char *)tb, tn, 0}, {'i', NULL, 0, li},
        };
        if (sum_row(cmp->kctx, f, &local) < 0) return NULL;
        mcount++;
    }
    PyObject *tok = token_of(actor, spec);
    if (tok == NULL) return NULL;
    PyObject *small = PyTuple_Pack(10, aid, Py_None, name, sha, size, Py_None, Py_None, Py_None,
                                   Py_None, storage);
    PyObject *empty = small ? PyTuple_New(0) : NULL;
    PyObject *payload = empty ? PyTuple_Pack(2, small, empty) : NULL;
    Py_XDECREF(small);
    Py_XDECREF(empty);
    PyObject *item = payload ? PyTuple_Pack(6, idx, typ, product, t, payload, tok) : NULL;
    Py_XDECREF(payload);
    Py_DECREF(tok);
    if (item == NULL) return NULL;
    /* 2. the artifact row at this index */
    if (art_seek(cmp, li) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    if (!cmp->have || cmp->cur != li) {
        cmp->ok = 0; /* no row for this put */
    } else {
        sqlite3_stmt *st = cmp->art;
        long long sz = PyLong_AsLongLong(size);
        int same = col_str_eq(st, 1, aid) && col_str_eq(st, 2, product) &&
                   col_str_eq(st, 3, name) && col_str_eq(st, 4, sha) &&
                   sqlite3_column_type(st, 5) == SQLITE_INTEGER &&
                   sqlite3_column_int64(st, 5) == sz && col_str_eq(st, 6, media) &&
                   col_text_eq(st, 7, mb, mn) && col_text_eq(st, 8, vb, vn) &&
                   col_str_eq(st, 9, retain) && col_str_eq(st, 10, storage) &&
                   col_str_eq(st, 11, actor) && col_str_eq(st, 12, t);
        if (!same) cmp->ok = 0;
        cmp->count++;
        art_step(cmp);
    }
    sum_add_words(&cmp->sum, local.w);
    cmp->meta_count += mcount;
    if (cmp->blob != NULL && PyUnicode_Compare(storage, S_inline) == 0 &&
        blob_check(cmp, li, sha) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    return item;
}

/* ------------------------------------------------------------------ a put, without objects */
/* The fast path of Db.chunk for the record nearly every store is made of: prove the leaf
 * canonical and the artifact.put sound while creating no Python object for its parts
 * (only the few the replay keeps). It accepts a subset of what loads() + put_item() accept
 * (no escapes in the fields it reads, exactly the keys the store writes) and then returns
 * what they return; anything else is "not handled" and takes that path, which decides. */

typedef struct {
    const unsigned char *k; /* key bytes in the leaf (keys with escapes are not handled) */
    Py_ssize_t kn, vs, ve;  /* the value is s[vs:ve] */
} M;

#define V_TOP 8
#define V_BODY 12
#define V_META 64

typedef struct {
    P p; /* the parser's state: scan_string and its buffer */
    int ntop, nbody, nmeta;
    M top[V_TOP], body[V_BODY], meta[V_META];
} V;

/* Strict UTF-8 (what PyUnicode_DecodeUTF8 accepts), for text whose bytes are all below
 * 0xEE (the caller refused the rest): no overlong forms, no surrogates. */
static int utf8_ok(const unsigned char *b, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = b[i];
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (b[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
            continue;
        }
        if (c >= 0xE0 && c <= 0xED) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = b[i + 1];
            int ok1 = c == 0xE0 ? (c1 >= 0xA0 && c1 <= 0xBF)
                    : c == 0xED ? (c1 >= 0x80 && c1 <= 0x9F) : (c1 & 0xC0) == 0x80;
            if (!ok1 || (b[i + 2] & 0xC0) != 0x80) return 0;
            i += 3;
            continue;
        }
        return 0;
    }
    return 1;
}

static int vvalue(V *v, int depth, int ctx);

static int vstring(V *v) {
    const unsigned char *b;
    Py_ssize_t len;
    int ascii, esc;
    Py_ssize_t start = v->p.i + 1;
    int r = scan_string(&v->p, &b, &len, &ascii, &esc);
    if (r < 0) {
        if (r == -2) PyErr_Clear(); /* the object path meets it again and raises */
        return -1;
    }
    if (!ascii && !utf8_ok(v->p.s + start, v->p.i - 1 - start)) return -1;
    return 0;
}

/* ctx: 1 the record, 2 its body, 3 the body's metadata (members recorded), 0 other. */
static int vobject(V *v, int depth, int ctx) {
    P *p = &v->p;
    if (depth > p->max_depth) return -1;
    p->i++; /* '{' */
    if (p->i < p->n && p->s[p->i] == '}') { p->i++; return 0; }
    const unsigned char *prev = NULL;
    Py_ssize_t prev_len = 0;
    for (;;) {
        if (p->i >= p->n || p->s[p->i] != '"') return -1;
        const unsigned char *kb;
        Py_ssize_t klen;
        int ascii, esc;
        int r = scan_string(p, &kb, &klen, &ascii, &esc);
        if (r < 0) {
            if (r == -2) PyErr_Clear();
            return -1;
        }
        if (esc) return -1; /* the object path handles keys with escapes */
        if (!ascii && !utf8_ok(kb, klen)) return -1;
        if (prev != NULL && key_cmp(prev, prev_len, kb, klen) >= 0) return -1;
        prev = kb;
        prev_len = klen;
        if (p->i >= p->n || p->s[p->i] != ':') return -1;
        p->i++;
        Py_ssize_t vs = p->i;
        int child = 0;
        if (ctx == 1 && klen == 4 && memcmp(kb, "body", 4) == 0) child = 2;
        else if (ctx == 2 && klen == 8 && memcmp(kb, "metadata", 8) == 0) child = 3;
        if (vvalue(v, depth, child) < 0) return -1;
        M *m = NULL;
        if (ctx == 1) { if (v->ntop >= V_TOP) return -1; m = &v->top[v->ntop++]; }
        else if (ctx == 2) { if (v->nbody >= V_BODY) return -1; m = &v->body[v->nbody++]; }
        else if (ctx == 3) { if (v->nmeta >= V_META) return -1; m = &v->meta[v->nmeta++]; }
        if (m != NULL) { m->k = kb; m->kn = klen; m->vs = vs; m->ve = p->i; }
        if (p->i >= p->n) return -1;
        unsigned char c = p->s[p->i++];
        if (c == '}') break;
        if (c != ',') return -1;
    }
    return 0;
}

static int varray(V *v, int depth) {
    P *p = &v->p;
    if (depth > p->max_depth) return -1;
    p->i++; /* '[' */
    if (p->i < p->n && p->s[p->i] == ']') { p->i++; return 0; }
    for (;;) {
        if (vvalue(v, depth, 0) < 0) return -1;
        if (p->i >= p->n) return -1;
        unsigned char c = p->s[p->i++];
        if (c == ']') break;
        if (c != ',') return -1;
    }
    return 0;
}

static int vnumber(P *p) {
    const unsigned char *s = p->s;
    Py_ssize_t i = p->i, n = p->n;
    int neg = 0;
    if (s[i] == '-') { neg = 1; i++; }
    Py_ssize_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    Py_ssize_t nd = i - d0;
    if (nd == 0 || nd > 15) return -1;
    if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) return -1;
    if (s[d0] == '0' && (nd > 1 || neg)) return -1;
    p->i = i;
    return 0;
}

static int vvalue(V *v, int depth, int ctx) {
    P *p = &v->p;
    if (p->i >= p->n) return -1;
    unsigned char c = p->s[p->i];
    switch (c) {
    case '{': return vobject(v, depth + 1, ctx);
    case '[': return varray(v, depth + 1);
    case '"': return vstring(v);
    case 't':
        if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) { p->i += 4; return 0; }
        return -1;
    case 'f':
        if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) { p->i += 5; return 0; }
        return -1;
    case 'n':
        if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) { p->i += 4; return 0; }
        return -1;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return vnumber(p);
        return -1;
    }
}

/* The member's value as a string without escapes: its bytes (0: not such a string). */
static int vtext(const V *v, const M *m, const char **b, Py_ssize_t *n) {
    const unsigned char *s = v->p.s;
    if (m->ve - m->vs < 2 || s[m->vs] != '"') return 0;
    *b = (const char *)s + m->vs + 1;
    *n = m->ve - m->vs - 2;
    return memchr(*b, '\\', (size_t)*n) == NULL;
}

static int vkey(const M *m, const char *key) {
    size_t kl = strlen(key);
    return (size_t)m->kn == kl && memcmp(m->k, key, kl) == 0;
}

/* Digits of a non-negative integer member (at most 15: the parser refused more). */
static int vuint(const V *v, const M *m, long long *out) {
    const unsigned char *s = v->p.s;
    if (m->ve <= m->vs) return 0;
    long long x = 0;
    for (Py_ssize_t k = m->vs; k < m->ve; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        x = x * 10 + (s[k] - '0');
    }
    *out = x;
    return 1;
}

static PyObject *str_of(const char *b, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++)
        if ((unsigned char)b[k] >= 0x80) return PyUnicode_DecodeUTF8(b, n, "strict");
    return make_str(NULL, (const unsigned char *)b, n, 1);
}

static const char *const TOP_KEYS[] = {"actor", "body", "product", "seq", "time", "type", "v"};
static const char *const BODY_KEYS[] = {"artifact_id", "media_type", "metadata", "name",
                                        "provenance", "received", "retain_until", "sha256",
                                        "size", "storage"};

/* The item put_item(cmp) would return for this leaf, with the same effects on cmp; NULL
 * with *handled = 0 (and no error): take the object path. */
static PyObject *put_fast(const unsigned char *s, Py_ssize_t n, long long li, PyObject *idx,
                          const Spec *spec, Cmp *cmp, int *handled) {
    *handled = 0;
    if (n == 0) return NULL;
    for (Py_ssize_t k = 0; k < n; k++)
        if (s[k] >= 0xEE) return NULL;
    V v;
    v.p.s = s;
    v.p.n = n;
    v.p.i = 0;
    v.p.max_depth = g_max_depth;
    v.p.buf = NULL;
    v.p.cap = 0;
    v.ntop = v.nbody = v.nmeta = 0;
    int r = (n > 0 && s[0] == '{') ? vobject(&v, 1, 1) : -1;
    PyMem_Free(v.p.buf);
    if (r < 0 || v.p.i != n || v.ntop != 7 || v.nbody != 10) return NULL;
    for (int k = 0; k < 7; k++) if (!vkey(&v.top[k], TOP_KEYS[k])) return NULL;
    for (int k = 0; k < 10; k++) if (!vkey(&v.body[k], BODY_KEYS[k])) return NULL;
    M *actor = &v.top[0], *product = &v.top[2], *seq = &v.top[3], *tm = &v.top[4],
      *typ = &v.top[5], *ver = &v.top[6];
    M *aid = &v.body[0], *media = &v.body[1], *meta = &v.body[2], *name = &v.body[3],
      *prov = &v.body[4], *received = &v.body[5], *retain = &v.body[6], *sha = &v.body[7],
      *size = &v.body[8], *storage = &v.body[9];
    const char *ab, *mb, *nb, *pb, *tb, *yb, *rb, *ub, *hb, *sb, *cb;
    Py_ssize_t an, mn, nn, pn, tn, yn, rn, un, hn, sn, cn;
    long long seqv, sizev;
    if (!vtext(&v, actor, &cb, &cn) || cn == 0 || !vtext(&v, product, &pb, &pn) || pn == 0 ||
        !vuint(&v, seq, &seqv) || seqv != li || !vtext(&v, tm, &tb, &tn) ||
        !vtext(&v, typ, &yb, &yn) || yn != 12 || memcmp(yb, "artifact.put", 12) != 0 ||
        ver->ve - ver->vs != 1 || s[ver->vs] != '1')
        return NULL;
    if (s[v.top[1].vs] != '{' || s[meta->vs] != '{' || s[prov->vs] != '{') return NULL;
    if (!vtext(&v, aid, &ab, &an) || an == 0 || !vtext(&v, media, &mb, &mn) ||
        !vtext(&v, name, &nb, &nn) || nn == 0 || !vtext(&v, received, &rb, &rn) ||
        !vtext(&v, retain, &ub, &un) || !vtext(&v, sha, &hb, &hn) || hn != 64 ||
        !vuint(&v, size, &sizev) || !vtext(&v, storage, &sb, &sn))
        return NULL;
    for (int k = 0; k < 64; k++)
        if (!is_digit(hb[k]) && !(hb[k] >= 'a' && hb[k] <= 'f')) return NULL;
    int file = sn == 4 && memcmp(sb, "file", 4) == 0;
    if (!file && !(sn == 6 && memcmp(sb, "inline", 6) == 0)) return NULL;
    long long t_us = time_us_b(tb, tn), rec_us = time_us_b(rb, rn), ret_us = time_us_b(ub, un);
    if (t_us < 0 || rec_us < 0 || ret_us < 0 || rec_us > t_us) return NULL;
    if (spec->has_min_retention) {
        long long floor_us = rec_us + spec->min_retention_us;
        if (floor_us < 0 || floor_us > MAX_TIME_US || ret_us < floor_us) return NULL;
    }
    int idm = artifact_id_matches_b(ab, an, pb, pn, nb, nn);
    if (idm < 0) { PyErr_Clear(); return NULL; }
    if (idm != 1) return NULL;
    /* The metadata rows into a local sum (nothing consumed if this record goes back). */
    Sum256 local = {{0, 0, 0, 0}};
    long long mcount = 0;
    for (int k = 0; k < v.nmeta; k++) {
        M *m = &v.meta[k];
        const char *xb;
        Py_ssize_t xn;
        unsigned char c = s[m->vs];
        if (c == '{' || c == '[') continue; /* not indexed */
        if (c == '"') {
            if (!vtext(&v, m, &xb, &xn)) return NULL; /* escapes: the object path */
        } else {
            xb = (const char *)s + m->vs; /* true, false, null, an integer: as written */
            xn = m->ve - m->vs;
        }
        Field f[4] = {
            {'t', (const unsigned char *)pb, pn, 0}, {'t', m->k, m->kn, 0},
            {'t', (const unsigned char *)xb, xn, 0}, {'i', NULL, 0, li},
        };
        if (sum_row(cmp->kctx, f, &local) < 0) {
            *handled = 1;
            return NULL;
        }
        mcount++;
    }
    /* The objects the replay keeps. */
    Py_ssize_t tp;
    const char *tpb = PyUnicode_AsUTF8AndSize(spec->token_prefix, &tp);
    if (tpb == NULL) { *handled = 1; return NULL; }
    PyObject *o_product = str_of(pb, pn);
    PyObject *o_aid = o_product ? make_str(NULL, (const unsigned char *)ab, an, 1) : NULL;
    PyObject *o_name = o_aid ? str_of(nb, nn) : NULL;
    PyObject *o_sha = o_name ? make_str(NULL, (const unsigned char *)hb, 64, 1) : NULL;
    PyObject *o_size = o_sha ? PyLong_FromLongLong(sizev) : NULL;
    PyObject *o_t = o_size ? make_str(NULL, (const unsigned char *)tb, tn, 1) : NULL;
    PyObject *o_tok = NULL;
    if (o_t != NULL) {
        if (cn >= tp && memcmp(cb, tpb, (size_t)tp) == 0) o_tok = str_of(cb + tp, cn - tp);
        else o_tok = Py_NewRef(Py_None);
    }
    PyObject *item = NULL;
    if (o_tok != NULL) {
        int in = 1;
        if (spec->products != Py_None) in = PySet_Contains(spec->products, o_product);
        if (in == 1) {
            PyObject *small = PyTuple_Pack(10, o_aid, Py_None, o_name, o_sha, o_size, Py_None,
                                           Py_None, Py_None, Py_None, file ? S_file : S_inline);
            PyObject *empty = small ? PyTuple_New(0) : NULL;
            PyObject *payload = empty ? PyTuple_Pack(2, small, empty) : NULL;
            Py_XDECREF(small);
            Py_XDECREF(empty);
            item = payload ? PyTuple_Pack(6, idx, S_put, o_product, o_t, payload, o_tok) : NULL;
            Py_XDECREF(payload);
        } else if (in < 0) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(o_product);
    Py_XDECREF(o_aid);
    Py_XDECREF(o_name);
    Py_XDECREF(o_sha);
    Py_XDECREF(o_size);
    Py_XDECREF(o_t);
    Py_XDECREF(o_tok);
    if (item == NULL) {
        /* not in the configured products, or a decoding error: the object path decides */
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) *handled = 1;
        else PyErr_Clear();
        return NULL;
    }
    *handled = 1;
    /* The artifact row at this index. */
    if (art_seek(cmp, li) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    if (!cmp->have || cmp->cur != li) {
        cmp->ok = 0;
    } else {
        sqlite3_stmt *st = cmp->art;
        int same = col_text_eq(st, 1, ab, an) && col_text_eq(st, 2, pb, pn) &&
                   col_text_eq(st, 3, nb, nn) && col_text_eq(st, 4, hb, 64) &&
                   sqlite3_column_type(st, 5) == SQLITE_INTEGER &&
                   sqlite3_column_int64(st, 5) == sizev && col_text_eq(st, 6, mb, mn) &&
                   col_text_eq(st, 7, (const char *)s + meta->vs, meta->ve - meta->vs) &&
                   col_text_eq(st, 8, (const char *)s + prov->vs, prov->ve - prov->vs) &&
                   col_text_eq(st, 9, ub, un) && col_text_eq(st, 10, sb, sn) &&
                   col_text_eq(st, 11, cb, cn) && col_text_eq(st, 12, tb, tn);
        if (!same) cmp->ok = 0;
        cmp->count++;
        art_step(cmp);
    }
    sum_add_words(&cmp->sum, local.w);
    cmp->meta_count += mcount;
    if (cmp->blob != NULL && !file) {
        PyObject *o_sha2 = PyTuple_GET_ITEM(PyTuple_GET_ITEM(PyTuple_GET_ITEM(item, 4), 0), 3);
        if (blob_check(cmp, li, o_sha2) < 0) {
            Py_DECREF(item);
            return NULL;
        }
    }
    return item;
}

/* Db(uri): a read-only connection of this module's own, stepping the statements the scan
 * needs without a Python object per row. */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *log, *art, *meta, *node;
    sqlite3_stmt *blob; /* NULL when there is no inline_blob table */
} DbObject;

static void Db_close_all(DbObject *o) {
    sqlite3_finalize(o->log);
    sqlite3_finalize(o->art);
    sqlite3_finalize(o->meta);
    sqlite3_finalize(o->blob);
    sqlite3_finalize(o->node);
    o->log = o->art = o->meta = o->blob = o->node = NULL;
    if (o->db) sqlite3_close_v2(o->db);
    o->db = NULL;
}

static void Db_dealloc(DbObject *o) {
    Db_close_all(o);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

static int Db_init(DbObject *o, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"uri", NULL};
    const char *uri;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &uri)) return -1;
    Db_close_all(o);
    int rc = sqlite3_open_v2(uri, &o->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    const char *sql[] = {
        "PRAGMA query_only=1",
        "PRAGMA mmap_size=1099511627776",
    };
    for (size_t k = 0; rc == SQLITE_OK && k < sizeof sql / sizeof sql[0]; k++)
        rc = sqlite3_exec(o->db, sql[k], NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(o->db, "SELECT idx, leaf, leaf_hash FROM log WHERE idx >= ?1 "
                                "AND idx < ?2 ORDER BY idx", -1, SQLITE_PREPARE_PERSISTENT,
                                &o->log, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(o->db, "SELECT log_idx, id, product, name, sha256, size, "
                                "media_type, metadata, provenance, retain_until, storage, actor, "
                                "created FROM artifact WHERE log_idx >= ?1 AND log_idx < ?2 "
                                "ORDER BY log_idx", -1, SQLITE_PREPARE_PERSISTENT, &o->art, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(o->db, "SELECT product, key, value, log_idx FROM artifact_meta",
                                -1, SQLITE_PREPARE_PERSISTENT, &o->meta, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(o->db, "SELECT hash FROM node WHERE level = ?1 AND k >= ?2 "
                                "AND k < ?3 ORDER BY k", -1, SQLITE_PREPARE_PERSISTENT,
                                &o->node, NULL);
    if (rc == SQLITE_OK &&
        sqlite3_prepare_v3(o->db, "SELECT log_idx, data FROM inline_blob WHERE log_idx >= ?1 "
                           "AND log_idx < ?2 ORDER BY log_idx", -1, SQLITE_PREPARE_PERSISTENT,
                           &o->blob, NULL) != SQLITE_OK)
        o->blob = NULL; /* no such table: chunk() reports no blob confirmation */
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "cannot read the store: %s",
                     o->db ? sqlite3_errmsg(o->db) : "out of memory");
        Db_close_all(o);
        return -1;
    }
    return 0;
}

static int db_ready(DbObject *o) {
    if (o->db == NULL) {
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return 0;
    }
    return 1;
}

/* Db.chunk(start, end, spec, key) -> None, or (values, hashes, leaves, confirmed, artifacts,
 * skipped, meta_count, meta_sum, blobs).
 * None: the leaves are not rows start..end-1 without a gap, a leaf or leaf_hash is not a blob,
 * a stored leaf_hash differs, or the database could not be read: the pure-Python scan decides.
 * values[i]: the compact item of a put this code proved sound (its artifact row compared, its
 * metadata rows in meta_sum), else the decoded record or None (not proven canonical), whose
 * leaf bytes are leaves[i]. confirmed: every artifact row compared equal and none is missing;
 * skipped: log_idx of artifact rows in the range at no such put (Python compares them).
 * blobs: the number of inline puts whose inline_blob row hashes to the record, when those
 * are all the range's inline_blob rows and none is missing; else -1 (Python checks). */
static PyObject *Db_chunk(DbObject *self, PyObject *args) {
    long long start, end;
    PyObject *spec_o;
    Py_buffer key;
    int fast = 1; /* put_fast first (0: the object path only, for the differential tests) */
    if (!PyArg_ParseTuple(args, "LLOy*|p", &start, &end, &spec_o, &key, &fast)) return NULL;
    PyObject *values = NULL, *hashes = NULL, *leaves = NULL, *out = NULL;
    Cmp cmp;
    memset(&cmp, 0, sizeof cmp);
    Spec spec;
    if (!db_ready(self)) goto done;
    if (key.len != 64) { PyErr_SetString(PyExc_ValueError, "key must be 64 bytes"); goto done; }
    if (spec_from(spec_o, &spec) < 0) goto done;
    cmp.kctx = key_ctx(key.buf);
    if (cmp.kctx == NULL) { PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed"); goto done; }
    if (start < 0 || end < start || end - start > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "bad chunk bounds");
        goto done;
    }
    Py_ssize_t n = (Py_ssize_t)(end - start);
    values = PyList_New(n);
    hashes = PyBytes_FromStringAndSize(NULL, n * 32);
    leaves = PyDict_New();
    cmp.skipped = PyList_New(0);
    if (values == NULL || hashes == NULL || leaves == NULL || cmp.skipped == NULL) goto done;
    for (Py_ssize_t k = 0; k < n; k++) PyList_SET_ITEM(values, k, Py_NewRef(Py_None));
    unsigned char *hout = (unsigned char *)PyBytes_AS_STRING(hashes);
    cmp.art = self->art;
    cmp.ok = 1;
    cmp.blob = self->blob;
    cmp.bclean = cmp.blob != NULL;
    sqlite3_stmt *lg = self->log;
    if (sqlite3_bind_int64(lg, 1, start) != SQLITE_OK ||
        sqlite3_bind_int64(lg, 2, end) != SQLITE_OK ||
        sqlite3_bind_int64(cmp.art, 1, start) != SQLITE_OK ||
        sqlite3_bind_int64(cmp.art, 2, end) != SQLITE_OK ||
        (cmp.blob != NULL && (sqlite3_bind_int64(cmp.blob, 1, start) != SQLITE_OK ||
                              sqlite3_bind_int64(cmp.blob, 2, end) != SQLITE_OK))) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    art_step(&cmp);
    if (cmp.blob != NULL) blob_step(&cmp);
    static const unsigned char zero = 0;
    Py_ssize_t k = 0;
    int rc;
    int sound = 1;
    while ((rc = sqlite3_step(lg)) == SQLITE_ROW) {
        if (k >= n || sqlite3_column_type(lg, 0) != SQLITE_INTEGER ||
            sqlite3_column_int64(lg, 0) != start + k || sqlite3_column_type(lg, 1) != SQLITE_BLOB ||
            sqlite3_column_type(lg, 2) != SQLITE_BLOB) {
            sound = 0;
            break;
        }
        const unsigned char *s = sqlite3_column_blob(lg, 1);
        Py_ssize_t len = sqlite3_column_bytes(lg, 1);
        if (s == NULL) s = &zero; /* an empty blob */
        if (sha256_2(&zero, 1, s, (size_t)len, NULL, 0, hout + 32 * k) < 0) {
            PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
            goto done;
        }
        const void *col = sqlite3_column_blob(lg, 2);
        if (sqlite3_column_bytes(lg, 2) != 32 || col == NULL ||
            memcmp(col, hout + 32 * k, 32) != 0) {
            sound = 0;
            break;
        }
        if (fast) {
            PyObject *idx = PyLong_FromLongLong(start + k);
            if (idx == NULL) goto done;
            int handled;
            PyObject *item = put_fast(s, len, start + k, idx, &spec, &cmp, &handled);
            Py_DECREF(idx);
            if (item != NULL) {
                Py_SETREF(PyList_GET_ITEM(values, k), item);
                k++;
                continue;
            }
            if (handled) goto done; /* an error */
        }
        P p;
        memset(&p, 0, sizeof p);
        p.s = s;
        p.n = len;
        p.max_depth = g_max_depth;
        PyObject *v = loads_p(&p);
        if (v == NULL) goto done;
        if (v != Py_None) {
            PyObject *idx = PyLong_FromLongLong(start + k);
            if (idx == NULL) { Py_DECREF(v); goto done; }
            PyObject *item = put_item(&p, v, idx, &spec, &cmp);
            Py_DECREF(idx);
            if (item != NULL) {
                Py_SETREF(v, item);
            } else if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_MemoryError)) {
                    PyErr_Clear(); /* e.g. an oversized int: Python decides */
                } else {
                    Py_DECREF(v);
                    goto done;
                }
            }
        }
        if (!PyTuple_CheckExact(v)) {
            PyObject *pos = PyLong_FromSsize_t(k);
            PyObject *b = pos ? PyBytes_FromStringAndSize((const char *)s, len) : NULL;
            int r = b ? PyDict_SetItem(leaves, pos, b) : -1;
            Py_XDECREF(pos);
            Py_XDECREF(b);
            if (r < 0) { Py_DECREF(v); goto done; }
        }
        Py_SETREF(PyList_GET_ITEM(values, k), v);
        k++;
    }
    if (!sound || rc != SQLITE_DONE || k != n) {
        out = Py_NewRef(Py_None);
        goto done;
    }
    while (cmp.have) { /* artifact rows after the last confirmed put */
        PyObject *o = PyLong_FromLongLong(cmp.cur);
        if (o == NULL || PyList_Append(cmp.skipped, o) < 0) { Py_XDECREF(o); goto done; }
        Py_DECREF(o);
        art_step(&cmp);
    }
    if (cmp.bhave) cmp.bclean = 0; /* rows after the last inline put */
    PyObject *msum = sum_bytes(&cmp.sum);
    if (msum == NULL) goto done;
    out = Py_BuildValue("(OOOOLOLNL)", values, hashes, leaves, cmp.ok ? Py_True : Py_False,
                        cmp.count, cmp.skipped, cmp.meta_count, msum,
                        cmp.bclean ? cmp.blobs : -1LL);
done:
    if (self->db) {
        sqlite3_reset(self->log);
        sqlite3_reset(self->art);
        if (self->blob) sqlite3_reset(self->blob);
    }
    Py_XDECREF(values);
    Py_XDECREF(hashes);
    Py_XDECREF(leaves);
    Py_XDECREF(cmp.skipped);
    PyMem_Free(cmp.kctx);
    PyBuffer_Release(&key);
    return out;
}

/* Db.meta_digest(key, n) -> (rows, sum, beyond): every artifact_meta row with log_idx < n
 * folded into the keyed digest (rows counted), and the number of rows at log_idx >= n. */
static PyObject *Db_meta_digest(DbObject *self, PyObject *args) {
    Py_buffer key;
    long long n;
    if (!PyArg_ParseTuple(args, "y*L", &key, &n)) return NULL;
    PyObject *out = NULL;
    SHA256_CTX *kctx = NULL;
    if (!db_ready(self)) goto done;
    if (key.len != 64) { PyErr_SetString(PyExc_ValueError, "key must be 64 bytes"); goto done; }
    kctx = key_ctx(key.buf);
    if (kctx == NULL) { PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed"); goto done; }
    Sum256 sum = {{0, 0, 0, 0}};
    long long rows = 0, beyond = 0;
    int rc;
    sqlite3_stmt *st = self->meta;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        Field f[4];
        for (int c = 0; c < 4; c++) col_field(st, c, &f[c]);
        if (f[3].tag == 'i' && f[3].i >= n) { beyond++; continue; }
        if (sum_row(kctx, f, &sum) < 0) goto done;
        rows++;
    }
    if (rc != SQLITE_DONE) {
        PyErr_Format(PyExc_OSError, "artifact_meta could not be read: %s",
                     sqlite3_errmsg(self->db));
        goto done;
    }
    PyObject *s = sum_bytes(&sum);
    if (s != NULL) out = Py_BuildValue("(LNL)", rows, s, beyond);
done:
    if (self->db) sqlite3_reset(self->meta);
    PyMem_Free(kctx);
    PyBuffer_Release(&key);
    return out;
}

/* Db.nodes_equal(level, k, hashes) -> whether the node rows (level, k..k+m-1) are exactly
 * the m 32-byte hashes given, in order (blobs, none missing, none extra in the range). */
static PyObject *Db_nodes_equal(DbObject *self, PyObject *args) {
    long long level, k0;
    Py_buffer want;
    if (!PyArg_ParseTuple(args, "LLy*", &level, &k0, &want)) return NULL;
    PyObject *out = NULL;
    if (!db_ready(self)) goto done;
    if (want.len % 32) { PyErr_SetString(PyExc_ValueError, "hashes are 32 bytes each"); goto done; }
    long long m = want.len / 32, j = 0;
    sqlite3_stmt *st = self->node;
    int same = sqlite3_bind_int64(st, 1, level) == SQLITE_OK &&
               sqlite3_bind_int64(st, 2, k0) == SQLITE_OK &&
               sqlite3_bind_int64(st, 3, k0 + m) == SQLITE_OK;
    int rc = SQLITE_DONE;
    while (same && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (j >= m || sqlite3_column_type(st, 0) != SQLITE_BLOB ||
            sqlite3_column_bytes(st, 0) != 32 ||
            memcmp(sqlite3_column_blob(st, 0), (const unsigned char *)want.buf + 32 * j, 32))
            same = 0;
        j++;
    }
    out = Py_NewRef(same && rc == SQLITE_DONE && j == m ? Py_True : Py_False);
done:
    if (self->db) sqlite3_reset(self->node);
    PyBuffer_Release(&want);
    return out;
}

static PyObject *Db_close(DbObject *self, PyObject *unused) {
    (void)unused;
    Db_close_all(self);
    Py_RETURN_NONE;
}

static PyMethodDef Db_methods[] = {
    {"chunk", (PyCFunction)Db_chunk, METH_VARARGS,
     "chunk(start, end, spec, key) -> None or (values, hashes, leaves, confirmed, artifacts, "
     "skipped, meta_count, meta_sum, blobs)"},
    {"meta_digest", (PyCFunction)Db_meta_digest, METH_VARARGS,
     "meta_digest(key, n) -> (rows, sum, rows at log_idx >= n)"},
    {"nodes_equal", (PyCFunction)Db_nodes_equal, METH_VARARGS,
     "nodes_equal(level, k, hashes) -> whether node rows (level, k...) are these hashes"},
    {"close", (PyCFunction)Db_close, METH_NOARGS, "close the connection"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DbType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "depository.verifier._cverify.Db",
    .tp_basicsize = sizeof(DbObject),
    .tp_dealloc = (destructor)Db_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Db(uri): a read-only SQLite connection for chunk() and meta_digest()",
    .tp_methods = Db_methods,
    .tp_init = (initproc)Db_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ the put replay */
/* Twin of depository.verifier.store._Replay._put for the common case, once the derived rows
 * are confirmed set-wise (so _put compares nothing): no governance lock in force (the caller
 * checks), no token to judge, a name not stored before. */

static signed char g_hex[256]; /* hex digit values, -1 elsewhere (bytes.fromhex takes both
                                 * cases); filled at import */

static int hexnib(int c) { return g_hex[c & 0xFF]; }

/* One put into the replay's state, as _put does it: 1 applied, 0 not (a name already
 * stored: _put words it), -1 error. */
static int put_one(PyObject *arts, PyObject *codes, PyObject *names, PyObject *live,
                   PyObject *files, PyObject *aid, PyObject *product, unsigned long long li,
                   const unsigned char digest[32], int file, PyObject *size) {
    /* The product's code, or the one a new product gets (assigned below, once the put
     * is known not to repeat a name, as _put does). */
    PyObject *code = PyDict_GetItemWithError(codes, product);
    if (code == NULL && PyErr_Occurred()) return -1;
    long c = code != NULL ? PyLong_AsLong(code) : (long)PyList_GET_SIZE(names);
    if (c < 0 || c > 0xFFFF) { PyErr_Clear(); return 0; } /* struct.pack would raise */
    unsigned char packed[43];
    for (int k = 0; k < 8; k++) packed[k] = (unsigned char)(li >> (56 - 8 * k));
    packed[8] = (unsigned char)(c >> 8);
    packed[9] = (unsigned char)c;
    memcpy(packed + 10, digest, 32);
    packed[42] = (unsigned char)file;
    PyObject *pk = PyBytes_FromStringAndSize((const char *)packed, 43);
    if (pk == NULL) return -1;
    PyObject *was = PyDict_SetDefault(arts, aid, pk); /* one lookup: insert unless there */
    int inserted = was == pk;
    Py_DECREF(pk); /* arts holds it, or it was not inserted */
    if (was == NULL) return -1;
    if (!inserted) return 0; /* a second put under the name: _put words it */
    if (code == NULL) {
        PyObject *nc = PyLong_FromLong(c);
        int r = nc ? PyDict_SetItem(codes, product, nc) : -1;
        Py_XDECREF(nc);
        if (r < 0 || PyList_Append(names, product) < 0) return -1;
    }
    if (!file) return 1; /* only files are shared (deduplicated) */
    PyObject *dg = PyBytes_FromStringAndSize((const char *)digest, 32);
    if (dg == NULL) return -1;
    PyObject *cur = PyDict_GetItemWithError(live, dg);
    PyObject *nv = cur ? PyNumber_Add(cur, g_one) : PyErr_Occurred() ? NULL : PyLong_FromLong(1);
    if (nv == NULL || PyDict_SetItem(live, dg, nv) < 0) {
        Py_XDECREF(nv);
        Py_DECREF(dg);
        return -1;
    }
    Py_DECREF(nv);
    /* file_shas[digest] = max(size, file_shas.get(digest, 0)) */
    PyObject *sz = PyLong_CheckExact(size) ? size : g_zero;
    PyObject *base = PyDict_GetItemWithError(files, dg);
    if (base == NULL && PyErr_Occurred()) { Py_DECREF(dg); return -1; }
    if (base == NULL) base = g_zero;
    int ge = PyObject_RichCompareBool(sz, base, Py_GE);
    if (ge < 0 || PyDict_SetItem(files, dg, ge ? sz : base) < 0) {
        Py_DECREF(dg);
        return -1;
    }
    Py_DECREF(dg);
    return 1;
}

#define BULK_ENTRY 49 /* idx u64 | digest 32 | file u8 | size i64, big-endian */

static unsigned long long be64(const unsigned char *b) {
    unsigned long long v = 0;
    for (int k = 0; k < 8; k++) v = (v << 8) | b[k];
    return v;
}

/* o is the str s (the same object, as the parser makes it, or an equal one, unpickled). */
static int same_str(PyObject *o, PyObject *s) {
    return o == s || (PyUnicode_CheckExact(o) && PyUnicode_Compare(o, s) == 0);
}

/* A compact put item (store._compact's shape, no token): its fields, or 0. */
static int simple_put(PyObject *item, PyObject **idx, PyObject **product, PyObject **aid,
                      unsigned char digest[32], int *file, PyObject **size) {
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 6) return 0;
    PyObject *typ = PyTuple_GET_ITEM(item, 1), *payload = PyTuple_GET_ITEM(item, 4);
    *idx = PyTuple_GET_ITEM(item, 0);
    *product = PyTuple_GET_ITEM(item, 2);
    if (PyTuple_GET_ITEM(item, 5) != Py_None || !same_str(typ, S_put) ||
        !PyLong_CheckExact(*idx) ||
        !PyTuple_CheckExact(payload) || PyTuple_GET_SIZE(payload) != 2)
        return 0;
    PyObject *row = PyTuple_GET_ITEM(payload, 0);
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) < 10) return 0;
    PyObject *sha = PyTuple_GET_ITEM(row, 3), *storage = PyTuple_GET_ITEM(row, 9);
    *aid = PyTuple_GET_ITEM(row, 0);
    *size = PyTuple_GET_ITEM(row, 4);
    if (!PyUnicode_CheckExact(*aid) || !PyUnicode_CheckExact(sha) ||
        !PyUnicode_IS_COMPACT_ASCII(sha) || PyUnicode_GET_LENGTH(sha) != 64 ||
        !PyUnicode_CheckExact(storage))
        return 0;
    const char *hx = (const char *)PyUnicode_DATA(sha);
    for (int k = 0; k < 32; k++) {
        int h = hexnib(hx[2 * k]), l = hexnib(hx[2 * k + 1]);
        if (h < 0 || l < 0) return 0;
        digest[k] = (unsigned char)(h * 16 + l);
    }
    *file = same_str(storage, S_file);
    return 1;
}

/* apply_puts(items, pos, inner, arts, product_codes, product_names, live_by_sha, file_shas)
 * -> (pos, inner): where it stopped, at an item it does not apply (not an artifact.put, a
 * token's record, a name already in arts, anything _put would word); inner: the entry of a
 * packed "*puts" item (pack_puts) it stopped at. */
static PyObject *py_apply_puts(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *items, *arts, *codes, *names, *live, *files;
    Py_ssize_t pos, inner;
    if (!PyArg_ParseTuple(args, "O!nnO!O!O!O!O!", &PyList_Type, &items, &pos, &inner,
                          &PyDict_Type, &arts, &PyDict_Type, &codes, &PyList_Type, &names,
                          &PyDict_Type, &live, &PyDict_Type, &files))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (pos < 0) pos = 0;
    if (inner < 0) inner = 0;
    for (; pos < n; pos++, inner = 0) {
        PyObject *item = PyList_GET_ITEM(items, pos);
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 6 &&
            same_str(PyTuple_GET_ITEM(item, 1), S_bulk)) {
            PyObject *aids = PyTuple_GET_ITEM(item, 2), *prods = PyTuple_GET_ITEM(item, 3);
            PyObject *blob = PyTuple_GET_ITEM(item, 4), *sizes = PyTuple_GET_ITEM(item, 5);
            if (!PyList_CheckExact(aids) || !PyList_CheckExact(prods) ||
                !PyBytes_CheckExact(blob) || !PyList_CheckExact(sizes) ||
                PyList_GET_SIZE(prods) != PyList_GET_SIZE(aids) ||
                PyList_GET_SIZE(sizes) != PyList_GET_SIZE(aids) ||
                PyBytes_GET_SIZE(blob) != BULK_ENTRY * PyList_GET_SIZE(aids)) {
                PyErr_SetString(PyExc_ValueError, "malformed *puts item");
                return NULL;
            }
            const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(blob);
            for (Py_ssize_t j = inner; j < PyList_GET_SIZE(aids); j++) {
                const unsigned char *e = b + BULK_ENTRY * j;
                int r = put_one(arts, codes, names, live, files, PyList_GET_ITEM(aids, j),
                                PyList_GET_ITEM(prods, j), be64(e), e + 8, e[40],
                                PyList_GET_ITEM(sizes, j));
                if (r < 0) return NULL;
                if (r == 0) return Py_BuildValue("(nn)", pos, j);
            }
            continue;
        }
        PyObject *idx, *product, *aid, *size;
        unsigned char digest[32];
        int file;
        if (!simple_put(item, &idx, &product, &aid, digest, &file, &size)) break;
        unsigned long long li = PyLong_AsUnsignedLongLong(idx);
        if (li == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); break; }
        int r = put_one(arts, codes, names, live, files, aid, product, li, digest, file, size);
        if (r < 0) return NULL;
        if (r == 0) break;
    }
    return Py_BuildValue("(nn)", pos, (Py_ssize_t)0);
}

/* pack_puts(items) -> items with each run of two or more compact put items (no token)
 * packed into one ("*puts") item: (first index, "*puts", ids, products, entries, sizes),
 * entries BULK_ENTRY bytes each. Less to pickle from a worker to the parent. */
static PyObject *py_pack_puts(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyList_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "pack_puts() takes a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t k = 0;
    while (k < n) {
        Py_ssize_t run = k;
        PyObject *idx, *product, *aid, *size;
        unsigned char digest[32];
        int file;
        while (run < n && simple_put(PyList_GET_ITEM(arg, run), &idx, &product, &aid, digest,
                                     &file, &size) && PyLong_AsUnsignedLongLong(idx) !=
                                     (unsigned long long)-1)
            run++;
        PyErr_Clear();
        if (run - k < 2) { /* not worth packing: as it is */
            Py_ssize_t stop = run > k ? run : k + 1;
            for (; k < stop; k++)
                if (PyList_Append(out, PyList_GET_ITEM(arg, k)) < 0) goto fail;
            continue;
        }
        Py_ssize_t m = run - k;
        PyObject *aids = PyList_New(m), *prods = PyList_New(m), *sizes = PyList_New(m);
        PyObject *blob = PyBytes_FromStringAndSize(NULL, BULK_ENTRY * m);
        if (aids == NULL || prods == NULL || sizes == NULL || blob == NULL) {
            Py_XDECREF(aids); Py_XDECREF(prods); Py_XDECREF(sizes); Py_XDECREF(blob);
            goto fail;
        }
        unsigned char *e = (unsigned char *)PyBytes_AS_STRING(blob);
        PyObject *first = NULL;
        for (Py_ssize_t j = 0; j < m; j++, e += BULK_ENTRY) {
            simple_put(PyList_GET_ITEM(arg, k + j), &idx, &product, &aid, digest, &file, &size);
            if (j == 0) first = idx;
            unsigned long long li = PyLong_AsUnsignedLongLong(idx);
            for (int b = 0; b < 8; b++) e[b] = (unsigned char)(li >> (56 - 8 * b));
            memcpy(e + 8, digest, 32);
            e[40] = (unsigned char)file;
            memset(e + 41, 0, 8); /* reserved */
            PyList_SET_ITEM(aids, j, Py_NewRef(aid));
            PyList_SET_ITEM(prods, j, Py_NewRef(product));
            PyList_SET_ITEM(sizes, j, Py_NewRef(size));
        }
        PyObject *bulk = PyTuple_Pack(6, first, S_bulk, aids, prods, blob, sizes);
        Py_DECREF(aids); Py_DECREF(prods); Py_DECREF(sizes); Py_DECREF(blob);
        if (bulk == NULL || PyList_Append(out, bulk) < 0) { Py_XDECREF(bulk); goto fail; }
        Py_DECREF(bulk);
        k = run;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ hashing */

static PyObject *py_leaf_hash(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "leaf_hash() takes bytes");
        return NULL;
    }
    unsigned char out[32];
    static const unsigned char zero = 0;
    if (sha256_2(&zero, 1, (const unsigned char *)PyBytes_AS_STRING(arg),
                 (size_t)PyBytes_GET_SIZE(arg), NULL, 0, out) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *py_node(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer l, r;
    if (!PyArg_ParseTuple(args, "y*y*", &l, &r)) return NULL;
    unsigned char out[32];
    static const unsigned char one = 1;
    int rc = sha256_2(&one, 1, l.buf, (size_t)l.len, r.buf, (size_t)r.len, out);
    PyBuffer_Release(&l);
    PyBuffer_Release(&r);
    if (rc < 0) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

/* scan(rows) -> (values, hashes, bad)
 * rows: list of (idx, leaf, leaf_hash) as sqlite3 returns them. values[i] is the decoded
 * leaf or None (not proven canonical, or the leaf is not bytes); hashes is the 32-byte
 * leaf hashes concatenated (zeros where the leaf is not bytes); bad lists the positions
 * whose stored leaf_hash is not bytes equal to the computed hash, or whose leaf is not
 * bytes. */
static PyObject *py_scan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows, *spec_o = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &rows, &spec_o)) return NULL;
    Spec spec;
    int with_spec = spec_o != Py_None;
    if (with_spec && spec_from(spec_o, &spec) < 0) return NULL;
    if (!PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a list of rows");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    if (n > PY_SSIZE_T_MAX / 32) return PyErr_NoMemory();
    PyObject *values = PyList_New(n);
    PyObject *hashes = PyBytes_FromStringAndSize(NULL, n * 32);
    PyObject *bad = PyList_New(0);
    if (values == NULL || hashes == NULL || bad == NULL) goto fail;
    unsigned char *hout = (unsigned char *)PyBytes_AS_STRING(hashes);
    memset(hout, 0, (size_t)(n * 32));
    static const unsigned char zero = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *row = PyList_GET_ITEM(rows, k);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3) {
            PyErr_SetString(PyExc_TypeError, "scan() rows are (idx, leaf, leaf_hash)");
            goto fail;
        }
        PyObject *leaf = PyTuple_GET_ITEM(row, 1), *col = PyTuple_GET_ITEM(row, 2);
        PyObject *v;
        int hash_ok = 0;
        if (PyBytes_Check(leaf)) {
            const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(leaf);
            Py_ssize_t len = PyBytes_GET_SIZE(leaf);
            if (sha256_2(&zero, 1, s, (size_t)len, NULL, 0, hout + 32 * k) < 0) {
                PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
                goto fail;
            }
            hash_ok = PyBytes_Check(col) && PyBytes_GET_SIZE(col) == 32 &&
                      memcmp(PyBytes_AS_STRING(col), hout + 32 * k, 32) == 0;
            P p;
            memset(&p, 0, sizeof p);
            p.s = s;
            p.n = len;
            p.max_depth = g_max_depth;
            v = loads_p(&p);
            if (v == NULL) goto fail;
            if (with_spec && v != Py_None) {
                PyObject *item = put_item(&p, v, PyTuple_GET_ITEM(row, 0), &spec, NULL);
                if (item != NULL) {
                    Py_SETREF(v, item);
                } else if (PyErr_Occurred()) {
                    if (!PyErr_ExceptionMatches(PyExc_MemoryError)) {
                        PyErr_Clear(); /* e.g. an oversized int: Python decides */
                    } else {
                        Py_DECREF(v);
                        goto fail;
                    }
                }
            }
        } else {
            v = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(values, k, v);
        if (!hash_ok) {
            PyObject *pos = PyLong_FromSsize_t(k);
            if (pos == NULL) goto fail;
            int r = PyList_Append(bad, pos);
            Py_DECREF(pos);
            if (r < 0) goto fail;
        }
    }
    PyObject *out = PyTuple_Pack(3, values, hashes, bad);
    Py_DECREF(values);
    Py_DECREF(hashes);
    Py_DECREF(bad);
    return out;
fail:
    Py_XDECREF(values);
    Py_XDECREF(hashes);
    Py_XDECREF(bad);
    return NULL;
}

/* nodes(hashes, count) -> list of bytes, one per level 1..L: the concatenated hashes of
 * every perfect subtree of 2**level leaves completed inside the first ``count`` leaf
 * hashes (each 32 bytes), left to right. */
static PyObject *py_nodes(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer hb;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "y*n", &hb, &count)) return NULL;
    if (count < 0 || count > hb.len / 32) {
        PyBuffer_Release(&hb);
        PyErr_SetString(PyExc_ValueError, "count exceeds the hashes given");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) { PyBuffer_Release(&hb); return NULL; }
    const unsigned char *cur = hb.buf;
    PyObject *prev_level = NULL; /* keeps cur alive above level 1 */
    Py_ssize_t m = count;
    static const unsigned char one = 1;
    while (m >= 2) {
        Py_ssize_t half = m / 2;
        PyObject *lvl = PyBytes_FromStringAndSize(NULL, half * 32);
        if (lvl == NULL) goto fail;
        unsigned char *o = (unsigned char *)PyBytes_AS_STRING(lvl);
        for (Py_ssize_t k = 0; k < half; k++) {
            if (sha256_2(&one, 1, cur + 64 * k, 32, cur + 64 * k + 32, 32, o + 32 * k) < 0) {
                Py_DECREF(lvl);
                PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
                goto fail;
            }
        }
        int r = PyList_Append(out, lvl);
        Py_DECREF(lvl);
        if (r < 0) goto fail;
        prev_level = lvl; /* owned by out */
        cur = (const unsigned char *)PyBytes_AS_STRING(prev_level);
        m = half;
    }
    PyBuffer_Release(&hb);
    return out;
fail:
    PyBuffer_Release(&hb);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"loads", py_loads, METH_O,
     "loads(leaf) -> the decoded value if leaf is RFC 8785 canonical JSON, else None"},
    {"scan", py_scan, METH_VARARGS,
     "scan(rows, spec=None) -> (values, leaf hashes concatenated, positions with a bad "
     "leaf_hash); with spec, artifact.put records that pass every check are items"},
    {"prepare_put", py_prepare_put, METH_VARARGS,
     "prepare_put(leaf, idx, spec) -> the replay item of a sound artifact.put, or None"},
    {"apply_puts", py_apply_puts, METH_VARARGS,
     "apply_puts(items, pos, inner, arts, product_codes, product_names, live_by_sha, "
     "file_shas) -> (pos, inner) where it stopped (store._Replay._put's common case)"},
    {"pack_puts", py_pack_puts, METH_O,
     "pack_puts(items) -> items with runs of compact puts packed into '*puts' items"},
    {"nodes", py_nodes, METH_VARARGS,
     "nodes(hashes, count) -> per level, the concatenated perfect-subtree hashes"},
    {"leaf_hash", py_leaf_hash, METH_O, "leaf_hash(leaf) -> SHA-256(0x00 || leaf)"},
    {"node", py_node, METH_VARARGS, "node(left, right) -> SHA-256(0x01 || left || right)"},
    {"set_max_depth", py_set_max_depth, METH_O, "set_max_depth(n): the nesting limit"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cverify",
    "Native twin of the store replay's per-leaf work (pure Python is the specification).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cverify(void) {
    {
        static const unsigned char abc[3] = {'a', 'b', 'c'};
        static const unsigned char want[4] = {0xba, 0x78, 0x16, 0xbf}; /* FIPS 180-2 B.1 */
        unsigned char d[32];
        if (sha256_2(abc, 3, NULL, 0, NULL, 0, d) < 0 || memcmp(d, want, 4) != 0) {
            PyErr_SetString(PyExc_ImportError, "libcrypto's SHA-256 does not work");
            return NULL;
        }
    }
    struct { PyObject **slot; const char *text; } names[] = {
        {&K_v, "v"}, {&K_seq, "seq"}, {&K_time, "time"}, {&K_type, "type"},
        {&K_actor, "actor"}, {&K_product, "product"}, {&K_body, "body"},
        {&K_aid, "artifact_id"}, {&K_name, "name"}, {&K_sha256, "sha256"}, {&K_size, "size"},
        {&K_media, "media_type"}, {&K_metadata, "metadata"}, {&K_provenance, "provenance"},
        {&K_retain, "retain_until"}, {&K_received, "received"}, {&K_storage, "storage"},
        {&S_put, "artifact.put"}, {&S_bulk, "*puts"}, {&S_null, "null"}, {&S_true, "true"},
        {&S_false, "false"}, {&S_inline, "inline"}, {&S_file, "file"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (*names[k].slot == NULL) {
            *names[k].slot = PyUnicode_InternFromString(names[k].text);
            if (*names[k].slot == NULL) return NULL;
        }
    }
    if (g_one == NULL && ((g_one = PyLong_FromLong(1)) == NULL ||
                          (g_zero = PyLong_FromLong(0)) == NULL))
        return NULL;
    for (int c = 0; c < 256; c++)
        g_hex[c] = (signed char)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1);
    if (PyType_Ready(&DbType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Db", (PyObject *)&DbType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
