//! Which network plugin a cluster runs, and whether it enforces
//! NetworkPolicy (rule `cni-not-enforcing`).
//!
//! The API server stores NetworkPolicies; the network plugin enforces them,
//! or does not: flannel alone, kindnet before kind v0.24, the AWS VPC CNI
//! with its policy agent off and Azure CNI without a policy engine store
//! every policy and enforce none, and nobody is told. [`detect`] reads the
//! DaemonSets the audit read (their names, containers, images, args and env;
//! nothing else) and says one of three things:
//!
//! - [`State::Enforcing`]: a known enforcer runs (Calico, Cilium, Antrea,
//!   weave-net's policy controller, kube-router, azure-npm, the AWS policy
//!   agent enabled, a recent kindnet, kube-network-policies). When what
//!   decides lives elsewhere (Cilium's `enable-policy` in a ConfigMap), the
//!   verdict says "mode not verified" instead of guessing.
//! - [`State::NotEnforcing`]: only known non-enforcers run.
//! - [`State::Unknown`]: nothing known runs (k3s enforces inside its server
//!   binary, where no DaemonSet shows it), or a known plugin whose DaemonSet
//!   does not tell. Never an alarm.
//!
//! Pure: DaemonSet objects in, a [`Verdict`] out. docs/rules.md has the
//! detection table.

use serde::Serialize;
use serde_json::Value;

use crate::rules::{Finding, MAX_WARNING_CHARS, RuleId};

/// Whether the cluster enforces NetworkPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Enforcing,
    NotEnforcing,
    Unknown,
}

impl State {
    /// `enforcing`, `not-enforcing`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Enforcing => "enforcing",
            State::NotEnforcing => "not-enforcing",
            State::Unknown => "unknown",
        }
    }
}

/// What one plugin does about NetworkPolicy, as its DaemonSet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforces {
    Yes,
    No,
    /// Its DaemonSet does not tell (a kindnet image tag of no known
    /// release, an argument that is no boolean).
    Unknown,
}

/// One network plugin found in one DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugin {
    /// As the detection table names it: `calico-node`, `cilium`, `canal`,
    /// `flannel`, `aws-node`, `azure-cni`, `kindnet`, ...
    pub name: &'static str,
    pub namespace: String,
    pub daemon_set: String,
    #[serde(skip)]
    pub uid: Option<String>,
    /// The image tag of the container it was recognised by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub enforces: Enforces,
    /// Why (`--enable-network-policy=false`), or what was not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// It enforces, but a setting outside its DaemonSet could turn that
    /// off: why its mode is not verified.
    #[serde(skip)]
    unverified: Option<&'static str>,
    /// The fix for a plugin that does not enforce: short (for the message)
    /// and long (for the detail).
    #[serde(skip)]
    fix: Option<(&'static str, &'static str)>,
}

impl Plugin {
    /// `calico-node v3.28.0 (kube-system/calico-node)`.
    pub fn display(&self) -> String {
        match &self.version {
            Some(v) => format!("{} {v} ({}/{})", self.name, self.namespace, self.daemon_set),
            None => format!("{} ({}/{})", self.name, self.namespace, self.daemon_set),
        }
    }
}

/// What the audit says about the network plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub state: State,
    /// Every plugin found, by namespace and DaemonSet.
    pub plugins: Vec<Plugin>,
    /// Enforcing, but only as far as the DaemonSets show: why the mode could
    /// not be verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_not_verified: Option<String>,
    /// One line for people (the audit's `network plugin:` line).
    pub summary: String,
}

/// Said when no known plugin runs.
pub const NOTHING_FOUND: &str = "no known network plugin DaemonSet found (k3s and some managed clusters enforce from outside any DaemonSet)";

/// Why Cilium's mode is not verified, unless its agent's args say it.
const CILIUM_MODE: &str = "Cilium's policy enforcement mode (enable-policy; Helm: policyEnforcementMode) is set in the cilium-config ConfigMap, which netpol-guard does not read";

/// The verdict on `objects` (every object that is no `apps/v1` DaemonSet is
/// ignored), whatever their namespace: operators install plugins into
/// namespaces of their own choosing (kube-system, calico-system, cilium,
/// kube-flannel, ...), and an enforcer overlooked would make flannel look
/// alone.
pub fn detect<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Verdict {
    let mut plugins: Vec<Plugin> = objects
        .into_iter()
        .filter(|o| is_daemonset(o))
        .flat_map(plugins_of)
        .collect();
    plugins.sort_by(|a, b| {
        (&a.namespace, &a.daemon_set, a.name).cmp(&(&b.namespace, &b.daemon_set, b.name))
    });
    verdict(plugins)
}

