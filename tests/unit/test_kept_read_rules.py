"""What a reader's list reads found, kept by data version
(storage/kept_reads.py): kept on a query's second miss at one version (its
first, if it was kept at the version before), used
only at that version, within a byte budget; and where a page token falls
among kept matches (storage/listing.py)."""

from __future__ import annotations

from typing import NamedTuple

from modelregistry_server.storage.kept_reads import KeptReads
from modelregistry_server.storage.listing import _first_after

V1 = (1, 10)
V2 = (1, 11)
OTHER_CONNECTION = (2, 10)  # the same data_version on another loop connection


def test_a_query_is_worth_keeping_from_its_second_miss_at_one_version() -> None:
    kept: KeptReads[str] = KeptReads()
    assert kept.worth_keeping("q", V1) is False
    assert kept.worth_keeping("q", V1) is True
    assert kept.worth_keeping("q", V1) is True  # not kept yet (stopped): tried again
    assert kept.worth_keeping("q", V2) is False  # a change between: counted anew
    assert kept.worth_keeping("other", V2) is False
    assert kept.worth_keeping("q", V2) is True


def test_a_query_kept_at_one_version_is_worth_keeping_at_its_first_miss_at_the_next() -> None:
    kept: KeptReads[str] = KeptReads()
    kept.put("q", V1, "matches", cost=100)
    assert kept.get("q", V2) is None  # a commit since: dropped
    assert kept.worth_keeping("q", V2) is True  # asked often: kept again at once
    assert kept.worth_keeping("other", V2) is False  # never kept: its second miss
    kept.put("q", V2, "matches", cost=100)
    assert kept.get("q", V2) == "matches"


def test_a_value_offered_is_kept_from_its_second_miss_at_one_version() -> None:
    kept: KeptReads[str] = KeptReads()
    kept.offer("q", V1, "first reading", cost=100)
    assert kept.get("q", V1) is None
    kept.offer("q", V1, "second reading", cost=100)
    assert kept.get("q", V1) == "second reading"
    assert kept.get("q", V2) is None


def test_a_query_refused_at_a_version_is_not_tried_again_there() -> None:
    kept: KeptReads[str] = KeptReads()
    kept.worth_keeping("q", V1)
    assert kept.worth_keeping("q", V1) is True
    kept.refuse("q", V1)  # too many matches
    assert [kept.worth_keeping("q", V1) for _ in range(3)] == [False] * 3
    assert kept.worth_keeping("q", V2) is False
    assert kept.worth_keeping("q", V2) is True


def test_a_value_is_used_only_at_its_own_version() -> None:
    kept: KeptReads[str] = KeptReads()
    kept.put("q", V1, "page", cost=100)
    assert kept.get("q", V1) == "page"
    assert kept.get("q", OTHER_CONNECTION) is None
    assert kept.get("q", V1) is None  # dropped when met at another version
    assert (len(kept), kept.used_bytes) == (0, 0)


def test_the_least_recently_used_go_first_and_the_too_large_are_never_kept() -> None:
    kept: KeptReads[str] = KeptReads(budget_bytes=300)
    kept.put("a", V1, "A", cost=100)
    kept.put("b", V1, "B", cost=100)
    kept.put("c", V1, "C", cost=100)
    assert kept.get("a", V1) == "A"  # now the most recently used
    kept.put("d", V1, "D", cost=100)
    assert [kept.get(key, V1) for key in "abcd"] == ["A", None, "C", "D"]
    assert kept.used_bytes == 300
    kept.put("huge", V1, "H", cost=301)
    assert kept.get("huge", V1) is None
    kept.put("a", V1, "A2", cost=50)  # replacing counts the new cost only
    assert (kept.get("a", V1), kept.used_bytes) == ("A2", 250)


class Match(NamedTuple):  # as a kept row reads
    sort_key: int | str
    id: str
    version_id: str | None


MATCHES = [Match(1, "a", None), Match(2, "a", None), Match(2, "b", None), Match(3, "a", None)]


def test_a_token_falls_after_its_own_position_in_either_direction() -> None:
    assert _first_after(MATCHES, (0, "z"), descending=False) == 0
    assert _first_after(MATCHES, (2, "a"), descending=False) == 2
    assert _first_after(MATCHES, (2, "aa"), descending=False) == 2  # between two matches
    assert _first_after(MATCHES, (3, "a"), descending=False) == 4
    descending = MATCHES[::-1]
    assert _first_after(descending, (2, "b"), descending=True) == 2
    assert _first_after(descending, (9, ""), descending=True) == 0
    assert _first_after(descending, (1, "a"), descending=True) == 4


def test_a_token_of_another_type_than_the_matches_keys_is_left_to_the_database() -> None:
    assert _first_after(MATCHES, ("2", "a"), descending=False) is None
    assert _first_after([], ("2", "a"), descending=False) == 0
