"""A Python backend publishing through the Pusher HTTP API, with the standard
library only (hmac, hashlib, urllib): signs as Pusher's docs describe and
prints the answer as one JSON line {"status": ..., "body": ...}.

usage: _pusher_trigger.py BASE_URL APP_ID KEY SECRET CHANNEL EVENT DATA [SOCKET_ID]
"""

import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request


def signed_url(base, app_id, key, secret, method, path, body):
    params = {
        "auth_key": key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    query = "&".join(f"{k}={params[k]}" for k in sorted(params))
    full_path = f"/apps/{app_id}{path}"
    to_sign = f"{method}\n{full_path}\n{query}".encode()
    signature = hmac.new(secret.encode(), to_sign, hashlib.sha256).hexdigest()
    return f"{base}{full_path}?{query}&auth_signature={signature}"


def main():
    base, app_id, key, secret, channel, event, data = sys.argv[1:8]
    event_body = {"name": event, "channels": [channel], "data": data}
    if len(sys.argv) > 8:
        event_body["socket_id"] = sys.argv[8]
    body = json.dumps(event_body).encode()
    url = signed_url(base, app_id, key, secret, "POST", "/events", body)
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    print(json.dumps({"status": status, "body": text}))


if __name__ == "__main__":
    main()