/// `slim` (what `workload::slim` keeps of a DaemonSet) with what detection
/// also reads: each container's `image`, `command`, `args` and `env`. For
/// the audit's inventory, which keeps workloads cut down.
pub fn keep_for_detection(obj: &Value, mut slim: Value) -> Value {
    const CONTAINERS: &str = "/spec/template/spec/containers";
    let Some(full) = obj.pointer(CONTAINERS).and_then(Value::as_array) else {
        return slim;
    };
    if let Some(cut) = slim.pointer_mut(CONTAINERS).and_then(Value::as_array_mut) {
        for (cut, full) in cut.iter_mut().zip(full) {
            for key in ["image", "command", "args", "env"] {
                if let (Some(v), Some(map)) = (full.get(key), cut.as_object_mut()) {
                    map.insert(key.to_string(), v.clone());
                }
            }
        }
    }
    slim
}

fn is_daemonset(obj: &Value) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some("apps/v1")
        && obj.get("kind").and_then(Value::as_str) == Some("DaemonSet")
}

/// One container as detection reads it.
struct Container<'a> {
    name: &'a str,
    /// The image without tag or digest: `docker.io/calico/node`.
    repo: &'a str,
    tag: Option<&'a str>,
    /// `command` then `args`.
    argv: Vec<&'a str>,
    env: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Container<'a> {
    fn of(c: &'a Value) -> Self {
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let image = text("image");
        let image = image.split('@').next().unwrap_or(image);
        let (repo, tag) = match image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (image, None),
        };
        let strings = |k: &str| -> Vec<&'a str> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let mut argv = strings("command");
        argv.extend(strings("args"));
        let env = c
            .get("env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        let name = e.get("name").and_then(Value::as_str)?;
                        Some((name, e.get("value").and_then(Value::as_str)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: text("name"),
            repo,
            tag: tag.filter(|t| !t.is_empty()),
            argv,
            env,
        }
    }

    /// The last path segment of the image: `node` for `docker.io/calico/node`.
    fn image(&self) -> &'a str {
        self.repo.rsplit('/').next().unwrap_or(self.repo)
    }

    /// The image's path ends with `suffix` (`calico/node`), at a segment
    /// boundary.
    fn image_path_ends(&self, suffix: &str) -> bool {
        self.repo == suffix
            || self
                .repo
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('/'))
    }

    /// The value of the last `--name=value` (or `-name=value`, or `--name
    /// value` when `takes_value`) in `command` and `args`; a bare `--name`
    /// of a boolean flag is `true`. A `$(VAR)` is resolved from the
    /// container's literal `env`, as the kubelet does; `None` when the flag
    /// is absent.
    fn flag(&self, name: &str, takes_value: bool) -> Option<FlagValue<'a>> {
        let mut found = None;
        let mut it = self.argv.iter().peekable();
        while let Some(arg) = it.next() {
            let Some(rest) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .and_then(|a| a.strip_prefix(name))
            else {
                continue;
            };
            if let Some(value) = rest.strip_prefix('=') {
                found = Some(self.resolve(value));
            } else if rest.is_empty() {
                found = Some(if takes_value {
                    match it.next() {
                        Some(v) => self.resolve(v),
                        None => FlagValue::Unreadable(""),
                    }
                } else {
                    FlagValue::Text("true")
                });
            }
        }
        found
    }

    fn resolve(&self, value: &'a str) -> FlagValue<'a> {
        match value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
            Some(var) => match self.env.iter().rev().find(|(n, _)| *n == var) {
                Some((_, Some(v))) => FlagValue::Text(v),
                _ => FlagValue::Unreadable(value),
            },
            None => FlagValue::Text(value),
        }
    }

    /// A boolean flag as Go's flag packages parse it: `Some(Ok(b))`, or
    /// `Some(Err(text))` for a value that is no boolean.
    fn bool_flag(&self, name: &str) -> Option<Result<bool, String>> {
        Some(match self.flag(name, false)? {
            FlagValue::Text(v) => match v {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                other => Err(format!("--{name}={other}")),
            },
            FlagValue::Unreadable(v) => Err(format!("--{name}={v}")),
        })
    }
}

