//! A fake Kubernetes API server for integration tests: a **test double**, not
//! a Kubernetes implementation.
//!
//! It speaks enough of the real REST + watch protocol (JSON only, plain HTTP on
//! `127.0.0.1`) for the real `kube::Client`, `kube::runtime::watcher` and
//! reflectors to work against it. Objects are stored as untyped JSON, keyed by
//! resource and `(namespace, name)`; every write bumps one global
//! resourceVersion counter and is appended to an event history that watches
//! replay from.
//!
//! Supported: discovery (`/version`, `/api`, `/apis`, per group-version
//! resource lists, aggregated discovery v2), list (label and field selectors,
//! `limit`/`continue` pages),
//! watch (replay from a resourceVersion, bookmarks, `sendInitialEvents`, 410
//! after [`FakeApiServer::compact`]), get, create (incl. `generateName`,
//! `dryRun=All`), update (optimistic concurrency), patch (apply, merge,
//! strategic-as-merge, JSON patch), delete (with preconditions), the `status`
//! subresource for get/put/patch. Cilium and PolicyReport resources exist only
//! while their "CRDs" are toggled on.
//!
//! Not supported (on purpose): authentication/authorization, admission,
//! validation beyond names, consistent pagination (`limit`/`continue` page
//! through the current objects; a write between pages shifts them),
//! `deletecollection`, finalizers/graceful
//! deletion (deletes are immediate), garbage collection, managedFields
//! tracking (server-side apply is a simplified merge, see
//! [`FakeApiServer`]), namespace existence checks, protobuf and compression.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Longest a watch stays open (also the default when `timeoutSeconds` is absent).
pub const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK event.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// Read timeout of the clients made by [`FakeApiServer::client`].
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);

const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

// ---------------------------------------------------------------------------
// Resource table
// ---------------------------------------------------------------------------

/// Which "CRD" toggle a resource depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Always,
    Cilium,
    PolicyReports,
}

#[derive(Debug)]
struct ResourceDef {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    gate: Gate,
}

impl ResourceDef {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `networkpolicies.networking.k8s.io`, or just `pods` for the core group.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    gate: Gate,
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        plural,
        kind,
        namespaced,
        gate,
    }
}

/// Every resource the fake serves. Add a line here to support another one.
#[rustfmt::skip]
static RESOURCES: &[ResourceDef] = &[
    // group, version, plural, kind, namespaced, gate
    res("", "v1", "namespaces", "Namespace", false, Gate::Always),
    res("", "v1", "configmaps", "ConfigMap", true, Gate::Always),
    res("", "v1", "events", "Event", true, Gate::Always),
    res("", "v1", "pods", "Pod", true, Gate::Always),
    res("", "v1", "services", "Service", true, Gate::Always),
    res("", "v1", "replicationcontrollers", "ReplicationController", true, Gate::Always),
    res("events.k8s.io", "v1", "events", "Event", true, Gate::Always),
    res("apps", "v1", "deployments", "Deployment", true, Gate::Always),
    res("apps", "v1", "statefulsets", "StatefulSet", true, Gate::Always),
    res("apps", "v1", "daemonsets", "DaemonSet", true, Gate::Always),
    res("apps", "v1", "replicasets", "ReplicaSet", true, Gate::Always),
    res("batch", "v1", "jobs", "Job", true, Gate::Always),
    res("batch", "v1", "cronjobs", "CronJob", true, Gate::Always),
    res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, Gate::Always),
    res("coordination.k8s.io", "v1", "leases", "Lease", true, Gate::Always),
    res("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy", true, Gate::Cilium),
    res("cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", false, Gate::Cilium),
    res("wgpolicyk8s.io", "v1alpha2", "policyreports", "PolicyReport", true, Gate::PolicyReports),
    res("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports", "ClusterPolicyReport", false, Gate::PolicyReports),
];

const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

fn find_resource(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

fn find_kind(api_version: &str, kind: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.api_version() == api_version && r.kind == kind)
}

fn kind_index(api_version: &str, kind: &str) -> usize {
    find_kind(api_version, kind).unwrap_or_else(|| {
        panic!("fake apiserver does not know {api_version} {kind}; add it to RESOURCES")
    })
}

// ---------------------------------------------------------------------------
// Public test-facing types
// ---------------------------------------------------------------------------

/// One request the fake received, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string (still URL-encoded), empty when there was none.
    pub query: String,
    pub content_type: Option<String>,
    /// The `fieldManager` query parameter (decoded).
    pub field_manager: Option<String>,
}

impl RecordedRequest {
    /// True for `watch=true` / `watch=1` requests.
    pub fn is_watch(&self) -> bool {
        parse_query(&self.query)
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }
}

/// Picks requests for fault injection: all set conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct RequestMatcher {
    /// HTTP method (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// Substring of the path; empty matches any.
    pub path_contains: String,
    /// `Some(true)`: only watches; `Some(false)`: only non-watch requests.
    pub watch: Option<bool>,
}

