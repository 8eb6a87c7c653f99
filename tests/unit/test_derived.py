"""What was made from an object is kept while that same object comes back
(domain/derived.py): identity, not equality, by key, within a budget."""

from __future__ import annotations

from modelregistry_server.domain.derived import Derived


class Page:
    """A source: weakly referable, as kept pages are."""


def test_kept_for_the_same_source_object_only() -> None:
    derived: Derived[str] = Derived(10)
    source = Page()
    derived.put("key", source, "reply")
    assert derived.get("key", source) == "reply"
    assert derived.get("key", Page()) is None  # equal, but read afresh
    assert derived.get("other", source) is None


def test_a_new_source_replaces_what_the_key_held() -> None:
    derived: Derived[str] = Derived(10)
    old, new = Page(), Page()
    derived.put("key", old, "old reply")
    derived.put("key", new, "new reply")
    assert derived.get("key", old) is None
    assert derived.get("key", new) == "new reply"
    assert len(derived) == 1


def test_least_recently_used_go_first_past_the_budget() -> None:
    derived: Derived[str] = Derived(10)
    a, b, c = Page(), Page(), Page()
    derived.put("a", a, "A", cost=4)
    derived.put("b", b, "B", cost=4)
    assert derived.get("a", a) == "A"  # now the most recently used
    derived.put("c", c, "C", cost=4)
    assert derived.get("b", b) is None
    assert derived.get("a", a) == "A"
    assert derived.get("c", c) == "C"


def test_replacing_frees_the_old_cost() -> None:
    derived: Derived[str] = Derived(10)
    a, b = Page(), Page()
    derived.put("a", a, "A", cost=6)
    derived.put("a", a, "A again", cost=6)  # 6 in use, not 12
    derived.put("b", b, "B", cost=4)
    assert derived.get("a", a) == "A again"
    assert derived.get("b", b) == "B"


def test_a_value_over_the_whole_budget_is_not_kept() -> None:
    derived: Derived[str] = Derived(10)
    small, source = Page(), Page()
    derived.put("key", small, "small", cost=2)
    derived.put("key", source, "huge", cost=11)
    assert derived.get("key", source) is None
    assert len(derived) == 0


def test_what_was_made_goes_with_its_source() -> None:
    derived: Derived[str] = Derived(10)
    kept, dropped = Page(), Page()
    derived.put("kept", kept, "K", cost=4)
    derived.put("dropped", dropped, "D", cost=4)
    del dropped
    assert len(derived) == 1
    assert derived.get("kept", kept) == "K"
    derived.put("new", Page(), "N", cost=6)  # its source gone at once: room for it anyway
    assert derived.get("kept", kept) == "K"
    assert len(derived) == 1


def test_a_replaced_source_going_leaves_the_new_value() -> None:
    derived: Derived[str] = Derived(10)
    old, new = Page(), Page()
    derived.put("key", old, "old")
    derived.put("key", new, "new")
    del old
    assert derived.get("key", new) == "new"
