#!/usr/bin/env bash
# The main job on a real sample: set up what is missing, build a mixed media folder from real
# third-party files (videos, music, speech, sound effects, images, bad files), encode it into a
# library with the bundled offline models (CPU or GPU automatically), then query it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

SAMPLE=${MMREC_SAMPLE:-$HOME/.cache/mmrec/sample}
export MMREC_LIBRARY=${MMREC_LIBRARY:-$PWD/mmrec-library}
[ -f "$SAMPLE/manifest.jsonl" ] && [ -d "$SAMPLE-events" ] || python scripts/make_sample.py "$SAMPLE"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "mmrec encode $SAMPLE   (resumable: run it again and unchanged files are skipped)"
mmrec encode "$SAMPLE" --metadata "$SAMPLE/manifest.jsonl"

step "mmrec info --failures"
mmrec info --failures

step "mmrec inspect video/bigbuckbunny.mp4"
mmrec inspect "$SAMPLE/video/bigbuckbunny.mp4"

step 'mmrec search "a fire truck"'
mmrec search "a fire truck" -k 5

step 'mmrec search "一只狗"   (Chinese query)'
mmrec search "一只狗" -k 5

step "mmrec similar images/dog.png"
mmrec similar images/dog.png -k 5

step "mmrec ingest events and comments (English and Chinese; comments analysed on the way in)"
mmrec ingest "$SAMPLE-events/events.csv"
mmrec ingest "$SAMPLE-events/comments.jsonl"

step "mmrec profile alice"
mmrec profile alice

step "mmrec recommend alice -k 5 --diversity 0.3"
mmrec recommend alice -k 5 --diversity 0.3

step "mmrec recommend 小明 -k 5"
mmrec recommend 小明 -k 5

step "mmrec describe-user carol (cold start from a self-description)"
mmrec describe-user carol "我喜欢大象和长颈鹿这样的野生动物"
mmrec recommend carol -k 3

step "mmrec thumbnails   (pictures for the web page; only a library encoded by an older mmrec lacks them)"
mmrec thumbnails

step "see it in a browser"
cat <<MSG
Serve the sample library and open the web page (search in English or Chinese, play previews,
similar items, alice's profile and explained recommendations with like/dislike/skip):

    source .venv/bin/activate
    mmrec serve --library "$MMREC_LIBRARY"
    # then open http://127.0.0.1:8000/   (JSON API under /api, OpenAPI at /docs)
MSG
