/* Native twin of the store's per-put encoding (issue 13, ADR 0012).
 *
 * Every function here has a pure-Python twin that is the specification
 * (depository/store/_native.py names them; tests/test_native_put.py compares the two
 * byte for byte). Nothing here parses bytes from outside the process: it encodes Python
 * objects the caller built. Anything outside the narrow, common case (a float, a big
 * integer, a key at or above U+D800, a subclass, nesting deeper than MAX_DEPTH, ...)
 * returns None so the Python twin decides and words any error.
 *
 * SHA-256 comes from OpenSSL's libcrypto (EVP one-shot API, the method fetched once).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <openssl/evp.h>
#include <string.h>

#define MAX_DEPTH 40
#define MAX_SAFE_INT 9007199254740991LL /* 2^53 - 1 */

static EVP_MD *SHA256_MD = NULL;

/* ------------------------------------------------------------------ buffer */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (extra < 0 || extra > PY_SSIZE_T_MAX / 2 - b->n) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->n + extra;
    if (need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

#define PUT_LIT(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static void buf_free(Buf *b) {
    PyMem_Free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* --------------------------------------------------------------- strings */
/* JSON text of a str, as json.encoder.encode_basestring (ensure_ascii=False) and RFC 8785
 * both give it: quote and backslash escaped, controls as \b \t \n \f \r or \u00xx,
 * everything else as UTF-8. A lone surrogate raises UnicodeEncodeError (as str.encode). */
static int put_json_str(Buf *b, PyObject *s) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL)
        return -1;
    if (n > PY_SSIZE_T_MAX / 8 || buf_reserve(b, n * 6 + 2) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    char *o = b->p + b->n;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == '"') { *o++ = '\\'; *o++ = '"'; }
        else if (c == '\\') { *o++ = '\\'; *o++ = '\\'; }
        else if (c >= 0x20) { *o++ = (char)c; }
        else if (c == '\n') { *o++ = '\\'; *o++ = 'n'; }
        else if (c == '\r') { *o++ = '\\'; *o++ = 'r'; }
        else if (c == '\t') { *o++ = '\\'; *o++ = 't'; }
        else if (c == '\b') { *o++ = '\\'; *o++ = 'b'; }
        else if (c == '\f') { *o++ = '\\'; *o++ = 'f'; }
        else {
            *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->n = o - b->p;
    return 0;
}

/* Highest code point of a str (exact for every kind). */
static Py_UCS4 max_char(PyObject *s) {
    int kind = PyUnicode_KIND(s);
    if (kind == PyUnicode_1BYTE_KIND)
        return 0xff;
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    Py_UCS4 m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c > m)
            m = c;
    }
    return m;
}

/* ------------------------------------------------------- canonical JSON */
/* 1: encoded; 0: not the quick case (caller returns None); -1: error set. */
static int canon(Buf *b, PyObject *v, int depth);

static int cmp_keys(const void *a, const void *b) {
    /* Exact str keys below U+D800: code point order is RFC 8785's UTF-16 order, and
     * PyUnicode_Compare on exact str calls no Python code and cannot fail. */
    return PyUnicode_Compare(*(PyObject *const *)a, *(PyObject *const *)b);
}

static int canon_dict(Buf *b, PyObject *d, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n == 0)
        return PUT_LIT(b, "{}") < 0 ? -1 : 1;
    PyObject **keys = PyMem_Malloc((size_t)n * sizeof(PyObject *));
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *val;
    int rc = 1;
    while (PyDict_Next(d, &pos, &k, &val)) {
        if (i >= n || !PyUnicode_CheckExact(k) || max_char(k) >= 0xD800) {
            rc = 0;
            goto done;
        }
        keys[i++] = k; /* borrowed: the dict is not changed while we hold the GIL */
    }
    if (i != n) {
        rc = 0;
        goto done;
    }
    qsort(keys, (size_t)n, sizeof(PyObject *), cmp_keys);
    if (PUT_LIT(b, "{") < 0) { rc = -1; goto done; }
    for (i = 0; i < n; i++) {
        if (i && PUT_LIT(b, ",") < 0) { rc = -1; goto done; }
        if (put_json_str(b, keys[i]) < 0 || PUT_LIT(b, ":") < 0) { rc = -1; goto done; }
        val = PyDict_GetItemWithError(d, keys[i]);
        if (val == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        rc = canon(b, val, depth + 1);
        if (rc != 1)
            goto done;
    }
    rc = PUT_LIT(b, "}") < 0 ? -1 : 1;
done:
    PyMem_Free(keys);
    return rc;
}

