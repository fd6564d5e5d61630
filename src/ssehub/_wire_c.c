/*
 * ssehub._wire_c: the C accelerator of ssehub.wire (the text/event-stream codec, WHATWG HTML
 * §9.2.5-9.2.6).
 *
 * ssehub/wire.py holds the readable pure-Python implementation; it is the reference. This module
 * does exactly what it does, faster: the tests run the whole codec suite against both and check
 * them against each other on random streams, chunkings and events. Whatever this file does not
 * handle itself it hands to the Python implementation, so that the two cannot disagree there:
 * encode() and comment() call the Python functions for every argument that is not an exact
 * Event / str (subclasses may override anything) and for every input the Python code rejects
 * (so the exceptions and their messages are the Python ones), and the decoder calls the Python
 * helper for retry values of more than 18 digits.
 *
 * wire.py calls _setup(Event, encode, comment, retry_value) once, at import, with its Event
 * class and its pure-Python functions; dispatched events are instances of that Event class,
 * created here without going through the dataclass __init__ (see make_event).
 *
 * The bytes of an event are written by _event_bytes.h, shared with the publish fast path.
 *
 * The GIL is held throughout; nothing here recurses.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#include "_event_bytes.h"

#if PY_VERSION_HEX < 0x030B0000
#error "ssehub._wire_c needs Python 3.11 or later"
#endif

/* ------------------------------------------------------------------------------------------
 * Module globals, set by _setup()
 * ------------------------------------------------------------------------------------------ */

static PyTypeObject *event_type = NULL;   /* ssehub.wire.Event */
static Py_ssize_t off_data, off_event, off_id, off_retry;  /* its slots' offsets */
static PyObject *py_encode = NULL;        /* the pure-Python encode() */
static PyObject *py_comment = NULL;       /* the pure-Python comment() */
static PyObject *py_retry_value = NULL;   /* wire._retry_value(digits) -> int | None */
static PyObject *str_message = NULL;      /* "message", interned */
static PyObject *str_empty = NULL;        /* "" */

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static int
check_setup(void)
{
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ssehub._wire_c is used through ssehub.wire, which sets it up");
        return -1;
    }
    return 0;
}

/* An Event with these fields (references stolen; id borrowed) and retry=None.
 *
 * Event is a frozen dataclass with __slots__: its __init__ goes through object.__setattr__ once
 * per field, which costs more than parsing the event. Instead, allocate the instance with the
 * type's own tp_alloc (as object.__new__ does) and store the fields in their slots, at the
 * offsets of the slot descriptors (_setup checked they are plain object slots): exactly what
 * the descriptors' __set__ does, minus the lookups. */
static PyObject *
make_event(PyObject *data, PyObject *type, PyObject *id)
{
    PyObject *event = event_type->tp_alloc(event_type, 0);
    if (event == NULL) {
        Py_DECREF(data);
        Py_DECREF(type);
        return NULL;
    }
    SLOT(event, off_data) = data;
    SLOT(event, off_event) = type;
    SLOT(event, off_id) = Py_NewRef(id);
    SLOT(event, off_retry) = Py_NewRef(Py_None);
    return event;
}

/* ------------------------------------------------------------------------------------------
 * Growable byte buffers (capacity doubles: appending is amortised O(1) per byte)
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

/* A buffer that grew beyond this is freed once emptied, so that one huge line does not keep
 * its memory for the life of the decoder. */
#define BUF_KEEP (1 << 20)

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->len + extra;
    Py_ssize_t cap = b->cap ? b->cap : 128;
    while (cap < need) {
        cap = (cap > PY_SSIZE_T_MAX / 2) ? need : cap * 2;
    }
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int
buf_append(Buf *b, const char *s, Py_ssize_t n)
{
    if (b->cap - b->len < n && buf_grow(b, n) < 0) {
        return -1;
    }
    if (n) {
        memcpy(b->p + b->len, s, (size_t)n);
        b->len += n;
    }
    return 0;
}

