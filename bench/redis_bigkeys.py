"""Big-key pass against `redis-cli --memkeys`, same data, same run, under a GET/SET workload.

Starts its own Redis, loads N keys of mixed types and sizes (a few of several MB),
then measures three phases, each with a concurrent single-connection GET/SET
workload in another process recording every operation's latency:

1. no pass (baseline latency);
2. `redis-cli --memkeys` (the baseline pass);
3. the project's pass (`engine.big_keys` with the policy's batch and pause).

Prints each pass's wall time, the ratio, and the workload's p99 in each phase.

    PYTHONPATH=plugins .venv/bin/python -m bench.redis_bigkeys [keys [batch [pause_ms]]]
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from maintenance.policy import load_policy
from maintenance.redis import engine

from devtools import servers


def load(port: int, keys: int) -> None:
    client = redis.Redis(port=port)
    strings = int(keys * 0.6)
    client.execute_command("DEBUG", "POPULATE", strings, "cache:str", 64)
    rest = keys - strings
    with client.pipeline(transaction=False) as pipe:
        for n in range(rest):
            kind = n % 3
            if kind == 0:
                pipe.hset(f"pathiq:student:{n}", mapping={"mastery": n, "pace": n % 7, "streak": n % 30})
            elif kind == 1:
                pipe.sadd(f"careers:interest:{n}", *range(n % 10 + 1))
            else:
                pipe.rpush(f"session:events:{n}", *[f"e{i}" for i in range(n % 8 + 1)])
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
    client.set("report:cache:yearly", "y" * 8_000_000)
    client.rpush("leaderboard:global", *[f"student-{n}" for n in range(300_000)])
    client.hset("content:index", mapping={f"lesson:{n}": "x" * 40 for n in range(100_000)})


def workload(port: int, stop, out) -> None:
    client = redis.Redis(port=port)
    latencies = []
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        if n % 2:
            client.get(f"cache:str:{n % 1000}")
        else:
            client.set(f"wl:{n % 1000}", "v")
        latencies.append(time.perf_counter() - started)
        n += 1
        time.sleep(0.0005)
    out.put(latencies)


def with_workload(port: int, action) -> tuple[float, float]:
    stop, out = mp.Event(), mp.Queue()
    proc = mp.Process(target=workload, args=(port, stop, out))
    proc.start()
    time.sleep(1)
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    time.sleep(1)
    stop.set()
    latencies = out.get()
    proc.join()
    return seconds, statistics.quantiles(latencies, n=100)[98] * 1000


def main(keys: int = 1_000_000, batch: int | None = None, pause_ms: float | None = None) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    server = servers.start_redis(root, args=["--enable-debug-command", "yes"])
    try:
        print(f"loading {keys:,} keys ...", flush=True)
        load(server.port, keys)
        total = redis.Redis(port=server.port).dbsize()
        print(f"{total:,} keys, used memory {redis.Redis(port=server.port).info('memory')['used_memory_human']}")
        _, base_p99 = with_workload(server.port, lambda: time.sleep(10))
        cli = shutil.which("redis-cli")
        memkeys_s, memkeys_p99 = with_workload(server.port, lambda: subprocess.run(
            [cli, "-p", str(server.port), "--memkeys"], capture_output=True, check=True))
        cfg = load_policy().redis.big_keys
        cfg = cfg.model_copy(update={k: v for k, v in (("batch", batch), ("pause_ms", pause_ms)) if v is not None})
        result = {}
        ours_s, ours_p99 = with_workload(server.port, lambda: result.update(
            pass_=engine.big_keys(redis.Redis(port=server.port), cfg)))
        found = result["pass_"]
        print(f"redis-cli --memkeys: {memkeys_s:.1f}s; project pass (batch {cfg.batch}, pause {cfg.pause_ms} ms): "
              f"{ours_s:.1f}s over {found.scanned:,} keys; ratio {ours_s / memkeys_s:.2f}")
        print(f"workload GET/SET p99: no pass {base_p99:.2f} ms, during --memkeys {memkeys_p99:.2f} ms, "
              f"during project pass {ours_p99:.2f} ms (+{ours_p99 - base_p99:.2f} ms)")
        print("biggest:", [(k, round(b / 2**20, 1)) for b, k, _ in found.top[:3]])
    finally:
        server.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 1_000_000, int(args[1]) if len(args) > 1 else None,
         float(args[2]) if len(args) > 2 else None)
