/*
 * ssehub.server._publish_c: the fast path of the hub's busiest request, a plain form publish.
 *
 * `parse()` reads one request from a publisher's bytes when, and only when, it is the common
 * case: `POST /publish HTTP/1.1`, a Content-Length body, a form body of at most one each of
 * `topic`, `data`, `event` and `retry`, all valid. It returns what the general path would have
 * made of it: the fields and the encoded event (ssehub.model.Publication.draft). For anything else
 * it returns None (an incomplete request, another route, chunked bodies, CORS, repeated fields,
 * invalid values), and the caller feeds the same bytes to httptools and the general path, which
 * remains the reference and has the error messages. The tests check that whatever this accepts,
 * the general path reads and encodes the same way, and that it declines what that path refuses.
 *
 * So this file may be stricter than HTTP and the hub, never looser: every rule below says "give
 * up" when in doubt.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "../_event_bytes.h"

#if PY_VERSION_HEX < 0x030B0000
#error "ssehub.server._publish_c needs Python 3.11 or later"
#endif

static const char REQUEST_LINE[] = "POST /publish HTTP/1.1\r\n";
#define REQUEST_LINE_SIZE ((Py_ssize_t)(sizeof(REQUEST_LINE) - 1))
#define MAX_LENGTH_DIGITS 9 /* Content-Length; larger bodies are over any sensible limit */
#define MAX_RETRY_DIGITS 10 /* longer values go to the general path */
#define MAX_RETRY 2147483647LL /* ssehub.api._publish.MAX_RETRY: a larger one is refused there */

static PyObject *str_message = NULL; /* "message", the event type when none is given */
static PyObject *str_empty = NULL;   /* "", the data when none is given */

/* RFC 9110, 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9110, 5.5: field-value characters are VCHAR, obs-text, SP and HTAB. */
static int
is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Case-insensitive comparison with a lowercase ASCII literal. */
static int
equals_lower(const char *s, Py_ssize_t n, const char *literal)
{
    Py_ssize_t length = (Py_ssize_t)strlen(literal);
    if (n != length) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != literal[i]) {
            return 0;
        }
    }
    return 1;
}

/* 1 to max_digits ASCII digits as a number; -1 for anything else. */
static long long
parse_digits(const char *s, Py_ssize_t n, Py_ssize_t max_digits)
{
    if (n < 1 || n > max_digits) {
        return -1;
    }
    long long value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        value = value * 10 + (s[i] - '0');
    }
    return value;
}

typedef struct {
    Py_ssize_t content_length; /* -1 until the header is seen */
    int keep_alive;
    const char *host; /* the Host value, for the server's allowlist */
    Py_ssize_t host_n;
    const char *authorization; /* strict: the Authorization value, NULL until seen */
    Py_ssize_t authorization_n;
} Head;

enum { GIVE_UP = 0, OK = 1 };

/* Content-Type: the media type must be the form type (case-insensitive), parameters aside.
 * The general path also reads a missing header as a form, and so does this one. */
static int
form_media_type(const char *s, Py_ssize_t n)
{
    static const char form[] = "application/x-www-form-urlencoded";
    Py_ssize_t length = (Py_ssize_t)sizeof(form) - 1;
    if (n < length || !equals_lower(s, length, form)) {
        return 0;
    }
    return n == length || s[length] == ';';
}

/* One header line's meaning for the fast path: OK to go on, GIVE_UP to leave the request to the
 * general path. Headers that change how the request is framed or answered (chunked bodies,
 * Expect, CORS, upgrades) and repeated framing headers send it there. With `strict` (the server
 * has an authorization policy), so does every header this file does not know (Cookie, the
 * proxy headers, ...), but one: a single Authorization header, whose value is handed back for
 * the policy to judge, with the same code as on the general path. */
