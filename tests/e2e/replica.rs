//! One `netpol-guard serve` replica: a process on a fixed loopback port,
//! authenticated as the netpol-guard ServiceAccount, logging JSON lines to
//! a file the journeys read.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::eventually;

pub struct Replica {
    /// Its identity (POD_NAME): the Lease holder when it leads.
    pub name: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    kubeconfig: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    client_ca: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Replica {
    pub fn new(
        name: &str,
        addr: SocketAddr,
        dir: &std::path::Path,
        kubeconfig: PathBuf,
        tls: (PathBuf, PathBuf, PathBuf),
        client_ca: PathBuf,
    ) -> Replica {
        Replica {
            name: name.to_string(),
            addr,
            log: dir.join(format!("logs/{name}.log")),
            kubeconfig,
            cert: tls.0,
            key: tls.1,
            ca: tls.2,
            client_ca,
            child: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the process (if not running) and waits until /readyz is 200.
    pub fn start(&self) {
        {
            let mut child = self.lock();
            if child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none())
            {
                return;
            }
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("open the replica log");
            let spawned = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
                .args(["--log-format", "json", "serve", "--addr"])
                .arg(self.addr.to_string())
                .arg("--tls-cert")
                .arg(&self.cert)
                .arg("--tls-key")
                .arg(&self.key)
                // Mutual TLS: only the API server's webhook client
                // certificate (tests/e2e/cluster.sh) gets admission answers.
                .arg("--client-ca")
                .arg(&self.client_ca)
                .env("KUBECONFIG", &self.kubeconfig)
                .env("POD_NAME", &self.name)
                .env("POD_NAMESPACE", "netpol-guard")
                .env("NETPOL_GUARD_LOG", "info")
                .env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("start netpol-guard serve");
            *child = Some(spawned);
        }
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        eventually(
            Duration::from_secs(30),
            &format!("{} /readyz 200", self.name),
            || self.get("/readyz").filter(|b| b == "ready").map(|_| ()),
        );
    }

    /// POST over TLS without a client certificate: (status, body).
    pub fn post_anonymous(&self, path: &str, body: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "3",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&self.ca)
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ])
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// GET over TLS, trusting the suite's CA; the body when 200.
    pub fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "3", "--cacert"])
            .arg(&self.ca)
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The value of one metric series (exact name with labels), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|rest| rest.strip_prefix(' '))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .next()
            .unwrap_or(0.0)
    }

    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.lock()
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// SIGTERM, then waits for the exit (the process drains within 5 s).
    pub fn terminate(&self) {
        self.signal("-TERM");
        let mut child = self.lock();
        if let Some(c) = child.as_mut() {
            for _ in 0..100 {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        *child = None;
    }

    pub fn sigstop(&self) {
        self.signal("-STOP");
    }

    pub fn sigcont(&self) {
        self.signal("-CONT");
    }

    /// Every JSON log line written so far.
    pub fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines whose `message` is `message`, after the first `skip` lines.
    pub fn logged(&self, skip: usize, message: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .skip(skip)
            .filter(|l| l["message"] == message)
            .collect()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.sigcont();
        if let Some(mut c) = self.lock().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