impl RequestMatcher {
    /// Any method, path containing `path_contains`.
    pub fn path(path_contains: &str) -> Self {
        Self {
            path_contains: path_contains.to_string(),
            ..Self::default()
        }
    }

    /// `method` (e.g. "GET") and a path containing `path_contains`.
    pub fn method_path(method: &str, path_contains: &str) -> Self {
        Self {
            method: Some(method.to_string()),
            path_contains: path_contains.to_string(),
            watch: None,
        }
    }

    /// Restrict to watch (`true`) or non-watch (`false`) requests.
    pub fn watch(mut self, is_watch: bool) -> Self {
        self.watch = Some(is_watch);
        self
    }

    fn matches(&self, method: &str, path: &str, is_watch: bool) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
            && self.watch.is_none_or(|w| w == is_watch)
    }
}

// ---------------------------------------------------------------------------
// Errors: metav1.Status bodies
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// The error for a status code injected with [`FakeApiServer::fail_requests`].
    fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(
            code,
            reason,
            format!("injected failure ({code} {reason}) from the fake apiserver"),
        )
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 404 for a path the server does not serve at all (e.g. CRD not installed).
    fn unknown_path() -> Self {
        Self {
            details: json!({}),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    fn method_not_allowed() -> Self {
        Self {
            details: json!({}),
            ..Self::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }

    fn with_details(mut self, def: &ResourceDef, name: &str) -> Self {
        self.details = json!({"name": name, "group": def.group, "kind": def.plural});
        self
    }

    fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", def.qualified()),
        )
        .with_details(def, name)
    }

    fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(def, name)
    }

    fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .with_details(def, name)
    }

    fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.code, &self.status_json());
        if self.code == 429 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as kept in the history and sent to open watches.
#[derive(Clone, Debug)]
struct StoredEvent {
    res: usize,
    kind: EventType,
    object: Value,
    /// The previous object for MODIFIED (to compute selector transitions).
    old: Option<Value>,
    rv: u64,
}

struct Watcher {
    res: usize,
    tx: mpsc::UnboundedSender<StoredEvent>,
}

struct Fault {
    matcher: RequestMatcher,
    code: u16,
    remaining: usize,
}

struct Delay {
    matcher: RequestMatcher,
    delay: Duration,
    remaining: usize,
}

#[derive(Default)]
struct Store {
    rv: u64,
    uid_counter: u64,
    objects: HashMap<usize, BTreeMap<(String, String), Value>>,
    history: Vec<StoredEvent>,
    /// Watches from a resourceVersion below this get 410 Expired.
    history_start: u64,
    watchers: Vec<Watcher>,
    cilium_installed: bool,
    policy_reports_installed: bool,
    requests: Vec<RecordedRequest>,
    faults: Vec<Fault>,
    delays: Vec<Delay>,
    /// (verb, name) pairs SelfSubjectAccessReviews answer "not allowed" for;
    /// everything else is allowed.
    refused_access: Vec<(String, String)>,
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str().filter(|s| !s.is_empty())
}

/// `obj.metadata` as a mutable map, creating it if needed.
fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let map = obj.as_object_mut().expect("object checked by caller");
    let m = map.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("just made an object")
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Equality ignoring `metadata.resourceVersion` (used to detect no-op writes).
fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

impl Store {
    fn installed(&self, def: &ResourceDef) -> bool {
        match def.gate {
            Gate::Always => true,
            Gate::Cilium => self.cilium_installed,
            Gate::PolicyReports => self.policy_reports_installed,
        }
    }

    fn commit(&mut self, res: usize, kind: EventType, object: Value, old: Option<Value>) {
        let event = StoredEvent {
            res,
            kind,
            object,
            old,
            rv: self.rv,
        };
        self.watchers
            .retain(|w| w.res != res || w.tx.send(event.clone()).is_ok());
        self.history.push(event);
    }