static int canon(Buf *b, PyObject *v, int depth) {
    if (depth > MAX_DEPTH)
        return 0;
    if (v == Py_None)
        return PUT_LIT(b, "null") < 0 ? -1 : 1;
    if (v == Py_True)
        return PUT_LIT(b, "true") < 0 ? -1 : 1;
    if (v == Py_False)
        return PUT_LIT(b, "false") < 0 ? -1 : 1;
    if (PyUnicode_CheckExact(v)) {
        if (put_json_str(b, v) < 0) {
            /* A lone surrogate: the Python twin raises (its own words). */
            if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyErr_Clear();
                return 0;
            }
            return -1;
        }
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (overflow || x > MAX_SAFE_INT || x < -MAX_SAFE_INT)
            return 0;
        char tmp[32];
        int len = snprintf(tmp, sizeof tmp, "%lld", x);
        if (len <= 0 || len >= (int)sizeof tmp)
            return 0;
        return buf_put(b, tmp, len) < 0 ? -1 : 1;
    }
    if (PyDict_CheckExact(v))
        return canon_dict(b, v, depth);
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        int is_list = PyList_CheckExact(v);
        if (PUT_LIT(b, "[") < 0)
            return -1;
        for (Py_ssize_t i = 0;; i++) {
            Py_ssize_t n = is_list ? PyList_GET_SIZE(v) : PyTuple_GET_SIZE(v);
            if (i >= n)
                break;
            if (i && PUT_LIT(b, ",") < 0)
                return -1;
            PyObject *item = is_list ? PyList_GET_ITEM(v, i) : PyTuple_GET_ITEM(v, i);
            int rc = canon(b, item, depth + 1);
            if (rc != 1)
                return rc;
        }
        return PUT_LIT(b, "]") < 0 ? -1 : 1;
    }
    return 0; /* float, subclass, anything else: the exact Python path */
}

static PyObject *py_canonical(PyObject *self, PyObject *v) {
    (void)self;
    Buf b = {0};
    int rc = canon(&b, v, 1);
    PyObject *out = NULL;
    if (rc == 1)
        out = PyBytes_FromStringAndSize(b.p ? b.p : "", b.n);
    else if (rc == 0)
        out = Py_NewRef(Py_None);
    buf_free(&b);
    return out;
}

/* --------------------------------------------------------- put encoding */
static int need_str(PyObject *o, const char *what) {
    if (!PyUnicode_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str", what);
        return -1;
    }
    return 0;
}

static int need_bytes(PyObject *o, const char *what) {
    if (!PyBytes_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes", what);
        return -1;
    }
    return 0;
}

