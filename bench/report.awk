# report.awk: turns run.sh's raw measurements into RESULTS.md on stdout,
# and leaves the medians the chart needs in tmp/chart-*.dat.  Portable awk
# (mawk is Debian's default): no asort, no gensub.
#
# Input files, told apart by their header line:
#   results-raw.tsv        one row per workload, round and server
#   results-callgrind.tsv  one row per workload and server: instructions
#   results-micro.tsv      one row per microbenchmark
#
# Variables (-v): order (server names), workloads, rounds, duration, warmup,
# count_duration, idle_hold, idle_conns, sctool, malloc, cpu, ncpu, kernel,
# when, elapsed, scpu, lcpu, t_<workload> (titles), cmdline, commit, tmp,
# load_start, load_end, analysis (a file appended at the end, if present).

function num(x) { return x != "" && x != "NA" && x != "FAIL" }

# Median of the numeric values in list[1..n]; "NA" if none.
function median(list, n,   a, m, i, j, t) {
	m = 0
	for (i = 1; i <= n; i++)
		if (num(list[i]))
			a[++m] = list[i] + 0
	if (m == 0)
		return "NA"
	for (i = 2; i <= m; i++) {          # insertion sort: m is small
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}

# Median over rounds of metric k for workload w and server s.
function med(w, s, k,   list, r) {
	for (r = 1; r <= nrounds; r++)
		list[r] = ((w, r, s, k) in v) ? v[w, r, s, k] : "NA"
	return median(list, nrounds)
}

# The per-round ratios s/base of metric k into list[1..nrounds].
function ratios(w, s, base, k, list,   r, a, b) {
	for (r = 1; r <= nrounds; r++) {
		a = ((w, r, s, k) in v) ? v[w, r, s, k] : "NA"
		b = ((w, r, base, k) in v) ? v[w, r, base, k] : "NA"
		list[r] = (num(a) && num(b) && b + 0 != 0) ? a / b : "NA"
	}
}

# Median over rounds of the ratio s/base of metric k, pair by pair.
function medratio_to(w, s, base, k,   list) {
	if (!(base in isserv))
		return "NA"
	ratios(w, s, base, k, list)
	return median(list, nrounds)
}

function medratio(w, s, k) { return medratio_to(w, s, "epoll", k) }

# "lo–hi" of the per-round ratios s/base, or "" with fewer than two.
function ratio_range(w, s, base, k,   list, r, lo, hi, m) {
	if (!(base in isserv))
		return ""
	ratios(w, s, base, k, list)
	m = 0
	for (r = 1; r <= nrounds; r++)
		if (num(list[r])) {
			if (m == 0 || list[r] < lo) lo = list[r]
			if (m == 0 || list[r] > hi) hi = list[r]
			m++
		}
	return m >= 2 ? sprintf("%.2f–%.2f", lo, hi) : ""
}

# "met in k of n rounds" for the per-round ratios s/base of metric k against
# limit (op "<=" or ">="), or "" with fewer than two rounds.
function rounds_met(w, s, base, k, op, limit,   list, r, n, m) {
	if (!(base in isserv))
		return ""
	ratios(w, s, base, k, list)
	n = m = 0
	for (r = 1; r <= nrounds; r++)
		if (num(list[r])) {
			n++
			if ((op == "<=" && list[r] <= limit) || (op == ">=" && list[r] >= limit))
				m++
		}
	return n >= 2 ? sprintf("; met in %d of %d rounds", m, n) : ""
}

# Median over rounds of the difference s - base of metric k.
function meddiff_to(w, s, base, k,   list, r, a, b) {
	for (r = 1; r <= nrounds; r++) {
		a = ((w, r, s, k) in v) ? v[w, r, s, k] : "NA"
		b = ((w, r, base, k) in v) ? v[w, r, base, k] : "NA"
		list[r] = (num(a) && num(b)) ? a - b : "NA"
	}
	return median(list, nrounds)
}

# Ratio of two single values (instructions), "NA" if either is missing.
function ratio1(a, b) { return (num(a) && num(b) && b + 0 != 0) ? a / b : "NA" }

function fmt(x, f) { return num(x) ? sprintf(f, x) : "n/a" }
function fmtratio(x) { return num(x) ? sprintf("%.2f×", x) : "n/a" }
function pct(x) { return num(x) ? sprintf("%.0f%%", x * 100) : "n/a" }

# Figures of the summary and the targets.
function figure(w, s, k) {
	if (k == "ir_per_msg")
		return ((w, s) in cg) ? cg[w, s] : "NA"
	return med(w, s, k)
}

function figratio(w, s, base, k) {
	if (k == "ir_per_msg")
		return ratio1(figure(w, s, k), figure(w, base, k))
	return medratio_to(w, s, base, k)
}

# One row of the targets table.
function target(what, where, measured, ok, margin) {
	printf "| %s | %s | %s | %s |\n", what, where, measured,
	    ok == "" ? "n/a" : (ok ? "**met**" : "**missed**") (margin != "" ? " (" margin ")" : "")
	if (ok != "") {
		ntargets++
		if (ok)
			nmet++
	}
}

BEGIN {
	FS = "\t"
	nserv = split(order, S, " ")
	nwork = split(workloads, W, " ")
	nrounds = rounds + 0
	for (i = 1; i <= nserv; i++)
		isserv[S[i]] = 1
	has_epoll = ("epoll" in isserv)
	title["pp1"] = t_pp1; title["pp50"] = t_pp50; title["pipe50"] = t_pipe50
	title["pp1000"] = t_pp1000; title["idle"] = t_idle
	short["pp1"] = "1 conn 64 B"; short["pp50"] = "50 conns 64 B"
	short["pipe50"] = "50 conns 16 KiB x4"; short["pp1000"] = "1000 conns 64 B"
	short["idle"] = idle_conns " idle conns"
	what["spawn"] = "spawn a task that is ready at its first poll; it completes (allocate, queue, poll, drop, free)"
	what["wake"] = "wake a task (by itself: wake_by_ref, PENDING) and poll it again"
	what["readiness"] = "one-shot readiness: write a byte to a socketpair; the task awaits readable (PENDING), the event fires, the task is woken, reads it"
	what["read-ready"] = "tide_read of one byte that completes at its first poll (start, poll, drop; recv)"
	what["read-pend"] = "tide_read on an empty stream polled once (PENDING, the event armed) and dropped (disarmed)"
	what["wake-other"] = "wake another task of the executor, which is polled in the same turn (one wake, one task poll)"
	what["readiness-epoll"] = "the same on a bare epoll set: write, epoll_wait, read (the floor)"
	what["sleep0"] = "tide_sleep(0): ready at the first poll, never armed"
	what["timer-cancel"] = "tide_sleep(1 s) polled once (armed) and dropped (disarmed)"
	what["timer-fire"] = "tide_sleep(1 µs) awaited: armed, fired, woken, polled (precise timers: a timerfd)"
	what["timer-reset-later"] = "tide_sleep_reset of one of 10,000 pending sleeps to a later deadline (O(1): recorded)"
	what["timer-reset-earlier"] = "tide_sleep_reset of one of 10,000 pending sleeps to an earlier deadline (O(log n))"
	what["mpsc-task"] = "an 8-byte message from one task to another through a tide_mpsc_t (capacity 64)"
	what["mpsc-thread"] = "an 8-byte message from a thread (tide_mpsc_send_blocking) to a task"
	what["pipe-thread"] = "the same hand-off through a pipe: a thread writes, a task reads"
	what["event-active"] = "libevent alone, one loop: two events activating each other around a queue"
	what["event-active-thread"] = "a thread, a locked queue and event_active on a thread-aware base"
}

FNR == 1 {
	part = ($1 == "bench") ? "micro" : ($2 == "server") ? "cg" : "raw"
	for (i = 1; i <= NF; i++) {
		col[part, $i] = i
		if (part == "raw")
			rawname[i] = $i
	}
	next
}

part == "cg" {
	cg[$col["cg", "workload"], $col["cg", "server"]] = $col["cg", "ir_per_msg"]
	next
}

part == "micro" {
	nmicro++
	mname[nmicro] = $1
	for (i = 2; i <= NF; i++)
		micro[$1, i] = $i
	next
}

{
	w = $col["raw", "workload"]; r = $col["raw", "round"]; s = $col["raw", "server"]
	for (k = 4; k <= NF; k++) {
		v[w, r, s, rawname[k]] = $k
		if ($k == "FAIL" && !((w, r, s) in seenfail)) {
			seenfail[w, r, s] = 1
			failed[++nfailed] = w " round " r ": " s
		}
	}
	# System calls other than the kinds counted apart, per round (the
	# counters switch on a hair apart: never below zero).
	t = v[w, r, s, "sc_per_msg"]
	if (num(t) && num(v[w, r, s, "sc_read"]) && num(v[w, r, s, "sc_write"]) &&
	    num(v[w, r, s, "sc_epoll_wait"]) && num(v[w, r, s, "sc_epoll_ctl"])) {
		t -= v[w, r, s, "sc_read"] + v[w, r, s, "sc_write"] + v[w, r, s, "sc_epoll_wait"] + \
		    v[w, r, s, "sc_epoll_ctl"]
		v[w, r, s, "sc_other"] = t < 0 ? 0 : t
	}
}

END {
	printf "# Echo server benchmark results\n\n"
	printf "Generated by `%s` (tide %s) on %s in %d s.  \n", cmdline, commit, when, elapsed
	printf "Machine: %s, %d CPUs, Linux %s. Server pinned to CPU %s, load generator to CPU %s.  \n", \
	    cpu, ncpu, kernel, scpu, lcpu
	printf "%d round%s, servers in alternation (%s), a fresh server process per measurement. " \
	    "Throughput windows %s s after %s s of warmup; system calls and allocations counted in " \
	    "the first %s round%s (windows of %s s), idle memory in the first %s. " \
	    "Load average before the run %s, after it %s.\n\n", \
	    nrounds, nrounds == 1 ? "" : "s", order, duration, warmup, count_rounds,
	    count_rounds == 1 ? "" : "s", count_duration, idle_rounds, load_start, load_end

	printf "> **Read this first.** Throughput on these shared virtual machines varies by tens of\n"
	printf "> percent between runs (and between rounds of one run): other sessions build and\n"
	printf "> test on the same two CPUs while it runs. Absolute figures are not\n"
	printf "> comparable across runs; only ratios taken within the same run (the ÷ columns:\n"
	printf "> each server against the raw-epoll server of the same round, median over rounds)\n"
	printf "> mean anything. The load generator is a single thread on one CPU and costs about\n"
	printf "> as much per message as the cheapest server, so with many connections it can be\n"
	printf "> the bottleneck (*gen CPU* near 100%%): a server whose *server CPU* is well below\n"
	printf "> 100%% was not saturated, and its msgs/s understates the gap. When neither is near\n"
	printf "> 100%%, other work took the CPUs. CPU time per message is the steadier measure of what\n"
	printf "> a server costs, instructions per message (callgrind, user space only) the steadiest;\n"
	printf "> system calls and allocations per message explain them.\n\n"
	split(load_start, la, " ")
	if (la[1] + 0 > 0.5)
		printf "**This run shared the machine:** the load average was %s before it started; " \
		    "expect throughput well below a quiet run's.\n\n", la[1]

	if (nfailed) {
		printf "**Failed measurements** (shown as n/a below; see the runner's log):\n\n"
		for (i = 1; i <= nfailed; i++)
			printf "- %s\n", failed[i]
		printf "\n"
	}

	# ------------------------------------------------ tide, summarized
	has_tide = ("tide" in isserv)
	has_bev = ("bufferevent" in isserv)
	nfig = split("msgs_per_s cpu_us_per_msg ir_per_msg sc_per_msg sc_epoll_ctl allocs_per_msg hwm_kb", F, " ")
	fname["msgs_per_s"] = "msgs/s"; ffmt["msgs_per_s"] = "%.0f"
	fname["cpu_us_per_msg"] = "CPU µs/msg"; ffmt["cpu_us_per_msg"] = "%.2f"
	fname["ir_per_msg"] = "instructions/msg"; ffmt["ir_per_msg"] = "%.0f"
	fname["sc_per_msg"] = "syscalls/msg"; ffmt["sc_per_msg"] = "%.2f"
	fname["sc_epoll_ctl"] = "epoll_ctl/msg"; ffmt["sc_epoll_ctl"] = "%.3f"
	fname["allocs_per_msg"] = "allocs/msg"; ffmt["allocs_per_msg"] = "%.3f"
	fname["hwm_kb"] = "peak RSS KiB"; ffmt["hwm_kb"] = "%.0f"
	fname["rss_per_conn_b"] = "RSS/idle conn, bytes"; ffmt["rss_per_conn_b"] = "%.0f"
	if (has_tide) {
		printf "## tide against raw epoll, libevent bufferevents and libevent raw events\n\n"
		printf "tide's echo daemon (`tide-echod`, one thread) against the raw-epoll server (the floor), " \
		    "the bufferevent server (libevent as its users write it) and the raw-event libevent server " \
		    "(the library tide runs on), same run. Each ratio is " \
		    "taken round by round and the median reported (instructions: one callgrind count each). " \
		    "Lower is better except for msgs/s.\n\n"
		printf "| workload | figure | tide | epoll | tide ÷ epoll | bufferevent | tide ÷ bufferevent | libevent | tide ÷ libevent |\n"
		printf "|---|---|--:|--:|--:|--:|--:|--:|--:|\n"
		for (j = 1; j <= nwork; j++) {
			w = W[j]
			if (w == "idle") {
				nf = split("rss_per_conn_b hwm_kb", G, " ")
			} else {
				nf = nfig
				for (i = 1; i <= nfig; i++)
					G[i] = F[i]
			}
			for (i = 1; i <= nf; i++) {
				k = G[i]
				if (k == "ir_per_msg" && !((w, "tide") in cg))
					continue
				if (k ~ /^(sc_|allocs)/ && sctool == "none" && k != "allocs_per_msg")
					continue
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", short[w], fname[k],
				    fmt(figure(w, "tide", k), ffmt[k]), fmt(figure(w, "epoll", k), ffmt[k]),
				    fmtratio(figratio(w, "tide", "epoll", k)),
				    fmt(figure(w, "bufferevent", k), ffmt[k]),
				    fmtratio(figratio(w, "tide", "bufferevent", k)),
				    fmt(figure(w, "libevent", k), ffmt[k]),
				    fmtratio(figratio(w, "tide", "libevent", k))
			}
		}
		printf "\n"

		# -------------------------------------------------- targets
		printf "## Targets\n\n"
		printf "The echo daemon, one thread, against raw epoll on the same run (then against " \
		    "libevent bufferevents, and last against libevent raw events, the library tide runs on). Ratios are medians of the per-round ratios; the range of those " \
		    "is given where there are several rounds, to show how much the machine moved them. " \
		    "Verdicts are computed from this run's figures; the reasons are in *Analysis* below.\n\n"
		printf "| target | workload | tide (rounds) | verdict |\n"
		printf "|---|---|--:|---|\n"
		for (j = 1; j <= nwork; j++) {
			w = W[j]
			if (w == "idle" || !has_epoll)
				continue
			x = medratio(w, "tide", "cpu_us_per_msg")
			rg = ratio_range(w, "tide", "epoll", "cpu_us_per_msg")
			target("CPU/msg ≤ 1.10× epoll", short[w], fmtratio(x) (rg != "" ? " (" rg ")" : ""),
			    num(x) ? (x <= 1.10) : "",
			    num(x) ? sprintf("%+.0f%% against a limit of +10%%", (x - 1) * 100) \
			        rounds_met(w, "tide", "epoll", "cpu_us_per_msg", "<=", 1.10) : "")
		}
		for (j = 1; j <= nwork; j++) {
			w = W[j]
			if (w == "idle" || !has_epoll)
				continue
			x = medratio(w, "tide", "msgs_per_s")
			rg = ratio_range(w, "tide", "epoll", "msgs_per_s")
			target("msgs/s ≥ 0.95× epoll", short[w], fmtratio(x) (rg != "" ? " (" rg ")" : ""),
			    num(x) ? (x >= 0.95) : "",
			    num(x) ? sprintf("%+.0f%% against a limit of −5%%", (x - 1) * 100) \
			        rounds_met(w, "tide", "epoll", "msgs_per_s", ">=", 0.95) : "")
		}
		if (sctool != "none")
			for (j = 1; j <= nwork; j++) {
				w = W[j]
				if (w == "idle" || !has_epoll)
					continue
				d = meddiff_to(w, "tide", "epoll", "sc_per_msg")
				ec = med(w, "tide", "sc_epoll_ctl")
				target("syscalls/msg ≤ epoll's + 0.1, no epoll_ctl per message", short[w],
				    sprintf("%s (epoll %s), epoll_ctl %s",
				        fmt(med(w, "tide", "sc_per_msg"), "%.3f"),
				        fmt(med(w, "epoll", "sc_per_msg"), "%.3f"), fmt(ec, "%.3f")),
				    num(d) && num(ec) ? (d <= 0.1 && ec < 0.01) : "",
				    num(d) ? sprintf("%+.3f against epoll", d) : "")
			}
		if (malloc == "yes")
			for (j = 1; j <= nwork; j++) {
				w = W[j]
				if (w == "idle")
					continue
				x = med(w, "tide", "allocs_per_msg")
				target("no heap allocation per message after warm-up", short[w],
				    fmt(x, "%.4f") " allocs/msg", num(x) ? (x < 0.001) : "", "")
			}
		for (j = 1; j <= nwork; j++) {
			if (W[j] != "idle")
				continue
			x = med("idle", "tide", "rss_per_conn_b")
			target("≤ 1 KiB RSS per idle connection", short["idle"] (idle_conns != 10000 ? " (target: 10000)" : ""),
			    fmt(x, "%.0f") " B", num(x) ? (x <= 1024 && idle_conns >= 10000) : "",
			    num(x) ? sprintf("%.0f%% of 1024 B", x / 1024 * 100) : "")
		}
		if (has_bev)
			for (j = 1; j <= nwork; j++) {
				w = W[j]
				if (w == "idle") {
					x = medratio_to(w, "tide", "bufferevent", "rss_per_conn_b")
					target("ahead of bufferevent: memory per idle connection", short[w],
					    fmtratio(x), num(x) ? (x < 1) : "", "")
					continue
				}
				x = medratio_to(w, "tide", "bufferevent", "msgs_per_s")
				y = medratio_to(w, "tide", "bufferevent", "cpu_us_per_msg")
				m1 = rounds_met(w, "tide", "bufferevent", "msgs_per_s", ">=", 1)
				m2 = rounds_met(w, "tide", "bufferevent", "cpu_us_per_msg", "<=", 1)
				sub(/^; met/, "msgs/s ahead", m1)
				sub(/^; met/, "CPU/msg ahead", m2)
				target("ahead of bufferevent: msgs/s and CPU/msg", short[w],
				    sprintf("msgs/s %s, CPU/msg %s", fmtratio(x), fmtratio(y)),
				    num(x) && num(y) ? (x > 1 && y < 1) : "",
				    m1 != "" ? m1 ", " m2 : "")
			}
		# Against libevent's raw events, the library tide runs on (issue 15):
		# user-space instructions within 1.3x, no more memory per idle
		# connection, and at 1,000 connections no more CPU per message and
		# no less throughput.
		has_lev = ("libevent" in isserv)
		if (has_lev)
			for (j = 1; j <= nwork; j++) {
				w = W[j]
				if (w == "idle") {
					x = medratio_to(w, "tide", "libevent", "rss_per_conn_b")
					target("memory per idle connection ≤ libevent raw's", short[w],
					    sprintf("%s B against %s B, %s", fmt(med(w, "tide", "rss_per_conn_b"), "%.0f"),
					        fmt(med(w, "libevent", "rss_per_conn_b"), "%.0f"), fmtratio(x)),
					    num(x) ? (x <= 1) : "", "")
					continue
				}
				if (((w, "tide") in cg) && ((w, "libevent") in cg)) {
					x = figratio(w, "tide", "libevent", "ir_per_msg")
					target("instructions/msg ≤ 1.30× libevent raw's", short[w],
					    sprintf("%s against %s, %s", fmt(cg[w, "tide"], "%.0f"),
					        fmt(cg[w, "libevent"], "%.0f"), fmtratio(x)),
					    num(x) ? (x <= 1.30) : "", "")
				}
				if (w != "pp1000")
					continue
				x = medratio_to(w, "tide", "libevent", "msgs_per_s")
				y = medratio_to(w, "tide", "libevent", "cpu_us_per_msg")
				m2 = rounds_met(w, "tide", "libevent", "cpu_us_per_msg", "<=", 1)
				sub(/^; met/, "CPU/msg no worse", m2)
				target("msgs/s ≥ and CPU/msg ≤ libevent raw's", short[w],
				    sprintf("msgs/s %s, CPU/msg %s", fmtratio(x), fmtratio(y)),
				    num(x) && num(y) ? (x >= 1 && y <= 1) : "", m2)
			}
		printf "\n%d of %d targets met on this run.\n\n", nmet, ntargets
	}

	# ---------------------------------------------------- per workload
	hdrline = "workload"
	for (i = 1; i <= nserv; i++)
		hdrline = hdrline " \"" S[i] "\""
	print hdrline > (tmp "/chart-msgs.dat")
	print hdrline > (tmp "/chart-cpu.dat")

	for (j = 1; j <= nwork; j++) {
		w = W[j]
		if (w == "idle")
			continue
		printf "## %s\n\n", title[w]
		printf "| server | msgs/s | ÷ epoll | CPU µs/msg | ÷ epoll | instr/msg | syscalls/msg | epoll_ctl/msg " \
		    "| allocs/msg | peak RSS KiB | server CPU | gen CPU | p50 µs | p99 µs | p99.9 µs |\n"
		printf "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
		lm = "\"" short[w] "\""; lc = lm
		for (i = 1; i <= nserv; i++) {
			s = S[i]
			mps = med(w, s, "msgs_per_s"); cpm = med(w, s, "cpu_us_per_msg")
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
			    fmt(mps, "%.0f"), fmtratio(medratio(w, s, "msgs_per_s")),
			    fmt(cpm, "%.2f"), fmtratio(medratio(w, s, "cpu_us_per_msg")),
			    fmt(figure(w, s, "ir_per_msg"), "%.0f"),
			    fmt(med(w, s, "sc_per_msg"), "%.2f"), fmt(med(w, s, "sc_epoll_ctl"), "%.3f"),
			    fmt(med(w, s, "allocs_per_msg"), "%.2f"), fmt(med(w, s, "hwm_kb"), "%.0f"),
			    pct(med(w, s, "server_util")), pct(med(w, s, "loadgen_util")),
			    fmt(med(w, s, "p50_us"), "%.0f"), fmt(med(w, s, "p99_us"), "%.0f"),
			    fmt(med(w, s, "p999_us"), "%.0f")
			lm = lm " " (num(mps) ? mps : "NA")
			lc = lc " " (num(cpm) ? cpm : "NA")
		}
		print lm > (tmp "/chart-msgs.dat")
		print lc > (tmp "/chart-cpu.dat")
		printf "\n"
	}

	for (j = 1; j <= nwork; j++) {
		if (W[j] != "idle")
			continue
		printf "## %s\n\n", title["idle"]
		printf "Server RSS (VmRSS) before the connections were opened and after the server had accepted all of them " \
		    "(its descriptor count says so), held %s s, nothing sent. User-space memory only: kernel socket " \
		    "buffers are not in RSS.\n\n", idle_hold
		printf "| server | RSS before KiB | RSS after KiB | RSS/idle conn, bytes | ÷ epoll | peak RSS KiB |\n"
		printf "|---|--:|--:|--:|--:|--:|\n"
		li = "\"idle\""
		for (i = 1; i <= nserv; i++) {
			s = S[i]
			pc = med("idle", s, "rss_per_conn_b")
			printf "| %s | %s | %s | %s | %s | %s |\n", s,
			    fmt(med("idle", s, "rss_before_kb"), "%.0f"), fmt(med("idle", s, "rss_after_kb"), "%.0f"),
			    fmt(pc, "%.0f"), fmtratio(medratio("idle", s, "rss_per_conn_b")),
			    fmt(med("idle", s, "hwm_kb"), "%.0f")
			li = li " " (num(pc) ? pc : "NA")
		}
		print hdrline > (tmp "/chart-idle.dat")
		print li > (tmp "/chart-idle.dat")
		printf "\n"
	}

	printf "![msgs/s, CPU per message and memory per idle connection, per server](results.svg)\n\n"

	if (sctool != "none") {
		printf "## System calls per message, by kind\n\n"
		if (sctool == "strace")
			printf "_Counted with strace -c over the whole run (warmup and connection setup included): approximate._\n\n"
		printf "Median over rounds. read = read/readv/recvfrom/recvmsg, write = write/writev/sendto/sendmsg, " \
		    "epoll_wait = epoll_wait/epoll_pwait/epoll_pwait2; other = total minus those.\n\n"
		printf "| workload | server | total | read | write | epoll_wait | epoll_ctl | other | frees/msg |\n"
		printf "|---|---|--:|--:|--:|--:|--:|--:|--:|\n"
		for (j = 1; j <= nwork; j++) {
			w = W[j]
			if (w == "idle")
				continue
			for (i = 1; i <= nserv; i++) {
				s = S[i]
				t = med(w, s, "sc_per_msg"); rd = med(w, s, "sc_read"); wr = med(w, s, "sc_write")
				ew = med(w, s, "sc_epoll_wait"); ec = med(w, s, "sc_epoll_ctl")
				other = med(w, s, "sc_other")
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", short[w], s,
				    fmt(t, "%.2f"), fmt(rd, "%.2f"), fmt(wr, "%.2f"), fmt(ew, "%.3f"),
				    fmt(ec, "%.3f"), fmt(other, "%.3f"), fmt(med(w, s, "frees_per_msg"), "%.2f")
			}
		}
		printf "\n"
	}

	# ---------------------------------------------- microbenchmarks
	if (nmicro) {
		printf "## Microbenchmarks of the runtime\n\n"
		printf "`bench/micro` (links libtide), one operation at a time on one executor. **ns/op**: wall " \
		    "time over the operations of a run, median of %s runs (the range is the fastest and slowest " \
		    "run); **CPU ns/op**: the same with the process's CPU time. **instructions/op**: callgrind, " \
		    "user space only, `micro --count 11000` minus `micro --count 1000`, over 10000: exact and " \
		    "repeatable, but blind to time spent in the kernel (the readiness benchmarks' three system " \
		    "calls per operation are most of their time).\n\n", micro[mname[1], col["micro", "runs"]]
		printf "| benchmark | operation | ns/op | range | CPU ns/op | instructions/op |\n"
		printf "|---|---|--:|--:|--:|--:|\n"
		for (i = 1; i <= nmicro; i++) {
			b = mname[i]
			printf "| %s | %s | %s | %s–%s | %s | %s |\n", b, (b in what) ? what[b] : "",
			    fmt(micro[b, col["micro", "ns_per_op"]], "%.0f"),
			    fmt(micro[b, col["micro", "min_ns"]], "%.0f"), fmt(micro[b, col["micro", "max_ns"]], "%.0f"),
			    fmt(micro[b, col["micro", "cpu_ns_per_op"]], "%.0f"),
			    fmt(micro[b, col["micro", "ir_per_op"]], "%.0f")
		}
		printf "\n"
		# message hand-offs (issue 12): tide's mpsc against the pipe and
		# libevent's event_active, measured in the same run
		if (("mpsc-task", col["micro", "ns_per_op"]) in micro) {
			printf "Hand-offs, ratios in this run (mpsc ÷ the other; below 1 is faster):\n\n"
			printf "| mpsc | against | ns/msg ratio | instructions/msg ratio |\n|---|---|--:|--:|\n"
			handoff("mpsc-task", "event-active")
			handoff("mpsc-thread", "pipe-thread")
			handoff("mpsc-thread", "event-active-thread")
			printf "\n"
		}
	}

	# ---------------------------------------------------- analysis
	# Between markers, so that run.sh --analysis can replace it alone.
	printf "<!-- analysis -->\n"
	if (analysis != "") {
		while ((getline line < analysis) > 0)
			print line
		close(analysis)
	}
	printf "<!-- end of analysis -->\n\n"


	printf "## How each figure is measured\n\n"
	printf "- **msgs/s**: messages whose whole echo came back within the measured window, divided by " \
	    "its length; every echoed byte is checked against what was sent (a per-connection pattern).\n"
	printf "- **CPU µs/msg**: the server's CPU time (sum over its threads of /proc/PID/task/*/schedstat, " \
	    "user and system) read by the load generator at the window's edges, over the messages of the window. " \
	    "**server CPU** is that time over the window's length; **gen CPU** the same for the load generator.\n"
	printf "- **instr/msg**: user-space instructions the server executes per echoed message, counted by " \
	    "valgrind --tool=callgrind: the server runs twice under callgrind while the load generator sends a " \
	    "fixed number of messages per connection (`--messages`), and the difference of the counts over the " \
	    "difference of the messages cancels start-up and connection set-up. Kernel work (the system calls) " \
	    "is not in it, and under valgrind the server is slow enough that events batch more than at full " \
	    "speed, so it is a measure of the server's own code, not a prediction of its CPU time.\n"
	printf "- **p50/p99/p99.9**: round trip of each message, from the write of its first byte to the " \
	    "read of its last (CLOCK_MONOTONIC), in a log-linear histogram (1.6%% resolution).\n"
	printf "- **syscalls/msg**, **epoll_ctl/msg**: a separate pass on a fresh server: `perf stat` on the " \
	    "syscall tracepoints, attached to the server and switched on and off by the load generator at " \
	    "the window's edges (through perf's --control fifo), over the messages of that window.\n"
	if (sctool == "strace")
		printf "  (This run fell back to strace -c: perf's tracepoints were not usable.)\n"
	printf "- **allocs/msg**: the same pass runs the server under malloc_count.so (LD_PRELOAD), which " \
	    "counts malloc, calloc, realloc and aligned allocations and dumps its counters on SIGUSR2; the " \
	    "load generator signals it at the window's edges, after %s s of warm-up.\n", warmup
	printf "- **peak RSS**: VmHWM of the throughput pass's server at the end of its window.\n"
	printf "- **RSS/idle conn**: growth of the server's VmRSS from before the idle connections were " \
	    "opened to after it had accepted them all, over their number.\n"
	printf "- Every anchor server sets TCP_NODELAY and listens with a SOMAXCONN backlog; so does " \
	    "tide-echod (tide's listener uses SOMAXCONN; the daemon sets TCP_NODELAY on each connection).\n\n"
	printf "Raw figures: [results-raw.tsv](results-raw.tsv) (one row per workload, round and server), " \
	    "[results-callgrind.tsv](results-callgrind.tsv), [results-micro.tsv](results-micro.tsv).\n"
}

function handoff(a, b,    ns, ir) {
	if (!((b, col["micro", "ns_per_op"]) in micro))
		return
	ns = ratio1(micro[a, col["micro", "ns_per_op"]], micro[b, col["micro", "ns_per_op"]])
	ir = ratio1(micro[a, col["micro", "ir_per_op"]], micro[b, col["micro", "ir_per_op"]])
	printf "| %s | %s | %s | %s |\n", a, b, fmtratio(ns), fmtratio(ir)
}
