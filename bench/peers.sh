#!/usr/bin/env bash
# bench/peers.sh — the same load, interleaved, against BifroMQ-Go, mosquitto
# (Debian) and mochi-mqtt (go install), one broker at a time, on loopback.
#
#   bench/peers.sh [-a] [-n messages-per-publisher] [-r latency-repeats] [-s scenario,...] [-o results.md]
#
# Fair pairing on a 2-core machine: the broker under test (ours or a peer)
# runs pinned to CPU 0, the load tool (`bifromq bench`) to CPU 1. Each
# scenario runs twice per broker: first unpaced, for the maximum
# throughput; then at half the slowest broker's maximum, for latency
# percentiles that show the broker rather than a queue: that run is
# repeated (-r, default 5), the brokers taking turns, and the median p50
# and p99 are reported, since one run's tail varies by a fifth or more.
# Latency runs from the send time in the payload to the kernel's receive
# time at the subscriber's socket (bench sub -rxtime), so the tool's own
# scheduling, on the CPU its publishers and subscribers share, stays out
# of the figures; -a measures to when the tool has read the message
# instead. Every broker listens on 127.0.0.1 only. Prints a markdown
# table: msgs/s (and the ratio to each peer), p50/p99 at the fixed rate,
# the broker's peak RSS and CPU, and messages lost.
set -euo pipefail

N=20000
OUT=""
LATFLAGS="-rxtime"
LATDESC="to the kernel's receive time at the subscriber"
ONLY=""
REPS=5
while getopts "an:o:r:s:" opt; do
	case $opt in
	a) LATFLAGS="" LATDESC="to when the tool read the message" ;;
	n) N=$OPTARG ;;
	o) OUT=$OPTARG ;;
	r) REPS=$OPTARG ;;
	s) ONLY=",$OPTARG," ;;
	*) echo "usage: $0 [-a] [-n messages-per-publisher] [-r latency-repeats] [-s scenario,...] [-o results.md]" >&2; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'stop_broker; rm -rf "$WORK"' EXIT
PORT=21883
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building bifromq ..." >&2
(cd "$ROOT" && go build -o "$WORK/bifromq" ./cmd/bifromq)
TOOL="taskset -c 1 $WORK/bifromq bench"

MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
if [ ! -x "$MOSQUITTO" ]; then
	echo "mosquitto is not installed: apt-get install -y mosquitto" >&2
	exit 1
fi
MOCHI=${MOCHI:-$(go env GOPATH)/bin/cmd}
if [ ! -x "$MOCHI" ]; then
	echo "installing mochi-mqtt v2.7.9 ..." >&2
	(cd "$WORK" && GOFLAGS= go install github.com/mochi-mqtt/server/v2/cmd@v2.7.9)
fi

cat >"$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
max_inflight_messages 100
log_dest none
CONF
cat >"$WORK/bifromq.yaml" <<CONF
log: {level: warn}
mqtt:
  maxInflight: 100
tenants:
  defaults:
    sessionInboxSize: 1000000
    maxTopicFiltersPerSub: 100
CONF

BROKER_PID=""
start_broker() { # name
	case $1 in
	bifromq)
		rm -rf "$WORK/data"
		taskset -c 0 "$WORK/bifromq" --config "$WORK/bifromq.yaml" --data-dir "$WORK/data" \
			--mqtt-tcp 127.0.0.1:$PORT --mqtt-ws off --api-addr off \
			--cluster-bind 127.0.0.1:0 --raft-addr 127.0.0.1:0 2>"$WORK/broker.log" &
		;;
	mosquitto)
		taskset -c 0 "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/broker.log" &
		;;
	mochi)
		taskset -c 0 "$MOCHI" -tcp 127.0.0.1:$PORT -ws 127.0.0.1:$((PORT + 1)) -info 127.0.0.1:$((PORT + 2)) \
			>"$WORK/broker.log" 2>&1 &
		;;
	esac
	BROKER_PID=$!
	for _ in $(seq 100); do
		if (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "$1 did not start:" >&2
	cat "$WORK/broker.log" >&2
	exit 1
}

