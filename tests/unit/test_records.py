"""domain/records.py: the records and files an import reads, in the
registry's own format and in Open WebUI's."""

from __future__ import annotations

from typing import Any

import pytest

from modelregistry_server.domain.errors import FieldViolation
from modelregistry_server.domain.models import GrantDraft, ModelDraft
from modelregistry_server.domain.records import (
    FileRefused,
    ImportRecord,
    RecordRefused,
    file_records,
    read_record,
    record_id,
)

OURS = {
    "id": "m",
    "user_id": "someone",
    "base_model_id": None,
    "name": "M",
    "params": {"max_tokens": 10},
    "meta": {"profile_image_url": "/static/favicon.png"},
    "access_grants": [{"access_type": "group", "access_id": "devs", "permission": "read"}],
    "is_active": False,
    "created_at": 100,
    "updated_at": 200,
    "version_id": "v",
}


def read(record: Any) -> ImportRecord:
    return read_record(record, 1)


def test_a_record_of_our_export_is_its_create_with_its_timestamps():
    assert read(OURS) == ImportRecord(
        draft=ModelDraft(
            id="m",
            name="M",
            base_model_id=None,
            params={"max_tokens": 10},
            meta={"profile_image_url": "/static/favicon.png"},
            access_grants=[GrantDraft("group", "devs", "read")],
            is_active=False,
            commit_message="Imported",
        ),
        created_at=100,
        updated_at=200,
    )


def test_a_record_may_give_its_commit_message_and_leave_out_what_has_a_default():
    record = {"id": "m", "name": "M", "params": {}, "meta": {}, "commit_message": "moved"}
    got = read(record)
    assert got.draft.commit_message == "moved"
    assert (got.draft.access_grants, got.draft.is_active) == ([], None)
    assert (got.created_at, got.updated_at, got.violations) == (None, None, ())


def test_open_webui_grants_keep_their_spelling_and_anyone_is_every_user():
    record = {
        **OURS,
        "access_grants": [
            {
                "id": "g1",
                "resource_type": "model",
                "resource_id": "m",
                "principal_type": "group",
                "principal_id": "devs",
                "permission": "write",
                "created_at": 5,
            },
            {"principal_type": "anyone", "principal_id": "*", "permission": "read"},
            {"principal_type": "anyone", "principal_id": "x", "permission": "read"},
        ],
    }
    assert read(record).draft.access_grants == [
        GrantDraft("", "", "write", "group", "devs"),
        GrantDraft("", "", "read", "user", "*"),
        GrantDraft("", "", "read", "anyone", "x"),  # create refuses it
    ]


def test_keys_that_are_no_field_go_into_meta_unless_null():
    record = {**OURS, "background_image_data": "data:image/png;base64,AA", "voice": None}
    assert read(record).draft.meta == {
        "profile_image_url": "/static/favicon.png",
        "background_image_data": "data:image/png;base64,AA",
    }


def test_a_key_both_in_the_record_and_in_meta_is_refused():
    record = {**OURS, "meta": {"tags": []}, "tags": ["x"]}
    with pytest.raises(RecordRefused) as refused:
        read(record)
    assert (
        refused.value.reason == "tags is both a key of the record and of its meta: keep one of them"
    )


def test_an_empty_profile_image_is_open_webuis_default():
    record = {**OURS, "meta": {"profile_image_url": "", "description": ""}}
    assert read(record).draft.meta == {"profile_image_url": None, "description": ""}


def test_an_info_record_is_read_from_its_info():
    record = {"id": "listed", "object": "model", "owned_by": "openai", "info": OURS}
    assert read(record) == read(OURS)
    assert record_id(record) == "m"


@pytest.mark.parametrize(
    ("access_control", "grants"),
    [
        (None, [GrantDraft("user", "*", "read")]),
        ({}, []),
        (
            {"read": {"group_ids": ["g"], "user_ids": ["u"]}, "write": {"user_ids": ["w"]}},
            [
                GrantDraft("group", "g", "read"),
                GrantDraft("user", "u", "read"),
                GrantDraft("user", "w", "write"),
            ],
        ),
    ],
)
def test_open_webuis_older_access_control_becomes_grants(access_control: Any, grants: list):
    record = {k: v for k, v in OURS.items() if k != "access_grants"}
    assert read({**record, "access_control": access_control}).draft.access_grants == grants
    # access_grants, when given, are the grants.
    assert read({**OURS, "access_control": None}).draft.access_grants == [
        GrantDraft("group", "devs", "read")
    ]


