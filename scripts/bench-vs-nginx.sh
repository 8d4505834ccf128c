#!/usr/bin/env bash
# upgate next to a bare nginx upload sink on the same box, in one run (issue 11). A by-hand
# benchmark, not a timed test: compare the ratios, the box is shared.
#
#   bash scripts/bench-vs-nginx.sh                     # RUNS=3 DURATION=10s
#   RUNS=1 DURATION=5s PROFILE=1 bash scripts/bench-vs-nginx.sh
#
# Rows (each run does every row, the baseline then upgate back to back):
#   PUT 2 MiB x 64 connections, PUT 20 MiB x 8, PUT 4 KiB x 32   nginx WebDAV PUT vs upgate
#                                                                 presigned SigV4 PUT
#   GET 2 MiB x 16                                                nginx static GET (sendfile) vs
#                                                                 upgate presigned SigV4 GET
#   POST /v1/uploads x 16 (mint a link)                           FastAPI + boto3 /upload-url
#                                                                 (uvicorn, 2 workers) vs upgate
# Every upload writes a new key (wrk walks a file of request targets, see scripts/bench/wrk.lua);
# bodies are valid PDFs that upgate's sniffing and PDF checks accept. After each upload row the
# objects stored on each side are counted against wrk's 2xx answers, then removed.
#
# What it needs and does: installs nginx and wrk (apt, as root) and fastapi, uvicorn[standard]
# and boto3 (pip) if missing; uses target/release/upgate (built with cargo if missing) or
# UPGATE_BIN; one temp dir under target/ holds nginx's root and upgate's data_dir (same disk);
# free ports; every process it starts is stopped on exit.
#
# Environment:
#   DURATION=10s        wrk duration per row and side (wrk syntax: 10s, 1m)
#   RUNS=3              runs; the table shows each run and the median ratio per row
#   PROFILE=1           perf record upgate during the PROFILE_ROW row (default put2m) of run 1:
#                       target/perf-ROW.txt (perf report --stdio --no-children | head -150)
#                       and target/perf-ROW-flat.txt (no call graphs); cpu-clock on VMs
#   ROWS="put2m put20m put4k get2m mint"   the rows to run, in this order
#   DURABLE=0           0: upgate flushes neither objects nor SQLite commits to the disk before
#                       answering (storage.local.fsync = metadata.fsync = false), like nginx;
#                       1: its defaults (both flushed: an answered upload survives power loss)
#   UPGATE_BIN=PATH     the upgate binary (default target/release/upgate)
#   UPGATE_EXTRA_TOML=F a TOML file merged over the generated upgate config (as if appended,
#                       but it may name a table the generated config has), e.g. a durability
#                       switch; its keys win
#   WRK_THREADS=N       wrk threads (default: the core count)
#   GET_FILES=256       2 MiB objects uploaded to each side before the runs for the GET row
#   KEEP=1              keep the temp dir (configs, logs, wrk summaries)
#   BENCH_DIR=DIR       where the temp dir goes (default target/; /dev/shm takes the disk out)
# Output: the table on stdout, target/bench-vs-nginx.json. Beside each side's req/s the table
# shows its server's CPU time per request (user + system, from /proc, workers included): on a
# box where wrk and the server share the cores, req/s ratios partly measure the scheduler, CPU
# per request measures the work.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
here=$repo/scripts/bench
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-0}
KEEP=${KEEP:-0}
DURABLE=${DURABLE:-0}
ROWS=${ROWS:-put2m put20m put4k get2m mint}
PROFILE_ROW=${PROFILE_ROW:-put2m}
for row in $ROWS; do
	case $row in put2m | put20m | put4k | get2m | mint) ;; *) echo "bench-vs-nginx: unknown row $row" >&2; exit 1 ;; esac
done
GET_FILES=${GET_FILES:-256}
cores=$(nproc)
THREADS=${WRK_THREADS:-$cores}
ACCESS_KEY=AKIDBENCHVSNGINX0001
SECRET_KEY=bench-vs-nginx-secret-0123456789abcdefgh
MIB=1048576

