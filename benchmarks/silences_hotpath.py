"""What silences cost on the hot path, tocsin against Alertmanager 0.25, in one run (issue 15).

The workload of the issue, as it is: 10,000 unique alerts in 1,000 groups
(``group_by: [alertname]``), ``group_wait: 0s``, so every new group goes through the
notification pipeline (silence stage included) while ingest is still running. Alerts are
POSTed in batches of 100 over 4 keep-alive connections by :mod:`benchmarks.rawhttp` (an
httpx client here capped both daemons near 30k alerts/s). Three silence sets, each on a
fresh daemon, Alertmanager and tocsin back to back per set, after one unrecorded warm-up
ingest on each (see :func:`run_ingest`):

* ``none``: no silences;
* ``expired``: 1,000 silences created, then expired with DELETE before the alerts come.
  Each would mute one whole group (``alertname=~"Bench.*"``, ``instance=~"host-.*-<g>\\..*"``)
  if it were still active, so a daemon that consulted them wrongly would miss groups;
* ``regex``: 1,000 active silences whose matchers are all regexes and match none of
  the alerts: a quarter each of ``alertname=~"Bench.*", instance=~"db-<k>-.*"``
  (a wide regex beside a narrow one), ``instance=~"(db|cache)-<k>\\..*"`` (no literal
  prefix), ``job=~"batch-<k>|cron-<k>", severity=~"warning|critical"`` (a small
  alternation beside one every alert matches) and ``alertname=~".*Maintenance<k>"``.

For each: ingest rate (alerts/s, from the first POST to the last answer), the daemon's
CPU seconds per 10k alerts over that window, the time from the first POST until the
webhook sink has a notification from every one of the 1,000 groups, and the daemon's CPU
seconds per 10k alerts from the first POST until then (notification work that runs on
after the last answer included). The sink runs in a process of its own
(:mod:`benchmarks.webhook_sink`): in this process its work on each webhook took
interpreter time from the client posting the alerts, so a daemon that notified during
the ingest window slowed its own measured ingest.

Then the API, with Alertmanager, tocsin (each holding the 1,000 regex silences) and three
no-op servers all running at once, measured in ``--api-rounds`` alternating rounds (so a
change in machine load hits each alike; medians reported):

* ``GET /api/v2/silences`` at 1,000 silences (every GET round before any POST), whole
  body read, median of 10 per round;
* ``POST /api/v2/silences``: ``--posts`` new silences over 1 and over 4 keep-alive
  connections (:mod:`benchmarks.rawhttp` again, so the client is not the
  bottleneck). The same client POSTs to a no-op handler served by tocsin's own HTTP
  stack (hypercorn + quart-trio via :func:`daemon.api.server.serve_api`, in its own
  process: ``python -m benchmarks.silences_hotpath --noop-server PORT``), and to the
  same no-op as a bare ASGI app on the same hypercorn (``--noop-mode bare``:
  what is left when quart's per-request machinery is gone), and to that bare no-op as a
  direct route, which tocsin's server takes on the wire as it takes the silence POST
  (``--noop-mode wire``, :mod:`daemon.api.wire`). tocsin's silence POST rate
  (fsync kept) is reported against each, as the median of the per-round ratios (the
  issue's target: at least 0.9x the quart-trio no-op at 4 connections), and against
  Alertmanager.

Run: .venv/bin/python -m benchmarks.silences_hotpath [--repeat N] [--api-rounds N]

``--api-only`` runs just the API part; ``--ingest-only`` just the ingest scenarios, and
``--scenarios none,regex`` picks which (a change to the ingest path is then measured in a
minute: alternate ``--repeat`` runs rather than trusting one, the machine's speed drifts).

``--profile`` instead runs the silence store's part of each scenario in this process
under cProfile (every alert looked up twice, as ingest's prepare and the flush do) and
prints the time per scenario and the top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import trio

from benchmarks.harness import Daemon, start, start_module
from benchmarks.rawhttp import post_bodies
from benchmarks.silences import CONFIG as SILENCES_CONFIG
from benchmarks.silences import create_silences, make_alerts
from benchmarks.webhook_sink import ProcessSink

GROUPS = 1_000
SILENCES = 1_000
# benchmarks.silences' config with group_wait 0s: every new group flushes at once.
CONFIG = SILENCES_CONFIG.replace("{group_wait}", "0")

Matchers = list[tuple[str, str]]


def expired_set(count: int) -> list[Matchers]:
    """Silences that would each mute a whole group, were they active."""
    return [
        [("alertname", "Bench.*"), ("instance", f"host-.*-{k % GROUPS}\\..*")] for k in range(count)
    ]


def regex_set(count: int) -> list[Matchers]:
    """Active regex silences matching none of the alerts (see the module docstring)."""
    out: list[Matchers] = []
    for k in range(count):
        kind = k % 4
        if kind == 0:
            out.append([("alertname", "Bench.*"), ("instance", f"db-{k}-.*")])
        elif kind == 1:
            out.append([("instance", f"(db|cache)-{k}\\..*")])
        elif kind == 2:
            out.append([("job", f"batch-{k}|cron-{k}"), ("severity", "warning|critical")])
        else:
            out.append([("alertname", f".*Maintenance{k}")])
    return out


def alert_bodies() -> list[bytes]:
    alerts = make_alerts(GROUPS)
    return [
        json.dumps([{"labels": lb} for lb in alerts[i : i + 100]]).encode()
        for i in range(0, len(alerts), 100)
    ]


def expire_all(url: str, ids: list[str]) -> None:
    with httpx.Client(timeout=60) as c:
        for sid in ids:
            c.delete(f"{url}/api/v2/silence/{sid}").raise_for_status()


def ingest(d: Daemon, sink: ProcessSink) -> dict[str, float]:
    bodies = alert_bodies()
    sink.reset(GROUPS)
    cpu0, t0 = d.cpu_seconds(), time.perf_counter()
    trio.run(post_bodies, d.url, "/api/v2/alerts", bodies, 4)
    t1, cpu1 = time.perf_counter(), d.cpu_seconds()
    if not sink.done.wait(120):
        raise RuntimeError(f"{d.name}: {sink.count()}/{GROUPS} groups notified")
    cpu2 = d.cpu_seconds()
    alerts = len(bodies) * 100
    return {
        "alerts_per_s": alerts / (t1 - t0),
        "cpu_s_per_10k": (cpu1 - cpu0) * 10_000 / alerts,
        "all_notified_s": sink.done_at - t0,
        # The ingest window's CPU leaves out notification work still running after the
        # last answer (Alertmanager's, with regex silences, runs on for a second); this
        # counts all of it, up to the sink's report that every group has arrived.
        "cpu_s_per_10k_to_notified": (cpu2 - cpu0) * 10_000 / alerts,
    }


def silence_post_bodies(count: int, tag: str) -> list[bytes]:
    now = time.time()
    return [
        json.dumps(
            {
                "matchers": [
                    {"name": "instance", "value": f"{tag}-{k}", "isRegex": False, "isEqual": True}
                ],
                "startsAt": _rfc3339(now - 60),
                "endsAt": _rfc3339(now + 3600),
                "createdBy": "bench",
                "comment": f"post rate {tag} {k}",
            }
        ).encode()
        for k in range(count)
    ]


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def post_rate(port: int, path: str, count: int, connections: int, tag: str) -> float:
    bodies = silence_post_bodies(count, tag)
    t0 = time.perf_counter()
    trio.run(post_bodies, f"http://127.0.0.1:{port}", path, bodies, connections)
    return count / (time.perf_counter() - t0)


def get_silences_ms(url: str, reps: int = 30) -> float:
    times = []
    with httpx.Client(timeout=60) as c:
        c.get(f"{url}/api/v2/silences").raise_for_status()
        for _ in range(reps):
            t = time.perf_counter()
            r = c.get(f"{url}/api/v2/silences")
            r.read()
            times.append(time.perf_counter() - t)
            r.raise_for_status()
    return statistics.median(times) * 1000


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --- the no-op server ----------------------------------------------------------------------


#: The no-op servers: name -> ``--noop-server`` mode (see the module docstring).
NOOPS = {"noop": "quart", "noop_asgi": "bare", "noop_wire": "wire"}


def noop_server(port: int, mode: str = "quart") -> None:
    """Serve ``POST /noop`` (reads the JSON body, answers a small JSON) on tocsin's stack:
    through quart-trio, as a plain ASGI callable on the same hypercorn (``bare``), or as
    that callable registered as a direct route, so the server takes it on the wire."""
    from quart import request
    from quart_trio import QuartTrio

    from daemon.api.direct import register_direct_routes
    from daemon.api.server import serve_api

    if mode in ("bare", "wire"):
        if mode == "wire":
            register_direct_routes(bare_noop, [("POST", "/noop")])
        trio.run(serve_api, bare_noop, "127.0.0.1", port)
        return
    app = QuartTrio("noop")

    @app.post("/noop")
    async def noop() -> tuple[dict[str, str], int]:
        json.loads(await request.get_data())
        return {"silenceID": "x"}, 200

    @app.get("/-/ready")
    async def ready() -> tuple[str, int]:
        return "OK", 200

    trio.run(serve_api, app, "127.0.0.1", port)


_NOOP_ANSWER = json.dumps({"silenceID": "x"}).encode()


async def bare_noop(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The quart no-op's work as a bare ASGI app: ``POST /noop`` reads and decodes the
    JSON body and answers the same small JSON; ``GET /-/ready`` answers OK."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if scope["method"] == "POST" and scope["path"] == "/noop":
        json.loads(b"".join(chunks))
        status, ctype, payload = 200, b"application/json", _NOOP_ANSWER
    elif scope["path"] == "/-/ready":
        status, ctype, payload = 200, b"text/plain; charset=utf-8", b"OK"
    else:
        status, ctype, payload = 404, b"text/plain; charset=utf-8", b"not found"
    headers = [(b"content-type", ctype), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def start_noop(name: str) -> contextlib.AbstractContextManager[Daemon]:
    """The no-op server ``name`` (of :data:`NOOPS`) in its own process."""
    return start_module(
        name, "benchmarks.silences_hotpath", "--noop-server", "{port}", "--noop-mode", NOOPS[name]
    )


# --- the in-process profile ------------------------------------------------------------


def profile(count: int) -> None:
    """Each scenario's silence lookups on the pure store, timed, then profiled."""
    import cProfile
    import pstats

    from daemon.alert import fingerprint
    from daemon.matcher import Matcher, MatchType
    from daemon.silence.model import Silence
    from daemon.silence.state import Silences

    alerts = [(lb, fingerprint(lb)) for lb in make_alerts(GROUPS)]
    now = time.time_ns()

    def build(scenario: str) -> Silences:
        store = Silences()
        for matchers in SCENARIOS[scenario](count):
            ms = tuple(Matcher.create(MatchType.REGEXP, n, v) for n, v in matchers)
            sid = store.set(Silence("", ms, now - 60 * 10**9, now + 3600 * 10**9), now)
            if scenario == "expired":
                store.expire(sid, now)
        return store

    def lookups(store: Silences) -> None:
        for step in (1, 2):
            for labels, fp in alerts:
                store.mutes(labels, fp, now + step * 1000)

    for scenario in SCENARIOS:
        store = build(scenario)
        t = time.perf_counter()
        lookups(store)
        print(f"{scenario}: {time.perf_counter() - t:.3f} s for {2 * len(alerts)} lookups")
    for scenario in ("expired", "regex"):
        print(f"\n--- profile: {scenario}")
        prof = cProfile.Profile()
        prof.runcall(lookups, build(scenario))
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)