static int put_bytes_obj(Buf *b, PyObject *o) {
    return buf_put(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
}

/* put_head(actor, product, artifact_id, media_type, metadata_json, name, provenance_json,
 *          received, retain_until, sha256, size, storage) -> bytes
 * The artifact.put record up to its seq: _encode.envelope_parts("artifact.put", actor,
 * product, _encode.put_body(...))[0]. */
static PyObject *py_put_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "put_head takes 12 arguments");
        return NULL;
    }
    PyObject *actor = args[0], *product = args[1], *aid = args[2], *media = args[3],
             *meta = args[4], *name = args[5], *prov = args[6], *received = args[7],
             *retain = args[8], *sha = args[9], *size = args[10], *storage = args[11];
    if (need_str(actor, "actor") || need_str(product, "product") || need_str(aid, "artifact_id")
        || need_str(media, "media_type") || need_bytes(meta, "metadata_json")
        || need_str(name, "name") || need_bytes(prov, "provenance_json")
        || need_str(received, "received") || need_str(retain, "retain_until")
        || need_str(sha, "sha256") || need_str(storage, "storage"))
        return NULL;
    if (!PyLong_CheckExact(size)) {
        PyErr_SetString(PyExc_TypeError, "size must be int");
        return NULL;
    }
    int overflow = 0;
    long long sz = PyLong_AsLongLongAndOverflow(size, &overflow);
    if (sz == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || sz < 0 || sz > MAX_SAFE_INT) {
        PyErr_SetString(PyExc_ValueError, "size out of range");
        return NULL;
    }
    char num[32];
    int numlen = snprintf(num, sizeof num, "%lld", sz);
    Buf b = {0};
    if (buf_reserve(&b, 512 + PyBytes_GET_SIZE(meta) + PyBytes_GET_SIZE(prov)) < 0
        || PUT_LIT(&b, "{\"actor\":") < 0 || put_json_str(&b, actor) < 0
        || PUT_LIT(&b, ",\"body\":{\"artifact_id\":") < 0 || put_json_str(&b, aid) < 0
        || PUT_LIT(&b, ",\"media_type\":") < 0 || put_json_str(&b, media) < 0
        || PUT_LIT(&b, ",\"metadata\":") < 0 || put_bytes_obj(&b, meta) < 0
        || PUT_LIT(&b, ",\"name\":") < 0 || put_json_str(&b, name) < 0
        || PUT_LIT(&b, ",\"provenance\":") < 0 || put_bytes_obj(&b, prov) < 0
        || PUT_LIT(&b, ",\"received\":") < 0 || put_json_str(&b, received) < 0
        || PUT_LIT(&b, ",\"retain_until\":") < 0 || put_json_str(&b, retain) < 0
        || PUT_LIT(&b, ",\"sha256\":") < 0 || put_json_str(&b, sha) < 0
        || PUT_LIT(&b, ",\"size\":") < 0 || buf_put(&b, num, numlen) < 0
        || PUT_LIT(&b, ",\"storage\":") < 0 || put_json_str(&b, storage) < 0
        || PUT_LIT(&b, "},\"product\":") < 0 || put_json_str(&b, product) < 0
        || PUT_LIT(&b, ",\"seq\":") < 0) {
        buf_free(&b);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.p, b.n);
    buf_free(&b);
    return out;
}

/* artifact_id(product, name) -> "art_" + lower base32 of SHA-256(product NUL name)[:15] */
static PyObject *py_artifact_id(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "artifact_id takes 2 arguments");
        return NULL;
    }
    if (need_str(args[0], "product") || need_str(args[1], "name"))
        return NULL;
    Py_ssize_t np, nn;
    const char *p = PyUnicode_AsUTF8AndSize(args[0], &np);
    if (p == NULL)
        return NULL;
    const char *nm = PyUnicode_AsUTF8AndSize(args[1], &nn);
    if (nm == NULL)
        return NULL;
    unsigned char md[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, SHA256_MD, NULL)
             && EVP_DigestUpdate(ctx, p, (size_t)np) && EVP_DigestUpdate(ctx, "\0", 1)
             && EVP_DigestUpdate(ctx, nm, (size_t)nn) && EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed (libcrypto)");
        return NULL;
    }
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    char out[4 + 24];
    memcpy(out, "art_", 4);
    /* 15 bytes = 120 bits = 24 base32 characters, in three 5-byte groups. */
    for (int g = 0; g < 3; g++) {
        unsigned long long x = 0;
        for (int j = 0; j < 5; j++)
            x = (x << 8) | md[g * 5 + j];
        for (int j = 0; j < 8; j++)
            out[4 + g * 8 + j] = alpha[(x >> (35 - 5 * j)) & 31];
    }
    return PyUnicode_FromStringAndSize(out, sizeof out);
}

