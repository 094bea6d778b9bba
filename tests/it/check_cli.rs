//! `netpol-guard check` and `config` as a CI job runs them: exit codes and output.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_examples_finds_the_uncovered_deployment_and_the_open_policy() {
    let (code, out, _) = run(&["check", "examples/"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "examples/app/ledger.yaml:3: Deployment payments/ledger: DENY require-network-policy"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "examples/app/ledger.yaml:24: NetworkPolicy payments/ledger-egress: DENY world-cidr"
        ),
        "{out}"
    );
    // Its podSelector wants app=ledger-worker, which no workload has.
    assert!(
        out.contains(
            "examples/app/ledger.yaml:24: NetworkPolicy payments/ledger-egress: WARN policy-selects-nothing\n  \
             policy-selects-nothing: podSelector app=ledger-worker matches no pods of the 1 workload \
             in payments; nearest: payments/ledger has app=ledger, this policy wants app=ledger-worker\n"
        ),
        "{out}"
    );
    // The per-namespace summary, as `audit` prints it for a cluster.
    assert!(
        out.ends_with(
            "\nNAMESPACE  STATUS     MODE     POLICIES  BASELINE  WORKLOADS  COVERED  UNCOVERED  EXEMPT  HIGH  MEDIUM\n\
             legacy     unmanaged  -               0  -                 0        0          0       0     0       0\n\
             payments   managed    enforce         4  present           1        0          1       0     2       2\n\
             \n9 objects judged: 2 denied, 2 warned, 0 errors\n"
        ),
        "{out}"
    );
    // A pipe gets no colour; --color always does.
    assert!(!out.contains('\x1b'));
    let (_, coloured, _) = run(&["check", "--color", "always", "examples/"]);
    assert!(
        coloured
            .contains("Deployment payments/ledger: \x1b[1;31mDENY\x1b[0m require-network-policy"),
        "{coloured}"
    );
}