static inline void
buf_empty(Buf *b)
{
    b->len = 0;
    if (b->cap > BUF_KEEP) {
        PyMem_Free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void
buf_free(Buf *b)
{
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------------------------
 * Event type strings
 *
 * Streams repeat a handful of event types; decoding each occurrence would allocate a new str
 * per event. A small direct-mapped cache, shared by all decoders, maps the raw bytes of recent
 * types to their str (immutable, so sharing is invisible).
 * ------------------------------------------------------------------------------------------ */

#define TYPE_CACHE_SIZE 64
#define TYPE_CACHE_MAX 48 /* longer types are decoded every time */

typedef struct {
    PyObject *str;
    Py_ssize_t len;
    char bytes[TYPE_CACHE_MAX];
} TypeCacheEntry;

static TypeCacheEntry type_cache[TYPE_CACHE_SIZE];

static PyObject *
decode_utf8(const char *s, Py_ssize_t n)
{
    /* "Streams must be decoded using the UTF-8 decode algorithm": invalid bytes become U+FFFD,
     * never an error. CR, LF and ':' never occur inside a UTF-8 sequence, and an invalid
     * sequence never swallows them, so decoding the stream piece by piece between them gives
     * the same text as decoding it whole (the "replace" handler is the one Python's
     * bytes.decode("utf-8", "replace") uses). */
    return PyUnicode_DecodeUTF8(s, n, "replace");
}

static PyObject *
type_str(const char *s, Py_ssize_t n)
{
    if (n > TYPE_CACHE_MAX) {
        return decode_utf8(s, n);
    }
    size_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    TypeCacheEntry *entry = &type_cache[h % TYPE_CACHE_SIZE];
    if (entry->str != NULL && entry->len == n && memcmp(entry->bytes, s, (size_t)n) == 0) {
        return Py_NewRef(entry->str);
    }
    PyObject *str = decode_utf8(s, n);
    if (str == NULL) {
        return NULL;
    }
    Py_XSETREF(entry->str, Py_NewRef(str));
    entry->len = n;
    memcpy(entry->bytes, s, (size_t)n);
    return str;
}

static void
type_cache_clear(void)
{
    for (int i = 0; i < TYPE_CACHE_SIZE; i++) {
        Py_CLEAR(type_cache[i].str);
    }
}

/* ------------------------------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *last_event_id; /* public: the last event ID string */
    PyObject *retry;         /* public: the reconnection time (int), or None */
    /* The last event ID buffer: `id_str`, unless an id: line set it since the last blank line,
     * in which case its value is the bytes in `id_raw` (decoded at the blank line). */
    PyObject *id_str;
    int id_dirty;
    /* The previous chunk ended with CR: an LF starting the next chunk completes that CRLF. */
    int cr;
    /* Nothing decoded yet: the BOM check is still to do. */
    int at_start;
    /* feed() is running (guards against re-entry from a finaliser run by the GC). */
    int busy;
    Buf id_raw;
    /* The data buffer, as raw bytes: every value appended is followed by LF, as in the spec.
     * It is decoded once, when the event is dispatched. */
    Buf data;
    /* The event type buffer, as raw bytes. */
    Buf type;
    /* The bytes of the line in progress (no CR or LF yet). */
    Buf line;
} DecoderObject;

static PyTypeObject Decoder_Type;

static PyObject *
Decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    DecoderObject *self = (DecoderObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* Valid even if __init__ is never called. */
    self->last_event_id = Py_NewRef(str_empty);
    self->id_str = Py_NewRef(self->last_event_id);
    self->retry = Py_NewRef(Py_None);
    self->at_start = 1;
    return (PyObject *)self;
}

static int
Decoder_init(DecoderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"last_event_id", NULL};
    PyObject *arg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Decoder", kwlist, &arg)) {
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder.__init__() called during feed()");
        return -1;
    }
    PyObject *last_event_id;
    if (arg == NULL) {
        last_event_id = Py_NewRef(str_empty);
    }
    else if (PyUnicode_CheckExact(arg)) {
        last_event_id = Py_NewRef(arg);
    }
    else if (PyUnicode_Check(arg)) {
        /* A str subclass: its own characters, as an exact str (like str.__str__). */
        last_event_id = PyUnicode_FromObject(arg);
        if (last_event_id == NULL) {
            return -1;
        }
    }
    else {
        PyObject *name = PyType_GetName(Py_TYPE(arg));
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "last_event_id must be a str, not %U", name);
            Py_DECREF(name);
        }
        return -1;
    }
    /* "When a stream is parsed, a data buffer, an event type buffer, and a last event ID buffer
     * must be associated with it. They must be initialized to the empty string." The last event
     * ID buffer starts from the constructor's argument instead, as browsers carry it across
     * reconnections. */
    Py_XSETREF(self->id_str, Py_NewRef(last_event_id));
    Py_XSETREF(self->last_event_id, last_event_id);
    Py_XSETREF(self->retry, Py_NewRef(Py_None));
    self->id_dirty = 0;
    self->cr = 0;
    self->at_start = 1;
    buf_empty(&self->id_raw);
    buf_empty(&self->data);
    buf_empty(&self->type);
    buf_empty(&self->line);
    return 0;
}

