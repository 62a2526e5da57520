"""The local engine isolates hangs and crashes per task and keeps going; typed media errors cross over."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from encoders.media.decode import DecodeSpec
from encoders.media.errors import UnsupportedMediaError
from mmrec.errors import InvalidInputError
from pipelines.decode import DecodeTask, decode_task
from pipelines.engines import Mode, choose_mode, open_engine
from pipelines.errors import UnknownEngineError
from pipelines.runner import LocalEngine, SerialEngine, StageTimer, TaskTimeoutError, WorkerCrashedError


@pytest.fixture(scope="module")
def engine():
    eng = LocalEngine(workers=1, max_in_flight=2, max_tasks=2)
    yield eng
    eng.close()


def test_hang_and_crash_fail_only_their_task(engine: LocalEngine) -> None:
    ((_, hung),) = list(engine.map_decode(time.sleep, [30], timeout_s=1.0))
    assert isinstance(hung, TaskTimeoutError)
    ((_, died),) = list(engine.map_decode(os._exit, [3], timeout_s=30))
    assert isinstance(died, WorkerCrashedError) and "3" in str(died)
    results = dict(engine.map_decode(math.sqrt, [4.0, 9.0, 16.0, 25.0, 36.0], timeout_s=30))
    assert results == {4.0: 2.0, 9.0: 3.0, 16.0: 4.0, 25.0: 5.0, 36.0: 6.0}  # more tasks than max_tasks


def test_real_decode_in_worker(engine: LocalEngine, media_folder: Path) -> None:
    spec = DecodeSpec(frame_count=2, audio_rates=(16000,))
    tasks = [
        DecodeTask(str(media_folder / "images" / "animals" / "koala.png"), spec),
        DecodeTask(str(media_folder / "video" / "noise.mp4"), spec),
    ]
    out = {Path(t.path).name: r for t, r in engine.map_decode(decode_task, tasks, timeout_s=120)}
    assert out["koala.png"].media.info.kind == "image" and len(out["koala.png"].media.frames.frames) == 1
    assert isinstance(out["noise.mp4"], UnsupportedMediaError)
    serial = dict(SerialEngine().map_decode(math.sqrt, [-1.0, 4.0], timeout_s=1))
    assert isinstance(serial[-1.0], ValueError) and serial[4.0] == 2.0


def test_stage_timer_accumulates() -> None:
    timer = StageTimer()
    with timer.stage("encode"):
        time.sleep(0.01)
    timer.add("encode", 1.0)
    assert timer.to_dict()["encode"] >= 1.01 and "encode" in timer.describe()


def test_mode_follows_the_device_unless_asked() -> None:
    assert choose_mode("cpu") is Mode.WHOLE_FILE and choose_mode("cuda:0") is Mode.DECODE_BATCHED
    assert choose_mode("cpu", "decode-batched") is Mode.DECODE_BATCHED
    with pytest.raises(InvalidInputError, match="'batched'"):
        choose_mode("cpu", "batched")


def test_engine_options_are_checked_before_anything_starts() -> None:
    with pytest.raises(UnknownEngineError, match="--address joins a Ray cluster"):
        open_engine("local", models_device="cpu", address="auto")
    with pytest.raises(UnknownEngineError, match="unknown engine 'spark'"):
        open_engine("spark", models_device="cpu")
    engine, mode = open_engine("local", models_device="cpu", workers=0)
    assert isinstance(engine, SerialEngine) and mode is Mode.WHOLE_FILE