enum FlagValue<'a> {
    Text(&'a str),
    /// A `$(VAR)` whose value is not written in the container's env.
    Unreadable(&'a str),
}

/// What a recognised container says, before it becomes a [`Plugin`].
struct Found {
    name: &'static str,
    version: Option<String>,
    enforces: Enforces,
    note: Option<String>,
    unverified: Option<&'static str>,
    fix: Option<(&'static str, &'static str)>,
}

impl Found {
    fn new(name: &'static str, c: &Container<'_>, enforces: Enforces) -> Self {
        Self {
            name,
            version: c.tag.map(String::from),
            enforces,
            note: None,
            unverified: None,
            fix: None,
        }
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    fn fix(mut self, short: &'static str, long: &'static str) -> Self {
        self.fix = Some((short, long));
        self
    }
}

/// The plugins of one DaemonSet.
fn plugins_of(ds: &Value) -> Vec<Plugin> {
    let text = |p: &str| ds.pointer(p).and_then(Value::as_str).unwrap_or("");
    let ds_name = text("/metadata/name");
    let containers: Vec<Container<'_>> = ds
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Container::of).collect())
        .unwrap_or_default();
    let mut found = Vec::new();
    let calico = containers.iter().find(|c| is_calico_node(c));
    let flannel = containers.iter().find(|c| is_flannel(c));
    match (calico, flannel) {
        // Canal: Calico enforces policy over flannel's network.
        (Some(c), Some(_)) => found.push(Found::new("canal", c, Enforces::Yes)),
        (Some(c), None) => found.push(Found::new("calico-node", c, Enforces::Yes)),
        (None, Some(f)) => found.push(
            Found::new("flannel", f, Enforces::No)
                .note("no policy engine")
                .fix(
                    "Run Calico for policy beside it (canal) or switch to a CNI that enforces",
                    "run a policy engine beside flannel (Calico for policy over flannel's network, i.e. canal; kube-router with only its firewall on; kube-network-policies), or move to a CNI that enforces (Calico, Cilium, Antrea).",
                ),
        ),
        (None, None) => {}
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "cilium-agent" || c.image() == "cilium")
    {
        found.push(cilium(c));
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "antrea-agent" || c.image().starts_with("antrea-agent"))
    {
        found.push(Found::new("antrea-agent", c, Enforces::Yes));
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "weave" || c.image() == "weave-kube")
    {
        let npc = containers
            .iter()
            .any(|c| c.name == "weave-npc" || c.image() == "weave-npc");
        found.push(if npc {
            Found::new("weave-net", c, Enforces::Yes)
        } else {
            Found::new("weave-net", c, Enforces::No)
                .note("no weave-npc container, weave-net's policy controller")
                .fix(
                    "Add the weave-npc container back",
                    "add the weave-npc container (weave-net's NetworkPolicy controller) back to the DaemonSet, as weave-net's standard manifest has it.",
                )
        });
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "kube-router" || c.image() == "kube-router")
    {
        found.push(kube_router(c));
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "kube-network-policies" || c.image() == "kube-network-policies")
    {
        found.push(Found::new("kube-network-policies", c, Enforces::Yes));
    }
    // By a container first (its tag is the version), else by the
    // DaemonSet's name.
    let by_name = |names: &[&str]| {
        names
            .iter()
            .any(|n| ds_name == *n || ds_name.starts_with(&format!("{n}-")))
            .then(|| containers.first())
            .flatten()
    };
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "azure-npm" || c.image() == "azure-npm")
        .or_else(|| by_name(&["azure-npm"]))
    {
        found.push(Found::new("azure-npm", c, Enforces::Yes));
    }
    if let Some(c) = containers
        .iter()
        .find(|c| is_azure_cni(c))
        .or_else(|| by_name(&["azure-cns", "azure-cni"]))
    {
        found.push(
            Found::new("azure-cni", c, Enforces::No)
                .note("no azure-npm, Calico or Cilium")
                .fix(
                    "Turn on a policy engine: az aks update --network-policy azure, calico or cilium",
                    "turn on a network policy engine for the cluster: `--network-policy azure` (azure-npm), `calico` or `cilium` (az aks create/update), or run Calico or Cilium yourself.",
                ),
        );
    }
    let aws = containers.iter().find(|c| is_aws_node(c));
    let agent = containers.iter().find(|c| is_aws_agent(c));
    if let Some(c) = aws.or(agent) {
        found.push(aws_node(c, agent));
    }
    if let Some(c) = containers
        .iter()
        .find(|c| c.name == "kindnet-cni" || matches!(c.image(), "kindnetd" | "kindnet"))
    {
        found.push(kindnet(c));
    }
    found
        .into_iter()
        .map(|f| Plugin {
            name: f.name,
            namespace: text("/metadata/namespace").to_string(),
            daemon_set: ds_name.to_string(),
            uid: ds
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(String::from),
            version: f.version,
            enforces: f.enforces,
            note: f.note,
            unverified: f.unverified,
            fix: f.fix,
        })
        .collect()
}

