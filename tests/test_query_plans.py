"""ListModels' and GetModel's SQLite plans, as bench/query_plans.py prints
them: a non-admin's pages and every search are found through indexes, never
by walking `models`, and a non-admin's search checks only the words of the
models they may read; a GetModel lookup is one statement of index searches.
(Plans only: nothing here is timed.)"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import query_plans  # noqa: E402


def test_list_plans_follow_what_the_caller_may_read(tmp_path: Path) -> None:
    database = tmp_path / "plans.db"
    query_plans.make_database(database, 2_000)
    checked = query_plans.all_plans(database)
    assert {case.name.split(",")[0] for case, _ in checked} >= {"admin", "non-admin"}
    faults = [
        (case.name, " ".join(plan.sql.split()), fault)
        for case, plans in checked
        for plan in plans
        for fault in plan.faults(case)
    ]
    assert faults == []
    for case, plans in checked:
        # The page, its models with their grants (none kept yet), the total:
        # a reader's page counts what they may read in the page's own
        # statement. No table read whole but the two rows of kept counts (an
        # admin's unfiltered total).
        counted_with_page = not case.admin
        # An admin's one-word search first finds whether the word's range
        # holds one word (its lowest and highest), then reads its page from
        # that word's rows in creation order, sorting nothing.
        one_word = case.admin and case.name.startswith("search ")
        if one_word:
            word_range, *plans = plans
            assert "min(model_words.word)" in word_range.sql, case.name
            assert [line.strip() for line in word_range.lines].count(
                "SEARCH model_words USING PRIMARY KEY (word>? AND word<?)"
            ) == 2, (case.name, word_range.lines)
        page, *rest = plans
        if one_word:
            lines = [line.strip() for line in page.lines]
            assert lines[0].startswith("SEARCH model_words USING PRIMARY KEY (word=?"), lines
            assert not any("TEMP B-TREE" in line for line in lines), lines
        assert "AS sort_key" in page.sql, case.name
        assert ("count(*) OVER ()" in page.sql) == counted_with_page, case.name
        # The models are read only when the page found some, and an empty
        # page counts nothing (no fixture model has a tag).
        found = not case.name.startswith("tag ")
        fetches = [p for p in rest if "stored_bytes" in p.sql]
        totals = [p for p in rest if "stored_bytes" not in p.sql]
        assert len(fetches) == (1 if found else 0), case.name
        assert len(totals) == (0 if counted_with_page and found else 1), case.name
        for plan in plans:
            for line in (line.strip() for line in plan.lines):
                # (A window's rows are scanned from its subquery, already
                # filtered, and a page after a token from the counted rows; a
                # SELECT of subqueries alone scans one constant row.)
                if line.startswith("SCAN ") and not line.startswith(
                    ("SCAN (subquery-", "SCAN counted")
                ):
                    assert (
                        line in ("SCAN model_counts", "SCAN CONSTANT ROW") or " USING " in line
                    ), (
                        case.name,
                        line,
                    )


def test_get_model_is_one_statement_of_index_searches(tmp_path: Path) -> None:
    database = tmp_path / "plans.db"
    query_plans.make_database(database, 200)
    [plan] = query_plans.get_model_plans(database)
    lines = [line.strip() for line in plan.lines]
    assert lines == [
        "SEARCH models USING INDEX sqlite_autoindex_models_1 (id=?)",
        "SEARCH model_grants USING PRIMARY KEY (model_id=?) LEFT-JOIN",
        "CORRELATED SCALAR SUBQUERY 1",
        "SEARCH group_members USING COVERING INDEX sqlite_autoindex_group_members_1"
        " (group_id=? AND user_id=?)",
    ], lines