/* ------------------------------------------------------- leaves and nodes */
static int sha256(const unsigned char *data, size_t n, unsigned char *md) {
    unsigned int len = 0;
    return EVP_Digest(data, n, md, &len, SHA256_MD, NULL) && len == 32;
}

/* The leaf at ``index`` (head + str(index) + ',"time":' + time_json + tail, as
 * _encode.splice), its RFC 6962 leaf hash, and the frontier merge of Frontier.append:
 * ``stack`` (list of (level, hash), levels decreasing) is updated in place and every
 * completed node (level, k, hash) appended to ``nodes``. New references in *leaf, *lh. */
static int leaf_and_merge(PyObject *stack, long long index, PyObject *head, PyObject *tj,
                          PyObject *tail, PyObject *nodes, PyObject **leaf_out,
                          PyObject **lh_out) {
    char num[32];
    int numlen = snprintf(num, sizeof num, "%lld", index);
    Buf b = {0};
    /* One byte of RFC 6962 leaf prefix before the leaf, so one digest covers both. */
    if (PUT_LIT(&b, "\0") < 0 || put_bytes_obj(&b, head) < 0 || buf_put(&b, num, numlen) < 0
        || PUT_LIT(&b, ",\"time\":") < 0 || put_bytes_obj(&b, tj) < 0
        || put_bytes_obj(&b, tail) < 0) {
        buf_free(&b);
        return -1;
    }
    unsigned char pair[65];
    pair[0] = 1;
    if (!sha256((unsigned char *)b.p, (size_t)b.n, pair + 33)) {
        buf_free(&b);
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed (libcrypto)");
        return -1;
    }
    PyObject *leaf = PyBytes_FromStringAndSize(b.p + 1, b.n - 1);
    buf_free(&b);
    if (leaf == NULL)
        return -1;
    PyObject *lh = PyBytes_FromStringAndSize((char *)(pair + 33), 32);
    if (lh == NULL) {
        Py_DECREF(leaf);
        return -1;
    }
    long level = 0;
    for (;;) {
        Py_ssize_t n = PyList_GET_SIZE(stack);
        if (n == 0)
            break;
        PyObject *top = PyList_GET_ITEM(stack, n - 1);
        if (!PyTuple_CheckExact(top) || PyTuple_GET_SIZE(top) != 2
            || !PyLong_CheckExact(PyTuple_GET_ITEM(top, 0))
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(top, 1))
            || PyBytes_GET_SIZE(PyTuple_GET_ITEM(top, 1)) != 32) {
            PyErr_SetString(PyExc_TypeError, "frontier entries must be (int, 32 bytes)");
            goto fail;
        }
        long top_level = PyLong_AsLong(PyTuple_GET_ITEM(top, 0));
        if (top_level == -1 && PyErr_Occurred())
            goto fail;
        if (top_level != level)
            break;
        if (level >= 62) { /* a consistent frontier of a size below 2^53 never gets here */
            PyErr_SetString(PyExc_ValueError, "frontier deeper than its size allows");
            goto fail;
        }
        memcpy(pair + 1, PyBytes_AS_STRING(PyTuple_GET_ITEM(top, 1)), 32);
        if (!sha256(pair, 65, pair + 33)) {
            PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed (libcrypto)");
            goto fail;
        }
        if (PyList_SetSlice(stack, n - 1, n, NULL) < 0)
            goto fail;
        level++;
        PyObject *row = Py_BuildValue("(lLy#)", level, index >> level,
                                      (const char *)(pair + 33), (Py_ssize_t)32);
        if (row == NULL)
            goto fail;
        int rc = PyList_Append(nodes, row);
        Py_DECREF(row);
        if (rc < 0)
            goto fail;
    }
    PyObject *entry = Py_BuildValue("(ly#)", level, (const char *)(pair + 33), (Py_ssize_t)32);
    if (entry == NULL)
        goto fail;
    int rc = PyList_Append(stack, entry);
    Py_DECREF(entry);
    if (rc < 0)
        goto fail;
    *leaf_out = leaf;
    *lh_out = lh;
    return 0;
