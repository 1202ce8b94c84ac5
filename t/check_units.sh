#!/bin/sh
# tide-echod's systemd units (samples/echod/tide-echod.socket and the
# tide-echod.service that `make` generates from tide-echod.service.in)
# pass `systemd-analyze verify`, with nothing to say: it exits 0 even for
# a misspelt setting or a dependency it cannot add, and only prints a
# warning, so any output fails the test too. Skipped (exit 77) where
# systemd-analyze is not installed (Debian: the systemd package).
#
# The generated service's ExecStart must name the installed binary
# (@bindir@ substituted); verify wants it to exist, so the copy verified
# here runs the built one instead. --man=no: the man page of
# Documentation= is not installed yet.
#
# Run by `make check` from the build directory.
set -u
. ./t/testenv.sh

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze is not installed (Debian: apt-get install systemd)"
    exit 77
fi

service=$top_builddir/samples/echod/tide-echod.service
socket=$top_srcdir/samples/echod/tide-echod.socket
built=$top_builddir/samples/tide-echod
[ -f "$service" ] || { echo "check_units: $service not built" >&2; exit 99; }
failed=0
fail() { echo "FAIL: $*"; failed=1; }

exec_line=$(grep '^ExecStart=' "$service")
case $exec_line in
*@*) fail "ExecStart not substituted: $exec_line" ;;
ExecStart=/*/tide-echod | ExecStart=/*/tide-echod\ *) ;;
*) fail "ExecStart is not an absolute path to tide-echod: $exec_line" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-units.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=[^ ]*/tide-echod|ExecStart=$built|" "$service" \
    >"$tmp/tide-echod.service"
cp "$socket" "$tmp/tide-echod.socket"
out=$(cd "$tmp" && systemd-analyze verify --man=no \
    ./tide-echod.socket ./tide-echod.service 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    fail "systemd-analyze verify: exit $rc"
    printf '%s\n' "$out"
else
    echo "ok: tide-echod.socket and tide-echod.service pass systemd-analyze verify"
fi
exit $failed
