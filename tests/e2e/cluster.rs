//! The control plane (through tests/e2e/cluster.sh) and kubectl.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Kubernetes version the suite runs against (build-control-plane.sh
/// builds it; K8S_VERSION overrides both).
pub const K8S_VERSION: &str = "v1.37.2";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(name)
}

/// A running control plane; stopped on drop.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub version: String,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager in a new
    /// directory under target/e2e.
    pub fn up() -> ControlPlane {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/e2e")
            .join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the e2e directory");
        let mut cp = ControlPlane {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
            version: String::new(),
        };
        cp.script(&["up"]);
        let version = cp.kubectl_ok(&["version", "-o", "json"]);
        let version: Value = serde_json::from_str(&version).unwrap_or_default();
        cp.version = version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        cp
    }

    /// Runs `cluster.sh CMD DIR ARGS...`, panicking with its output on failure.
    pub fn script(&self, args: &[&str]) {
        let mut cmd = Command::new(script("cluster.sh"));
        cmd.arg(args[0]).arg(&self.dir).args(&args[1..]);
        let out = cmd.output().expect("run tests/e2e/cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn restart_apiserver(&self) {
        self.script(&["restart-apiserver"]);
    }

    /// Restarts kube-controller-manager, with per-controller service
    /// accounts (`shared == false`) or acting as one shared user.
    pub fn restart_kcm(&self, shared: bool) {
        if shared {
            self.script(&["restart-kcm", "--shared-credentials"]);
        } else {
            self.script(&["restart-kcm"]);
        }
    }

    pub fn apiserver_port(&self) -> u16 {
        std::fs::read_to_string(self.dir.join("apiserver.port"))
            .expect("apiserver.port")
            .trim()
            .parse()
            .expect("a port")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// kubectl as cluster-admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write to kubectl");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get ... -o json`, or `None` when it does not exist.
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&full);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("NotFound"), "kubectl {full:?}: {err}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("kubectl JSON"))
    }

    /// The names of `kubectl get KIND -n NS` items (a label selector may follow).
    pub fn names(&self, args: &[&str]) -> Vec<String> {
        let list = self.get(args).unwrap_or_default();
        let mut names: Vec<String> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(script("cluster.sh"))
            .arg("down")
            .arg(&self.dir)
            .output();
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what`
/// after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stderr of a kubectl run, as a user sees it.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
