/*
 * sseload: the subscriber fleet (and the fan-out publisher) for benchmarks/bench_fanout.py.
 *
 * One epoll thread holds every subscriber connection (non-blocking sockets, level-triggered,
 * one 256 KiB read buffer shared by all). Bytes are de-chunked when the response is chunked,
 * split into lines with memchr, and an event is counted only when a blank line ends a block
 * that had a `data:` line, so comments, `retry:` and the hub's opening `id:` block are not
 * events. Lines end in LF or CRLF (lone CR is not supported: none of the targets sends it).
 *
 * Modes
 *   fanout  N subscribers; once all are open a second thread publishes a warm-up event and waits
 *           until every subscriber got it, then publishes E events one at a time over one
 *           keep-alive connection (each waits for its response). Event data is
 *           "<seq>_<CLOCK_MONOTONIC ns at send>". Reports deliveries/s (from the first publish to
 *           the last delivery), publish-to-delivery latency percentiles over every delivery (or a
 *           sample of subscribers when that would be more than --max-samples), per-subscriber
 *           order/loss checks, and its own CPU time and the server's (/proc/<pid>/stat) over
 *           exactly that window.
 *   subs    N subscribers; prints "READY ..." once all are open, counts events until stdin reaches
 *           EOF, then drains until the streams have been quiet for --drain-ms and prints a report.
 *           Used for the idle-memory test (no events) and as the single reader of the
 *           publish-rate test (with --batch-us, which pauses between reads so that each read
 *           carries many events: the reader only counts there, and stays cheap).
 *   follow  the subscriber half of fanout, for events someone else publishes (another sseload in
 *           fanout mode, through another server that shares a backend with this one): N
 *           subscribers, "READY ..." once all are open, then the same order/loss/latency checks
 *           as fanout. The window starts at the publish time that event 1 carries (the clock is
 *           the machine's CLOCK_MONOTONIC, so another process's timestamps compare) and ends at
 *           the last delivery; it stops once every subscriber has all E events, or --idle-ms
 *           after the last event, or on SIGTERM.
 *
 *           With --events 0 it expects no event at all (the subscribers who must not get what
 *           is published, e.g. private events): every event but the warm-up one (seq 0) counts
 *           in "received"; it then stops only after --idle-ms past a stray event, at the
 *           timeout, or on SIGTERM.
 *
 * --redis-port P (fanout, follow): also report the CPU time of the Redis server on P (INFO cpu:
 * used_cpu_sys + used_cpu_user, microseconds) over the measured window, as "redis_cpu_s".
 * --sub-paths FILE: one request path per line (e.g. each with its own `authorization` token);
 * subscriber i requests line i (modulo the number of lines) instead of --sub-path.
 * --pub-header "Name: value" (fanout, repeatable): sent with every publish, e.g. a publisher's
 * "Authorization: Bearer <jwt>".
 * --private (fanout, with --form-topic): the events 1..E are published with "private=on"; the
 * warm-up event stays public, so that subscribers who may not see private events confirm their
 * registration too.
 *
 * Output: one JSON object on stdout (after the READY line in subs and follow mode).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define HDR_MAX 8192
#define LINE_MAX_LEN 512
#define MAX_PIDS 8

enum { S_CONNECTING, S_HEADERS, S_STREAM, S_CLOSED };
enum { C_SIZE, C_DATA, C_CRLF, C_DONE };

typedef struct {
    int fd, state, idx;
    int hdr_len;
    char *hdr;
    int chunked, cstate, cext;
    int64_t cleft;
    char line[LINE_MAX_LEN];
    int line_len;
    int has_data, data_ok, warm;
    int64_t seq, ts;
    int64_t expected, received, gaps, dups, bad;
    int64_t last_ns;
} conn_t;

/* configuration */
static const char *mode = "fanout";
static const char *host = "127.0.0.1";
static int port = 8000;
static const char *sub_path = "/events?topic=bench";
static const char *pub_path = "/publish";
static const char *form_topic = NULL; /* form-encode "topic=<t>&data=<payload>" when set */
static int nsubs = 1000;
static int64_t nevents = 2000;
static int max_pending = 256;
static int batch_us = 0; /* subs mode: pause between reads so each read carries many events */
static int timed_out = 0;
static double timeout_s = 120.0;
static int idle_ms = 5000;
static int drain_ms = 1000;
static int64_t max_samples = 4000000;
static int server_pids[MAX_PIDS];
static int n_server_pids = 0;
static int redis_port = 0; /* report this Redis server's CPU over the window when set */
static int follow = 0;     /* follow mode: fanout's subscribers, someone else publishes */
#define MAX_PUB_HEADERS 4
static const char *pub_headers[MAX_PUB_HEADERS]; /* extra publish request headers */
static int n_pub_headers = 0;
static int private_events = 0; /* form-publish events 1..E with private=on */
static char **sub_paths = NULL; /* --sub-paths: a request path per subscriber (modulo) */
static int n_sub_paths = 0;

