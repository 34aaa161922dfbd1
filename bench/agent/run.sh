#!/bin/sh
# Stream a home between two maildist agents on loopback and compare with
# rsync -a over ssh (a throwaway sshd on a loopback port) on the same tree;
# also with the local copy (two hosts that are folders of this machine),
# to see what the agents' path costs. See README.md.
#
#   bench/agent/run.sh            the largest Enron home, and the whole corpus
#   ROUNDS=5 bench/agent/run.sh   more rounds (the best is reported)
#   BENCH_TMP=/dev/shm bench/agent/run.sh
#                                 on tmpfs: no disk, fsync free, so the
#                                 transports alone are compared
#
# Needs: go, rsync, ssh, sshd (apt-get install -y openssh-server rsync).
# Runs as root (sshd, and owners kept). Everything is under a temp folder,
# removed at the end; the sshd and agents it starts are stopped.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CORPUS=${CORPUS:-$ROOT/../shared/data/enron-inbox.tar.gz}
ROUNDS=${ROUNDS:-3}
W=$(mktemp -d "${BENCH_TMP:-/tmp}/maildist-bench-agent.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	[ -f "$W/sshd.pid" ] && kill "$(cat "$W/sshd.pid")" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

if [ -n "${MAILDIST_BIN:-}" ]; then # a binary built already
	cp "$MAILDIST_BIN" "$W/maildist"
else
	go build -o "$W/maildist" ./cmd/maildist
fi
M="$W/maildist"
cd "$W"

echo "== unpacking $CORPUS"
mkdir -p corpus a/r1 b/r2 c
tar xzf "$CORPUS" -C corpus
BIG=$(du -sb corpus/maildir/* | sort -n | tail -1 | awk '{print $2}')
USER=$(basename "$BIG")
cp -a "$BIG" "a/r1/$USER"
cp -a corpus/maildir "a/r1/all"
rm -rf corpus

echo "== certificates and agents"
"$M" ca init ca >/dev/null
"$M" ca issue ca r1 --role agent >/dev/null
"$M" ca issue ca r2 --role agent >/dev/null
"$M" ca issue ca runner --role coordinator >/dev/null
start_agent() { # name fsroot
	"$M" agent --listen 127.0.0.1:0 --cert "ca/$1.crt" --key "ca/$1.key" --ca ca/ca.crt \
		--fsroot "$2" --root /r1 --root /r2 >"$1.out" 2>"$1.log" &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do grep -q listening "$1.out" 2>/dev/null && break; sleep 0.1; done
}
start_agent r1 "$W/a"
start_agent r2 "$W/b"
A1=$(sed -n 's/^listening on //p' r1.out)
A2=$(sed -n 's/^listening on //p' r2.out)
: >passwd
cat >agents.toml <<TOML
domain = "example.edu"
[directory]
path = "passwd"
[tls]
ca = "ca/ca.crt"
cert = "ca/runner.crt"
key = "ca/runner.key"
[[host]]
name = "r1"
root = "/r1"
agent = "https://$A1"
[[host]]
name = "r2"
root = "/r2"
agent = "https://$A2"
TOML
cat >local.toml <<TOML
domain = "example.edu"
[directory]
path = "passwd"
[delivery]
stub = "none"
[[host]]
name = "r1"
root = "/r1"
fsroot = "a"
[[host]]
name = "r2"
root = "/r2"
fsroot = "b"
TOML

echo "== sshd on a loopback port"
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f hostkey
ssh-keygen -q -t ed25519 -N '' -f userkey
cp userkey.pub authorized_keys
SSHPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >sshd_config <<CONF
Port $SSHPORT
ListenAddress 127.0.0.1
HostKey $W/hostkey
AuthorizedKeysFile $W/authorized_keys
PidFile $W/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
CONF
/usr/sbin/sshd -f "$W/sshd_config"
for _ in $(seq 50); do [ -s sshd.pid ] && break; sleep 0.1; done
SSH="ssh -p $SSHPORT -i $W/userkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

now() { date +%s.%N; }
best() { sort -g | head -1; }

# agent_round CONFIG HOME COMPRESS → seconds MB/s wire
agent_round() {
	"$M" --config "$1" agents bench r1 r2 --path "$2" ${3:+--compress "$3"} --json |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["seconds"], r["bytes"], r.get("wire_bytes",0), r["differences"])'
}
rsync_round() { # HOME [extra]
	rm -rf "c/x"
	t0=$(now)
	rsync -a ${2:-} -e "$SSH" "a$1/" "root@127.0.0.1:$W/c/x/"
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}

report() { # label seconds bytes
	printf '%-34s %8.2f s %8.1f MB/s\n' "$1" "$2" "$(echo "$3 / $2 / 1000000" | bc -l)"
}

for HOME_ in "/r1/$USER" /r1/all; do
	BYTES=$(find "a$HOME_" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
	FILES=$(find "a$HOME_" -type f | wc -l)
	echo
	echo "== $HOME_: $FILES files, $BYTES bytes (best of $ROUNDS)"
	for comp in none zstd auto; do
		: >t
		for _ in $(seq "$ROUNDS"); do agent_round agents.toml "$HOME_" "$comp" >>t; done
		s=$(awk '{print $1}' t | best)
		wire=$(sort -g t | head -1 | awk '{print $3}')
		diffs=$(awk '{s+=$4} END {print s}' t)
		report "agent → agent, compress $comp" "$s" "$BYTES"
		[ "$diffs" = 0 ] || echo "   DIFFERENCES: $diffs"
		[ "$comp" = none ] && AGENT_NONE=$s
		[ "$comp" = auto ] && AGENT_AUTO=$s
		[ "$wire" != 0 ] && printf '%-34s %8s   wire %s bytes (%.0f%%)\n' "" "" "$wire" "$(echo "100 * $wire / $BYTES" | bc -l)"
	done
	: >t
	for _ in $(seq "$ROUNDS"); do agent_round local.toml "$HOME_" "" >>t; done
	LOCAL=$(awk '{print $1}' t | best)
	report "local copy (tree.Copy, fsync)" "$LOCAL" "$BYTES"
	: >t
	for _ in $(seq "$ROUNDS"); do rsync_round "$HOME_" >>t; done
	RS=$(best <t)
	report "rsync -a over ssh" "$RS" "$BYTES"
	: >t
	for _ in $(seq "$ROUNDS"); do rsync_round "$HOME_" --fsync >>t; done
	RSF=$(best <t)
	report "rsync -a --fsync over ssh" "$RSF" "$BYTES"
	printf 'agent (auto) vs rsync -a: %.2fx the rate; vs rsync --fsync: %.2fx; vs local copy: %.2fx\n' \
		"$(echo "$RS / $AGENT_AUTO" | bc -l)" "$(echo "$RSF / $AGENT_AUTO" | bc -l)" "$(echo "$LOCAL / $AGENT_AUTO" | bc -l)"
done
