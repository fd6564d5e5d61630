/*
 * The bytes of a text/event-stream event, shared by the C accelerators: ssehub._wire_c (encode,
 * comment) and ssehub.server._publish_c (the publish fast path). The checks on the fields (no
 * line break in an event type or id, no NUL in an id) are the callers'; this only writes.
 *
 * A header of static functions, so that each extension module stays a single self-contained
 * shared object.
 */
#ifndef SSEHUB_EVENT_BYTES_H
#define SSEHUB_EVENT_BYTES_H

#include <Python.h>
#include <string.h>

/* The lines of a text: split at CRLF, CR and LF; a text with k line breaks has k + 1 lines
 * (like str.split after replacing CRLF and CR with LF). Each search moves forward only. */
typedef struct {
    const char *s;
    Py_ssize_t n, pos, lf, cr;
} Lines;

static inline void
lines_init(Lines *it, const char *s, Py_ssize_t n)
{
    it->s = s;
    it->n = n;
    it->pos = 0;
    it->lf = it->cr = -1;
}

static inline int
lines_next(Lines *it, const char **line, Py_ssize_t *len)
{
    Py_ssize_t pos = it->pos, n = it->n;
    if (pos > n) {
        return 0;
    }
    if (it->lf < pos) {
        const char *q = memchr(it->s + pos, '\n', (size_t)(n - pos));
        it->lf = q ? q - it->s : n;
    }
    if (it->cr < pos) {
        const char *q = memchr(it->s + pos, '\r', (size_t)(n - pos));
        it->cr = q ? q - it->s : n;
    }
    Py_ssize_t end = it->lf < it->cr ? it->lf : it->cr;
    *line = it->s + pos;
    *len = end - pos;
    if (end == n) {
        it->pos = n + 1;
    }
    else if (it->s[end] == '\r' && end + 1 < n && it->s[end + 1] == '\n') {
        it->pos = end + 2;
    }
    else {
        it->pos = end + 1;
    }
    return 1;
}

static inline int
has_line_break(const char *s, Py_ssize_t n)
{
    return memchr(s, '\n', (size_t)n) != NULL || memchr(s, '\r', (size_t)n) != NULL;
}

static inline char *
put(char *out, const char *s, Py_ssize_t n)
{
    memcpy(out, s, (size_t)n);
    return out + n;
}

/* One event: "retry: <n>" when retry >= 0, "id: <id>" when id is not NULL, "event: <type>" when
 * type is not NULL, then one "data: <line>" per line of data (lines end at CRLF, CR and LF), each
 * line ending in LF, and a blank line. NULL with MemoryError set when out of memory. */
static PyObject *
event_bytes(long long retry, const char *id, Py_ssize_t id_n, const char *type, Py_ssize_t type_n,
            const char *data, Py_ssize_t data_n)
{
    char digits[24];
    Py_ssize_t ndigits = 0;
    Py_ssize_t size = 1; /* the blank line */
    if (retry >= 0) {
        char reversed[24];
        do {
            reversed[ndigits++] = (char)('0' + retry % 10);
            retry /= 10;
        } while (retry);
        for (Py_ssize_t i = 0; i < ndigits; i++) {
            digits[i] = reversed[ndigits - 1 - i];
        }
        size += 7 + ndigits + 1;
    }
    if (id != NULL) {
        size += 4 + id_n + 1;
    }
    if (type != NULL) {
        size += 7 + type_n + 1;
    }
    int multiline = has_line_break(data, data_n);
    Lines it;
    const char *line;
    Py_ssize_t len;
    if (multiline) {
        lines_init(&it, data, data_n);
        while (lines_next(&it, &line, &len)) {
            size += 7 + len;
        }
    }
    else {
        size += 7 + data_n;
    }

    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(out);
    if (ndigits) {
        o = put(o, "retry: ", 7);
        o = put(o, digits, ndigits);
        *o++ = '\n';
    }
    if (id != NULL) {
        o = put(o, "id: ", 4);
        o = put(o, id, id_n);
        *o++ = '\n';
    }
    if (type != NULL) {
        o = put(o, "event: ", 7);
        o = put(o, type, type_n);
        *o++ = '\n';
    }
    if (multiline) {
        lines_init(&it, data, data_n);
        while (lines_next(&it, &line, &len)) {
            o = put(o, "data: ", 6);
            o = put(o, line, len);
            *o++ = '\n';
        }
    }
    else {
        o = put(o, "data: ", 6);
        o = put(o, data, data_n);
        *o++ = '\n';
    }
    *o++ = '\n';
    assert(o == PyBytes_AS_STRING(out) + size);
    return out;
}

#endif /* SSEHUB_EVENT_BYTES_H */
