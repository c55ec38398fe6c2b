#!/usr/bin/env bash
# pkg-test.sh -- the packaging stage of CI (scripts/test.sh runs it after the test builds):
#   1. builds the Debian packages with dpkg-buildpackage -b from a copy of the tree, and
#      the source package (dpkg-source -b);
#   2. lintian on both, failing on errors and warnings; the binaries' hardening (readelf);
#   3. installs them on this machine as an operator would and checks files, users, groups
#      and permissions, then runs the programs as the service user: a collector started
#      from the installed configuration, an agent delivering a file that staff dropped,
#      an inspector reading the store, node_exporter serving the metrics; then purges;
#   4. installs the previous packages (0.1.0-1, made with CPack at commit 03dec4f), makes
#      a store with data and changes the configuration files, upgrades to the new
#      packages and checks that the store gives the same answers, the configuration is
#      kept and the permissions are migrated.
#
# It changes the machine (packages, users, /etc/tonghop, /var/lib/tonghop, /srv/tonghop):
# run it as root on a machine made for tests (CI's).  It refuses to start when tonghop is
# installed or has state that an earlier run of this script did not make.
#
#   scripts/pkg-test.sh            everything; the packages stay in build/pkg/
#   TH_PKG_KEEP=1 scripts/pkg-test.sh   leave the last installation in place
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

PREV_COMMIT=03dec4f      # released as 0.1.0-1 (CPack)
PREV_VERSION=0.1.0-1
out=$top/build/pkg
jobs=$(nproc)
MARK=/var/lib/tonghop-pkg-test.mark   # the tonghop state found here was made by this script
STATE_DIRS=(/etc/tonghop /var/lib/tonghop /srv/tonghop)
TEST_USERS=(thstaff thinsp thother)
SVC_GROUPS=(tonghop-store tonghop-drop)
NODE_EXPORTER_DIR=/var/lib/prometheus/node-exporter
METRICS=/var/lib/tonghop/metrics/tonghop.prom
t0=$(date +%s)
pids=()

say() { echo "== pkg: $*"; }
fail() { echo "pkg-test: FAILED: $*" >&2; exit 1; }
elapsed() { echo "$(($(date +%s) - t0)) s"; }

[ "$(id -u)" -eq 0 ] || fail "needs root: it installs packages and creates users"
# one run at a time: a second one would remove the first one's installation
exec 9>/run/lock/tonghop-pkg-test.lock
flock -n 9 || fail "another scripts/pkg-test.sh is running on this machine"
for p in dpkg-buildpackage lintian readelf setpriv curl prometheus-node-exporter; do
	command -v "$p" >/dev/null || fail "$p is missing (scripts/deps.sh installs it)"
done

# ---- helpers -------------------------------------------------------------------------

# expect_mode PATH MODE OWNER:GROUP
expect_mode() {
	local got
	got=$(stat -c '%a %U:%G' "$1") || fail "$1 is missing"
	[ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
wait_for() {
	local n=$(($1 * 10)) what=$2
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || fail "timed out waiting for $what"
		sleep 0.1
	done
}

# free_port: a TCP port no socket uses, below the ephemeral range (32768-60999) so that
# no outgoing connection takes it meanwhile
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
}

# collector_ports: three distinct free ports: p_in (ingest), ports (the collector's options)
collector_ports() {
	local p_pub p_q
	p_in=$(free_port)
	while p_pub=$(free_port) && [ "$p_pub" = "$p_in" ]; do :; done
	while p_q=$(free_port) && { [ "$p_q" = "$p_in" ] || [ "$p_q" = "$p_pub" ]; }; do :; done
	ports=(--bind "tcp://127.0.0.1:$p_in" --pub "tcp://127.0.0.1:$p_pub" --query "tcp://127.0.0.1:$p_q")
}

# wait_started PID LOG PATTERN: until LOG has PATTERN; fails if the process exits first
wait_started() {
	local n=600
	while ! grep -q "$3" "$2" 2>/dev/null; do
		kill -0 "$1" 2>/dev/null || { cat "$2"; fail "$(basename "$2" .log) exited before it started"; }
		n=$((n - 1))
		[ "$n" -gt 0 ] || { cat "$2"; fail "timed out waiting for $(basename "$2" .log) to start"; }
		sleep 0.1
	done
}

# as USER CMD...: CMD as USER with its groups and a clean environment, in the foreground
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups --reset-env -- "$@"
}

