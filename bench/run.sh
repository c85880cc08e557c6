#!/usr/bin/env bash
# troupe benchmarks side by side with the peers (see bench/README.md and
# doc/design bench.md).
#
#   bench/run.sh [--quick] [--rounds N] [--only W1,W2] [--threads 1,2]
#
# Environment:
#   TROUPE_BENCH_DIR   where troupe's bench binaries (w0_switch, w1_pingpong,
#                      ..., w8_echo_server) live; default: this script's dir
#   BENCH_BUILD_DIR    where peers are built; default: $TROUPE_BENCH_DIR/build
#   BENCH_RESULTS_DIR  where latest.csv goes; default: <this dir>/results
#   BENCH_NO_INSTALL=1 never apt-get install missing peer toolchains
#
# Every program prints `RESULT <workload> <system> <threads> <value> <unit>`
# lines on stdout.  This script runs troupe and the peers alternately, takes
# the median per (workload, system, threads), prints a table and writes
# $BENCH_RESULTS_DIR/latest.csv.  Exit status 1 if any program failed.

# `make bench` runs this with $(SHELL), which may be a POSIX sh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS=$SCRIPT_DIR/peers
TROUPE_BENCH_DIR=${TROUPE_BENCH_DIR:-$SCRIPT_DIR}
TROUPE_BENCH_DIR=$(cd "$TROUPE_BENCH_DIR" && pwd)
BUILD=${BENCH_BUILD_DIR:-$TROUPE_BENCH_DIR/build}
RESULTS=${BENCH_RESULTS_DIR:-$SCRIPT_DIR/results}

QUICK=0
ROUNDS=
ONLY=
THREADS_LIST="1 2"
usage() {
    sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift ;;
        --rounds=*) ROUNDS=${1#*=} ;;
        --only) ONLY=${2:?--only needs a value}; shift ;;
        --only=*) ONLY=${1#*=} ;;
        --threads) THREADS_LIST=${2:?--threads needs a value}; shift ;;
        --threads=*) THREADS_LIST=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
THREADS_LIST=${THREADS_LIST//,/ }
if [ -z "$ROUNDS" ]; then
    if [ "$QUICK" = 1 ]; then ROUNDS=2; else ROUNDS=5; fi
fi
case $ROUNDS in ''|*[!0-9]*|0) echo "run.sh: bad --rounds: $ROUNDS" >&2; exit 2 ;; esac

ALL_WORKLOADS="W0 W1 W2 W3 W4 W5 W6 W7 W8"
WORKLOADS=
if [ -n "$ONLY" ]; then
    for w in ${ONLY//,/ }; do
        w=${w^^}
        case " $ALL_WORKLOADS " in
            *" $w "*) WORKLOADS="$WORKLOADS $w" ;;
            *) echo "run.sh: unknown workload in --only: $w" >&2; exit 2 ;;
        esac
    done
else
    WORKLOADS=$ALL_WORKLOADS
fi

if [ "$QUICK" = 1 ]; then
    QARG=(--quick); ERL_QARG=(quick); W8_SECONDS=2; TMO=90
else
    QARG=(); ERL_QARG=(); W8_SECONDS=10; TMO=300
fi

mkdir -p "$BUILD/logs"
LOG=$BUILD/logs/run.log
RAW=$BUILD/raw-results.txt
: >"$LOG"
: >"$RAW"
NOTES=()
FAILED=0
note() { NOTES+=("$*"); echo "note: $*" >&2; }
say() { echo "== $*" >&2; }
START_SECONDS=$SECONDS

# ---------------------------------------------------------------- toolchains
can_install() {
    [ "${BENCH_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1 &&
        { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }
}
APT_UPDATED=0
apt_install() {    # apt_install pkg...
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
    say "installing $*"
    if DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install "${opts[@]}" "$@" >>"$LOG" 2>&1; then
        return 0
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        APT_UPDATED=1
        "${sudo[@]}" apt-get update -q >>"$LOG" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install "${opts[@]}" "$@" >>"$LOG" 2>&1 && return 0
    fi
    return 1
}
# ensure <peer> <check-command> <packages...>: true if the check passes,
# possibly after installing the packages.
ensure() {
    local peer=$1 check=$2; shift 2
    if eval "$check" >/dev/null 2>&1; then return 0; fi
    if can_install && apt_install "$@" && eval "$check" >/dev/null 2>&1; then return 0; fi
    note "$peer skipped: missing toolchain (Debian packages: $*)"
    return 1
}
have_lib() { [ -n "$(ls /usr/lib/*/"$1" /usr/lib/"$1" /usr/local/lib/"$1" 2>/dev/null | head -1)" ]; }
have_uv() { pkg-config --exists libuv 2>/dev/null || [ -f /usr/include/uv.h ]; }

HAVE_BOOST=0 HAVE_GO=0 HAVE_ERLANG=0 HAVE_CAF=0 HAVE_LIBUV=0
needs() {   # needs <workload...>: is any of them selected?
    local w
    for w in "$@"; do case " $WORKLOADS " in *" $w "*) return 0 ;; esac; done
    return 1
}
if needs W0 && ensure boost "command -v g++ && [ -f /usr/include/boost/context/fiber.hpp ] && have_lib libboost_context.so" \
        g++ libboost-context-dev; then HAVE_BOOST=1; fi