fn is_calico_node(c: &Container<'_>) -> bool {
    c.name == "calico-node" || c.image_path_ends("calico/node") || c.image() == "cnx-node"
}

fn is_flannel(c: &Container<'_>) -> bool {
    let image = c.image();
    c.name == "kube-flannel" || image == "flannel" || image.ends_with("-flannel")
}

fn is_azure_cni(c: &Container<'_>) -> bool {
    matches!(c.image(), "azure-cns" | "azure-cni")
        || c.image_path_ends("containernetworking/networkmonitor")
}

fn is_aws_node(c: &Container<'_>) -> bool {
    c.name == "aws-node" || c.image() == "amazon-k8s-cni"
}

fn is_aws_agent(c: &Container<'_>) -> bool {
    matches!(c.name, "aws-eks-nodeagent" | "aws-network-policy-agent")
        || c.image() == "aws-network-policy-agent"
}

fn cilium(c: &Container<'_>) -> Found {
    let mode = c.flag("enable-policy", true).or_else(|| {
        c.env
            .iter()
            .rev()
            .find(|(n, _)| *n == "CILIUM_ENABLE_POLICY")
            .map(|(_, v)| v.map_or(FlagValue::Unreadable(""), FlagValue::Text))
    });
    match mode {
        Some(FlagValue::Text("never")) => Found::new("cilium", c, Enforces::No)
            .note("--enable-policy=never")
            .fix(
                "Remove --enable-policy=never (Helm: policyEnforcementMode: default)",
                "remove `--enable-policy=never` from the cilium-agent container (Helm: `policyEnforcementMode: default`).",
            ),
        Some(FlagValue::Text(m @ ("default" | "always"))) => {
            Found::new("cilium", c, Enforces::Yes).note(format!("--enable-policy={m}"))
        }
        _ => Found {
            unverified: Some(CILIUM_MODE),
            ..Found::new("cilium", c, Enforces::Yes)
                .note(format!("mode not verified: {CILIUM_MODE}"))
        },
    }
}

fn kube_router(c: &Container<'_>) -> Found {
    match c.bool_flag("run-firewall") {
        Some(Ok(false)) => Found::new("kube-router", c, Enforces::No)
            .note("--run-firewall=false: kube-router's NetworkPolicy controller is off")
            .fix(
                "Remove --run-firewall=false from kube-router",
                "remove `--run-firewall=false` from the kube-router container: its NetworkPolicy controller is on by default.",
            ),
        Some(Err(bad)) => Found::new("kube-router", c, Enforces::Unknown)
            .note(format!("{bad} is no boolean")),
        _ => Found::new("kube-router", c, Enforces::Yes),
    }
}

