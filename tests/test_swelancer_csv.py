"""SWE-Lancer task CSVs: the lite one (the real copy lancer ships) and the current release's
format (tests/data/all_swelancer_tasks_sample.csv: rows written for these tests, in the
columns and encoding of all_swelancer_tasks.csv), read whole or filtered."""

from __future__ import annotations

from pathlib import Path

import pytest

from lancer.core.errors import TaskError
from lancer.formats.swelancer import load_swelancer_task, select_tasks
from tests.conftest import ROOT, SWELANCER_LITE_CSV

CURRENT_CSV = ROOT / "tests" / "data" / "all_swelancer_tasks_sample.csv"


def ids(tasks: list) -> list[str]:  # type: ignore[type-arg]
    return [t.id for t in tasks]


def test_the_current_release_is_read_with_its_sets_and_decoded_text() -> None:
    tasks = select_tasks(CURRENT_CSV)
    assert ids(tasks) == ["90001_101", "90002-manager-0", "90003-manager-0", "90004_202"]
    assert [t.set for t in tasks] == ["diamond", "diamond", "nondiamond", "nondiamond"]
    ic = tasks[0]
    assert (ic.variant, ic.price, ic.title) == ("ic_swe", 500.0, "Chat - Emoji picker closes on first click")
    # Escaped newlines become newlines; non-ASCII text stays as written.
    assert "Action performed:\n1. Open a chat\n2. Click the emoji button → the picker closes" in ic.description
    assert ic.description.endswith("(café test).")
    assert ic.image == "swelancer/swelancer_x86_90001_101:releasev1"
    assert ic.env["ISSUE_ID"] == "90001_101"
    assert all(t.source == CURRENT_CSV.resolve() for t in tasks)


def test_manager_proposals_come_from_manager_data_or_else_from_the_proposals_text() -> None:
    structured, from_text = select_tasks(CURRENT_CSV, variant="swe_manager")
    assert [p.id for p in structured.proposals] == [0, 1, 2]
    assert structured.correct_proposal == 1
    assert "café prices show 3 decimals" in structured.proposals[1].content
    assert [p.id for p in from_text.proposals] == [0, 1]  # manager_data names only the correct one here
    assert from_text.correct_proposal == 0
    assert from_text.proposals[0].content == (
        "## Proposal\n\nThe total adds the wrong way round.\n\n### Fix\nUse `a + b` in `total()`."
    )
    assert from_text.proposals[1].content == "## Proposal\n\nRewrite the whole report page."


def test_filters_combine() -> None:
    assert ids(select_tasks(CURRENT_CSV, set_name="diamond")) == ["90001_101", "90002-manager-0"]
    assert ids(select_tasks(CURRENT_CSV, variant="ic_swe", set_name="nondiamond")) == ["90004_202"]
    assert ids(select_tasks(CURRENT_CSV, ids=["90004_202", "90001_101", "90004_202"])) == ["90001_101", "90004_202"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"ids": ["90001_101", "12345_6"]}, "no task 12345_6 in "),
        ({"variant": "manager"}, "unknown variant 'manager': use ic_swe or swe_manager"),
        ({"set_name": "gold"}, "no set 'gold' in .*; its sets: diamond, nondiamond"),
        ({"variant": "ic_swe", "ids": ["90002-manager-0"]}, "matches --variant ic_swe --ids 90002-manager-0"),
    ],
)
def test_a_bad_filter_is_one_line_naming_it(filters: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(TaskError, match=message) as caught:
        select_tasks(CURRENT_CSV, **filters)
    assert "\n" not in str(caught.value)


def test_the_lite_csv_has_no_sets_and_says_so() -> None:
    manager = select_tasks(SWELANCER_LITE_CSV, variant="swe_manager")
    assert (len(manager), sum(t.price for t in manager)) == (113, 202_000)
    assert all(t.set is None and t.correct_proposal in {p.id for p in t.proposals} for t in manager)
    ic = select_tasks(SWELANCER_LITE_CSV, variant="ic_swe")
    assert (len(ic), sum(t.price for t in ic)) == (61, 175_000)
    assert all(t.description and "The reward for the correct fix" not in t.description for t in ic)
    with pytest.raises(TaskError, match="has no set column"):
        select_tasks(SWELANCER_LITE_CSV, set_name="diamond")


def test_a_file_that_is_not_a_task_csv_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "tasks.csv"
    bad.write_text("question_id,variant\nx1,ic_swe\n")
    with pytest.raises(TaskError, match="is not a SWE-Lancer task CSV: no price, prompt or description column"):
        select_tasks(bad)
    bad.write_text("question_id,variant,price,description\nx1,ic_swe,lots,d\n")
    with pytest.raises(TaskError, match=r"row x1 is not a SWE-Lancer task \(ValueError: could not convert"):
        select_tasks(bad)
    with pytest.raises(TaskError, match="does not exist"):
        select_tasks(tmp_path / "missing.csv")
    with pytest.raises(TaskError, match="'nope' is neither a task folder nor a task id"):
        load_swelancer_task("nope", CURRENT_CSV)


def test_text_with_stray_backslashes_is_kept(tmp_path: Path) -> None:
    # A regex's "\d" stays; a Windows path's "\x" (no hex after it) cannot be decoded: kept as is.
    rows = tmp_path / "tasks.csv"
    rows.write_text(
        "question_id,variant,price,set,title,description,proposals\n"
        '1_1,ic_swe,10,diamond,t,"match /\\d+/ in C:\\xyz\\nnext line",\n'
        "2_2,ic_swe,10,diamond,t,match /\\d+/\\nnext line,\n"
    )
    garbled, regex = select_tasks(rows)
    assert garbled.description == "match /\\d+/ in C:\\xyz\nnext line"
    assert regex.description == "match /\\d+/\nnext line"
