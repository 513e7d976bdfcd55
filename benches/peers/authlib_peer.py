"""The authlib peer of `cargo bench --bench scenarios`.

Drives authlib's AsyncOAuth2Client (client credentials, over httpx) against
the test kit the bench runs, and prints one JSON line of figures. The bench
owns the server: it sets latency and lifetimes before starting this script,
reads the server's counters (token fetches) itself, and revokes tokens when
the load is under way.

usage: authlib_peer.py SCENARIO --token-url U --api-url U --client-id ID
       --client-secret S [--callers N] [--rounds N] [--seconds S] [--leeway S]
"""

import argparse
import asyncio
import json
import sys
import time

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client


class ProbedClient(AsyncOAuth2Client):
    """authlib's client, unchanged, with counters around its own token logic."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waited = 0
        self.fetching = False
        self.fetch_windows = []

    async def ensure_active_token(self, token):
        # A caller waits on a fetch if one is running or if it finds the
        # token expired and fetches itself. (Not `lock.locked()`: anyio's
        # lock yields on acquire, so it looks held on every request.)
        if self.fetching or self.token.is_expired(leeway=self.leeway):
            self.waited += 1
        return await super().ensure_active_token(token)

    async def fetch_token(self, *args, **kwargs):
        started = time.perf_counter()
        self.fetching = True
        try:
            return await super().fetch_token(*args, **kwargs)
        finally:
            self.fetching = False
            self.fetch_windows.append((started, time.perf_counter()))


def make_client(args, connections):
    client = ProbedClient(
        args.client_id,
        args.client_secret,
        token_endpoint=args.token_url,
        grant_type="client_credentials",
        leeway=args.leeway,
        timeout=120,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )
    # No token yet. authlib raises MissingTokenError on a request without one,
    # so an application calls fetch_token() first; an expired placeholder
    # instead routes the first requests through authlib's own
    # lock-and-recheck, its best case for a stampede.
    client.token = {"access_token": "none-yet", "token_type": "Bearer", "expires_at": 1}
    return client


async def one(client, url):
    """(ok, start, end) of one request; an exception is a failure."""
    start = time.perf_counter()
    try:
        response = await client.get(url)
        ok = response.status_code == 200
    except Exception:  # noqa: BLE001 - every failure counts, whatever its kind
        ok = False
    return ok, start, time.perf_counter()


def percentile(values, q):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def stampede(args):
    client = make_client(args, 1000)
    gate = asyncio.Event()

    async def caller():
        await gate.wait()
        return await one(client, args.api_url)

    tasks = [asyncio.create_task(caller()) for _ in range(args.callers)]
    await asyncio.sleep(0.05)  # let every caller reach the gate
    started = time.perf_counter()
    gate.set()
    results = await asyncio.gather(*tasks)
    latencies = [(end - started) * 1000 for _, _, end in results]
    return {
        "requests": len(results),
        "failures": sum(1 for ok, _, _ in results if not ok),
        "p99_ms": percentile(latencies, 0.99),
    }


async def storm(args):
    client = make_client(args, 1000)
    ok, _, _ = await one(client, args.api_url)
    if not ok:
        raise SystemExit("warm-up request failed")
    # The bench revokes every token once the server has seen half a round.
    print("warm", flush=True)

    async def worker():
        return [await one(client, args.api_url) for _ in range(args.rounds)]

    results = [r for rs in await asyncio.gather(*(worker() for _ in range(args.callers))) for r in rs]
    return {"requests": len(results), "failures": sum(1 for ok, _, _ in results if not ok)}


async def expiry(args):
    client = make_client(args, args.callers)
    ok, _, _ = await one(client, args.api_url)
    if not ok:
        raise SystemExit("warm-up request failed")
    client.waited = 0
    client.fetch_windows.clear()
    deadline = time.perf_counter() + args.seconds

    async def worker():
        out = []
        while time.perf_counter() < deadline:
            out.append(await one(client, args.api_url))
        return out

    results = [r for rs in await asyncio.gather(*(worker() for _ in range(args.callers))) for r in rs]
    windows = client.fetch_windows
    inside, steady = [], []
    for _, start, end in results:
        overlaps = any(start <= we and end >= ws for ws, we in windows)
        (inside if overlaps else steady).append((end - start) * 1000)
    return {
        "requests": len(results),
        "failures": sum(1 for ok, _, _ in results if not ok),
        "waited": client.waited,
        "p50_window_ms": percentile(inside, 0.5),
        "p99_window_ms": percentile(inside, 0.99),
        "p50_steady_ms": percentile(steady, 0.5),
        "p99_steady_ms": percentile(steady, 0.99),
        "window_requests": len(inside),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["stampede", "storm", "expiry"])
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--leeway", type=int, default=60)
    args = parser.parse_args()
    run = {"stampede": stampede, "storm": storm, "expiry": expiry}[args.scenario]
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    sys.exit(main())
