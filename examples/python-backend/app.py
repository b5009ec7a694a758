"""A Python backend in front of the realtime server, standard library only.

It logs users in with its own sessions (a cookie), mints their realtime
tokens (``GET /token``) and publishes on their behalf (``POST /announce``)
through ``clients/python/realtime_sdk.py``; it also serves a page that does
all of that in a browser. One command::

    REALTIME_URL=http://localhost:8080 API_KEY=... JWT_SECRET=... python3 app.py

Users are a demo table below; use your own store. Prints ``listening on
http://HOST:PORT`` once ready (``PORT=0`` picks a free port).
"""

import http.cookies
import json
import os
import secrets
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "clients" / "python"))

from realtime_sdk import RealtimeApi, RealtimeApiError, mint_token  # noqa: E402

REALTIME_URL = os.environ.get("REALTIME_URL", "http://localhost:8080")
JWT_SECRET = os.environ["JWT_SECRET"]
api = RealtimeApi(REALTIME_URL, api_key=os.environ["API_KEY"])

USERS = {"alice": {"password": "alice-pw", "name": "Alice"}, "bob": {"password": "bob-pw", "name": "Bob"}}
SESSIONS = {}  # session id -> user id; bounded by the demo's users in practice
PAGE = (HERE / "index.html").read_bytes()


class Handler(BaseHTTPRequestHandler):
    def _send(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _user(self):
        cookie = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        morsel = cookie.get("session")
        return None if morsel is None else SESSIONS.get(morsel.value)

    def do_GET(self):
        if self.path == "/":
            return self._send(200, PAGE, "text/html; charset=utf-8")
        if self.path == "/config":
            return self._send(200, json.dumps({"realtimeUrl": REALTIME_URL}).encode(), "application/json")
        if self.path == "/token":
            user = self._user()
            if user is None:
                return self._send(401, b"log in first")
            token = mint_token(JWT_SECRET, user, rooms=["chat:*", "user:{sub}"],
                               info={"name": USERS[user]["name"]}, ttl_sec=900)
            return self._send(200, token.encode(), headers={"Cache-Control": "no-store"})
        return self._send(404, b"not found")

    def do_POST(self):
        length = min(int(self.headers.get("Content-Length", "0") or 0), 4096)
        body = self.rfile.read(length)
        if self.path == "/login":
            try:
                form = json.loads(body or b"{}")
            except ValueError:
                return self._send(400, b"bad json")
            user = USERS.get(str(form.get("user")))
            if user is None or not secrets.compare_digest(str(form.get("password")), user["password"]):
                return self._send(401, b"wrong user or password")
            session = secrets.token_urlsafe(24)
            SESSIONS[session] = form["user"]
            return self._send(204, headers={"Set-Cookie": f"session={session}; HttpOnly; SameSite=Lax; Path=/"})
        if self.path == "/announce":
            user = self._user()
            if user is None:
                return self._send(401, b"log in first")
            try:
                api.publish("chat:lobby", {"text": f"{USERS[user]['name']} pressed the button"})
                api.publish(f"user:{user}", {"text": "only you see this"})
            except RealtimeApiError as err:
                return self._send(502, f"{err.code}: {err}".encode())
            return self._send(204)
        return self._send(404, b"not found")

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))), Handler)
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
