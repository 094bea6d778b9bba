//! The map and its diff as text: txt (the analyzer's line format), csv, md,
//! json and Graphviz dot. svg and html are rendered from the dot by the
//! caller (Graphviz is a program, not a library here).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::analysis::{Connectivity, Exposure, Node};
use super::diff::Change;

/// One connection a line, sorted: `src => dst : conn`.
pub fn txt(map: &Connectivity) -> String {
    let mut out = String::new();
    for c in &map.connections {
        out.push_str(&c.line());
        out.push('\n');
    }
    out
}

/// `src,dst,conn` with a header; fields holding commas are quoted.
pub fn csv(map: &Connectivity) -> String {
    let mut out = String::from("src,dst,conn\n");
    for c in &map.connections {
        let _ = writeln!(
            out,
            "{},{},{}",
            csv_field(&c.src.label()),
            csv_field(&c.dst.label()),
            csv_field(&c.conn.to_string())
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A Markdown table, then the notes.
pub fn md(map: &Connectivity) -> String {
    let mut out = String::from("| src | dst | conn |\n|-----|-----|------|\n");
    for c in &map.connections {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            md_cell(&c.src.label()),
            md_cell(&c.dst.label()),
            md_cell(&c.conn.to_string())
        );
    }
    notes_md(&mut out, &map.notes);
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn notes_md(out: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    out.push_str("\n**Notes**\n\n");
    for n in notes {
        let _ = writeln!(out, "- {}", md_cell(n));
    }
}

/// `{"connections": [{"src", "dst", "conn"}], "workloads", "hostNetwork",
/// "notes"}`.
pub fn json(map: &Connectivity) -> Value {
    json!({
        "connections": map.connections.iter().map(|c| json!({
            "src": c.src.label(), "dst": c.dst.label(), "conn": c.conn.to_string(),
        })).collect::<Vec<_>>(),
        "workloads": map.workloads.iter().map(Node::label).collect::<Vec<_>>(),
        "hostNetwork": map.host_network.iter().map(Node::label).collect::<Vec<_>>(),
        "notes": map.notes,
    })
}

/// Graphviz: a cluster per namespace, external ranges on their own, host-
/// network workloads dashed (outside NetworkPolicy), the ports on the edges.
pub fn dot(map: &Connectivity) -> String {
    let mut out = String::from(
        "digraph connectivity {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\", fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n",
    );
    let mut by_ns: BTreeMap<&str, Vec<(&Node, bool)>> = BTreeMap::new();
    for n in &map.workloads {
        by_ns
            .entry(n.namespace().unwrap_or(""))
            .or_default()
            .push((n, false));
    }
    for n in &map.host_network {
        by_ns
            .entry(n.namespace().unwrap_or(""))
            .or_default()
            .push((n, true));
    }
    for (i, (ns, nodes)) in by_ns.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};\n    style=\"rounded\";\n    color=\"#9aa5b1\";",
            quote(&format!("namespace {ns}"))
        );
        for (n, host) in nodes {
            let Node::Workload { name, kind, .. } = n else {
                continue;
            };
            let label = if *host {
                format!("{name}\n[{kind}, hostNetwork]\nNetworkPolicy does not apply")
            } else {
                format!("{name}\n[{kind}]")
            };
            let style = if *host {
                ", style=\"rounded,dashed\", fillcolor=\"#ffffff\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} [label={}{style}];",
                quote(&n.label()),
                quote(&label)
            );
        }
        out.push_str("  }\n");
    }
    let mut externals: Vec<&Node> = map
        .connections
        .iter()
        .flat_map(|c| [&c.src, &c.dst])
        .filter(|n| matches!(n, Node::External { .. }))
        .collect();
    externals.sort();
    externals.dedup();
    for n in externals {
        if let Node::External { ranges } = n {
            let _ = writeln!(
                out,
                "  {} [label={}, shape=ellipse, fillcolor=\"#fff4e5\"];",
                quote(&n.label()),
                quote(&format!(
                    "outside the cluster\n{}",
                    ranges.replace(',', "\n")
                ))
            );
        }
    }
    for c in &map.connections {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            quote(&c.src.label()),
            quote(&c.dst.label()),
            quote(&c.conn.to_string().replace(",", ",\n"))
        );
    }
    out.push_str("}\n");
    out
}