# unit_value UNIT KEY: a setting of an installed systemd unit
unit_value() {
	sed -n "s/^$2=//p" "/lib/systemd/system/$1"
}

# start_as USER UMASK LOG CMD...: CMD in the background as USER (as()), its PID in
# last_pid (the subshell execs it, so the PID is the program's); it does not inherit the
# lock
start_as() {
	local user=$1 umask=$2 log=$3
	shift 3
	(umask "$umask" && exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
		--reset-env -- "$@") >"$log" 2>&1 9>&- &
	pids+=($!)
	last_pid=$!
}

# start_service UNIT LOG EXTRA-ARGS...: the unit's ExecStart, as its User= with its UMask=,
# started in the background (no systemd here: PID 1 is not systemd on CI machines)
start_service() {
	local unit=$1 log=$2 cmd
	shift 2
	read -r -a cmd <<<"$(unit_value "$unit" ExecStart)"
	start_as "$(unit_value "$unit" User)" "$(unit_value "$unit" UMask)" "$log" "${cmd[@]}" "$@"
}

# stop_pid PID [STATUS]: SIGTERM, then the exit status must be STATUS (default 0: the
# programs finish their work and exit cleanly)
stop_pid() {
	kill -TERM "$1" 2>/dev/null || return 0
	local rc=0
	wait "$1" || rc=$?
	[ "$rc" -eq "${2:-0}" ] || fail "$(ps -o args= -p "$1" 2>/dev/null || echo "process $1") exited $rc after SIGTERM"
}

cleanup_processes() {
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	pids=()
}
trap cleanup_processes EXIT

# remove_tonghop: purges the packages and removes what they and this script made
remove_tonghop() {
	local pkgs
	pkgs=$(dpkg-query -W -f='${Package} ${Status}\n' 'tonghop-*' 2>/dev/null |
		awk '$NF != "not-installed" { print $1 }' || true)
	if [ -n "$pkgs" ]; then
		# shellcheck disable=SC2086
		dpkg --purge $pkgs >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "dpkg --purge $pkgs"; }
	fi
	rm -rf "${STATE_DIRS[@]}"
	rm -f "$NODE_EXPORTER_DIR/tonghop.prom"
	for u in "${TEST_USERS[@]}" tonghop; do
		if getent passwd "$u" >/dev/null; then userdel "$u"; fi
	done
	for g in "${SVC_GROUPS[@]}" tonghop; do
		if getent group "$g" >/dev/null; then groupdel "$g"; fi
	done
}

# set_up_agent OWNER:GROUP MODE TH-GEN: unit SNV's keypair made, installed as
# /etc/tonghop/agent.key and authorized on this machine's collector; its sample appendix
# files in $work/files/SNV (TH-GEN of the version under test)
set_up_agent() {
	tonghop-collector keygen "$work/snv" >/dev/null
	install -o "${1%:*}" -g "${1#*:}" -m "$2" "$work/snv.key" /etc/tonghop/agent.key
	echo "$(sed -n 's/^public //p' "$work/snv.pub") SNV agent Sở Nội vụ (pkg-test)" >>/etc/tonghop/authorized_keys
	"$3" --units /usr/share/tonghop/units/hanoi-2021.units --defs /usr/share/tonghop/appendices \
		--period 2021 --unit SNV --out "$work/files" --quiet
	chmod -R a+rX "$work/files"
}