if needs W1 W2 W3 W4 W5 W7 W8 && ensure go "command -v go" golang-go; then HAVE_GO=1; fi
if needs W1 W2 W3 W4 W5 W6 W7 W8 && ensure erlang "command -v erl && command -v erlc" erlang-base erlang-dev; then HAVE_ERLANG=1; fi
if needs W1 W2 W3 W4 && ensure caf "command -v g++ && [ -f /usr/include/caf/all.hpp ] && have_lib libcaf_core.so" \
        g++ libcaf-dev; then HAVE_CAF=1; fi
if needs W8 && ensure "libuv (W8 server and load client)" "command -v gcc && command -v pkg-config && have_uv" \
        gcc pkg-config libuv1-dev; then HAVE_LIBUV=1; fi

# ---------------------------------------------------------------- build
# newer <out> <src...>: true if out exists and is newer than every source
newer() {
    local out=$1 s; shift
    [ -e "$out" ] || return 1
    for s in "$@"; do [ "$out" -nt "$s" ] || return 1; done
}
uv_flags() { pkg-config --cflags --libs libuv 2>/dev/null || echo -luv; }

build_boost() {
    mkdir -p "$BUILD/boost"
    newer "$BUILD/boost/w0_switch" "$PEERS/boost/w0_switch.cpp" && return 0
    g++ -O2 -std=c++17 -o "$BUILD/boost/w0_switch" "$PEERS/boost/w0_switch.cpp" -lboost_context
}
build_go() {
    mkdir -p "$BUILD/go"
    local d
    for d in bench echo; do
        newer "$BUILD/go/go-$d" "$PEERS/go/$d"/*.go && continue
        (cd "$PEERS/go/$d" &&
            GO111MODULE=off GOFLAGS='' GOCACHE="$BUILD/go/cache" GOPATH="$BUILD/go/path" \
                go build -o "$BUILD/go/go-$d" .) || return 1
    done
}
build_erlang() {
    mkdir -p "$BUILD/erlang"
    newer "$BUILD/erlang/bench_erl.beam" "$PEERS"/erlang/*.erl && return 0
    erlc -o "$BUILD/erlang" "$PEERS"/erlang/*.erl
}
build_caf() {
    mkdir -p "$BUILD/caf"
    newer "$BUILD/caf/caf-bench" "$PEERS/caf/caf_bench.cpp" && return 0
    g++ -O2 -std=c++17 -o "$BUILD/caf/caf-bench" "$PEERS/caf/caf_bench.cpp" -lcaf_core -lpthread
}
build_libuv() {
    mkdir -p "$BUILD/libuv"
    local f
    for f in w8_echo_server:w8_echo_libuv w8_client:w8_client; do
        newer "$BUILD/libuv/${f#*:}" "$PEERS/libuv/${f%%:*}.c" && continue
        # shellcheck disable=SC2046
        gcc -O2 -o "$BUILD/libuv/${f#*:}" "$PEERS/libuv/${f%%:*}.c" $(uv_flags) || return 1
    done
}
say "building peers into $BUILD"
declare -A BUILD_PID=()
for p in boost go erlang caf libuv; do
    v=HAVE_${p^^}
    [ "${!v}" = 1 ] || continue
    build_$p >"$BUILD/logs/build-$p.log" 2>&1 &
    BUILD_PID[$p]=$!
done
for p in "${!BUILD_PID[@]}"; do
    if ! wait "${BUILD_PID[$p]}"; then
        v=HAVE_${p^^}
        printf -v "$v" 0
        note "$p skipped: build failed (see $BUILD/logs/build-$p.log)"
        tail -5 "$BUILD/logs/build-$p.log" >&2 || true
    fi
done
if [ "$HAVE_LIBUV" = 0 ] && needs W8; then note "W8 skipped: no load client (needs libuv)"; fi
say "build done after $((SECONDS - START_SECONDS)) s"

# ---------------------------------------------------------------- running
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROUND=0
# record <label> <stdout-file> <exit status>: keep RESULT lines
record() {
    local label=$1 out=$2 rc=$3 n=0 line f
    while IFS= read -r line; do
        case $line in
            "RESULT "*)
                read -r -a f <<<"$line"
                if [ "${#f[@]}" -eq 6 ]; then
                    echo "$ROUND ${f[1]} ${f[2]} ${f[3]} ${f[4]} ${f[5]}" >>"$RAW"
                    echo "   $line" >&2
                    n=$((n + 1))
                fi ;;
        esac
    done <"$out"
    if [ "$n" = 0 ] && [ "$rc" = 0 ]; then
        note "$label printed no RESULT line"
        FAILED=1
    fi
}
# run_prog <label> <cmd...>: run one measurement program under a timeout
run_prog() {
    local label=$1 out rc=0; shift
    out=$BUILD/logs/last.out
    echo "### $label: $*" >>"$LOG"
    (cd "$BUILD" && timeout -k 5 "$TMO" "$@") >"$out" 2>>"$LOG" || rc=$?
    if [ "$rc" != 0 ]; then
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            note "$label timed out after ${TMO}s"
        else
            note "$label failed (exit $rc, see $LOG)"
        fi
        FAILED=1
    fi
    record "$label" "$out" "$rc"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports come from below the kernel's ephemeral range (32768+ by default),
# where the load client's own connections, lingering in TIME_WAIT from the
# previous round, would make the server's bind fail.
free_port() {
    local p i lo=10000 hi=32000 eph
    eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    if [ "$eph" -le "$hi" ] 2>/dev/null; then hi=$((eph - 1)); lo=$((hi / 2)); fi
    for i in $(seq 1 50); do
        p=$((lo + RANDOM % (hi - lo)))
        port_open "$p" || { echo "$p"; return 0; }
    done
    echo 34567
}
# In the 1-thread pass the server and the load client get a CPU each
# (taskset), so that neither measures the other's scheduling on a small
# machine; with more threads the server may use every CPU.
w8_pin() { # <threads> <server|client>: the command prefix, or nothing
    local ncpu
    ncpu=$(nproc 2>/dev/null || echo 1)
    [ "$1" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null || return 0
    if [ "$2" = server ]; then echo "taskset -c 0"; else echo "taskset -c 1"; fi
}
# run_w8 <system> <threads> <server cmd with @PORT@...>
run_w8() {
    local sys=$1 t=$2; shift 2
    local port a cmd=() i pin_s pin_c
    port=$(free_port)
    read -r -a pin_s <<<"$(w8_pin "$t" server)"
    read -r -a pin_c <<<"$(w8_pin "$t" client)"
    cmd+=("${pin_s[@]}")
    for a in "$@"; do cmd+=("${a//@PORT@/$port}"); done
    echo "### W8 server $sys/$t: ${cmd[*]}" >>"$LOG"
    (cd "$BUILD" && exec "${cmd[@]}") >>"$LOG" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 200); do
        port_open "$port" && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    if ! port_open "$port"; then
        note "W8 $sys/$t: server did not start listening on $port"
        FAILED=1
    else
        run_prog "W8 $sys/$t" "${pin_c[@]}" "$BUILD/libuv/w8_client" --port "$port" --conns 100 --size 64 \
            --seconds "$W8_SECONDS" --system "$sys" --threads "$t"
    fi
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# troupe's binaries for a workload: $TROUPE_BENCH_DIR/wN_* (any name, e.g.
# w1_pingpong, w3_spawn + w3_skynet), plus idle_million for W5.
troupe_bins() {
    local w=$1 n f found=0
    n=${w#W}
    for f in "$TROUPE_BENCH_DIR"/w"${n}"_*; do
        case ${f##*/} in *.*|w8_echo_server) continue ;; esac
        if [ -f "$f" ] && [ -x "$f" ]; then echo "$f"; found=1; fi
    done
    if [ "$w" = W5 ] && [ "$found" = 0 ] && [ -x "$TROUPE_BENCH_DIR/idle_million" ]; then
        echo "$TROUPE_BENCH_DIR/idle_million"
    fi
}
declare -A MISSING_NOTED=()
missing_troupe() {
    if [ -z "${MISSING_NOTED[$1]:-}" ]; then
        MISSING_NOTED[$1]=1
        note "troupe $1 skipped: no binary $2 in $TROUPE_BENCH_DIR"
    fi
}

