#!/bin/sh
# it_compose.sh -- docker/compose.yaml and docker/start.sh's TH_PUBKEYS mode, without a
# Docker engine.  One case per run: it_compose.sh CASE (ctest registers each case_*).
#   validates_with_docker_compose   Debian's docker-compose (1.29) accepts the file; each
#                                   key volume is mounted by its own container only
#   own_keys_only_public_shared     start.sh as the compose file runs it: a collector and
#                                   two agents, each making its keypair in its own folder,
#                                   sharing public keys only; the agents deliver; the first
#                                   key of a unit stays; a missing agent is named
# Needs TH_SOURCE_DIR and TH_BUILD_DIR (set by ctest).  Exit 77: skipped.
set -eu
src=${TH_SOURCE_DIR:?}
bld=${TH_BUILD_DIR:?}
compose=$src/docker/compose.yaml
start=$src/docker/start.sh

fail() { echo "FAIL: $*" >&2; exit 1; }

# mounts: "service volume" for every named-volume mount of docker-compose's normalized
# output (services at 2 spaces, their keys at 4, list items at 4 with "- ")
mounts() {
	docker-compose -f "$compose" config | awk '
		/^[a-z]/ { top = $1 }
		top == "services:" && /^  [a-z0-9-]+:$/ { svc = $1; sub(":", "", svc); key = "" }
		top == "services:" && /^    [a-z_]+:/ { key = $1 }
		top == "services:" && key == "volumes:" && /^    - / { split($2, v, ":"); print svc, v[1] }'
}

case_validates_with_docker_compose() {
	command -v docker-compose >/dev/null || { echo "docker-compose missing: skipped"; exit 77; }
	docker-compose -f "$compose" config -q || fail "docker-compose rejects $compose"
	m=$(mounts)
	[ -n "$m" ] || fail "no volume mounts found in docker-compose config"
	echo "$m" | grep -qx 'collector collector-keys' || fail "the collector does not mount collector-keys"
	n=0
	for svc in $(echo "$m" | awk '$1 ~ /^agent-/ { print $1 }' | sort -u); do
		n=$((n + 1))
		u=${svc#agent-}
		echo "$m" | grep -qx "$svc key-$u" || fail "$svc does not mount its key volume key-$u"
	done
	[ "$n" -ge 1 ] || fail "no agent services"
	# every key volume is mounted once, by its owner; nothing else holds secrets
	echo "$m" | awk '$2 == "collector-keys" || $2 ~ /^key-/ { print $2 }' | sort | uniq -d | grep . &&
		fail "a key volume is mounted by two containers"
	echo "$m" | awk '($2 ~ /^key-/ && $1 != "agent-" substr($2, 5)) || ($2 == "collector-keys" && $1 != "collector")' |
		grep . && fail "a container mounts another's key volume"
	echo "$m" | awk '$2 == "keys"' | grep . && fail "a shared keys volume is still mounted"
	echo "compose: $n agents, each with its own key volume"
}

# ---- start.sh with TH_PUBKEYS, as the compose file runs it -----------------------------

pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	[ -z "${dir:-}" ] || rm -rf "$dir"
}

free_port() {
	while :; do
		p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 12000))
		ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
}

# run ROLE LOG DATA KEYS [UNIT]: start.sh in the background, its PID in $last
run() {
	TH_DATA=$3 TH_KEYS=$4 "$start" "$1" ${5:+"$5"} >"$2" 2>&1 &
	last=$!
	pids="$pids $last"
}

# wait_until SECONDS WHAT COMMAND...
wait_until() {
	tries=$(($1 * 10)) what=$2
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || fail "timed out waiting for $what"
		sleep 0.1
	done
}

# delivered DIR: every sample file the agent of DIR dropped is processed and acknowledged
delivered() {
	done_n=$(find "$1/drop/.done" -name '*.csv' 2>/dev/null | wc -l)
	[ "$done_n" -gt 0 ] && [ -z "$(find "$1/drop" -maxdepth 1 -name '*.csv')" ] &&
		"$bld/publisher/tonghop-publish" status --outbox "$1/outbox" >"$1/status.txt" 2>&1 &&
		grep -q "acked: $done_n\b" "$1/status.txt" && grep -q 'pending: 0' "$1/status.txt"
}