die() {
	echo "bench-vs-nginx: $*" >&2
	exit 1
}

case $DURATION in
*s) secs=${DURATION%s} ;;
*m) secs=$((${DURATION%m} * 60)) ;;
*[0-9]) secs=$DURATION ;;
*) die "DURATION=$DURATION: use seconds (10s) or minutes (1m)" ;;
esac
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || die "DURATION=$DURATION: not a whole number of seconds"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS: not a positive number"

# --- tools ---------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
	[[ $EUID -eq 0 ]] || die "needs ${missing[*]}: sudo apt-get install -y ${missing[*]}"
	echo "installing ${missing[*]} (apt)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
nginx -V 2>&1 | grep -q -- '--with-http_dav_module' || die "this nginx has no WebDAV module (http_dav_module)"
if ! python3 -c 'import fastapi, uvicorn, boto3' 2>/dev/null; then
	echo "installing fastapi, uvicorn[standard], boto3 (pip)"
	python3 -m pip install -q fastapi 'uvicorn[standard]' boto3
fi

bin=${UPGATE_BIN:-$repo/target/release/upgate}
if [[ ! -x $bin ]]; then
	[[ -z ${UPGATE_BIN:-} ]] || die "UPGATE_BIN=$bin is not an executable"
	echo "no $bin: building it (cargo build --release)"
	nice -n 10 cargo build --release --bin upgate
fi

# --- places and ports ----------------------------------------------------------------------------
mkdir -p "$repo/target"
work=$(mktemp -d "${BENCH_DIR:-$repo/target}/bench-vs-nginx.XXXXXX")
chmod 755 "$work"
mkdir -p "$work/nginx/root" "$work/nginx/body" "$work/upgate" "$work/results" "$work/logs"
read -r p_nginx p_upgate p_mint < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
nginx_url=http://127.0.0.1:$p_nginx
upgate_url=http://127.0.0.1:$p_upgate
mint_url=http://127.0.0.1:$p_mint

pids=()
cleanup() {
	local rc=$? pid
	trap - EXIT
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ $KEEP == 1 || $rc -ne 0 ]]; then
		echo "temp dir kept: $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # URL PID NAME LOG: waits for any HTTP answer
	local i
	for ((i = 0; i < 300; i++)); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1") == 000 ]] || return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	cat "$4" >&2 || true
	die "$3 did not start"
}

# --- nginx ---------------------------------------------------------------------------------------
user_line=""
if [[ $EUID -eq 0 ]]; then
	# Workers as nobody when we are root: the sink needs no privilege.
	if runuser -u nobody -- test -x "$work" 2>/dev/null; then
		chown -R nobody:"$(id -gn nobody)" "$work/nginx/root" "$work/nginx/body"
		user_line="user nobody $(id -gn nobody);"
	else
		echo "note: nobody cannot reach $work; nginx workers run as root"
		user_line="user root root;"
	fi
fi
sed -e "s|@USER@|$user_line|" -e "s|@WORKERS@|$cores|" -e "s|@DIR@|$work/nginx|g" \
	-e "s|@ROOT@|$work/nginx/root|" -e "s|@PORT@|$p_nginx|" \
	"$here/nginx.conf.in" >"$work/nginx/nginx.conf"
nginx -t -q -c "$work/nginx/nginx.conf" -p "$work/nginx/" -e "$work/nginx/error.log"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -e "$work/nginx/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_http "$nginx_url/" "$nginx_pid" nginx "$work/nginx/error.log"

# --- upgate --------------------------------------------------------------------------------------
extra=()
if [[ -n ${UPGATE_EXTRA_TOML:-} ]]; then
	[[ -r $UPGATE_EXTRA_TOML ]] || die "UPGATE_EXTRA_TOML=$UPGATE_EXTRA_TOML is not readable"
	extra=(--extra "$UPGATE_EXTRA_TOML")
