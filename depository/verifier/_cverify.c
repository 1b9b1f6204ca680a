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
 *
 * Hostile input: every read is bounds-checked against the buffer length; recursion is
 * bounded by the depth limit passed from Python (safejson.MAX_DEPTH). SHA-256 is OpenSSL
 * libcrypto's EVP interface with one reused context. The GIL is held throughout: the work
 * creates Python objects, and the leaves are immutable bytes owned by the caller's list.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>

static EVP_MD *g_sha256 = NULL;
static EVP_MD_CTX *g_ctx = NULL;

static int sha256_2(const unsigned char *a, size_t na, const unsigned char *b, size_t nb,
                    const unsigned char *c, size_t nc, unsigned char out[32]) {
    unsigned int len = 0;
    if (EVP_DigestInit_ex(g_ctx, g_sha256, NULL) != 1) return -1;
    if (na && EVP_DigestUpdate(g_ctx, a, na) != 1) return -1;
    if (nb && EVP_DigestUpdate(g_ctx, b, nb) != 1) return -1;
    if (nc && EVP_DigestUpdate(g_ctx, c, nc) != 1) return -1;
    if (EVP_DigestFinal_ex(g_ctx, out, &len) != 1 || len != 32) return -1;
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

static PyObject *make_str(P *p, const unsigned char *b, Py_ssize_t len, int ascii) {
    if (ascii) { /* the common case: no decoder needed */
        PyObject *a = PyUnicode_New(len, 127);
        if (a != NULL && len) memcpy(PyUnicode_DATA(a), b, (size_t)len);
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
    *K_storage, *S_put, *S_null, *S_true, *S_false, *S_inline, *S_file;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int two(const char *t) { return (t[0] - '0') * 10 + (t[1] - '0'); }

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (ASCII digits; six fraction digits or none, as the
 * store writes it) as microseconds from a fixed epoch; -1 for anything else, including
 * dates datetime refuses (the caller falls back to Python's datetime). */
static long long time_us(PyObject *o) {
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_COMPACT_ASCII(o)) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    const char *t = (const char *)PyUnicode_DATA(o);
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
static int artifact_id_matches(PyObject *aid, PyObject *product, PyObject *name) {
    Py_ssize_t pl, nl, al;
    const char *pb = PyUnicode_AsUTF8AndSize(product, &pl);
    const char *nb = pb ? PyUnicode_AsUTF8AndSize(name, &nl) : NULL;
    const char *ab = nb ? PyUnicode_AsUTF8AndSize(aid, &al) : NULL;
    if (ab == NULL) return -1;
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

static PyObject *put_item(P *p, PyObject *rec, PyObject *idx, const Spec *spec) {
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
        out = put_item(&p, v, idx, &spec);
        Py_DECREF(v);
        if (out == NULL && PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_MemoryError))
            PyErr_Clear(); /* as scan() does: Python decides */
        if (out == NULL && !PyErr_Occurred()) out = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&b);
    return out;
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
                PyObject *item = put_item(&p, v, PyTuple_GET_ITEM(row, 0), &spec);
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
    if (g_sha256 == NULL) {
        g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        g_ctx = EVP_MD_CTX_new();
        if (g_sha256 == NULL || g_ctx == NULL) {
            PyErr_SetString(PyExc_ImportError, "libcrypto has no SHA-256");
            return NULL;
        }
    }
    struct { PyObject **slot; const char *text; } names[] = {
        {&K_v, "v"}, {&K_seq, "seq"}, {&K_time, "time"}, {&K_type, "type"},
        {&K_actor, "actor"}, {&K_product, "product"}, {&K_body, "body"},
        {&K_aid, "artifact_id"}, {&K_name, "name"}, {&K_sha256, "sha256"}, {&K_size, "size"},
        {&K_media, "media_type"}, {&K_metadata, "metadata"}, {&K_provenance, "provenance"},
        {&K_retain, "retain_until"}, {&K_received, "received"}, {&K_storage, "storage"},
        {&S_put, "artifact.put"}, {&S_null, "null"}, {&S_true, "true"},
        {&S_false, "false"}, {&S_inline, "inline"}, {&S_file, "file"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (*names[k].slot == NULL) {
            *names[k].slot = PyUnicode_InternFromString(names[k].text);
            if (*names[k].slot == NULL) return NULL;
        }
    }
    return PyModule_Create(&module);
}