# The default limit of 262144 processes is below skynet's 1.11M (it hangs on
# system_limit); +P only sizes the process table.
ERL_PROCS=2097152

# systems <workload> <threads>: the order troupe and peers run in
systems() {
    local w=$1 t=$2 s=(troupe)
    case $w in
        W0) [ "$HAVE_BOOST" = 1 ] && s+=(boost) ;;
        W1|W2|W3|W4)
            [ "$HAVE_GO" = 1 ] && s+=(go); [ "$HAVE_ERLANG" = 1 ] && s+=(erlang)
            [ "$HAVE_CAF" = 1 ] && s+=(caf) ;;
        W5|W7) [ "$HAVE_GO" = 1 ] && s+=(go); [ "$HAVE_ERLANG" = 1 ] && s+=(erlang) ;;
        W6) [ "$HAVE_ERLANG" = 1 ] && s+=(erlang) ;;
        W8) [ "$HAVE_LIBUV" = 1 ] || { echo; return; }
            [ "$t" = 1 ] && s+=(libuv)
            [ "$HAVE_GO" = 1 ] && s+=(go); [ "$HAVE_ERLANG" = 1 ] && s+=(erlang) ;;
    esac
    echo "${s[@]}"
}

run_one() {   # run_one <workload> <system> <threads>
    local w=$1 sys=$2 t=$3 b bins
    case $w:$sys in
        W8:troupe)
            if [ -x "$TROUPE_BENCH_DIR/w8_echo_server" ]; then
                run_w8 troupe "$t" "$TROUPE_BENCH_DIR/w8_echo_server" --port @PORT@ --threads "$t"
            else
                missing_troupe W8 w8_echo_server
            fi ;;
        W8:libuv) run_w8 libuv 1 "$BUILD/libuv/w8_echo_libuv" --port @PORT@ ;;
        W8:go) run_w8 go "$t" env GOMAXPROCS="$t" "$BUILD/go/go-echo" --port @PORT@ --threads "$t" ;;
        W8:erlang) run_w8 erlang "$t" erl -noshell +S "$t:$t" +P "$ERL_PROCS" -pa "$BUILD/erlang" \
                       -run bench_erl main W8server @PORT@ ;;
        *:troupe)
            bins=$(troupe_bins "$w")
            if [ -z "$bins" ]; then missing_troupe "$w" "${w,,}_*"; return 0; fi
            for b in $bins; do
                run_prog "$w troupe/$t ${b##*/}" "$b" "${QARG[@]}" --threads "$t"
            done ;;
        W0:boost) run_prog "W0 boost" "$BUILD/boost/w0_switch" "${QARG[@]}" ;;
        *:go) run_prog "$w go/$t" env GOMAXPROCS="$t" "$BUILD/go/go-bench" "$w" "${QARG[@]}" --threads "$t" ;;
        *:erlang) run_prog "$w erlang/$t" erl -noshell +S "$t:$t" +P "$ERL_PROCS" -pa "$BUILD/erlang" \
                      -run bench_erl main "$w" "${ERL_QARG[@]}" ;;
        *:caf) run_prog "$w caf/$t" "$BUILD/caf/caf-bench" "$w" "${QARG[@]}" --threads "$t" ;;
    esac
}