fn aws_node(c: &Container<'_>, agent: Option<&Container<'_>>) -> Found {
    const FIX: (&str, &str) = (
        "Set enableNetworkPolicy: \"true\" in the vpc-cni add-on",
        "turn the VPC CNI's network policy agent on. As an EKS add-on:\n\n```yaml\n# aws eks update-addon --addon-name vpc-cni --configuration-values\nenableNetworkPolicy: \"true\"\n```\n\nor, in the aws-node DaemonSet, container aws-eks-nodeagent: `--enable-network-policy=true`. Or run Calico for policy beside the VPC CNI.",
    );
    let Some(agent) = agent else {
        return Found::new("aws-node", c, Enforces::No)
            .note("no network policy agent container (VPC CNI before 1.14)")
            .fix(
                "Upgrade the VPC CNI to 1.14+ with enableNetworkPolicy, or add Calico",
                "upgrade the VPC CNI to 1.14 or later (its aws-node DaemonSet then runs the aws-eks-nodeagent container) and set `enableNetworkPolicy: \"true\"` in the add-on's configuration, or run Calico for policy beside it.",
            );
    };
    let mut found = match agent.bool_flag("enable-network-policy") {
        Some(Ok(true)) => Found::new("aws-node", c, Enforces::Yes)
            .note(format!("{}: --enable-network-policy=true", agent.name)),
        Some(Ok(false)) => Found::new("aws-node", c, Enforces::No)
            .note(format!("{}: --enable-network-policy=false", agent.name))
            .fix(FIX.0, FIX.1),
        None => Found::new("aws-node", c, Enforces::No)
            .note(format!(
                "{}: no --enable-network-policy (off by default)",
                agent.name
            ))
            .fix(FIX.0, FIX.1),
        Some(Err(bad)) => Found::new("aws-node", c, Enforces::Unknown)
            .note(format!("{}: {bad} is no boolean", agent.name)),
    };
    // The CNI's version, not the agent's, when both are there.
    if c.tag.is_none() {
        found.version = agent.tag.map(String::from);
    }
    found
}

/// kind's kindnetd (`kindest/kindnetd:vYYYYMMDD-hash`) enforces since kind
/// v0.24 (`v20240813-c6f155d6`); kind v0.23 shipped `v20240513-cd2ac642`,
/// without. The standalone kindnet (`v1.x.y`) enforces since v1.3.0. Either
/// turns it off with `--network-policy=false`.
fn kindnet(c: &Container<'_>) -> Found {
    const OLD_FIX: (&str, &str) = (
        "Upgrade kind to v0.24+ or install a policy engine (Calico)",
        "upgrade to kind v0.24 or later (its kindnetd enforces NetworkPolicy), or create the cluster with `networking.disableDefaultCNI: true` and install a CNI that enforces (Calico, Cilium).",
    );
    let by_tag = c.tag.map_or(TagAge::Unreadable, kindnet_tag);
    match (by_tag, c.bool_flag("network-policy")) {
        (TagAge::Old(release), _) => Found::new("kindnet", c, Enforces::No)
            .note(format!(
                "kindnetd before {release} has no NetworkPolicy controller"
            ))
            .fix(OLD_FIX.0, OLD_FIX.1),
        (_, Some(Ok(false))) => Found::new("kindnet", c, Enforces::No)
            .note("--network-policy=false")
            .fix(
                "Remove --network-policy=false from kindnet",
                "remove `--network-policy=false` from the kindnet container: its NetworkPolicy controller is on by default.",
            ),
        (_, Some(Err(bad))) => {
            Found::new("kindnet", c, Enforces::Unknown).note(format!("{bad} is no boolean"))
        }
        (TagAge::New, _) => Found::new("kindnet", c, Enforces::Yes),
        (TagAge::Unreadable, _) => Found::new("kindnet", c, Enforces::Unknown).note(
            "its image tag is no known kindnetd release (kind v0.24 and kindnet v1.3.0 added NetworkPolicy)",
        ),
    }
}

