"""Slack messages through incoming webhooks.

Delivery is at least once: a post whose answer is lost (a timeout, a 5xx after Slack
accepted it) is sent once more, so a channel may rarely see a message twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from revleak.remediation.executors.base import ExecutionError
from revleak.remediation.model import SlackPost

ANY_CHANNEL = "*"
ATTEMPTS = 2
BODY_EXCERPT_CHARS = 200


class SlackWebhooks:
    """Channel (``#revenue-ops``) → incoming-webhook URL; ``*`` serves any other channel.

    The URLs are secrets (the path is the token): they never appear in messages.
    """

    def __init__(
        self,
        webhooks: Mapping[str, str],
        *,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        for channel, url in webhooks.items():
            if urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc:
                raise ValueError(f"the Slack webhook of {channel} is not an http(s) URL")
        self._webhooks = dict(webhooks)
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, post: SlackPost) -> str:
        url = self._webhooks.get(post.channel) or self._webhooks.get(ANY_CHANNEL)
        if url is None:
            raise ExecutionError(f"no Slack webhook is configured for {post.channel}")
        body = {"text": post.text, "channel": post.channel}
        failure = ""
        for _ in range(ATTEMPTS):
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as error:
                failure = f"{type(error).__name__}: {error}"
                continue
            if response.is_success:
                return f"slack {response.status_code}"
            failure = f"HTTP {response.status_code}: {response.text[:BODY_EXCERPT_CHARS]!r}"
            if not response.is_server_error:
                break
        raise ExecutionError(f"Slack did not take the message for {post.channel}: {failure}")

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __str__(self) -> str:
        return "Slack webhooks for " + ", ".join(sorted(self._webhooks))