fi
[[ $DURABLE == 1 ]] && extra+=(--durable)
python3 "$here/bench.py" config --out "$work/upgate.toml" --listen "127.0.0.1:$p_upgate" \
	--data-dir "$work/upgate" "${extra[@]}"
overrides=$(compgen -e | grep '^UPGATE__' || true)
[[ -z $overrides ]] || echo "note: environment overrides apply to upgate too: $(echo "$overrides" | tr '\n' ' ')"
export UPGATE_ROOT_ACCESS_KEY=$ACCESS_KEY UPGATE_ROOT_SECRET_KEY=$SECRET_KEY
"$bin" check-config --config "$work/upgate.toml" >"$work/logs/check-config.txt" 2>&1 ||
	{ cat "$work/logs/check-config.txt" >&2; die "upgate refused the generated config"; }
api_key=$("$bin" admin create-tenant bench --config "$work/upgate.toml" 2>"$work/logs/tenant.err" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])') ||
	{ cat "$work/logs/tenant.err" >&2; die "upgate admin create-tenant failed"; }
env -u RUST_LOG "$bin" serve --config "$work/upgate.toml" >"$work/upgate.log" 2>&1 &
upgate_pid=$!
pids+=("$upgate_pid")
wait_http "$upgate_url/healthz" "$upgate_pid" upgate "$work/upgate.log"

# --- the minting baseline ------------------------------------------------------------------------
BASELINE_ENDPOINT=$upgate_url BASELINE_API_KEY=$api_key BASELINE_ACCESS_KEY=$ACCESS_KEY \
	BASELINE_SECRET_KEY=$SECRET_KEY python3 -m uvicorn mint_baseline:app --app-dir "$here" \
	--host 127.0.0.1 --port "$p_mint" --workers 2 --log-level warning --no-access-log \
	>"$work/baseline.log" 2>&1 &
mint_pid=$!
pids+=("$mint_pid")
wait_http "$mint_url/docs" "$mint_pid" "the FastAPI baseline" "$work/baseline.log"

# --- bodies --------------------------------------------------------------------------------------
python3 "$here/bench.py" pdf $((2 * MIB)) "$work/body-2m.pdf"
python3 "$here/bench.py" pdf $((20 * MIB)) "$work/body-20m.pdf"
python3 "$here/bench.py" pdf 4096 "$work/body-4k.pdf"
printf '{"filename": "scan.pdf", "content_type": "application/pdf", "size": %d}' $((2 * MIB)) >"$work/mint.json"
for _ in $(seq 64); do echo /v1/uploads; done >"$work/t-mint-upgate.txt"
for _ in $(seq 64); do echo /upload-url; done >"$work/t-mint-baseline.txt"

echo "upgate $bin ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))," \
	"$(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $cores cores," \
	"wrk -t$THREADS, $RUNS x $DURATION per row and side; data on $(df --output=source "$work" | tail -1)"

presign() { # OUT PREFIX COUNT [--plain | --method GET] ...
	local out=$1 prefix=$2 count=$3
	shift 3
	python3 "$here/presign.py" urls --endpoint "$upgate_url" --access-key "$ACCESS_KEY" \
		--secret-key "$SECRET_KEY" --prefix "$prefix" --count "$count" --out "$out" "$@"
}

