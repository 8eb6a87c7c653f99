"""The request and response examples of the Create Model API."""

SPEC_REQUEST = {
    "id": "my-custom-gpt4",
    "name": "My Custom GPT-4",
    "base_model_id": "gpt-4",
    "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
    "meta": {
        "description": "Custom GPT-4 model for code generation",
        "capabilities": {"vision": True, "function_calling": True},
    },
    "access_grants": [{"access_type": "group", "access_id": "developers", "permission": "read"}],
    "is_active": True,
}

SPEC_RESPONSE = {
    "id": "my-custom-gpt4",
    "user_id": "user123",
    "base_model_id": "gpt-4",
    "name": "My Custom GPT-4",
    "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
    "meta": {
        "profile_image_url": "/static/favicon.png",
        "description": "Custom GPT-4 model for code generation",
        "capabilities": {"vision": True, "function_calling": True},
    },
    "access_grants": [{"access_type": "group", "access_id": "developers", "permission": "read"}],
    "is_active": True,
    "created_at": 1704067200,
    "updated_at": 1704067200,
}


def minimal(model_id: str, **fields):
    """The smallest valid model, with `fields` added or replaced."""
    return {"id": model_id, "name": "A model", "params": {}, "meta": {}, **fields}