fail:
    Py_DECREF(leaf);
    Py_DECREF(lh);
    return -1;
}

static int get_index(PyObject *o, long long *out) {
    if (!PyLong_CheckExact(o)) {
        PyErr_SetString(PyExc_TypeError, "size must be int");
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < 0 || v > MAX_SAFE_INT) {
        PyErr_SetString(PyExc_ValueError, "size out of range");
        return -1;
    }
    *out = v;
    return 0;
}

/* append_put(stack, size, head, time_json, tail, nodes) -> (leaf, leaf_hash); see
 * leaf_and_merge. The caller advances the tree's size. */
static PyObject *py_append_put(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "append_put takes 6 arguments");
        return NULL;
    }
    PyObject *stack = args[0], *head = args[2], *tj = args[3], *tail = args[4],
             *nodes = args[5];
    long long index;
    if (!PyList_CheckExact(stack) || !PyList_CheckExact(nodes)) {
        PyErr_SetString(PyExc_TypeError, "stack and nodes must be lists");
        return NULL;
    }
    if (need_bytes(head, "head") || need_bytes(tj, "time_json") || need_bytes(tail, "tail")
        || get_index(args[1], &index) < 0)
        return NULL;
    PyObject *leaf, *lh;
    if (leaf_and_merge(stack, index, head, tj, tail, nodes, &leaf, &lh) < 0)
        return NULL;
    return Py_BuildValue("(NN)", leaf, lh);
}

static int append_new(PyObject *list, PyObject *item) {
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* put_rows(puts, seq, stack, time_json, tail, now_text, leaves, nodes, artifacts, meta,
 *          inline) -> [leaf_hash, ...]
 * The rows of accepted puts (PreparedPut tuples) appended at seq, seq + 1, ...: each
 * record's leaf row (seq, leaf, leaf_hash), the Merkle nodes it completes, its artifact
 * row (13 columns), its metadata index rows and its inline bytes (see
 * _native.put_rows_py, the specification). */
enum { PP_PROD, PP_NAME, PP_AID, PP_SHA, PP_SIZE, PP_DATA, PP_MEDIA, PP_META, PP_PROV,
       PP_METAROWS, PP_RETAIN, PP_ACTOR, PP_HEAD, PP_FIELDS };

static PyObject *S_INLINE, *S_FILE, *S_ID;

static int put_one(PyObject *pp, long long seq, PyObject *stack, PyObject *tj, PyObject *tail,
                   PyObject *now, PyObject *out, PyObject *leaves, PyObject *nodes,
                   PyObject *arts, PyObject *metas, PyObject *blobs) {
    if (!PyTuple_Check(pp) || PyTuple_GET_SIZE(pp) != PP_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "puts must be PreparedPut tuples");
        return -1;
    }
    PyObject *head = PyTuple_GET_ITEM(pp, PP_HEAD), *data = PyTuple_GET_ITEM(pp, PP_DATA),
             *mrows = PyTuple_GET_ITEM(pp, PP_METAROWS);
    if (need_bytes(head, "head"))
        return -1;
    if (data != Py_None && !PyBytes_CheckExact(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes or None");
        return -1;
    }
    if (!PyTuple_Check(mrows)) {
        PyErr_SetString(PyExc_TypeError, "meta_rows must be a tuple");
        return -1;
    }
    PyObject *pid = PyObject_GetAttr(PyTuple_GET_ITEM(pp, PP_PROD), S_ID);
    if (pid == NULL)
        return -1;
    PyObject *leaf, *lh;
    if (leaf_and_merge(stack, seq, head, tj, tail, nodes, &leaf, &lh) < 0) {
        Py_DECREF(pid);
        return -1;
    }
    PyObject *seqo = PyLong_FromLongLong(seq);
    if (seqo == NULL) {
        Py_DECREF(pid);
        Py_DECREF(leaf);
        Py_DECREF(lh);
        return -1;
    }
    int bad = PyList_Append(out, lh) < 0
        || append_new(leaves, PyTuple_Pack(3, seqo, leaf, lh)) < 0
        || append_new(arts, PyTuple_Pack(
               13, seqo, PyTuple_GET_ITEM(pp, PP_AID), pid, PyTuple_GET_ITEM(pp, PP_NAME),
               PyTuple_GET_ITEM(pp, PP_SHA), PyTuple_GET_ITEM(pp, PP_SIZE),
               PyTuple_GET_ITEM(pp, PP_MEDIA), PyTuple_GET_ITEM(pp, PP_META),
               PyTuple_GET_ITEM(pp, PP_PROV), PyTuple_GET_ITEM(pp, PP_RETAIN),
               data == Py_None ? S_FILE : S_INLINE, PyTuple_GET_ITEM(pp, PP_ACTOR),
               now)) < 0
        || (data != Py_None && append_new(blobs, PyTuple_Pack(2, seqo, data)) < 0);
    Py_DECREF(pid);
    Py_DECREF(leaf);
    Py_DECREF(lh);
    for (Py_ssize_t j = 0; !bad && j < PyTuple_GET_SIZE(mrows); j++) {
        PyObject *r = PyTuple_GET_ITEM(mrows, j);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3) {
            PyErr_SetString(PyExc_TypeError, "meta rows must be 3-tuples");
            bad = 1;
            break;
        }
        bad = append_new(metas, PyTuple_Pack(4, PyTuple_GET_ITEM(r, 0),
                                             PyTuple_GET_ITEM(r, 1),
                                             PyTuple_GET_ITEM(r, 2), seqo)) < 0;
    }
    Py_DECREF(seqo);
    return bad ? -1 : 0;
}

