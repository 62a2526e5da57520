"""Sound embeddings from the aiSFX CNN (ISMIR 2022, sound-effects libraries), weights from PyPI.

The package pins ancient librosa/numpy, so it is installed without dependencies; we only take its
checkpoint and network definition and compute the log-mel front end ourselves (same parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from encoders.base import EncoderInfo, l2_normalize
from encoders.device import resolve_device
from encoders.onnx_cpu import OnnxNetwork, cpu_runtime, file_digest, onnx_network

MODEL_NAME = "aisfx-x-sequential-ce"
VERSION = "1"
SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
BLOCK_FRAMES = 100  # ~2.3 s of audio per embedding
BLOCK_HOP = 50  # 50% overlap, as in the paper
# Min/max of the log-mel values over the paper's training data (the package's "original" normalisation).
_SPEC_MIN, _SPEC_MAX = 0.0, 9.457798957824707


def _checkpoint_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or spec.origin is None:
        raise RuntimeError("the 'aisfx' package is not installed (pip install --no-deps aisfx==0.1.2)")
    path = Path(spec.origin).parent / "models" / "checkpoint.pth"
    if not path.is_file():
        raise RuntimeError(f"{path}: aiSFX checkpoint missing from the installed package")
    return path


def _numpy_dtype_classes() -> list[type]:
    """numpy 2's per-dtype classes, which pickled scalars reference."""
    return [getattr(np.dtypes, n) for n in ("Int64DType", "Float64DType", "Float32DType", "Int32DType")]


def _load_network() -> torch.nn.Module:
    """The embedding half of aiSFX's CrossNet (the per-dataset classifier heads are not needed)."""
    from aisfx.models.cnn2d import EmbeddingNet

    # The checkpoint pickles numpy scalars beside the state dict (under numpy 1's module names);
    # allow exactly those types, for this load only.
    scalar = np._core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, *_numpy_dtype_classes()]
    with torch.serialization.safe_globals(allowed):
        weights, _datasets = torch.load(_checkpoint_path(), map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    net = EmbeddingNet("max", 3, 1, 64)
    net.load_state_dict(state)
    return net.eval()


def encoder_info(device: str) -> EncoderInfo:
    """What this adapter's vectors are, known without loading the weights."""
    return EncoderInfo(
        modality="audio",
        model=MODEL_NAME,
        dim=512,
        version=VERSION,
        device=device,
        extra={"front_end": "logmel-96-htk", "pooling": "mean-of-blocks"},
    )


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """The package's mel bank: 96 HTK mels over 0-22.05 kHz, each filter of unit area (norm=1)."""
    import librosa

    return librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2, htk=True, norm=1.0
    ).astype(np.float32)


def log_mel(waveform: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Peak-normalised waveform -> (time, 96) log-mel scaled to about [0, 1] like the training data.

    Same maths as librosa.feature.melspectrogram (centred STFT, zero padding, periodic Hann, power 2)
    but in torch, so it runs on the GPU too and is far faster than librosa on CPU (max diff ~1e-5).
    """
    y = np.asarray(waveform, dtype=np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0:
        y = y / peak
    if y.size < N_FFT:  # one STFT window at least; silence pads like the block padding below
        y = np.pad(y, (0, N_FFT - y.size))
    x = torch.from_numpy(y).to(device)
    window = torch.hann_window(N_FFT, periodic=True, device=device)
    stft = torch.stft(
        x,
        N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = stft.real.square() + stft.imag.square()
    mel = torch.from_numpy(_mel_filters()).to(device) @ power
    spec = (torch.log10(mel * 10000.0 + 1.0) - _SPEC_MIN) / (_SPEC_MAX - _SPEC_MIN)
    return spec.T.contiguous().cpu().numpy()  # mel x time -> time x mel, as the network wants


def blocks(spec: np.ndarray) -> np.ndarray:
    """Cut (time, mel) into (n, 100, mel) blocks with 50% hop; short clips are zero-padded to one block."""
    t = spec.shape[0]
    if t < BLOCK_FRAMES:
        padded = np.zeros((BLOCK_FRAMES, spec.shape[1]), dtype=np.float32)
        padded[:t] = spec
        return padded[None]
    starts = range(0, t - BLOCK_FRAMES + 1, BLOCK_HOP)
    return np.stack([spec[s : s + BLOCK_FRAMES] for s in starts])


class AisfxAudioEncoder:
    """AudioEncoder: one 512-d vector per clip, the mean of its 2.3 s block embeddings."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self, device: str = "auto", batch_size: int = 64, runtime: str | None = None) -> None:
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self._net = _load_network().to(self.device)
        # On CPU, ONNX Runtime runs the CNN about twice as fast as eager torch (encoders.onnx_cpu).
        self._onnx: OnnxNetwork | None = None
        if self.device == "cpu" and cpu_runtime(runtime) == "onnx":
            example = torch.rand(3, BLOCK_FRAMES, N_MELS, generator=torch.Generator().manual_seed(0))
            key = f"{MODEL_NAME}-v{VERSION}-{file_digest(_checkpoint_path())}"
            self._onnx = onnx_network(self._net, example, key)
        self.runtime = "onnx" if self._onnx is not None else "torch"
        self.info = encoder_info(self.device)

    def _validate(self, waveform: np.ndarray, index: int) -> np.ndarray:
        arr = np.asarray(waveform)
        if arr.ndim != 1:
            raise ValueError(f"waveform {index}: expected mono 1-D samples, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"waveform {index}: contains NaN or infinite samples")
        return arr.astype(np.float32, copy=False)

    @torch.inference_mode()
    def _embed_blocks(self, all_blocks: np.ndarray) -> np.ndarray:
        out: list[np.ndarray] = []
        for start in range(0, len(all_blocks), self.batch_size):
            if self._onnx is not None:
                out.append(self._onnx(all_blocks[start : start + self.batch_size])[0])
                continue
            x = torch.from_numpy(all_blocks[start : start + self.batch_size]).to(self.device)
            out.append(self._net(x).float().cpu().numpy())
        return np.concatenate(out)

    def encode_audio(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Mono float32 waveforms at 44.1 kHz -> (N, 512) float32, rows L2-normalised."""
        if len(waveforms) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        per_clip = [blocks(log_mel(self._validate(w, i), self.device)) for i, w in enumerate(waveforms)]
        counts = [len(b) for b in per_clip]
        embedded = self._embed_blocks(np.concatenate(per_clip))
        bounds = np.cumsum([0, *counts])
        pooled = np.stack([embedded[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        return l2_normalize(pooled)
