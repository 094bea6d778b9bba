//! `netpol-guard connectivity` and `netpol-guard diff`: the map of allowed
//! connections, from manifests or the live cluster, and what a change to
//! the manifests adds or removes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use netpol_guard::connectivity::{self, Change, Connectivity, diff, render};
use netpol_guard::manifests;
use netpol_guard::report::check;
use netpol_guard::report::model::ExitCode as Exit;
use serde_json::Value;

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum MapFormat {
    /// One connection a line, the netpol-analyzer's `list` format.
    Txt,
    Json,
    Csv,
    /// A Markdown table.
    Md,
    /// Graphviz source.
    Dot,
    /// Rendered by Graphviz's `dot` (Debian: graphviz).
    Svg,
    /// One self-contained page (the svg, the table, the notes).
    Html,
}

#[derive(clap::Args)]
pub struct ConnectivityArgs {
    /// Read the live cluster (KUBECONFIG, ~/.kube/config or in-cluster)
    /// instead of files.
    #[arg(long, conflicts_with = "paths")]
    cluster: bool,
    /// Kubeconfig file, with --cluster.
    #[arg(long, requires = "cluster")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context, with --cluster.
    #[arg(long, requires = "cluster")]
    context: Option<String>,
    /// Namespace for objects that do not name one (as kubectl apply).
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, value_enum, default_value = "txt")]
    output: MapFormat,
    /// Only the connections of this workload: `ns/name`, `ns/name[Kind]`
    /// or `name`.
    #[arg(long)]
    focus: Option<String>,
    /// Instead of the map, which workloads can be reached from every
    /// namespace, from outside the cluster, or from namespaces that do not
    /// exist yet (txt or json).
    #[arg(long)]
    exposure: bool,
    /// Files or directories of YAML/JSON manifests.
    #[arg(required_unless_present = "cluster")]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum DiffFormat {
    Txt,
    Csv,
    /// For a pull-request comment.
    Md,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum FailOn {
    /// Any change (the default).
    Any,
    /// Only a change that opens connections: one added, or one that allows
    /// a protocol or port it did not.
    Added,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    #[arg(long, value_enum, default_value = "txt")]
    output: DiffFormat,
    /// Which changes make the exit code 1.
    #[arg(long, value_enum, default_value = "any")]
    fail_on: FailOn,
    /// Namespace for objects that do not name one (as kubectl apply).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The manifests before (a file or directory), e.g. the base branch.
    old: PathBuf,
    /// The manifests after, e.g. the pull request's head.
    new: PathBuf,
}

/// Prints the map; 0 on success, 2 when the input cannot be read.
pub fn run(args: ConnectivityArgs) -> ExitCode {
    match map_of(&args).and_then(|m| print_map(&args, m)) {
        Ok(()) => Exit::Clean.into(),
        Err(e) => {
            eprintln!("netpol-guard connectivity: {e}");
            Exit::Unreadable.into()
        }
    }
}

/// Prints the diff; 0 when nothing changed (or nothing `--fail-on`
/// counts), 1 when something did, 2 when an input cannot be read.
pub fn run_diff(args: DiffArgs) -> ExitCode {
    let maps = load(std::slice::from_ref(&args.old), &args.namespace)
        .and_then(|o| Ok((o, load(std::slice::from_ref(&args.new), &args.namespace)?)))
        .and_then(|(o, n)| Ok((map(&o)?, map(&n)?)));
    let (old, new) = match maps {
        Ok(m) => m,
        Err(e) => {
            eprintln!("netpol-guard diff: {e}");
            return Exit::Unreadable.into();
        }
    };
    let changes = diff::diff(&old, &new);
    let text = match args.output {
        DiffFormat::Txt => render::diff_txt(&changes),
        DiffFormat::Csv => render::diff_csv(&changes),
        DiffFormat::Md => render::diff_md(&changes),
        DiffFormat::Json => pretty(&render::diff_json(&changes)),
    };
    print!("{text}");
    let fails = match args.fail_on {
        FailOn::Any => !changes.is_empty(),
        FailOn::Added => changes.iter().any(Change::opens),
    };
    if fails {
        Exit::Denied.into()
    } else {
        Exit::Clean.into()
    }
}

