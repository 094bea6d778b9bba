//! Rules for cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
//! (placeholder, being written).

use serde_json::Value;

use crate::config::Settings;
use crate::rules::Finding;

/// Findings on one CNP (`clusterwide == false`) or CCNP object.
pub fn check(_policy: &Value, _clusterwide: bool, _settings: &Settings) -> Vec<Finding> {
    vec![]
}
