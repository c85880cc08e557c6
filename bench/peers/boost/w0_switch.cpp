// W0 raw switch, Boost.Context 1.74 (boost::context::fiber).
// Two contexts (main and one fiber) resume each other; every resume is one
// switch.  20M switches (2M with --quick).  Prints
//   RESULT W0 boost 1 <ns> ns/switch
#include <boost/context/fiber.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ctx = boost::context;

int main(int argc, char** argv) {
  bool quick = std::getenv("QUICK") && std::strcmp(std::getenv("QUICK"), "1") == 0;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  const long switches = quick ? 2000000L : 20000000L;
  const long rounds = switches / 2;  // one round = main->fiber + fiber->main

  volatile long counter = 0;
  ctx::fiber f{[&counter](ctx::fiber&& m) {
    for (;;) {
      counter = counter + 1;
      m = std::move(m).resume();
    }
    return std::move(m);
  }};
  // warm-up: first entry creates the fiber's frame
  f = std::move(f).resume();
  counter = 0;

  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < rounds; ++i) f = std::move(f).resume();
  auto t1 = std::chrono::steady_clock::now();

  if (counter != rounds) {
    std::fprintf(stderr, "W0 boost: checksum mismatch %ld != %ld\n", (long)counter, rounds);
    return 1;
  }
  double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
  std::printf("RESULT W0 boost 1 %.2f ns/switch\n", ns / (double)switches);
  return 0;
}
