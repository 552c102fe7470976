"""Whether the Ray cluster can hold a job's workers: once before the job starts, and while it runs.

Before: `check_resources` refuses a job whose workers cannot all be placed (Ray would wait for resources
forever). While it runs: when a node leaves, Ray Train restarts the worker group from the last registered
checkpoint, but its placement group waits until the cluster has room again. Ray 2.60 times the wait out every
RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s) and retries without limit (a start-up timeout is a controller
error, not counted in max_failures), logging a generic timeout. `CapacityWatch` says instead which node left
and what to do, and gives up after `capacity_timeout_s` when the profile sets one.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator

from ftdist.errors import FtdistError
from launch.profiles import RayProfile


def room(profile: RayProfile) -> tuple[int, list[dict]]:
    """(how many of the profile's workers the live nodes can hold with its placement strategy, live nodes)."""
    import ray

    wanted = profile.resources()
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    per_node = [
        min(math.floor(node["Resources"].get(k, 0.0) / v + 1e-9) for k, v in wanted.items() if v > 0) for node in nodes
    ]
    fits = sum(per_node)
    if profile.placement_strategy == "STRICT_SPREAD":
        fits = sum(1 for n in per_node if n > 0)
    elif profile.placement_strategy == "STRICT_PACK":
        fits = max(per_node, default=0)
    return fits, nodes


def check_resources(profile: RayProfile) -> None:
    """Refuse a job whose workers cannot all be placed, instead of letting Ray wait for resources forever."""
    import ray

    fits, nodes = room(profile)
    if fits >= profile.workers:
        return
    wanted = profile.resources()
    total = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory") or k in wanted}
    raise FtdistError(
        f"--workers {profile.workers} needing {fmt(wanted)} each do not fit: the cluster ({len(nodes)} "
        f"node(s), {fmt(total)} in total) has room for {fits} with placement {profile.placement_strategy}. "
        "Lower --workers or --cpus-per-worker / --gpus-per-worker, add nodes, or pass "
        "--check-resources false on an autoscaling cluster"
    )


def fmt(resources: dict[str, float]) -> str:
    def one(key: str, value: float) -> str:
        return f"{value / 2**30:.1f} GiB memory" if key == "memory" else f"{value:g} {key}"

    return ", ".join(one(k, v) for k, v in resources.items()) or "nothing"


def fit_watched(fit, profile: RayProfile, address: str):
    """`fit()` with a `CapacityWatch`. With `capacity_timeout_s`, fit runs in a thread and the driver waits for
    it or for the watch to give up; giving up raises here, and the caller's `ray.shutdown()` then ends the job
    (the controller actor belongs to this driver). Ray's SIGINT handler only exists on the main thread, so
    without a timeout fit stays there (Ctrl-C aborts the run gracefully, as Ray does)."""
    watch = CapacityWatch(profile, address)
    with watch, sigint_handler_restored():
        if not profile.capacity_timeout_s:
            return fit()
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["result"] = fit()
            except BaseException as error:  # handed to the waiting driver thread
                outcome["error"] = error
            finally:
                watch.finished.set()

        threading.Thread(target=run, name="ftdist-ray-fit", daemon=True).start()
        watch.finished.wait()
    if watch.gave_up is not None:
        raise FtdistError(watch.gave_up)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@contextlib.contextmanager
def sigint_handler_restored() -> Iterator[None]:
    """Put back the SIGINT handler that was there before `fit()`. Ray Train 2.60's fit installs one on the main
    thread that aborts its controller, and never removes it: after the job, a Ctrl-C in the same process (a
    notebook, a test session, a script that goes on) would call the dead controller, and Ray's auto-init would
    connect to, or start, a cluster."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if before is not None:  # None: a handler set outside Python, which cannot be put back from here
            signal.signal(signal.SIGINT, before)


class CapacityWatch:
    """A driver thread that polls the live nodes during `fit()`; says when the workers no longer fit, and,
    with `capacity_timeout_s`, gives up (sets `finished`) once they have not fitted for that long."""

    POLL_S = 1.0

    def __init__(self, profile: RayProfile, address: str, say=print) -> None:
        self.profile, self.address, self.say = profile, address, say
        self.gave_up: str | None = None  # the message, once the watch gave up
        self.finished = threading.Event()  # fit returned or raised, or the watch gave up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ftdist-capacity-watch", daemon=True)

    def __enter__(self) -> CapacityWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        import ray

        known = {node["NodeID"]: node for node in room(self.profile)[1]}
        short_since: float | None = None
        fitted = False  # an autoscaling cluster may start short: only a drop after the workers fitted counts
        while not self._stop.wait(self.POLL_S):
            if not ray.is_initialized():  # the driver disconnected; a Ray call now would start a local cluster
                return
            try:
                fits, nodes = room(self.profile)
            except Exception:  # the driver is shutting down
                return
            alive = {node["NodeID"] for node in nodes}
            left = [node for node_id, node in known.items() if node_id not in alive]
            known.update({node["NodeID"]: node for node in nodes})
            for node in left:
                known.pop(node["NodeID"])
            if fits >= self.profile.workers:
                fitted = True
                if short_since is not None:
                    self.say(f"ftdist launch ray: the cluster has room for all {self.profile.workers} workers again")
                short_since = None
                continue
            if not fitted:
                continue
            if short_since is None:
                short_since = time.monotonic()
                self.say(self._short_message(fits, left))
            limit = self.profile.capacity_timeout_s
            if limit and time.monotonic() - short_since > limit:
                self.gave_up = (
                    f"the cluster had room for only {fits} of the {self.profile.workers} workers for "
                    f"{limit:g} s (--capacity-timeout-s), so ftdist stopped the job. Add a node "
                    f"(`ray start --address {self.address}`) and run the same command again: it resumes from "
                    "the newest checkpoint in output_dir (checkpoint.resume: auto); or lower --workers (the "
                    "weights then differ from a run with the original world size)"
                )
                self.finished.set()
                return

    def _short_message(self, fits: int, left: list[dict]) -> str:
        gone = ", ".join(f"{n['NodeID'][:8]} ({n.get('NodeManagerAddress')})" for n in left) or "none seen"
        waits = (
            f"gives up after {self.profile.capacity_timeout_s:g} s"
            if self.profile.capacity_timeout_s
            else "waits without limit (set --capacity-timeout-s to give up)"
        )
        return (
            f"ftdist launch ray: the cluster now has room for {fits} of the {self.profile.workers} workers "
            f"(node(s) left: {gone}). Ray Train restarts the worker group from the last registered checkpoint "
            f"once they fit again; until then it waits (Ray retries the placement every 60 s) and ftdist {waits}. "
            f"Add a node with `ray start --address {self.address}`, or stop the run (Ctrl-C / `ray job stop`)"
        )
