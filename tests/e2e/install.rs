//! The environment every journey runs in: the control plane, netpol-guard
//! installed from `manifests/` as shipped, two replicas behind a loopback
//! balancer, each reaching the API server through a pausable link.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::balancer::Forwarder;
use crate::cluster::{ControlPlane, eventually, stderr};
use crate::replica::Replica;

/// The namespace and ServiceAccount the manifests install netpol-guard as.
pub const NAMESPACE: &str = "netpol-guard";
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:netpol-guard:netpol-guard";
/// A developer with the `edit` ClusterRole in the namespaces that grant it.
pub const DEVELOPER: &str = "alice@example.com";

pub struct Env {
    pub cluster: ControlPlane,
    /// Runs the balancer and the links.
    _rt: tokio::runtime::Runtime,
    pub balancer: Forwarder,
    pub replicas: [Replica; 2],
    /// Each replica's link to the API server (same order as `replicas`).
    pub links: [Forwarder; 2],
    /// The shipped config.yaml, restored after journeys that change it.
    pub shipped_config: String,
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address")
}

/// A CA and a serving certificate for 127.0.0.1 (the webhook URL's host).
fn serving_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "netpol-guard e2e webhook CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("serving key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("serving params")
        .signed_by(&key, &issuer)
        .expect("serving certificate");
    let dir = dir.join("webhook-pki");
    std::fs::create_dir_all(&dir).expect("webhook-pki");
    let (cert, key_path, ca_path) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
    std::fs::write(&cert, leaf.pem()).expect("write tls.crt");
    std::fs::write(&key_path, key.serialize_pem()).expect("write tls.key");
    std::fs::write(&ca_path, ca_cert.pem()).expect("write ca.crt");
    (cert, key_path, ca_path)
}

/// `kubectl kustomize manifests/` as objects, changed only where a cluster
/// without nodes needs it: no Deployment (the replicas run as processes),
/// and each webhook's `clientConfig` is a URL to the balancer plus the CA.
pub fn rendered_manifests(
    cluster: &ControlPlane,
    balancer: SocketAddr,
    ca_pem: &str,
) -> Vec<Value> {
    let yaml = cluster.kubectl_ok(&["kustomize", manifests().to_str().expect("utf-8 path")]);
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&yaml) {
        let mut obj: Value = serde::Deserialize::deserialize(doc).expect("kustomize YAML");
        if obj.is_null() || obj["kind"] == "Deployment" {
            continue;
        }
        if matches!(
            obj["kind"].as_str(),
            Some("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration")
        ) {
            for hook in obj["webhooks"].as_array_mut().expect("webhooks") {
                let path = hook["clientConfig"]["service"]["path"]
                    .as_str()
                    .expect("a service path")
                    .to_string();
                hook["clientConfig"] = json!({
                    "url": format!("https://{balancer}{path}"),
                    "caBundle": bundle,
                });
            }
        }
        out.push(obj);
    }
    out
}

fn kubeconfig(path: &Path, server: SocketAddr, ca: &Path, token: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: https://{server}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: sa}}\ncurrent-context: e2e\n",
        ca.display()
    );
    std::fs::write(path, text).expect("write a kubeconfig");
}

