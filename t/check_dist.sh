#!/bin/sh
# t/check_dist.sh SRCDIR DISTDIR: every file git tracks in SRCDIR is in the
# distribution (DISTDIR, the unpacked tarball), so that nothing a build,
# a test or a reader needs is left out of EXTRA_DIST and friends.
# `make distcheck` runs it (distcheck-hook). Does nothing when SRCDIR is
# not a git checkout (a build from the tarball itself) or git is missing.
#
# Files that are deliberately not distributed are listed below.
set -eu
[ $# = 2 ] || { echo "usage: $0 SRCDIR DISTDIR" >&2; exit 2; }
src=$1
dist=$2
if ! command -v git >/dev/null 2>&1 ||
    ! git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "check_dist: $src is not a git checkout: not checked"
    exit 0
fi
not_distributed='^(\.gitignore|.*/\.gitignore)$'
missing=$(git -C "$src" ls-files | grep -Ev "$not_distributed" |
    while IFS= read -r f; do
        [ -e "$dist/$f" ] || printf '%s\n' "$f"
    done)
if [ -n "$missing" ]; then
    echo "check_dist: tracked by git but missing from the distribution:"
    printf '  %s\n' $missing
    echo "check_dist: add them to EXTRA_DIST (or the fragment's dist_ lists)," \
        "or to not_distributed in t/check_dist.sh"
    exit 1
fi
echo "check_dist: every file git tracks is in the distribution"