    fn get(&self, res: usize, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&res)?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn create(
        &mut self,
        res: usize,
        path_ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[res];
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type_meta(def, &obj)?;
        let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
            (Some(name), _) => name.to_string(),
            (None, Some(prefix)) => {
                self.uid_counter += 1;
                format!("{prefix}{:05x}", self.uid_counter)
            }
            (None, None) => {
                return Err(ApiError::invalid(format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    def.kind
                )));
            }
        };
        let ns = namespace_for(def, path_ns, &obj)?;
        if self.get(res, &ns, &name).is_some() {
            return Err(ApiError::already_exists(def, &name));
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        self.uid_counter += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uid_counter);
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uid));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        m.remove("resourceVersion");
        if def.kind == "Namespace" && obj["status"]["phase"].is_null() {
            obj["status"] = json!({"phase": "Active"});
        }
        if dry_run {
            return Ok(obj);
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects
            .entry(res)
            .or_default()
            .insert((ns, name), obj.clone());
        self.commit(res, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replace an existing object. A non-empty `metadata.resourceVersion` in
    /// `obj` must equal the stored one (optimistic concurrency).
    fn replace(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[res];
        let old = self
            .get(res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        check_type_meta(def, &obj)?;
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(body_ns) = meta_str(&obj, "namespace")
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        // `managedFields: [{}]` (or `[]`) is the documented reset; the fake
        // keeps no field ownership, so a reset leaves none.
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("managedFields")
                .and_then(Value::as_array)
                .is_some_and(|m| m.is_empty() || (m.len() == 1 && m[0] == serde_json::json!({})))
        {
            meta.remove("managedFields");
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(def, name));
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        let old_generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let generation = if obj.get("spec") != old.get("spec") {
            old_generation + 1
        } else {
            old_generation
        };
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(ns));
        }
        for keep in ["uid", "creationTimestamp"] {
            m.insert(keep.into(), old["metadata"][keep].clone());
        }
        m.insert("generation".into(), json!(generation));
        m.insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
        if same_ignoring_rv(&obj, &old) || dry_run {
            // No-op writes do not bump the resourceVersion, like the real server.
            return Ok(if dry_run { obj } else { old });
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects
            .entry(res)
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        self.commit(res, EventType::Modified, obj.clone(), Some(old));
        Ok(obj)
    }

    fn delete(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let def = &RESOURCES[res];
        let key = (ns.to_string(), name.to_string());
        let Some(old) = self.objects.get(&res).and_then(|m| m.get(&key)) else {
            return Err(ApiError::not_found(def, name));
        };
        for (field, what) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            if let Some(want) = preconditions[field].as_str()
                && Some(want) != meta_str(old, field)
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
                        def.qualified(),
                        meta_str(old, field).unwrap_or("")
                    ),
                )
                .with_details(def, name));
            }
        }
        if dry_run {
            return Ok(old.clone());
        }
        let mut obj = self
            .objects
            .get_mut(&res)
            .and_then(|m| m.remove(&key))
            .expect("checked above");
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.commit(res, EventType::Deleted, obj.clone(), None);
        Ok(obj)
    }

    /// Create or replace, ignoring resourceVersion (used by the test handle).
    fn upsert(&mut self, res: usize, mut obj: Value) -> Result<Value, ApiError> {
        let def = &RESOURCES[res];
        let ns = namespace_for(def, None, &obj)?;
        let name = meta_str(&obj, "name")
            .ok_or_else(|| ApiError::invalid("metadata.name is required"))?
            .to_string();
        if self.get(res, &ns, &name).is_some() {
            meta_mut(&mut obj).remove("resourceVersion");
            self.replace(res, &ns, &name, obj, false)
        } else {
            self.create(res, Some(&ns), obj, false)
        }
    }
}

fn check_type_meta(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let kind_ok = obj["kind"]
        .as_str()
        .is_none_or(|k| k.is_empty() || k == def.kind);
    let av_ok = obj["apiVersion"]
        .as_str()
        .is_none_or(|a| a.is_empty() || a == def.api_version());
    if kind_ok && av_ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({}) or kind ({})",
            obj["apiVersion"].as_str().unwrap_or(""),
            def.api_version(),
            def.kind
        )))
    }
}

/// The namespace an object is stored under ("" for cluster-scoped kinds).
fn namespace_for(
    def: &ResourceDef,
    path_ns: Option<&str>,
    obj: &Value,
) -> Result<String, ApiError> {
    if !def.namespaced {
        return Ok(String::new());
    }
    let body_ns = meta_str(obj, "namespace");
    match (path_ns, body_ns) {
        (Some(p), Some(b)) if p != b => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (Some(p), _) => Ok(p.to_string()),
        (None, Some(b)) => Ok(b.to_string()),
        (None, None) => Ok("default".to_string()),
    }
}

// ---------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let valid_key = |k: &str| !k.is_empty() && !k.contains(char::is_whitespace);
    let mut reqs = Vec::new();
    for part in split_top_level_commas(s) {
        let req = if let Some(key) = part.strip_prefix('!') {
            LabelReq::NotExists(key.trim().to_string())
        } else if let Some(open) = part.find('(') {
            let close = part.rfind(')').ok_or(format!("unclosed '(' in {part:?}"))?;
            let values: Vec<String> = part[open + 1..close]
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            let mut words = part[..open].split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(k), Some("in"), None) => LabelReq::In(k.to_string(), values),
                (Some(k), Some("notin"), None) => LabelReq::NotIn(k.to_string(), values),
                _ => return Err(format!("unable to parse requirement {part:?}")),
            }
        } else if let Some((k, v)) = part.split_once("!=") {
            LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
        } else {
            LabelReq::Exists(part.to_string())
        };
        let key = match &req {
            LabelReq::Eq(k, _)
            | LabelReq::NotEq(k, _)
            | LabelReq::In(k, _)
            | LabelReq::NotIn(k, _)
            | LabelReq::Exists(k)
            | LabelReq::NotExists(k) => k,
        };
        if !valid_key(key) {
            return Err(format!("invalid label key in {part:?}"));
        }
        reqs.push(req);
    }
    Ok(reqs)
}