# mark: the state is this script's to remove at the next run
mark() { touch "$MARK"; }

# ---- 0. a machine for the test ------------------------------------------------------

if [ ! -e "$MARK" ]; then
	if dpkg-query -W -f='${Status}\n' tonghop-collector tonghop-publish 2>/dev/null |
		grep -q 'install ok'; then
		fail "tonghop packages are installed on this machine and not by this script; run it on a test machine"
	fi
	for d in "${STATE_DIRS[@]}"; do
		[ ! -e "$d" ] || fail "$d exists and was not made by this script; run it on a test machine"
	done
fi
remove_tonghop

# ---- 1. build -----------------------------------------------------------------------

say "building the packages (dpkg-buildpackage -b)"
upver=$(dpkg-parsechangelog -S Version | sed 's/-[^-]*$//')
version=$(dpkg-parsechangelog -S Version)
cmake_ver=$(sed -n 's/^project(tonghop VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ "$upver" = "$cmake_ver" ] ||
	fail "debian/changelog is at upstream version $upver, CMakeLists.txt at $cmake_ver: add a changelog entry (dch -v $cmake_ver-1)"
src=$out/src/tonghop-$upver
rm -rf "$out/src" "$out/new"
mkdir -p "$src" "$out/new"
# the tree as it is (tracked and new files, not ignored ones such as build/)
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - | tar -xf - -C "$src"
# the source package too, for lintian (an upstream tarball of the tree without debian/)
(cd "$out/src" && tar --exclude="tonghop-$upver/debian" -cJf "tonghop_$upver.orig.tar.xz" "tonghop-$upver" &&
	dpkg-source -b "tonghop-$upver") >"$out/source.log" 2>&1 ||
	{ cat "$out/source.log"; fail "dpkg-source -b"; }
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$jobs") >"$out/build.log" 2>&1 ||
	{ tail -40 "$out/build.log"; fail "dpkg-buildpackage (log: $out/build.log)"; }
mv "$out/src"/*.deb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/src"/*.dsc "$out/src"/*.tar.xz "$out/new/"
arch=$(dpkg --print-architecture)
deb_c=$out/new/tonghop-collector_${version}_$arch.deb
deb_p=$out/new/tonghop-publish_${version}_$arch.deb
deb_m=$out/new/tonghop-common_${version}_all.deb
{ [ -f "$deb_c" ] && [ -f "$deb_p" ] && [ -f "$deb_m" ]; } ||
	fail "dpkg-buildpackage did not make $deb_c, $deb_p and $deb_m"
thgen=$(find "$src" -path '*/tools/th-gen' -type f | head -1)
[ -x "$thgen" ] || fail "th-gen was not built in $src"
say "built $(basename "$deb_c") $(basename "$deb_p") $(basename "$deb_m") ($(elapsed))"

# ---- 2. lintian, hardening ------------------------------------------------------------

say "lintian"
changes=$out/new/tonghop_${version}_$arch.changes
# as an unprivileged user (lintian unpacks what it checks)
chmod -R a+rX "$out/new"
as nobody lintian --fail-on error,warning --display-info --show-overrides "$changes" "$out/new/tonghop_$version.dsc" \
	2>&1 | tee "$out/lintian.txt" ||
	fail "lintian found errors or warnings ($out/lintian.txt)"
say "lintian: $(grep -c '^[EW]:' "$out/lintian.txt" || true) errors and warnings, $(grep -c '^I:' "$out/lintian.txt" || true) notes ($(elapsed))"

say "hardening of the installed programs"
x=$out/new/x
rm -rf "$x"
dpkg-deb -x "$deb_c" "$x"
dpkg-deb -x "$deb_p" "$x"
for b in "$x"/usr/bin/*; do
	n=$(basename "$b")
	h=$(readelf -hW "$b")
	l=$(readelf -lW "$b")
	d=$(readelf -dW "$b")
	s=$(readelf -sW --dyn-syms "$b")
	{ grep -q 'Type:.*DYN' <<<"$h" && grep -q 'FLAGS_1.*PIE' <<<"$d"; } || fail "$n is not PIE"
	grep -q GNU_RELRO <<<"$l" || fail "$n has no RELRO"
	grep -Eq 'BIND_NOW|FLAGS_1.*NOW' <<<"$d" || fail "$n is not linked with BIND_NOW"
	grep -Eq '__[a-z_]+_chk@' <<<"$s" || fail "$n uses no fortified functions (_FORTIFY_SOURCE)"
	grep -q '__stack_chk_fail' <<<"$s" || fail "$n has no stack protector"
	echo "   $n: PIE, RELRO, BIND_NOW, FORTIFY ($(grep -Eo '__[a-z_]+_chk' <<<"$s" | sort -u | wc -l) functions), stack protector"
done

# ---- 3. installations ------------------------------------------------------------------

# into a throwaway root first (dpkg --root, maintainer scripts run chrootless with
# DPKG_ROOT): the scripts make the users, keys and directories inside that root only
say "installing $version into a throwaway root (DPKG_ROOT)"
R=$out/root
rm -rf "$R"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
touch "$R/var/lib/dpkg/status"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-depends -i "$deb_c" "$deb_p" "$deb_m" \
	>"$out/install-root.log" 2>&1 || { cat "$out/install-root.log"; fail "dpkg --root -i"; }
ruid=$(grep '^tonghop:' "$R/etc/passwd" | cut -d: -f3)
[ -n "$ruid" ] || fail "no user tonghop in $R/etc/passwd"
! getent passwd tonghop >/dev/null || fail "the chrootless install made user tonghop on this machine"
for g in tonghop-store tonghop-drop; do grep -q "^$g:" "$R/etc/group" || fail "no group $g in $R/etc/group"; done
[ "$(stat -c '%a %u' "$R/etc/tonghop/collector.key")" = "600 $ruid" ] || fail "$R/etc/tonghop/collector.key: $(stat -c '%a %u' "$R/etc/tonghop/collector.key")"
[ "$(stat -c '%a %u' "$R/var/lib/tonghop/store")" = "2750 $ruid" ] || fail "$R/var/lib/tonghop/store: $(stat -c '%a %u' "$R/var/lib/tonghop/store")"
[ "$(stat -c %a "$R/srv/tonghop/drop")" = 2770 ] || fail "$R/srv/tonghop/drop is not 2770"
for d in "${STATE_DIRS[@]}"; do
	[ ! -e "$d" ] || fail "the chrootless install made $d on this machine"
done
dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-depends -P tonghop-collector tonghop-publish \
	tonghop-common >"$out/purge-root.log" 2>&1 || { cat "$out/purge-root.log"; fail "dpkg --root -P"; }
[ ! -e "$R/etc/tonghop/collector.key" ] || fail "purge left $R/etc/tonghop/collector.key"
rm -rf "$R"

# then on this machine, as an operator would

say "installing $version (apt-get install ./*.deb)"
mark
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb_c" "$deb_p" "$deb_m" \
	>"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "apt-get install"; }
grep -q 'generated /etc/tonghop/collector.key' "$out/install.log" ||
	fail "the collector's postinst did not say it made the server key"

# users, groups
getent passwd tonghop | grep -q ':/var/lib/tonghop:/usr/sbin/nologin$' ||
	fail "user tonghop: $(getent passwd tonghop)"
for g in tonghop tonghop-store tonghop-drop; do
	getent group "$g" >/dev/null || fail "group $g is missing"
done
id -nG tonghop | tr ' ' '\n' | grep -qx tonghop-drop || fail "tonghop is not in group tonghop-drop"
id -nG tonghop | tr ' ' '\n' | grep -qx tonghop-store && fail "tonghop is in group tonghop-store"

# files
for f in /lib/systemd/system/tonghop-collector.service /lib/systemd/system/tonghop-publish.service \
	/usr/lib/sysusers.d/tonghop-collector.conf /usr/lib/sysusers.d/tonghop-publish.conf \
	/usr/lib/tmpfiles.d/tonghop-collector.conf /usr/lib/tmpfiles.d/tonghop-publish.conf \
	/usr/share/man/man8/tonghop-collector.8.gz /usr/share/man/man1/tonghop.1.gz \
	/usr/share/man/man1/tonghop-publish.1.gz /usr/share/man/man5/tonghop-units.5.gz \
	/usr/share/doc/tonghop-collector/copyright /usr/share/doc/tonghop-publish/changelog.Debian.gz \
	/usr/share/doc/tonghop-collector/NEWS.Debian.gz /usr/share/doc/tonghop-collector/operator-guide.md \
	/usr/share/doc/tonghop-collector/metrics.md /usr/share/tonghop/appendices/PL1-v1.def \
	/usr/share/tonghop/units/hanoi-2021.units /usr/share/locale/vi/LC_MESSAGES/tonghop.mo; do
	[ -f "$f" ] || fail "$f is not installed"
done
for c in collector.conf:tonghop-collector publish.conf:tonghop-publish; do
	dpkg-query -W -f='${Conffiles}\n' "${c#*:}" | grep -q " /etc/tonghop/${c%%:*} " ||
		fail "/etc/tonghop/${c%%:*} is not a conffile of ${c#*:}"
done
(cd /lib/systemd/system && systemd-analyze verify --man=no tonghop-collector.service tonghop-publish.service) \
	>"$out/verify.log" 2>&1 || { cat "$out/verify.log"; fail "systemd-analyze verify"; }
! grep -q tonghop "$out/verify.log" || { cat "$out/verify.log"; fail "systemd-analyze verify complains"; }

# permissions (issue #15, item 7)
expect_mode /etc/tonghop/collector.key 600 tonghop:tonghop
expect_mode /etc/tonghop/collector.pub 644 root:root
expect_mode /etc/tonghop/authorized_keys 644 root:root
expect_mode /var/lib/tonghop 751 tonghop:tonghop
expect_mode /var/lib/tonghop/store 2750 tonghop:tonghop-store
expect_mode /var/lib/tonghop/metrics 755 tonghop:tonghop
expect_mode /srv/tonghop 2770 tonghop:tonghop-drop
expect_mode /srv/tonghop/drop 2770 tonghop:tonghop-drop
[ "$(readlink "$NODE_EXPORTER_DIR/tonghop.prom")" = "$METRICS" ] ||
	fail "$NODE_EXPORTER_DIR/tonghop.prom does not link to $METRICS"
say "files, users, groups and permissions as expected ($(elapsed))"

# the programs
tonghop-collector --version | grep -q "$upver" || fail "tonghop-collector --version: $(tonghop-collector --version)"
tonghop-publish --version | grep -q "$upver" || fail "tonghop-publish --version"
tonghop --help >/dev/null || fail "tonghop --help"

work=$(mktemp -d /tmp/tonghop-pkg.XXXXXX)
chmod 0755 "$work"
useradd --no-create-home --shell /usr/sbin/nologin --groups tonghop-drop thstaff
useradd --no-create-home --shell /usr/sbin/nologin --groups tonghop-store thinsp
useradd --no-create-home --shell /usr/sbin/nologin thother

# the agent without its key fails, naming the key (the unit no longer skips it)
rc=0
as tonghop tonghop-publish run --config /etc/tonghop/publish.conf --unit SNV >"$work/nokey.log" 2>&1 || rc=$?
{ [ "$rc" -eq 2 ] && grep -q /etc/tonghop/agent.key "$work/nokey.log"; } ||
	fail "agent without a key: exit $rc, $(cat "$work/nokey.log")"
grep -q '^RestartPreventExitStatus=.*\b2\b' /lib/systemd/system/tonghop-publish.service ||
	fail "tonghop-publish.service restarts on exit 2"

# the unit's key, made and installed as docs/operator-guide.md says
set_up_agent tonghop:tonghop 0600 "$thgen"

collector_ports
# ExecStartPre: the configuration check, as the service user
as tonghop tonghop-collector --config /etc/tonghop/collector.conf --check "${ports[@]}" >"$work/check.log" 2>&1 ||
	{ cat "$work/check.log"; fail "tonghop-collector --check on the installed configuration"; }
start_service tonghop-collector.service "$work/collector.log" "${ports[@]}"
collector=$last_pid
wait_started "$collector" "$work/collector.log" 'store /var/lib/tonghop/store'
start_service tonghop-publish.service "$work/agent.log" --unit SNV --collector "tcp://127.0.0.1:$p_in"
agent=$last_pid

# staff drop a file with a private umask: written aside, then moved in
as thstaff sh -c "umask 027 && cp '$work/files/SNV/PL1-2021.csv' /srv/tonghop/drop/.PL1-2021.csv.part &&
	mv /srv/tonghop/drop/.PL1-2021.csv.part /srv/tonghop/drop/PL1-2021.csv"
acked() { as tonghop tonghop-publish status --config /etc/tonghop/publish.conf | grep -q "acked: $1"; }
wait_for 60 "the agent to deliver the dropped file" acked 1
[ -e /srv/tonghop/drop/.done/PL1-2021.csv ] || fail "the delivered file was not moved to .done"

# an inspector in tonghop-store reads the store while the collector runs; others cannot
as thinsp tonghop check --db /var/lib/tonghop/store >"$work/icheck.log" 2>&1 ||
	{ cat "$work/icheck.log"; fail "tonghop check as a member of tonghop-store"; }
as thinsp tonghop rollup --db /var/lib/tonghop/store -a PL1 -p 2021 --level 2 --format csv |
	grep -q '^SNV,' || fail "the inspector's rollup lacks SNV"
as thother tonghop check --db /var/lib/tonghop/store >/dev/null 2>&1 && fail "a user outside tonghop-store read the store"
as thother cat /etc/tonghop/collector.key >/dev/null 2>&1 && fail "a user outside tonghop read the server key"
as thstaff cat /etc/tonghop/agent.key >/dev/null 2>&1 && fail "drop-folder staff read the agent key"

stop_pid "$agent"
stop_pid "$collector"
pids=()
grep -q 'accepted' "$work/collector.log" || fail "the collector log shows no accepted report"

# metrics: written at shutdown, readable by anyone, served by node_exporter
as thother grep -q '^tonghop_collector_reports_total{status="accepted"} 1$' "$METRICS" ||
	fail "$METRICS is not readable by others or lacks the accepted report"
p_ne=$(free_port)
start_as prometheus 0022 "$work/node-exporter.log" prometheus-node-exporter --web.listen-address="127.0.0.1:$p_ne" \
	--collector.disable-defaults --collector.textfile --collector.textfile.directory="$NODE_EXPORTER_DIR"
ne=$last_pid
wait_for 60 "node_exporter" curl -sf "http://127.0.0.1:$p_ne/metrics"
curl -sf "http://127.0.0.1:$p_ne/metrics" >"$work/scrape.txt"
grep -q '^tonghop_collector_reports_total{status="accepted"} 1$' "$work/scrape.txt" ||
	{ grep -i 'textfile\|tonghop' "$work/scrape.txt" | head; fail "node_exporter does not serve the collector's metrics"; }
stop_pid "$ne" 143     # (Go's default: killed by the signal)
pids=()
say "installed programs ran: collector, agent (drop folder), inspector, node_exporter ($(elapsed))"

! grep -qs "[w]eb.listen-address=127.0.0.1:$p_ne" /proc/[0-9]*/cmdline || fail "node_exporter still runs after SIGTERM"

# purge: what the packages made goes (keys, the link), the store stays
rm /etc/tonghop/agent.key
dpkg --purge tonghop-collector tonghop-publish tonghop-common >/dev/null
[ ! -e /etc/tonghop ] || fail "purge left $(find /etc/tonghop | tr '\n' ' ')"
[ ! -L "$NODE_EXPORTER_DIR/tonghop.prom" ] || fail "purge left the node_exporter link"
[ -f /var/lib/tonghop/store/data.mdb ] || fail "purge removed the store"
rm -rf "$work"
remove_tonghop

# ---- 4. upgrade from the previous packages ----------------------------------------------

say "previous packages: CPack at $PREV_COMMIT ($PREV_VERSION)"
old=$out/old-$PREV_COMMIT
if [ ! -f "$old/done" ]; then
	git cat-file -e "$PREV_COMMIT^{commit}" 2>/dev/null ||
		fail "commit $PREV_COMMIT is not in this clone (a shallow clone? git fetch --unshallow)"
	rm -rf "$old"
	mkdir -p "$old/src"
	git archive "$PREV_COMMIT" | tar -xf - -C "$old/src"
	(cmake -S "$old/src" -B "$old/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTH_TESTS=OFF &&
		cmake --build "$old/build" -j"$jobs" && cd "$old/build" && cpack -G DEB -B "$old/debs") \
		>"$old/build.log" 2>&1 || { tail -40 "$old/build.log"; fail "building the previous packages"; }
	touch "$old/done"
fi
old_c=$old/debs/tonghop-collector_${PREV_VERSION}_$arch.deb
old_p=$old/debs/tonghop-publish_${PREV_VERSION}_$arch.deb
mark
dpkg -i "$old_c" "$old_p" >"$out/install-old.log" 2>&1 || { cat "$out/install-old.log"; fail "installing $PREV_VERSION"; }

work=$(mktemp -d /tmp/tonghop-pkg.XXXXXX)
chmod 0755 "$work"
# the operator's set-up of 0.1.0-1 (its operator guide): staff and inspectors in group tonghop,
# the agent key root:tonghop 0640
useradd --no-create-home --shell /usr/sbin/nologin --groups tonghop thstaff
useradd --no-create-home --shell /usr/sbin/nologin --groups tonghop thinsp
set_up_agent root:tonghop 0640 "$old/build/tools/th-gen"
# configuration changed by the operator: dpkg must keep it
echo "deadline = PL1:2021:2021-06-30" >>/etc/tonghop/collector.conf
sed -i 's/^unit = CHANGE-ME$/unit = SNV/' /etc/tonghop/publish.conf
cp /etc/tonghop/collector.conf /etc/tonghop/publish.conf "$work/"

# a store with data: the old collector and agent, as the old units ran them (UMask=0007)
collector_ports
start_service tonghop-collector.service "$work/collector-old.log" "${ports[@]}"
collector=$last_pid
wait_started "$collector" "$work/collector-old.log" 'store /var/lib/tonghop/store'
(umask 0007 && as tonghop tonghop-publish send --config /etc/tonghop/publish.conf --collector "tcp://127.0.0.1:$p_in" \
	"$work/files/SNV/PL1-2021.csv" "$work/files/SNV/PL2-2021.csv") >"$work/send-old.log" 2>&1 ||
	{ cat "$work/send-old.log"; fail "the old agent's send"; }
stop_pid "$collector"
pids=()
answers() {
	for a in PL1 PL2; do
		as "$1" tonghop rollup --db /var/lib/tonghop/store -a "$a" -p 2021 --level 2 --format csv
		as "$1" tonghop status --db /var/lib/tonghop/store -a "$a" -p 2021 --level 2 --format csv
	done
}
answers tonghop >"$work/answers-old.csv"
grep -q '^SNV,' "$work/answers-old.csv" || fail "the old store lacks SNV's reports"
as tonghop tonghop check --db /var/lib/tonghop/store >/dev/null || fail "the old store does not check"
say "$PREV_VERSION installed, store made ($(elapsed))"

say "upgrading to $version"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-confold "$deb_c" "$deb_p" "$deb_m" >"$out/upgrade.log" 2>&1 ||
	{ cat "$out/upgrade.log"; fail "the upgrade"; }
for p in tonghop-collector tonghop-publish tonghop-common; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "$version" ] || fail "$p is not at $version after the upgrade"
done
# the units moved from /usr/lib/systemd/system to /lib/systemd/system (the same directory
# on a merged /usr): still there
{ [ -f /lib/systemd/system/tonghop-collector.service ] && [ -f /lib/systemd/system/tonghop-publish.service ]; } ||
	fail "a unit file is missing after the upgrade"
