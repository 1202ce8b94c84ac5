#!/bin/sh
# Every public symbol is documented: runs Doxygen on the public headers
# with the configuration `make doc` uses (doc/Doxyfile: WARN_IF_UNDOCUMENTED,
# and any warning is an error), writing only man pages, to a temporary
# directory. Fails on any Doxygen warning and shows it.
#
# Skipped (exit 77) when configure found no doxygen.
set -eu
. ./t/testenv.sh

if [ -z "$DOXYGEN" ]; then
    echo "SKIP: configure found no doxygen: the API reference was not checked"
    exit 77
fi
[ -f doc/Doxyfile ] || { echo "check_doc: doc/Doxyfile missing (run configure)" >&2; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-doc.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

status=0
{
    cat doc/Doxyfile
    echo "OUTPUT_DIRECTORY = $tmp"
    echo "GENERATE_HTML = NO"
} | "$DOXYGEN" - >"$tmp/log" 2>&1 || status=$?
if [ "$status" != 0 ] || [ -s "$tmp/log" ]; then
    cat "$tmp/log"
    echo "FAIL: Doxygen found problems in the public headers (above); each public"
    echo "      symbol needs a comment right above it (see doc/doxyfilter.awk)"
    exit 1
fi
pages=$(find "$tmp/man" -name '*.3' | wc -l)
echo "ok: every public symbol is documented ($pages man pages generated)"
