/*
 * Optional C versions of ingest hot spots. daemon/alert.py falls back to pure Python
 * when this module is not built, so every function here must give exactly the pure
 * Python result (tests/test_speedups.py checks that with hypothesis).
 *
 * fingerprint(labels): FNV-1a 64 over the label set as Prometheus' LabelSet.Fingerprint
 * hashes it: names in sorted order, each as "name 0xFF value 0xFF" in UTF-8. In pure
 * Python the byte loop is the single most expensive step of posting an alert.
 *
 * The functions over a label set take its entries in sorted order (sorted_str_items):
 * up to 16 entries with exact str names are sorted on the stack, larger dicts and str
 * subclasses through list.sort, whose order is sorted()'s.
 *
 * posted_labels(labels): interns every value in place (as sys.intern would), then
 * returns fingerprint(labels). One call per posted alert instead of one per label.
 *
 * str_dict_interned(d): a copy of dict d with its keys interned if every value is exactly
 * a str, else None (the decoder's fast-path type check and key sharing in one call).
 *
 * labels_hash_bytes(labels): the bytes both label hashes are taken over (sorted names,
 * "name 0xFF value 0xFF" in UTF-8), written into one bytes object. The nflog's xxHash64
 * of every alert of a flush hashes these; in pure Python a join and an encode per alert.
 *
 * go_json_map(d): Go's encoding/json text of a map[string]string (keys sorted) written
 * into one str, or None when some key or value needs escaping, so the caller takes the
 * exact escaping path (daemon/notify/gojson.py). Webhook bodies write two per alert.
 *
 * json_join(pieces): one str of raw text, Go JSON maps and 16-hex fingerprints: the
 * webhook body's and the API's alert objects (see its own notes below).
 *
 * pack_uvarints(seq): the protobuf varints of a list or tuple of uint64 ints, concatenated
 * (the nflog's packed alert hashes); None when one is outside uint64.
 *
 * untrack(obj): takes obj out of the cyclic collector's lists and returns it. Only for
 * objects that can never be part of a reference cycle (an Alert holds str dicts and
 * numbers): the collector could never free them, yet every full pass over 100k stored
 * alerts walked each one, which was an event-loop pause of 100-200 ms. Refcounting
 * still frees them. The pure Python fallback returns obj unchanged (still tracked).
 *
 * JournalWriter (Linux only): not a hot spot but a thread, for daemon/persist.py's
 * SyncRounds: journal appends and their fdatasync without the GIL (see its own notes
 * below). Without it SyncRounds does the same writes in a Python worker thread.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t
fnv_bytes(uint64_t h, const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    /* The 0xFF separator after every name and value. */
    h ^= 0xFF;
    h *= FNV_PRIME;
    return h;
}

/* Hash one str; -1 with an exception set if it is not a str or has no UTF-8 form. */
static int
fnv_str(uint64_t *h, PyObject *s)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "label names and values must be str, not %.100s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    if (PyUnicode_IS_ASCII(s)) {
        /* ASCII strings are their own UTF-8: hash the object's buffer in place. */
        *h = fnv_bytes(*h, PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s));
        return 0;
    }
    /* A temporary bytes object rather than PyUnicode_AsUTF8AndSize, which would keep
     * a UTF-8 copy attached to every stored non-ASCII label value. Lone surrogates
     * raise UnicodeEncodeError, as str.encode() does in the pure Python version. */
    PyObject *utf8 = PyUnicode_AsUTF8String(s);
    if (utf8 == NULL) {
        return -1;
    }
    *h = fnv_bytes(*h, (const unsigned char *)PyBytes_AS_STRING(utf8),
                   PyBytes_GET_SIZE(utf8));
    Py_DECREF(utf8);
    return 0;
}

/* Label sets are small: up to this many entries are sorted in place on the stack. */
#define SMALL_DICT 16

/* A dict's entries in sorted key order, every key and value checked to be a str. */
typedef struct {
    Py_ssize_t n;
    PyObject **names;
    PyObject **values;
    /* Owned lists behind names and values for large dicts or str subclass keys; NULL
     * when the entries are in small, each held by a new reference: json_join sorts
     * every piece before writing any, and sorting a later piece (str subclass keys)
     * runs Python code, which may empty an earlier dict and free what was borrowed. */
    PyObject *names_list;
    PyObject *values_list;
    PyObject *small[2 * SMALL_DICT];
} sorted_items;

static void
sorted_items_release(sorted_items *items)
{
    if (items->names_list == NULL) {
        for (Py_ssize_t i = 0; i < items->n; i++) {
            Py_DECREF(items->small[i]);
            Py_DECREF(items->small[SMALL_DICT + i]);
        }
    }
    Py_XDECREF(items->names_list);
    Py_XDECREF(items->values_list);
}

static int
str_type_error(PyObject *bad)
{
    PyErr_Format(PyExc_TypeError, "keys and values must be str, not %.100s",
                 Py_TYPE(bad)->tp_name);
    return -1;
}

/* Small dicts of exact str keys: insertion sort with C comparisons, which order exact
 * strs by code point as sorted() does. 1 if done, 0 if not applicable, -1 on error. */
static int
sorted_items_small(PyObject *d, sorted_items *items)
{
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n > SMALL_DICT) {
        return 0;
    }
    PyObject **names = items->small, **values = items->small + SMALL_DICT;
    Py_ssize_t pos = 0, i = 0;
    PyObject *name, *value;
    while (PyDict_Next(d, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name)) {
            return 0;
        }
        if (!PyUnicode_Check(value)) {
            return str_type_error(value);
        }
        Py_ssize_t j = i++;
        for (; j > 0 && PyUnicode_Compare(names[j - 1], name) > 0; j--) {
            names[j] = names[j - 1];
            values[j] = values[j - 1];
        }
        names[j] = name;
        values[j] = value;
    }
    /* Nothing above ran Python code (exact str comparisons): now held. */
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_INCREF(names[k]);
        Py_INCREF(values[k]);
    }
    items->n = n;
    items->names = names;
    items->values = values;
    items->names_list = items->values_list = NULL;
    return 1;
}

