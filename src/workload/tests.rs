use super::*;
use serde_json::json;

#[test]
fn judged_at_owner_only_when_the_owner_is_a_workload_or_for_pods() {
    let owned = |api_version: &str, kind: &str| {
        json!({"metadata": {"name": "x", "ownerReferences": [
            {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": true}]}})
    };
    let rs = WorkloadKind::ReplicaSet;
    assert!(judged_at_owner(rs, &owned("apps/v1", "Deployment"), &[]));
    assert!(judged_at_owner(
        WorkloadKind::Job,
        &owned("batch/v1", "CronJob"),
        &[]
    ));
    // An operator's resource: the workload is judged itself.
    assert!(!judged_at_owner(
        rs,
        &owned("argoproj.io/v1alpha1", "Rollout"),
        &[]
    ));
    assert!(!judged_at_owner(
        WorkloadKind::StatefulSet,
        &owned("monitoring.coreos.com/v1", "Prometheus"),
        &[]
    ));
    // A Pod of a workload controller, or of a kind the admin lists.
    let pod = WorkloadKind::Pod;
    assert!(judged_at_owner(pod, &owned("apps/v1", "ReplicaSet"), &[]));
    let taskrun = owned("tekton.dev/v1", "TaskRun");
    assert!(!judged_at_owner(pod, &taskrun, &[]));
    let listed = [ControllerKind {
        api_version: "tekton.dev/v1".into(),
        kind: "TaskRun".into(),
    }];
    assert!(judged_at_owner(pod, &taskrun, &listed));
    // Not a controller reference.
    let mut not_controller = owned("apps/v1", "Deployment");
    not_controller["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    assert!(!judged_at_owner(rs, &not_controller, &[]));
    assert!(!judged_at_owner(
        rs,
        &json!({"metadata": {"name": "x"}}),
        &[]
    ));
}

/// Issue 13: a bare Pod naming a ConfigMap (or anything) as its
/// controller was skipped like a ReplicaSet's. Only the five workload
/// controllers count, by exact apiVersion and kind, and the kinds an
/// admin lists in `controllerKinds`.
#[test]
fn only_workload_controllers_own_pods() {
    let owned = |api_version: &str, kind: &str| {
        json!({"metadata": {"name": "x", "ownerReferences": [
            {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "s"},
            {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": true}]}})
    };
    for (api_version, kind) in POD_CONTROLLERS {
        assert!(
            is_controller_owned(&owned(api_version, kind), &[]),
            "{api_version} {kind}"
        );
    }
    let strimzi = [ControllerKind {
        api_version: "core.strimzi.io/v1beta2".into(),
        kind: "StrimziPodSet".into(),
    }];
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("example.com/v1", "ReplicaSet"),
        // A version Kubernetes does not serve: the garbage collector
        // would never find such an owner absent.
        ("apps/v2", "ReplicaSet"),
        ("extensions/v1beta1", "ReplicaSet"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "CronJob"),
        ("apps/v1", "replicaset"),
        ("core.strimzi.io/v1", "StrimziPodSet"),
    ] {
        assert!(
            !is_controller_owned(&owned(api_version, kind), &strimzi),
            "{api_version} {kind}"
        );
    }
    assert!(is_controller_owned(
        &owned("core.strimzi.io/v1beta2", "StrimziPodSet"),
        &strimzi
    ));
    assert!(!is_controller_owned(
        &owned("core.strimzi.io/v1beta2", "StrimziPodSet"),
        &[]
    ));
}

#[test]
fn slim_keeps_everything_judging_reads() {
    let containers = json!([{"name": "c", "image": "x", "env": [{"name": "A", "value": "b"}],
        "ports": [{"containerPort": 8080, "protocol": "UDP"}]}]);
    let template = json!({"metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}},
        "spec": {"serviceAccountName": "sa", "containers": containers, "volumes": []}});
    let meta = json!({"name": "n", "namespace": "ns", "uid": "u", "labels": {"l": "1"},
        "ownerReferences": [{"controller": true, "kind": "X", "name": "o", "uid": "o", "apiVersion": "v1"}],
        "managedFields": [{"manager": "kubectl"}], "resourceVersion": "7"});
    for kind in [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::ReplicationController,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Pod,
    ] {
        let obj = match kind {
            WorkloadKind::Pod => json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "n", "namespace": "ns", "labels": {"app": "a"}},
                "spec": template["spec"], "status": {"phase": "Running"}}),
            WorkloadKind::CronJob => {
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template,
                    "manualSelector": true, "backoffLimit": 1}}}})
            }
            WorkloadKind::Job => {
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                "spec": {"completionMode": "Indexed", "completions": 3, "template": template}})
            }
            _ => json!({"apiVersion": "apps/v1", "kind": kind.as_str(), "metadata": meta,
                "spec": {"replicas": 3, "template": template}, "status": {"replicas": 3}}),
        };
        let slim = slim(kind, &obj);
        assert_eq!(
            pod_shape(kind, &slim),
            pod_shape(kind, &obj),
            "{kind:?}: {slim}"
        );
        assert!(pod_shape(kind, &slim).unwrap().ports.len() == 1, "{kind:?}");
        assert_eq!(
            is_controller_owned(&slim, &[]),
            is_controller_owned(&obj, &[])
        );
        assert_eq!(display_name(&slim, None), "n");
        assert_eq!(slim.pointer("/metadata/namespace"), Some(&json!("ns")));
        let text = slim.to_string();
        for gone in [
            "managedFields",
            "env",
            "volumes",
            "status",
            "annotations",
            "image",
            "completions",
            "backoffLimit",
        ] {
            assert!(!text.contains(gone), "{kind:?} kept {gone}: {text}");
        }
    }
}

