"""Pure logic of the registry client's auth: challenge parsing, scope merging, secret masking."""

from __future__ import annotations

from berth.images.registry import Credentials, _merge_scopes, _parse_challenge, _safe


def test_parse_bearer_challenge() -> None:
    scheme, params = _parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push repository:c:pull",
        "error": "insufficient_scope",
    }
    assert _parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert _parse_challenge("") == ("", {})


def test_merge_scopes_unions_actions_per_resource() -> None:
    assert _merge_scopes(["repository:a:pull", "repository:a:pull,push"]) == ["repository:a:pull,push"]
    assert _merge_scopes(["repository:a:pull,push", "repository:b:pull", "repository:a:pull"]) == [
        "repository:a:pull,push",
        "repository:b:pull",
    ]
    assert _merge_scopes(["registry:catalog:*"]) == ["registry:catalog:*"]
    assert _merge_scopes(["nonsense", ""]) == []


def test_secrets_stay_out_of_reprs_and_urls() -> None:
    creds = Credentials("me", "hunter2")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)
    assert _safe("https://me:hunter2@r.example:5000/v2/x/blobs/uploads/1?_state=TOKEN&digest=d") == (
        "https://r.example:5000/v2/x/blobs/uploads/1"
    )
