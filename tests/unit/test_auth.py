"""Registry auth: WWW-Authenticate parsing, CRI AuthConfig, token requests; no secret leaks."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, urlsplit

import pytest

from dockyard.cri.errors import CriError, InvalidArgument, PullError
from dockyard.cri.image.registry.auth import (
    Challenge,
    Credentials,
    StaticCredentials,
    basic_authorization,
    credentials_from_auth_config,
    parse_token_response,
    parse_www_authenticate,
    pull_scope,
    select_credentials,
    token_request,
)

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ('Basic realm="Registry Realm"', [Challenge("basic", (("realm", "Registry Realm"),))]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
            [Challenge("bearer", (("realm", "https://auth.docker.io/token"), ("service", "registry.docker.io"),
                                  ("scope", "repository:library/busybox:pull")))],
        ),
        ('bearer Realm = "r" , Service=svc', [Challenge("bearer", (("realm", "r"), ("service", "svc")))]),
        ('Bearer realm="a\\"b,c"', [Challenge("bearer", (("realm", 'a"b,c'),))]),
        ('Bearer realm="x",scope="repository:a:pull,push"', [Challenge("bearer", (("realm", "x"), ("scope", "repository:a:pull,push")))]),
        ('Basic realm="a", Bearer realm="b",service="s"',
         [Challenge("basic", (("realm", "a"),)), Challenge("bearer", (("realm", "b"), ("service", "s")))]),
        ("Negotiate abc==, Basic realm=r", [Challenge("negotiate", (("", "abc=="),)), Challenge("basic", (("realm", "r"),))]),
        ("Basic", [Challenge("basic")]),
        ('Bearer realm=""', [Challenge("bearer", (("realm", ""),))]),
        ("", []),
        ('Bearer realm="unterminated', [Challenge("bearer", (("realm", "unterminated"),))]),
    ],
)
def test_parse_www_authenticate(header: str, want: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == want


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({}, None),
        ({"server_address": "x.io"}, None),
        ({"username": "u", "password": "p"}, Credentials("u", "p")),
        ({"auth": base64.b64encode(b"u:p:with:colons").decode()}, Credentials("u", "p:with:colons")),
        ({"auth": base64.b64encode(b"u2:p2").decode(), "username": "u", "password": "p"}, Credentials("u2", "p2")),
        ({"identity_token": "idt"}, Credentials(identity_token="idt")),
        ({"registry_token": "rt", "server_address": "https://x.io:5000/v2/"}, Credentials(registry_token="rt", server_address="x.io:5000")),
        ({"username": "u", "password": "p", "server_address": "127.0.0.1:5443"}, Credentials("u", "p", server_address="127.0.0.1:5443")),
    ],
)
def test_from_auth_config(fields: dict[str, str], want: Credentials | None) -> None:
    assert credentials_from_auth_config(**fields) == want


@pytest.mark.parametrize("auth", ["%%%not-base64", base64.b64encode(SECRET.encode()).decode(), "\u00fa" + SECRET])
def test_bad_auth_field_does_not_leak(auth: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        credentials_from_auth_config(auth=auth, server_address="x.io")
    assert "x.io" in str(info.value)
    assert auth not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("field", ["identity_token", "registry_token"])
@pytest.mark.parametrize("token", ["abc\ndef", "t\u00f6ken", "\0"])
def test_tokens_must_be_printable_ascii(field: str, token: str) -> None:
    """A token goes into an HTTP header or form: a newline would forge a header, non-ASCII cannot be sent."""
    with pytest.raises(InvalidArgument) as info:
        credentials_from_auth_config(server_address="x.io", **{field: token})
    assert str(info.value) == f"AuthConfig.{field} for x.io is not printable ASCII"


def test_server_address_that_is_no_url() -> None:
    with pytest.raises(InvalidArgument) as info:
        credentials_from_auth_config(password="p", server_address="[")
    assert str(info.value) == "AuthConfig.server_address '[' is not a host or URL"


def test_credentials_repr_masks_secrets() -> None:
    creds = Credentials("user", SECRET, SECRET + "i", SECRET + "r", "x.io")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert SECRET not in text
        assert "user" in text


def test_select_credentials() -> None:
    configured = Credentials("cfg", "p")
    source = StaticCredentials({"a.io": configured})
    mine = Credentials("req", "p")
    assert select_credentials(mine, source, "a.io") is mine
    assert select_credentials(None, source, "a.io") is configured
    assert select_credentials(None, source, "b.io") is None
    other = Credentials("req", "p", server_address="b.io")
    assert select_credentials(other, source, "a.io") is configured  # names another server
    assert select_credentials(other, source, "b.io") is other
    assert select_credentials(None, None, "a.io") is None


BEARER = Challenge("bearer", (("realm", "https://auth.example/token?x=1"), ("service", "reg")))


def test_token_request_anonymous() -> None:
    req = token_request(BEARER, pull_scope("library/busybox"), None, "ref")
    assert req.method == "GET" and req.authorization is None
    parts = urlsplit(req.url)
    assert parts.netloc == "auth.example"
    assert parse_qsl(parts.query) == [("x", "1"), ("service", "reg"), ("scope", "repository:library/busybox:pull")]
    assert req.safe_url == "https://auth.example/token"


def test_token_request_basic_and_challenge_scope() -> None:
    challenge = Challenge("bearer", BEARER.params + (("scope", "repository:other:pull"),))
    req = token_request(challenge, pull_scope("a/b"), Credentials("u", SECRET), "ref")
    assert req.authorization == basic_authorization(Credentials("u", SECRET))
    assert base64.b64decode(req.authorization.split()[1]) == f"u:{SECRET}".encode()
    scopes = [v for k, v in parse_qsl(urlsplit(req.url).query) if k == "scope"]
    assert scopes == ["repository:other:pull", "repository:a/b:pull"]
    assert SECRET not in repr(req)


def test_token_request_identity_token_posts_refresh_grant() -> None:
    req = token_request(BEARER, pull_scope("a"), Credentials(identity_token=SECRET), "ref")
    assert req.method == "POST" and req.form is not None
    form = dict(req.form)
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == SECRET
    assert form["service"] == "reg" and form["scope"] == "repository:a:pull"
    assert SECRET not in repr(req)


@pytest.mark.parametrize(
    ("realm", "why"),
    [
        (None, "without a realm"),
        ("ftp://x/token", "not an http(s) URL"),
        ("http://auth.example/token", "plain HTTP to a non-loopback host"),
    ],
)
def test_token_request_refused(realm: str | None, why: str) -> None:
    challenge = Challenge("bearer", (("realm", realm),) if realm else ())
    with pytest.raises(PullError) as info:
        token_request(challenge, pull_scope("a"), Credentials("u", SECRET), "x.io/a:latest")
    assert why in str(info.value) and "x.io/a:latest" in str(info.value)
    assert info.value.reason == "unauthorized" and info.value.code == "Unauthenticated"
    assert SECRET not in str(info.value)


def test_token_request_loopback_http_realm_allowed() -> None:
    challenge = Challenge("bearer", (("realm", "http://127.0.0.1:4000/token"),))
    assert token_request(challenge, pull_scope("a"), None, "r").url.startswith("http://127.0.0.1:4000/token?")


@pytest.mark.parametrize(
    ("body", "token", "expires"),
    [
        (b'{"token": "t", "expires_in": 300}', "t", 300.0),
        (b'{"access_token": "a"}', "a", 60.0),
        (b'{"token": "t", "access_token": "a", "expires_in": -1}', "t", 60.0),
    ],
)
def test_parse_token_response(body: bytes, token: str, expires: float) -> None:
    parsed = parse_token_response(body, "https://auth")
    assert (parsed.value, parsed.expires_in) == (token, expires)


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"token": ""}'])
def test_parse_token_response_bad(body: bytes) -> None:
    with pytest.raises(CriError):
        parse_token_response(body, "https://auth")
