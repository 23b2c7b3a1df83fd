"""Webhook URLs are secrets: only a masked form may appear in str, repr, f-strings and errors."""

from __future__ import annotations

import pytest
from newsmon.notifier.slack import SlackPermanentError, SlackRetriableError, WebhookUrl

SECRET = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefSECRETtoken123"


def test_masked_everywhere_but_reveal() -> None:
    webhook = WebhookUrl(SECRET)

    assert webhook.reveal() == SECRET
    assert str(webhook) == "https://hooks.slack.com/services/T…/***"
    assert repr(webhook) == "WebhookUrl('https://hooks.slack.com/services/T…/***')"
    assert f"{webhook}" == str(webhook)
    assert "SECRET" not in f"{webhook!r} {[webhook]} { ({'w': webhook}) }"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://127.0.0.1:8080/services/T0/B0/x", "http://127.0.0.1:8080/services/T…/***"),
        ("https://user:pw@proxy.example/hook/abc", "https://proxy.example/***"),
        ("https://proxy.example/tokenonly", "https://proxy.example/***"),
        ("https://[::1]:9/services/T/B/x", "https://[::1]:9/services/T…/***"),
        ("https://hooks.slack.com", "https://hooks.slack.com/***"),
    ],
)
def test_mask_shapes(url: str, masked: str) -> None:
    assert str(WebhookUrl(url)) == masked


def test_equality_and_hash_use_the_real_url() -> None:
    assert WebhookUrl(SECRET) == WebhookUrl(SECRET)
    assert len({WebhookUrl(SECRET), WebhookUrl(SECRET + "x")}) == 2
    assert WebhookUrl(SECRET) != SECRET


@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T/B/abcSECRET", "ftp://h/abcSECRET", "http://h:x/abcSECRET"]
)
def test_invalid_urls_are_rejected_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError, match="webhook URL") as caught:
        WebhookUrl(url)
    assert "SECRET" not in str(caught.value)


def test_errors_carry_only_the_masked_url() -> None:
    webhook = WebhookUrl(SECRET)
    errors = [
        SlackPermanentError(webhook, 404, "no_service", 1),
        SlackRetriableError(webhook, 6, "HTTP 500 rollup_error"),
    ]
    for error in errors:
        assert "SECRET" not in str(error)
        assert "SECRET" not in repr(error)
        assert str(webhook) in str(error)
    assert errors[0].retriable is False
    assert errors[1].retriable is True
