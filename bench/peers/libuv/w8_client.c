/* W8 load client (libuv, one thread): drives any TCP echo server.
 *
 *   w8_client --port P [--conns 100] [--size 64] [--seconds 10] [--quick]
 *             [--system NAME] [--threads T]
 *
 * Opens --conns connections to 127.0.0.1:P (retrying refused connects for up
 * to 10 s while the server starts), then on every connection sends one
 * --size byte message, waits for the whole echo, checks it byte for byte and
 * sends the next, for --seconds (2 with --quick or QUICK=1).  Prints
 *   RESULT W8 <system> <threads> <msgs/s> msgs/s
 * counting completed echoes.  Exits 1 on a wrong echo, a lost connection or
 * no echo at all. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_SIZE 4096

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_timer_t retry;
  int id;
  int writing;      /* wreq in flight */
  int echoed;       /* echo complete while wreq still in flight */
  uint64_t seq;
  size_t got;
  char out[MAX_SIZE];
  char in[MAX_SIZE];
} conn_t;

static int port, nconns = 100, size = 64, quick;
static double seconds = 10;
static const char* sysname = "unknown";
static const char* threads = "1";
static struct sockaddr_in addr;
static conn_t* conns;
static int connected, failed, stopping;
static uint64_t echoes, t_start, t_end, connect_deadline;
static uv_timer_t stop_timer;

static void fail(const char* what, conn_t* c, int err) {
  if (!failed)
    fprintf(stderr, "w8_client(%s): conn %d: %s%s%s\n", sysname, c ? c->id : -1, what,
            err ? ": " : "", err ? uv_strerror(err) : "");
  failed = 1;
  uv_stop(uv_default_loop());
}

static void fill(conn_t* c) {
  /* message = id, seq, then a pattern derived from both */
  memset(c->out, 0, (size_t)size);
  memcpy(c->out, &c->id, sizeof c->id);
  memcpy(c->out + 8, &c->seq, sizeof c->seq);
  for (int i = 16; i < size; i++) c->out[i] = (char)(c->id * 31 + c->seq + i);
}

static void send_next(conn_t* c);

static void on_write(uv_write_t* req, int status) {
  conn_t* c = req->data;
  c->writing = 0;
  if (status < 0) {
    if (!stopping) fail("write", c, status);
    return;
  }
  if (c->echoed && !stopping) {
    c->echoed = 0;
    send_next(c);
  }
}

static void send_next(conn_t* c) {
  fill(c);
  c->writing = 1;
  uv_buf_t b = uv_buf_init(c->out, (unsigned)size);
  c->wreq.data = c;
  int r = uv_write(&c->wreq, (uv_stream_t*)&c->tcp, &b, 1, on_write);
  if (r) fail("write", c, r);
}

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  conn_t* c = h->data;
  (void)suggested;
  buf->base = c->in + c->got;
  buf->len = (size_t)size - c->got;
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  conn_t* c = s->data;
  (void)buf;
  if (n < 0) {
    if (!stopping) fail("read", c, (int)n);
    return;
  }
  c->got += (size_t)n;
  if (c->got < (size_t)size) return;
  if (memcmp(c->in, c->out, (size_t)size) != 0) {
    fail("echo mismatch", c, 0);
    return;
  }
  c->got = 0;
  if (stopping) return;
  echoes++;
  c->seq++;
  if (c->writing)
    c->echoed = 1; /* the write request is reused: wait for its callback */
  else
    send_next(c);
}

static void start_traffic(void) {
  t_start = uv_hrtime();
  for (int i = 0; i < nconns; i++) {
    uv_read_start((uv_stream_t*)&conns[i].tcp, alloc_cb, read_cb);
    send_next(&conns[i]);
  }
}

static void on_stop(uv_timer_t* t) {
  (void)t;
  t_end = uv_hrtime();
  stopping = 1;
  uv_stop(uv_default_loop());
}

static void do_connect(conn_t* c);

static void on_retry(uv_timer_t* t) { do_connect(t->data); }

static void on_tcp_closed_retry(uv_handle_t* h) {
  conn_t* c = h->data;
  uv_timer_start(&c->retry, on_retry, 50, 0);
}

static void on_connect(uv_connect_t* req, int status) {
  conn_t* c = req->data;
  if (status < 0) {
    if (status == UV_ECONNREFUSED && uv_hrtime() < connect_deadline) {
      uv_close((uv_handle_t*)&c->tcp, on_tcp_closed_retry);
      return;
    }
    fail("connect", c, status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (++connected == nconns) {
    start_traffic();
    uv_timer_start(&stop_timer, on_stop, (uint64_t)(seconds * 1000), 0);
  }
}

static void do_connect(conn_t* c) {
  uv_tcp_init(uv_default_loop(), &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr*)&addr, on_connect);
  if (r) fail("connect", c, r);
}

int main(int argc, char** argv) {
  const char* q = getenv("QUICK");
  quick = q && strcmp(q, "1") == 0;
  int have_seconds = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) quick = 1;
    else if (v && strcmp(a, "--port") == 0) port = atoi(v), i++;
    else if (v && strcmp(a, "--conns") == 0) nconns = atoi(v), i++;
    else if (v && strcmp(a, "--size") == 0) size = atoi(v), i++;
    else if (v && strcmp(a, "--seconds") == 0) seconds = atof(v), have_seconds = 1, i++;
    else if (v && strcmp(a, "--system") == 0) sysname = v, i++;
    else if (v && strcmp(a, "--threads") == 0) threads = v, i++;
    else {
      fprintf(stderr, "w8_client: bad argument %s\n", a);
      return 2;
    }
  }
  if (!have_seconds && quick) seconds = 2;
  if (port <= 0 || nconns <= 0 || size < 16 || size > MAX_SIZE || seconds <= 0) {
    fprintf(stderr, "w8_client: need --port, --conns > 0, 16 <= --size <= %d\n", MAX_SIZE);
    return 2;
  }
  uv_loop_t* loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", port, &addr);
  conns = calloc((size_t)nconns, sizeof *conns);
  uv_timer_init(loop, &stop_timer);
  connect_deadline = uv_hrtime() + 10ull * 1000000000ull;
  for (int i = 0; i < nconns; i++) {
    conns[i].id = i;
    uv_timer_init(loop, &conns[i].retry);
    conns[i].retry.data = &conns[i];
    do_connect(&conns[i]);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (failed) return 1;
  if (echoes == 0) {
    fprintf(stderr, "w8_client(%s): no echo completed\n", sysname);
    return 1;
  }
  double el = (double)(t_end - t_start) / 1e9;
  printf("RESULT W8 %s %s %.2f msgs/s\n", sysname, threads, (double)echoes / el);
  fflush(stdout);
  /* connections are dropped by process exit */
  return 0;
}
