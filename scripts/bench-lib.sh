# Helpers shared by the benchmark scripts (sourced, not run).

# Settings every wrk benchmark takes from the environment.
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

# wrk prints latencies as 812.00us, 1.23ms or 1.01s: normalise to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# Where wrk and the servers run. By default they share every core and wrk runs two threads.
# BENCH_PIN=1 gives wrk (one thread) the last core and the servers the others, so a server's
# requests/s measure the server and not also the client's side of TLS: servers are started
# with "${server_pin[@]}" and told to use $server_cores threads; wrk runs as
# "${client_pin[@]}" wrk -t"$wrk_threads".
cores=$(nproc)
server_pin=() client_pin=() wrk_threads=2 server_cores=$cores
pinning="wrk and servers share all $cores cores"
if [ "${BENCH_PIN:-0}" = 1 ]; then
  [ "$cores" -ge 2 ] || { echo "BENCH_PIN=1 needs two cores or more" >&2; exit 1; }
  server_cores=$((cores - 1))
  server_pin=(taskset -c "0-$((server_cores - 1))")
  client_pin=(taskset -c "$server_cores")
  wrk_threads=1
  pinning="wrk pinned to core $server_cores, servers to cores 0-$((server_cores - 1))"
fi

# wrk_run URL OUT [WRK_ARGS...]: warm up 2 s, then measure into OUT (uses $connections,
# $duration and the placement above); extra arguments such as `-s script.lua` go to both runs.
wrk_run() {
  local url=$1 out=$2
  shift 2
  "${client_pin[@]}" wrk -t"$wrk_threads" -c"$connections" -d2s "$@" "$url" >/dev/null
  "${client_pin[@]}" wrk -t"$wrk_threads" -c"$connections" -d"$duration" --latency "$@" "$url" >"$out"
}
# wrk_summary OUT: prints "requests_per_second p99_ms"; wrk's error lines go to stderr.
wrk_summary() {
  local bad
  bad=$(awk '/Non-2xx|Socket errors/ { print }' "$1")
  [ -z "$bad" ] || echo "  $bad" >&2
  echo "$(awk '/^Requests\/sec/ { print $2 }' "$1") $(to_ms "$(awk '$1 == "99%" { print $2 }' "$1")")"
}

# stat_ticks FILE: "SESSION TICKS" for the process of a /proc/PID/stat file, ticks being its
# user + system clock ticks. The command name in parentheses may hold spaces, so the fields
# are read after it: state ppid pgrp session ... utime (12th) stime (13th).
stat_ticks() {
  local stat fields
  stat=$(cat "$1" 2>/dev/null) || return 0
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[3]} $((fields[11] + fields[12]))"
}

# cpu_ticks SID: the ticks of every process in session SID (a server started with setsid, so
# its worker processes count too).
cpu_ticks() {
  local stat
  for stat in /proc/[0-9]*/stat; do stat_ticks "$stat"; done |
    awk -v sid="$1" '$1 == sid { total += $2 } END { print total + 0 }'
}

# pid_ticks PID: the ticks of one process.
pid_ticks() { stat_ticks "/proc/$1/stat" | awk '{ print $2 }'; }

# wrk_requests OUT: the number of requests wrk completed.
wrk_requests() { awk '/requests in/ { print $1 }' "$1"; }
