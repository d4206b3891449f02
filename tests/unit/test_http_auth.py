"""The bearer-token check every HTTP door uses, and the worker's refusal to open its views unprotected."""

from __future__ import annotations

import pytest

from pipeline.cli.worker_cmd import check_web
from pipeline.http_auth import WeakToken, bearer_ok, is_loopback, require_token
from pipeline.settings import Settings


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "Bearer   s3cret",
                                    " Bearer s3cret "])
def test_the_scheme_is_case_insensitive(header: str) -> None:
    assert bearer_ok(header, "s3cret")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer nope", "Basic s3cret", "s3cret",
                                    "Bearer s3cret extra", "Bearers3cret"])
def test_anything_else_is_refused(header: str | None) -> None:
    assert not bearer_ok(header, "s3cret")


@pytest.mark.parametrize("token", ["", " ", "\t\n", " padded "])
def test_blank_or_padded_tokens_are_refused_at_start(token: str) -> None:
    with pytest.raises(WeakToken):
        require_token(token, "REWARDSTREAM_INGEST_TOKEN")


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("worker-0.svc")


def test_the_worker_does_not_open_its_views_to_other_hosts_without_a_token() -> None:
    assert Settings().web_bind == "127.0.0.1" and check_web(Settings()) is None
    assert "REWARDSTREAM_WEB_TOKEN" in (check_web(Settings(web_bind="0.0.0.0")) or "")
    assert check_web(Settings(web_bind="0.0.0.0", web_token="s3cret")) is None
    assert "blank" in (check_web(Settings(web_bind="0.0.0.0", web_token="  ")) or "")


def test_ingest_serves_loopback_unless_told_otherwise() -> None:
    from pipeline.cli.main import build_parser

    assert build_parser().parse_args(["ingest", "serve"]).host == "127.0.0.1"