fn labels_match(reqs: &[LabelReq], obj: &Value) -> bool {
    let labels = &meta(obj)["labels"];
    let get = |k: &str| labels[k].as_str();
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

/// `(dotted.path, value, negated)`.
type FieldReq = (String, String, bool);

fn parse_field_selector(s: &str) -> Result<Vec<FieldReq>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            if let Some((k, v)) = part.split_once("!=") {
                Ok((k.trim().to_string(), v.trim().to_string(), true))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Ok((k.trim().to_string(), v.trim().to_string(), false))
            } else {
                Err(format!("invalid field selector requirement {part:?}"))
            }
        })
        .collect()
}

fn fields_match(reqs: &[FieldReq], obj: &Value) -> bool {
    reqs.iter().all(|(path, want, negated)| {
        let value = path.split('.').fold(obj, |v, key| &v[key]);
        let actual = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (actual == *want) != *negated
    })
}

/// Which objects a list or watch request selects.
struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    fn from_query(
        namespace: Option<&str>,
        query: &HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        let labels = parse_label_selector(query.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = parse_field_selector(query.get("fieldSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok(Self {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace") == Some(ns))
            && labels_match(&self.labels, obj)
            && fields_match(&self.fields, obj)
    }

    /// The watch event type a client with this filter sees, if any.
    fn event_type(&self, ev: &StoredEvent) -> Option<&'static str> {
        let now = self.matches(&ev.object);
        match ev.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------

struct Shared {
    store: Mutex<Store>,
    addr: std::net::SocketAddr,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not poison the fake for other requests.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fake Kubernetes API server (**test double**) listening on
/// `127.0.0.1:<random port>` over plain HTTP, for integration tests.
///
/// Start it with [`FakeApiServer::start`], talk to it with
/// [`FakeApiServer::client`] (or a child process via
/// [`FakeApiServer::write_kubeconfig`]), seed and inspect state with
/// [`apply_object`](Self::apply_object) and friends, inject faults with
/// [`fail_requests`](Self::fail_requests), [`delay_requests`](Self::delay_requests),
/// [`drop_watches`](Self::drop_watches) and [`compact`](Self::compact).
/// Dropping it stops the server and ends open watches.
///
/// Server-side apply is simplified: top-level fields of the applied object
/// (except `metadata`/`status`) replace the stored ones, `metadata.labels` and
/// `metadata.annotations` are merged key by key, uid/creationTimestamp are
/// kept. There is no field ownership, so `force` makes no difference.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.server.abort();
        self.shared.lock().watchers.clear();
    }
}

impl FakeApiServer {
    /// Bind `127.0.0.1:0` and serve in a spawned task. Needs a tokio runtime.
    pub async fn start() -> FakeApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake apiserver on 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            addr,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake apiserver serve");
        });
        FakeApiServer { shared, server }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A `kube::Config` for this server: default namespace "default",
    /// [`CLIENT_READ_TIMEOUT`] read timeout. Tweak it and build your own client
    /// if you need different settings.
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("valid url"));
        config.default_namespace = "default".to_string();
        config.read_timeout = Some(CLIENT_READ_TIMEOUT);
        config.reset_reader_on_write = true;
        config.connect_timeout = Some(Duration::from_secs(5));
        config
    }

    /// A real `kube::Client` talking to this fake. Needs a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("kube client for the fake apiserver")
    }

    /// Starts `netpol-guard serve ARGS` reaching this fake through a
    /// kubeconfig. `config`, when given, is written beside the kubeconfig
    /// and passed as `--config`.
    pub fn serve(&self, args: &[&str], config: Option<&str>) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        self.write_kubeconfig(&kubeconfig).unwrap();
        let config_path = dir.path().join("config.yaml");
        let mut args = args.to_vec();
        if let Some(text) = config {
            std::fs::write(&config_path, text).unwrap();
            args.extend_from_slice(&["--config", config_path.to_str().unwrap()]);
        }
        let server =
            crate::common::Server::start_with(&args, &[("KUBECONFIG", kubeconfig.as_path())]);
        Served { server, dir }
    }

    /// Write a kubeconfig pointing at this fake (dummy token, namespace
    /// "default") so a child process run with `KUBECONFIG=path` uses it.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let yaml = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake-apiserver
  cluster:
    server: {url}
users:
- name: fake-user
  user:
    token: fake-token-for-tests
contexts:
- name: fake-apiserver
  context:
    cluster: fake-apiserver
    user: fake-user
    namespace: default