# the operator's configuration is kept, the new one set aside
cmp -s /etc/tonghop/collector.conf "$work/collector.conf" || fail "the upgrade changed /etc/tonghop/collector.conf"
cmp -s /etc/tonghop/publish.conf "$work/publish.conf" || fail "the upgrade changed /etc/tonghop/publish.conf"
grep -q "^metrics = $METRICS" /etc/tonghop/collector.conf.dpkg-dist ||
	fail "the new collector.conf was not set aside as collector.conf.dpkg-dist"
# permissions migrated
expect_mode /etc/tonghop/collector.key 600 tonghop:tonghop
expect_mode /etc/tonghop/agent.key 600 tonghop:tonghop
expect_mode /var/lib/tonghop 751 tonghop:tonghop
expect_mode /var/lib/tonghop/store 2750 tonghop:tonghop-store
expect_mode /var/lib/tonghop/store/data.mdb 640 tonghop:tonghop-store
expect_mode /var/lib/tonghop/store/lock.mdb 660 tonghop:tonghop-store
expect_mode /srv/tonghop/drop 2770 tonghop:tonghop-drop
id -nG thinsp | tr ' ' '\n' | grep -qx tonghop-store || fail "the upgrade did not add thinsp to tonghop-store"
id -nG thstaff | tr ' ' '\n' | grep -qx tonghop-drop || fail "the upgrade did not add thstaff to tonghop-drop"

