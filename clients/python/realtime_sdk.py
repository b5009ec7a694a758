"""Backend SDK of the realtime WebSocket server, standard library only.

The same surface as the TypeScript package ``@realtime/server-sdk``
(``packages/server``): ``RealtimeApi`` publishes (with ``idempotency_key``),
revokes and unrevokes, reads history and presence over the server's HTTP API,
retrying 503 answers after their ``Retry-After``; ``mint_token`` signs HS256,
HS384 or HS512 tokens; ``verify_webhook`` checks ``X-Realtime-Signature``.
Only ``urllib``, ``hmac``, ``hashlib`` and ``json``: copy this one file into
a project, or put ``clients/python`` on ``sys.path``.

Example::

    from realtime_sdk import RealtimeApi, mint_token
    api = RealtimeApi("http://localhost:8080", api_key=os.environ["API_KEY"])
    api.publish("chat:lobby", {"text": "deployed"}, idempotency_key="deploy-42")
    token = mint_token(os.environ["JWT_SECRET"], "alice", rooms=["chat:*"])
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    "RealtimeApi",
    "RealtimeApiError",
    "mint_token",
    "verify_webhook",
    "sign_webhook",
    "SIGNATURE_HEADER",
]

SIGNATURE_HEADER = "X-Realtime-Signature"
"""The header the server's webhook and hook signatures travel in."""

