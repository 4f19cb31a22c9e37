"""`make bench`: journal page latency, export of 100 000 rows, API ticket creation rate (16 clients; and
one sequential client with an executor assigned, one gunicorn sync worker), sign-in and registration
latency with 500 open event streams, registration and sign-in while a 160 000-row housing import
applies, telephony (through the ARI emulator, and through the real test PBX with SIPp).

Figures go to stdout as `bench: <name> = <value> <unit> (target <op> <value>)`; diagnostics to
stderr. A missed target is only reported (exit 0); anything that crashes exits non-zero.

Environment: BENCH_TICKETS (default 1 000 000), BENCH_SKIP_PG=1 (SQLite only), BENCH_PG_URL
(server, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), BENCH_ONLY
(comma-separated subset of journal,analytics,dispatch_map,export,inspection,api,api_seq,import,sse,telephony,robot,pbx,call_stats,executor_sync; or the parts as arguments:
`python -m bench pbx`),
BENCH_ENGINES (default sqlite,postgresql), BENCH_JOURNAL_ROUNDS, BENCH_API_REQUESTS,
BENCH_API_CONCURRENCY, BENCH_WEB_WORKERS, BENCH_WEB_THREADS; analytics (bench/analytics.py): BENCH_ANALYTICS_ROUNDS;
dispatch_map (bench/dispatch_map.py): BENCH_MAP_TICKETS, BENCH_MAP_EXECUTORS, BENCH_MAP_ROUNDS;
inspection (bench/inspection.py): BENCH_INSPECTION_TICKETS (30 000 in the period), BENCH_INSPECTION_TIMEOUT;
executor_sync (bench/executor_sync.py): BENCH_FIELD_ACTIONS (100);
api_seq (bench/api_sequential.py):
BENCH_API_SEQ_REQUESTS; import (bench/import_load.py): BENCH_IMPORT_ROWS (160 000), BENCH_IMPORT_RATE
(registrations and sign-ins per second, 4 each), BENCH_IMPORT_LIMIT (seconds); sse (bench/sse.py): BENCH_SSE_STREAMS (500),
BENCH_SSE_RATE (sign-ins and tickets per second, 10 each), BENCH_SSE_SECONDS (30); telephony (bench/telephony.py): BENCH_RESIDENTS, BENCH_CALLS,
BENCH_CALL_RATE, BENCH_MISSED, BENCH_MISSED_SPREAD, BENCH_REDIS_URL; pbx (bench/pbx.py): BENCH_PBX_ENGINES
(default postgresql), BENCH_PBX_CALLS, BENCH_PBX_WITHIN, BENCH_PBX_STORM_CALLS, BENCH_PBX_STORM_SECONDS and the
OPENADS_PBX_* ports of pbx/run.sh (the bench has its own defaults); call_stats (bench/call_stats.py):
BENCH_STATS_CALLS (30 000 calls in one month).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"
# The bench's own var dir (secret key, logs), before anything loads the settings.
os.environ.setdefault("OPENADS_VAR_DIR", str(OUT / "run"))


def _loop_ms() -> float:
    """A calibration figure: on a shared VM the same code runs several times slower at times."""
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def main() -> int:
    from bench import (
        analytics,
        api,
        api_sequential,
        call_stats,
        dispatch_map,
        executor_sync,
        export,
        import_load,
        inspection,
        journal,
        pbx,
        robot,
        sse,
        telephony,
    )
    from bench.common import figure, note, read_facts
    from bench.data import BENCH_LOGIN, DEFAULT_TICKETS, pg_url, prepare, sqlite_url

    n = int(os.environ.get("BENCH_TICKETS", DEFAULT_TICKETS))
    engines = [e.strip() for e in os.environ.get("BENCH_ENGINES", "sqlite,postgresql").split(",") if e.strip()]
    if os.environ.get("BENCH_SKIP_PG", "") in ("1", "true", "yes"):
        engines = [e for e in engines if e != "postgresql"]
    # pbx beside the emulator's figures
    parts = ("journal", "analytics", "dispatch_map", "export", "inspection", "api", "api_seq", "import", "sse", "telephony", "pbx",
             "robot", "call_stats",
             "executor_sync")
    # On a scratch database of its own, made from the engine's URL: no loaded bench organization needed.
    scratch_only = {"executor_sync"}
    wanted = ",".join(sys.argv[1:]) or os.environ.get("BENCH_ONLY", ",".join(parts))
    only = {p.strip() for p in wanted.split(",") if p.strip()}
    if only - set(parts):
        print(f"bench: unknown parts {sorted(only - set(parts))}; known: {', '.join(parts)}", file=sys.stderr)
        return 2
    # The PBX part is long (a 5-minute storm): by default on PostgreSQL only, the production setup.
    pbx_engines = {e.strip() for e in os.environ.get("BENCH_PBX_ENGINES", "postgresql").split(",") if e.strip()}
    if "pbx" in only and not pbx_engines & set(engines):
        print(f"bench: pbx skipped (engines {','.join(engines)}; BENCH_PBX_ENGINES={','.join(sorted(pbx_engines))})",
              flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    failed = False
    started = time.perf_counter()
    note(f"{os.cpu_count()} CPUs, load average {os.getloadavg()} (other processes skew every figure)")
    note(f"machine speed: a 1M-iteration Python loop takes {_loop_ms():.0f} ms (about 40 ms on a quiet machine here)")
    for engine in engines:
        if only <= scratch_only:  # `python -m bench executor_sync`: skip loading a million tickets
            url = sqlite_url(n) if engine == "sqlite" else pg_url(n)
            for part in sorted(only):
                try:
                    executor_sync.run(url, engine, OUT)
                except Exception:
                    traceback.print_exc()
                    note(f"{part} on {engine} crashed")
                    failed = True
            continue
        try:
            url, seconds = prepare(engine, n)
            if seconds is None:
                note(f"{engine}: reusing the loaded database ({n} tickets)")
            else:
                figure(f"load_{n}_tickets_{engine}", seconds, "s")
            facts = read_facts(url, n, BENCH_LOGIN)
        except Exception:
            traceback.print_exc()
            failed = True
            continue
        for part in parts:
            if part not in only or (part == "pbx" and engine not in pbx_engines):
                continue
            try:
                if part == "journal":
                    journal.run(url, engine, facts)
                elif part == "analytics":  # bench/analytics.py: the analytics page, its .xlsx, «Сегодня»
                    analytics.run(url, engine, facts)
                elif part == "dispatch_map":  # bench/dispatch_map.py: the map's data, 2 000 tickets, 200 executors
                    dispatch_map.run(url, engine, facts)
                elif part == "export":
                    export.run(url, engine, n, OUT)
                elif part == "inspection":  # bench/inspection.py: the inspection pack of a month
                    inspection.run(url, engine, n, OUT)
                elif part == "api":
                    api.run(url, engine, facts, OUT)
                elif part == "api_seq":  # bench/api_sequential.py: one sync worker, one client, with executor
                    api_sequential.run(url, engine, facts, OUT)
                elif part == "import":  # bench/import_load.py: registering and signing in during an import
                    import_load.run(url, engine, facts, OUT)
                elif part == "sse":  # bench/sse.py: 500 open event streams while signing in and registering
                    sse.run(url, engine, facts, OUT)
                elif part == "robot":  # bench/robot.py: 50 concurrent robot calls (BENCH_ROBOT_CALLS)
                    robot.run(url, engine, OUT)
                elif part == "call_stats":  # bench/call_stats.py: a month's call statistics and calls export
                    call_stats.run(url, engine, OUT)
                elif part == "executor_sync":  # bench/executor_sync.py: an offline queue of 100 actions
                    executor_sync.run(url, engine, OUT)
                elif part == "pbx":  # bench/pbx.py: the real Asterisk with SIPp (skipped when it cannot run)
                    pbx.run(url, engine, OUT)
                else:
                    telephony.run(url, engine, OUT)
            except Exception:
                traceback.print_exc()
                note(f"{part} on {engine} crashed")
                failed = True
    note(f"done in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
