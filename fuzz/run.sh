#!/bin/sh
# Builds the libFuzzer harnesses (fuzz/fuzz_*.c) with clang, ASan and UBSan,
# and runs each for a bounded time on a copy of its seed corpus
# (fuzz/corpus/<name>/). `make fuzz` runs this script.
#
#   FUZZ_SECONDS   seconds per harness (default 60)
#   FUZZ_ONLY      space-separated harness names to run (default: all)
#   FUZZ_JOBS      harnesses run at once (default 1)
#   FUZZ_BUILD     build and work directory (default: fuzz/build under the
#                  current directory)
#   FUZZ_BUILD_ONLY=1  build, do not run
#   CC             a clang (default clang)
#
# The library is compiled straight from the sources (no configure), so the
# script works in a configured or unconfigured tree. The corpus directories
# of the repository are only read: new inputs go to FUZZ_BUILD/corpus/.
# Prints one line per harness: runs, seconds, execs, corpus size, verdict.
# Exits non-zero if any harness found something (its crash-* / leak-* /
# timeout-* file is kept in FUZZ_BUILD/artifacts/<name>/).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
build=${FUZZ_BUILD:-$PWD/fuzz/build}
cc=${CC:-clang}
case "$cc" in *clang*) ;; *) cc=clang ;; esac
mkdir -p "$build/obj" "$build/bin"
build=$(cd "$build" && pwd)

pkgs="libuv"
if pkg-config --exists msgpack-c 2>/dev/null; then pkgs="$pkgs msgpack-c"; else pkgs="$pkgs msgpack"; fi
deps_cflags=$(pkg-config --cflags $pkgs)
deps_libs=$(pkg-config --libs $pkgs)

# The build's config.h: the fiber annotations ASan needs.
printf '#define TR_ASAN 1\n' >"$build/config.h"

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
common="-g -O1 -std=gnu11 -D_GNU_SOURCE -fno-omit-frame-pointer $san \
  -I$top/include -I$top/src -I$build $deps_cflags"

# ---- the library ----------------------------------------------------------
case $(uname -m) in
  x86_64) ctx=src/context_x86_64.S ;;
  aarch64) ctx=src/context_aarch64.S ;;
  *) ctx=src/context_ucontext.c; common="$common -DTR_CONTEXT_UCONTEXT=1" ;;
esac
srcs=$(cd "$top" && ls src/*.c actors/*.c mailbox/*.c supervisor/*.c |
  grep -v 'context_ucontext.c')
[ "$ctx" = src/context_ucontext.c ] && srcs="$srcs $ctx"
objs=
for s in $srcs $ctx; do
  o=$build/obj/$(echo "$s" | tr '/' '_').o
  if [ ! -f "$o" ] || [ "$top/$s" -nt "$o" ] || [ "$top/src/internal.h" -nt "$o" ] ||
     [ "$top/include/troupe.h" -nt "$o" ]; then
    $cc $common -fsanitize=fuzzer-no-link -c "$top/$s" -o "$o"
  fi
  objs="$objs $o"
done

# ---- the harnesses --------------------------------------------------------
names=
for h in "$top"/fuzz/fuzz_*.c; do
  n=$(basename "$h" .c); n=${n#fuzz_}
  names="$names $n"
  $cc $common -fsanitize=fuzzer "$h" $objs $deps_libs -lpthread -ldl \
    -o "$build/bin/fuzz_$n"
done
echo "fuzz: built$names (clang, ASan+UBSan) in $build/bin"
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0

# ---- running --------------------------------------------------------------
only=${FUZZ_ONLY:-$names}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {
  n=$1
  corpus=$build/corpus/$n art=$build/artifacts/$n log=$build/$n.log
  mkdir -p "$corpus" "$art"
  if [ -d "$top/fuzz/corpus/$n" ]; then cp -n "$top/fuzz/corpus/$n"/* "$corpus"/ 2>/dev/null || true; fi
  rc=0
  "$build/bin/fuzz_$n" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$art/" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  files=$(ls "$corpus" | wc -l)
  if [ "$rc" -eq 0 ]; then verdict=ok; else verdict="FOUND (exit $rc, see $log)"; fi
  echo "fuzz_$n: ${secs}s, ${execs:-?} execs, corpus $files, $verdict"
  [ "$rc" -eq 0 ]
}

fail=0
if [ "$jobs" -le 1 ]; then
  for n in $only; do run_one "$n" || fail=1; done
else
  set -- $only
  while [ $# -gt 0 ]; do # batches of $jobs harnesses
    pids= k=0
    while [ $# -gt 0 ] && [ $k -lt "$jobs" ]; do
      run_one "$1" >"$build/$1.summary" &
      pids="$pids $!" k=$((k + 1))
      shift
    done
    for p in $pids; do wait "$p" || fail=1; done
  done
  for n in $only; do cat "$build/$n.summary"; done
fi
exit $fail
