"""Engines: where the encode mapper runs (``local`` process pool, the default, or ``ray``).

``open_engine`` is the one place that turns ``--engine/--address/--mode/--workers`` into a
started engine and the mode it runs; the runner sees only the :class:`Engine` interface.
Importing this package never imports Ray.
"""

from __future__ import annotations

from pipelines.engines.base import (
    MODES,
    Engine,
    FileResult,
    FileTask,
    Mode,
    PoolBrokenError,
    TaskTimeoutError,
    Work,
    WorkerCrashedError,
    choose_mode,
)

ENGINES = ("local", "ray")

__all__ = [
    "ENGINES",
    "MODES",
    "Engine",
    "FileResult",
    "FileTask",
    "Mode",
    "PoolBrokenError",
    "TaskTimeoutError",
    "Work",
    "WorkerCrashedError",
    "choose_mode",
    "open_engine",
]


def open_engine(
    name: str,
    *,
    models_device: str,
    mode: str | Mode | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    address: str | None = None,
    models: object | None = None,
) -> tuple[Engine, Mode]:
    """An engine (not started yet) and the mode it will run.

    The mode follows the device the encoders run on (``choose_mode``) unless ``mode`` is given:
    the driver's model device for ``local``, the cluster's (GPUs anywhere in it) for ``ray``.
    ``workers=0`` (local) maps in this process with ``models``.
    """
    from pipelines.errors import UnknownEngineError

    if name == "ray":
        from pipelines.engines.ray_engine import RayEngine

        ray_engine = RayEngine(address)
        return ray_engine, choose_mode(ray_engine.device, mode)
    if name != "local":
        raise UnknownEngineError(name, ENGINES)
    if address is not None:
        raise UnknownEngineError(name, ENGINES, "--address joins a Ray cluster: it needs --engine ray")
    chosen = choose_mode(models_device, mode)
    from pipelines.engines.local import LocalEngine, SerialEngine, default_workers

    n = default_workers(models_device) if workers is None else workers
    if n == 0:
        return SerialEngine(models), chosen
    return LocalEngine.for_work(n, chosen, batch_size), chosen
