#!/bin/sh
# Benchmark of maildist plan + assign on generated surveys.
#
#   bench/plan/run.sh [SIZES...]       default: 100000 1000000 5000000
#
# For each size: generate RUN/raw.tsv (200 hosts in 4 pools, skewed; the
# first host of each pool drains, the second takes no new users), then run
# `maildist plan RUN --hosts RUN/hosts.toml -v` and `maildist assign RUN -v`
# under /usr/bin/time -v, and print a table: the time split that -v
# reports (read, plan/assign, write), wall and CPU seconds, and peak memory.
# Set BENCH_DIR to keep the runs somewhere else than a temp folder; a
# raw.tsv already there is used again unless BENCH_REGEN is set.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
sizes=${*:-100000 1000000 5000000}
dir=${BENCH_DIR:-$(mktemp -d /tmp/maildist-bench.XXXXXX)}
mkdir -p "$dir"
bin="$dir/maildist"
(cd "$repo" && go build -o "$bin" ./cmd/maildist)

field() { # field FILE PATTERN: the value after the pattern in time -v output
	sed -n "s/^[[:space:]]*$2: *//p" "$1" | head -1
}
wall() { # h:mm:ss or m:ss.ss → seconds
	echo "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'
}

printf '%-9s %-7s %7s %7s %7s %7s %7s %8s\n' users step read work write wall cpu peakMiB
for n in $sizes; do
	run="$dir/run-$n"
	mkdir -p "$run"
	if [ ! -s "$run/raw.tsv" ] || [ -n "${BENCH_REGEN:-}" ]; then
		(cd "$here" && go run gen.go -users "$n" -hosts 200 -pools 4 -out "$run")
	fi
	for step in plan assign; do
		if [ $step = plan ]; then
			set -- plan "$run" --hosts "$run/hosts.toml" -v
		else
			set -- assign "$run" -v
		fi
		/usr/bin/time -v "$bin" "$@" >"$run/$step.out" 2>"$run/$step.err"
		line=$(grep "^$step: " "$run/$step.err")
		# plan: read N rows in Xs, planned in Ys, wrote the files in Zs
		# assign: read ... in Xs, assigned in Ys, wrote ... in Zs
		read=$(echo "$line" | sed 's/.*read [^,]* in \([0-9.]*\)s,.*/\1/')
		work=$(echo "$line" | sed 's/.*\(planned\|assigned\) in \([0-9.]*\)s.*/\2/')
		write=$(echo "$line" | sed 's/.*wrote .* in \([0-9.]*\)s$/\1/')
		w=$(wall "$(field "$run/$step.err" 'Elapsed (wall clock) time (h:mm:ss or m:ss)')")
		cpu=$(echo "$(field "$run/$step.err" 'User time (seconds)') $(field "$run/$step.err" 'System time (seconds)')" | awk '{ printf "%.2f", $1 + $2 }')
		rss=$(field "$run/$step.err" 'Maximum resident set size (kbytes)' | awk '{ printf "%d", $1 / 1024 }')
		printf '%-9s %-7s %7s %7s %7s %7s %7s %8s\n' "$n" "$step" "$read" "$work" "$write" "$w" "$cpu" "$rss"
	done
done
echo "runs in $dir (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