current-context: fake-apiserver
",
            url = self.url()
        );
        std::fs::write(path, yaml)
    }

    // --- direct store access (emits watch events like HTTP writes) ---

    /// Create or replace the object identified by its apiVersion, kind,
    /// metadata.namespace (default "default" for namespaced kinds) and
    /// metadata.name; any resourceVersion in it is ignored. Returns the stored
    /// object. Works even while the object's CRD toggle is off. Panics on an
    /// unknown kind or invalid object.
    pub fn apply_object(&self, obj: &Value) -> Value {
        let api_version = obj["apiVersion"].as_str().expect("object needs apiVersion");
        let kind = obj["kind"].as_str().expect("object needs kind");
        let res = kind_index(api_version, kind);
        self.shared
            .lock()
            .upsert(res, obj.clone())
            .unwrap_or_else(|e| panic!("apply_object failed: {}", e.message))
    }

    /// Delete an object; returns it, or `None` if it did not exist.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = kind_index(api_version, kind);
        let ns = if RESOURCES[res].namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        self.shared
            .lock()
            .delete(res, ns, name, &Value::Null, false)
            .ok()
    }

    /// The stored object, if any.
    pub fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = kind_index(api_version, kind);
        let ns = if RESOURCES[res].namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        self.shared.lock().get(res, ns, name).cloned()
    }

    /// All stored objects of a kind, across namespaces, ordered by (namespace, name).
    pub fn list_objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let res = kind_index(api_version, kind);
        self.shared
            .lock()
            .objects
            .get(&res)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    // --- CRD toggles ---

    /// Serve (or 404) cilium.io/v2 ciliumnetworkpolicies and
    /// ciliumclusterwidenetworkpolicies. Default: not installed.
    pub fn set_cilium_installed(&self, installed: bool) {
        self.shared.lock().cilium_installed = installed;
    }

    /// Serve (or 404) wgpolicyk8s.io/v1alpha2 policyreports and
    /// clusterpolicyreports. Default: not installed.
    pub fn set_policy_reports_installed(&self, installed: bool) {
        self.shared.lock().policy_reports_installed = installed;
    }

    // --- authorization ---

    /// SelfSubjectAccessReviews for `verb` on any resource named `name`
    /// answer `allowed: false` from now on (by default every review is
    /// allowed: the fake has no RBAC).
    pub fn refuse_access(&self, verb: &str, name: &str) {
        self.shared
            .lock()
            .refused_access
            .push((verb.to_string(), name.to_string()));
    }

    // --- fault injection ---

    /// The next `count` requests matching `matcher` get `status_code` with a
    /// Status body (429 also gets `Retry-After: 1`). Note that kube's client
    /// retries 429, 503 and 504 by itself by default.
    pub fn fail_requests(&self, matcher: RequestMatcher, status_code: u16, count: usize) {
        self.shared.lock().faults.push(Fault {
            matcher,
            code: status_code,
            remaining: count,
        });
    }

    /// The next `count` requests matching `matcher` are answered only after `delay`.
    pub fn delay_requests(&self, matcher: RequestMatcher, delay: Duration, count: usize) {
        self.shared.lock().delays.push(Delay {
            matcher,
            delay,
            remaining: count,
        });
    }

    /// Remove all pending injected failures and delays.
    pub fn clear_faults(&self) {
        let mut store = self.shared.lock();
        store.faults.clear();
        store.delays.clear();
    }

    /// End every open watch stream abruptly (connection aborted mid-body,
    /// no final event), as when an apiserver restarts.
    pub fn drop_watches(&self) {
        self.shared.lock().watchers.clear();
    }

    /// Forget the event history: watches from a resourceVersion older than the
    /// current one then get a 410 Expired ERROR event.
    pub fn compact(&self) {
        let mut store = self.shared.lock();
        store.history.clear();
        store.history_start = store.rv;
    }

    /// Number of currently open watch streams.
    pub fn open_watches(&self) -> usize {
        let mut store = self.shared.lock();
        store.watchers.retain(|w| !w.tx.is_closed());
        store.watchers.len()
    }

    // --- request log ---

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Requests with this method (case-insensitive) whose path contains `path_substring`.
    pub fn count_requests(&self, method: &str, path_substring: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_substring))
            .count()
    }
}

/// A `netpol-guard serve` started by [`FakeApiServer::serve`]; its
/// kubeconfig's directory lives as long as it.
pub struct Served {
    pub server: crate::common::Server,
    pub dir: tempfile::TempDir,
}

// ---------------------------------------------------------------------------
// HTTP handling
// ---------------------------------------------------------------------------

fn parse_query(raw: &str) -> HashMap<String, String> {
    let uri: Uri = format!("/?{raw}").parse().unwrap_or_default();
    Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let raw_query = uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");

    let (delay, fault) = {
        let mut store = shared.lock();
        store.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query,
            content_type: content_type.clone(),
            field_manager: query.get("fieldManager").cloned(),
        });
        let delay = store
            .delays
            .iter_mut()
            .find(|d| d.remaining > 0 && d.matcher.matches(method.as_str(), &path, is_watch))
            .map(|d| {
                d.remaining -= 1;
                d.delay
            });
        let fault = store
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.matcher.matches(method.as_str(), &path, is_watch))
            .map(|f| {
                f.remaining -= 1;
                f.code
            });
        store.delays.retain(|d| d.remaining > 0);
        store.faults.retain(|f| f.remaining > 0);
        (delay, fault)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = fault {
        return ApiError::injected(code).into_response();
    }

    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let req = Req {
        method,
        query,
        content_type,
        body,
        aggregated: accept.contains("as=APIGroupDiscoveryList"),
    };
    match route(&shared, &path, req) {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

struct Req {
    method: Method,
    query: HashMap<String, String>,
    content_type: Option<String>,
    body: Bytes,
    aggregated: bool,
}

impl Req {
    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|d| d == "All")
    }
}

