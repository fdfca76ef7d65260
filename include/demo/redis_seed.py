"""Demo cache keys: some with TTLs, some without, a few big ones, under the platform's prefixes."""

from __future__ import annotations

import json
import random
import sys

import redis


def seed(url: str, keys: int = 20000) -> int:
    client = redis.Redis.from_url(url)
    rnd = random.Random(7)
    with client.pipeline(transaction=False) as pipe:
        for i in range(keys):
            kind = i % 4
            if kind == 0:
                pipe.set(f"session:{i}", json.dumps({"student": i}), ex=3600)
            elif kind == 1:
                pipe.set(f"api:content:popular:{i}", "x" * rnd.randint(50, 500))  # no TTL: the audit's finding
            elif kind == 2:
                pipe.hset(f"pathiq:student:{i}", mapping={"mastery": rnd.random(), "pace": rnd.random()})
            else:
                pipe.set(f"careers:pool:{i}", json.dumps(list(range(20))), ex=86400)
            if i % 1000 == 0:
                pipe.execute()
        pipe.rpush("leaderboard:global", *[f"student-{n}" for n in range(50000)])
        pipe.set("report:cache:yearly", "y" * 2_000_000)
        pipe.execute()
    return client.dbsize()


if __name__ == "__main__":
    print(seed(sys.argv[1]))