say "running: workloads$WORKLOADS; threads $THREADS_LIST; $ROUNDS round(s)$([ "$QUICK" = 1 ] && echo ', quick')"
# Rounds are the outer loop: each round runs every workload once, so that
# the medians of all workloads (and so the ratios between them, W7 against
# W1) sample the same stretch of time, and a busy spell of the host costs
# every workload a round rather than one workload its whole series.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for t in $THREADS_LIST; do
        for w in $WORKLOADS; do
            [ "$w" = W0 ] && [ "$t" != 1 ] && continue   # a raw switch is single-threaded
            read -r -a syss <<<"$(systems "$w" "$t")"
            [ "${#syss[@]}" -gt 0 ] || continue
            say "round $ROUND/$ROUNDS: $w, $t thread(s)"
            # alternate troupe and the peers; rotate the order every round
            n=${#syss[@]}
            for ((i = 0; i < n; i++)); do
                run_one "$w" "${syss[(i + ROUND - 1) % n]}" "$t"
            done
        done
    done
done

# ---------------------------------------------------------------- report
mkdir -p "$RESULTS" 2>/dev/null || true
if [ ! -w "$RESULTS" ]; then
    note "$RESULTS is not writable; writing results to $BUILD/results"
    RESULTS=$BUILD/results
    mkdir -p "$RESULTS"
fi
ORDER="W0 W0-yield W1 W2 W3 W3-skynet W4 W5 W5-1M W5-hib W5-hib-1M W6 W6-p99 W6-so W6-so-p99 W7 W8"
PEER_ORDER="boost go erlang caf libuv"
awk -v order="$ORDER" -v peers="$PEER_ORDER" -v csv="$RESULTS/latest.csv.tmp" '
function median(key,    n, i, j, tmp, a) {
    n = split(vals[key], a, " ")
    for (i = 2; i <= n; i++) {           # insertion sort
        tmp = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > tmp; j--) a[j + 1] = a[j]
        a[j + 1] = tmp
    }
    if (n % 2) return a[(n + 1) / 2] + 0
    return (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v) {
    if (v >= 1e6) return sprintf("%.2fM", v / 1e6)
    if (v >= 1e4) return sprintf("%.1fk", v / 1e3)
    return sprintf("%.4g", v)
}
{
    key = $2 SUBSEP $3 SUBSEP $4
    vals[key] = vals[key] " " $5
    unit[$2] = $6
    seen_sys[$3] = 1
    seen_w[$2] = 1
    thr[$4] = 1
}
END {
    nw = split(order, W, " ")
    # workloads reported that are not in the known order go last
    for (w in seen_w) { known = 0; for (i = 1; i <= nw; i++) if (W[i] == w) known = 1; if (!known) W[++nw] = w }
    np = 0
    n = split(peers, P0, " ")
    for (i = 1; i <= n; i++) if (P0[i] in seen_sys) P[++np] = P0[i]
    for (s in seen_sys) { if (s == "troupe") continue; known = 0
        for (i = 1; i <= n; i++) if (P0[i] == s) known = 1
        if (!known) P[++np] = s }
    nt = 0
    for (t in thr) T[++nt] = t + 0
    for (i = 2; i <= nt; i++) { tmp = T[i]; for (j = i - 1; j >= 1 && T[j] > tmp; j--) T[j + 1] = T[j]; T[j + 1] = tmp }

    print "workload,system,threads,value,unit" > csv
    hdr = sprintf("%-10s %3s %-18s %10s", "workload", "thr", "unit", "troupe")
    for (i = 1; i <= np; i++) hdr = hdr sprintf(" %10s %8s", P[i], "t/" P[i])
    print hdr
    line = hdr; gsub(/./, "-", line); print line
    for (i = 1; i <= nw; i++) for (k = 1; k <= nt; k++) {
        w = W[i]; t = T[k]; any = 0
        tk = w SUBSEP "troupe" SUBSEP t
        tv = (tk in vals) ? median(tk) : ""
        if (tv != "") { any = 1; printf "%s,troupe,%s,%.2f,%s\n", w, t, tv, unit[w] > csv }
        row = sprintf("%-10s %3s %-18s %10s", w, t, unit[w], tv == "" ? "-" : fmt(tv))
        for (j = 1; j <= np; j++) {
            pk = w SUBSEP P[j] SUBSEP t
            if (pk in vals) {
                any = 1; pv = median(pk)
                printf "%s,%s,%s,%.2f,%s\n", w, P[j], t, pv, unit[w] > csv
                ratio = (tv != "" && pv != 0) ? sprintf("%.2f", tv / pv) : "-"
                row = row sprintf(" %10s %8s", fmt(pv), ratio)
            } else row = row sprintf(" %10s %8s", "-", "-")
        }
        if (any) print row
    }
    close(csv)
}' "$RAW"
mv "$RESULTS/latest.csv.tmp" "$RESULTS/latest.csv"
echo
echo "medians of $ROUNDS round(s); t/<peer> = troupe / peer (time units: lower is better for troupe;"
echo "msgs/s: higher is better).  CSV: $RESULTS/latest.csv   log: $LOG"
if [ "${#NOTES[@]}" -gt 0 ]; then
    echo "notes:"
    printf '  %s\n' "${NOTES[@]}"
fi
echo "total time: $((SECONDS - START_SECONDS)) s"
exit "$FAILED"