cpu_ticks() { # PID: CPU clock ticks (user + system) of PID and its child processes so far
	local total=0 p f
	for p in "$1" $(pgrep -P "$1" || true); do
		# /proc/PID/stat: fields 14 and 15 after the command name (which may hold spaces).
		f=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		read -r -a f <<<"$f"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

# run_wrk ROW RUN SIDE BASE_URL CONNS TARGETS METHOD BODY CTYPE AUTH COUNT_STATUSES [key=value...]
# The server's CPU time during the run (its process and children: nginx's and uvicorn's
# workers) is recorded beside wrk's figures.
run_wrk() {
	local row=$1 run=$2 side=$3 base=$4 conns=$5 targets=$6 method=$7 body=$8 ctype=$9 auth=${10}
	local status=${11} kv sets=()
	shift 11
	for kv in "$@"; do sets+=(--set "$kv"); done
	local name=$row-$run-$side t=$THREADS server
	((t <= conns)) || t=$conns
	case $side/$row in
	upgate/*) server=$upgate_pid ;;
	baseline/mint) server=$mint_pid ;;
	*) server=$nginx_pid ;;
	esac
	sync
	local ticks_before
	ticks_before=$(cpu_ticks "$server")
	BENCH_TARGETS=$targets BENCH_THREADS=$t BENCH_METHOD=$method BENCH_BODY=$body \
		BENCH_CTYPE=$ctype BENCH_AUTH=$auth BENCH_STATUS=$status BENCH_OUT=$work/logs/$name.wrk.json \
		wrk -t"$t" -c"$conns" -d"$DURATION" --timeout 60s -s "$here/wrk.lua" "$base" \
		>"$work/logs/$name.txt" 2>&1 || { cat "$work/logs/$name.txt" >&2; die "wrk failed ($name)"; }
	local cpu_secs
	cpu_secs=$(python3 -c "import os, sys; print(($(cpu_ticks "$server") - $ticks_before) / os.sysconf('SC_CLK_TCK'))")
	local body_bytes=0
	[[ -z $body ]] || body_bytes=$(stat -c %s "$body")
	python3 "$here/bench.py" annotate "$work/logs/$name.wrk.json" "$work/results/$name.json" \
		--set "row=$row" --set "run=$run" --set "side=$side" --set "connections=$conns" \
		--set "targets=$(wc -l <"$targets")" --set "body_bytes=$body_bytes" --set "threads=$t" \
		--set "server_cpu_secs=$cpu_secs" "${sets[@]}"
}

set_result() { # ROW RUN SIDE key=value: adds a fact to a row's result
	python3 - "$work/results/$1-$2-$3.json" "$4" <<'EOF'
import json, sys
path, kv = sys.argv[1], sys.argv[2]
k, _, v = kv.partition("=")
with open(path) as f:
    r = json.load(f)
r[k] = json.loads(v)
with open(path, "w") as f:
    json.dump(r, f)
EOF
}

sample_proc() { # PID OUT: the peak VmRSS (KiB) and thread count, every 100 ms, until killed
	local pid=$1 out=$2 rss=0 thr=0 k v
	while [[ -r /proc/$pid/status ]]; do
		while read -r k v _; do
			if [[ $k == VmRSS: && $v -gt $rss ]]; then rss=$v; fi
			if [[ $k == Threads: && $v -gt $thr ]]; then thr=$v; fi
		done <"/proc/$pid/status"
		echo "$rss $thr" >"$out"
		sleep 0.1
	done
}

settle_upgate() { # prints the seconds upgate stayed busy after a row (background work)
	python3 "$here/bench.py" settle --pid "$upgate_pid"
}

# Targets generated per row and run: about twice the rate the faster side reached on the 2-core
# box, so keys do not repeat; a reuse is reported ("targets reused").
declare -A nginx_rate=([put2m]=1000 [put20m]=150 [put4k]=32000)
declare -A upgate_rate=([put2m]=600 [put20m]=80 [put4k]=12000)
declare -A conns=([put2m]=64 [put20m]=8 [put4k]=32)
declare -A bodies=([put2m]=$work/body-2m.pdf [put20m]=$work/body-20m.pdf [put4k]=$work/body-4k.pdf)

perf_event=""
if [[ $PROFILE == 1 ]]; then
	if ! command -v perf >/dev/null; then
		echo "PROFILE=1: no perf here (Debian: apt-get install linux-perf); not profiling"
	elif ! perf stat -e instructions true >/dev/null 2>&1; then
		echo "PROFILE=1: perf cannot count here ($(perf stat -e instructions true 2>&1 | head -1)); not profiling"
	elif perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
		echo "PROFILE=1: no hardware counters here (virtual machine); sampling cpu-clock instead"
		perf_event=cpu-clock
	else
		perf_event=cycles
	fi
fi
peak_rss_kib=0 peak_threads=0 idle_threads=0 idle_rss_kib=0

perf_pid=""
perf_start() { # ROW RUN: samples upgate while the row runs, if it is the profiled row of run 1
	perf_pid=""
	if [[ -n $perf_event && $2 == 1 && $1 == "$PROFILE_ROW" ]]; then
		perf record -e "$perf_event" -g -p "$upgate_pid" -o "$work/perf.data" >"$work/logs/perf.txt" 2>&1 &
		perf_pid=$!
	fi
}

perf_stop() { # ROW
	[[ -n $perf_pid ]] || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
	perf_pid=""
	{ perf report -i "$work/perf.data" --stdio --no-children 2>/dev/null || true; } | head -150 >"$repo/target/perf-$1.txt"
	# The call graphs fill those 150 lines after a dozen symbols; the flat list goes further.
	perf report -i "$work/perf.data" --stdio --no-children -g none --percent-limit 0.3 2>/dev/null |
		sed 's/  *$//' >"$repo/target/perf-$1-flat.txt" || true
	echo "  perf ($perf_event): target/perf-$1.txt, target/perf-$1-flat.txt"
}

upload_row() { # ROW RUN
	local row=$1 run=$2 prefix=bench/r$2/$1/ n size
	size=$(stat -c %s "${bodies[$row]}")
	# nginx
	presign "$work/t-$row-nginx.txt" "$prefix" $((nginx_rate[$row] * secs)) --plain
	run_wrk "$row" "$run" baseline "$nginx_url" "${conns[$row]}" "$work/t-$row-nginx.txt" PUT \
		"${bodies[$row]}" application/pdf "" 1
	python3 "$here/bench.py" verify-dir --dir "$work/nginx/root/uploads" --prefix "$prefix" \
		--result "$work/results/$row-$run-baseline.json" --size "$size" >/dev/null
	rm -rf "$work/nginx/root/uploads/bench/r$run"
	# upgate
	settle_upgate >/dev/null
	presign "$work/t-$row-upgate.txt" "$prefix" $((upgate_rate[$row] * secs))
	local sampler=""
	if [[ $row == put2m ]]; then
		read -r idle_rss_kib idle_threads < <(awk '/^VmRSS:/{r=$2} /^Threads:/{t=$2} END{print r, t}' "/proc/$upgate_pid/status")
		sample_proc "$upgate_pid" "$work/peak.txt" &
		sampler=$!
	fi
	perf_start "$row" "$run"
	run_wrk "$row" "$run" upgate "$upgate_url" "${conns[$row]}" "$work/t-$row-upgate.txt" PUT \
		"${bodies[$row]}" application/pdf "" 1
	if [[ -n $sampler ]]; then
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		local r t
		read -r r t <"$work/peak.txt"
		if ((r > peak_rss_kib)); then peak_rss_kib=$r; fi
		if ((t > peak_threads)); then peak_threads=$t; fi
		set_result "$row" "$run" upgate "peak={\"rss_kib\": $r, \"threads\": $t, \"idle_rss_kib\": $idle_rss_kib, \"idle_threads\": $idle_threads}"
	fi
	perf_stop "$row"
	n=$(settle_upgate)
	set_result "$row" "$run" upgate "busy_after_secs=$n"
	if [[ ${n%.*} -ge 1 ]]; then echo "  upgate kept working ${n}s after the row"; fi
	python3 "$here/bench.py" verify-s3 --endpoint "$upgate_url" --access-key "$ACCESS_KEY" \
		--secret-key "$SECRET_KEY" --prefix "$prefix" --result "$work/results/$row-$run-upgate.json" \
		--size "$size" --delete >/dev/null
	settle_upgate >/dev/null
}

get_row() { # RUN
	local run=$1
	presign "$work/t-get-nginx.txt" bench/seed/ "$GET_FILES" --plain
	run_wrk get2m "$run" baseline "$nginx_url" 16 "$work/t-get-nginx.txt" GET "" "" "" 0 \
		reuse_ok=true "object_bytes=$((2 * MIB))"
	presign "$work/t-get-upgate.txt" bench/seed/ "$GET_FILES" --method GET
	perf_start get2m "$run"
	run_wrk get2m "$run" upgate "$upgate_url" 16 "$work/t-get-upgate.txt" GET "" "" "" 0 \
		reuse_ok=true "object_bytes=$((2 * MIB))"
	perf_stop get2m
	settle_upgate >/dev/null
}

mint_row() { # RUN
	local run=$1
	run_wrk mint "$run" baseline "$mint_url" 16 "$work/t-mint-baseline.txt" POST "$work/mint.json" \
		application/json "Bearer $api_key" 1 reuse_ok=true
	perf_start mint "$run"
	run_wrk mint "$run" upgate "$upgate_url" 16 "$work/t-mint-upgate.txt" POST "$work/mint.json" \
		application/json "Bearer $api_key" 1 reuse_ok=true
	perf_stop mint
	set_result mint "$run" upgate "busy_after_secs=$(settle_upgate)"
}

# The GET row's objects, on both sides.
presign "$work/t-seed-nginx.txt" bench/seed/ "$GET_FILES" --plain
presign "$work/t-seed-upgate.txt" bench/seed/ "$GET_FILES"
python3 "$here/bench.py" seed --base "$nginx_url" --targets "$work/t-seed-nginx.txt" --body "$work/body-2m.pdf"
python3 "$here/bench.py" seed --base "$upgate_url" --targets "$work/t-seed-upgate.txt" --body "$work/body-2m.pdf"
settle_upgate >/dev/null

for ((run = 1; run <= RUNS; run++)); do
	echo "run $run/$RUNS"
	for row in $ROWS; do
		case $row in
		get2m) get_row "$run" ;;
		mint) mint_row "$run" ;;
		*) upload_row "$row" "$run" ;;
		esac
	done
done

python3 - "$work/meta.json" <<EOF
import json, sys
json.dump({
    "upgate_bin": "$bin",
    "upgate_commit": "$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)",
    "nginx": "$(nginx -v 2>&1 | sed 's/.*: //')",
    "cores": $cores, "wrk_threads": $THREADS, "duration": "$DURATION", "runs": $RUNS,
    "extra_toml": "${UPGATE_EXTRA_TOML:-}", "durable": $DURABLE == 1,
    "upgate_peak_during_put2m": {"rss_kib": $peak_rss_kib, "threads": $peak_threads,
                                 "idle_rss_kib": $idle_rss_kib, "idle_threads": $idle_threads},
    "perf": "$( [[ -n $perf_event ]] && echo "target/perf-$PROFILE_ROW.txt ($perf_event)" || echo off)",
}, open(sys.argv[1], "w"), indent=2)
EOF
echo
python3 "$here/bench.py" report --results "$work/results" --meta "$work/meta.json" --out "$repo/target/bench-vs-nginx.json"
echo "upgate during PUT 2 MiB x 64: peak RSS $((peak_rss_kib / 1024)) MiB, peak $peak_threads threads" \
	"(idle before the row: $((idle_rss_kib / 1024)) MiB, $idle_threads threads)"
echo "durability: $([[ $DURABLE == 1 ]] && echo "on (objects and SQLite commits flushed before the answer)" || echo "off (like nginx)")$([[ -n ${UPGATE_EXTRA_TOML:-} ]] && echo ", then $UPGATE_EXTRA_TOML over it")"
echo "JSON: target/bench-vs-nginx.json"
if grep -E -i ' (ERROR|WARN) ' "$work/upgate.log" >/dev/null; then
	echo "upgate logged $(grep -c -E -i ' (ERROR|WARN) ' "$work/upgate.log") warnings/errors; the first:"
	grep -E -i ' (ERROR|WARN) ' "$work/upgate.log" | cut -d' ' -f2- | sort | uniq -c | sort -rn | head -5 | cut -c1-300
fi
