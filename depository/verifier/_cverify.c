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

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    Py_ssize_t i;
    int max_depth;
    int bad; /* not proven canonical (no Python error set) */
    unsigned char *buf; /* scratch for unescaped strings */
    Py_ssize_t cap;
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
static int scan_string(P *p, const unsigned char **out, Py_ssize_t *out_len) {
    const unsigned char *s = p->s;
    Py_ssize_t i = p->i + 1, n = p->n, start = i;
    int escaped = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) return -1; /* a raw control character: the encoder escapes it */
        if (c == '\\') { escaped = 1; if (i + 1 >= n) return -1; i += 2; continue; }
        i++;
    }
    if (i >= n) return -1; /* unterminated */
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

static PyObject *make_str(P *p, const unsigned char *b, Py_ssize_t len) {
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
    int r = scan_string(p, &b, &len);
    if (r == -2) return NULL;
    if (r < 0) BAD(p);
    return make_str(p, b, len);
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
    p->i++; /* '{' */
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
    unsigned char *prev = NULL;
    Py_ssize_t prev_len = 0;
    for (;;) {
        if (p->i >= p->n || p->s[p->i] != '"') goto bad;
        const unsigned char *kb;
        Py_ssize_t klen;
        int r = scan_string(p, &kb, &klen);
        if (r == -2) goto err;
        if (r < 0) goto bad;
        if (prev != NULL && key_cmp(prev, prev_len, kb, klen) >= 0) goto bad; /* order, dupes */
        PyObject *key = make_str(p, kb, klen);
        if (key == NULL) goto err_or_bad;
        /* keep this key's bytes for the next comparison */
        unsigned char *np = PyMem_Realloc(prev, (size_t)klen + 1);
        if (np == NULL) { Py_DECREF(key); PyErr_NoMemory(); goto err; }
        prev = np;
        if (klen) memcpy(prev, kb, (size_t)klen);
        prev_len = klen;
        if (p->i >= p->n || p->s[p->i] != ':') { Py_DECREF(key); goto bad; }
        p->i++;
        PyObject *v = parse_value(p, depth);
        if (v == NULL) { Py_DECREF(key); goto err_or_bad; }
        int sr = PyDict_SetItem(d, key, v);
        Py_DECREF(key);
        Py_DECREF(v);
        if (sr < 0) goto err;
        if (p->i >= p->n) goto bad;
        unsigned char c = p->s[p->i++];
        if (c == '}') break;
        if (c != ',') goto bad;
    }
    PyMem_Free(prev);
    return d;
bad:
    p->bad = 1;
err_or_bad:
err:
    PyMem_Free(prev);
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
static PyObject *loads_buf(const unsigned char *s, Py_ssize_t n) {
    if (n == 0) Py_RETURN_NONE;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (s[k] >= 0xEE) Py_RETURN_NONE; /* UTF-16 key order may differ: exact path */
    }
    P p = {s, n, 0, g_max_depth, 0, NULL, 0};
    PyObject *v = parse_value(&p, 0);
    PyMem_Free(p.buf);
    if (v == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (p.bad || p.i != n) { Py_DECREF(v); Py_RETURN_NONE; }
    return v;
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
static PyObject *py_scan(PyObject *self, PyObject *rows) {
    (void)self;
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
            v = loads_buf(s, len);
            if (v == NULL) goto fail;
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
    {"scan", py_scan, METH_O,
     "scan(rows) -> (values, leaf hashes concatenated, positions with a bad leaf_hash)"},
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
    return PyModule_Create(&module);
}