static PyObject *py_put_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "put_rows takes 11 arguments");
        return NULL;
    }
    PyObject *puts = args[0], *stack = args[2], *tj = args[3], *tail = args[4],
             *now = args[5], *leaves = args[6], *nodes = args[7], *arts = args[8],
             *metas = args[9], *blobs = args[10];
    long long seq;
    if (!PyList_CheckExact(puts) || !PyList_CheckExact(stack) || !PyList_CheckExact(leaves)
        || !PyList_CheckExact(nodes) || !PyList_CheckExact(arts) || !PyList_CheckExact(metas)
        || !PyList_CheckExact(blobs)) {
        PyErr_SetString(PyExc_TypeError, "puts, stack and the row lists must be lists");
        return NULL;
    }
    if (get_index(args[1], &seq) < 0 || need_bytes(tj, "time_json")
        || need_bytes(tail, "tail") || need_str(now, "now_text"))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(puts);
    if (n > MAX_SAFE_INT - seq) {
        PyErr_SetString(PyExc_ValueError, "size out of range");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++, seq++) {
        if (i >= PyList_GET_SIZE(puts)) {
            PyErr_SetString(PyExc_RuntimeError, "puts changed during put_rows");
            goto fail;
        }
        /* Owned while used: reading prod.id may run Python code. */
        PyObject *pp = Py_NewRef(PyList_GET_ITEM(puts, i));
        int bad = put_one(pp, seq, stack, tj, tail, now, out, leaves, nodes, arts, metas,
                          blobs);
        Py_DECREF(pp);
        if (bad)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}


/* format_time(t) -> "YYYY-MM-DDTHH:MM:SS.ffffffZ" for an exact datetime whose tzinfo is
 * datetime.timezone.utc and whose year is 1000-9999; None for anything else (the Python
 * twin, _model.format_time, converts or refuses). */
