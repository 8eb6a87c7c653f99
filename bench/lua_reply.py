"""CPU of Envoy's Lua on one reply: http_face.lua run in-process on LuaJIT
(the Lua Envoy embeds), on a page of ListModels as the transcoder writes it.

    .venv/bin/python bench/lua_reply.py [--models 30] [--calls 300]

Prints the microseconds a reply takes to finish (M.finish_reply: the scan
and the edits Envoy's filter makes to every reply) beside a full parse of
the same text (M.parse, what requests get)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from lupa import luajit21

from modelregistry_server.envoy.lua import lua_source

LIST = "modelregistry.v1.ListModelsResponse"


def transcoded_model(n: int) -> dict[str, object]:
    """A model as the transcoder writes it: int64 as strings, no base model."""
    return {
        "id": f"sommelier-expert-{n:07d}",
        "user_id": "owner-3",
        "name": "Sommelier Expert",
        "params": {"temperature": 0.7, "max_tokens": 2000, "top_p": 1.0},
        "meta": {
            "description": "A sommelier for wine pairing questions.",
            "profile_image_url": "/static/favicon.png",
            "capabilities": {"vision": True, "citations": True},
            "tags": [{"name": "wine"}],
        },
        "access_grants": [{"access_type": "group", "access_id": "team-01", "permission": "read"}],
        "is_active": True,
        "created_at": "1795879029",
        "updated_at": "1795879029",
        "write_access": True,
        "version_id": f"00000000-0000-0000-0000-{n:012d}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    runtime = luajit21.LuaRuntime(unpack_returned_tuples=True)
    module, config = runtime.execute(lua_source().replace("\nreturn M\n", "\nreturn M, CONFIG\n"))
    page = {
        "items": [transcoded_model(n) for n in range(args.models)],
        "total": "1000000",
        "next_page_token": "eyJsaXN0Ijoi" * 8,
    }
    text = json.dumps(page, separators=(",", ":"))
    finished = json.loads(module.finish_reply(config, LIST, text))
    assert finished["total"] == 1_000_000 and finished["items"][0]["base_model_id"] is None

    def per_call(run: Callable[[], object]) -> float:
        for _ in range(20):  # LuaJIT compiles the hot loops first
            run()
        began = time.process_time()
        for _ in range(args.calls):
            run()
        return (time.process_time() - began) / args.calls * 1e6

    finish = per_call(lambda: module.finish_reply(config, LIST, text))
    parse = per_call(lambda: module.parse(text, 1000))
    print(
        f"a page of {args.models} models ({len(text):,} bytes):"
        f" finish_reply {finish:,.0f} µs, parse {parse:,.0f} µs"
    )


if __name__ == "__main__":
    main()