/* state shared with the publisher thread */
static atomic_int n_open, n_failed, n_warm, pub_done, pub_error, stop_flag;
static atomic_long pub_t_first, pub_t_end;
static atomic_long srv_cpu_start, gen_cpu_start, busy_start, steal_start, redis_cpu_start;

static conn_t *conns;
static int opened = 0, pending = 0;
static int n_closed_early = 0, n_complete = 0;
static int64_t total_events = 0, total_received = 0, last_delivery_ns = 0, last_data_ns = 0;
static int64_t follow_t0 = 0; /* follow mode: the publish time event 1 carries */
static int64_t *lat;
static int64_t lat_n = 0, lat_cap = 0;
static int lat_every = 1;
static int64_t *pub_rtt;
static int64_t pub_rtt_n = 0;

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "sseload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int64_t self_cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

/* utime+stime of the server processes, in ns (clock ticks from /proc/<pid>/stat). */
static int64_t server_cpu_ns(void) {
    int64_t total = 0;
    long tck = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n_server_pids; i++) {
        char path[64], buf[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", server_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p) continue;
        unsigned long ut = 0, st = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            total += (int64_t)(ut + st) * (1000000000LL / tck);
    }
    return total;
}

/* Whole-machine busy CPU time (all cores, user+nice+system+irq+softirq) and steal, in ns. */
static void machine_cpu_ns(int64_t *busy, int64_t *steal) {
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) < 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    int64_t tick = 1000000000LL / sysconf(_SC_CLK_TCK);
    *busy = (int64_t)(v[0] + v[1] + v[2] + v[5] + v[6]) * tick;
    *steal = (int64_t)v[7] * tick;
}

/* The Redis server's own CPU time (INFO cpu: used_cpu_sys + used_cpu_user, getrusage with
 * microseconds), in ns; -1 when it cannot be asked. */
