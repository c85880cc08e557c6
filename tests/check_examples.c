/* Check suite: runs examples/echo_server and examples/embed_daemon as
 * separate processes and drives them over loopback with plain sockets.
 * The binaries are looked up in $TR_EXAMPLES_DIR, default ./examples (the
 * build directory, where `make check` runs). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

typedef struct proc {
  pid_t pid;
  char out[64], err[64]; /* files holding its stdout / stderr */
  int port;
} proc_t;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Reads a whole file into a static buffer (NUL-terminated). */
static const char *slurp(const char *path) {
  static char buf[65536];
  FILE *f = fopen(path, "r");
  size_t n = 0;
  buf[0] = 0;
  if (f == NULL) return buf;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* Starts examples/<name> --port 0 [extra], waits for "listening on ...:P". */
static void start(proc_t *p, const char *name, const char *extra_flag,
                  const char *extra_val) {
  const char *dir = getenv("TR_EXAMPLES_DIR");
  char path[256];
  const char *s;
  snprintf(path, sizeof(path), "%s/%s", dir ? dir : "examples", name);
  ck_assert_msg(access(path, X_OK) == 0, "%s not built", path);
  snprintf(p->out, sizeof(p->out), "/tmp/troupe-ex-%d-out", (int)getpid());
  snprintf(p->err, sizeof(p->err), "/tmp/troupe-ex-%d-err", (int)getpid());
  p->pid = fork();
  ck_assert_int_ge(p->pid, 0);
  if (p->pid == 0) {
    int o = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    if (extra_flag)
      execl(path, path, "--port", "0", extra_flag, extra_val, (char *)NULL);
    else
      execl(path, path, "--port", "0", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) { /* up to 10 s (sanitizer builds) */
    s = strstr(slurp(p->out), "listening on 127.0.0.1:");
    if (s != NULL && strchr(s, '\n') != NULL) {
      p->port = atoi(strrchr(s, ':') + 1);
      return;
    }
    sleep_ms(10);
  }
  kill(p->pid, SIGKILL);
  ck_abort_msg("%s did not start: %s", name, slurp(p->err));
}

/* Sends sig and waits (up to 15 s) for the exit status. */
static int stop(proc_t *p, int sig) {
  int status = 0;
  kill(p->pid, sig);
  for (int i = 0; i < 1500; i++) {
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      ck_assert_msg(WIFEXITED(status), "killed by signal %d; stderr: %s",
                    WTERMSIG(status), slurp(p->err));
      return WEXITSTATUS(status);
    }
    sleep_ms(10);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &status, 0);
  ck_abort_msg("no exit after signal %d; stderr: %s", sig, slurp(p->err));
  return -1;
}

static void cleanup(proc_t *p) {
  unlink(p->out);
  unlink(p->err);
}

/* A blocking loopback client with 5 s timeouts. */
static int dial(int port) {
  struct sockaddr_in a;
  struct timeval tv = {5, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s);
  ck_assert_int_eq(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until n bytes or EOF/error; returns the count (-1: error). */
static ssize_t recv_n(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, 0);
    if (r < 0) return got > 0 ? (ssize_t)got : -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

static void expect_echo(int fd, const char *s) {
  char buf[256];
  size_t n = strlen(s);
  send_all(fd, s);
  ck_assert_int_eq(recv_n(fd, buf, n), (ssize_t)n);
  ck_assert(memcmp(buf, s, n) == 0);
}

/* ---- echo_server ------------------------------------------------------------- */

START_TEST(echo_server_crash_drops_one_connection) {
  proc_t p;
  char buf[64];
  ssize_t r;
  int a, b, c, d;
  start(&p, "echo_server", "--max-conns", "100");
  a = dial(p.port);
  b = dial(p.port);
  c = dial(p.port);
  expect_echo(a, "hello\n");
  expect_echo(b, "partial li");  /* bytes, not lines, are echoed */
  expect_echo(b, "ne\n");
  expect_echo(c, "c\n");
  send_all(b, "crash\n");        /* b's actor overflows its stack */
  r = recv(b, buf, sizeof(buf), 0);
  ck_assert_msg(r == 0 || (r < 0 && errno == ECONNRESET),
                "crashed connection still open: r=%zd errno=%d", r, errno);
  expect_echo(a, "still here\n"); /* the others carry on */
  expect_echo(c, "me too\n");
  d = dial(p.port);               /* and the server accepts new ones */
  expect_echo(d, "new\n");
  close(a);
  close(b);
  close(c);
  close(d);
  ck_assert_int_eq(stop(&p, SIGTERM), 0);
  ck_assert_msg(strstr(slurp(p.err), "stack_overflow") != NULL,
                "no crash report: %s", slurp(p.err));
  cleanup(&p);
}
END_TEST

START_TEST(echo_server_max_conns) {
  proc_t p;
  char buf[64];
  int a, b, c, d;
  start(&p, "echo_server", "--max-conns", "2");
  a = dial(p.port);
  b = dial(p.port);
  expect_echo(a, "a\n");
  expect_echo(b, "b\n");
  c = dial(p.port);
  ck_assert_int_eq(recv_n(c, buf, 12), 12);
  ck_assert(memcmp(buf, "server busy\n", 12) == 0);
  ck_assert_int_eq(recv(c, buf, sizeof(buf), 0), 0);
  close(a);
  sleep_ms(200); /* a's actor sees EOF and ends */
  d = dial(p.port);
  expect_echo(d, "d\n");
  close(b);
  close(c);
  close(d);
  ck_assert_int_eq(stop(&p, SIGINT), 0);
  cleanup(&p);
}
END_TEST

/* ---- embed_daemon ------------------------------------------------------------ */

static void check_order(const char *out, const char *first, const char *then) {
  const char *a = strstr(out, first), *b = strstr(out, then);
  ck_assert_msg(a != NULL && b != NULL && a < b, "'%s' not before '%s' in:\n%s",
                first, then, out);
}

START_TEST(embed_daemon_sigterm) {
  proc_t p;
  char buf[64], want[32];
  const char *out;
  start(&p, "embed_daemon", NULL, NULL);
  for (int i = 1; i <= 3; i++) {
    int fd = dial(p.port);
    snprintf(want, sizeof(want), "visit %d\n", i);
    ck_assert_int_eq(recv_n(fd, buf, sizeof(buf)), (ssize_t)strlen(want));
    ck_assert(memcmp(buf, want, strlen(want)) == 0);
    close(fd);
  }
  ck_assert_int_eq(stop(&p, SIGTERM), 0);
  out = slurp(p.out);
  check_order(out, "SIGTERM: stopping the actor tree", "stopped acceptor");
  check_order(out, "stopped acceptor", "stopped visits");
  check_order(out, "stopped visits", "stopped counter");
  check_order(out, "stopped counter", "uv_loop_close returned 0");
  cleanup(&p);
}
END_TEST

START_TEST(embed_daemon_sigint_idle) {
  proc_t p;
  start(&p, "embed_daemon", NULL, NULL);
  ck_assert_int_eq(stop(&p, SIGINT), 0);
  ck_assert(strstr(slurp(p.out), "uv_loop_close returned 0") != NULL);
  cleanup(&p);
}
END_TEST

static Suite *examples_suite(void) {
  Suite *s = suite_create("examples");
  TCase *tc = tcase_create("processes");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, echo_server_crash_drops_one_connection);
  tcase_add_test(tc, echo_server_max_conns);
  tcase_add_test(tc, embed_daemon_sigterm);
  tcase_add_test(tc, embed_daemon_sigint_idle);
  suite_add_tcase(s, tc);
  return s;
}

TR_TEST_MAIN(examples_suite)