static int
read_header(Head *head, const char *name, Py_ssize_t name_n, const char *value, Py_ssize_t n,
            unsigned *seen, int strict)
{
    if (equals_lower(name, name_n, "content-length")) {
        if (*seen & 1) {
            return GIVE_UP;
        }
        *seen |= 1;
        head->content_length = (Py_ssize_t)parse_digits(value, n, MAX_LENGTH_DIGITS);
        return head->content_length >= 0 ? OK : GIVE_UP;
    }
    if (equals_lower(name, name_n, "content-type")) {
        if (*seen & 2) {
            return GIVE_UP;
        }
        *seen |= 2;
        return form_media_type(value, n) ? OK : GIVE_UP;
    }
    if (equals_lower(name, name_n, "connection")) {
        if (*seen & 4) {
            return GIVE_UP;
        }
        *seen |= 4;
        if (equals_lower(value, n, "keep-alive")) {
            head->keep_alive = 1;
            return OK;
        }
        if (equals_lower(value, n, "close")) {
            head->keep_alive = 0;
            return OK;
        }
        return GIVE_UP;
    }
    if (equals_lower(name, name_n, "host")) {
        if (*seen & 16) {
            return GIVE_UP;
        }
        *seen |= 16; /* HTTP/1.1 requires it: without one, the general path answers 400 */
        head->host = value;
        head->host_n = n;
        return OK;
    }
    if (equals_lower(name, name_n, "transfer-encoding") || equals_lower(name, name_n, "expect") ||
        equals_lower(name, name_n, "origin") || equals_lower(name, name_n, "upgrade") ||
        equals_lower(name, name_n, "proxy-connection") ||
        equals_lower(name, name_n, "content-encoding") ||
        equals_lower(name, name_n, "sec-fetch-site") ||
        equals_lower(name, name_n, "x-forwarded-for") || equals_lower(name, name_n, "forwarded") ||
        equals_lower(name, name_n, "x-real-ip")) {
        return GIVE_UP;
    }
    if (strict && equals_lower(name, name_n, "authorization")) {
        if (*seen & 8) {
            return GIVE_UP;
        }
        *seen |= 8;
        head->authorization = value;
        head->authorization_n = n;
        return OK;
    }
    if (strict && !(equals_lower(name, name_n, "host") || equals_lower(name, name_n, "user-agent") ||
                    equals_lower(name, name_n, "accept") ||
                    equals_lower(name, name_n, "accept-encoding"))) {
        return GIVE_UP;
    }
    return OK; /* Host, User-Agent, Accept...: nothing the hub reads */
}

/* The request line and headers from `p`: on OK, *body is where the body starts. */
static int
read_head(const char *p, const char *end, Py_ssize_t max_head, int strict, Head *head,
          const char **body)
{
    if (end - p < REQUEST_LINE_SIZE || memcmp(p, REQUEST_LINE, REQUEST_LINE_SIZE) != 0) {
        return GIVE_UP;
    }
    const char *limit = end - p > max_head ? p + max_head : end;
    const char *q = p + REQUEST_LINE_SIZE;
    unsigned seen = 0;
    head->content_length = -1;
    head->keep_alive = 1; /* HTTP/1.1: persistent unless the client says close */
    head->authorization = NULL;
    head->authorization_n = 0;
    head->host = NULL;
    head->host_n = 0;
    for (;;) {
        if (limit - q < 2) {
            return GIVE_UP; /* incomplete, or a head over the limit: the general path answers 431 */
        }
        if (q[0] == '\r' && q[1] == '\n') {
            *body = q + 2;
            return head->content_length >= 0 && (seen & 16) ? OK : GIVE_UP;
        }
        const char *name = q;
        while (q < limit && is_tchar((unsigned char)*q)) {
            q++;
        }
        Py_ssize_t name_n = q - name;
        if (name_n == 0 || q >= limit || *q != ':') {
            return GIVE_UP;
        }
        q++;
        while (q < limit && (*q == ' ' || *q == '\t')) {
            q++;
        }
        const char *value = q;
        while (q < limit && is_value_char((unsigned char)*q)) {
            q++;
        }
        if (limit - q < 2 || q[0] != '\r' || q[1] != '\n') {
            return GIVE_UP; /* incomplete, too long, bare LF or CR, or a control character */
        }
        const char *value_end = q;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) {
            value_end--;
        }
        q += 2;
        if (read_header(head, name, name_n, value, value_end - value, &seen, strict) != OK) {
            return GIVE_UP;
        }
    }
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A form value as str: "+" is a space and %HH a byte (application/x-www-form-urlencoded), the
 * bytes UTF-8. NULL with no exception set: leave it to the general path (a malformed escape, or
 * bytes that are not UTF-8, for which it has the error messages). */
static PyObject *
form_value(const char *s, Py_ssize_t n)
{
    if (memchr(s, '%', (size_t)n) == NULL && memchr(s, '+', (size_t)n) == NULL) {
        PyObject *text = PyUnicode_DecodeUTF8(s, n, NULL);
        if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
        }
        return text;
    }
    char *decoded = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (decoded == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            decoded[size++] = ' ';
        }
        else if (s[i] == '%') {
            int high = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int low = high >= 0 ? hex_value(s[i + 2]) : -1;
            if (low < 0) {
                PyMem_Free(decoded);
                return NULL;
            }
            decoded[size++] = (char)(high * 16 + low);
            i += 2;
        }
        else {
            decoded[size++] = s[i];
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8(decoded, size, NULL);
    PyMem_Free(decoded);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
    }
    return text;
}