/// A dot string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// One self-contained page: the picture (an svg rendered from `dot`),
/// the connections as a table, and the notes. Viewable offline.
pub fn html(map: &Connectivity, svg: &str, title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\nbody {{ font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #1f2933; }}\n.map {{ overflow: auto; border: 1px solid #d9e2ec; padding: 1em; }}\n.map svg {{ max-width: none; }}\ntable {{ border-collapse: collapse; margin-top: 1em; }}\nth, td {{ border: 1px solid #d9e2ec; padding: 0.3em 0.6em; text-align: left; font-size: 0.9em; }}\nth {{ background: #f0f4f8; }}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>{} workloads, {} connections. An arrow is a connection the NetworkPolicies allow, labelled with its protocols and ports; a box is a workload (its pods), grouped by namespace; an ellipse is a range of addresses outside the cluster. Dashed boxes are host-network workloads, outside NetworkPolicy.</p>\n<div class=\"map\">\n",
        escape(title),
        escape(title),
        map.workloads.len() + map.host_network.len(),
        map.connections.len()
    );
    // The svg from Graphviz starts with an XML prolog and a DOCTYPE; inline
    // svg in HTML takes only the element.
    let svg = svg.find("<svg").map_or(svg, |i| &svg[i..]);
    out.push_str(svg);
    out.push_str("</div>\n");
    if !map.notes.is_empty() {
        out.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &map.notes {
            let _ = writeln!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h2>Connections</h2>\n<table>\n<tr><th>src</th><th>dst</th><th>conn</th></tr>\n");
    for c in &map.connections {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.src.label()),
            escape(&c.dst.label()),
            escape(&c.conn.to_string())
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `--exposure` as text: one block per workload reachable from beyond its
/// own namespace's chosen peers.
pub fn exposure_txt(exposure: &[Exposure]) -> String {
    let mut out = String::new();
    for e in exposure {
        let mut lines = Vec::new();
        if let Some(c) = &e.every_namespace {
            lines.push(format!("  from every namespace: {c}"));
        }
        if let Some(c) = &e.future_namespaces {
            lines.push(format!("  from namespaces that do not exist yet: {c}"));
        }
        for (ranges, c) in &e.external {
            lines.push(format!("  from outside the cluster ({ranges}): {c}"));
        }
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", e.workload.label());
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("No workload is reachable from every namespace, from namespaces that do not exist yet, or from outside the cluster.\n");
    }
    out
}

pub fn exposure_json(exposure: &[Exposure]) -> Value {
    json!(exposure.iter().filter(|e| e.every_namespace.is_some() || e.future_namespaces.is_some() || !e.external.is_empty()).map(|e| json!({
        "workload": e.workload.label(),
        "everyNamespace": e.every_namespace.as_ref().map(ToString::to_string),
        "futureNamespaces": e.future_namespaces.as_ref().map(ToString::to_string),
        "external": e.external.iter().map(|(r, c)| json!({"ranges": r, "conn": c.to_string()})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>())
}

/// The diff, one change a line.
pub fn diff_txt(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&c.line());
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("No connection or workload changed.\n");
    }
    out
}

pub fn diff_csv(changes: &[Change]) -> String {
    let mut out = String::from("diff-type,source,destination,old,new\n");
    for c in changes {
        let (s, d, o, n) = c.fields();
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            c.kind(),
            csv_field(&s),
            csv_field(&d),
            csv_field(&o),
            csv_field(&n)
        );
    }
    out
}

/// For a pull-request comment: a summary line, then a table.
pub fn diff_md(changes: &[Change]) -> String {
    let count = |k: &str| changes.iter().filter(|c| c.kind() == k).count();
    let mut out = String::from("### NetworkPolicy connectivity changes\n\n");
    if changes.is_empty() {
        out.push_str("No connection or workload changed.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{} added, {} removed, {} changed; {} workloads added, {} removed.{}\n",
        count("added"),
        count("removed"),
        count("changed"),
        count("workload-added"),
        count("workload-removed"),
        if changes.iter().any(Change::opens) {
            " **This change opens new connections.**"
        } else {
            ""
        }
    );
    out.push_str("| change | source | destination | before | after |\n|--------|--------|-------------|--------|-------|\n");
    for c in changes {
        let (s, d, o, n) = c.fields();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.kind(),
            md_cell(&s),
            md_cell(&d),
            md_cell(&o),
            md_cell(&n)
        );
    }
    out
}

pub fn diff_json(changes: &[Change]) -> Value {
    json!(
        changes
            .iter()
            .map(|c| {
                let (s, d, o, n) = c.fields();
                match c {
                    Change::WorkloadAdded(_) | Change::WorkloadRemoved(_) => {
                        json!({"diffType": c.kind(), "workload": s})
                    }
                    _ => json!({"diffType": c.kind(), "src": s, "dst": d, "old": o, "new": n}),
                }
            })
            .collect::<Vec<_>>()
    )
}