_ROOM = re.compile(r"^[A-Za-z0-9_\-.:@/]{1,128}$")
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class RealtimeApiError(Exception):
    """A call the server refused, or that got no answer.

    ``code`` is the server's error code (``bad_request``, ``unauthorized``,
    ``forbidden``, ``not_found``, ``payload_too_large``, ``unavailable`` ...)
    or the SDK's own ``network`` / ``timeout``; ``status`` is the HTTP status
    (0 without a response); ``retry_after`` the server's ``Retry-After`` in
    seconds, when it sent one.
    """

    def __init__(self, code: str, message: str, status: int, retry_after: Optional[float] = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


def _check_room(operation: str, room: str) -> None:
    if not isinstance(room, str) or not _ROOM.match(room):
        raise ValueError(
            f"Cannot {operation}: room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /, "
            f"current value is {room!r}"
        )


def _retry_after(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RealtimeApi:
    """A typed client of the server's HTTP API, holding the API key.

    :param url: the server's base URL (``ws(s)://`` is mapped to ``http(s)://``)
    :param api_key: the server's ``API_KEY``, or a JWT with its ``ADMIN_ROLE``
    :param max_retries: attempts after the first on 503 (and, for idempotent
        calls, on network failure or timeout)
    :param max_retry_delay: longest wait between attempts, in seconds
    :param timeout: per attempt, in seconds
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        max_retries: int = 3,
        max_retry_delay: float = 10.0,
        timeout: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("Cannot create the API client: api_key is required")
        base = url.rstrip("/")
        if base.startswith("ws://"):
            base = "http://" + base[5:]
        elif base.startswith("wss://"):
            base = "https://" + base[6:]
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"Cannot create the API client: url must be http(s), current value is {url!r}")
        self._base = base
        self._api_key = api_key
        self._max_retries = max_retries
        self._max_retry_delay = max_retry_delay
        self._timeout = timeout

    def _attempt(self, method: str, path: str, body: Any) -> Dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self._base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                text = response.read().decode("utf-8")
                return json.loads(text) if text else {}
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")
            retry = _retry_after(err.headers.get("Retry-After"))
            err.close()
            try:
                error = json.loads(text).get("error", {})
            except (ValueError, AttributeError):
                error = {}
            raise RealtimeApiError(
                error.get("code", f"http_{err.code}"), error.get("message", f"HTTP {err.code}"), err.code, retry
            ) from None
        except (TimeoutError, OSError) as err:
            timed_out = isinstance(err, TimeoutError) or "timed out" in str(err)
            raise RealtimeApiError(
                "timeout" if timed_out else "network", f"Could not reach {self._base}: {err}", 0
            ) from err

    def _call(self, method: str, path: str, body: Any = None, *, idempotent: bool) -> Dict[str, Any]:
        backoff = 0.25
        tries = 0
        while True:
            try:
                return self._attempt(method, path, body)
            except RealtimeApiError as err:
                retryable = err.status == 503 or (err.status == 0 and idempotent)
                if not retryable or tries >= self._max_retries:
                    raise
                wait = (err.retry_after if err.retry_after is not None else 1.0) if err.status == 503 else backoff
                backoff *= 2
                tries += 1
                time.sleep(min(wait, self._max_retry_delay))

    def publish(self, room: str, payload: Any, *, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Publishes ``payload`` to ``room`` (``POST /api/publish``).

        Returns ``{"recipients", "duplicate", "offset"?, "epoch"?}``. With
        ``idempotency_key``, a repeat within the server's ``DEDUP_WINDOW_SEC``
        is not delivered again (``duplicate: True``); only then are network
        failures retried.
        """
        _check_room("publish", room)
        body: Dict[str, Any] = {"room": room, "payload": payload}
        if idempotency_key is not None:
            body["idempotencyKey"] = idempotency_key
        answer = self._call("POST", "/api/publish", body, idempotent=idempotency_key is not None)
        answer.setdefault("duplicate", False)
        return answer

    @staticmethod
    def _target(user_id: Optional[str], jti: Optional[str]) -> Dict[str, str]:
        if (user_id is None) == (jti is None):
            raise ValueError("Cannot revoke: give exactly one of user_id and jti")
        return {"userId": user_id} if user_id is not None else {"jti": jti}  # type: ignore[dict-item]

    def revoke(
        self,
        *,
        user_id: Optional[str] = None,
        jti: Optional[str] = None,
        reason: Optional[str] = None,
        until_sec: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Revokes a user or one token everywhere (``POST /api/revoke``): ``{"closed", "until"}``."""
        body: Dict[str, Any] = self._target(user_id, jti)
        if reason is not None:
            body["reason"] = reason
        if until_sec is not None:
            body["untilSec"] = until_sec
        return self._call("POST", "/api/revoke", body, idempotent=True)

    def unrevoke(self, *, user_id: Optional[str] = None, jti: Optional[str] = None) -> bool:
        """Lifts a revocation (``DELETE /api/revoke``): ``True`` if one was lifted, ``False`` if none was in force."""
        try:
            self._call("DELETE", "/api/revoke", self._target(user_id, jti), idempotent=True)
            return True
        except RealtimeApiError as err:
            if err.status == 404 and str(err).startswith("no revocation"):
                return False
            raise

    def revocations(self, *, limit: Optional[int] = None) -> Dict[str, Any]:
        """The revocations in force, newest first (``GET /api/revoke``): ``{"revocations", "total"}``."""
        query = "" if limit is None else f"?limit={int(limit)}"
        return self._call("GET", f"/api/revoke{query}", idempotent=True)

    def history(self, room: str, *, limit: Optional[int] = None, before: Optional[int] = None) -> Dict[str, Any]:
        """A page of a history room (``GET /api/history``): ``{"messages", "offset", "epoch", "more"}``, oldest first."""
        _check_room("read history", room)
        query: Dict[str, Any] = {"room": room}
        if limit is not None:
            query["limit"] = limit
        if before is not None:
            query["before"] = before
        return self._call("GET", "/api/history?" + urllib.parse.urlencode(query), idempotent=True)

    def presence(self, room: str) -> Dict[str, Any]:
        """Who is in a presence room, on every node (``GET /api/presence``): ``{"room", "members", "count"}``."""
        _check_room("read presence", room)
        return self._call("GET", "/api/presence?" + urllib.parse.urlencode({"room": room}), idempotent=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    secret: str,
    sub: str,
    *,
    rooms: Sequence[str] = (),
    rooms_readonly: Sequence[str] = (),
    roles: Sequence[str] = (),
    info: Optional[Dict[str, Any]] = None,
    jti: Optional[str] = None,
    ttl_sec: int = 3600,
    alg: str = "HS256",
    issuer: Optional[str] = None,
    audience: Optional[str] = None,
    issued_at: Optional[int] = None,
) -> str:
    """Signs a token for a client with the server's ``JWT_SECRET``.

    HMAC only (``HS256``, ``HS384``, ``HS512``): RSA and ECDSA need a crypto
    library the standard library does not have (use ``PyJWT`` with
    ``cryptography`` for those, with the same claims).
    """
    if alg not in _HASHES:
        raise ValueError(f"Cannot mint a token: alg must be one of {sorted(_HASHES)}, current value is {alg!r}")
    if len(secret) < 32:
        raise ValueError(f"Cannot mint a token: the secret needs at least 32 characters, current length is {len(secret)}")
    if not sub:
        raise ValueError("Cannot mint a token: sub must be a non-empty string")
    if ttl_sec <= 0:
        raise ValueError(f"Cannot mint a token: ttl_sec must be positive, current value is {ttl_sec}")
    now = int(time.time()) if issued_at is None else issued_at
    claims: Dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_sec}
    if rooms:
        claims["rooms"] = list(rooms)
    if rooms_readonly:
        claims["rooms_readonly"] = list(rooms_readonly)
    if roles:
        claims["roles"] = list(roles)
    if info is not None:
        claims["info"] = info
    if jti is not None:
        claims["jti"] = jti
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = hmac.new(secret.encode("utf-8"), signing_input, _HASHES[alg]).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def sign_webhook(secret: str, body: str, now: Optional[float] = None) -> str:
    """The ``X-Realtime-Signature`` value the server sends with ``body``: for tests of a receiver."""
    t = int(time.time() if now is None else now)
    mac = hmac.new(secret.encode("utf-8"), f"{t}.{body}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_webhook(
    secret: str,
    body: str,
    header: Optional[str],
    *,
    tolerance_sec: float = 300,
    now: Optional[float] = None,
) -> bool:
    """Whether ``header`` is a valid signature of the raw ``body`` within the tolerance.

    Constant-time comparison; any ``v1`` may match (room for a secret rotation).
    """
    if not header:
        return False
    parts = [p.strip().split("=", 1) for p in header.split(",")]
    t = next((p[1] for p in parts if len(p) == 2 and p[0] == "t"), None)
    if t is None or not re.fullmatch(r"\d{1,12}", t):
        return False
    current = time.time() if now is None else now
    if abs(current - int(t)) > tolerance_sec:
        return False
    expected = hmac.new(secret.encode("utf-8"), f"{t}.{body}".encode("utf-8"), hashlib.sha256).hexdigest()
    ok = False
    for p in parts:
        if len(p) == 2 and p[0] == "v1" and re.fullmatch(r"[0-9a-f]{64}", p[1]):
            ok = hmac.compare_digest(p[1], expected) or ok
    return ok
