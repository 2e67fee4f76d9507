#!/usr/bin/env bash
# bench-compare.sh compares the throughput of two Kintsu revisions side by
# side, in one run: with redis-benchmark against a real `kintsu dev`
# cluster of each (the default), or with Go benchmarks (-g).
#
# Usage: scripts/bench-compare.sh [options] REV_A REV_B
#        scripts/bench-compare.sh -g PKGS [-b REGEX] [-B TIME] [options] REV_A REV_B
#
#   -R ROUNDS   rounds of every test on both builds (default 3)
#   -T SECONDS  time budget (default 900): no test starts after it; the
#               setup before the first round is bounded on its own
#   -k          keep the temporary directory (logs, data, raw results)
#
# redis-benchmark mode:
#   -n N        requests per SET and GET run (default 20000)
#   -m M        requests per MSET run (default 3200); MSET of 10 random
#               keys spans partitions, so it is ~10x slower than SET
#   -c CLIENTS  redis-benchmark connections (default 50)
#   -P LIST     pipeline depths, quoted, space-separated (default "1 16")
#   -t TESTS    redis-benchmark tests, comma-separated (default set,get,mset)
#   -r KEYS     random keyspace size (default 100000): without it every
#               request would hit one literal key, hence one partition
#   -p PORT     base port of build A; B uses PORT+100 (default 17100)
#
# Go benchmark mode:
#   -g PKGS     packages, quoted, space-separated (e.g. "internal/server");
#               each is compiled with `go test -c` at both revisions
#   -b REGEX    benchmarks to run (default RequestPath|ApplyDataSet)
#   -B TIME     -test.benchtime (default 2s)
#
# Each revision is built in a temporary worktree. Every round runs each
# test on both builds back to back, the first build alternating between
# rounds (A B, B A, A B, ...), so drift in the machine's load hits both
# alike. The report is, per test, the median over rounds of B's
# throughput over A's in the same round (for Go benchmarks, A's ns/op
# over B's): a ratio above 1 means B is faster. The machine is shared and
# noisy: read ratios, not absolute figures, and use more rounds when
# ratios scatter.
#
# A redis-benchmark run that meets an error reply stops there (Kintsu may
# answer TRYAGAIN under load); it is reported as failed, and its round's
# pair left out of the ratio.
#
# Examples:
#   scripts/bench-compare.sh -R 5 BEFORE AFTER
#   scripts/bench-compare.sh -R 5 -g internal/server BEFORE AFTER
#
# In redis-benchmark mode both clusters (3 nodes, default partitions) run
# for the whole comparison, each on its own ports and data dir, and are
# measured only once ready with leadership balanced, so neither pays for
# elections or leader moves during a measurement. In Go mode the test
# binaries run under nice -n 10, one at a time.
set -euo pipefail

rounds=3 budget=900 keep=0
n=20000 m=3200 clients=50 pipes="1 16" tests="set,get,mset" keyspace=100000 base_a=17100
gopkgs="" gobench="RequestPath|ApplyDataSet" gotime=2s
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
while getopts "R:T:kn:m:c:P:t:r:p:g:b:B:h" opt; do
	case $opt in
	R) rounds=$OPTARG ;; T) budget=$OPTARG ;; k) keep=1 ;;
	n) n=$OPTARG ;; m) m=$OPTARG ;; c) clients=$OPTARG ;; P) pipes=$OPTARG ;;
	t) tests=$OPTARG ;; r) keyspace=$OPTARG ;; p) base_a=$OPTARG ;;
	g) gopkgs=$OPTARG ;; b) gobench=$OPTARG ;; B) gotime=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
needs="git go"
[ -n "$gopkgs" ] || needs="$needs redis-benchmark curl"
for tool in $needs; do
	command -v "$tool" >/dev/null || { echo "bench-compare: $tool is required (redis-benchmark: apt-get install redis-tools)" >&2; exit 2; }
done
have_jq=1
command -v jq >/dev/null || have_jq=0

repo=$(git rev-parse --show-toplevel)
rev_a=$(git -C "$repo" rev-parse --verify "$1^{commit}")
rev_b=$(git -C "$repo" rev-parse --verify "$2^{commit}")
base_b=$((base_a + 100))
start_time=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kintsu-bench-XXXXXX")
results=$tmp/results.tsv # build, round, test, throughput (higher is faster)
: >"$results"
worktrees=()
devs=()