/* Fill items; -1 with an exception set when d is not a dict or some key or value is
 * not a str. */
static int
sorted_str_items(PyObject *d, sorted_items *items)
{
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "expected a dict, not %.100s", Py_TYPE(d)->tp_name);
        return -1;
    }
    int small = sorted_items_small(d, items);
    if (small != 0) {
        return small < 0 ? -1 : 0;
    }
    /* The general case: sorted() semantics via list.sort, values held as new references
     * because comparing str subclasses may run Python code. */
    PyObject *names = PyDict_Keys(d);
    if (names == NULL) {
        return -1;
    }
    if (PyList_Sort(names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(names);
    PyObject *values = PyList_New(n);
    if (values == NULL) {
        Py_DECREF(names);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(names, i);
        PyObject *value = PyDict_GetItemWithError(d, name);
        if (value == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, name);
            }
            goto fail;
        }
        if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
            str_type_error(PyUnicode_Check(name) ? value : name);
            goto fail;
        }
        Py_INCREF(value);
        PyList_SET_ITEM(values, i, value);
    }
    items->n = n;
    items->names = PySequence_Fast_ITEMS(names);
    items->values = PySequence_Fast_ITEMS(values);
    items->names_list = names;
    items->values_list = values;
    return 0;
fail:
    Py_DECREF(names);
    Py_DECREF(values);
    return -1;
}

static PyObject *
speedups_fingerprint(PyObject *module, PyObject *labels)
{
    sorted_items items;
    if (sorted_str_items(labels, &items) < 0) {
        return NULL;
    }
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < items.n; i++) {
        if (fnv_str(&h, items.names[i]) < 0 || fnv_str(&h, items.values[i]) < 0) {
            sorted_items_release(&items);
            return NULL;
        }
    }
    sorted_items_release(&items);
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *
speedups_posted_labels(PyObject *module, PyObject *labels)
{
    if (!PyDict_Check(labels)) {
        PyErr_Format(PyExc_TypeError, "labels must be a dict, not %.100s",
                     Py_TYPE(labels)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    /* Replacing the value of an existing key keeps the dict's key set, which the C API
     * allows during PyDict_Next. */
    while (PyDict_Next(labels, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(value) || PyUnicode_CHECK_INTERNED(value)) {
            continue;
        }
        Py_INCREF(value);
        PyObject *interned = value;
        PyUnicode_InternInPlace(&interned);
        int failed = interned != value && PyDict_SetItem(labels, name, interned) < 0;
        Py_DECREF(interned);
        if (failed) {
            return NULL;
        }
    }
    return speedups_fingerprint(module, labels);
}

/* A copy of a posted label or annotation map with interned keys, or None if some value
 * is not exactly a str (the caller then takes the slow path, which reports it).
 *
 * Why: the decoder makes a fresh key string per alert (items are decoded one at a time,
 * so its per-document key sharing does not span a body), and the Python comprehension
 * that interned them cost 2.8% of the daemon's samples under issue 15's ingest, beside
 * the separate check that every value is a str. */
static PyObject *
speedups_str_dict_interned(PyObject *module, PyObject *d)
{
    if (!PyDict_CheckExact(d)) {
        PyErr_Format(PyExc_TypeError, "expected a dict, not %.100s", Py_TYPE(d)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(value)) {
            Py_RETURN_NONE;
        }
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            /* As sys.intern: only an exact str can be interned. */
            PyErr_Format(PyExc_TypeError, "can't intern %.100s", Py_TYPE(key)->tp_name);
            Py_DECREF(out);
            return NULL;
        }
        Py_INCREF(key);
        PyUnicode_InternInPlace(&key);
        int failed = PyDict_SetItem(out, key, value);
        Py_DECREF(key);
        if (failed < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* UTF-8 length of a str, or -1 when it holds a surrogate (which has no UTF-8 form). */
static Py_ssize_t
utf8_length(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s)) {
        return n;
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            len += 1;
        }
        else if (c < 0x800) {
            len += 2;
        }
        else if (c < 0x10000) {
            if (c >= 0xD800 && c <= 0xDFFF) {
                return -1;
            }
            len += 3;
        }
        else {
            len += 4;
        }
    }
    return len;
}

/* Write the UTF-8 form of a str that utf8_length accepted; returns the end. */
static unsigned char *
utf8_write(unsigned char *out, PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s)) {
        memcpy(out, PyUnicode_1BYTE_DATA(s), (size_t)n);
        return out + n;
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            *out++ = (unsigned char)c;
        }
        else if (c < 0x800) {
            *out++ = (unsigned char)(0xC0 | (c >> 6));
            *out++ = (unsigned char)(0x80 | (c & 0x3F));
        }
        else if (c < 0x10000) {
            *out++ = (unsigned char)(0xE0 | (c >> 12));
            *out++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *out++ = (unsigned char)(0x80 | (c & 0x3F));
        }
        else {
            *out++ = (unsigned char)(0xF0 | (c >> 18));
            *out++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            *out++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *out++ = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    return out;
}

