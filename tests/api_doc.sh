#!/bin/sh
# Every public function (declared with TR_EXTERN in include/troupe.h) must
# be documented in doc/api.md. Lists the missing ones and fails otherwise.
# automake sets $srcdir; run by hand it defaults to this script's dir/..
set -eu
top=${srcdir:-$(dirname "$0")/..}
header=$top/include/troupe.h
doc=$top/doc/api.md
for f in "$header" "$doc"; do
  if [ ! -r "$f" ]; then
    echo "FAIL: cannot read $f (set srcdir to the source tree)"
    exit 1
  fi
done

# Join each declaration that starts with TR_EXTERN up to its ';', then take
# the identifier just before the first '('. (The #define lines of the macro
# itself do not start with TR_EXTERN.)
names=$(awk '
  /^[ \t]*TR_EXTERN[ \t]/ { decl = ""; collecting = 1 }
  collecting { decl = decl " " $0 }
  collecting && /;/ { print decl; collecting = 0 }
' "$header" |
  sed -n 's/^[^(]*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)[ \t]*(.*/\1/p' |
  sort -u)

count=$(printf '%s\n' "$names" | grep -c . || true)
if [ "$count" -lt 1 ]; then
  echo "FAIL: no TR_EXTERN declarations found in $header"
  exit 1
fi

missing=
for n in $names; do
  # a whole-identifier match: tr_spawn does not count as tr_spawn_link
  if ! grep -Eq "(^|[^A-Za-z0-9_])$n([^A-Za-z0-9_]|\$)" "$doc"; then
    missing="$missing $n"
  fi
done

if [ -n "$missing" ]; then
  echo "FAIL: public functions not documented in doc/api.md:"
  for n in $missing; do echo "  $n"; done
  exit 1
fi
echo "ok: all $count TR_EXTERN functions of troupe.h appear in doc/api.md"