fn route(shared: &Arc<Shared>, path: &str, req: Req) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_discovery = matches!(
        segs.as_slice(),
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _]
    );
    if is_discovery && req.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let store = || shared.lock();
    match segs.as_slice() {
        ["version"] => Ok(json_response(200, &version_info())),
        ["api"] if req.aggregated => Ok(aggregated_response(&store(), true)),
        ["api"] => Ok(json_response(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}],
            }),
        )),
        ["apis"] if req.aggregated => Ok(aggregated_response(&store(), false)),
        ["apis"] => Ok(json_response(200, &api_group_list(&store()))),
        ["api", "v1"] => Ok(json_response(200, &resource_list(&store(), "", "v1")?)),
        ["apis", group] => Ok(json_response(200, &api_group(&store(), group)?)),
        ["apis", group, version] => Ok(json_response(
            200,
            &resource_list(&store(), group, version)?,
        )),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => self_subject_access_review(&store(), &req),
        ["api", "v1", rest @ ..] => resource_request(shared, "", "v1", rest, req),
        ["apis", group, version, rest @ ..] => resource_request(shared, group, version, rest, req),
        _ => Err(ApiError::unknown_path()),
    }
}

/// POST of a SelfSubjectAccessReview: the review back, with its status
/// (`refuse_access` decides; nothing is stored).
fn self_subject_access_review(store: &Store, req: &Req) -> Result<Response, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let mut review: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid SelfSubjectAccessReview: {e}")))?;
    let attrs = &review["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or("");
    let name = attrs["name"].as_str().unwrap_or("");
    let allowed = !store
        .refused_access
        .iter()
        .any(|(v, n)| v == verb && n == name);
    review["status"] = json!({"allowed": allowed});
    Ok(json_response(201, &review))
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "gitVersion": "v1.37.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn installed_resources(store: &Store) -> impl Iterator<Item = &'static ResourceDef> + '_ {
    RESOURCES.iter().filter(|r| store.installed(r))
}

fn group_versions(store: &Store, group: &str) -> Vec<&'static str> {
    let mut versions: Vec<&'static str> = Vec::new();
    for r in installed_resources(store).filter(|r| r.group == group) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    versions
}