#[test]
fn template_labels_not_workload_labels() {
    // StackRox's trap: metadata.labels says api, the pods say worker.
    let d = json!({"metadata": {"name": "w", "labels": {"app": "api"}},
        "spec": {"template": {"metadata": {"labels": {"app": "worker"}}, "spec": {}}}});
    let s = pod_shape(WorkloadKind::Deployment, &d).unwrap();
    assert_eq!(s.labels, Labels::from([("app".into(), "worker".into())]));
}

#[test]
fn cronjob_labels_come_from_the_job_template() {
    let c = json!({"metadata": {"name": "n", "labels": {"app": "wrong"}},
        "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "report"}}}}}}});
    let s = pod_shape(WorkloadKind::CronJob, &c).unwrap();
    assert_eq!(s.labels, Labels::from([("app".into(), "report".into())]));
}

#[test]
fn job_gets_the_labels_its_controller_adds() {
    let j = json!({"metadata": {"name": "migrate-db"},
        "spec": {"template": {"metadata": {"labels": {"app": "m"}}}}});
    let s = pod_shape(WorkloadKind::Job, &j).unwrap();
    assert_eq!(
        s.labels.get("job-name").map(String::as_str),
        Some("migrate-db")
    );
    assert_eq!(
        s.labels
            .get("batch.kubernetes.io/job-name")
            .map(String::as_str),
        Some("migrate-db")
    );
    assert_eq!(
        s.unknown_labels,
        keys(&["batch.kubernetes.io/controller-uid", "controller-uid"])
    );
}

fn keys(k: &[&str]) -> UnknownKeys {
    k.iter().map(|k| k.to_string()).collect()
}

/// Issue 13: coverage was judged on the template's labels alone, but
/// the controllers add labels to the real pods, most with values nobody
/// knows in advance. Checked against Kubernetes' own keys
/// (`DefaultDeploymentUniqueLabelKey`, `ControllerRevisionHashLabelKey`,
/// `StatefulSetPodNameLabel`, `PodIndexLabel`, the DaemonSet's
/// `pod-template-generation`, the Job API's selector labels and
/// `JobCompletionIndexAnnotation`).
#[test]
fn controllers_add_labels_with_unknown_values() {
    let template = json!({"metadata": {"labels": {"app": "a", "pod-template-hash": "mine",
        "controller-revision-hash": "mine"}}});
    let shape = |kind: WorkloadKind, spec: Value| {
        let mut spec = spec;
        if kind == WorkloadKind::CronJob {
            spec["jobTemplate"]["spec"]["template"] = template.clone();
        } else {
            spec["template"] = template.clone();
        }
        pod_shape(
            kind,
            &json!({"metadata": {"name": "n", "uid": "u-1"}, "spec": spec}),
        )
        .unwrap()
    };
    let s = shape(WorkloadKind::Deployment, json!({}));
    assert_eq!(s.unknown_labels, keys(&["pod-template-hash"]));
    // The controller overwrites a template label of the same key.
    assert_eq!(
        s.labels,
        Labels::from([
            ("app".into(), "a".into()),
            ("controller-revision-hash".into(), "mine".into())
        ])
    );
    let s = shape(WorkloadKind::StatefulSet, json!({}));
    assert_eq!(
        s.unknown_labels,
        keys(&[
            "apps.kubernetes.io/pod-index",
            "controller-revision-hash",
            "statefulset.kubernetes.io/pod-name"
        ])
    );
    assert!(!s.labels.contains_key("controller-revision-hash"));
    let s = shape(WorkloadKind::DaemonSet, json!({}));
    assert_eq!(
        s.unknown_labels,
        keys(&["controller-revision-hash", "pod-template-generation"])
    );
    // An Indexed Job: its name is known, its pods' index and uid are not.
    let s = shape(WorkloadKind::Job, json!({"completionMode": "Indexed"}));
    assert_eq!(s.labels.get("job-name").map(String::as_str), Some("n"));
    assert_eq!(
        s.unknown_labels,
        keys(&[
            "batch.kubernetes.io/controller-uid",
            "batch.kubernetes.io/job-completion-index",
            "controller-uid"
        ])
    );
    // The labels the Job API already put into the template are known.
    let j = json!({"metadata": {"name": "n", "uid": "u-1"}, "spec": {"template": {"metadata":
        {"labels": {"controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1"}}}}});
    let s = pod_shape(WorkloadKind::Job, &j).unwrap();
    assert!(s.unknown_labels.is_empty(), "{s:?}");
    assert_eq!(
        s.labels.get("controller-uid").map(String::as_str),
        Some("u-1")
    );
    // manualSelector: the author picks the labels, none are added.
    let s = shape(WorkloadKind::Job, json!({"manualSelector": true}));
    assert!(s.unknown_labels.is_empty());
    assert!(!s.labels.contains_key("job-name"));
    // A CronJob's Jobs get generated names: every Job label is unknown.
    let s = shape(WorkloadKind::CronJob, json!({}));
    assert_eq!(
        s.unknown_labels,
        keys(&[
            "batch.kubernetes.io/controller-uid",
            "batch.kubernetes.io/job-name",
            "controller-uid",
            "job-name"
        ])
    );
    let s = shape(
        WorkloadKind::CronJob,
        json!({"jobTemplate": {"spec": {"manualSelector": true}}}),
    );
    assert!(s.unknown_labels.is_empty());
    // Bare Pods, ReplicaSets and ReplicationControllers: nothing added.
    for kind in [
        WorkloadKind::ReplicaSet,
        WorkloadKind::ReplicationController,
    ] {
        let s = shape(kind, json!({}));
        assert!(s.unknown_labels.is_empty(), "{kind:?}");
        assert_eq!(s.labels.len(), 3, "{kind:?}");
    }
    let p = pod_shape(WorkloadKind::Pod, &template).unwrap();
    assert!(p.unknown_labels.is_empty());
    assert_eq!(p.labels.len(), 3);
}

#[test]
fn pod_is_its_own_template_and_ports_are_collected() {
    let p = json!({"metadata": {"name": "debug", "labels": {"run": "debug"}},
        "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]},
            {"name": "b", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
            "serviceAccountName": "sa"}});
    let s = pod_shape(WorkloadKind::Pod, &p).unwrap();
    assert_eq!(s.labels.get("run").map(String::as_str), Some("debug"));
    assert_eq!(
        s.ports,
        vec![
            ContainerPort {
                port: 8080,
                protocol: "TCP".into(),
                name: None,
            },
            ContainerPort {
                port: 53,
                protocol: "UDP".into(),
                name: None,
            }
        ]
    );
    assert_eq!(s.service_account.as_deref(), Some("sa"));
}

#[test]
fn missing_template_and_bad_labels_are_errors() {
    let e = pod_shape(WorkloadKind::Deployment, &json!({"spec": {}})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Deployment has no pod template at .spec.template"
    );
    let e = pod_shape(
        WorkloadKind::Deployment,
        &json!({"spec": {"template": {"metadata": {"labels": {"a": 1}}}}}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"a\" is not a string"));
    // A template without labels is fine: its pods simply have none.
    let s = pod_shape(WorkloadKind::Deployment, &json!({"spec": {"template": {}}})).unwrap();
    assert!(s.labels.is_empty());
}

#[test]
fn controller_ownership() {
    assert!(is_controller_owned(
        &json!({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": true}]}}),
        &[]
    ));
    assert!(!is_controller_owned(
        &json!({"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet"}]}}),
        &[]
    ));
    // Without its apiVersion, a kind alone proves nothing.
    assert!(!is_controller_owned(
        &json!({"metadata": {"ownerReferences": [
        {"kind": "ReplicaSet", "controller": true}]}}),
        &[]
    ));
    assert!(!is_controller_owned(&json!({"metadata": {}}), &[]));
}

#[test]
fn kinds_need_the_right_group() {
    assert_eq!(
        WorkloadKind::from_group_kind("apps", "Deployment"),
        Some(WorkloadKind::Deployment)
    );
    assert_eq!(WorkloadKind::from_group_kind("", "Deployment"), None);
    assert_eq!(
        WorkloadKind::from_group_kind("batch", "CronJob"),
        Some(WorkloadKind::CronJob)
    );
    assert_eq!(WorkloadKind::from_group_kind("example.com", "Pod"), None);
}

#[test]
fn display_name_falls_back_to_generate_name() {
    assert_eq!(display_name(&json!({"metadata": {"name": "a"}}), None), "a");
    assert_eq!(
        display_name(&json!({"metadata": {"generateName": "x-"}}), None),
        "x-*"
    );
    assert_eq!(display_name(&json!({}), Some("req")), "req");
}
