//! `netpol-guard audit`: judge a live cluster, print, and optionally write
//! PolicyReports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use netpol_guard::config::Settings;
use netpol_guard::config::reload;
use netpol_guard::report::audit;
use netpol_guard::report::model::ExitCode as Exit;
use netpol_guard::report::reporter;

use super::{Color, Output, load_settings, print_report};

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only this namespace.
    #[arg(long, short = 'n', conflicts_with = "selector")]
    namespace: Option<String>,
    /// Only namespaces whose labels match this selector (kubectl syntax,
    /// e.g. `team=payments,env!=dev`). Cluster-scoped findings are left out.
    #[arg(long, short = 'l')]
    selector: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Config file (YAML). Without it, the config the webhook uses: the
    /// `--configmap` ConfigMap in `--config-namespace`, else the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Namespace of netpol-guard's ConfigMap.
    #[arg(long, default_value = "netpol-guard")]
    config_namespace: String,
    /// Name of netpol-guard's ConfigMap.
    #[arg(long, default_value = "netpol-guard")]
    configmap: String,
    /// Also write the results as PolicyReports (wgpolicyk8s.io/v1alpha2):
    /// one per audited namespace, and a ClusterPolicyReport for a whole-cluster
    /// audit.
    #[arg(long)]
    write_reports: bool,
    /// Colour the text output: auto (only on a terminal, not with NO_COLOR),
    /// always, never.
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

/// Runs the audit on a single-threaded runtime; exits as the report says
/// (2 when the cluster or the config cannot be read).
pub fn run(args: AuditArgs) -> ExitCode {
    super::logging::init_cli_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("netpol-guard audit: cannot start the runtime: {e}");
            return Exit::Unreadable.into();
        }
    };
    match runtime.block_on(run_audit(args)) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("netpol-guard audit: {e}");
            Exit::Unreadable.into()
        }
    }
}

/// A client from `--kubeconfig`/`--context`, else the usual inference
/// (KUBECONFIG, ~/.kube/config, in-cluster).
async fn audit_client(args: &AuditArgs) -> Result<kube::Client, String> {
    client(args.kubeconfig.as_ref(), args.context.as_ref()).await
}

/// A client from a kubeconfig file and context, else the usual inference
/// (KUBECONFIG, ~/.kube/config, in-cluster); `connectivity --cluster` too.
pub async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
) -> Result<kube::Client, String> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: context.cloned(),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string())?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| format!("no usable kubeconfig or in-cluster service account: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// The config `audit` judges with: `--config`, else the webhook's
/// ConfigMap, else (the ConfigMap does not exist) the built-in defaults,
/// said on stderr.
async fn audit_settings(args: &AuditArgs, client: &kube::Client) -> Result<Settings, String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    if let Some(path) = &args.config {
        return load_settings(Some(path));
    }
    let source = format!("ConfigMap {}/{}", args.config_namespace, args.configmap);
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &args.config_namespace);
    let text = match api.get_opt(&args.configmap).await {
        Ok(Some(cm)) => cm
            .data
            .and_then(|mut d| d.remove(reload::CONFIG_KEY))
            .ok_or_else(|| format!("{source} has no {} key", reload::CONFIG_KEY))?,
        Ok(None) => {
            eprintln!("note: {source} not found: judging with the built-in defaults");
            return Ok(Settings::default());
        }
        // Forbidden, unreachable, ...: the defaults could judge every
        // namespace differently from the webhook (and --write-reports would
        // publish that), so stop and say how to go on.
        Err(e) => {
            return Err(format!(
                "cannot read {source} ({}): pass --config FILE (netpol-guard config default prints the defaults)",
                netpol_guard::cluster::apierror::describe(&e)
            ));
        }
    };
    Settings::from_yaml(&text).map_err(|e| format!("{source}: {e}"))
}

/// `netpol-guard audit`: read, judge, print, and optionally write reports.
async fn run_audit(args: AuditArgs) -> Result<Exit, String> {
    use netpol_guard::cluster::inventory::{self, Progress};
    let client = audit_client(&args).await?;
    let settings = audit_settings(&args, &client).await?;
    let scope = inventory::Scope {
        namespace: args.namespace.clone(),
        selector: args.selector.clone(),
    };
    let live = std::io::stderr().is_terminal();
    let mut progress = |p: Progress| match p {
        Progress::Reading { resource, count } if live => {
            eprint!("\r\x1b[Kaudit: reading {resource}... {count}");
        }
        Progress::Reading { .. } => {}
        Progress::Done { resource, count } => {
            let what = count.map_or("not installed, skipped".to_string(), |n| n.to_string());
            if live {
                eprint!("\r\x1b[Kaudit: {resource}: {what}");
            } else {
                eprintln!("audit: {resource}: {what}");
            }
        }
        // Its own line even on a terminal: it must not be overwritten.
        Progress::Skipped { resource, reason } => {
            let lead = if live { "\r\x1b[K" } else { "" };
            eprintln!("{lead}audit: {resource}: cannot be listed, skipped ({reason})");
        }
    };
    let inventory = inventory::fetch(&client, &scope, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    if live {
        eprintln!();
    }
    if !inventory.skipped.is_empty() {
        let kinds: Vec<&str> = inventory.skipped.iter().map(|s| s.resource).collect();
        eprintln!(
            "warning: {} kind(s) could not be listed and were not judged: {}",
            kinds.len(),
            kinds.join(", ")
        );
    }
    let objects = inventory.objects;
    let mut report = audit::audit(&objects, &settings);
    let scoped = scope.namespace.is_some() || scope.selector.is_some();
    if scoped {
        // Cluster-scoped policies cover every namespace: judged in a
        // whole-cluster audit, not attributed to a part of it. So is the
        // network plugin (its DaemonSets are outside the scope).
        report.cluster_findings.clear();
        report.network_plugin = None;
    }
    print_report(&report, args.output, args.color)?;
    if args.write_reports {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match reporter::write(&client, &report, !scoped, now).await {
            Ok(outcome) => eprintln!("{}", reporter::describe(&outcome)),
            Err(e) => {
                eprintln!("error: cannot write PolicyReports: {e}");
                return Ok(Exit::Unreadable);
            }
        }
    }
    Ok(report.exit_code())
}