stop_broker() {
	if [ -n "${BROKER_PID:-}" ]; then
		kill "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
		BROKER_PID=""
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BROKER_PID/stat"; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$BROKER_PID/status"; }
cur_rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$BROKER_PID/status"; }
field() { # summary-line key
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

# run_scenario name subs sub-filter pubs pub-topic qos extra-sub-flags rate
# Prints "rate p50 p99 lost cpu% rss_mb".
run_scenario() {
	local name=$1 subs=$2 filter=$3 pubs=$4 topic=$5 qos=$6 subflags=$7 rate=$8
	local expect=$((pubs * N))
	case $name in fanout*) expect=$((subs * N)) ;; esac
	case $name in shared*) expect=$((pubs * N)) ;; esac
	local t0 t1 sumfile="$WORK/sub.out"
	# shellcheck disable=SC2086
	$TOOL sub -quiet -p $PORT -c "$subs" -t "$filter" -q "$qos" -expect "$expect" -idle 5s -d 300s $subflags \
		>"$sumfile" 2>"$WORK/sub.err" &
	local subpid=$!
	sleep 1.5
	t0=$(cpu_ticks)
	# shellcheck disable=SC2086
	$TOOL pub -quiet -p $PORT -c "$pubs" -t "$topic" -q "$qos" -n "$N" -r "$rate" -d 300s >"$WORK/pub.out" 2>"$WORK/pub.err" || true
	wait "$subpid" || true
	t1=$(cpu_ticks)
	local line
	line=$(grep '^summary' "$sumfile" || echo "summary received=0 rate=0 p50_ms=0 p99_ms=0 duration_s=1")
	local got dur
	got=$(field "$line" received)
	dur=$(field "$line" duration_s)
	local hz
	hz=$(getconf CLK_TCK)
	local cpu
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v d="$dur" 'BEGIN { if (d <= 0) d = 1; printf "%.0f", (b - a) / hz / d * 100 }')
	echo "$(field "$line" rate) $(field "$line" p50_ms) $(field "$line" p99_ms) $((expect - got)) $cpu $(($(rss_kb) / 1024))"
}

SCENARIOS=(
	# name subs filter pubs topic qos subflags
	"p2p-qos0|20|p2p/%i|20|p2p/%i|0|"
	"p2p-qos1|20|p2p/%i|20|p2p/%i|1|"
	"fanout-qos0|50|fan/t|1|fan/t|0|"
	"fanout-qos1|50|fan/t|1|fan/t|1|"
	"fanin-qos1|1|fanin/#|20|fanin/%i|1|"
	"shared-qos1|10|\$share/g/sh/#|10|sh/%i|1|"
	"persistent-p2p-qos1|20|pp/%i|20|pp/%i|1|-clean=false"
)
BROKERS=(bifromq mosquitto mochi)
if [ -n "$ONLY" ]; then # -s: only the named scenarios (and no idle-connection run unless "idle" is named)
	kept=()
	for sc in "${SCENARIOS[@]}"; do
		case $ONLY in *",${sc%%|*},"*) kept+=("$sc") ;; esac
	done
	SCENARIOS=("${kept[@]}")
fi