static int64_t redis_cpu_ns(void) {
    if (!redis_port) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(redis_port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n";
    char buf[4096];
    size_t have = 0;
    int64_t result = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto out;
    if (send(fd, cmd, sizeof cmd - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof cmd - 1)) goto out;
    for (;;) { /* a bulk reply: "$<len>\r\n<len bytes>\r\n" */
        ssize_t n = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (n <= 0) goto out;
        have += n;
        buf[have] = 0;
        char *eol = strstr(buf, "\r\n");
        if (buf[0] != '$' || (!eol && have >= sizeof buf - 1)) goto out;
        if (eol && have >= (size_t)(eol - buf) + 2 + strtoul(buf + 1, NULL, 10)) break;
        if (have >= sizeof buf - 1) goto out;
    }
    char *sys = strstr(buf, "\nused_cpu_sys:"), *user = strstr(buf, "\nused_cpu_user:");
    if (sys && user) result = (int64_t)((atof(sys + 14) + atof(user + 15)) * 1e9);
out:
    close(fd);
    return result;
}

static int connect_blocking(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect (publisher)");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ---------------------------------------------------------------- SSE parsing (subscribers) */

static void dispatch(conn_t *c, int64_t now) {
    total_events++;
    last_data_ns = now;
    if (!c->data_ok) { /* not "<seq>_<ts>": counted as an event (subs mode payloads) */
        c->received++;
        total_received++;
        c->last_ns = now;
        return;
    }
    if (c->seq == 0) { /* warm-up */
        if (!c->warm) {
            c->warm = 1;
            atomic_fetch_add(&n_warm, 1);
        }
        return;
    }
    if (follow && !follow_t0) { /* the measured window starts with the first event */
        follow_t0 = c->seq == 1 ? c->ts : now;
        atomic_store(&srv_cpu_start, server_cpu_ns());
        atomic_store(&gen_cpu_start, self_cpu_ns());
        atomic_store(&redis_cpu_start, redis_cpu_ns());
        int64_t busy, steal;
        machine_cpu_ns(&busy, &steal);
        atomic_store(&busy_start, busy);
        atomic_store(&steal_start, steal);
    }
    c->received++;
    total_received++;
    c->last_ns = now;
    last_delivery_ns = now;
    if (c->seq == c->expected) {
        c->expected++;
    } else if (c->seq < c->expected) {
        c->dups++;
    } else {
        c->gaps++;
        c->expected = c->seq + 1;
    }
    if (c->idx % lat_every == 0 && lat_n < lat_cap) lat[lat_n++] = now - c->ts;
    if (c->received == nevents) n_complete++;
}

static void handle_line(conn_t *c, const char *line, size_t len, int64_t now) {
    if (len == 0) {
        if (c->has_data) dispatch(c, now);
        c->has_data = 0;
        return;
    }
    if (line[0] != 'd' || len < 5 || memcmp(line, "data:", 5) != 0) return;
    if (c->has_data) return; /* only the first data line of an event is parsed */
    c->has_data = 1;
    c->data_ok = 0;
    size_t i = 5;
    if (i < len && line[i] == ' ') i++;
    int64_t seq = 0, ts = 0;
    size_t start = i;
    while (i < len && line[i] >= '0' && line[i] <= '9') seq = seq * 10 + (line[i++] - '0');
    if (i == start || i >= len || line[i] != '_') return;
    start = ++i;
    while (i < len && line[i] >= '0' && line[i] <= '9') ts = ts * 10 + (line[i++] - '0');
    if (i == start || i != len) return;
    c->seq = seq;
    c->ts = ts;
    c->data_ok = 1;
}

static void sse_feed(conn_t *c, const char *p, size_t n, int64_t now) {
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            size_t room = LINE_MAX_LEN - c->line_len;
            size_t take = n < room ? n : room;
            memcpy(c->line + c->line_len, p, take);
            c->line_len += take;
            return;
        }
        size_t seg = (size_t)(nl - p);
        const char *line = p;
        size_t len = seg;
        if (c->line_len) {
            size_t room = LINE_MAX_LEN - c->line_len;
            size_t take = seg < room ? seg : room;
            memcpy(c->line + c->line_len, p, take);
            line = c->line;
            len = c->line_len + take;
            c->line_len = 0;
        }
        if (len && line[len - 1] == '\r') len--;
        handle_line(c, line, len, now);
        p = nl + 1;
        n -= seg + 1;
    }
}