#[test]
fn check_json_output_is_structured() {
    let (code, out, _) = run(&["check", "--output", "json", "examples/"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    // ledger-egress and payments-api select no pod of payments' one
    // workload among the inputs (issue 15).
    assert_eq!(
        rules,
        [
            "require-network-policy",
            "world-cidr",
            "policy-selects-nothing",
            "policy-selects-nothing"
        ]
    );
    assert_eq!(v["findings"][0]["line"], 3);
    assert_eq!(v["findings"][0]["action"], "deny");
    assert_eq!(v["judged"], 9);
}

#[test]
fn check_clean_input_exits_0_and_config_can_soften_it() {
    let (code, out, _) = run(&["check", "examples/cluster"]);
    assert_eq!(code, 0, "{out}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "rules:\n  require-network-policy: warn\n  world-cidr: off\n",
    )
    .unwrap();
    let (code, out, _) = run(&["check", "--config", cfg.to_str().unwrap(), "examples/"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARN require-network-policy"), "{out}");
    assert!(!out.contains("world-cidr"), "{out}");
}

#[test]
fn check_unreadable_input_exits_2() {
    let (code, _, err) = run(&["check", "does/not/exist.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read does/not/exist.yaml"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: [\n").unwrap();
    let (code, _, err) = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.yaml:"), "{err}");
    let (code, _, err) = run(&["check", "--config", bad.to_str().unwrap(), "examples/"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn check_notes_namespaces_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("d.yaml"),
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app/ledger.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let (code, out, _) = run(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "the world-cidr policy is still denied: {out}");
    assert!(
        out.contains(
            "note: namespace payments is not among the inputs, so it was treated as unmanaged"
        ),
        "{out}"
    );
    // Objects without a namespace land in --namespace.
    std::fs::write(dir.path().join("d.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: team, labels: {platform.io/managed: \"true\"}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n").unwrap();
    let (code, out, _) = run(&["check", "--namespace", "team", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Pod team/p: DENY require-network-policy"),
        "{out}"
    );
}

#[test]
fn config_default_and_validate() {
    let (code, out, _) = run(&["config", "default"]);
    assert_eq!(code, 0);
    assert!(out.contains("require-network-policy: deny"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, &out).unwrap();
    let (code, out, _) = run(&["config", "validate", f.to_str().unwrap()]);
    assert_eq!((code, out.ends_with(": valid\n")), (0, true));
    std::fs::write(&f, "directions: any\nmodes: enforce\n").unwrap();
    let (code, _, err) = run(&["config", "validate", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown field `modes`") && err.contains("line 2"),
        "{err}"
    );
}

/// `clusterCidrs` turns cluster-cidr-peer's warning into a denial; a bad
/// entry is a config error naming it. And offline input never knows every
/// namespace of a cluster, so a selector matching all the namespaces given
/// is not any-namespace-peer.
#[test]
fn check_judges_ip_blocks_by_cluster_cidrs_and_never_guesses_every_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::new();
    for (ns, env) in [("shop", "prod"), ("web", "dev"), ("data", "prod")] {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{env: {env}, kubernetes.io/metadata.name: {ns}}}}}\n---\n"
        ));
    }
    yaml.push_str(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: office, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n  ingress:\n  \
         - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: envs, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n  ingress:\n  \
         - from:\n    - namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod, dev]}]}\n",
    );
    let input = dir.path().join("in.yaml");
    std::fs::write(&input, yaml).unwrap();
    let input = input.to_str().unwrap();
    let (code, out, _) = run(&["check", input]);
    assert_eq!(code, 0, "a warning only: {out}");
    assert!(
        out.contains("in.yaml:13: NetworkPolicy shop/office: WARN cluster-cidr-peer"),
        "{out}"
    );
    assert!(!out.contains("any-namespace-peer"), "{out}");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "clusterCidrs: [10.244.0.0/16, 'fd00:10:244::/56']\n").unwrap();
    let (code, out, _) = run(&["check", "--config", cfg.to_str().unwrap(), input]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("in.yaml:13: NetworkPolicy shop/office: DENY cluster-cidr-peer"),
        "{out}"
    );
    assert!(
        out.contains("ipBlock 10.0.0.0/8 contains cluster CIDR 10.244.0.0/16"),
        "{out}"
    );
    assert!(!out.contains("any-namespace-peer"), "{out}");
    std::fs::write(&cfg, "clusterCidrs: [10.244.0.0/33]\n").unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap(), input]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("clusterCidrs: \"10.244.0.0/33\" is not a CIDR block"),
        "{err}"
    );
    let (code, out, _) = run(&["config", "default"]);
    assert_eq!(code, 0);
    assert!(out.contains("\nclusterCidrs: []\n"), "{out}");
    assert!(out.contains("  cluster-cidr-peer: deny\n"), "{out}");
}

