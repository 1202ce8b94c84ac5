#!/bin/bash
# t/fresh-debian.sh: the README's quick start on a freshly installed Debian 12
# (bookworm), then CI, the way a new user and a CI machine meet tide.
#
#   t/fresh-debian.sh [--dir DIR] [--mirror URL] [--only user|root]
#                     [--no-ci] [--keep]
#
# Run as root on a machine with debootstrap (installed with apt-get if
# missing) and a Debian mirror (by default the one /etc/apt/sources.list*
# names). Not part of `make check` or CI: it takes from ten minutes (the
# quick starts) to an hour (with .ci/run).
#
# What it does:
#   - debootstraps a minimal bookworm (--variant=minbase) into DIR/base
#     (default DIR: a new /var/tmp/tide-fresh-debian.XXXXXX; downloads are
#     cached in /var/tmp/tide-fresh-debian-cache) and adds only what the
#     issue's new user had: git, sudo, a user `tester` allowed to sudo
#     without a password, Debian's standard /etc/hosts (localhost is both
#     127.0.0.1 and ::1) and the host's resolv.conf;
#   - for each case, user (tester, through sudo) and then root, copies that
#     root afresh (DIR/user, DIR/root), bind-mounts /proc, /sys and /dev
#     into it, clones the repository's committed HEAD into it (through a
#     mirror in /srv/tide.git, owned by the one who clones), and in one
#     bash, in the clone, runs the two commands of README.md's quick start
#     exactly as they are written there (they are read from the clone's
#     README.md). The first ends running the echo daemon in the
#     foreground: a watcher in the same shell waits until 127.0.0.1:7000
#     echoes a line, then stops the daemon with SIGINT as Ctrl-C would;
#   - in the root case, then runs .ci/run in the same clone (--no-ci: not);
#   - unmounts everything it mounted when it ends, also on failure or
#     interruption (trap), and removes the roots (--keep: keeps them).
#     DIR keeps one log per case.
#
# Prints, at the end, one line per step and a closing "fresh-debian: PASS"
# or "fresh-debian: FAIL"; exits non-zero on failure.
#
# The chroot shares the host's network: 127.0.0.1:7000 must be free, and
# the tests inside use ports as they do on the host.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir= mirror= only= ci=yes keep=no
usage() {
    sed -n '4,5p' "$0" | sed 's/^# *//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --mirror) mirror=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --no-ci) ci=no; shift ;;
    --keep) keep=yes; shift ;;
    *) usage ;;
    esac
done
case $only in ""|user|root) ;; *) usage ;; esac
say() { echo "fresh-debian: $*"; }
die() { say "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mount need it)"
# The commit tested, fixed now: others may commit while this runs.
rev=$(git -C "$top" rev-parse --verify -q HEAD) || die "$top: not a git repository"
if (exec 3<>/dev/tcp/127.0.0.1/7000) 2>/dev/null; then
    die "something already listens on 127.0.0.1:7000, the quick start's port"
fi
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The host's mirrors (deb822 .sources or one-line .list), so that a machine
# whose only way out is its configured mirror can debootstrap too.
host_uri() { # suite: the first URI the host's apt uses for it
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case $f in
        *.sources)
            awk -v want="$1" '
                /^[ \t]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
                /^URIs:/ { uri = $2 }
                /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) hit = 1 }
                END { if (uri != "" && hit) print uri }' "$f" ;;
        *)
            awk -v want="$1" '$1 == "deb" {
                    i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++
                    if ($i ~ /^\[/ || $i ~ /\]$/) i++
                    if ($(i + 1) == want) { print $i; exit } }' "$f" ;;
        esac
    done | head -n 1
}
[ -n "$mirror" ] || mirror=$(host_uri bookworm)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
security=$(host_uri bookworm-security)
[ -n "$security" ] || security=http://deb.debian.org/debian-security