# the store is intact: it checks, read by the new tools, and answers the same
as thinsp tonghop check --db /var/lib/tonghop/store >"$work/check-new.log" 2>&1 ||
	{ cat "$work/check-new.log"; fail "tonghop check after the upgrade"; }
start_service tonghop-collector.service "$work/collector-new.log" "${ports[@]}"
collector=$last_pid
wait_started "$collector" "$work/collector-new.log" 'store /var/lib/tonghop/store'
answers thinsp >"$work/answers-new.csv"
diff -u "$work/answers-old.csv" "$work/answers-new.csv" || fail "the store answers differently after the upgrade"
# and takes more: staff (now through tonghop-drop) drop a file for the upgraded agent
start_service tonghop-publish.service "$work/agent-new.log" --collector "tcp://127.0.0.1:$p_in"
agent=$last_pid
as thstaff sh -c "umask 027 && cp '$work/files/SNV/PL3-2021.csv' /srv/tonghop/drop/.PL3.part &&
	mv /srv/tonghop/drop/.PL3.part /srv/tonghop/drop/PL3-2021.csv"
wait_for 60 "the upgraded agent to deliver" acked 3
stop_pid "$agent"
stop_pid "$collector"
pids=()
as thinsp tonghop check --db /var/lib/tonghop/store >/dev/null || fail "tonghop check after the new report"
rm -rf "$work"
say "upgrade: store intact, configuration kept, permissions migrated ($(elapsed))"

if [ "${TH_PKG_KEEP:-0}" != 1 ]; then
	remove_tonghop
	rm -f "$MARK"
fi
say "passed in $(elapsed); packages in $out/new, lintian's output in $out/lintian.txt"
