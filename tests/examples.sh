#!/bin/sh
# Runs the small examples and checks what they print (the programs the
# README and doc/getting-started.md show must keep doing what they say).
set -eu
# The examples run with the default placement (local), whatever the suite's
# multi-scheduler mode says: what they print relies on a child running
# after its spawner blocks (TR_PLACEMENT=round_robin runs it at once, in
# parallel, on another thread).
unset TR_PLACEMENT
b=${builddir:-.}/examples
fail=0
expect() { # program, expected substring
  out=$("$b/$1" 2>&1) || { echo "FAIL: $1 exited $?"; echo "$out"; fail=1; return; }
  case "$out" in
    *"$2"*) echo "ok: $1 prints '$2'" ;;
    *) echo "FAIL: $1 did not print '$2'"; echo "$out"; fail=1 ;;
  esac
}
expect hello_actors "DOWN from"
expect hello_actors "all actors exited"
expect first_program "hello, world"
expect first_program "crasher died: segv"
expect counter_server "total 6"
# The supervision demo (the README's first command): every crash kind and
# an escalation show up in its summary, and it exits 0 by itself.
demo=$("$b/supervision_demo" --seed 1 2>&1) || { echo "FAIL: supervision_demo exited $?"; fail=1; }
for want in "stack_overflow  *[1-9]" "segv  *[1-9]" "fpe  *[1-9]" \
            "abort  *[1-9]" " [1-9][0-9]* escalation" "final tree"; do
  if printf '%s\n' "$demo" | grep -q -- "$want"; then
    echo "ok: supervision_demo summary matches '$want'"
  else
    echo "FAIL: supervision_demo summary lacks '$want'"; fail=1
  fi
done
exit $fail
