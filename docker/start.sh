#!/bin/sh
# start.sh -- start-up script of the tonghop containers (docker/compose.yaml); it also
# runs without Docker (tests/it_ops.c runs it on loopback with temp dirs).
#
#   start.sh collector        first start: the collector's keypair and one keypair per
#                             unit in TH_AGENTS (in TH_KEYS, shared with the agents),
#                             authorized_keys; then runs tonghop-collector
#   start.sh agent UNIT       waits for UNIT's key, optionally drops the unit's sample
#                             appendix files (TH_SAMPLE=1), then runs tonghop-publish run
#   With TH_PUBKEYS set (docker/compose.yaml), every container makes its own keypair in
#   its own TH_KEYS and only public keys are shared, in TH_PUBKEYS: the collector publishes
#   collector.pub there and waits for agents/UNIT.pub of every unit in TH_AGENTS; an agent
#   publishes agents/UNIT.pub and waits for collector.pub.  The first key seen for a unit
#   is the one authorized: a later, different one is ignored (delete the unit's line from
#   authorized_keys to accept it).  No container holds another's secret.
#   start.sh health [ROLE]    health check: the collector's store answers `tonghop units`
#                             and its metrics file is fresh; an agent's outbox answers
#
# Environment (defaults for the container):
#   TH_DATA=/data             store (collector) or outbox and drop folder (agent)
#   TH_KEYS=/keys             keys shared between the collector and the agents
#   TH_UNITS=/usr/share/tonghop/units/hanoi-2021.units     TH_DEFS=/usr/share/tonghop/appendices
#   TH_AGENTS="SNV 001"       units that get a generated key (collector)
#   TH_BIND=tcp://0.0.0.0:7701  TH_PUB=tcp://0.0.0.0:7702  TH_QUERY=tcp://0.0.0.0:7703
#   TH_COLLECTOR=tcp://collector:7701   (agent)   TH_SAMPLE=0|1   TH_PERIOD=2021
#   TH_WAIT=60                seconds an agent waits for its key (with TH_PUBKEYS: the
#                             collector for the agents' public keys, all together)
#   TH_PUBKEYS                unset, or the folder of public keys shared by containers
#   TH_ROLE                   role for `health` when not given
set -eu