static int
Decoder_traverse(DecoderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->last_event_id);
    Py_VISIT(self->retry);
    Py_VISIT(self->id_str);
    return 0;
}

static int
Decoder_clear(DecoderObject *self)
{
    Py_CLEAR(self->last_event_id);
    Py_CLEAR(self->retry);
    Py_CLEAR(self->id_str);
    return 0;
}

static void
Decoder_dealloc(DecoderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Decoder_clear(self);
    buf_free(&self->id_raw);
    buf_free(&self->data);
    buf_free(&self->type);
    buf_free(&self->line);
    /* (For instances of a Python subclass, subtype_dealloc releases the type afterwards.) */
    tp->tp_free((PyObject *)self);
}

/* "If the line is empty (a blank line)": "Dispatch the event", as follows. The event, if any,
 * is appended to *events (created on first use). */
static int
dispatch(DecoderObject *self, PyObject **events)
{
    /* Step 1: "Set the last event ID string of the event source to the value of the last event
     * ID buffer. The buffer does not get reset, so the last event ID string of the event source
     * remains set to this value until the next time it is set by the server." */
    if (self->id_dirty) {
        PyObject *id = decode_utf8(self->id_raw.p, self->id_raw.len);
        if (id == NULL) {
            return -1;
        }
        Py_SETREF(self->id_str, id);
        self->id_dirty = 0;
        buf_empty(&self->id_raw);
    }
    if (self->last_event_id != self->id_str) {
        Py_XSETREF(self->last_event_id, Py_NewRef(self->id_str));
    }
    /* Step 2: "If the data buffer is an empty string, set the data buffer and the event type
     * buffer to the empty string and return." */
    if (self->data.len == 0) {
        self->type.len = 0;
        return 0;
    }
    /* Step 3: "If the data buffer's last character is a U+000A LINE FEED (LF) character, then
     * remove the last character from the data buffer." It always is: every value appended to
     * it is followed by LF. */
    PyObject *data = decode_utf8(self->data.p, self->data.len - 1);
    if (data == NULL) {
        return -1;
    }
    /* Steps 5-6: the type is "message", unless "the event type buffer has a value other than
     * the empty string"; lastEventId is the last event ID string. */
    PyObject *type = self->type.len ? type_str(self->type.p, self->type.len)
                                    : Py_NewRef(str_message);
    if (type == NULL) {
        Py_DECREF(data);
        return -1;
    }
    /* Step 7: "Set the data buffer and the event type buffer to the empty string." */
    buf_empty(&self->data);
    self->type.len = 0;
    PyObject *event = make_event(data, type, self->id_str);
    if (event == NULL) {
        return -1;
    }
    if (*events == NULL) {
        *events = PyList_New(0);
        if (*events == NULL) {
            Py_DECREF(event);
            return -1;
        }
    }
    int rc = PyList_Append(*events, event);
    Py_DECREF(event);
    return rc;
}

