"""Campaign scale-out on dask.distributed (the `campaign` extra): a LocalCluster on 127.0.0.1 (--workers N) or
an existing scheduler (--scheduler tcp://HOST:PORT). Each worker process opens its own device for the target
(a golden device, or its own sim server) once and keeps it; boards get one worker each (one --target per
board). Workers only compute: results come back to the submitting process, which alone writes the database.
"""

from __future__ import annotations

from .campaign import _run_one
from .campaign_cli import need
from .errors import PimError

# Per worker process: target -> Device, opened on first use.
_DEVICES: dict = {}


def _device(target: str, timeout: float):
    dev = _DEVICES.get(target)
    if dev is None:
        from .device import Device
        from .transport import open_target
        from .campaign_cli import open_kw
        t = open_target(target, **open_kw(target))
        try:
            dev = Device(t, timeout=timeout)
        except BaseException:
            t.close()
            raise
        _DEVICES[target] = dev
    return dev


def _worker_params(target: str, timeout: float) -> dict:
    return _device(target, timeout).params.as_dict()


def _worker_run(target: str, case, mode: dict, timeout: float):
    try:
        dev = _device(target, timeout)
    except PimError as e:
        return case, "failed", None, f"{type(e).__name__}: {e}"
    out = _run_one(dev, case, mode)
    if out[1] == "failed" and out[3].startswith(("LinkTimeout", "LinkError", "DeviceGone")):
        _close_devices([target])        # the link is suspect: the next case opens it afresh
    return out


def _close_devices(targets=None) -> int:
    for t in list(_DEVICES if targets is None else targets):
        dev = _DEVICES.pop(t, None)
        if dev is not None:
            dev.t.close()
    return 0


class DaskExecutor:
    """Runs cases on Dask workers. targets: one target string for every worker (golden, sim, ...), or one board
    per target (a worker each). workers: LocalCluster size (default: one per target); scheduler: an existing
    cluster's address instead. Raises MissingExtra without dask.distributed, OSError/TimeoutError when the
    scheduler cannot be reached (within 30 s)."""

    def __init__(self, targets, *, workers=None, scheduler=None, run_timeout=600.0):
        distributed = need("distributed", why="--workers / --scheduler")
        self.targets = list(targets)
        self.timeout = run_timeout
        self.cluster = None
        if scheduler:
            self.client = distributed.Client(scheduler, timeout=30)
        else:
            self.cluster = distributed.LocalCluster(n_workers=workers or len(self.targets), threads_per_worker=1,
                                                    processes=True, host="127.0.0.1",
                                                    dashboard_address="127.0.0.1:0")
            self.client = distributed.Client(self.cluster)
        self.workers = sorted(self.client.scheduler_info()["workers"])
        if len(self.targets) > 1 and len(self.workers) < len(self.targets):
            self.close()
            raise ValueError(f"{len(self.targets)} boards need {len(self.targets)} workers, the cluster has "
                             f"{len(self.workers)}")
        # One worker opens (and for sim targets builds) first, so that the others find the model built.
        from .contract import DeviceParams
        self.params = DeviceParams(**self.client.submit(
            _worker_params, self.targets[0], self.timeout, pure=False,
            workers=[self.workers[0]]).result())

    def map_cases(self, cases, mode):
        """Submit every case; yield (case, status, result, error) as each finishes."""
        from distributed import as_completed
        futs = []
        for i, case in enumerate(cases):
            if len(self.targets) > 1:
                j = i % len(self.targets)
                futs.append(self.client.submit(_worker_run, self.targets[j], case, mode, self.timeout, pure=False,
                                               workers=[self.workers[j]], allow_other_workers=False))
            else:
                futs.append(self.client.submit(_worker_run, self.targets[0], case, mode, self.timeout, pure=False))
        for fut in as_completed(futs):
            yield fut.result()

    def close(self):
        try:
            self.client.run(_close_devices)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