/* Returns -1 when a chunked body ended (zero-size chunk). */
static int body_feed(conn_t *c, const char *p, size_t n, int64_t now) {
    if (!c->chunked) {
        sse_feed(c, p, n, now);
        return 0;
    }
    while (n > 0) {
        switch (c->cstate) {
        case C_SIZE: {
            char ch = *p++;
            n--;
            if (ch == '\n') {
                c->cext = 0;
                if (c->cleft == 0) {
                    c->cstate = C_DONE;
                    return -1;
                }
                c->cstate = C_DATA;
            } else if (!c->cext) {
                int v = -1;
                if (ch >= '0' && ch <= '9') v = ch - '0';
                else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
                else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
                if (v >= 0) c->cleft = c->cleft * 16 + v;
                else c->cext = 1; /* ';' extension or '\r': the size is complete */
            }
            break;
        }
        case C_DATA: {
            size_t take = (size_t)c->cleft < n ? (size_t)c->cleft : n;
            sse_feed(c, p, take, now);
            p += take;
            n -= take;
            c->cleft -= take;
            if (c->cleft == 0) c->cstate = C_CRLF;
            break;
        }
        case C_CRLF: {
            char ch = *p++;
            n--;
            if (ch == '\n') {
                c->cstate = C_SIZE;
                c->cleft = 0;
            }
            break;
        }
        default:
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- connections */

static int epfd;

static void conn_close(conn_t *c, int early) {
    if (c->state == S_CLOSED) return;
    if (c->state != S_STREAM) {
        pending--;
        atomic_fetch_add(&n_failed, 1);
    } else if (early) {
        n_closed_early++;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->hdr);
    c->hdr = NULL;
    c->state = S_CLOSED;
}

static void open_one(void) {
    conn_t *c = &conns[opened];
    c->idx = opened++;
    c->expected = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket (subscriber; raise ulimit -n)");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->state = S_CONNECTING;
    pending++;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "sseload: connect: %s\n", strerror(errno));
        c->state = S_HEADERS; /* so conn_close counts it as failed */
        conn_close(c, 0);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void on_writable(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        fprintf(stderr, "sseload: connect: %s\n", strerror(err));
        conn_close(c, 0);
        return;
    }
    char req[8192];
    const char *path = n_sub_paths ? sub_paths[c->idx % n_sub_paths] : sub_path;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\nUser-Agent: sseload\r\n\r\n",
                     path, host, port);
    if (n >= (int)sizeof req) {
        fprintf(stderr, "sseload: subscriber request too long\n");
        conn_close(c, 0);
        return;
    }
    if (send(c->fd, req, n, MSG_NOSIGNAL) != n) {
        conn_close(c, 0);
        return;
    }
    c->state = S_HEADERS;
    c->hdr = malloc(HDR_MAX);
    c->hdr_len = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_headers(conn_t *c, const char *p, size_t n, int64_t now) {
    size_t take = n < (size_t)(HDR_MAX - 1 - c->hdr_len) ? n : (size_t)(HDR_MAX - 1 - c->hdr_len);
    memcpy(c->hdr + c->hdr_len, p, take);
    int old = c->hdr_len;
    c->hdr_len += take;
    c->hdr[c->hdr_len] = 0;
    char *end = strstr(c->hdr, "\r\n\r\n");
    if (!end) {
        if (c->hdr_len >= HDR_MAX - 1) {
            fprintf(stderr, "sseload: response headers too long\n");
            conn_close(c, 0);
        }
        return;
    }
    size_t head_len = (size_t)(end - c->hdr) + 4;
    int status = 0;
    if (sscanf(c->hdr, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        if (atomic_load(&n_failed) < 3)
            fprintf(stderr, "sseload: subscriber got: %.*s\n", (int)(end - c->hdr), c->hdr);
        conn_close(c, 0);
        return;
    }
    *end = 0;
    for (char *q = c->hdr; (q = strcasestr(q, "\r\ntransfer-encoding:")); q++)
        if (strcasestr(q, "chunked")) c->chunked = 1;
    c->state = S_STREAM;
    pending--;
    atomic_fetch_add(&n_open, 1);
    size_t used_from_p = head_len - old; /* bytes of p that were headers */
    free(c->hdr);
    c->hdr = NULL;
    if (used_from_p < n && body_feed(c, p + used_from_p, n - used_from_p, now) < 0) conn_close(c, 1);
}

static void on_readable(conn_t *c, char *buf) {
    for (;;) {
        ssize_t n = read(c->fd, buf, READ_BUF);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_close(c, 1);
            return;
        }
        if (n == 0) {
            conn_close(c, 1);
            return;
        }
        int64_t now = now_ns();
        if (c->state == S_HEADERS) on_headers(c, buf, n, now);
        else if (c->state == S_STREAM && body_feed(c, buf, n, now) < 0) conn_close(c, 1);
        if (c->state == S_CLOSED || n < READ_BUF) return;
    }
}

/* ---------------------------------------------------------------- publisher (fanout mode) */

static int read_response(int fd, char *buf, size_t cap) {
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
        if (n <= 0) return -1;
        have += n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= cap - 1) return -1;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    size_t head = (size_t)(end - buf) + 4;
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < end) {
        size_t want = head + strtoul(cl + 17, NULL, 10);
        while (have < want) {
            ssize_t n = recv(fd, buf, cap - 1 < want - have ? cap - 1 : want - have, 0);
            if (n <= 0) return -1;
            have += n;
        }
    } else if (strcasestr(buf, "\r\ntransfer-encoding:") < end &&
               strcasestr(buf, "\r\ntransfer-encoding:")) {
        /* chunked: read until the last chunk "0\r\n\r\n" (responses here are small) */
        while (!memmem(buf + head - 2, have - head + 2, "\n0\r\n\r\n", 6)) {
            if (have >= cap - 1) return -1;
            ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
            if (n <= 0) return -1;
            have += n;
        }
    } /* else: no body */
    return status;
}

