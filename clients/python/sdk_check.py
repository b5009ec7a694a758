"""Exercises every call of realtime_sdk against a live server; run by tests/python_sdk_test.ts.

Reads RT_URL, RT_API_KEY, RT_SECRET, RT_STUB_URL (a server answering 503 twice,
then 202), RT_WEBHOOK_SECRET, RT_WEBHOOK_BODY and RT_WEBHOOK_HEADER (signed by
the server's own code) from the environment, checks what it can itself, and
prints one JSON report for the test to check the rest (what the browser-side
client saw).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from realtime_sdk import RealtimeApi, RealtimeApiError, mint_token, sign_webhook, verify_webhook  # noqa: E402

env = os.environ
api = RealtimeApi(env["RT_URL"], env["RT_API_KEY"])
report = {}

first = api.publish("chat:py", {"text": "from python"}, idempotency_key="py-1")
again = api.publish("chat:py", {"text": "from python"}, idempotency_key="py-1")
assert first["duplicate"] is False and again["duplicate"] is True, (first, again)
assert again["offset"] == first["offset"]
report["publish"] = first

page = api.history("chat:py", limit=10)
report["history"] = [m["payload"] for m in page["messages"]]
report["presence"] = sorted(m["userId"] for m in api.presence("chat:py")["members"])

revoked = api.revoke(user_id="victim", reason="python test")
assert revoked["until"] > time.time()
listed = api.revocations()
assert listed["total"] == 1 and listed["revocations"][0]["userId"] == "victim"
report["unrevoke"] = [api.unrevoke(user_id="victim"), api.unrevoke(user_id="victim")]

report["token"] = mint_token(env["RT_SECRET"], "py-user", rooms=["chat:*"], info={"lang": "python"}, ttl_sec=600)

try:
    RealtimeApi(env["RT_URL"], "wrong-key").presence("chat:py")
    raise AssertionError("a wrong key was accepted")
except RealtimeApiError as err:
    report["wrong_key"] = [err.status, err.code]
try:
    api.publish("bad room", 1)
    raise AssertionError("a bad room was accepted")
except ValueError:
    pass
started = time.monotonic()
stub = RealtimeApi(env["RT_STUB_URL"], "k").publish("r", 1)
report["retried"] = {"recipients": stub["recipients"], "seconds": round(time.monotonic() - started, 2)}

secret, body, header = env["RT_WEBHOOK_SECRET"], env["RT_WEBHOOK_BODY"], env["RT_WEBHOOK_HEADER"]
report["webhook"] = [
    verify_webhook(secret, body, header),
    verify_webhook(secret, body + " ", header),
    verify_webhook("x" * 32, body, header),
    verify_webhook(secret, body, header, now=time.time() + 301),
    verify_webhook(secret, body, None),
]
report["signed"] = sign_webhook(secret, body)
print(json.dumps(report))
