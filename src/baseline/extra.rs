//! `baseline.extraPolicies`: the policies cluster admins add to the
//! baseline. When the config loads, each entry's spec is parsed strictly (an
//! unknown or misspelled key is an error, as everywhere in the config),
//! checked as the API server would check it, and judged by the same rule
//! catalog as a developer's NetworkPolicy: what the catalog would deny is a
//! config error, so the last good config stays in force. The spec is then
//! brought into the form the API server stores (its defaults filled in,
//! empty lists left out), so the generator can tell an unchanged policy
//! from drift with a plain comparison (`exactly_as_desired`).
//!
//! Pure, like the rest of `baseline`. `config::Settings::new` calls
//! [`compile_extra_policies`]: the one place where the config reaches up
//! into the rule catalog, because an extra policy's validity is the
//! catalog's verdict on it.

use std::collections::HashMap;

use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{NAME_PREFIX, NAMES};
use crate::cidr::Cidr;
use crate::config::{ConfigError, Settings};
use crate::rules::Action;
use crate::selector::Selector;

/// A `baseline.extraPolicies` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraBaseline {
    /// The policy's name in the cluster: `netpol-guard-<name>`.
    pub name: String,
    /// The entry's name as configured, for messages.
    pub configured: String,
    /// The spec as the API server stores it.
    pub spec: Value,
    /// What the rule catalog only warns about (logged when the config loads).
    pub warnings: Vec<String>,
}

/// Validates every `baseline.extraPolicies` entry of `settings.config`,
/// judged with `settings` itself (its rule actions, CIDR limits, allowed
/// and cluster CIDRs). The first problem is the error, naming the entry by
/// position and name.
pub fn compile_extra_policies(settings: &Settings) -> Result<Vec<ExtraBaseline>, ConfigError> {
    let mut out: Vec<ExtraBaseline> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, entry) in settings.config.baseline.extra_policies.iter().enumerate() {
        let fail = |problem: String| ConfigError::ExtraPolicy {
            index,
            name: entry.name.clone(),
            problem,
        };
        let name = full_name(&entry.name).map_err(fail)?;
        if NAMES.contains(&name.as_str()) {
            return Err(fail(format!(
                "{name} is a built-in baseline policy; give this one another name"
            )));
        }
        if let Some(first) = seen.insert(name.clone(), index) {
            return Err(fail(format!(
                "duplicate name: baseline.extraPolicies[{first}] is {name} too"
            )));
        }
        let spec = stored_form(&entry.spec).map_err(fail)?;
        // Judged as written (the catalog knows what Kubernetes' defaults do
        // to it, e.g. implicit-ingress-isolation), with the name it gets.
        let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name}, "spec": entry.spec});
        let mut warnings = Vec::new();
        for finding in crate::rules::netpol::check(&policy, settings) {
            match finding.effective(settings.action(finding.rule)) {
                Action::Deny => return Err(fail(finding.message)),
                Action::Warn => warnings.push(finding.message),
                Action::Off => {}
            }
        }
        out.push(ExtraBaseline {
            name,
            configured: entry.name.clone(),
            spec,
            warnings,
        });
    }
    Ok(out)
}

/// `netpol-guard-<name>`, if that is a name the API server accepts for a
/// NetworkPolicy (a DNS-1123 subdomain of at most 253 characters).
fn full_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.starts_with(NAME_PREFIX) {
        return Err(format!(
            "write the name without the {NAME_PREFIX} prefix (it is added: this would be {NAME_PREFIX}{name})"
        ));
    }
    let full = format!("{NAME_PREFIX}{name}");
    if full.len() > 253 {
        return Err(format!(
            "{NAME_PREFIX}{name} is longer than a NetworkPolicy name may be (253 characters)"
        ));
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || *c == b'-')
    };
    if !full.split('.').all(label_ok) {
        return Err(format!(
            "{full:?} is not a NetworkPolicy name: use lowercase letters, digits, '-' and '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(full)
}

/// The spec parsed strictly, validated, and in the form the API server
/// stores it.
fn stored_form(raw: &Value) -> Result<Value, String> {
    if !raw.is_object() {
        return Err("spec must be a NetworkPolicy spec (a map with podSelector, policyTypes, ingress, egress)".into());
    }
    let mut spec = NetworkPolicySpec::deserialize(raw).map_err(|e| format!("spec: {e}"))?;
    // k8s-openapi ignores keys it does not know: compare what it kept with
    // what was written.
    let kept = serde_json::to_value(&spec).map_err(|e| format!("spec: {e}"))?;
    if let Some(path) = unknown_key(raw, &kept, "spec") {
        let top = !path["spec.".len()..].contains(['.', '[']);
        return Err(if top {
            format!(
                "unknown field `{path}` (a NetworkPolicy spec has podSelector, policyTypes, ingress and egress)"
            )
        } else {
            format!(
                "unknown field `{path}` (see kubectl explain networkpolicy.{})",
                schema_path(&path)
            )
        });
    }
    validate(&spec)?;
    // The API server's defaults: an empty podSelector, TCP, and the
    // policyTypes Kubernetes infers (Ingress, plus Egress with egress rules).
    spec.pod_selector.get_or_insert_with(Default::default);
    let rules = spec
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten())
        .chain(
            spec.egress
                .iter_mut()
                .flatten()
                .flat_map(|r| r.ports.iter_mut().flatten()),
        );
    for port in rules {
        port.protocol.get_or_insert_with(|| "TCP".to_string());
    }
    if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push("Egress".to_string());
        }
        spec.policy_types = Some(types);
    }
    let mut value = serde_json::to_value(&spec).map_err(|e| format!("spec: {e}"))?;
    drop_empty(&mut value);
    Ok(value)
}