static int publish(int fd, int64_t seq, char *buf, size_t cap) {
    char body[256], req[8192], extra[4096] = "";
    if (seq == 1) { /* the measured window starts here */
        atomic_store(&srv_cpu_start, server_cpu_ns());
        atomic_store(&gen_cpu_start, self_cpu_ns());
        atomic_store(&redis_cpu_start, redis_cpu_ns());
        int64_t busy, steal;
        machine_cpu_ns(&busy, &steal);
        atomic_store(&busy_start, busy);
        atomic_store(&steal_start, steal);
    }
    int64_t ts = now_ns();
    if (seq == 1) atomic_store(&pub_t_first, ts);
    int blen = form_topic
                   ? snprintf(body, sizeof body, "topic=%s&data=%lld_%lld%s", form_topic,
                              (long long)seq, (long long)ts,
                              private_events && seq >= 1 ? "&private=on" : "")
                   : snprintf(body, sizeof body, "%lld_%lld", (long long)seq, (long long)ts);
    size_t used = 0;
    for (int h = 0; h < n_pub_headers && used < sizeof extra; h++)
        used += snprintf(extra + used, sizeof extra - used, "%s\r\n", pub_headers[h]);
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n%s"
                     "Content-Length: %d\r\n\r\n%s",
                     pub_path, host, port,
                     form_topic ? "application/x-www-form-urlencoded" : "text/plain", extra, blen,
                     body);
    if (used >= sizeof extra || blen >= (int)sizeof body || n >= (int)sizeof req) {
        fprintf(stderr, "sseload: publish request too long\n");
        return -1;
    }
    if (send(fd, req, n, MSG_NOSIGNAL) != n) return -1;
    int status = read_response(fd, buf, cap);
    if (seq >= 1) pub_rtt[pub_rtt_n++] = now_ns() - ts;
    return status;
}