/* "If the field name is "retry"": "If the field value consists of only ASCII digits, then
 * interpret the field value as an integer in base ten, and set the event stream's reconnection
 * time to that integer. Otherwise, ignore the field." */
static int
field_retry(DecoderObject *self, const char *v, Py_ssize_t n)
{
    if (n == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
    }
    while (n > 1 && v[0] == '0') {
        v++;
        n--;
    }
    PyObject *value;
    if (n <= 18) {
        unsigned long long x = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            x = x * 10 + (unsigned long long)(v[i] - '0');
        }
        value = PyLong_FromUnsignedLongLong(x);
    }
    else {
        /* Beyond 18 digits, wire._retry_value decides (it ignores values of more than 4300
         * significant digits, and copes with a lowered int() digit limit). */
        PyObject *digits = PyUnicode_DecodeASCII(v, n, NULL);
        if (digits == NULL) {
            return -1;
        }
        value = PyObject_CallOneArg(py_retry_value, digits);
        Py_DECREF(digits);
        if (value == Py_None) {
            Py_DECREF(value);
            return 0;
        }
    }
    if (value == NULL) {
        return -1;
    }
    Py_XSETREF(self->retry, value);
    return 0;
}

/* Process one complete line (its bytes, without the CR or LF that ended it). */
static int
process_line(DecoderObject *self, const char *p, Py_ssize_t n, PyObject **events)
{
    if (self->at_start) {
        self->at_start = 0;
        /* "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
         * The first line holds the first bytes of the stream; U+FEFF decodes only from these
         * three bytes. */
        if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
            p += 3;
            n -= 3;
        }
    }
    /* "Lines must be processed, in the order they are received, as follows:" */
    if (n == 0) {
        /* "If the line is empty (a blank line)": "Dispatch the event". */
        return dispatch(self, events);
    }
    if (p[0] == ':') {
        /* "If the line starts with a U+003A COLON character (:)": "Ignore the line." */
        return 0;
    }
    /* "If the line contains a U+003A COLON character (:)": "Collect the characters on the line
     * before the first U+003A COLON character (:), and let field be that string." "Collect the
     * characters on the line after the first U+003A COLON character (:), and let value be that
     * string. If value starts with a U+0020 SPACE character, remove it from value."
     * "Otherwise, the string is not empty but does not contain a U+003A COLON character (:)":
     * "using the whole line as the field name, and the empty string as the field value." */
    const char *colon = memchr(p, ':', (size_t)n);
    Py_ssize_t field_len = colon ? colon - p : n;
    const char *v = p + n;
    Py_ssize_t vlen = 0;
    if (colon) {
        v = colon + 1;
        vlen = n - field_len - 1;
        if (vlen && v[0] == ' ') {
            v++;
            vlen--;
        }
    }
    /* "Field names must be compared literally, with no case folding performed." (A field name
     * with invalid UTF-8 decodes to U+FFFD, so it is none of these either.) */
    switch (field_len) {
    case 4:
        if (memcmp(p, "data", 4) == 0) {
            /* "If the field name is "data"": "Append the field value to the data buffer, then
             * append a single U+000A LINE FEED (LF) character to the data buffer." */
            Buf *b = &self->data;
            if (b->cap - b->len < vlen + 1 && buf_grow(b, vlen + 1) < 0) {
                return -1;
            }
            memcpy(b->p + b->len, v, (size_t)vlen);
            b->p[b->len + vlen] = '\n';
            b->len += vlen + 1;
        }
        break;
    case 5:
        if (memcmp(p, "event", 5) == 0) {
            /* "If the field name is "event"": "Set the event type buffer to the field value." */
            self->type.len = 0;
            return buf_append(&self->type, v, vlen);
        }
        if (memcmp(p, "retry", 5) == 0) {
            return field_retry(self, v, vlen);
        }
        break;
    case 2:
        if (p[0] == 'i' && p[1] == 'd') {
            /* "If the field name is "id"": "If the field value does not contain U+0000 NULL,
             * then set the last event ID buffer to the field value. Otherwise, ignore the
             * field." (U+0000 decodes only from a 0 byte.) */
            if (memchr(v, 0, (size_t)vlen) == NULL) {
                self->id_raw.len = 0;
                self->id_dirty = 1;
                return buf_append(&self->id_raw, v, vlen);
            }
        }
        break;
    }
    /* "Otherwise": "The field is ignored." */
    return 0;
}