static PyObject *py_format_time(PyObject *self, PyObject *t) {
    (void)self;
    if (!PyDateTime_CheckExact(t))
        Py_RETURN_NONE;
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(t);
    if (tz != PyDateTime_TimeZone_UTC)
        Py_RETURN_NONE;
    int y = PyDateTime_GET_YEAR(t);
    if (y < 1000 || y > 9999)
        Py_RETURN_NONE;
    char out[40];
    int n = snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y,
                     PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t),
                     PyDateTime_DATE_GET_HOUR(t), PyDateTime_DATE_GET_MINUTE(t),
                     PyDateTime_DATE_GET_SECOND(t), PyDateTime_DATE_GET_MICROSECOND(t));
    if (n != 27)
        Py_RETURN_NONE;
    return PyUnicode_FromStringAndSize(out, n);
}

/* meta_rows(product, meta) -> ((product, key, value), ...) of the metadata index for an
 * exact dict with exact str keys: strings as themselves, None/bools/safe ints as their
 * canonical JSON, nested values skipped; None (Python decides) for anything else. */
static PyObject *py_meta_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "meta_rows takes 2 arguments");
        return NULL;
    }
    PyObject *product = args[0], *meta = args[1];
    if (!PyUnicode_CheckExact(product) || !PyDict_CheckExact(meta))
        Py_RETURN_NONE;
    PyObject *rows = PyList_New(0);
    if (rows == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(meta, &pos, &k, &v)) {
        PyObject *val = NULL;
        if (!PyUnicode_CheckExact(k))
            goto decline;
        if (PyUnicode_CheckExact(v)) {
            val = Py_NewRef(v);
        } else if (v == Py_None || v == Py_True || v == Py_False || PyLong_CheckExact(v)) {
            Buf b = {0};
            int rc = canon(&b, v, 1);
            if (rc == 1)
                val = PyUnicode_DecodeUTF8(b.p, b.n, NULL);
            buf_free(&b);
            if (rc == 0)
                goto decline;
            if (val == NULL)
                goto fail;
        } else if (PyDict_CheckExact(v) || PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
            continue; /* nested: not indexed */
        } else {
            goto decline; /* float, subclass, anything else */
        }
        int rc = append_new(rows, PyTuple_Pack(3, product, k, val));
        Py_DECREF(val);
        if (rc < 0)
            goto fail;
    }
    PyObject *out = PyList_AsTuple(rows);
    Py_DECREF(rows);
    return out;
decline:
    Py_DECREF(rows);
    Py_RETURN_NONE;
fail:
    Py_DECREF(rows);
    return NULL;
}

/* ------------------------------------------------------------------ module */
static PyMethodDef methods[] = {
    {"canonical", (PyCFunction)py_canonical, METH_O,
     "RFC 8785 bytes of a JSON value in the quick case, else None."},
    {"put_head", (PyCFunction)(void (*)(void))py_put_head, METH_FASTCALL,
     "The artifact.put record up to its seq."},
    {"artifact_id", (PyCFunction)(void (*)(void))py_artifact_id, METH_FASTCALL,
     "The artifact id of (product, name)."},
    {"append_put", (PyCFunction)(void (*)(void))py_append_put, METH_FASTCALL,
     "Splice a leaf, hash it and merge it into the frontier."},
    {"format_time", (PyCFunction)py_format_time, METH_O,
     "RFC 3339 text of a UTC datetime, else None."},
    {"meta_rows", (PyCFunction)(void (*)(void))py_meta_rows, METH_FASTCALL,
     "The metadata index rows of a flat metadata dict, else None."},
    {"put_rows", (PyCFunction)(void (*)(void))py_put_rows, METH_FASTCALL,
     "The leaf, node, artifact, metadata and inline rows of accepted puts."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cput", "Native twin of the store's per-put encoding.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cput(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    if (SHA256_MD == NULL) {
        SHA256_MD = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (SHA256_MD == NULL) {
            PyErr_SetString(PyExc_ImportError, "libcrypto has no SHA-256");
            return NULL;
        }
    }
    if (S_INLINE == NULL) {
        S_INLINE = PyUnicode_InternFromString("inline");
        S_FILE = PyUnicode_InternFromString("file");
        S_ID = PyUnicode_InternFromString("id");
        if (S_INLINE == NULL || S_FILE == NULL || S_ID == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