static PyObject *
speedups_labels_hash_bytes(PyObject *module, PyObject *labels)
{
    sorted_items items;
    PyObject *result = NULL;
    if (sorted_str_items(labels, &items) < 0) {
        return NULL;
    }
    Py_ssize_t n = items.n;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        PyObject *s = (i % 2 ? items.values : items.names)[i / 2];
        Py_ssize_t len = utf8_length(s);
        if (len < 0) {
            /* A surrogate: let the codec raise the UnicodeEncodeError str.encode()
             * raises, with its position and reason. */
            PyObject *encoded = PyUnicode_AsUTF8String(s);
            if (encoded != NULL) {
                Py_DECREF(encoded);
                PyErr_SetString(PyExc_SystemError, "surrogate found but encoding succeeded");
            }
            goto done;
        }
        total += len + 1;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        out = utf8_write(out, (i % 2 ? items.values : items.names)[i / 2]);
        *out++ = 0xFF;
    }
done:
    sorted_items_release(&items);
    return result;
}

/* The Latin-1 characters Go's encoding/json escapes (HTML-safe): controls, '"', '\\',
 * '<', '>' and '&'. DEL and everything from 0x80 are written raw. */
static const unsigned char json_escaped_latin1[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' 0x22, '&' 0x26 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, /* '<' 0x3C, '>' 0x3E */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' 0x5C */
};

/* Whether Go would write any character of s other than as itself: the Latin-1 set
 * above, U+2028, U+2029 (escaped), and surrogates (written as U+FFFD). */
static int
json_needs_escape(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (json_escaped_latin1[p[i]]) {
                return 1;
            }
        }
        return 0;
    }
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 256 ? json_escaped_latin1[c]
                    : (c == 0x2028 || c == 0x2029 || (c >= 0xD800 && c <= 0xDFFF))) {
            return 1;
        }
    }
    return 0;
}

/* Write '"' s '"' into result (wide enough for s) at position at; returns the position
 * after it, or -1 with an exception set. */
static Py_ssize_t
write_quoted(PyObject *result, Py_ssize_t at, PyObject *s)
{
    int kind = PyUnicode_KIND(result);
    void *data = PyUnicode_DATA(result);
    Py_ssize_t len = PyUnicode_GET_LENGTH(s);
    PyUnicode_WRITE(kind, data, at, '"');
    if (PyUnicode_CopyCharacters(result, at + 1, s, 0, len) < 0) {
        return -1;
    }
    PyUnicode_WRITE(kind, data, at + 1 + len, '"');
    return at + 2 + len;
}

/* The length of go_json_map's text of items into *total and its widest character into
 * *maxchar (both only raised); 1 when some key or value needs escaping, else 0. */
static int
json_map_measure(const sorted_items *items, Py_ssize_t *total, Py_UCS4 *maxchar)
{
    Py_ssize_t n = items->n;
    /* '{' and '}', n - 1 commas, and per entry '"' key '":"' value '"'. */
    *total += n == 0 ? 2 : 2 + (n - 1) + 5 * n;
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        PyObject *s = (i % 2 ? items->values : items->names)[i / 2];
        if (json_needs_escape(s)) {
            return 1;
        }
        *total += PyUnicode_GET_LENGTH(s);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(s);
        if (m > *maxchar) {
            *maxchar = m;
        }
    }
    return 0;
}

/* Write go_json_map's text of items (measured by json_map_measure) into result at
 * position at; returns the position after it, or -1 with an exception set. */
static Py_ssize_t
json_map_write(PyObject *result, Py_ssize_t at, const sorted_items *items)
{
    int kind = PyUnicode_KIND(result);
    void *data = PyUnicode_DATA(result);
    PyUnicode_WRITE(kind, data, at++, '{');
    for (Py_ssize_t i = 0; i < items->n; i++) {
        if (i > 0) {
            PyUnicode_WRITE(kind, data, at++, ',');
        }
        at = write_quoted(result, at, items->names[i]);
        if (at < 0) {
            return -1;
        }
        PyUnicode_WRITE(kind, data, at++, ':');
        at = write_quoted(result, at, items->values[i]);
        if (at < 0) {
            return -1;
        }
    }
    PyUnicode_WRITE(kind, data, at++, '}');
    return at;
}

static PyObject *
speedups_go_json_map(PyObject *module, PyObject *d)
{
    sorted_items items;
    if (sorted_str_items(d, &items) < 0) {
        return NULL;
    }
    Py_ssize_t total = 0;
    Py_UCS4 maxchar = 0x7F;
    PyObject *result;
    if (json_map_measure(&items, &total, &maxchar)) {
        result = Py_None;
        Py_INCREF(result);
    }
    /* The widest input's kind, so the result is in canonical form like any str. */
    else if ((result = PyUnicode_New(total, maxchar)) != NULL) {
        Py_ssize_t at = json_map_write(result, 0, &items);
        if (at < 0) {
            Py_CLEAR(result);
        }
        assert(result == NULL || at == total);
    }
    sorted_items_release(&items);
    return result;
}

/* json_join(pieces): one str from a tuple of pieces, each a str (written as it is), a
 * dict of str (written as go_json_map writes it) or an int in uint64 (written as 16
 * lowercase hex digits: a fingerprint). None when a dict needs escaping, so the caller
 * takes its exact escaping path. Webhook alert objects and the API's gettable alerts
 * are written this way: their fixed text and pre-encoded literals as str pieces, the
 * label and annotation maps as dicts. In Python the webhook's alert object took 1.9 us,
 * of which the two maps 0.5. */