/* ssehub.model.check_topic, for the topics this file takes: 1 to 256 printable ASCII characters
 * (U+0021-U+007E). A topic with any other byte is left to the general path, which knows the whole
 * rule (no Unicode spaces, separators, controls or format characters). */
static int
valid_topic(const char *s, Py_ssize_t n)
{
    if (n < 1 || n > 256) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

enum { TOPIC, DATA, EVENT, RETRY, FIELDS };
static const char *const FIELD_NAMES[FIELDS] = {"topic", "data", "event", "retry"};

/* The form body: fields[] get new references (unset ones stay NULL). OK, GIVE_UP, or -1 with an
 * exception set. */
static int
read_form(const char *p, const char *end, PyObject *fields[FIELDS], long long *retry)
{
    /* The general path decodes the whole body before splitting it: a body that is not UTF-8 as
     * it stands is its to refuse, even where escapes would make a value whole. */
    for (const char *c = p; c < end; c++) {
        if ((unsigned char)*c >= 0x80) {
            PyObject *whole = PyUnicode_DecodeUTF8(p, end - p, NULL);
            if (whole == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    return -1;
                }
                PyErr_Clear();
                return GIVE_UP;
            }
            Py_DECREF(whole);
            break;
        }
    }
    const char *pair = p;
    while (pair < end) {
        const char *pair_end = memchr(pair, '&', (size_t)(end - pair));
        if (pair_end == NULL) {
            pair_end = end;
        }
        const char *equals = memchr(pair, '=', (size_t)(pair_end - pair));
        if (equals == NULL) {
            return GIVE_UP;
        }
        int field = 0;
        while (field < FIELDS && !(strlen(FIELD_NAMES[field]) == (size_t)(equals - pair) &&
                                   memcmp(pair, FIELD_NAMES[field], (size_t)(equals - pair)) == 0)) {
            field++;
        }
        if (field == FIELDS || fields[field] != NULL) {
            return GIVE_UP; /* another field, or a repeated one (topic lists included) */
        }
        const char *value = equals + 1;
        Py_ssize_t n = pair_end - value;
        if (field == RETRY) {
            *retry = parse_digits(value, n, MAX_RETRY_DIGITS);
            if (*retry < 0 || *retry > MAX_RETRY) {
                return GIVE_UP;
            }
            fields[RETRY] = Py_NewRef(Py_None); /* marks it seen; the number is *retry */
        }
        else {
            fields[field] = form_value(value, n);
            if (fields[field] == NULL) {
                return PyErr_Occurred() ? -1 : GIVE_UP;
            }
        }
        if (pair_end == end) {
            break;
        }
        pair = pair_end + 1;
        if (pair == end) {
            return GIVE_UP; /* a trailing "&": an empty pair, which the general path refuses */
        }
    }
    return fields[TOPIC] != NULL ? OK : GIVE_UP;
}

/* The result tuple for valid values; None where ssehub.model would refuse them (a topic that is
 * not a topic name, an empty event type or one with a line break). */