/// The first key of `raw` (not `null`) that the typed parse did not keep,
/// as a path like `spec.ingress[0].from[0].podSelectr`.
fn unknown_key(raw: &Value, kept: &Value, path: &str) -> Option<String> {
    match (raw, kept) {
        (Value::Object(r), Value::Object(k)) => r.iter().find_map(|(key, v)| {
            let here = format!("{path}.{key}");
            match k.get(key) {
                _ if v.is_null() => None,
                None => Some(here),
                Some(kv) => unknown_key(v, kv, &here),
            }
        }),
        (Value::Array(r), Value::Array(k)) => r
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (v, kv))| unknown_key(v, kv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// `spec.ingress[0].from[0].podSelectr` → `spec.ingress.from` (where to
/// look the valid keys up).
fn schema_path(path: &str) -> String {
    let mut parts: Vec<String> = path
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p).to_string())
        .collect();
    parts.pop();
    parts.join(".")
}

/// Empty lists and empty `matchLabels` go: Kubernetes omits them when it
/// stores an object, so a policy read back never has them.
fn drop_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, v| {
                !(v.as_array().is_some_and(Vec::is_empty)
                    || (k == "matchLabels" && v.as_object().is_some_and(|o| o.is_empty())))
            });
            m.values_mut().for_each(drop_empty);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// What the API server's validation of a NetworkPolicy spec would refuse.
fn validate(spec: &NetworkPolicySpec) -> Result<(), String> {
    selector("spec.podSelector", spec.pod_selector.as_ref())?;
    let types = spec.policy_types.as_deref().unwrap_or_default();
    if types.len() > 2 || types.iter().any(|t| t != "Ingress" && t != "Egress") {
        return Err(format!(
            "spec.policyTypes: {types:?}: use [Ingress], [Egress] or [Ingress, Egress]"
        ));
    }
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let at = format!("spec.ingress[{i}]");
        peers(&at, "from", rule.from.as_deref())?;
        ports(&at, rule.ports.as_deref())?;
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let at = format!("spec.egress[{i}]");
        peers(&at, "to", rule.to.as_deref())?;
        ports(&at, rule.ports.as_deref())?;
    }
    Ok(())
}

fn selector(
    at: &str,
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<(), String> {
    let Some(sel) = sel else { return Ok(()) };
    let value = serde_json::to_value(sel).map_err(|e| format!("{at}: {e}"))?;
    Selector::from_value(Some(&value))
        .map(|_| ())
        .map_err(|e| format!("{at}: {e}"))
}

fn peers(at: &str, key: &str, peers: Option<&[NetworkPolicyPeer]>) -> Result<(), String> {
    for (j, p) in peers.unwrap_or_default().iter().enumerate() {
        let at = format!("{at}.{key}[{j}]");
        let set = [
            p.pod_selector.is_some(),
            p.namespace_selector.is_some(),
            p.ip_block.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if set == 0 {
            return Err(format!(
                "{at}: a peer needs podSelector, namespaceSelector or ipBlock"
            ));
        }
        if set > 1 && p.ip_block.is_some() {
            return Err(format!(
                "{at}: ipBlock cannot be combined with podSelector or namespaceSelector"
            ));
        }
        selector(&format!("{at}.podSelector"), p.pod_selector.as_ref())?;
        selector(
            &format!("{at}.namespaceSelector"),
            p.namespace_selector.as_ref(),
        )?;
        if let Some(block) = &p.ip_block {
            let cidr: Cidr = block
                .cidr
                .parse()
                .map_err(|e| format!("{at}.ipBlock.cidr: {e}"))?;
            for e in block.except.iter().flatten() {
                let except: Cidr = e
                    .parse()
                    .map_err(|err| format!("{at}.ipBlock.except: {err}"))?;
                if !(cidr.contains(&except) && except.prefix() > cidr.prefix()) {
                    return Err(format!(
                        "{at}.ipBlock.except: {e} is not strictly inside {}",
                        block.cidr
                    ));
                }
            }
        }
    }
    Ok(())
}

fn ports(at: &str, ports: Option<&[NetworkPolicyPort]>) -> Result<(), String> {
    for (j, p) in ports.unwrap_or_default().iter().enumerate() {
        let at = format!("{at}.ports[{j}]");
        if let Some(proto) = &p.protocol
            && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
        {
            return Err(format!("{at}.protocol: {proto:?}: use TCP, UDP or SCTP"));
        }
        let number = match &p.port {
            None => None,
            Some(IntOrString::Int(n)) if (1..=65535).contains(n) => Some(*n),
            Some(IntOrString::Int(n)) => {
                return Err(format!("{at}.port: {n} is not a port (1-65535)"));
            }
            Some(IntOrString::String(name)) if is_port_name(name) => None,
            Some(IntOrString::String(name)) => {
                return Err(format!(
                    "{at}.port: {name:?} is neither a number nor a port name (at most 15 lowercase letters, digits and '-', with a letter)"
                ));
            }
        };
        if let Some(end) = p.end_port {
            match number {
                Some(start) if (start..=65535).contains(&end) => {}
                Some(start) => {
                    return Err(format!(
                        "{at}.endPort: {end} must be between port ({start}) and 65535"
                    ));
                }
                None => {
                    return Err(format!("{at}.endPort: needs a numeric port"));
                }
            }
        }
    }
    Ok(())
}

/// An IANA service name, as a container port's name.
fn is_port_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    (1..=15).contains(&b.len())
        && b.iter().all(ok)
        && b.iter().any(u8::is_ascii_lowercase)
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests;