static void *publisher(void *arg) {
    (void)arg;
    char *buf = malloc(65536);
    int64_t deadline = now_ns() + (int64_t)(timeout_s * 1e9);
    while (atomic_load(&n_open) + atomic_load(&n_failed) < nsubs) {
        if (atomic_load(&stop_flag) || now_ns() > deadline) goto out;
        usleep(1000);
    }
    if (atomic_load(&n_failed) > 0) {
        fprintf(stderr, "sseload: %d subscribers failed to open; not publishing\n",
                atomic_load(&n_failed));
        atomic_store(&pub_error, 1);
        goto out;
    }
    int fd = connect_blocking();
    int status = publish(fd, 0, buf, 65536);
    if (status < 200 || status > 299) {
        fprintf(stderr, "sseload: warm-up publish answered %d\n", status);
        atomic_store(&pub_error, 1);
        goto out;
    }
    int64_t warm_deadline = now_ns() + 10000000000LL;
    while (atomic_load(&n_warm) < atomic_load(&n_open) && now_ns() < warm_deadline) usleep(200);
    if (atomic_load(&n_warm) < atomic_load(&n_open))
        fprintf(stderr, "sseload: only %d of %d subscribers got the warm-up event\n",
                atomic_load(&n_warm), atomic_load(&n_open));
    for (int64_t seq = 1; seq <= nevents; seq++) {
        status = publish(fd, seq, buf, 65536);
        if (status < 200 || status > 299) {
            fprintf(stderr, "sseload: publish %lld answered %d\n", (long long)seq, status);
            atomic_store(&pub_error, 1);
            break;
        }
        if (atomic_load(&stop_flag)) break;
    }
    atomic_store(&pub_t_end, now_ns());
    close(fd);
out:
    atomic_store(&pub_done, 1);
    free(buf);
    return NULL;
}

/* ---------------------------------------------------------------- reporting */

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(int64_t *v, int64_t n, double p) {
    if (n == 0) return -1;
    int64_t i = (int64_t)(p * (n - 1) + 0.5);
    return v[i] / 1e6; /* ms */
}

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&stop_flag, 1);
}