# files DIR: the files under DIR, sorted, relative, on one line
files() {
	(cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')
}

stop() {
	kill "$1"
	wait "$1" || fail "process $1 did not exit cleanly on SIGTERM"
}

case_own_keys_only_public_shared() {
	dir=$(mktemp -d)
	trap cleanup EXIT
	mkdir "$dir/bin"
	for p in collector/tonghop-collector publisher/tonghop-publish tools/tonghop tools/th-gen; do
		ln -s "$bld/$p" "$dir/bin/"
	done
	port=$(free_port)
	PATH=$dir/bin:$PATH
	TH_UNITS=$src/data/hanoi-2021.units TH_DEFS=$src/schema/appendices TH_AGENTS='SNV 001'
	TH_BIND=tcp://127.0.0.1:$port TH_PUB=tcp://127.0.0.1:$(free_port) TH_QUERY=tcp://127.0.0.1:$(free_port)
	TH_COLLECTOR=tcp://127.0.0.1:$port TH_PUBKEYS=$dir/pubkeys TH_WAIT=30 TH_SAMPLE=1
	export PATH TH_UNITS TH_DEFS TH_AGENTS TH_BIND TH_PUB TH_QUERY TH_COLLECTOR TH_PUBKEYS TH_WAIT TH_SAMPLE
	mkdir "$dir/pubkeys"

	# an agent first (it waits for the collector's key), the collector (it waits for both
	# agents' keys: 001's is published after it started, and 001 could not deliver if the
	# collector had not waited for it), the second agent last
	run agent "$dir/snv.log" "$dir/snv" "$dir/snv-keys" SNV
	snv=$last
	wait_until 10 "SNV's public key" test -s "$dir/pubkeys/agents/SNV.pub"
	run collector "$dir/collector.log" "$dir/c" "$dir/c-keys"
	coll=$last
	run agent "$dir/001.log" "$dir/001" "$dir/001-keys" 001
	a001=$last
	wait_until 30 "the collector to start" grep -q CURVE "$dir/collector.log"
	wait_until 60 "SNV's delivery" delivered "$dir/snv"
	wait_until 60 "001's delivery" delivered "$dir/001"

	# secrets: each in its owner's folder only, mode 0600
	[ "$(files "$dir/c-keys")" = "authorized_keys collector.key collector.pub " ] ||
		fail "the collector's key folder holds: $(files "$dir/c-keys")"
	for a in snv 001; do
		[ "$(files "$dir/$a-keys")" = "agent.key agent.pub " ] ||
			fail "agent $a's key folder holds: $(files "$dir/$a-keys")"
		[ "$(stat -c %a "$dir/$a-keys/agent.key")" = 600 ] || fail "agent $a's key is not 0600"
	done
	[ "$(files "$dir/pubkeys")" = "agents/001.pub agents/SNV.pub collector.pub " ] ||
		fail "the shared folder holds: $(files "$dir/pubkeys")"
	grep -rl '^secret' "$dir/pubkeys" && fail "a secret key is in the shared folder"
	for a in SNV:snv 001:001; do
		pk=$(sed -n 's/^public //p' "$dir/${a#*:}-keys/agent.pub")
		[ "$(awk -v u="${a%%:*}" '$2 == u { print $1 }' "$dir/c-keys/authorized_keys")" = "$pk" ] ||
			fail "authorized_keys does not hold ${a%%:*}'s own key"
	done
	stop "$snv"
	stop "$a001"
	stop "$coll"

	# another key published for SNV later is not authorized
	cp "$dir/pubkeys/agents/001.pub" "$dir/pubkeys/agents/SNV.pub"
	run collector "$dir/collector2.log" "$dir/c" "$dir/c-keys"
	coll=$last
	wait_until 30 "the collector's restart" grep -q CURVE "$dir/collector2.log"
	stop "$coll"
	grep -q 'agent SNV published a key other than its authorized one: ignored' "$dir/collector2.log" ||
		fail "no warning for SNV's changed key: $(cat "$dir/collector2.log")"
	[ "$(wc -l <"$dir/c-keys/authorized_keys")" -eq 2 ] || fail "authorized_keys grew: $(cat "$dir/c-keys/authorized_keys")"

	# a unit of TH_AGENTS that never publishes is named, and the collector does not start
	rc=0
	TH_AGENTS='SNV 001 STP' TH_WAIT=1 TH_DATA=$dir/c TH_KEYS=$dir/c-keys "$start" collector \
		>"$dir/collector3.log" 2>&1 || rc=$?
	[ "$rc" -eq 1 ] || fail "collector without STP's key: exit $rc"
	grep -q 'no public key from agent STP' "$dir/collector3.log" || fail "$(cat "$dir/collector3.log")"
	echo "start.sh: own keypairs, public keys shared, first key kept"
}

case=${1:-}
case $case in
validates_with_docker_compose | own_keys_only_public_shared) "case_$case" ;;
*) echo "usage: it_compose.sh validates_with_docker_compose|own_keys_only_public_shared" >&2; exit 2 ;;
esac