/// Issue 14: a report that cannot be written is no clean report. With
/// standard output on /dev/full (every write fails with ENOSPC), `check`
/// used to panic (exit 101) in every format; it exits 2 with one line
/// saying what failed, even for input that would exit 0.
#[test]
fn check_exits_2_when_its_report_cannot_be_written() {
    for (output, name) in [("text", "text"), ("json", "JSON"), ("sarif", "SARIF")] {
        let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
            .args(["check", "--output", output, "examples/cluster"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{output}: {err}");
        assert_eq!(
            err,
            format!(
                "error: cannot write the {name} output to standard output: No space left on device (os error 28)\n"
            )
        );
    }
    // The same input, written, is clean.
    let (code, _, _) = run(&["check", "--output", "json", "examples/cluster"]);
    assert_eq!(code, 0);
}

/// Issue 15, part 4: `check` with `baseline.extraPolicies` in its config.
/// The extra policy is part of the baseline a managed namespace must have
/// (BASELINE says missing without it), netpol-guard's own copy is not
/// judged, a developer's policy with its name is denied
/// (baseline-protected), and an extra policy the catalog would deny is a
/// config error naming the policy and the rule.
#[test]
fn check_knows_the_extra_baseline_policies_of_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "baseline:\n  extraPolicies:\n  - name: allow-prometheus-scrape\n    spec:\n      podSelector: {}\n      policyTypes: [Ingress]\n      ingress:\n      - from:\n        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n        ports: [{port: 9090}]\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let ours = |name: &str, spec: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {{app.kubernetes.io/managed-by: netpol-guard}}\nspec: {spec}\n"
        )
    };
    let mut base = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {platform.io/managed: \"true\"}}\n",
    );
    base.push_str(&ours(
        "netpol-guard-default-deny",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    ));
    base.push_str(&ours(
        "netpol-guard-allow-dns",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]}]}",
    ));
    let input = dir.path().join("in.yaml");
    let input_s = input.to_str().unwrap();
    std::fs::write(&input, &base).unwrap();
    let row = |out: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with("shop "))
            .map(|l| l.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    };
    // Without the config: the two built-ins are the whole baseline.
    let (code, out, _) = run(&["check", input_s]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(row(&out)[4], "present", "{out}");
    // With it: the extra policy is missing.
    let (code, out, _) = run(&["check", "--config", cfg, input_s]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(row(&out)[4], "missing", "{out}");
    // netpol-guard's own copy, as exported from a cluster: present, not judged.
    let with_extra = format!(
        "{base}{}",
        ours(
            "netpol-guard-allow-prometheus-scrape",
            "{podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {}}]}]}",
        )
    );
    std::fs::write(&input, &with_extra).unwrap();
    let (code, out, _) = run(&["check", "--config", cfg, input_s]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(row(&out)[4], "present", "{out}");
    assert!(out.contains("0 denied, 0 warned"), "{out}");
    // A developer's policy with the name: denied, and only with the config.
    let squat = format!(
        "{base}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: netpol-guard-allow-prometheus-scrape, namespace: shop}}\nspec: {{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Ingress]}}\n"
    );
    std::fs::write(&input, &squat).unwrap();
    let (code, out, _) = run(&["check", "--config", cfg, input_s]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "NetworkPolicy shop/netpol-guard-allow-prometheus-scrape: DENY baseline-protected"
        ),
        "{out}"
    );
    let (code, out, _) = run(&["check", input_s]);
    assert_eq!(code, 0, "{out}");
    // What the catalog denies is a config error (exit 2) naming the
    // policy and the rule.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "baseline:\n  extraPolicies:\n  - name: allow-everyone\n    spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", bad.to_str().unwrap(), input_s]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "invalid config: baseline.extraPolicies[0] (allow-everyone): any-namespace-peer: ingress rule 0, peer 0: namespaceSelector: {}"
        ),
        "{err}"
    );
}

/// Issue 15: a policy whose selector matches none of its namespace's
/// workloads among the inputs (a label typo) is a warning, and a denial
/// (exit 1) when the config says so. A namespace with no workload among the
/// inputs, an empty selector, and a CiliumClusterwideNetworkPolicy (it
/// selects in namespaces the inputs do not hold) are not judged.
#[test]
fn check_warns_about_a_policy_that_selects_nothing_and_denies_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("shop.yaml");
    std::fs::write(
        &manifests,
        r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: shop}
spec:
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ledger-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: ledgr}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: isolate-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ahead-of-its-workload, namespace: other}
spec:
  podSelector: {matchLabels: {app: later}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: elsewhere}
spec:
  endpointSelector: {matchLabels: {app: in-another-repo}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
"#,
    )
    .unwrap();
    let path = manifests.to_str().unwrap();
    let (code, out, _) = run(&["check", path]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "{path}:14: NetworkPolicy shop/ledger-ingress: WARN policy-selects-nothing\n  \
             policy-selects-nothing: podSelector app=ledgr matches no pods of the 1 workload in \
             shop; did you mean app=ledger? shop/ledger has app=ledger, this policy wants \
             app=ledgr\n"
        )),
        "{out}"
    );
    assert_eq!(
        out.matches("WARN policy-selects-nothing").count(),
        1,
        "{out}"
    );
    assert!(
        out.ends_with("6 objects judged: 0 denied, 1 warned, 0 errors\n"),
        "{out}"
    );

    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "rules:\n  policy-selects-nothing: deny\n").unwrap();
    let (code, out, _) = run(&["check", "--config", cfg.to_str().unwrap(), path]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NetworkPolicy shop/ledger-ingress: DENY policy-selects-nothing"),
        "{out}"
    );
    // The fix goes with it.
    assert!(
        out.contains("  podSelector:\n    matchLabels:\n      app: ledger\n"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        "sarif",
        path,
    ]);
    assert_eq!(code, 1, "{out}");
    let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{out}");
    assert_eq!(results[0]["ruleId"], "policy-selects-nothing");
    assert_eq!(results[0]["level"], "error");
}
