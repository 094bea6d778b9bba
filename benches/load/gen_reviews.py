#!/usr/bin/env python3
"""Writes the AdmissionReview bodies of the load mix, the order wrk sends
them in, and what netpol-guard must answer to each.

    gen_reviews.py OUT_DIR

OUT_DIR gets one `NN-<what>.json` per body, `schedule` (the body files in
send order, one cycle of 20), and `expect.tsv` (file, kind, expected
`allowed`, a string the denial message must contain).

The cycle of 20 requests (all CREATE in the managed namespace `hot`, which
holds 1,000 of the state's 10,000 policies; see gen_state.py):

    8  (40%) Deployment whose pods a policy selects        -> allowed
    2  (10%) Deployment no policy selects                  -> denied, full message + YAML
    2  (10%) bare Pod a policy selects                     -> allowed
    2  (10%) bare Pod no policy selects                    -> denied, full message + YAML
    4  (20%) clean NetworkPolicy                           -> allowed, no warning
    1   (5%) NetworkPolicy egress to ipBlock 0.0.0.0/0     -> denied (world-cidr)
    1   (5%) NetworkPolicy ingress from namespaceSelector {} -> denied (any-namespace-peer)

Bodies are what kube-apiserver sends after `kubectl apply` (client-side):
the object carries metadata.uid, creationTimestamp, generation, the
last-applied-configuration annotation, managedFields, and the API server's
defaults; Deployments and Pods are 7 to 8.5 KB, policies 2 to 4 KB.
"""
import json
import os
import sys

NS = "hot"
TIME = "2026-11-23T10:00:00Z"


def fields_v1(obj):
    """A FieldsV1 tree of `obj` (what managedFields records), list items
    keyed by name (k:) or, failing that, by value (v:)."""
    if isinstance(obj, dict):
        return {f"f:{k}": fields_v1(v) for k, v in obj.items()}
    if isinstance(obj, list):
        out = {}
        for item in obj:
            if isinstance(item, dict):
                key = {k: item[k] for k in ("name", "containerPort", "port") if k in item}
                key = key or {"protocol": item.get("protocol", "TCP")}
                out["k:" + json.dumps(key, separators=(",", ":"))] = {".": {}, **fields_v1(item)}
            else:
                out["v:" + json.dumps(item)] = {}
        return out
    return {}


def applied(manifest, uid, api_version_kind):
    """`manifest` as the API server holds it on CREATE after `kubectl apply`."""
    obj = json.loads(json.dumps(manifest))
    last = json.dumps(manifest, separators=(",", ":"), sort_keys=True) + "\n"
    md = obj["metadata"]
    md.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = last
    md.update({"uid": uid, "resourceVersion": "", "generation": 1, "creationTimestamp": TIME})
    md["managedFields"] = [{
        "manager": "kubectl-client-side-apply", "operation": "Update",
        "apiVersion": api_version_kind[0], "time": TIME, "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1({"metadata": {"annotations": {".": {},
                                                            "kubectl.kubernetes.io/last-applied-configuration": {}},
                                            "labels": manifest["metadata"].get("labels", {})},
                               "spec": manifest.get("spec", {})}),
    }]
    return obj


def container(app, port=8080):
    return {
        "name": app, "image": f"registry.example.com/team/{app}:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": f"{app}-db", "key": "url"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port, "scheme": "HTTP"},
                           "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
                          "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                          "successThreshold": 1, "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }


def pod_spec(app, extra=None):
    spec = {"containers": [container(app)], "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app, "serviceAccount": app,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler"}
    spec.update(extra or {})
    return spec


def labels(app):
    return {"app": app, "tier": "backend", "version": "v1",
            "app.kubernetes.io/part-of": "shop", "team": "payments"}


def deployment(app):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": NS, "labels": {"app": app, "team": "payments"}},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "selector": {"matchLabels": {"app": app}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                     "template": {"metadata": {"labels": labels(app),
                                               "annotations": {"prometheus.io/scrape": "true",
                                                               "prometheus.io/port": "8080"}},
                                  "spec": pod_spec(app)}}}


def pod(app):
    extra = {
        "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}],
        "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}]}}]}}],
    }
    spec = pod_spec(app, extra)
    spec["containers"][0]["volumeMounts"] = [{"name": "kube-api-access-x7k2p", "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{app}-debug", "namespace": NS, "labels": labels(app)},
            "spec": spec}


