// CAF 0.17 peer for the troupe benchmarks (event-based actors).
//
//   caf-bench <W1|W2|W3|W4> [--quick] [--threads N]
//
// --threads N sets scheduler.max-threads.  Each measurement is one stdout
// line: RESULT <workload> caf <threads> <value> <unit>.  A checksum mismatch
// exits with status 1.
#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace caf;
using clk = std::chrono::steady_clock;

using next_atom = atom_constant<atom("next")>;
using done_atom = atom_constant<atom("done")>;
using ping_atom = atom_constant<atom("ping")>;
using pong_atom = atom_constant<atom("pong")>;

static bool quick = false;
static size_t threads = 1;
static int status = 0;

static int64_t pick(int64_t full, int64_t q) { return quick ? q : full; }

static double ns_since(clk::time_point t0) {
  return std::chrono::duration<double, std::nano>(clk::now() - t0).count();
}

static void report_result(const char* w, double v, const char* unit) {
  std::printf("RESULT %s caf %zu %.2f %s\n", w, threads, v, unit);
  std::fflush(stdout);
}

static bool check(const char* w, int64_t got, int64_t want) {
  if (got == want) return true;
  std::fprintf(stderr, "%s caf: checksum %lld != %lld\n", w, (long long)got,
               (long long)want);
  status = 1;
  return false;
}

// ---- W1 ping-pong ------------------------------------------------------
behavior ponger(event_based_actor*) {
  return {[](ping_atom, int64_t v) { return make_message(pong_atom::value, v + 1); }};
}

behavior pinger(event_based_actor* self, actor pong, int64_t n, actor report) {
  self->send(pong, ping_atom::value, int64_t{0});
  return {[=](pong_atom, int64_t v) {
    if (v == n) {
      self->send(report, done_atom::value, v);
      self->send_exit(pong, exit_reason::user_shutdown);
      self->quit();
    } else {
      self->send(pong, ping_atom::value, v);
    }
  }};
}

static void w1(actor_system& sys) {
  int64_t n = pick(2000000, 200000);
  scoped_actor s{sys};
  auto pong = sys.spawn(ponger);
  auto t0 = clk::now();
  sys.spawn(pinger, pong, n, actor{s});
  int64_t got = -1;
  s->receive([&](done_atom, int64_t v) { got = v; });
  double ns = ns_since(t0);
  if (check("W1", got, n)) report_result("W1", ns / n, "ns/roundtrip");
}

// ---- W2 ring ---------------------------------------------------------------
behavior ring_node(event_based_actor* self, actor next) {
  return {[=](int64_t t) { self->send(next, t + 1); }};
}

behavior ring_first(event_based_actor* self, int64_t total, actor report) {
  return {[=](next_atom, actor next) {
    self->become([=](int64_t t) {
      if (t == total)
        self->send(report, done_atom::value, t);
      else
        self->send(next, t + 1);
    });
  }};
}

static void w2(actor_system& sys) {
  int64_t nodes = 1000, laps = pick(1000, 100), total = nodes * laps;
  scoped_actor s{sys};
  std::vector<actor> all;
  auto first = sys.spawn(ring_first, total, actor{s});
  all.push_back(first);
  actor next = first;
  for (int64_t i = 1; i < nodes; ++i) {
    next = sys.spawn(ring_node, next);
    all.push_back(next);
  }
  anon_send(first, next_atom::value, next);
  auto t0 = clk::now();
  anon_send(first, int64_t{0});
  int64_t got = -1;
  s->receive([&](done_atom, int64_t v) { got = v; });
  double ns = ns_since(t0);
  for (auto& a : all) anon_send_exit(a, exit_reason::user_shutdown);
  if (check("W2", got, total)) report_result("W2", ns / total, "ns/hop");
}

// ---- W3 spawn+exit and skynet -----------------------------------------------------
// The spawn+exit loop runs in the main thread (sys.spawn, results collected
// by a scoped_actor).  Spawning all children from inside one event-based
// actor is quadratic in CAF 0.17 with 2+ scheduler threads: children pile up
// in the spawning worker's deque and every steal (double_ended_queue::
// take_tail -> find_predecessor) walks that list (measured 85 us/actor at
// 100k; 500k would take minutes).
void w3_child(event_based_actor* self, actor parent, int64_t id) {
  self->send(parent, id);  // no behavior set: the actor terminates
}

