"""Raw HTTP for the requests the openai client refuses to send (malformed JSON, wrong methods)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def request(method: str, url: str, body: bytes | None = None, key: str | None = None,
            timeout: float = 60) -> tuple[int, dict]:
    """-> (status, parsed JSON body); fails the test if the body is not JSON."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