static PyObject *
decoder_feed(DecoderObject *self, const char *s, Py_ssize_t n)
{
    PyObject *events = NULL;
    if (self->cr) {
        if (n == 0) {
            return PyList_New(0);
        }
        self->cr = 0;
        if (s[0] == '\n') {
            /* A line ends at "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character
             * pair": the CR ending the previous chunk already ended the line; skip its LF. */
            s++;
            n--;
        }
    }
    /* "The stream must then be parsed by reading everything line by line, with a U+000D
     * CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF)
     * character not preceded by a U+000D CARRIAGE RETURN (CR) character, and a single U+000D
     * CARRIAGE RETURN (CR) character not followed by a U+000A LINE FEED (LF) character being
     * the ways in which a line can end."
     *
     * lf and cr are the positions of the next LF and CR at or after pos (n: none), each
     * searched again only once pos has passed it: every byte is scanned once per search. */
    Py_ssize_t pos = 0, lf = -1, cr = -1;
    while (pos < n) {
        if (lf < pos) {
            const char *q = memchr(s + pos, '\n', (size_t)(n - pos));
            lf = q ? q - s : n;
        }
        if (cr < pos) {
            const char *q = memchr(s + pos, '\r', (size_t)(n - pos));
            cr = q ? q - s : n;
        }
        Py_ssize_t end = lf < cr ? lf : cr;
        if (end == n) {
            /* No line end: the rest waits for the next chunk. */
            if (buf_append(&self->line, s + pos, n - pos) < 0) {
                goto error;
            }
            break;
        }
        Py_ssize_t next = end + 1;
        if (end == cr) {
            if (next < n) {
                if (s[next] == '\n') {
                    next++; /* CRLF */
                }
            }
            else {
                /* A CR at the end of the chunk ends the line at once; an LF starting the next
                 * chunk belongs to it. */
                self->cr = 1;
            }
        }
        int rc;
        if (self->line.len) {
            /* The line began in an earlier chunk. */
            if (buf_append(&self->line, s + pos, end - pos) < 0) {
                goto error;
            }
            rc = process_line(self, self->line.p, self->line.len, &events);
            buf_empty(&self->line);
        }
        else {
            rc = process_line(self, s + pos, end - pos, &events);
        }
        if (rc < 0) {
            goto error;
        }
        pos = next;
    }
    /* "Once the end of the file is reached, any pending data must be discarded": nothing is
     * dispatched without its blank line, so nothing is left to do at the end of the stream. */
    return events ? events : PyList_New(0);
error:
    Py_XDECREF(events);
    return NULL;
}