@pytest.mark.parametrize(
    ("access_control", "reason"),
    [
        ("public", "access_control must be an object or null"),
        ({"read": []}, "access_control.read must be an object"),
        ({"write": {"user_ids": "u"}}, "access_control.write.user_ids must be an array of strings"),
        ({"read": {"group_ids": [1]}}, "access_control.read.group_ids must be an array of strings"),
    ],
)
def test_a_bad_access_control_is_refused(access_control: Any, reason: str):
    record = {k: v for k, v in OURS.items() if k != "access_grants"}
    with pytest.raises(RecordRefused) as refused:
        read({**record, "access_control": access_control})
    assert refused.value.reason == reason


@pytest.mark.parametrize("record", [None, 5, "m", ["m"], {"info": "m"}])
def test_a_record_that_is_no_object_is_refused(record: Any):
    with pytest.raises(RecordRefused) as refused:
        read(record)
    assert refused.value.reason == "the record is not a JSON object"
    assert record_id(record) == ""


def test_every_field_of_the_wrong_type_is_reported_and_left_out():
    record = {
        "id": 5,
        "name": ["M"],
        "base_model_id": 1,
        "params": "{}",
        "meta": [],
        "access_grants": [{"access_type": "user", "access_id": 7, "permission": "read"}, "x"],
        "is_active": "yes",
        "created_at": -1,
        "updated_at": 1.5,
        "commit_message": 3,
    }
    got = read(record)
    assert [(v.field, v.description) for v in got.violations] == [
        ("id", "id must be a string"),
        ("name", "name must be a string"),
        ("meta", "meta must be an object"),
        ("commit_message", "commit_message must be a string"),
        ("base_model_id", "base_model_id must be a string"),
        ("params", "params must be an object"),
        ("access_grants[0].access_id", "access_grants[0].access_id must be a string"),
        ("access_grants[1]", "access_grants[1] must be an object"),
        ("is_active", "is_active must be true or false"),
        ("created_at", "created_at must be a whole number of seconds since 1970"),
        ("updated_at", "updated_at must be a whole number of seconds since 1970"),
    ]
    assert got.draft == ModelDraft("", "", None, None, None, [], None, "Imported")
    assert record_id(record) == ""


def test_timestamps_are_whole_seconds_a_json_number_holds():
    assert read({**OURS, "created_at": 2**53, "updated_at": 7.0}).created_at == 2**53
    assert read({**OURS, "updated_at": 7.0}).updated_at == 7
    assert read({**OURS, "created_at": 2**53 + 1}).violations == (
        FieldViolation("created_at", "created_at must be a whole number of seconds since 1970"),
    )
    assert read({**OURS, "created_at": True}).violations[0].field == "created_at"


# -- files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "version"),
    [
        ([OURS], 0),  # the HTTP export, Open WebUI's
        ({"models": [OURS]}, 0),  # an import's body
        ({"models": [OURS], "format_version": 1}, 1),
        ({"format": "model-registry.models", "format_version": 1, "models": [OURS]}, 1),
    ],
)
def test_a_file_is_an_array_or_an_object_with_models(document: Any, version: int):
    assert file_records(document) == (version, [OURS])


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (
            {"items": []},
            'the file must hold a JSON array of models, or an object with a "models" array',
        ),
        ("models", 'the file must hold a JSON array of models, or an object with a "models" array'),
        (
            {"models": {}},
            'the file must hold a JSON array of models, or an object with a "models" array',
        ),
        (
            {"format": "chats", "models": []},
            "the file is not a model-registry.models export (its format is 'chats')",
        ),
        ({"models": [], "format_version": "1"}, "format_version must be a whole number"),
        (
            {"format": "model-registry.models", "format_version": 2, "models": []},
            "the file is format version 2, newer than this registry reads (1 to 1):"
            " import it with a newer model-registry",
        ),
    ],
)
def test_a_file_that_is_no_export_is_refused(document: Any, reason: str):
    with pytest.raises(FileRefused) as refused:
        file_records(document)
    assert str(refused.value) == reason
