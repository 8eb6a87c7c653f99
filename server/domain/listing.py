"""ListModels' request rules: which page of which query, and the opaque page
token that carries a keyset position from one page to the next."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .access import Access, as_seen_by, grant_principals
from .errors import FieldViolation, InvalidArgument
from .models import Model
from .tokens import fingerprint, make_token, read_token

DEFAULT_PAGE_SIZE = 30  # also Open WebUI's page
MAX_PAGE_SIZE = 1000
MAX_PAGE = 100_000  # page * 30 rows skipped: deeper pages are for page tokens
MAX_QUERY_LENGTH = 256
ORDERS = ("name", "created_at", "updated_at")
VIEWS = ("", "created", "shared")
DIRECTIONS = ("asc", "desc")

SortValue = str | int


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which models a caller may read, as storage filters them: every model,
    or the caller's own and those with a grant to one of `grantees`
    ((access_type, access_id) pairs, from access.grant_principals)."""

    everything: bool
    user_id: str
    grantees: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Reader:
    """Who lists. Storage reads their groups, when `needs_groups`, in the
    page's own transaction, and filters by the Visibility made from them."""

    user_id: str
    everything: bool  # an admin
    needs_groups: bool

    def visibility(self, groups: frozenset[str]) -> Visibility:
        grantees = tuple(grant_principals(self.user_id, groups))
        return Visibility(everything=self.everything, user_id=self.user_id, grantees=grantees)


# weakref_slot: what is made from a page is kept while it lives (derived.py).
@dataclass(frozen=True, slots=True, weakref_slot=True)
class ModelPage:
    models: list[Model]
    total: int
    last: tuple[SortValue, str] | None  # where the next page starts; None on the last page


@dataclass(frozen=True, slots=True)
class Listed:
    """A model of a page as stored, and whether its caller may change it.
    What the caller sees follows from these two alone (access.as_seen_by),
    so ListModels keeps its replies by version and write access and makes
    the view only for a model it does not hold (transport/list_replies.py)."""

    stored: Model
    write: bool

    def seen(self) -> Model:
        return as_seen_by(self.stored, Access(read=True, write=self.write))


@dataclass(frozen=True, slots=True, weakref_slot=True)
class ListedPage:
    """A page as its caller may see it: ModelPage with each model's access."""

    items: list[Listed]
    total: int
    last: tuple[SortValue, str] | None


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of one query, checked."""

    order_by: str
    descending: bool
    words: tuple[str, ...]  # every one must start a word of id, name or base_model_id
    view: str  # "", "created" or "shared"
    is_active: bool | None
    owner_id: str | None
    page_size: int
    after: tuple[SortValue, str] | None  # (sort value, id) of the previous page's last model
    offset: int  # models skipped (Open WebUI's page=N); 0 with page tokens
    tag: str | None = None  # only models with this tag (its key: tag_key)

    def fingerprint(self) -> str:
        """What a page token is bound to: the query, not the page."""
        shape = [self.order_by, self.descending, self.words, self.view, self.is_active]
        shape.append(self.owner_id)
        if self.tag is not None:  # (tokens made before tags stay valid)
            shape.append(self.tag)
        return fingerprint("list", shape)


def list_query(
    *,
    page_size: int,
    page_token: str,
    query: str,
    view_option: str,
    order_by: str,
    direction: str,
    is_active: bool | None,
    owner_id: str,
    page: int,
    tag: str = "",
) -> ListQuery:
    """The checked query; InvalidArgument naming every bad field."""
    violations: list[FieldViolation] = []
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        violations.append(
            FieldViolation("page_size", f"page_size must be between 0 and {MAX_PAGE_SIZE}")
        )
    if view_option not in VIEWS:
        violations.append(
            FieldViolation("view_option", "view_option must be 'created', 'shared' or empty")
        )
    order = order_by or "created_at"
    if order not in ORDERS:
        violations.append(
            FieldViolation("order_by", "order_by must be 'name', 'created_at' or 'updated_at'")
        )
    if direction and direction not in DIRECTIONS:
        violations.append(FieldViolation("direction", "direction must be 'asc' or 'desc'"))
    if len(query) > MAX_QUERY_LENGTH:
        violations.append(
            FieldViolation("query", f"query is too long (max {MAX_QUERY_LENGTH} characters)")
        )
    elif "\x00" in query:
        violations.append(FieldViolation("query", "query must not contain NUL characters"))
    if len(tag) > MAX_TAG_LENGTH:
        violations.append(
            FieldViolation("tag", f"tag is too long (max {MAX_TAG_LENGTH} characters)")
        )
    elif "\x00" in tag:
        violations.append(FieldViolation("tag", "tag must not contain NUL characters"))
    if not 0 <= page <= MAX_PAGE:
        violations.append(FieldViolation("page", f"page must be between 1 and {MAX_PAGE}"))
    if page and page_token:
        violations.append(FieldViolation("page", "send page or page_token, not both"))
    if violations:
        raise InvalidArgument(violations)

    descending = direction == "desc" if direction else order != "name"
    checked = ListQuery(
        order_by=order,
        descending=descending,
        words=search_words(query),
        view=view_option,
        is_active=is_active,
        owner_id=owner_id or None,
        page_size=page_size or DEFAULT_PAGE_SIZE,
        after=None,
        offset=max(page - 1, 0) * (page_size or DEFAULT_PAGE_SIZE),
        tag=tag_key(tag) or None,
    )
    if page_token:
        after = _read_token(page_token, checked.fingerprint())
        checked = replace(checked, after=after)
    return checked


MAX_TAG_LENGTH = 256


def tags_of(meta: object) -> list[str]:
    """A model's tags, from meta.tags as Open WebUI writes them ({"name": ...}
    or a plain string each), stripped, each once by tag_key, first spelling
    kept; anything else there is not a tag."""
    tags = meta.get("tags") if isinstance(meta, dict) else None
    found: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else ():
        name = tag.get("name") if isinstance(tag, dict) else tag
        if isinstance(name, str) and name.strip():
            name = name.strip()[:MAX_TAG_LENGTH]
            found.setdefault(tag_key(name), name)
    return list(found.values())


def tag_key(name: str) -> str:
    """What tags are matched by: case does not matter."""
    return name.strip().casefold()[:MAX_TAG_LENGTH]


MAX_QUERY_WORDS = 16
MAX_WORD_LENGTH = 256


def words_of(*texts: str | None) -> list[str]:
    """The distinct words of `texts`, lower-cased: runs of letters and digits.
    The search index holds the words of a model's id, name and base_model_id;
    a query's words are split the same way."""
    words: dict[str, None] = {}
    for text in texts:
        current: list[str] = []
        for char in (text or "").lower() + " ":
            if char.isalnum():
                current.append(char)
            elif current:
                words["".join(current)[:MAX_WORD_LENGTH]] = None
                current = []
    return list(words)


def search_words(query: str) -> tuple[str, ...]:
    return tuple(words_of(query)[:MAX_QUERY_WORDS])


def next_page_token(query: ListQuery, last: tuple[SortValue, str]) -> str:
    return make_token(query.fingerprint(), last[0], last[1])


def _read_token(token: str, fingerprint: str) -> tuple[SortValue, str]:
    value, model_id = read_token(token, fingerprint, (str, int), (str,), of="this query")
    return value, model_id