# --- the run -------------------------------------------------------------------------------

#: The daemons compared, in the order each scenario runs them.
KINDS = ("alertmanager", "tocsin")

SCENARIOS: dict[str, Callable[[int], list[Matchers]]] = {
    "none": lambda n: [],
    "expired": expired_set,
    "regex": regex_set,
}


def run_scenario(
    kind: str, scenario: str, sink: ProcessSink, args: argparse.Namespace
) -> dict[str, float]:
    """One ingest scenario on a fresh daemon."""
    with start(kind, CONFIG.format(url=sink.url)) as d:
        ids = trio.run(create_silences, d.url, SCENARIOS[scenario](args.silences))
        if scenario == "expired":
            expire_all(d.url, ids)
        r = ingest(d, sink)
    print(f"{kind} {scenario}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    return {f"{scenario}.{key}": value for key, value in r.items()}


def run_ingest(
    sink: ProcessSink, args: argparse.Namespace, run: int = 0
) -> dict[str, dict[str, float]]:
    """The ingest scenarios, each on a fresh daemon of each kind, the two kinds back to
    back per scenario (a drift in machine speed then hits both alike), after one
    unrecorded warm-up ingest on each kind: the first ingest of a run was up to 20%
    slower whichever daemon took it (Alertmanager's rate with its first scenario first
    was 23.3-23.8k alerts/s, second 28.6-31.5k), which skewed the ratios of the
    scenario that happened to come first. Which kind goes first in each pair alternates
    from run to run (``run``), so neither always follows the other."""
    kinds = KINDS if run % 2 == 0 else KINDS[::-1]
    for kind in kinds:
        with start(kind, CONFIG.format(url=sink.url)) as d:
            ingest(d, sink)
    results: dict[str, dict[str, float]] = {kind: {} for kind in KINDS}
    for scenario in args.scenarios:
        for kind in kinds:
            results[kind].update(run_scenario(kind, scenario, sink, args))
    return results


def run_api(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """GET and POST silences on both daemons (1,000 regex silences each) and POST on the
    no-op servers, all running at once and measured in alternating rounds, so a change in
    machine load hits each alike; the median of the rounds is reported."""
    rounds: dict[str, dict[str, list[float]]] = {
        "alertmanager": {},
        "tocsin": {},
        **{name: {} for name in NOOPS},
    }
    with (
        start("alertmanager", CONFIG.format(url="http://127.0.0.1:9/")) as am,
        start("tocsin", CONFIG.format(url="http://127.0.0.1:9/")) as to,
        start_noop("noop") as noop,
        start_noop("noop_asgi") as bare,
        start_noop("noop_wire") as wire,
    ):
        for d in (am, to):
            trio.run(create_silences, d.url, regex_set(args.silences))
        # Every GET first, while each daemon holds exactly the 1,000 silences.
        for _ in range(args.api_rounds):
            for d in (am, to):
                rounds[d.name].setdefault("get_silences_ms", []).append(get_silences_ms(d.url, 10))
        for d in (noop, bare, wire):
            post_rate(port_of(d.url), "/noop", 200, 4, "warm")
        targets = (
            (am, "/api/v2/silences"),
            (to, "/api/v2/silences"),
            (noop, "/noop"),
            (bare, "/noop"),
            (wire, "/noop"),
        )
        for r in range(args.api_rounds):
            for d, path in targets:
                for conns in (1, 4):
                    rate = post_rate(port_of(d.url), path, args.posts, conns, f"r{r}c{conns}")
                    rounds[d.name].setdefault(f"post_silences_per_s.{conns}conn", []).append(rate)
            print(
                f"api round {r + 1}: "
                + ", ".join(
                    f"{kind} {key} {vals[-1]:.1f}"
                    for kind, got in rounds.items()
                    for key, vals in got.items()
                ),
                flush=True,
            )
    out = {kind: {k: statistics.median(v) for k, v in got.items()} for kind, got in rounds.items()}
    # The ratio to each no-op server, per round, then the median: the rounds are paired.
    for conns in (1, 4):
        key = f"post_silences_per_s.{conns}conn"
        for noop_kind in NOOPS:
            pairs = zip(rounds["tocsin"][key], rounds[noop_kind][key], strict=True)
            out["tocsin"][f"{key}/{noop_kind}"] = statistics.median(t / n for t, n in pairs)
    return out


def one_run(args: argparse.Namespace, run: int = 0) -> dict[str, dict[str, float]]:
    if args.api_only:
        return run_api(args)
    sink = ProcessSink()
    try:
        results = run_ingest(sink, args, run)
    finally:
        sink.close()
    if not args.ingest_only:
        for kind, values in run_api(args).items():
            results.setdefault(kind, {}).update(values)
    return results


def _per_noop(ratios: dict[str, float]) -> str:
    return ", ".join(f"tocsin/{name} {ratios[name]:.3f}" for name in NOOPS)


def print_run(results: dict[str, dict[str, float]]) -> None:
    am, to = results["alertmanager"], results["tocsin"]
    noops = {name: results.get(name, {}) for name in NOOPS}
    print(
        f"\n{'measure':<36}{'alertmanager':>13}{'tocsin':>10}{'tocsin/AM':>11}"
        + "".join(f"{name:>11}" for name in NOOPS)
    )
    for key in am:
        line = f"{key:<36}{am[key]:>13.3f}{to[key]:>10.3f}{to[key] / am[key]:>11.3f}"
        if key in noops["noop"]:
            line += "".join(f"{noops[name][key]:>11.0f}" for name in NOOPS)
            line += "  " + _per_noop({name: to[f"{key}/{name}"] for name in NOOPS})
            line += " (medians of paired rounds)"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--silences", type=int, default=SILENCES)
    ap.add_argument("--posts", type=int, default=1_000)
    ap.add_argument("--api-rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="profile the silence store only")
    ap.add_argument(
        "--api-only", action="store_true", help="only the GET/POST silences part (no ingest)"
    )
    ap.add_argument(
        "--ingest-only", action="store_true", help="only the ingest scenarios (no API part)"
    )
    ap.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated ingest scenarios of {','.join(SCENARIOS)} (default: all)",
    )
    ap.add_argument("--noop-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--noop-mode", choices=sorted(set(NOOPS.values())), help=argparse.SUPPRESS)
    args = ap.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.noop_server:
        noop_server(args.noop_server, args.noop_mode or "quart")
        return
    if args.profile:
        profile(args.silences)
        return
    runs = []
    for run in range(args.repeat):
        runs.append(one_run(args, run))
        print_run(runs[-1])
    if len(runs) > 1:
        print(f"\nmedian tocsin/AM over {len(runs)} runs (lowest-highest run)")
        for key in runs[0]["alertmanager"]:
            ratios = [r["tocsin"][key] / r["alertmanager"][key] for r in runs]
            line = f"{key:<36}{statistics.median(ratios):>10.3f}"
            line += f"  ({min(ratios):.2f}-{max(ratios):.2f})"
            if key in runs[0].get("noop", {}):
                line += "  " + _per_noop(
                    {n: statistics.median(r["tocsin"][f"{key}/{n}"] for r in runs) for n in NOOPS}
                )
            print(line)


if __name__ == "__main__":
    main()