static PyObject *
Decoder_feed(DecoderObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *chunk;
    if (nargs == 1 && kwnames == NULL) {
        chunk = args[0];
    }
    else {
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        if (nargs > 1) {
            PyErr_Format(PyExc_TypeError,
                         "Decoder.feed() takes 2 positional arguments but %zd were given",
                         nargs + 1);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            int is_chunk = PyUnicode_CompareWithASCIIString(key, "chunk") == 0;
            if (nargs == 1 || i > 0 || !is_chunk) {
                if (is_chunk) {
                    PyErr_SetString(PyExc_TypeError,
                                    "Decoder.feed() got multiple values for argument 'chunk'");
                }
                else {
                    PyErr_Format(PyExc_TypeError,
                                 "Decoder.feed() got an unexpected keyword argument '%U'", key);
                }
                return NULL;
            }
        }
        if (nargs + nkw == 0) {
            PyErr_SetString(PyExc_TypeError,
                            "Decoder.feed() missing 1 required positional argument: 'chunk'");
            return NULL;
        }
        chunk = args[0];
    }
    if (check_setup() < 0) {
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder.feed() is not reentrant");
        return NULL;
    }
    PyObject *result;
    self->busy = 1;
    if (PyBytes_Check(chunk)) {
        result = decoder_feed(self, PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk));
    }
    else {
        Py_buffer view;
        if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) < 0) {
            self->busy = 0;
            return NULL;
        }
        result = decoder_feed(self, view.buf, view.len);
        PyBuffer_Release(&view);
    }
    self->busy = 0;
    return result;
}

static PyMethodDef Decoder_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Decoder_feed, METH_FASTCALL | METH_KEYWORDS,
     "feed($self, chunk, /)\n--\n\n"
     "Parse the next bytes of the stream; return the events they dispatch, in order."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Decoder_members[] = {
    {"last_event_id", T_OBJECT_EX, offsetof(DecoderObject, last_event_id), 0,
     "The last event ID string (what a client sends as Last-Event-ID)."},
    {"retry", T_OBJECT_EX, offsetof(DecoderObject, retry), 0,
     "The last valid reconnection time announced by the stream, in ms, or None."},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(Decoder_doc,
             "Decoder(last_event_id='')\n--\n\n"
             "Incremental text/event-stream parser (WHATWG HTML 9.2.6), sans-IO; the C\n"
             "implementation of ssehub.wire.Decoder (see there for the documentation).");

static PyTypeObject Decoder_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ssehub._wire_c.Decoder",
    .tp_basicsize = sizeof(DecoderObject),
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Decoder_doc,
    .tp_traverse = (traverseproc)Decoder_traverse,
    .tp_clear = (inquiry)Decoder_clear,
    .tp_methods = Decoder_methods,
    .tp_members = Decoder_members,
    .tp_init = (initproc)Decoder_init,
    .tp_new = Decoder_new,
};

/* ------------------------------------------------------------------------------------------
 * Encoder
 * ------------------------------------------------------------------------------------------ */

/* The UTF-8 bytes of the str `s`: its own buffer when it is ASCII, else a new bytes object in
 * *tmp. Returns -1, with no exception set, when `s` is not encodable (a lone surrogate): the
 * caller then lets the Python implementation raise its ValueError. */