fn api_group_json(store: &Store, group: &str) -> Value {
    let versions: Vec<Value> = group_versions(store, group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

fn api_group_list(store: &Store) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for r in installed_resources(store).filter(|r| !r.group.is_empty()) {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    let groups: Vec<Value> = groups.iter().map(|g| api_group_json(store, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn api_group(store: &Store, group: &str) -> Result<Value, ApiError> {
    if group_versions(store, group).is_empty() {
        return Err(ApiError::unknown_path());
    }
    let mut g = api_group_json(store, group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(g)
}

fn resource_list(store: &Store, group: &str, version: &str) -> Result<Value, ApiError> {
    let resources: Vec<Value> = installed_resources(store)
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural,
                "singularName": r.kind.to_lowercase(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
            })
        })
        .collect();
    if resources.is_empty() {
        return Err(ApiError::unknown_path());
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// Aggregated discovery (apidiscovery.k8s.io/v2) for `/api` (core) or `/apis`.
fn aggregated_response(store: &Store, core: bool) -> Response {
    let mut groups: Vec<&str> = Vec::new();
    for r in installed_resources(store).filter(|r| r.group.is_empty() == core) {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let versions: Vec<Value> = group_versions(store, g)
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = installed_resources(store)
                        .filter(|r| r.group == *g && r.version == *v)
                        .map(|r| {
                            json!({
                                "resource": r.plural,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.kind.to_lowercase(),
                                "verbs": VERBS,
                            })
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, AGGREGATED_DISCOVERY)],
        body.to_string(),
    )
        .into_response()
}

/// A parsed resource URL.
struct ResourcePath {
    res: usize,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// `rest` is the path after the group-version prefix: `[plural]`,
/// `[plural, name]`, `[plural, name, sub]` (cluster-scoped or all
/// namespaces) or `[namespaces, ns, plural, name?, sub?]`.
fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let at = |i: usize| rest.get(i).map(|s| s.to_string());
    if rest.len() >= 3
        && rest.len() <= 5
        && rest[0] == "namespaces"
        && let Some(res) = find_resource(group, version, rest[2])
        && RESOURCES[res].namespaced
    {
        return Some(ResourcePath {
            res,
            namespace: at(1),
            name: at(3),
            subresource: at(4),
        });
    }
    let res = find_resource(group, version, rest.first()?)?;
    let ok = rest.len() == 1 || (rest.len() <= 3 && !RESOURCES[res].namespaced);
    ok.then(|| ResourcePath {
        res,
        namespace: None,
        name: at(1),
        subresource: at(2),
    })
}

fn resource_request(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Req,
) -> Result<Response, ApiError> {
    let ResourcePath {
        res,
        namespace: ns,
        name,
        subresource: sub,
    } = parse_resource_path(group, version, rest).ok_or_else(ApiError::unknown_path)?;
    let def = &RESOURCES[res];
    if !shared.lock().installed(def) {
        return Err(ApiError::unknown_path());
    }
    if sub.as_deref().is_some_and(|s| s != "status") {
        return Err(ApiError::unknown_path());
    }
    let Some(name) = name else {
        return match req.method {
            Method::GET
                if req
                    .query
                    .get("watch")
                    .is_some_and(|w| w == "true" || w == "1") =>
            {
                start_watch(shared, res, ns.as_deref(), &req.query)
            }
            Method::GET => list(shared, res, ns.as_deref(), &req.query),
            Method::POST if def.namespaced && ns.is_none() => Err(ApiError::method_not_allowed()),
            Method::POST => {
                let obj = parse_json_body(&req.body)?;
                let created = shared
                    .lock()
                    .create(res, ns.as_deref(), obj, req.dry_run())?;
                Ok(json_response(201, &created))
            }
            _ => Err(ApiError::method_not_allowed()),
        };
    };
    let ns = ns.unwrap_or_default();
    let status_only = sub.is_some();
    match req.method {
        Method::GET => {
            let obj = shared.lock().get(res, &ns, &name).cloned();
            obj.map(|o| json_response(200, &o))
                .ok_or_else(|| ApiError::not_found(def, &name))
        }
        Method::PUT => {
            let mut obj = parse_json_body(&req.body)?;
            let mut store = shared.lock();
            if status_only {
                obj = with_status_of(store.get(res, &ns, &name), &obj)
                    .ok_or_else(|| ApiError::not_found(def, &name))?;
            }
            let updated = store.replace(res, &ns, &name, obj, req.dry_run())?;
            Ok(json_response(200, &updated))
        }
        Method::PATCH => patch(shared, res, &ns, &name, status_only, &req),
        Method::DELETE => {
            let options: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let deleted =
                shared
                    .lock()
                    .delete(res, &ns, &name, &options["preconditions"], req.dry_run())?;
            Ok(json_response(200, &deleted))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ))
    }
}

/// For the status subresource: the stored object with `status` (and the
/// optimistic-lock resourceVersion) taken from `new`.
fn with_status_of(stored: Option<&Value>, new: &Value) -> Option<Value> {
    let mut obj = stored?.clone();
    obj["status"] = new["status"].clone();
    match meta_str(new, "resourceVersion") {
        Some(rv) => meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv)),
        None => meta_mut(&mut obj).remove("resourceVersion"),
    };
    Some(obj)
}

fn list(
    shared: &Arc<Shared>,
    res: usize,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let def = &RESOURCES[res];
    let filter = Filter::from_query(ns, query)?;
    let store = shared.lock();
    let items: Vec<Value> = store
        .objects
        .get(&res)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|o| filter.matches(o))
        .cloned()
        .collect();
    // Pagination: `limit` objects from the offset a `continue` token names
    // (objects are ordered by namespace and name, as etcd returns them).
    let offset = match query.get("continue").map(String::as_str) {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("fake-continue-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid continue token {token:?}")))?,
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    let end = offset.saturating_add(limit).min(total);
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    let mut metadata = json!({"resourceVersion": store.rv.to_string()});
    if end < total {
        metadata["continue"] = json!(format!("fake-continue-{end}"));
        metadata["remainingItemCount"] = json!(total - end);
    }
    let list = json!({
        "apiVersion": def.api_version(),
        "kind": format!("{}List", def.kind),
        "metadata": metadata,
        "items": page,
    });
    Ok(json_response(200, &list))
}