fn load(paths: &[PathBuf], namespace: &str) -> Result<Vec<Value>, String> {
    let objects = manifests::load_paths(paths).map_err(|e| e.to_string())?;
    Ok(objects
        .into_iter()
        .map(|o| {
            let mut obj = o.object;
            check::default_namespace_of(&mut obj, namespace);
            obj
        })
        .collect())
}

fn map(objects: &[Value]) -> Result<Connectivity, String> {
    connectivity::map(objects).map_err(|e| e.to_string())
}

fn map_of(args: &ConnectivityArgs) -> Result<Connectivity, String> {
    let objects = if args.cluster {
        cluster_objects(args)?
    } else {
        load(&args.paths, &args.namespace)?
    };
    let mut m = map(&objects)?;
    if let Some(focus) = &args.focus {
        focus_on(&mut m, focus)?;
    }
    Ok(m)
}

/// Keeps the connections (and exposure) of one workload.
fn focus_on(m: &mut Connectivity, focus: &str) -> Result<(), String> {
    let matches = |n: &connectivity::Node| match n {
        connectivity::Node::Workload {
            namespace,
            name,
            kind,
        } => {
            focus == n.label()
                || focus == format!("{namespace}/{name}")
                || focus == name
                || focus == format!("{namespace}/{name}[{kind}]")
        }
        connectivity::Node::External { .. } => false,
    };
    if !m.workloads.iter().chain(&m.host_network).any(matches) {
        return Err(format!(
            "--focus {focus}: no such workload (use namespace/name, namespace/name[Kind] or name)"
        ));
    }
    m.connections.retain(|c| matches(&c.src) || matches(&c.dst));
    m.exposure.retain(|e| matches(&e.workload));
    Ok(())
}

fn cluster_objects(args: &ConnectivityArgs) -> Result<Vec<Value>, String> {
    use netpol_guard::cluster::inventory::{self, Progress};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let client = super::audit::client(args.kubeconfig.as_ref(), args.context.as_ref()).await?;
        let mut progress = |p: Progress| {
            if let Progress::Skipped { resource, reason } = p {
                eprintln!("connectivity: {resource}: cannot be listed, skipped ({reason})");
            }
        };
        let inventory = inventory::fetch(&client, &inventory::Scope::default(), &mut progress)
            .await
            .map_err(|e| e.to_string())?;
        Ok(inventory.objects)
    })
}

fn print_map(args: &ConnectivityArgs, m: Connectivity) -> Result<(), String> {
    for n in &m.notes {
        if matches!(args.output, MapFormat::Txt | MapFormat::Csv) {
            eprintln!("note: {n}");
        }
    }
    let text = if args.exposure {
        match args.output {
            MapFormat::Json => pretty(&render::exposure_json(&m.exposure)),
            MapFormat::Txt => render::exposure_txt(&m.exposure),
            _ => return Err("--exposure prints txt or json".into()),
        }
    } else {
        match args.output {
            MapFormat::Txt => render::txt(&m),
            MapFormat::Json => pretty(&render::json(&m)),
            MapFormat::Csv => render::csv(&m),
            MapFormat::Md => render::md(&m),
            MapFormat::Dot => render::dot(&m),
            MapFormat::Svg => graphviz_svg(&render::dot(&m))?,
            MapFormat::Html => {
                let svg = graphviz_svg(&render::dot(&m))?;
                render::html(&m, &svg, &title(args))
            }
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the output: {e}"))
}

fn title(args: &ConnectivityArgs) -> String {
    if args.cluster {
        return "Connectivity of the cluster".into();
    }
    let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    format!("Connectivity of {}", paths.join(", "))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Renders dot source with Graphviz (`dot -Tsvg`).
fn graphviz_svg(dot: &str) -> Result<String, String> {
    graphviz_svg_with(Path::new("dot"), dot)
}

fn graphviz_svg_with(program: &Path, dot: &str) -> Result<String, String> {
    let mut child = Command::new(program)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "svg and html are drawn by Graphviz's `dot`, which is not installed (Debian/Ubuntu: apt install graphviz); --output dot prints the source to render elsewhere".to_string()
            } else {
                format!("cannot run Graphviz's dot: {e}")
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("cannot feed Graphviz's dot: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("Graphviz's dot failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "Graphviz's dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("Graphviz's dot printed non-UTF-8: {e}"))
}