static int
utf8_of(PyObject *s, const char **p, Py_ssize_t *n, PyObject **tmp)
{
    *tmp = NULL;
    if (PyUnicode_IS_ASCII(s)) {
        *p = PyUnicode_DATA(s);
        *n = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    PyObject *bytes = PyUnicode_AsUTF8String(s);
    if (bytes == NULL) {
        PyErr_Clear();
        return -1;
    }
    *tmp = bytes;
    *p = PyBytes_AS_STRING(bytes);
    *n = PyBytes_GET_SIZE(bytes);
    return 0;
}


static PyObject *
encode_event(PyObject *event)
{
    if (Py_TYPE(event) != event_type) {
        return NULL;
    }
    PyObject *data = SLOT(event, off_data);
    PyObject *etype = SLOT(event, off_event);
    PyObject *eid = SLOT(event, off_id);
    PyObject *retry = SLOT(event, off_retry);
    if (data == NULL || etype == NULL || eid == NULL || retry == NULL ||
        !PyUnicode_CheckExact(data) || !PyUnicode_CheckExact(etype) ||
        (eid != Py_None && !PyUnicode_CheckExact(eid)) ||
        (retry != Py_None && !PyLong_CheckExact(retry))) {
        return NULL; /* unset slots, other types, subclasses: the Python implementation */
    }
    PyObject *out = NULL, *tmp_data = NULL, *tmp_id = NULL, *tmp_type = NULL;

    /* retry: an int >= 0 (others: the Python implementation). */
    long long retry_value = -1;
    if (retry != Py_None) {
        int overflow;
        retry_value = PyLong_AsLongLongAndOverflow(retry, &overflow);
        if (overflow || retry_value < 0) {
            return NULL; /* negative (ValueError), or huge: the Python implementation */
        }
    }

    /* id: unless None; no CR, LF or NUL (ValueError). */
    const char *id_p = NULL;
    Py_ssize_t id_n = 0;
    if (eid != Py_None) {
        if (utf8_of(eid, &id_p, &id_n, &tmp_id) < 0 || has_line_break(id_p, id_n) ||
            memchr(id_p, 0, (size_t)id_n) != NULL) {
            goto fallback;
        }
    }

    /* event: unless "message" or "" (both mean "message"); no CR or LF. */
    const char *type_p = NULL;
    Py_ssize_t type_n = 0;
    Py_ssize_t type_len = PyUnicode_GET_LENGTH(etype);
    if (type_len != 0 && !(type_len == 7 && PyUnicode_IS_ASCII(etype) &&
                           memcmp(PyUnicode_DATA(etype), "message", 7) == 0)) {
        if (utf8_of(etype, &type_p, &type_n, &tmp_type) < 0 || has_line_break(type_p, type_n)) {
            goto fallback;
        }
    }

    const char *data_p;
    Py_ssize_t data_n;
    if (utf8_of(data, &data_p, &data_n, &tmp_data) < 0) {
        goto fallback;
    }
    out = event_bytes(retry_value, id_p, id_n, type_p, type_n, data_p, data_n);
    goto done;
fallback:
    out = NULL;
    Py_XDECREF(tmp_data);
    Py_XDECREF(tmp_id);
    Py_XDECREF(tmp_type);
    return NULL;
done:
    Py_XDECREF(tmp_data);
    Py_XDECREF(tmp_id);
    Py_XDECREF(tmp_type);
    if (out == NULL) {
        /* A MemoryError: report it (returning NULL with no exception means "fall back"). */
        assert(PyErr_Occurred());
    }
    return out;
}

static PyObject *
wire_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    (void)module;
    if (check_setup() < 0) {
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
        PyObject *out = encode_event(args[0]);
        if (out != NULL || PyErr_Occurred()) {
            return out;
        }
    }
    /* Everything else (other argument patterns, other types, invalid events): the Python
     * implementation, which gives the same bytes or raises its own exception. */
    return PyObject_Vectorcall(py_encode, args, nargsf, kwnames);
}

static PyObject *
comment_text(PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        return NULL;
    }
    const char *p;
    Py_ssize_t n;
    PyObject *tmp;
    if (utf8_of(text, &p, &n, &tmp) < 0) {
        return NULL;
    }
    /* Every line of the text, split at CRLF, CR and LF, as ": <line>" (":" when empty), each
     * followed by LF, then a blank line. */
    Lines it;
    const char *line;
    Py_ssize_t len, size = 1;
    lines_init(&it, p, n);
    while (lines_next(&it, &line, &len)) {
        size += len ? 3 + len : 2;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out != NULL) {
        char *o = PyBytes_AS_STRING(out);
        lines_init(&it, p, n);
        while (lines_next(&it, &line, &len)) {
            *o++ = ':';
            if (len) {
                *o++ = ' ';
                o = put(o, line, len);
            }
            *o++ = '\n';
        }
        *o++ = '\n';
        assert(o == PyBytes_AS_STRING(out) + size);
    }
    Py_XDECREF(tmp);
    return out;
}

static PyObject *
wire_comment(PyObject *module, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    (void)module;
    if (check_setup() < 0) {
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
        PyObject *out = comment_text(args[0]);
        if (out != NULL || PyErr_Occurred()) {
            return out;
        }
    }
    return PyObject_Vectorcall(py_comment, args, nargsf, kwnames);
}

/* ------------------------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------------------------ */