fn patch(
    shared: &Arc<Shared>,
    res: usize,
    ns: &str,
    name: &str,
    status_only: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    let def = &RESOURCES[res];
    let content_type = req.content_type.as_deref().unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let mut store = shared.lock();
    let current = store.get(res, ns, name).cloned();
    let patched = match mime {
        "application/apply-patch+yaml" => {
            if req.query.get("fieldManager").is_none_or(|f| f.is_empty()) {
                return Err(ApiError::invalid(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let applied: Value = serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request(
                    "the applied configuration must be an object",
                ));
            }
            if let Some(applied_name) = meta_str(&applied, "name")
                && applied_name != name
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            let Some(current) = current else {
                if status_only {
                    return Err(ApiError::not_found(def, name));
                }
                let mut obj = applied;
                meta_mut(&mut obj).insert("name".into(), json!(name));
                let path_ns = def.namespaced.then_some(ns);
                let created = store.create(res, path_ns, obj, req.dry_run())?;
                return Ok(json_response(201, &created));
            };
            apply_merge(&current, &applied, status_only)
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let current = current.ok_or_else(|| ApiError::not_found(def, name))?;
            let patch: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            let mut obj = current;
            json_patch::merge(&mut obj, &patch);
            obj
        }
        "application/json-patch+json" => {
            let current = current.ok_or_else(|| ApiError::not_found(def, name))?;
            let ops: json_patch::Patch = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut obj = current;
            json_patch::patch(&mut obj, &ops)
                .map_err(|e| ApiError::invalid(format!("JSON patch failed: {e}")))?;
            obj
        }
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                ),
            ));
        }
    };
    let patched = if status_only {
        with_status_of(store.get(res, ns, name), &patched).expect("exists")
    } else {
        patched
    };
    let updated = store.replace(res, ns, name, patched, req.dry_run())?;
    Ok(json_response(200, &updated))
}

/// Simplified server-side apply onto an existing object (see [`FakeApiServer`]).
fn apply_merge(current: &Value, applied: &Value, status_only: bool) -> Value {
    let mut obj = current.clone();
    if let Some(m) = obj["metadata"].as_object_mut() {
        // The stored resourceVersion must not make the apply conflict.
        m.remove("resourceVersion");
    }
    for (key, value) in applied.as_object().into_iter().flatten() {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "status" if !status_only => {}
            "metadata" => {
                let target = meta_mut(&mut obj);
                for (mkey, mvalue) in value.as_object().into_iter().flatten() {
                    match mkey.as_str() {
                        "labels" | "annotations" => {
                            let entry = target.entry(mkey.clone()).or_insert_with(|| json!({}));
                            if !entry.is_object() {
                                *entry = json!({});
                            }
                            if let (Some(dst), Some(src)) =
                                (entry.as_object_mut(), mvalue.as_object())
                            {
                                dst.extend(src.iter().map(|(k, v)| (k.clone(), v.clone())));
                            }
                        }
                        "resourceVersion" | "ownerReferences" | "finalizers" => {
                            target.insert(mkey.clone(), mvalue.clone());
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                obj[key.as_str()] = value.clone();
            }
        }
    }
    obj
}

// ---------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------

fn watch_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(def: &ResourceDef, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": metadata}),
    )
}

type BodyItem = Result<Bytes, std::io::Error>;

fn stream_response(rx: mpsc::Receiver<BodyItem>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn start_watch(
    shared: &Arc<Shared>,
    res: usize,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let def = &RESOURCES[res];
    let filter = Filter::from_query(ns, query)?;
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map_or(MAX_WATCH_TIMEOUT, |t| {
            Duration::from_secs(t).min(MAX_WATCH_TIMEOUT)
        });
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let send_initial_events = query.get("sendInitialEvents").is_some_and(|s| s == "true");
    let from_rv = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };

    let (out_tx, out_rx) = mpsc::channel::<BodyItem>(64);
    let mut initial: Vec<Bytes> = Vec::new();
    let (events_rx, mut last_rv) = {
        let mut store = shared.lock();
        match from_rv {
            Some(rv) if rv < store.history_start && !send_initial_events => {
                let expired = ApiError::new(
                    410,
                    "Expired",
                    format!("too old resource version: {rv} ({})", store.history_start),
                );
                let _ = out_tx.try_send(Ok(watch_line("ERROR", &expired.status_json())));
                return Ok(stream_response(out_rx));
            }
            Some(rv) if !send_initial_events => {
                for ev in store.history.iter().filter(|e| e.res == res && e.rv > rv) {
                    if let Some(ty) = filter.event_type(ev) {
                        initial.push(watch_line(ty, &ev.object));
                    }
                }
            }
            _ => {
                for obj in store.objects.get(&res).into_iter().flat_map(|m| m.values()) {
                    if filter.matches(obj) {
                        initial.push(watch_line("ADDED", obj));
                    }
                }
                if send_initial_events {
                    initial.push(bookmark(def, store.rv, true));
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        store.watchers.push(Watcher { res, tx });
        (rx, store.rv)
    };

    tokio::spawn(async move {
        let mut events_rx = events_rx;
        for line in initial {
            if out_tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return, // clean end of the watch
                _ = out_tx.closed() => return, // the client went away
                ev = events_rx.recv() => match ev {
                    Some(ev) => {
                        last_rv = last_rv.max(ev.rv);
                        match filter.event_type(&ev) {
                            Some(ty) => watch_line(ty, &ev.object),
                            None => continue,
                        }
                    }
                    None => {
                        // drop_watches(): abort the body so the connection breaks.
                        let _ = out_tx
                            .send(Err(std::io::Error::other("watch dropped by the fake apiserver")))
                            .await;
                        return;
                    }
                },
                _ = ticker.tick(), if bookmarks => bookmark(def, last_rv, false),
            };
            if out_tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    Ok(stream_response(out_rx))
}