/* --sub-paths FILE: one request path per line (blank lines skipped). */
static void load_sub_paths(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) die(file);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int room = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        if (n_sub_paths == room) {
            room = room ? 2 * room : 1024;
            sub_paths = realloc(sub_paths, room * sizeof *sub_paths);
            if (!sub_paths) die("realloc");
        }
        sub_paths[n_sub_paths++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (!n_sub_paths) {
        fprintf(stderr, "sseload: no path in %s\n", file);
        exit(2);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: sseload [fanout|subs|follow] --port P [--host H] [--sub-path PATH] [--subs N]\n"
            "  [--events E] [--pub-path PATH] [--form-topic T] [--server-pid PID]...\n"
            "  [--timeout S] [--idle-ms MS] [--drain-ms MS] [--max-pending N] [--batch-us US]\n"
            "  [--redis-port P] [--sub-paths FILE] [--pub-header 'Name: value']... [--private]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int i = 1;
    if (i < argc && argv[i][0] != '-') mode = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--private")) { /* the one option without a value */
            private_events = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--sub-path")) sub_path = v;
        else if (!strcmp(a, "--pub-path")) pub_path = v;
        else if (!strcmp(a, "--form-topic")) form_topic = v;
        else if (!strcmp(a, "--subs")) nsubs = atoi(v);
        else if (!strcmp(a, "--events")) nevents = atoll(v);
        else if (!strcmp(a, "--timeout")) timeout_s = atof(v);
        else if (!strcmp(a, "--idle-ms")) idle_ms = atoi(v);
        else if (!strcmp(a, "--drain-ms")) drain_ms = atoi(v);
        else if (!strcmp(a, "--max-pending")) max_pending = atoi(v);
        else if (!strcmp(a, "--max-samples")) max_samples = atoll(v);
        else if (!strcmp(a, "--batch-us")) batch_us = atoi(v);
        else if (!strcmp(a, "--redis-port")) redis_port = atoi(v);
        else if (!strcmp(a, "--sub-paths")) load_sub_paths(v);
        else if (!strcmp(a, "--pub-header") && n_pub_headers < MAX_PUB_HEADERS)
            pub_headers[n_pub_headers++] = v;
        else if (!strcmp(a, "--server-pid") && n_server_pids < MAX_PIDS)
            server_pids[n_server_pids++] = atoi(v);
        else usage();
        i++;
    }
    int fanout = !strcmp(mode, "fanout");
    follow = !strcmp(mode, "follow");
    int subs = !strcmp(mode, "subs");
    int streams = fanout || follow; /* the "<seq>_<ts>" events of a fan-out test */
    if (!fanout && !follow && !subs) usage();
    if (private_events && !form_topic) {
        fprintf(stderr, "sseload: --private needs --form-topic\n");
        usage();
    }

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    conns = calloc(nsubs, sizeof *conns);
    char *buf = malloc(READ_BUF);
    if (streams) {
        int64_t want = (int64_t)nsubs * nevents;
        while (want / lat_every > max_samples) lat_every++;
        lat_cap = want / lat_every + nevents;
        lat = malloc(lat_cap * sizeof *lat);
        pub_rtt = malloc((nevents + 1) * sizeof *pub_rtt);
    }
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    if (subs) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    }
    pthread_t pub_thread;
    if (fanout) pthread_create(&pub_thread, NULL, publisher, NULL);

    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)(timeout_s * 1e9);
    int64_t t_all_open = 0, ready_cpu = 0, ready_ns = 0;
    int printed_ready = 0, stdin_open = subs;
    int64_t drain_started = 0;
    struct epoll_event evs[1024];
    while (!atomic_load(&stop_flag)) {
        while (opened < nsubs && pending < max_pending) open_one();
        int64_t now = now_ns();
        if (!t_all_open && opened == nsubs && pending == 0) {
            t_all_open = now;
            if (!fanout && !printed_ready) {
                printf("READY open=%d failed=%d\n", atomic_load(&n_open), atomic_load(&n_failed));
                fflush(stdout);
                printed_ready = 1;
                ready_cpu = self_cpu_ns();
                ready_ns = now;
            }
        }
        if (now > deadline) {
            fprintf(stderr, "sseload: timed out after %.0f s\n", timeout_s);
            timed_out = 1;
            break;
        }
        if (fanout && atomic_load(&pub_done)) {
            if (atomic_load(&pub_error) && atomic_load(&pub_t_first) == 0) break;
            if (n_complete >= atomic_load(&n_open)) break;
            int64_t since = now - (last_data_ns > atomic_load(&pub_t_end) ? last_data_ns
                                                                          : atomic_load(&pub_t_end));
            if (since > (int64_t)idle_ms * 1000000) break;
        }
        if (follow && follow_t0) {
            if (n_complete >= atomic_load(&n_open)) break;
            if (now - last_data_ns > (int64_t)idle_ms * 1000000) break;
        }
        if (subs && !stdin_open) {
            /* drained: the streams were quiet for drain_ms since the later of EOF and last data */
            int64_t last = last_data_ns > drain_started ? last_data_ns : drain_started;
            if (now - last > (int64_t)drain_ms * 1000000) break;
        }
        int n = epoll_wait(epfd, evs, 1024, 20);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (!c) {
                char tmp[256];
                if (read(0, tmp, sizeof tmp) <= 0) {
                    stdin_open = 0;
                    epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
                    drain_started = now_ns();
                }
                continue;
            }
            if (c->state == S_CONNECTING) {
                if (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
                continue;
            }
            if (c->state != S_CLOSED) on_readable(c, buf);
        }
        if (batch_us && n > 0 && t_all_open) usleep(batch_us);
    }
    int64_t end = now_ns();
    int64_t gen_cpu_end = self_cpu_ns();
    int64_t srv_cpu_end = server_cpu_ns();
    int64_t redis_cpu_end = redis_cpu_ns();
    int64_t busy_end, steal_end;
    machine_cpu_ns(&busy_end, &steal_end);
    atomic_store(&stop_flag, 1);
    if (fanout) pthread_join(pub_thread, NULL);

    int64_t min_rx = -1, max_rx = 0, gaps = 0, dups = 0, lost = 0, still_open = 0;
    for (int k = 0; k < opened; k++) {
        conn_t *c = &conns[k];
        if (c->state == S_STREAM) still_open++;
        if (min_rx < 0 || c->received < min_rx) min_rx = c->received;
        if (c->received > max_rx) max_rx = c->received;
        gaps += c->gaps;
        dups += c->dups;
        if (streams) lost += nevents > c->received ? nevents - c->received : 0;
    }
    lost += (int64_t)(nsubs - opened) * nevents;

    printf("{\"mode\": \"%s\", \"timed_out\": %d, \"subs\": %d, \"open\": %d, \"failed\": %d, \"still_open\": %lld, "
           "\"closed_early\": %d, \"events_total\": %lld, \"received\": %lld, "
           "\"min_per_sub\": %lld, \"max_per_sub\": %lld",
           mode, timed_out, nsubs, atomic_load(&n_open), atomic_load(&n_failed), (long long)still_open,
           n_closed_early, (long long)total_events, (long long)total_received, (long long)min_rx,
           (long long)max_rx);
    if (streams) {
        int64_t t0 = follow ? follow_t0 : atomic_load(&pub_t_first), t1 = last_delivery_ns;
        double window = t0 && t1 > t0 ? (t1 - t0) / 1e9 : 0;
        qsort(lat, lat_n, sizeof *lat, cmp64);
        qsort(pub_rtt, pub_rtt_n, sizeof *pub_rtt, cmp64);
        int64_t gen_cpu = gen_cpu_end - atomic_load(&gen_cpu_start);
        int64_t srv_cpu = srv_cpu_end - atomic_load(&srv_cpu_start);
        double wall = t0 ? (end - t0) / 1e9 : 0;
        printf(", \"events\": %lld, \"warm\": %d, \"publish_error\": %d, \"lost\": %lld, "
               "\"gaps\": %lld, \"dups\": %lld, \"complete_subs\": %d, "
               "\"window_s\": %.6f, \"publish_s\": %.6f, \"deliveries_per_s\": %.1f, "
               "\"lat_samples\": %lld, \"lat_every\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
               "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
               "\"pub_rtt_p50_ms\": %.3f, \"pub_rtt_p99_ms\": %.3f, "
               "\"cpu_wall_s\": %.6f, \"gen_cpu_s\": %.6f, \"server_cpu_s\": %.6f, "
               "\"machine_busy_s\": %.6f, \"steal_s\": %.6f",
               (long long)nevents, atomic_load(&n_warm), atomic_load(&pub_error), (long long)lost,
               (long long)gaps, (long long)dups, n_complete, window,
               atomic_load(&pub_t_end) > t0 && t0 ? (atomic_load(&pub_t_end) - t0) / 1e9 : 0,
               window > 0 ? total_received / window : 0, (long long)lat_n, lat_every,
               pct(lat, lat_n, 0.50), pct(lat, lat_n, 0.90), pct(lat, lat_n, 0.99),
               pct(lat, lat_n, 0.999), lat_n ? lat[lat_n - 1] / 1e6 : -1,
               pct(pub_rtt, pub_rtt_n, 0.50), pct(pub_rtt, pub_rtt_n, 0.99), wall,
               gen_cpu / 1e9, srv_cpu / 1e9, (busy_end - atomic_load(&busy_start)) / 1e9,
               (steal_end - atomic_load(&steal_start)) / 1e9);
        printf(", \"t_first_ns\": %lld, \"t_last_delivery_ns\": %lld", (long long)t0,
               (long long)t1);
        int64_t r0 = atomic_load(&redis_cpu_start);
        if (redis_port && r0 >= 0 && redis_cpu_end >= 0 && t0) /* and the counters themselves */
            printf(", \"redis_cpu_s\": %.6f, \"redis_cpu_at_start_s\": %.6f, "
                   "\"redis_cpu_at_end_s\": %.6f",
                   (redis_cpu_end - r0) / 1e9, r0 / 1e9, redis_cpu_end / 1e9);
    } else {
        printf(", \"cpu_wall_s\": %.6f, \"gen_cpu_s\": %.6f", ready_ns ? (end - ready_ns) / 1e9 : 0,
               ready_cpu ? (gen_cpu_end - ready_cpu) / 1e9 : 0);
    }
    printf("}\n");
    fflush(stdout);
    return 0;
}