struct sk_state {
  int64_t left = 10;
  int64_t sum = 0;
};

behavior skynet(stateful_actor<sk_state>* self, actor parent, int64_t num, int64_t size) {
  if (size == 1) {
    self->send(parent, num);
    return {};  // empty behavior: terminate
  }
  auto me = actor_cast<actor>(self);
  int64_t sub = size / 10;
  for (int64_t i = 0; i < 10; ++i) self->spawn(skynet, me, num + i * sub, sub);
  return {[=](int64_t v) {
    self->state.sum += v;
    if (--self->state.left == 0) {
      self->send(parent, self->state.sum);
      self->quit();
    }
  }};
}

static void w3(actor_system& sys) {
  {
    int64_t n = pick(500000, 100000);
    scoped_actor s{sys};
    actor me{s};
    auto t0 = clk::now();
    for (int64_t i = 0; i < n; ++i) sys.spawn(w3_child, me, i);
    int64_t got = 0;
    for (int64_t i = 0; i < n; ++i) s->receive([&](int64_t v) { got += v; });
    double ns = ns_since(t0);
    if (check("W3", got, n * (n - 1) / 2)) report_result("W3", ns / n, "ns/actor");
  }
  {
    int64_t leaves = pick(1000000, 100000);
    scoped_actor s{sys};
    auto t0 = clk::now();
    sys.spawn(skynet, actor{s}, int64_t{0}, leaves);
    int64_t got = -1;
    s->receive([&](int64_t v) { got = v; });
    double ns = ns_since(t0);
    if (check("W3-skynet", got, leaves * (leaves - 1) / 2))
      report_result("W3-skynet", ns / 1e6, "ms");
  }
}

// ---- W4 N:1 mailbox (mailbox_performance shape) ------------------------------------
void w4_sender(event_based_actor* self, actor whom, int64_t per) {
  for (int64_t i = 0; i < per; ++i) self->send(whom, i);
}

struct w4_state {
  int64_t left = 0;
  int64_t sum = 0;
};

behavior w4_receiver(stateful_actor<w4_state>* self, int64_t total, actor report) {
  self->state.left = total;
  return {[=](int64_t v) {
    self->state.sum += v;
    if (--self->state.left == 0) {
      self->send(report, done_atom::value, self->state.sum);
      self->quit();
    }
  }};
}

static void w4(actor_system& sys) {
  int64_t senders = 20, per = pick(200000, 20000), total = senders * per;
  scoped_actor s{sys};
  auto t0 = clk::now();
  auto rcv = sys.spawn(w4_receiver, total, actor{s});
  for (int64_t i = 0; i < senders; ++i) sys.spawn(w4_sender, rcv, per);
  int64_t got = -1;
  s->receive([&](done_atom, int64_t v) { got = v; });
  double ns = ns_since(t0);
  if (check("W4", got, senders * (per * (per - 1) / 2)))
    report_result("W4", total / (ns / 1e9), "msgs/s");
}

int main(int argc, char** argv) {
  const char* q = std::getenv("QUICK");
  quick = q && std::strcmp(q, "1") == 0;
  std::vector<std::string> which;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::strtoul(argv[++i], nullptr, 10);
    } else {
      which.emplace_back(argv[i]);
    }
  }
  if (threads < 1) threads = 1;
  if (which.empty() || (which.size() == 1 && which[0] == "all"))
    which = {"W1", "W2", "W3", "W4"};
  actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  actor_system sys{cfg};
  for (auto& w : which) {
    if (w == "W1") w1(sys);
    else if (w == "W2") w2(sys);
    else if (w == "W3") w3(sys);
    else if (w == "W4") w4(sys);
    else {
      std::fprintf(stderr, "caf-bench: unknown workload %s (have W1 W2 W3 W4)\n", w.c_str());
      return 2;
    }
  }
  return status;
}
