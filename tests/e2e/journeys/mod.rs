//! The journeys, in the order they run.

mod admin;
mod developer;
mod faults;
mod leader;
mod reports;
mod takeover;

use std::time::Duration;

use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::{admission, engine};
use serde_json::Value;

use crate::Journey;
use crate::install::{DEVELOPER, Env};

pub fn all() -> Vec<Journey> {
    macro_rules! j {
        ($($m:ident::$f:ident),* $(,)?) => {
            vec![$(Journey { name: concat!(stringify!($m), "::", stringify!($f)), run: $m::$f }),*]
        };
    }
    j![
        developer::managed_namespace_gets_its_baseline,
        developer::uncovered_workloads_are_rejected_with_the_whole_message,
        developer::policy_and_deployment_in_one_apply_are_accepted,
        developer::controller_owned_pods_never_reach_the_webhook,
        developer::dangerous_policies_are_denied_and_warnings_are_printed,
        developer::host_network_workloads_are_rejected,
        developer::deleting_the_only_policy_of_workloads_names_them,
        developer::a_made_up_controller_owner_does_not_skip_the_pod,
        admin::a_configmap_edit_takes_effect,
        admin::a_bad_configmap_is_reported_and_the_last_good_config_stays,
        admin::audit_mode_by_label_creates_nothing_and_enforce_creates_both,
        admin::audit_mode_global,
        admin::unmanaging_removes_the_baseline,
        admin::a_users_delete_of_the_baseline_is_denied,
        admin::edited_baseline_is_restored,
        admin::extra_baseline_policies_are_generated_restored_and_rolled_out,
        admin::namespace_deletion_completes_with_per_controller_credentials,
        admin::namespace_deletion_completes_with_shared_credentials,
        admin::auto_manage_labels_a_new_namespace,
        admin::an_existing_uncovered_deployment_still_rolls_out,
        admin::every_event_is_visible_and_none_failed,
        takeover::a_name_squatted_while_unmanaged_is_taken_over,
        takeover::a_name_squatted_before_audit_is_taken_over_on_enforce,
        takeover::fields_added_to_the_baseline_are_reverted,
        takeover::the_label_alone_makes_nothing_a_baseline,
        takeover::a_kept_baseline_is_released,
        leader::one_lease_holder_and_only_it_writes,
        leader::sigterm_releases_the_lease,
        leader::sigstop_hands_over_and_the_stopped_one_writes_nothing,
        leader::hung_api_calls_end_leadership,
        reports::audit_against_the_real_server,
        reports::an_unlistable_kind_is_skipped_with_one_line,
        reports::check_on_exported_objects_matches_audit,
        reports::background_audit_writes_policy_reports,
        reports::a_cni_that_enforces_nothing_fails_the_audit,
        reports::connectivity_of_the_real_server,
        faults::apiserver_restart_loses_no_decision,
        faults::both_replicas_down_follows_failure_policy,
        faults::only_the_api_server_may_call,
    ]
}

/// What netpol-guard's engine says of creating `obj` now, judged offline
/// against the namespace and policies the API server holds: the exact
/// message the webhook must have returned.
pub fn offline_denial(env: &Env, obj: &Value) -> String {
    let ns = obj["metadata"]["namespace"].as_str().expect("a namespace");
    let mut view = ClusterView::new();
    let namespace = env.cluster.get(&["namespace", ns]).expect("the namespace");
    view.add(&namespace).expect("namespace into the view");
    let policies = env
        .cluster
        .get(&["networkpolicies", "-n", ns])
        .expect("policies");
    for p in policies["items"].as_array().expect("items") {
        view.add(p).expect("policy into the view");
    }
    let req = admission::create_request(obj, DEVELOPER).expect("a request");
    engine::decide(&req, &view, &Settings::default())
        .expect("a verdict")
        .denial_message()
        .expect("a denial")
}

/// Sleeps a little: for "nothing happens" assertions after an action that
/// would have shown within this time.
pub fn settle(d: Duration) {
    std::thread::sleep(d);
}
