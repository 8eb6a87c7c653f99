"""ListModels' replies (and GetModel's and GetModelJson's), written from
kept encodings. Each listed model is kept encoded, by what fixes it: its
version (versions are immutable, see storage/model_cache.py) and whether the
caller may write it (all that domain/access.py's as_seen_by varies with). A
page is mostly models already sent at the same versions; building and
copying their messages again was most of a page's cost.

Over gRPC a model is kept as an `items` entry of ListModelsResponse:
protobuf's encoding of a message is the concatenation of its fields', so a
reply is the kept entries joined, then the encoded total and token. Over
HTTP (ListModelsJson) it is kept as its JSON text (http_json.py), and the
page is those joined into the JSON object Envoy passes through."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from google.api import httpbody_pb2

from modelregistry.v1 import model_service_pb2 as pb

from ..domain.listing import Listed, ListedPage, ListQuery, next_page_token
from ..domain.models import Model
from .convert import model_to_proto
from .http_json import model_json, quote

DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024
_OVERHEAD_BYTES = 100  # the bytes object and its key beside the encoding


def item_entry(model: Model) -> bytes:
    """A model as its caller may see it (Listed.seen), encoded as one entry of
    ListModelsResponse.items (field tag, length, message)."""
    return pb.ListModelsResponse(items=[model_to_proto(model)]).SerializeToString()


def model_message(entry: bytes) -> bytes:
    """The Model message inside an `items` entry (item_entry): GetModel's
    reply, from the same kept entries as the list's."""
    # One byte of tag (field 1, length-delimited), then the length as a varint.
    position = 1
    while entry[position] & 0x80:
        position += 1
    return entry[position + 1 :]


def encoded_page(query: ListQuery, page: ListedPage, entry_of: Callable[[Listed], bytes]) -> bytes:
    """The page's ListModelsResponse, encoded; `entry_of` gives each model's
    entry (ModelEntries.of keeps them)."""
    rest = pb.ListModelsResponse(
        total=page.total,
        next_page_token="" if page.last is None else next_page_token(query, page.last),
    )
    return b"".join([*(entry_of(listed) for listed in page.items), rest.SerializeToString()])


def item_json(model: Model) -> bytes:
    """A model as its caller may see it, as JSON (UTF-8): a list's item, and
    GetModelJson's whole reply."""
    return model_json(model).encode()


def http_body(json: bytes) -> bytes:
    """JSON in an encoded google.api.HttpBody, as the transcoder passes it on."""
    reply: bytes = httpbody_pb2.HttpBody(
        content_type="application/json", data=json
    ).SerializeToString()
    return reply


def json_page(query: ListQuery, page: ListedPage, entry_of: Callable[[Listed], bytes]) -> bytes:
    """The page as the HTTP face's JSON, in an encoded google.api.HttpBody;
    `entry_of` gives each model's JSON (ModelEntries(item_json).of)."""
    token = "" if page.last is None else next_page_token(query, page.last)
    body = b"".join(
        [
            b'{"items":[',
            b",".join([entry_of(listed) for listed in page.items]),
            f'],"total":{page.total},"next_page_token":{quote(token)}}}'.encode(),
        ]
    )
    return http_body(body)


class ModelEntries:
    """The most recently used entries, as `encode` writes a model as its
    caller may see it, by version and write access, within a byte budget.
    Used from the server's event loop only, so without a lock."""

    def __init__(
        self,
        encode: Callable[[Model], bytes] = item_entry,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self._encode = encode
        self._budget = budget_bytes
        self._used = 0
        self._kept: OrderedDict[tuple[str, bool], bytes] = OrderedDict()

    def of(self, listed: Listed) -> bytes:
        """The entry of a listed model, as its caller may see it."""
        return self._kept_or(listed.stored.version_id, listed.write, listed.seen)

    def of_seen(self, model: Model) -> bytes:
        """The entry of a model as as_seen_by made it (write_access set)."""
        return self._kept_or(model.version_id, bool(model.write_access), lambda: model)

    def _kept_or(self, version_id: str, write: bool, seen: Callable[[], Model]) -> bytes:
        if not version_id:
            return self._encode(seen())  # written before versions
        key = (version_id, write)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept
        entry = self._encode(seen())
        cost = len(entry) + _OVERHEAD_BYTES
        if cost <= self._budget:
            self._kept[key] = entry
            self._used += cost
            while self._used > self._budget:
                _, freed = self._kept.popitem(last=False)
                self._used -= len(freed) + _OVERHEAD_BYTES
        return entry

    @property
    def used_bytes(self) -> int:
        return self._used

    def __len__(self) -> int:
        return len(self._kept)
