#!/usr/bin/env python3
"""Checks, before any load, that a server answers every body of the mix as
expected: HTTP 200, an AdmissionReview v1 echoing the request's uid, and

- `netpol-guard`: `allowed` as listed in expect.tsv, a denial message that
  contains the listed text (and the suggested NetworkPolicy for
  require-network-policy), no warnings on the allowed ones;
- `minimal`: exactly `{"uid": <uid>, "allowed": true}`.

    preflight.py PORT REVIEWS_DIR netpol-guard|minimal

Prints one line per body and exits 1 on the first mismatch. Uses one
keep-alive TLS connection (the self-signed certificate is not verified).
"""
import http.client
import json
import os
import ssl
import sys


def main():
    port, reviews, server = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl._create_unverified_context())
    failures = 0
    with open(os.path.join(reviews, "expect.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    for name, kind, uid, allowed, message in rows:
        body = open(os.path.join(reviews, name), "rb").read()
        conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        problems = []
        if r.status != 200:
            problems.append(f"HTTP {r.status}: {raw[:200]!r}")
            resp = {}
        else:
            review = json.loads(raw)
            resp = review.get("response", {})
            if (review.get("apiVersion"), review.get("kind")) != ("admission.k8s.io/v1", "AdmissionReview"):
                problems.append("not an AdmissionReview v1")
            if resp.get("uid") != uid:
                problems.append(f"uid {resp.get('uid')!r}, expected {uid!r}")
            if server == "minimal":
                if resp != {"uid": uid, "allowed": True}:
                    problems.append(f"response {resp!r}")
            else:
                want = allowed == "true"
                if resp.get("allowed") is not want:
                    problems.append(f"allowed={resp.get('allowed')}, expected {want}")
                text = (resp.get("status") or {}).get("message", "")
                if not want and message not in text:
                    problems.append(f"denial message lacks {message!r}: {text[:200]!r}")
                if not want and message.startswith("require-network-policy") and "kind: NetworkPolicy" not in text:
                    problems.append("denial message lacks the suggested NetworkPolicy")
                if want and resp.get("warnings"):
                    problems.append(f"unexpected warnings: {resp['warnings']}")
        status = "ok " if not problems else "BAD"
        first = ((resp.get("status") or {}).get("message") or "").split("\n")[0]
        print(f"  {status} {name:<44} {kind:<13} allowed={str(resp.get('allowed')).lower():<5} "
              f"request {len(body):>5} B, response {len(raw):>5} B  {first[:90]}")
        for p in problems:
            print(f"      {p}")
        failures += bool(problems)
    if failures:
        print(f"preflight against {server} on :{port}: {failures} of {len(rows)} bodies answered wrongly")
        sys.exit(1)


if __name__ == "__main__":
    main()
