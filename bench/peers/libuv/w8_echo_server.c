/* W8 peer: plain libuv TCP echo server (one thread, one loop).
 *
 *   w8_echo_libuv --port P
 *
 * Echoes every byte back on the connection it came from; runs until killed.
 * The shape is libuv's own echo-server test: a malloc'ed read buffer that is
 * handed to uv_write and freed in the write callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} write_req_t;

static void on_close(uv_handle_t* h) { free(h); }

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  (void)h;
  (void)suggested;
  buf->base = malloc(4096);
  buf->len = buf->base ? 4096 : 0;
}

static void after_write(uv_write_t* req, int status) {
  write_req_t* wr = (write_req_t*)req;
  uv_handle_t* h = (uv_handle_t*)req->handle;
  free(wr->buf.base);
  free(wr);
  if (status < 0 && !uv_is_closing(h)) uv_close(h, on_close);
}

static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  if (nread > 0) {
    write_req_t* wr = malloc(sizeof *wr);
    wr->buf = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_write(&wr->req, s, &wr->buf, 1, after_write) == 0) return;
    free(wr);
  }
  free(buf->base);
  if (nread < 0 && !uv_is_closing((uv_handle_t*)s)) uv_close((uv_handle_t*)s, on_close);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  uv_tcp_t* c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t*)c) != 0) {
    uv_close((uv_handle_t*)c, on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t*)c, alloc_cb, read_cb);
}

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
  if (port <= 0) {
    fprintf(stderr, "usage: %s --port P\n", argv[0]);
    return 2;
  }
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  int r = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t*)&server, 1024, on_connection);
  if (r != 0) {
    fprintf(stderr, "w8 libuv: listen on %d: %s\n", port, uv_strerror(r));
    return 1;
  }
  fprintf(stderr, "W8 libuv: listening on %d\n", port);
  return uv_run(loop, UV_RUN_DEFAULT);
}