static PyObject *
speedups_json_join(PyObject *module, PyObject *pieces)
{
    if (!PyTuple_CheckExact(pieces)) {
        PyErr_Format(PyExc_TypeError, "pieces must be a tuple, not %.100s",
                     Py_TYPE(pieces)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(pieces);
    /* The k-th dict piece's entries are maps[k]: on the stack for the usual two. */
    sorted_items stack_maps[4];
    sorted_items *maps = stack_maps;
    Py_ssize_t dicts = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        dicts += PyDict_Check(PyTuple_GET_ITEM(pieces, i)) ? 1 : 0;
    }
    if (dicts > 4) {
        maps = PyMem_Malloc((size_t)dicts * sizeof(sorted_items));
        if (maps == NULL) {
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t held = 0; /* maps[0 .. held) hold sorted items to release */
    PyObject *result = NULL;
    Py_ssize_t total = 0;
    Py_UCS4 maxchar = 0x7F;
    int escape = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *piece = PyTuple_GET_ITEM(pieces, i);
        if (PyUnicode_CheckExact(piece)) {
            total += PyUnicode_GET_LENGTH(piece);
            if (PyUnicode_MAX_CHAR_VALUE(piece) > maxchar) {
                maxchar = PyUnicode_MAX_CHAR_VALUE(piece);
            }
        }
        else if (PyDict_Check(piece)) {
            if (sorted_str_items(piece, &maps[held]) < 0) {
                goto done;
            }
            if (!escape && json_map_measure(&maps[held], &total, &maxchar)) {
                escape = 1;
            }
            held++;
        }
        else if (PyLong_CheckExact(piece)) {
            if (PyLong_AsUnsignedLongLong(piece) == (unsigned long long)-1 && PyErr_Occurred()) {
                goto done;
            }
            total += 16;
        }
        else {
            PyErr_Format(PyExc_TypeError, "a piece is a str, a dict or an int, not %.100s",
                         Py_TYPE(piece)->tp_name);
            goto done;
        }
    }
    if (escape) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    /* The widest input's kind, so the result is in canonical form like any str. */
    result = PyUnicode_New(total, maxchar);
    if (result == NULL) {
        goto done;
    }
    int kind = PyUnicode_KIND(result);
    void *data = PyUnicode_DATA(result);
    Py_ssize_t at = 0, m = 0;
    for (Py_ssize_t i = 0; i < n && at >= 0; i++) {
        PyObject *piece = PyTuple_GET_ITEM(pieces, i);
        if (PyUnicode_CheckExact(piece)) {
            Py_ssize_t len = PyUnicode_GET_LENGTH(piece);
            if (PyUnicode_CopyCharacters(result, at, piece, 0, len) < 0) {
                at = -1;
                break;
            }
            at += len;
        }
        else if (PyDict_Check(piece)) {
            at = json_map_write(result, at, &maps[m++]);
        }
        else {
            /* Checked in the first pass: in uint64. */
            unsigned long long rest = PyLong_AsUnsignedLongLong(piece);
            for (int k = 15; k >= 0; k--, rest >>= 4) {
                PyUnicode_WRITE(kind, data, at + k, "0123456789abcdef"[rest & 15]);
            }
            at += 16;
        }
    }
    if (at < 0) {
        Py_CLEAR(result);
    }
    assert(result == NULL || at == total);
done:
    for (Py_ssize_t k = 0; k < held; k++) {
        sorted_items_release(&maps[k]);
    }
    if (maps != stack_maps) {
        PyMem_Free(maps);
    }
    return result;
}

static PyObject *
speedups_untrack(PyObject *module, PyObject *obj)
{
    /* PyObject_GC_UnTrack is a no-op for an object already untracked. */
    if (PyObject_IS_GC(obj)) {
        PyObject_GC_UnTrack(obj);
    }
    Py_INCREF(obj);
    return obj;
}

/* pack_uvarints(seq): the protobuf varints of a list or tuple of ints, concatenated
 * (a packed repeated uint64 field's payload). Every nflog entry journals its alerts'
 * 64-bit hashes this way, ten bytes each, once per notification. None if an item is
 * negative or wider than 64 bits: the caller's pure Python path has the rules for
 * those. TypeError for anything but a list or tuple of ints. */
static PyObject *
speedups_pack_uvarints(PyObject *module, PyObject *seq)
{
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "expected a list or tuple, not %.100s",
                     Py_TYPE(seq)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    /* At most 10 bytes a value. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 10);
    if (out == NULL) {
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    unsigned char *start = p;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyLong_Check(item)) {
            Py_DECREF(out);
            PyErr_Format(PyExc_TypeError, "varints must be ints, not %.100s",
                         Py_TYPE(item)->tp_name);
            return NULL;
        }
        unsigned long long v = PyLong_AsUnsignedLongLong(item);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            /* Negative or over 64 bits. */
            PyErr_Clear();
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        while (v >= 0x80) {
            *p++ = (unsigned char)(v | 0x80);
            v >>= 7;
        }
        *p++ = (unsigned char)v;
    }
    if (_PyBytes_Resize(&out, p - start) < 0) {
        return NULL;
    }
    return out;
}

#ifdef __linux__
/* JournalWriter: journal appends and their fdatasync on a pthread that never takes the
 * GIL (daemon/persist.py, SyncRounds). The trio loop submits a round of jobs (fd, bytes,
 * flags), the thread writes each job's bytes and fdatasyncs them, stores each job's
 * outcome and then signals an eventfd, which the loop waits for with wait_readable.
 *
 * Why: handing a round to a Python worker thread cost more than the fsync itself
 * (silence POSTs at 0.80x a no-op handler with the hand-off and fsync, 0.99x with the
 * hand-off and no fsync, 1.30x with no journal write): the worker needs the GIL to wake,
 * to run each write and to report back, and on two cores every one of those takes the
 * GIL from the event loop in the middle of serving requests.
 *
 * One round at a time (SyncRounds serialises them): submit() refuses a second while one
 * is in flight. The round holds a reference to each job's bytes object, so its buffer
 * stays alive and unmoved while the thread reads it without the GIL; collect() (GIL
 * held) drops them. The eventfd is written under the mutex together with the state
 * change to DONE, so it is readable exactly while a finished round waits for collect().
 *
 * A job with JW_ROLLBACK is all or nothing, as RecordJournal.append_all_or_nothing:
 * on a failed or short write or a failed fdatasync the file is cut back (ftruncate) to
 * its size before the job and fdatasync'ed again. Its outcome is (errno, rollback errno),
 * 0 for success. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define JW_SYNC 1
#define JW_ROLLBACK 2

enum { JW_IDLE, JW_QUEUED, JW_DONE };

typedef struct {
    int fd;
    int flags;
    const char *buf;
    Py_ssize_t len;
    int error;
    int rollback_error;
} jw_job;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running; /* the thread was started and not yet joined */
    int submitting; /* a submit is reading its jobs (which may run Python code) */
    int stop;
    int state;
    int efd;
    jw_job *jobs;
    Py_ssize_t njobs;
    PyObject **keep; /* the jobs' bytes objects, alive until collect() */
} JournalWriter;

