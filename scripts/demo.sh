#!/bin/bash
# The same loopback transfer twice: unlimited, then limited to 1 MiB/s by
# `limiter set` before it connects. Uses its own instance and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMITER=bin/limiter
export LIMITER_INSTANCE="demo_$$"
RATE=${RATE:-1m}
SECONDS_EACH=${SECONDS_EACH:-5}
PORT=$((30000 + $$ % 20000))
work=$(mktemp -d)
server=""
client=""

cleanup() {
	[ -n "$client" ] && kill "$client" 2>/dev/null || true
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	$LIMITER purge >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

rate_of() { # receiver rate from iperf3 -J output
	node -e 'const e=JSON.parse(require("fs").readFileSync(0,"utf8")).end;
		const s=e.sum_received??e.sum; const B=s.bits_per_second/8;
		console.log(`${(B/1048576).toFixed(3)} MiB/s (${(s.bits_per_second/1e6).toFixed(2)} Mbit/s)`)' <"$1"
}

iperf3 -s -p "$PORT" -B 127.0.0.1 >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do ss -ltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.1; done

echo "== 1. unlimited: iperf3 to 127.0.0.1 for ${SECONDS_EACH}s"
iperf3 -c 127.0.0.1 -p "$PORT" -t "$SECONDS_EACH" -J >"$work/free.json"
echo "   received: $(rate_of "$work/free.json")"

echo "== 2. limited: limiter set --pid <iperf3> --rate $RATE, then the same transfer (first second omitted: the bucket starts full)"
mkfifo "$work/go"
(read -r _ <"$work/go"; exec iperf3 -c 127.0.0.1 -p "$PORT" -t "$SECONDS_EACH" -O 1 -J >"$work/limited.json") &
client=$!
$LIMITER set --pid "$client" --rate "$RATE"
echo go >"$work/go"
sleep 2
echo "== limiter list, during the transfer"
$LIMITER list
wait "$client"
client=""
echo "   received: $(rate_of "$work/limited.json")"
echo "== limiter purge"
$LIMITER purge