# ours lists the processes whose command line names our temporary
# directory: the dev launchers, the nodes they started (in their own
# process groups, so signalling a launcher's group would miss them if it
# died) and the test binaries.
ours() {
	local d cmd
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" = "$$" ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		[[ $cmd == *"$tmp/"* ]] && echo "${d#/proc/}"
	done
	return 0
}

cleanup() {
	local rc=$? pid i
	trap - EXIT INT TERM
	# A launcher stops its nodes gracefully on SIGTERM, each within 10s.
	for pid in "${devs[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 150; i++)); do
		[ -z "$(ours)" ] && break
		sleep 0.2 # polling for exits, bounded to 30s
	done
	for pid in $(ours); do
		echo "bench-compare: killing leftover process $pid" >&2
		kill -KILL "$pid" 2>/dev/null || true
	done
	for wt in "${worktrees[@]}"; do git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true; done
	if [ "$keep" = 1 ]; then
		echo "bench-compare: kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

checkout() { # name rev
	local wt=$tmp/src-$1
	git -C "$repo" worktree add --quiet --detach "$wt" "$2"
	worktrees+=("$wt")
	mkdir -p "$tmp/$1"
	echo "building $1 = $(git -C "$repo" log -1 --format='%h %s' "$2")"
}

record() { # build round test throughput
	printf '%s\t%s\t%s\t%s\n' "$@" >>"$results"
	printf '  %s  %-52s %12.1f /s\n' "$1" "$3" "$4"
}

over_budget() { ((SECONDS - start_time > budget)); }

# ---- redis-benchmark mode ----

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_dev() { # name base_port
	local p
	for p in $(($2 + 1)) $(($2 + 1001)) $(($2 + 10001)); do
		if port_busy "$p"; then
			echo "bench-compare: port $p is in use; pick another base with -p" >&2
			exit 1
		fi
	done
	"$tmp/$1/kintsu" dev --base-port "$2" --dir "$tmp/$1/data" >"$tmp/$1/dev.log" 2>&1 &
	devs+=($!)
}

# wait_ready waits until every node of the cluster says it is ready, then
# (with jq) until no node leads two more partitions than another, as the
# nodes' own balancing leaves it. Both waits are bounded.
wait_ready() { # name base_port
	local name=$1 base=$2 deadline id status counts
	deadline=$((SECONDS + 90))
	for id in 1 2 3; do
		until curl -sf -m 2 "http://127.0.0.1:$((base + 1000 + id))/readyz" >/dev/null; do
			if ((SECONDS > deadline)); then
				echo "bench-compare: $name not ready after 90s; its log:" >&2
				tail -20 "$tmp/$name/dev.log" >&2
				exit 1
			fi
			sleep 0.5 # polling readiness, bounded above
		done
	done
	[ "$have_jq" = 1 ] || { echo "$name ready (no jq: not waiting for balanced leadership)"; return; }
	deadline=$((SECONDS + 150))
	while :; do
		status=$(curl -sf -m 2 "http://127.0.0.1:$((base + 1001))/v1/status" || true)
		counts=$(jq -r '[.partitions[].leader] as $l | [.nodes[].id | . as $id | [$l[] | select(. == $id)] | length]
			| if ($l | all(. != 0)) and (max - min <= 1) then "balanced \(.)" else "\(.)" end' <<<"$status" 2>/dev/null || true)
		case $counts in balanced*) echo "$name ready, partitions led per node: ${counts#balanced }"; return ;; esac
		if ((SECONDS > deadline)); then
			echo "$name: leadership still unbalanced after 150s ($counts); measuring anyway" >&2
			return
		fi
		sleep 1 # polling the nodes' balancing, bounded above
	done
}

port_of() { if [ "$1" = A ]; then echo $((base_a + 1)); else echo $((base_b + 1)); fi; }

# rb_bench runs one redis-benchmark test and records its requests/s.
# redis-benchmark gives up at the first error reply; Kintsu may answer one
# under load (a cross-partition MSET that cannot prepare within the
# request's deadline says TRYAGAIN), so a failed run is recorded as such
# and the comparison goes on without that round's pair.
rb_bench() { # name round test pipeline
	local reqs=$n rps err=$tmp/$1/redis-benchmark.err
	[ "$3" = mset ] && reqs=$m
	rps=$(timeout 300 redis-benchmark -p "$(port_of "$1")" --csv -t "$3" -n "$reqs" -c "$clients" -P "$4" -r "$keyspace" 2>"$err" |
		awk -F'"' 'NR > 1 && $2 != "" { print $4; exit }') || true
	if [ -z "$rps" ]; then
		printf '%s\t%s\t%s\tfailed\n' "$1" "$2" "$3 -P $4" >>"$results"
		printf '  %s  %-52s failed: %s\n' "$1" "$3 -P $4" "$(tail -c 300 "$err" | tr '\r\n' '  ')"
		return
	fi
	record "$1" "$2" "$3 -P $4" "$rps"
}

redis_mode() {
	local name round p t order
	for name in A B; do
		checkout $name "$([ $name = A ] && echo "$rev_a" || echo "$rev_b")"
		(cd "$tmp/src-$name" && timeout 600 nice -n 5 go build -o "$tmp/$name/kintsu" ./cmd/kintsu)
	done
	start_dev A "$base_a"
	start_dev B "$base_b"
	wait_ready A "$base_a"
	wait_ready B "$base_b"
	# Warm-up, not recorded: first writes create Pebble files and grow Go
	# heaps on both builds alike.
	for name in A B; do
		timeout 120 redis-benchmark -p "$(port_of $name)" -q -t set -n 2000 -c "$clients" -r "$keyspace" >/dev/null 2>&1 || true
	done
	IFS=, read -ra test_list <<<"$tests"
	for ((round = 1; round <= rounds; round++)); do
		order="A B"
		((round % 2 == 0)) && order="B A"
		echo "round $round ($order)"
		for p in $pipes; do
			for t in "${test_list[@]}"; do
				# Checked per test, so A's and B's runs of a test stay paired.
				if over_budget; then
					echo "bench-compare: time budget of ${budget}s spent; reporting what ran" >&2
					return
				fi
				for name in $order; do rb_bench $name $round "$t" "$p"; done
			done
		done
	done
}

# ---- Go benchmark mode ----

testbin() { echo "$tmp/$1/$(tr / _ <<<"$2").test"; } # name pkg

# go_bench runs one package's benchmarks once and records each one's ops/s
# (1e9 / ns/op). The raw output accumulates in $tmp/NAME/go-bench.txt, in
# the format benchstat reads.
go_bench() { # name round pkg
	local out=$tmp/$1/run.txt
	if ! (cd "$tmp/src-$1/$3" && timeout 900 nice -n 10 "$(testbin "$1" "$3")" -test.run '^$' \
		-test.bench "$gobench" -test.benchtime "$gotime" -test.count 1 -test.timeout 15m) >"$out" 2>&1; then
		echo "bench-compare: $3 benchmarks of $1 failed:" >&2
		tail -20 "$out" >&2
		exit 1
	fi
	cat "$out" >>"$tmp/$1/go-bench.txt"
	while read -r bench ns; do
		record "$1" "$2" "$bench" "$(awk -v ns="$ns" 'BEGIN { print 1e9 / ns }')"
	done < <(awk '/^Benchmark/ { for (i = 3; i <= NF; i++) if ($i == "ns/op") print $1, $(i - 1) }' "$out")
}

go_mode() {
	local name round pkg order
	for name in A B; do
		checkout $name "$([ $name = A ] && echo "$rev_a" || echo "$rev_b")"
		for pkg in $gopkgs; do
			(cd "$tmp/src-$name" && timeout 600 nice -n 5 go test -c -o "$(testbin $name "$pkg")" "./$pkg")
			[ -x "$(testbin $name "$pkg")" ] || { echo "bench-compare: $pkg has no tests at $name" >&2; exit 1; }
		done
	done
	for ((round = 1; round <= rounds; round++)); do
		order="A B"
		((round % 2 == 0)) && order="B A"
		echo "round $round ($order)"
		for pkg in $gopkgs; do
			if over_budget; then
				echo "bench-compare: time budget of ${budget}s spent; reporting what ran" >&2
				return
			fi
			for name in $order; do go_bench $name $round "$pkg"; done
		done
	done
}

if [ -n "$gopkgs" ]; then go_mode; else redis_mode; fi
[ -s "$results" ] || exit 1

# ---- report ----

median() { sort -g | awk 'NF { v[++c] = $1 } END { if (c == 0) print "nan"; else if (c % 2) print v[(c + 1) / 2]; else print (v[c / 2] + v[c / 2 + 1]) / 2 }'; }

echo
echo "A = $(git -C "$repo" log -1 --format='%h %s' "$rev_a")"
echo "B = $(git -C "$repo" log -1 --format='%h %s' "$rev_b")"
echo "throughput per second, median over rounds; B/A is the median of the rounds' ratios (>1: B faster)"
printf '%-44s %12s %12s %7s   %s\n' test A B B/A "B/A by round (failed runs)"
mapfile -t keys < <(awk -F'\t' '!seen[$3]++ { print $3 }' "$results")
for key in "${keys[@]}"; do
	through() { awk -F'\t' -v b="$1" -v k="$key" '$1 == b && $3 == k && $4 != "failed" { print $4 }' "$results"; }
	failed=$(awk -F'\t' -v k="$key" '$3 == k && $4 == "failed" { f[$1]++ } END { if (f["A"] + f["B"]) printf "(A %d, B %d)", f["A"], f["B"] }' "$results")
	# Pair A and B by round: a round's two runs ran back to back.
	ratios=$(awk -F'\t' -v k="$key" '$3 == k { r[$1, $2] = $4; if ($2 + 0 > n) n = $2 + 0 }
		END { for (i = 1; i <= n; i++) if (r["A", i] + 0 > 0 && r["B", i] + 0 > 0) printf "%.3f\n", r["B", i] / r["A", i] }' "$results")
	[ -n "$ratios" ] || ratios=nan
	printf '%-44s %12.1f %12.1f %7.3f   %s\n' "$key" "$(through A | median)" "$(through B | median)" \
		"$(median <<<"$ratios")" "$(echo $ratios) $failed"
done
if [ -n "$gopkgs" ] && [ "$keep" = 1 ]; then
	echo "raw output for benchstat: $tmp/A/go-bench.txt $tmp/B/go-bench.txt"
fi