impl Env {
    pub fn start() -> Env {
        let cluster = ControlPlane::up();
        let dir = cluster.dir.clone();
        let tls = serving_pki(&dir);
        let ca_pem = std::fs::read_to_string(&tls.2).expect("read the webhook CA");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let api: SocketAddr = format!("127.0.0.1:{}", cluster.apiserver_port())
            .parse()
            .expect("API server address");
        let addrs = [free_addr(), free_addr()];
        let balancer = Forwarder::start(&rt, addrs.to_vec());
        let links = [
            Forwarder::start(&rt, vec![api]),
            Forwarder::start(&rt, vec![api]),
        ];

        // As shipped: RBAC, ServiceAccount, ConfigMap, Service, PDB,
        // NetworkPolicy, the webhook configurations; and the CRDs.
        let objects = rendered_manifests(&cluster, balancer.addr, &ca_pem);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string();
        let out = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&list));
        assert!(out.status.success(), "install manifests/: {}", stderr(&out));
        let out = cluster.kubectl(&[
            "apply",
            "-k",
            manifests().join("crds").to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "install manifests/crds: {}",
            stderr(&out)
        );
        let shipped_config = std::fs::read_to_string(manifests().join("config.yaml"))
            .expect("manifests/config.yaml");

        // The ServiceAccount's own token: manifests/rbac.yaml is what the
        // replicas may do.
        let token = cluster.kubectl_ok(&[
            "-n",
            NAMESPACE,
            "create",
            "token",
            "netpol-guard",
            "--duration",
            "24h",
        ]);
        let replicas = [("netpol-guard-a", 0), ("netpol-guard-b", 1)].map(|(name, i)| {
            let kc = dir.join(format!("{name}.kubeconfig"));
            kubeconfig(&kc, links[i].addr, &cluster.ca(), token.trim());
            Replica::new(name, addrs[i], &dir, kc, tls.clone(), cluster.ca())
        });
        let env = Env {
            cluster,
            _rt: rt,
            balancer,
            replicas,
            links,
            shipped_config,
        };
        for r in &env.replicas {
            r.start();
        }
        env.wait_leader(Duration::from_secs(30));
        // The developer: `edit` in every namespace that binds it (see
        // `developer_namespace`).
        env
    }

    /// The Lease holder, as the API server has it.
    pub fn lease_holder(&self) -> Option<String> {
        let lease = self
            .cluster
            .get(&["lease", "-n", NAMESPACE, "netpol-guard"])?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(String::from)
    }

    pub fn wait_leader(&self, timeout: Duration) -> &Replica {
        let name = eventually(timeout, "a Lease holder", || self.lease_holder());
        self.replica(&name)
    }

    pub fn replica(&self, name: &str) -> &Replica {
        self.replicas
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no replica {name}"))
    }

    /// The position of a replica in `replicas` (and `links`, and the
    /// balancer's backends).
    pub fn index(&self, name: &str) -> usize {
        self.replicas
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no replica {name}"))
    }

    pub fn other(&self, name: &str) -> &Replica {
        self.replicas
            .iter()
            .find(|r| r.name != name)
            .expect("two replicas")
    }

    /// Config reloads (applied or rejected) a replica has counted.
    fn reloads(r: &Replica) -> f64 {
        r.metric("netpol_guard_config_reloads_total{result=\"applied\"}")
            + r.metric("netpol_guard_config_reloads_total{result=\"invalid\"}")
    }

    /// Writes config.yaml into the ConfigMap and waits until both replicas
    /// have read it (applied or rejected).
    pub fn set_config(&self, yaml: &str) {
        let before: Vec<f64> = self.replicas.iter().map(Self::reloads).collect();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "netpol-guard", "namespace": NAMESPACE},
            "data": {"config.yaml": yaml}})
        .to_string();
        let out = self.cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&cm));
        assert!(
            out.status.success(),
            "apply the ConfigMap: {}",
            stderr(&out)
        );
        for (r, b) in self.replicas.iter().zip(before) {
            if !r.running() {
                continue;
            }
            eventually(
                Duration::from_secs(15),
                &format!("{} to read the new config", r.name),
                || (Self::reloads(r) > b).then_some(()),
            );
        }
    }

    /// The shipped config with `extra` YAML appended (later keys win is not
    /// YAML: `extra` must only add top-level keys the shipped file lacks, or
    /// use `config_with`).
    pub fn config_with(&self, replace: &[(&str, &str)]) -> String {
        let mut text = self.shipped_config.clone();
        for (from, to) in replace {
            assert!(text.contains(from), "config.yaml has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        text
    }

    pub fn restore_config(&self) {
        let current = self
            .cluster
            .get(&["configmap", "-n", NAMESPACE, "netpol-guard"])
            .and_then(|cm| cm["data"]["config.yaml"].as_str().map(String::from));
        if current.as_deref() != Some(self.shipped_config.as_str()) {
            self.set_config(&self.shipped_config.clone());
        }
    }

    /// A new namespace, labelled managed (with a mode label if given), in
    /// which the developer has the `edit` role.
    pub fn namespace(&self, name: &str, managed: bool, mode: Option<&str>) {
        let mut labels = serde_json::Map::new();
        if managed {
            labels.insert("platform.io/managed".into(), "true".into());
        }
        if let Some(m) = mode {
            labels.insert("netpol-guard.io/mode".into(), m.into());
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}});
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "developer-edit", "namespace": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DEVELOPER}]});
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [ns, rb]}).to_string();
        let out = self
            .cluster
            .kubectl_stdin(&["apply", "-f", "-"], Some(&list));
        assert!(
            out.status.success(),
            "create namespace {name}: {}",
            stderr(&out)
        );
        // Pods are refused until the namespace's default ServiceAccount exists.
        eventually(
            Duration::from_secs(20),
            "the default ServiceAccount",
            || {
                self.cluster
                    .get(&["serviceaccount", "-n", name, "default"])
                    .map(|_| ())
            },
        );
    }

    /// The names of netpol-guard's policies in `ns`, waiting until they
    /// are exactly `want` (sorted).
    pub fn wait_baseline(&self, ns: &str, want: &[&str], timeout: Duration) {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        let mut seen = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            seen = self.cluster.names(&[
                "networkpolicies",
                "-n",
                ns,
                "-l",
                "app.kubernetes.io/managed-by=netpol-guard",
            ]);
            if seen == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("namespace {ns}: netpol-guard policies {seen:?}, want {want:?} within {timeout:?}");
    }

    /// Puts everything back after a failed journey: links resumed, replicas
    /// running, kube-controller-manager per-controller, the shipped config.
    pub fn heal(&self) {
        for (i, l) in self.links.iter().enumerate() {
            l.resume();
            self.balancer.enable(i);
        }
        for r in &self.replicas {
            r.sigcont();
            if !r.running() {
                r.start();
            }
        }
        if std::fs::read_to_string(self.cluster.dir.join("kcm.per-controller"))
            .is_ok_and(|s| s.trim() != "true")
        {
            self.cluster.restart_kcm(false);
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.restore_config()));
    }
}