def netpol(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NS, "labels": {"team": "payments"}},
            "spec": spec}


DNS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def clean_policy(app):
    return netpol(f"allow-{app}", {
        "podSelector": {"matchLabels": {"app": app}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}},
                              {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                               "podSelector": {"matchLabels": {"app": "prometheus"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": f"{app}-db"}}}],
                    "ports": [{"protocol": "TCP", "port": 5432}]}, DNS]})


def world_egress(app):
    return netpol(f"{app}-egress-anywhere", {
        "podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, DNS]})


def any_namespace(app):
    return netpol(f"{app}-from-all-namespaces", {
        "podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {}}]}]})


KINDS = {
    "Deployment": ({"group": "apps", "version": "v1", "kind": "Deployment"},
                   {"group": "apps", "version": "v1", "resource": "deployments"}, "apps/v1"),
    "Pod": ({"group": "", "version": "v1", "kind": "Pod"},
            {"group": "", "version": "v1", "resource": "pods"}, "v1"),
    "NetworkPolicy": ({"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
                      {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
                      "networking.k8s.io/v1"),
}


def review(n, manifest):
    kind = manifest["kind"]
    gvk, gvr, api_version = KINDS[kind]
    uid = f"7f1c0d2e-0000-4000-8000-{n:012d}"
    obj = applied(manifest, f"5d3a9b10-0000-4000-8000-{n:012d}", (api_version, kind))
    return uid, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": manifest["metadata"]["name"], "namespace": NS, "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                     "uid": "0b1e7c8a-3f44-4c51-9d1e-3c3a2f9a6b10",
                     "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd",
                                "system:authenticated"]},
        "object": obj, "oldObject": None, "dryRun": False,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1",
                    "fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"}}}


# (label, manifest, expected allowed, substring of the denial message).
# svc-N for N % 10 == 9 is selected by an `In` expression, the others by matchLabels.
COVERED = [3, 19, 150, 499, 501, 777, 898, 999]
SCHEDULE = []
_c = iter(COVERED)
_uncovered = iter(["ledger", "fraud-scoring", "invoice-renderer", "ledger-replay"])
_clean = iter(["svc-12", "svc-230", "svc-404", "svc-871"])
_pods = iter([303, 640])
for slot in ["C", "N", "C", "PC", "U", "C", "N", "X1", "C", "PU",
             "C", "N", "C", "PC", "U", "C", "N", "X2", "C", "PU"]:
    if slot == "C":
        app = f"svc-{next(_c)}"
        SCHEDULE.append((f"deployment-covered-{app}", deployment(app), True, ""))
    elif slot == "U":
        app = next(_uncovered)
        SCHEDULE.append((f"deployment-uncovered-{app}", deployment(app), False,
                         "require-network-policy: Deployment hot/"))
    elif slot == "PC":
        app = f"svc-{next(_pods)}"
        SCHEDULE.append((f"pod-covered-{app}", pod(app), True, ""))
    elif slot == "PU":
        app = next(_uncovered)
        SCHEDULE.append((f"pod-uncovered-{app}", pod(app), False, "require-network-policy: Pod hot/"))
    elif slot == "N":
        app = next(_clean)
        SCHEDULE.append((f"netpol-clean-{app}", clean_policy(app), True, ""))
    elif slot == "X1":
        SCHEDULE.append(("netpol-world-cidr", world_egress("svc-55"), False, "world-cidr"))
    else:
        SCHEDULE.append(("netpol-any-namespace", any_namespace("svc-56"), False, "any-namespace-peer"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    names = []
    with open(os.path.join(out, "expect.tsv"), "w") as expect:
        for n, (label, manifest, allowed, message) in enumerate(SCHEDULE):
            uid, body = review(n, manifest)
            name = f"{n:02d}-{label}.json"
            with open(os.path.join(out, name), "w") as f:
                json.dump(body, f, separators=(",", ":"))
            names.append(name)
            expect.write(f"{name}\t{manifest['kind']}\t{uid}\t{str(allowed).lower()}\t{message}\n")
    with open(os.path.join(out, "schedule"), "w") as f:
        f.write("\n".join(names) + "\n")


if __name__ == "__main__":
    main()