static PyObject *
publication(const Head *head, Py_ssize_t end, PyObject *topic, PyObject *data, PyObject *type,
            long long retry)
{
    Py_ssize_t topic_n, data_n, type_n;
    const char *topic_p = PyUnicode_AsUTF8AndSize(topic, &topic_n);
    const char *data_p = PyUnicode_AsUTF8AndSize(data, &data_n);
    const char *type_p = PyUnicode_AsUTF8AndSize(type, &type_n);
    if (topic_p == NULL || data_p == NULL || type_p == NULL) {
        return NULL;
    }
    if (!valid_topic(topic_p, topic_n) || type_n == 0 || has_line_break(type_p, type_n)) {
        Py_RETURN_NONE;
    }
    /* As ssehub.wire.encode writes it: no "event:" line for the default type, no id yet. */
    int plain_type = type_n == 7 && memcmp(type_p, "message", 7) == 0;
    PyObject *encoded = event_bytes(retry, NULL, 0, plain_type ? NULL : type_p, type_n, data_p,
                                    data_n);
    if (encoded == NULL) {
        return NULL;
    }
    PyObject *retry_value = retry >= 0 ? PyLong_FromLongLong(retry) : Py_NewRef(Py_None);
    PyObject *end_value = PyLong_FromSsize_t(end);
    /* Latin-1, as the general path decodes header values. */
    PyObject *authorization =
        head->authorization != NULL
            ? PyUnicode_DecodeLatin1(head->authorization, head->authorization_n, NULL)
            : Py_NewRef(Py_None);
    PyObject *host = PyUnicode_DecodeLatin1(head->host, head->host_n, NULL);
    PyObject *result = PyTuple_New(9);
    if (retry_value == NULL || end_value == NULL || authorization == NULL || host == NULL ||
        result == NULL) {
        Py_DECREF(encoded);
        Py_XDECREF(retry_value);
        Py_XDECREF(end_value);
        Py_XDECREF(authorization);
        Py_XDECREF(host);
        Py_XDECREF(result);
        return NULL;
    }
    /* PyTuple_SET_ITEM steals a reference: new ones for what the caller still owns. */
    PyTuple_SET_ITEM(result, 0, end_value);
    PyTuple_SET_ITEM(result, 1, Py_NewRef(head->keep_alive ? Py_True : Py_False));
    PyTuple_SET_ITEM(result, 2, Py_NewRef(topic));
    PyTuple_SET_ITEM(result, 3, Py_NewRef(data));
    PyTuple_SET_ITEM(result, 4, Py_NewRef(type));
    PyTuple_SET_ITEM(result, 5, retry_value);
    PyTuple_SET_ITEM(result, 6, encoded);
    PyTuple_SET_ITEM(result, 7, authorization);
    PyTuple_SET_ITEM(result, 8, host);
    return result;
}

static PyObject *
publish_parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse(data: bytes, start, max_head, max_body, strict)");
        return NULL;
    }
    int strict = PyObject_IsTrue(args[4]);
    if (strict < 0) {
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_head = PyLong_AsSsize_t(args[2]);
    Py_ssize_t max_body = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    const char *buffer = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start > size) {
        PyErr_SetString(PyExc_ValueError, "start is outside data");
        return NULL;
    }
    const char *end = buffer + size;
    Head head;
    const char *body;
    if (read_head(buffer + start, end, max_head, strict, &head, &body) != OK ||
        head.content_length > max_body || end - body < head.content_length) {
        Py_RETURN_NONE;
    }
    const char *body_end = body + head.content_length;
    PyObject *fields[FIELDS] = {NULL, NULL, NULL, NULL};
    long long retry = 0;
    PyObject *result = NULL;
    int outcome = read_form(body, body_end, fields, &retry);
    if (outcome == OK) {
        if (fields[RETRY] == NULL) {
            retry = -1;
        }
        result = publication(&head, body_end - buffer, fields[TOPIC],
                             fields[DATA] != NULL ? fields[DATA] : str_empty,
                             fields[EVENT] != NULL ? fields[EVENT] : str_message, retry);
    }
    else if (outcome == GIVE_UP) {
        result = Py_NewRef(Py_None);
    }
    for (int i = 0; i < FIELDS; i++) {
        Py_XDECREF(fields[i]);
    }
    return result;
}

static PyMethodDef publish_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))publish_parse, METH_FASTCALL,
     "parse(data, start, max_head, max_body, strict, /)\n--\n\n"
     "The plain form publish at data[start:] as\n"
     "(end, keep_alive, topic, data, event, retry, encoded_event, authorization, host), or\n"
     "None"
     "when it is anything else, invalid or incomplete: then the general path reads it.\n"
     "With strict, a request carrying any header the fast path does not know but one\n"
     "Authorization (whose value is handed back) is declined too; without, authorization\n"
     "is None."},
    {NULL, NULL, 0, NULL},
};

static void
publish_free(void *module)
{
    (void)module;
    Py_CLEAR(str_message);
    Py_CLEAR(str_empty);
}

static struct PyModuleDef publish_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ssehub.server._publish_c",
    .m_doc = "The fast path of POST /publish with a form body (see ssehub.server._protocol).",
    .m_size = -1,
    .m_methods = publish_methods,
    .m_free = publish_free,
};

PyMODINIT_FUNC
PyInit__publish_c(void)
{
    if (str_message == NULL && (str_message = PyUnicode_InternFromString("message")) == NULL) {
        return NULL;
    }
    if (str_empty == NULL && (str_empty = PyUnicode_FromStringAndSize("", 0)) == NULL) {
        return NULL;
    }
    return PyModule_Create(&publish_module);
}