enum TagAge {
    /// Before the release named.
    Old(&'static str),
    New,
    Unreadable,
}

fn kindnet_tag(tag: &str) -> TagAge {
    let rest = tag.strip_prefix('v').unwrap_or(tag);
    // kind's builds: v20240813-c6f155d6.
    let date = rest.split('-').next().unwrap_or("");
    if date.len() == 8
        && let Ok(date) = date.parse::<u32>()
    {
        return if date >= 20240813 {
            TagAge::New
        } else if date <= 20240513 {
            TagAge::Old("kind v0.24")
        } else {
            // Development builds between kind v0.23 and v0.24.
            TagAge::Unreadable
        };
    }
    // The standalone kindnet: v1.3.0.
    let mut parts = rest.split(['.', '-', '+']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= (1, 3) => TagAge::New,
        (Some(_), Some(_)) => TagAge::Old("kindnet v1.3.0"),
        _ => TagAge::Unreadable,
    }
}

fn verdict(plugins: Vec<Plugin>) -> Verdict {
    let of = |e: Enforces| plugins.iter().filter(move |p| p.enforces == e);
    let list = |ps: &[Plugin]| -> String {
        ps.iter()
            .map(Plugin::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = list(&plugins);
    let enforcers: Vec<&Plugin> = of(Enforces::Yes).collect();
    let (state, mode_not_verified, summary) = if !enforcers.is_empty() {
        let mode = enforcers
            .iter()
            .map(|p| p.unverified)
            .collect::<Option<Vec<_>>>()
            .and_then(|why| why.first().map(|w| w.to_string()));
        let mut summary = if plugins.len() == 1 {
            format!("{all} enforces NetworkPolicy")
        } else {
            let names: Vec<&str> = enforcers.iter().map(|p| p.name).collect();
            format!("{all}: {} enforces NetworkPolicy", names.join(" and "))
        };
        if let Some(why) = &mode {
            summary.push_str(&format!(" (mode not verified: {why})"));
        }
        (State::Enforcing, mode, summary)
    } else if let Some(p) = of(Enforces::Unknown).next() {
        let why = p.note.as_deref().unwrap_or("");
        (
            State::Unknown,
            None,
            format!(
                "{all}: cannot tell whether NetworkPolicy is enforced ({}: {why})",
                p.name
            ),
        )
    } else if let Some(p) = of(Enforces::No).next() {
        let why = p.note.as_deref().unwrap_or("");
        (
            State::NotEnforcing,
            None,
            format!("{all}: nothing enforces NetworkPolicy ({}: {why})", p.name),
        )
    } else {
        (State::Unknown, None, NOTHING_FOUND.to_string())
    };
    Verdict {
        state,
        plugins,
        mode_not_verified,
        summary,
    }
}

impl Verdict {
    /// The plugin a `cni-not-enforcing` finding is about: the first that
    /// does not enforce, when nothing does.
    pub fn culprit(&self) -> Option<&Plugin> {
        if self.state != State::NotEnforcing {
            return None;
        }
        self.plugins.iter().find(|p| p.enforces == Enforces::No)
    }

    /// The plugins that enforce (for reports' `pass` results).
    pub fn enforcers(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter().filter(|p| p.enforces == Enforces::Yes)
    }

    /// The `cni-not-enforcing` finding, when nothing enforces.
    pub fn finding(&self) -> Option<Finding> {
        let p = self.culprit()?;
        let why = p.note.as_deref().unwrap_or("it enforces no NetworkPolicy");
        let (short, long) = p.fix.unwrap_or((
            "Install a policy engine or switch to a CNI that enforces",
            "install a NetworkPolicy engine, or switch to a CNI that enforces (Calico, Cilium, Antrea).",
        ));
        let others = self
            .plugins
            .iter()
            .filter(|o| o.enforces == Enforces::No && !std::ptr::eq(*o, p))
            .count();
        let also = match others {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        let message = crate::text::one_line(
            &format!(
                "{}: {}{also}: {why}; NetworkPolicies are stored, none is enforced. {short}.",
                RuleId::CniNotEnforcing,
                p.display()
            ),
            MAX_WARNING_CHARS,
        );
        let detail = format!(
            "A NetworkPolicy is an API object; the network plugin enforces it, or does not. DaemonSet {}/{} runs {} ({why}), and no DaemonSet runs a known policy engine beside it. Every NetworkPolicy of the cluster, netpol-guard's baseline default-deny included, is stored and does nothing: pods reach each other as if there were none, and coverage by policy is coverage on paper.\n\nFix: {long}\n\nnetpol-guard judged this from the DaemonSets' names, containers, images, args and env alone (docs/rules.md#cni-not-enforcing has the table). If something it does not know enforces NetworkPolicy here, set the rule to off:\n\n```yaml\nrules:\n  cni-not-enforcing: off\n```",
            p.namespace,
            p.daemon_set,
            describe(p.name),
        );
        Some(Finding::new(RuleId::CniNotEnforcing, message).with_detail(detail))
    }
}

/// What a plugin is, for the detail.
fn describe(name: &str) -> &'static str {
    match name {
        "flannel" => "flannel, which routes pod traffic and enforces no NetworkPolicy",
        "aws-node" => {
            "the AWS VPC CNI, which enforces NetworkPolicy only through its network policy agent"
        }
        "azure-cni" => {
            "Azure CNI, which enforces NetworkPolicy only with azure-npm, Calico or Cilium"
        }
        "kindnet" => "kindnet, kind's network plugin",
        "kube-router" => "kube-router",
        "cilium" => "Cilium",
        "weave-net" => {
            "weave-net, which enforces NetworkPolicy only through its weave-npc container"
        }
        _ => "a network plugin",
    }
}

#[cfg(test)]
mod tests;
