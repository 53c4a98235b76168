"""The parameter validator keeps every check Connexion's own makes, cookies included."""

from __future__ import annotations

import pytest
from connexion.uri_parsing import OpenAPIURIParser

from handlers.core.errors import BadRequest
from handlers.http.validation import StrictParameterValidator

SESSION = {"name": "session", "in": "cookie", "required": True,
           "schema": {"type": "string", "minLength": 8}}  # fmt: skip


def validate(cookie: str | None) -> None:
    headers = [] if cookie is None else [(b"cookie", cookie.encode())]
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
             "headers": headers}  # fmt: skip
    parser = OpenAPIURIParser([SESSION], {})
    validator = StrictParameterValidator([SESSION], uri_parser=parser, strict_validation=True)
    validator.validate(scope)


@pytest.mark.parametrize(("cookie", "detail"), [(None, "is required"), ("session=short", "")])
def test_cookie_parameters_are_validated(cookie: str | None, detail: str) -> None:
    with pytest.raises(BadRequest) as refused:
        validate(cookie)
    errors = refused.value.ext["errors"]
    assert [(e["location"], e["name"]) for e in errors] == [("cookie", "session")]
    assert detail in errors[0]["detail"]


def test_a_valid_cookie_passes() -> None:
    validate("session=long-enough")