static void
jw_run_job(jw_job *j)
{
    off_t before = 0;
    int err = 0;
    if (j->flags & JW_ROLLBACK) {
        struct stat st;
        if (fstat(j->fd, &st) < 0) {
            j->error = errno;
            return; /* nothing written yet: nothing to cut back */
        }
        before = st.st_size;
    }
    const char *p = j->buf;
    Py_ssize_t left = j->len;
    while (left > 0) {
        ssize_t n = write(j->fd, p, (size_t)left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = errno;
            break;
        }
        if (n == 0) {
            err = EIO; /* cannot happen for a regular file; never loop forever */
            break;
        }
        p += n;
        left -= n;
    }
    if (err == 0 && (j->flags & JW_SYNC) && fdatasync(j->fd) < 0) {
        err = errno;
    }
    if (err != 0 && (j->flags & JW_ROLLBACK)) {
        if (ftruncate(j->fd, before) < 0 || fdatasync(j->fd) < 0) {
            j->rollback_error = errno;
        }
    }
    j->error = err;
}

static void *
jw_thread(void *arg)
{
    JournalWriter *self = (JournalWriter *)arg;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        /* A submitted round runs even when stop is set: its waiter is owed an outcome. */
        while (self->state != JW_QUEUED && !self->stop) {
            pthread_cond_wait(&self->cv, &self->mu);
        }
        if (self->state != JW_QUEUED) {
            break;
        }
        jw_job *jobs = self->jobs;
        Py_ssize_t n = self->njobs;
        pthread_mutex_unlock(&self->mu);
        for (Py_ssize_t i = 0; i < n; i++) {
            jw_run_job(&jobs[i]);
        }
        pthread_mutex_lock(&self->mu);
        self->state = JW_DONE;
        uint64_t one = 1;
        /* Cannot fail short of a bug: the counter is far from overflow (one per round). */
        (void)!write(self->efd, &one, sizeof one);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* The round's state, read under the mutex (the thread moves QUEUED to DONE). */
static int
jw_state(JournalWriter *self)
{
    pthread_mutex_lock(&self->mu);
    int state = self->state;
    pthread_mutex_unlock(&self->mu);
    return state;
}

/* Drop a finished (or never started) round's buffers and go back to IDLE; GIL held.
 * The thread does not touch them in those states. */
static void
jw_release(JournalWriter *self)
{
    for (Py_ssize_t i = 0; i < self->njobs; i++) {
        Py_XDECREF(self->keep[i]);
    }
    PyMem_Free(self->keep);
    PyMem_Free(self->jobs);
    self->keep = NULL;
    self->jobs = NULL;
    self->njobs = 0;
    pthread_mutex_lock(&self->mu);
    self->state = JW_IDLE;
    pthread_mutex_unlock(&self->mu);
}

static PyObject *
jw_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "JournalWriter() takes no arguments");
        return NULL;
    }
    JournalWriter *self = (JournalWriter *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->efd = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    /* Every signal blocked in the thread (it inherits this mask): signals go to the
     * interpreter's threads, and write() and fdatasync() are never interrupted. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* A small stack: the thread calls only write, fdatasync and friends, and an idle
     * writer per tenant instance should not reserve the default 8 MiB each. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int rc = pthread_create(&self->thread, &attr, jw_thread, self);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(self);
        return NULL;
    }
    self->running = 1;
    /* Named for top -H and for the tests that check it is stopped (at most 15 chars). */
    pthread_setname_np(self->thread, "tocsin-journal");
    return (PyObject *)self;
}

/* Stop and join the thread (after any submitted round), close the eventfd. */
static void
jw_shutdown(JournalWriter *self)
{
    if (self->running) {
        /* Cleared before the GIL is let go: a close from another thread meanwhile must
         * not join the same thread again (it would wait for ever). */
        self->running = 0;
        pthread_mutex_lock(&self->mu);
        self->stop = 1;
        pthread_cond_signal(&self->cv);
        pthread_mutex_unlock(&self->mu);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
    }
    jw_release(self);
    if (self->efd >= 0) {
        close(self->efd);
        self->efd = -1;
    }
}

