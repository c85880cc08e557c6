#!/bin/sh
# Runs the small examples and checks what they print (the programs the
# README and doc/getting-started.md show must keep doing what they say).
set -eu
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
exit $fail