TH_DATA=${TH_DATA:-/data}
TH_KEYS=${TH_KEYS:-/keys}
TH_UNITS=${TH_UNITS:-/usr/share/tonghop/units/hanoi-2021.units}
TH_DEFS=${TH_DEFS:-/usr/share/tonghop/appendices}
TH_AGENTS=${TH_AGENTS:-SNV 001}
TH_BIND=${TH_BIND:-tcp://0.0.0.0:7701}
TH_PUB=${TH_PUB:-tcp://0.0.0.0:7702}
TH_QUERY=${TH_QUERY:-tcp://0.0.0.0:7703}
TH_COLLECTOR=${TH_COLLECTOR:-tcp://collector:7701}
TH_SAMPLE=${TH_SAMPLE:-0}
TH_PERIOD=${TH_PERIOD:-2021}
TH_WAIT=${TH_WAIT:-60}
TH_PUBKEYS=${TH_PUBKEYS:-}

log() { echo "start.sh: $*" >&2; }

# keygen PREFIX: a keypair, written atomically (PREFIX.key appears last)
keygen() {
  tonghop-collector keygen "$1.tmp" >/dev/null
  mv "$1.tmp.pub" "$1.pub"
  mv "$1.tmp.key" "$1.key"
}

# await FILE WHAT: until FILE is there (keys appear atomically), within TH_WAIT seconds
# for all the awaits of this run together; else names WHAT is missing and exits 1
waited=0
await() {
  while [ ! -s "$1" ]; do
    if [ "$waited" -ge "$TH_WAIT" ]; then
      log "no $2 after ${TH_WAIT}s"
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# publish FILE DEST: a copy of a public key file, readable by all, appearing atomically
publish() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$"
  chmod 0644 "$2.tmp.$$"
  mv -f "$2.tmp.$$" "$2"
}

# public_key FILE: the Z85 public key of a .pub file
public_key() {
  sed -n 's/^public //p' "$1"
}

# authorize_published: TH_AGENTS' public keys from TH_PUBKEYS into authorized_keys,
# waiting for those not published yet; the first key of a unit stays
authorize_published() {
  ak=$TH_KEYS/authorized_keys
  for u in $TH_AGENTS; do
    f=$TH_PUBKEYS/agents/$u.pub
    await "$f" "public key from agent $u in $TH_PUBKEYS/agents (is its container running?)"
    pk=$(public_key "$f")
    [ -n "$pk" ] || { log "$f: no \"public\" line"; exit 3; }
    had=$(awk -v u="$u" '$2 == u && $3 == "agent" { print $1; exit }' "$ak")
    if [ -z "$had" ]; then
      echo "$pk $u agent agent-$u (its own key, published by start.sh)" >> "$ak"
    elif [ "$had" != "$pk" ]; then
      log "agent $u published a key other than its authorized one: ignored (delete its line from $ak to accept it)"
    fi
  done
}

collector() {
  umask 077
  mkdir -p "$TH_DATA" "$TH_KEYS"
  if [ ! -e "$TH_KEYS/collector.key" ]; then
    log "first start: generating the collector's keypair in $TH_KEYS"
    keygen "$TH_KEYS/collector"
  fi
  [ -e "$TH_KEYS/authorized_keys" ] || : > "$TH_KEYS/authorized_keys"
  for u in $TH_AGENTS; do
    case $u in *[!A-Za-z0-9._-]*) log "bad unit code \"$u\" in TH_AGENTS"; exit 3 ;; esac
  done
  if [ -n "$TH_PUBKEYS" ]; then
    publish "$TH_KEYS/collector.pub" "$TH_PUBKEYS/collector.pub"
    authorize_published
  else
    collector_keys
  fi
  # the collector refuses root unless told; the image runs it as a user, a test may not
  root_flag=
  [ "$(id -u)" = 0 ] && root_flag=--allow-root
  exec tonghop-collector --db "$TH_DATA/store" --units "$TH_UNITS" --defs "$TH_DEFS" \
    --keys "$TH_KEYS/authorized_keys" --server-key "$TH_KEYS/collector.key" \
    --bind "$TH_BIND" --pub "$TH_PUB" --query "$TH_QUERY" --metrics "$TH_DATA/tonghop.prom" \
    ${root_flag:+"$root_flag"}
}

# collector_keys: a keypair for every unit of TH_AGENTS in TH_KEYS/agents, authorized
collector_keys() {
  mkdir -p "$TH_KEYS/agents"
  for u in $TH_AGENTS; do
    if [ ! -e "$TH_KEYS/agents/$u.key" ]; then
      log "first start: generating the key of agent $u"
      keygen "$TH_KEYS/agents/$u"
    fi
    pk=$(public_key "$TH_KEYS/agents/$u.pub")
    # (a Z85 key holds regex characters: compare fields, not patterns)
    awk -v k="$pk" '$1 == k { f = 1 } END { exit !f }' "$TH_KEYS/authorized_keys" ||
      echo "$pk $u agent agent-$u (generated by start.sh)" >> "$TH_KEYS/authorized_keys"
  done
  # the agents (other containers, other users) read their keys and the public key
  chmod 0755 "$TH_KEYS" "$TH_KEYS/agents"
  chmod 0644 "$TH_KEYS/collector.pub" "$TH_KEYS"/agents/*.pub 2>/dev/null || true
}

agent() {
  u=$1
  case $u in *[!A-Za-z0-9._-]*) log "bad unit code \"$u\""; exit 2 ;; esac
  if [ -n "$TH_PUBKEYS" ]; then
    key=$TH_KEYS/agent.key
    server=$TH_PUBKEYS/collector.pub
    (umask 077 && mkdir -p "$TH_KEYS")
    if [ ! -e "$key" ]; then
      log "first start: generating the keypair of agent $u in $TH_KEYS"
      (umask 077 && keygen "$TH_KEYS/agent")
    fi
    publish "$TH_KEYS/agent.pub" "$TH_PUBKEYS/agents/$u.pub"
  else
    key=$TH_KEYS/agents/$u.key
    server=$TH_KEYS/collector.pub
    await "$key" "key for agent $u in $TH_KEYS/agents (is $u in the collector's TH_AGENTS?)"
  fi
  await "$server" "public key of the collector, $server (is the collector running?)"
  mkdir -p "$TH_DATA/drop"
  if [ "$TH_SAMPLE" = 1 ] && [ ! -e "$TH_DATA/.sample-done" ]; then
    log "dropping the sample appendix files of unit $u"
    th-gen --units "$TH_UNITS" --defs "$TH_DEFS" --period "$TH_PERIOD" --unit "$u" \
      --out "$TH_DATA/sample" --quiet
    # written aside, then moved in: the agent never sees a half-written file
    for f in "$TH_DATA/sample/$u"/*.csv; do
      [ -e "$f" ] && mv "$f" "$TH_DATA/drop/"
    done
    touch "$TH_DATA/.sample-done"
  fi
  exec tonghop-publish run --unit "$u" --collector "$TH_COLLECTOR" \
    --key "$key" --server-key "$server" \
    --outbox "$TH_DATA/outbox" --drop "$TH_DATA/drop" --defs "$TH_DEFS"
}

health() {
  case ${1:-${TH_ROLE:-collector}} in
  collector)
    tonghop units --db "$TH_DATA/store" >/dev/null || exit 1
    # the metrics file is rewritten every 10 s while the main loop runs
    [ -n "$(find "$TH_DATA/tonghop.prom" -mmin -1 2>/dev/null)" ] || exit 1
    ;;
  agent)
    tonghop-publish status --outbox "$TH_DATA/outbox" >/dev/null || exit 1
    ;;
  *) log "health: unknown role"; exit 2 ;;
  esac
}

case ${1:-} in
collector) collector ;;
agent) [ $# -eq 2 ] || { log "usage: start.sh agent UNIT"; exit 2; }; agent "$2" ;;
health) health "${2:-}" ;;
*) echo "usage: start.sh collector | agent UNIT | health [collector|agent]" >&2; exit 2 ;;
esac
