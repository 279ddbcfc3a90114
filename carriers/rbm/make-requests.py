#!/usr/bin/env python3
"""Builds requests/*.http: each event fixture as the complete webhook request Google would POST.

Run from this directory: `python3 make-requests.py`. Independent of the Rust code (Python's
hmac/hashlib/base64 only), so the signatures it writes double as test vectors.

- The body is the Pub/Sub push envelope Google's RBM docs show (guides/build/events, agent launch
  example): {"message": {"data", "messageId", "message_id", "publishTime", "publish_time"},
  "subscription"}; `data` is the base64 of the compact event JSON.
- X-Goog-Signature = base64(HMAC-SHA512(clientToken, base64-decoded message.data)).
- The client token is SJENCPGJESMGUFPY, the example in Google's webhook guide.
- The handshake is the plain JSON body, unsigned, as Google sends it.
- vector-12.7.http is shared/reference/carriers.md §12.7 verbatim (data and signature).
"""
import base64
import hashlib
import hmac
import json
import os

TOKEN = b"SJENCPGJESMGUFPY"
URL = "https://sms.example.com/webhooks/rbm"
SUBSCRIPTION = "projects/rbm-drawbridge-test-agent/subscriptions/rbm-agent-subscription"

EVENTS = [
    ("user-text", "14150481888479752", "2026-03-02T15:01:23.301Z"),
    ("user-file", "14150481888479753", "2026-03-02T15:02:10.733Z"),
    ("user-location", "14150481888479754", "2026-03-02T15:03:45.210Z"),
    ("suggestion-reply", "14150481888479755", "2026-03-02T15:04:02.410Z"),
    ("suggestion-action", "14150481888479756", "2026-03-02T15:04:20.002Z"),
    ("event-delivered", "14150481888479757", "2026-03-02T15:05:00.380Z"),
    ("event-read", "14150481888479758", "2026-03-02T15:06:30.912Z"),
    ("event-is-typing", "14150481888479759", "2026-03-02T15:06:41.150Z"),
    ("event-unsubscribe", "14150481888479760", "2026-03-02T15:07:15.520Z"),
    ("event-subscribe", "14150481888479761", "2026-03-09T09:12:00.240Z"),
    ("server-ttl-revoked", "14150481888479762", "2026-03-03T15:05:00.190Z"),
]

VECTOR_DATA = (
    b'{"senderPhoneNumber":"+12223334444","messageId":"MsW9d5RGeQRUK6zzZVYbH1kQ",'
    b'"sendTime":"2024-01-01T12:00:00.000000Z","text":"Hello","agentId":"example-agent"}'
)
VECTOR_SIGNATURE = (
    "+1MqBKB5kKevr0UIQvp78o6A8QbSbw8rnARQQHP/+g9QGw5YLFvTshW0/081QsPhkU5htzfQhUbOvjs3IAb1CA=="
)


def signed_request(data: bytes, pubsub_id: str, publish_time: str) -> str:
    envelope = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": pubsub_id,
            "message_id": pubsub_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": SUBSCRIPTION,
    }
    body = json.dumps(envelope, separators=(",", ":"))
    signature = base64.b64encode(hmac.new(TOKEN, data, hashlib.sha512).digest()).decode()
    return (
        f"POST {URL}\nContent-Type: application/json\nX-Goog-Signature: {signature}\n\n{body}"
    )


def main() -> None:
    os.makedirs("requests", exist_ok=True)
    for name, pubsub_id, publish_time in EVENTS:
        with open(f"{name}.json", encoding="utf-8") as f:
            event = json.load(f)
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        with open(f"requests/{name}.http", "w", encoding="utf-8") as f:
            f.write(signed_request(data, pubsub_id, publish_time))
    with open("handshake.json", encoding="utf-8") as f:
        handshake = json.dumps(json.load(f), separators=(",", ":"))
    with open("requests/handshake.http", "w", encoding="utf-8") as f:
        f.write(f"POST {URL}\nContent-Type: application/json\n\n{handshake}")
    vector = signed_request(VECTOR_DATA, "14150481888479700", "2024-01-01T12:00:00.120Z")
    assert VECTOR_SIGNATURE in vector, "the §12.7 vector no longer matches"
    with open("requests/vector-12.7.http", "w", encoding="utf-8") as f:
        f.write(vector)


if __name__ == "__main__":
    main()