work=${dir:-$(mktemp -d /var/tmp/tide-fresh-debian.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cache=/var/tmp/tide-fresh-debian-cache
mkdir -p "$cache"

# ---- mounts, and undoing them whatever happens ------------------------------
mounted=""
mount_root() {
    local r=$1
    mount -t proc proc "$r/proc"
    mounted="$r/proc $mounted"
    mount --rbind /sys "$r/sys"
    mount --make-rslave "$r/sys"
    mounted="$r/sys $mounted"
    mount --rbind /dev "$r/dev"
    mount --make-rslave "$r/dev"
    mounted="$r/dev $mounted"
}
# Processes still running inside the roots (a daemon, a test), found by
# their root directory: they would keep the mounts busy.
kill_inside() {
    local p root
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        case $root in "$work"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
    done
}
umount_all() {
    local m
    [ -n "$mounted" ] || return 0
    kill_inside
    for m in $mounted; do
        umount -R "$m" 2>/dev/null || umount -R -l "$m" || say "cannot unmount $m"
    done
    mounted=""
}
still_mounted() { grep -q " $1[/ ]" /proc/mounts; }
remove_root() {
    local r=$1
    if still_mounted "$r"; then
        say "$r still has mounts: not removed"
        return 0
    fi
    rm -rf --one-file-system "$r"
}
cleanup() {
    local st=$?
    trap - EXIT INT TERM
    umount_all
    if [ "$keep" = no ]; then
        for r in "$work/base" "$work/user" "$work/root"; do
            [ -d "$r" ] && remove_root "$r"
        done
    fi
    exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_root() { # root, command...: as root inside, with a login's environment
    local r=$1
    shift
    chroot "$r" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# ---- the fresh machine -------------------------------------------------------
base=$work/base
say "debootstrap bookworm (minbase) from $mirror into $base"
debootstrap --variant=minbase --cache-dir="$cache" bookworm "$base" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log"
    die "debootstrap failed (log: $work/debootstrap.log)"
}
hostname=$(cat /proc/sys/kernel/hostname)
# Debian's /etc/hosts as the installer writes it.
cat >"$base/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$hostname

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
EOF
cp -L /etc/resolv.conf "$base/etc/resolv.conf"
cat >"$base/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
mount_root "$base"
in_root "$base" sh -c 'apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends git sudo >/dev/null &&
    apt-get clean &&
    useradd -m -s /bin/bash tester &&
    echo "tester ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/tester &&
    chmod 0440 /etc/sudoers.d/tester' >"$work/base.log" 2>&1 || {
    tail -n 30 "$work/base.log"
    die "setting up the base system failed"
}
umount_all

# ---- the quick start, as typed ------------------------------------------------
# The generated script: clone, then README's two lines verbatim, with a
# watcher that plays the user trying the daemon and pressing Ctrl-C.
quickstart_script() {
    cat <<'EOF'
#!/bin/bash
# Written by t/fresh-debian.sh.
watch_daemon() { # the quick start's shell
    local shell=$1 line p ppid comm
    for _ in $(seq 3600); do
        if { exec 3<>/dev/tcp/127.0.0.1/7000; } 2>/dev/null; then
            printf 'fresh-debian ping\n' >&3
            if IFS= read -r -t 10 line <&3 && [ "$line" = "fresh-debian ping" ]; then
                echo "fresh-debian: the daemon echoed on 127.0.0.1:7000" >/tmp/daemon-answered
            fi
            exec 3>&-
            break
        fi
        sleep 1
    done
    # Ctrl-C: SIGINT to the daemon, the shell's foreground command.
    for p in /proc/[0-9]*; do
        read -r comm <"$p/comm" 2>/dev/null || continue
        ppid=$(sed 's/^.*) [A-Za-z] \([0-9]*\) .*$/\1/' "$p/stat" 2>/dev/null) || continue
        case $comm in *tide-echod) [ "$ppid" = "$shell" ] && kill -INT "${p#/proc/}" ;; esac
    done
}
cd ~ && git clone -q /srv/tide.git tide && cd tide || exit 1
echo "fresh-debian: $(id -un) in $PWD, commit $(git rev-parse --short HEAD)"
rm -f /tmp/daemon-answered
watch_daemon $$ &
watcher=$!
EOF
    echo "$1"
    cat <<'EOF'
st=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
echo "fresh-debian: first command exited $st"
cat /tmp/daemon-answered 2>/dev/null || echo "fresh-debian: the daemon never echoed on 127.0.0.1:7000"
EOF
    echo "$2"
    cat <<'EOF'
echo "fresh-debian: second command exited $?"
EOF
}

# README.md's quick start: the first indented block after "## Quick start".
git -C "$top" show "$rev:README.md" | awk '
    /^## Quick start/ { s = 1; next }
    s && /^## / { exit }
    s && /^    / { sub(/^    /, ""); print; b = 1; next }
    s && b { exit }' >"$work/quickstart.txt"
[ "$(wc -l <"$work/quickstart.txt")" = 2 ] ||
    die "README.md's quick start is not two commands: $(cat "$work/quickstart.txt")"
cmd1=$(sed -n 1p "$work/quickstart.txt")
cmd2=$(sed -n 2p "$work/quickstart.txt")
say "quick start, from README.md:"
sed 's/^/    /' "$work/quickstart.txt"

summary=""
failed=0
# The test programs a log reports failing (.ci/test's "---- NAME (FAIL) ----").
failing_tests() {
    sed -n 's/^---- \(.*\) (\([A-Z]*\)) ----$/ \1 (\2)/p' "$1" | tr -d '\n'
}
note() { summary="$summary$*"$'\n'; }

# run_logged LOG PREFIX COMMAND...: COMMAND's output into LOG and, prefixed,
# to stdout; its exit status. In the background, waited for: a signal to
# this script interrupts `wait` (not a foreground command), so the trap
# runs at once.
run_logged() {
    local log=$1 prefix=$2
    shift 2
    (set -o pipefail; "$@" 2>&1 | tee "$log" | sed -u "s/^/$prefix /") &
    wait $!
}

run_case() { # user|root
    local c=$1 r=$work/$1 who home log st
    [ "$c" = user ] && who=tester home=/home/tester || who=root home=/root
    log=$work/$c.log
    rm -rf --one-file-system "$r"
    cp -a "$base" "$r"
    git clone -q --mirror "$top" "$r/srv/tide.git"
    git -C "$r/srv/tide.git" update-ref "$(git -C "$r/srv/tide.git" symbolic-ref HEAD)" "$rev"
    chown -R "$(chroot "$r" id -u "$who"):$(chroot "$r" id -g "$who")" "$r/srv/tide.git"
    quickstart_script "$cmd1" "$cmd2" >"$r/tmp/quickstart.sh"
    chmod 0755 "$r/tmp/quickstart.sh"
    mount_root "$r"
    say "$c: quick start as $who (log: $log)"
    st=0
    run_logged "$log" "[$c]" timeout 7200 chroot "$r" /usr/bin/env -i TERM=dumb \
        su - "$who" -c 'bash /tmp/quickstart.sh </dev/null' || st=$?
    local first answered second tests failing
    first=$(sed -n 's/^fresh-debian: first command exited //p' "$log")
    answered=$(grep -c '^fresh-debian: the daemon echoed' "$log" || true)
    second=$(sed -n 's/^fresh-debian: second command exited //p' "$log")
    tests=$(grep -E '^plain: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
    failing=$(failing_tests "$log")
    if [ "$st" = 0 ] && [ "$first" = 0 ] && [ "$answered" = 1 ] && [ "$second" = 0 ]; then
        note "fresh-debian: $c: quick start passed: the daemon echoed on 127.0.0.1:7000 and exited 0 on SIGINT; .ci/test: $tests"
    else
        failed=1
        note "fresh-debian: $c: quick start FAILED: first command exit ${first:-?}, daemon echoed: $([ "$answered" = 1 ] && echo yes || echo no), second command exit ${second:-?} (${tests:-no summary}${failing:+; failing:$failing}); log: $log"
    fi
    if [ "$c" = root ] && [ "$ci" = yes ]; then
        say "root: .ci/run (log: $work/ci-run.log)"
        st=0
        run_logged "$work/ci-run.log" "[ci]" timeout 7200 chroot "$r" \
            /usr/bin/env -i TERM=dumb \
            su - root -c 'cd /root/tide && .ci/run </dev/null' || st=$?
        if [ "$st" = 0 ]; then
            note "fresh-debian: root: .ci/run passed"
        else
            failed=1
            failing=$(failing_tests "$work/ci-run.log")
            note "fresh-debian: root: .ci/run FAILED (exit $st${failing:+; failing:$failing}); log: $work/ci-run.log"
        fi
        note "$(grep -E '^((plain|consumer|asan|valgrind|tsan|fuzz|stress): [0-9]+ passed, [0-9]+ failed|distcheck: .*)$' "$work/ci-run.log" |
            sed 's/^/fresh-debian: root: .ci\/run: /')"
    fi
    umount_all
    [ "$keep" = yes ] || remove_root "$r"
}

for c in user root; do
    [ -z "$only" ] || [ "$only" = "$c" ] || continue
    run_case "$c"
done

say "commit $(git -C "$top" rev-parse --short "$rev"), logs in $work"
printf '%s' "$summary" | grep -v '^$' || true
if [ "$failed" = 0 ]; then
    say PASS
else
    say FAIL
    exit 1
fi