/* The offset of the object slot `name` of `type`, checking it is a plain writable object slot
 * of that very type (a member descriptor of type T_OBJECT_EX). */
static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) {
        return -1;
    }
    int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
             PyDescr_TYPE(descr) == type;
    if (ok) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        ok = member->type == T_OBJECT_EX && !(member->flags & READONLY) &&
             member->offset >= (Py_ssize_t)sizeof(PyObject) &&
             member->offset + (Py_ssize_t)sizeof(PyObject *) <= type->tp_basicsize;
        *offset = member->offset;
    }
    Py_DECREF(descr);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not an object slot", name);
        return -1;
    }
    return 0;
}

static PyObject *
wire_setup(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *event, *encode, *comment, *retry_value;
    if (!PyArg_ParseTuple(args, "O!OOO:_setup", &PyType_Type, &event, &encode, &comment,
                          &retry_value)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)event;
    Py_ssize_t offsets[4];
    const char *names[4] = {"data", "event", "id", "retry"};
    for (int i = 0; i < 4; i++) {
        if (slot_offset(type, names[i], &offsets[i]) < 0) {
            return NULL;
        }
    }
    if (type->tp_dictoffset != 0 || type->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "Event must have __slots__ and no __dict__");
        return NULL;
    }
    if (!PyCallable_Check(encode) || !PyCallable_Check(comment) ||
        !PyCallable_Check(retry_value)) {
        PyErr_SetString(PyExc_TypeError, "_setup() needs callables");
        return NULL;
    }
    off_data = offsets[0];
    off_event = offsets[1];
    off_id = offsets[2];
    off_retry = offsets[3];
    Py_XSETREF(event_type, (PyTypeObject *)Py_NewRef(event));
    Py_XSETREF(py_encode, Py_NewRef(encode));
    Py_XSETREF(py_comment, Py_NewRef(comment));
    Py_XSETREF(py_retry_value, Py_NewRef(retry_value));
    Py_RETURN_NONE;
}

static PyMethodDef wire_methods[] = {
    {"_setup", wire_setup, METH_VARARGS,
     "_setup(event_class, encode, comment, retry_value, /)\n--\n\n"
     "Connect the module to ssehub.wire: its Event class and pure-Python functions."},
    {"encode", (PyCFunction)(void (*)(void))wire_encode, METH_FASTCALL | METH_KEYWORDS,
     "encode(event)\n--\n\n"
     "Serialise one event to the bytes of a text/event-stream, ending with a blank line.\n\n"
     "The C implementation of ssehub.wire.encode (see there for the documentation)."},
    {"comment", (PyCFunction)(void (*)(void))wire_comment, METH_FASTCALL | METH_KEYWORDS,
     "comment(text='')\n--\n\n"
     "A comment block: every line of text prefixed with ':'.\n\n"
     "The C implementation of ssehub.wire.comment (see there for the documentation)."},
    {NULL, NULL, 0, NULL},
};

static void
wire_free(void *module)
{
    (void)module;
    type_cache_clear();
    Py_CLEAR(event_type);
    Py_CLEAR(py_encode);
    Py_CLEAR(py_comment);
    Py_CLEAR(py_retry_value);
    Py_CLEAR(str_message);
    Py_CLEAR(str_empty);
}

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ssehub._wire_c",
    .m_doc = "C accelerator of ssehub.wire (used through ssehub.wire, which sets it up).",
    .m_size = -1,
    .m_methods = wire_methods,
    .m_free = wire_free,
};

PyMODINIT_FUNC
PyInit__wire_c(void)
{
    if (PyType_Ready(&Decoder_Type) < 0) {
        return NULL;
    }
    if (str_message == NULL) {
        str_message = PyUnicode_InternFromString("message");
        if (str_message == NULL) {
            return NULL;
        }
    }
    if (str_empty == NULL) {
        str_empty = PyUnicode_FromStringAndSize("", 0);
        if (str_empty == NULL) {
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Decoder", (PyObject *)&Decoder_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
