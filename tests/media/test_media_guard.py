"""run_guarded(): results come back, hangs time out, crashes and child exceptions are typed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from encoders.media import (
    DecodedMedia,
    DecoderCrashedError,
    DecodeSpec,
    DecodeTimeoutError,
    UnsupportedMediaError,
    decode_media,
    probe,
    run_guarded,
)


def test_returns_result(bikes: Path) -> None:
    info = run_guarded(probe, bikes, timeout_s=60)
    assert info == probe(bikes)


def test_returns_decoded_media_with_kwargs(unicode_copy: Path) -> None:
    media = run_guarded(
        decode_media, unicode_copy, spec=DecodeSpec(frame_count=2, frame_max_side=64), timeout_s=60
    )
    assert isinstance(media, DecodedMedia) and len(media.frames.frames) == 2
    assert media.info.path == str(unicode_copy) and 16000 in media.audio


def test_timeout_kills_child() -> None:
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="timed out after 1 s"):
        run_guarded(time.sleep, 30, timeout_s=1.0)
    assert time.monotonic() - t0 < 25  # far less than the 30 s sleep: the child was killed


def test_blocking_read_times_out_naming_the_path(media_tmp: Path) -> None:
    """Opening a FIFO nobody writes to blocks forever, like a decoder stuck on a bad file."""
    fifo = media_tmp / "stuck fifo.mp4"
    os.mkfifo(fifo)
    with pytest.raises(DecodeTimeoutError) as info:
        run_guarded(open, str(fifo), "rb", timeout_s=1.0)
    assert info.value.path == str(fifo) and str(info.value).startswith(str(fifo))


def test_abort_is_crash() -> None:
    with pytest.raises(DecoderCrashedError, match="SIGABRT"):
        run_guarded(os.abort)


def test_exit_without_answer_is_crash() -> None:
    with pytest.raises(DecoderCrashedError, match="exit status 3"):
        run_guarded(os._exit, 3)


def test_child_exception_same_type_and_message(random_mp4: Path) -> None:
    with pytest.raises(UnsupportedMediaError) as direct:
        probe(random_mp4)
    with pytest.raises(UnsupportedMediaError) as guarded:
        run_guarded(probe, random_mp4)
    assert str(guarded.value) == str(direct.value) and guarded.value.path == str(random_mp4)


def test_builtin_exception_reraised() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        run_guarded(int, "not a number")