static void
jw_dealloc(JournalWriter *self)
{
    jw_shutdown(self);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
jw_close(JournalWriter *self, PyObject *unused)
{
    jw_shutdown(self);
    Py_RETURN_NONE;
}

static PyObject *
jw_fileno(JournalWriter *self, PyObject *unused)
{
    if (self->efd < 0) {
        PyErr_SetString(PyExc_ValueError, "JournalWriter is closed");
        return NULL;
    }
    return PyLong_FromLong(self->efd);
}

static PyObject *
jw_submit(JournalWriter *self, PyObject *jobs)
{
    if (!self->running) {
        PyErr_SetString(PyExc_ValueError, "JournalWriter is closed");
        return NULL;
    }
    /* Only this (GIL-holding) side moves the state out of IDLE: the check stays true. */
    if (jw_state(self) != JW_IDLE) {
        PyErr_SetString(PyExc_RuntimeError, "a round is already in flight");
        return NULL;
    }
    if (self->submitting) {
        PyErr_SetString(PyExc_RuntimeError, "a round is being submitted");
        return NULL;
    }
    if (!PyList_Check(jobs)) {
        PyErr_Format(PyExc_TypeError, "jobs must be a list, not %.100s", Py_TYPE(jobs)->tp_name);
        return NULL;
    }
    /* Read from a copy: a job's fd or flags may be an object whose __index__ runs Python
     * code, which could change the list (or submit again) while it is read. */
    PyObject *copy = PyList_AsTuple(jobs);
    if (copy == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(copy);
    jw_job *arr = PyMem_Calloc(n ? n : 1, sizeof(jw_job));
    PyObject **keep = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (arr == NULL || keep == NULL) {
        PyMem_Free(arr);
        PyMem_Free(keep);
        Py_DECREF(copy);
        return PyErr_NoMemory();
    }
    self->submitting = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *job = PyTuple_GET_ITEM(copy, i);
        PyObject *data;
        int parsed = PyTuple_Check(job)
            ? PyArg_ParseTuple(job, "iSi;a job is (fd, bytes, flags)", &arr[i].fd, &data,
                               &arr[i].flags)
            : (PyErr_Format(PyExc_TypeError, "a job is a tuple (fd, bytes, flags), not %.100s",
                            Py_TYPE(job)->tp_name), 0);
        if (!parsed) {
            for (Py_ssize_t k = 0; k < i; k++) {
                Py_DECREF(keep[k]);
            }
            PyMem_Free(arr);
            PyMem_Free(keep);
            Py_DECREF(copy);
            self->submitting = 0;
            return NULL;
        }
        Py_INCREF(data);
        keep[i] = data;
        arr[i].buf = PyBytes_AS_STRING(data);
        arr[i].len = PyBytes_GET_SIZE(data);
    }
    Py_DECREF(copy);
    self->submitting = 0;
    if (!self->running || jw_state(self) != JW_IDLE) {
        /* Closed, or submitted to, by Python code the jobs ran. */
        for (Py_ssize_t k = 0; k < n; k++) {
            Py_DECREF(keep[k]);
        }
        PyMem_Free(arr);
        PyMem_Free(keep);
        PyErr_SetString(PyExc_RuntimeError, "the writer changed while the jobs were read");
        return NULL;
    }
    pthread_mutex_lock(&self->mu);
    self->jobs = arr;
    self->keep = keep;
    self->njobs = n;
    self->state = JW_QUEUED;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

static PyObject *
jw_collect(JournalWriter *self, PyObject *unused)
{
    if (jw_state(self) != JW_DONE) {
        Py_RETURN_NONE;
    }
    PyObject *out = PyList_New(self->njobs);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->njobs; i++) {
        PyObject *item = Py_BuildValue("(ii)", self->jobs[i].error, self->jobs[i].rollback_error);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    /* Only now that nothing can fail: DONE is final until jw_release resets it, and the
     * thread wrote the eventfd before it let go of the mutex, so this read empties it. */
    uint64_t count;
    (void)!read(self->efd, &count, sizeof count);
    jw_release(self);
    return out;
}

static PyMethodDef jw_methods[] = {
    {"submit", (PyCFunction)jw_submit, METH_O,
     "Queue a round: a list of (fd, bytes, flags) jobs. RuntimeError if one is in flight."},
    {"collect", (PyCFunction)jw_collect, METH_NOARGS,
     "Each job's (errno, rollback errno) once the round finished, else None."},
    {"fileno", (PyCFunction)jw_fileno, METH_NOARGS,
     "The eventfd that is readable while a finished round waits for collect()."},
    {"close", (PyCFunction)jw_close, METH_NOARGS,
     "Finish any submitted round, stop and join the thread, close the eventfd (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject JournalWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "daemon._speedups.JournalWriter",
    .tp_basicsize = sizeof(JournalWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Journal appends and fdatasync on a thread that never takes the GIL.",
    .tp_new = jw_new,
    .tp_dealloc = (destructor)jw_dealloc,
    .tp_methods = jw_methods,
};
#endif /* __linux__ */

/* Python's bytes order: bytewise, then the shorter first. */
static int
bytes_order(PyObject *bytes, const char *data, Py_ssize_t len)
{
    Py_ssize_t blen = PyBytes_GET_SIZE(bytes);
    int c = memcmp(PyBytes_AS_STRING(bytes), data, (size_t)(blen < len ? blen : len));
    if (c != 0) {
        return c;
    }
    return (blen > len) - (blen < len);
}

/* Whether value (of label name, not in the cache) surely hits no key: 1 yes, 0 not known
 * (lookup must decide), -1 on error. quick[name] is () when the name has no regex keys,
 * or (lows, reach), the range filter over all of them (RangeFilter.bounds); eq holds the
 * (name, value) pairs of the literal keys. A value of a name whose every regex key's
 * range excludes it, and that no literal key names, hits nothing: answered here without
 * a call into Python or a cache entry (issue 15: a new instance value per alert took a
 * 2 us lookup each, against about 0.1 us here). */
static int
mute_surely_missed(PyObject *eq, PyObject *quick, PyObject *name, PyObject *value)
{
    PyObject *q = PyDict_GetItemWithError(quick, name);
    if (q == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyTuple_Check(q) || (PyTuple_GET_SIZE(q) != 0 && PyTuple_GET_SIZE(q) != 2)) {
        PyErr_SetString(PyExc_TypeError, "a quick entry must be () or (lows, reach)");
        return -1;
    }
    if (!PyUnicode_Check(value)) {
        return 0;
    }
    PyObject *pair = PyTuple_Pack(2, name, value);
    if (pair == NULL) {
        return -1;
    }
    int named = PyDict_Contains(eq, pair);
    Py_DECREF(pair);
    if (named != 0) {
        return named < 0 ? -1 : 0;
    }
    if (PyTuple_GET_SIZE(q) == 0) {
        return 1;
    }
    PyObject *lows = PyTuple_GET_ITEM(q, 0), *reach = PyTuple_GET_ITEM(q, 1);
    if (!PyList_Check(lows) || !PyList_Check(reach) ||
        PyList_GET_SIZE(lows) != PyList_GET_SIZE(reach)) {
        PyErr_SetString(PyExc_TypeError, "lows and reach must be lists of one length");
        return -1;
    }
    Py_ssize_t len;
    const char *data = PyUnicode_AsUTF8AndSize(value, &len);
    if (data == NULL) {
        /* Lone surrogates: the filter reads them as Python's "surrogatepass" bytes,
         * which this encoding refuses; lookup decides. */
        PyErr_Clear();
        return 0;
    }
    /* bisect_right(lows, data): the ranges starting at or below the text. */
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(lows);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *low = PyList_GET_ITEM(lows, mid);
        if (!PyBytes_Check(low)) {
            PyErr_SetString(PyExc_TypeError, "range bounds must be bytes");
            return -1;
        }
        if (bytes_order(low, data, len) > 0) {
            hi = mid;
        }
        else {
            lo = mid + 1;
        }
    }
    if (lo == 0) {
        return 1;
    }
    /* One of them must reach the text. */
    PyObject *top = PyList_GET_ITEM(reach, lo - 1);
    if (!PyBytes_Check(top)) {
        PyErr_SetString(PyExc_TypeError, "range bounds must be bytes");
        return -1;
    }
    return bytes_order(top, data, len) < 0;
}

/* The cached entry (hits, per-group dict) of labels[name], computed by lookup(name, value)
 * on a miss: a new reference; Py_None (new reference) when the name rules its groups
 * out (label absent or empty, or no hits); NULL with an exception set on error. */
static PyObject *
mute_entry(PyObject *caches, PyObject *labels, PyObject *name, PyObject *lookup,
           PyObject *eq, PyObject *quick)
{
    PyObject *value = PyDict_GetItemWithError(labels, name);
    if (value == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_INCREF(value);
    PyObject *entry = NULL;
    /* Keys never match "": an empty label rules the group out. */
    int empty = PyUnicode_Check(value) ? PyUnicode_GET_LENGTH(value) == 0 : PyObject_Not(value);
    if (empty < 0) {
        goto done;
    }
    if (empty) {
        entry = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *cache = PyDict_GetItemWithError(caches, name);
    if (cache == NULL && PyErr_Occurred()) {
        goto done;
    }
    if (cache != NULL) {
        if (!PyDict_Check(cache)) {
            PyErr_SetString(PyExc_TypeError, "a name's cache must be a dict");
            goto done;
        }
        entry = PyDict_GetItemWithError(cache, value);
        if (entry == NULL && PyErr_Occurred()) {
            goto done;
        }
        Py_XINCREF(entry);
    }
    if (entry == NULL) {
        int missed = mute_surely_missed(eq, quick, name, value);
        if (missed != 0) {
            if (missed > 0) {
                entry = Py_NewRef(Py_None);
            }
            goto done;
        }
        entry = PyObject_CallFunctionObjArgs(lookup, name, value, NULL);
        if (entry == NULL) {
            goto done;
        }
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !PyAnySet_Check(PyTuple_GET_ITEM(entry, 0)) || !PyDict_Check(PyTuple_GET_ITEM(entry, 1))) {
        PyErr_SetString(PyExc_TypeError, "an entry must be (frozenset, dict)");
        Py_CLEAR(entry);
        goto done;
    }
    if (PySet_GET_SIZE(PyTuple_GET_ITEM(entry, 0)) == 0) {
        Py_DECREF(entry);
        entry = Py_NewRef(Py_None);
    }
done:
    Py_DECREF(value);
    return entry;
}

/* Add to out the IDs of the group (names, members) that may match: 0, or -1 on error.
 * entries (a list, cleared here first) holds the names' entries while they are used: a
 * lookup may clear a name's cache, and with it entries taken before. */
static int
mute_group(PyObject *out, PyObject *entries, PyObject *names, PyObject *members,
           PyObject *caches, PyObject *labels, PyObject *lookup, PyObject *eq,
           PyObject *quick)
{
    if (PyList_SetSlice(entries, 0, PyList_GET_SIZE(entries), NULL) < 0) {
        return -1;
    }
    /* First every name's hits, so the intersections below are only built for a group
     * that no name rules out. */
    PyObject *it = PyObject_GetIter(names);
    if (it == NULL) {
        return -1;
    }
    PyObject *name;
    while ((name = PyIter_Next(it)) != NULL) {
        PyObject *entry = mute_entry(caches, labels, name, lookup, eq, quick);
        Py_DECREF(name);
        if (entry == NULL) {
            Py_DECREF(it);
            return -1;
        }
        if (entry == Py_None) {
            Py_DECREF(entry);
            Py_DECREF(it);
            return 0;
        }
        int appended = PyList_Append(entries, entry);
        Py_DECREF(entry);
        if (appended < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return -1;
    }
    /* Then each name's hits within the group, cached beside the name's hits; entries
     * now holds those (the entry tuples are no longer needed once read). */
    Py_ssize_t n = PyList_GET_SIZE(entries);
    if (n == 0) {
        return 0;
    }
    Py_ssize_t smallest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        PyObject *hits = PyTuple_GET_ITEM(entry, 0);
        PyObject *per_group = PyTuple_GET_ITEM(entry, 1);
        PyObject *found = PyDict_GetItemWithError(per_group, names);
        if (found == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            /* frozenset & set is a frozenset, as hits.intersection(members) is. */
            found = PyNumber_And(hits, members);
            if (found == NULL) {
                return -1;
            }
            if (PyDict_SetItem(per_group, names, found) < 0) {
                Py_DECREF(found);
                return -1;
            }
        }
        else {
            Py_INCREF(found);
        }
        if (!PyAnySet_Check(found)) {
            Py_DECREF(found);
            PyErr_SetString(PyExc_TypeError, "a group's hits must be a set");
            return -1;
        }
        /* Replaces (and releases) the entry: the list owns found now. */
        PyList_SET_ITEM(entries, i, found);
        Py_DECREF(entry);
        if (PySet_GET_SIZE(found) == 0) {
            return 0;
        }
        if (PySet_GET_SIZE(found) < PySet_GET_SIZE(PyList_GET_ITEM(entries, smallest))) {
            smallest = i;
        }
    }
    /* The members of the smallest set that every other set holds. */
    PyObject *base = PyObject_GetIter(PyList_GET_ITEM(entries, smallest));
    if (base == NULL) {
        return -1;
    }
    PyObject *sid;
    int rc = 0;
    while (rc == 0 && (sid = PyIter_Next(base)) != NULL) {
        int everywhere = 1;
        for (Py_ssize_t i = 0; i < n && everywhere == 1; i++) {
            if (i != smallest) {
                everywhere = PySet_Contains(PyList_GET_ITEM(entries, i), sid);
            }
        }
        if (everywhere < 0 || (everywhere == 1 && PySet_Add(out, sid) < 0)) {
            rc = -1;
        }
        Py_DECREF(sid);
    }
    Py_DECREF(base);
    if (rc == 0 && PyErr_Occurred()) {
        rc = -1;
    }
    return rc;
}

/* mute_candidates(keyless, groups, caches, labels, lookup, eq, quick): MuteIndex.candidates
 * (daemon/silence/index.py, whose candidates_python is the definition and fallback).
 * Issue 15: with a thousand regex silences the Python loop cost about as much as the
 * RE2 pass it guards.
 *
 * keyless: set of IDs; groups: dict frozenset(names) -> set(IDs); caches: dict name ->
 * dict value -> (hits frozenset, per-group dict); labels: dict; lookup(name, value)
 * computes and caches an entry; eq and quick: see mute_surely_missed. */
static PyObject *
speedups_mute_candidates(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "mute_candidates takes 7 arguments");
        return NULL;
    }
    PyObject *keyless = args[0], *groups = args[1], *caches = args[2];
    PyObject *labels = args[3], *lookup = args[4], *eq = args[5], *quick = args[6];
    if (!PyAnySet_Check(keyless) || !PyDict_Check(groups) || !PyDict_Check(caches) ||
        !PyDict_Check(labels) || !PyDict_Check(eq) || !PyDict_Check(quick)) {
        PyErr_SetString(PyExc_TypeError,
                        "mute_candidates(set, dict, dict, dict, callable, dict, dict) expected");
        return NULL;
    }
    PyObject *out = PySet_New(keyless);
    if (out == NULL) {
        return NULL;
    }
    PyObject *entries = PyList_New(0);
    if (entries == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    Py_INCREF(groups);
    Py_ssize_t pos = 0;
    PyObject *names, *members;
    int rc = 0;
    while (rc == 0 && PyDict_Next(groups, &pos, &names, &members)) {
        Py_INCREF(names);
        Py_INCREF(members);
        rc = mute_group(out, entries, names, members, caches, labels, lookup, eq, quick);
        Py_DECREF(names);
        Py_DECREF(members);
    }
    Py_DECREF(groups);
    Py_DECREF(entries);
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef speedups_methods[] = {
    {"pack_uvarints", speedups_pack_uvarints, METH_O,
     "Protobuf varints of a list or tuple of ints, concatenated; None if one is outside uint64."},
    {"fingerprint", speedups_fingerprint, METH_O,
     "FNV-1a 64 of a label dict, as Prometheus' LabelSet.Fingerprint."},
    {"posted_labels", speedups_posted_labels, METH_O,
     "Intern the label values in place; return the fingerprint."},
    {"str_dict_interned", speedups_str_dict_interned, METH_O,
     "A copy of a str-valued dict with interned keys; None if some value is not a str."},
    {"labels_hash_bytes", speedups_labels_hash_bytes, METH_O,
     "The sorted labels as UTF-8 'name 0xFF value 0xFF' bytes (what both hashes take)."},
    {"go_json_map", speedups_go_json_map, METH_O,
     "Go's JSON of a str dict, keys sorted; None if some key or value needs escaping."},
    {"json_join", speedups_json_join, METH_O,
     "One str of str, str-dict (Go's JSON map) and uint64 (16 hex digits) pieces; None "
     "when a map needs escaping."},
    {"mute_candidates", (PyCFunction)(void (*)(void))speedups_mute_candidates, METH_FASTCALL,
     "The silence index's candidates for a label dict (MuteIndex.candidates's loop)."},
    {"untrack", speedups_untrack, METH_O,
     "Take an object that can never be in a reference cycle out of the cyclic GC; return it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "daemon._speedups",
    "C versions of tocsin's ingest hot spots (optional; pure Python fallbacks exist).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
#ifdef __linux__
    if (PyType_Ready(&JournalWriterType) < 0 ||
        PyModule_AddIntConstant(m, "JOURNAL_SYNC", JW_SYNC) < 0 ||
        PyModule_AddIntConstant(m, "JOURNAL_ROLLBACK", JW_ROLLBACK) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&JournalWriterType);
    if (PyModule_AddObject(m, "JournalWriter", (PyObject *)&JournalWriterType) < 0) {
        Py_DECREF(&JournalWriterType);
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