declare -A MAXRATE LOST CPU RSS P50 P99
for sc in "${SCENARIOS[@]}"; do
	IFS='|' read -r name subs filter pubs topic qos subflags <<<"$sc"
	for b in "${BROKERS[@]}"; do
		echo "== $name on $b (max rate)" >&2
		start_broker "$b"
		read -r rate _ _ lost cpu rss <<<"$(run_scenario "$name" "$subs" "$filter" "$pubs" "$topic" "$qos" "$subflags" 0)"
		stop_broker
		MAXRATE[$name,$b]=$rate LOST[$name,$b]=$lost CPU[$name,$b]=$cpu RSS[$name,$b]=$rss
		echo "   $rate msgs/s, lost $lost, cpu $cpu%, rss ${rss} MB" >&2
	done
	slowest=$(for b in "${BROKERS[@]}"; do echo "${MAXRATE[$name,$b]}"; done | sort -g | head -1)
	# Half the slowest maximum, spread over the publishers (per publisher).
	perpub=$(awk -v r="$slowest" -v p="$pubs" -v s="$subs" -v n="$name" 'BEGIN {
		if (n ~ /^fanout/) r = r / s;   # the subscribers receive subs x what is published
		v = r / 2 / p; if (v < 1) v = 1; printf "%.0f", v }')
	declare -A P50S=() P99S=()
	for rep in $(seq "$REPS"); do
		for b in "${BROKERS[@]}"; do
			echo "== $name on $b (fixed $perpub msgs/s per publisher, run $rep of $REPS)" >&2
			start_broker "$b"
			read -r _ p50 p99 _ _ _ <<<"$(run_scenario "$name" "$subs" "$filter" "$pubs" "$topic" "$qos" "$subflags $LATFLAGS" "$perpub")"
			stop_broker
			P50S[$b]+="$p50 " P99S[$b]+="$p99 "
			echo "   p50 $p50 ms, p99 $p99 ms" >&2
		done
	done
	for b in "${BROKERS[@]}"; do
		P50[$name,$b]=$(median ${P50S[$b]}) P99[$name,$b]=$(median ${P99S[$b]})
	done
done

# Idle connections: RSS per connection at 10k.
declare -A PERCONN
IDLE_BROKERS=("${BROKERS[@]}")
case ${ONLY:-,idle,} in *,idle,*) ;; *) IDLE_BROKERS=() ;; esac
for b in "${IDLE_BROKERS[@]}"; do
	echo "== idle 10k connections on $b" >&2
	start_broker "$b"
	sleep 1
	before=$(cur_rss_kb)
	$TOOL conn -quiet -p $PORT -c 10000 -d 25s >"$WORK/conn.out" 2>"$WORK/conn.err" &
	connpid=$!
	for _ in $(seq 200); do
		sleep 0.1
		if grep -q . "$WORK/conn.err" 2>/dev/null; then :; fi
	done
	after=$(cur_rss_kb)
	kill -INT $connpid 2>/dev/null || true
	wait $connpid || true
	stop_broker
	PERCONN[$b]=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", (a - b) / 10000 }')
	echo "   $(grep '^summary' "$WORK/conn.out" | sed 's/.*connected=\([0-9]*\).*/\1/') connected, ${PERCONN[$b]} KB each" >&2
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "-" }'; }
{
	echo "Messages per publisher: $N. Broker on CPU 0, load tool on CPU 1; latency at half the slowest broker's maximum, median of $REPS runs, $LATDESC."
	echo
	echo "| scenario | broker | msgs/s | vs mosquitto | vs mochi | p50 ms | p99 ms | lost | CPU % | peak RSS MB |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for sc in "${SCENARIOS[@]}"; do
		name=${sc%%|*}
		for b in "${BROKERS[@]}"; do
			r=${MAXRATE[$name,$b]}
			echo "| $name | $b | $(printf '%.0f' "$r") | $(ratio "$r" "${MAXRATE[$name,mosquitto]}") | $(ratio "$r" "${MAXRATE[$name,mochi]}") | ${P50[$name,$b]} | ${P99[$name,$b]} | ${LOST[$name,$b]} | ${CPU[$name,$b]} | ${RSS[$name,$b]} |"
		done
	done
	echo
	if [ ${#IDLE_BROKERS[@]} -gt 0 ]; then
		echo "| idle connections (10k) | KB RSS per connection |"
		echo "|---|---:|"
		for b in "${IDLE_BROKERS[@]}"; do
			echo "| $b | ${PERCONN[$b]} |"
		done
	fi
} | tee ${OUT:+"$OUT"}
