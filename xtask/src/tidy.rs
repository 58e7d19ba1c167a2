//! Tidy checks run as plain tests (`cargo test -p xtask`):
//! - the crate layering, enforced on every Cargo.toml so a new dependency edge is a review item;
//! - docs/ARCHITECTURE.md stays true: every path its code map names exists, every crate edge its
//!   layering diagram draws is a dependency in the manifests;
//! - gateway route modules send no Redis commands (no `redis::`: they call services);
//! - index admin commands are sent only by redrec-store (`store::index`) and Redis errors are
//!   classified only there (`store::error::classify`);
//! - no source file outside tests grows past 800 lines without an allow-list entry saying why.

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    /// (crate dir, internal crates it may depend on, external crates it must not depend on)
    const RULES: &[(&str, &[&str], &[&str])] = &[
        (
            "core",
            &[],
            &["axum", "tokio", "deadpool-redis", "tower-http"],
        ),
        (
            "reranker",
            &["redrec-core"],
            &["axum", "tokio", "redis", "deadpool-redis", "tower-http"],
        ),
        (
            "embedder",
            &["redrec-core"],
            &["axum", "redis", "deadpool-redis", "tower-http"],
        ),
        // the Redis access layer: connection setup, routing, typed calls per concern
        ("store", &["redrec-core"], &["axum", "tower-http"]),
        (
            "retriever",
            &["redrec-core", "redrec-store"],
            &["axum", "tower-http"],
        ),
        ("userstate", &["redrec-core"], &["axum", "tower-http"]),
        (
            "ingest",
            // userstate: interaction imports go through the same event function as the gateway
            &[
                "redrec-core",
                "redrec-embedder",
                "redrec-store",
                "redrec-userstate",
            ],
            &["axum", "tower-http"],
        ),
        (
            "gateway",
            &[
                "redrec-core",
                "redrec-retriever",
                "redrec-reranker",
                "redrec-userstate",
                "redrec-embedder",
                "redrec-store",
            ],
            &[],
        ),
        ("testkit", &["redrec-core"], &["axum"]),
        // the load generator of `cargo xtask bench`: talks to Redis and to the gateway over HTTP;
        // its KNN sweep also measures the retriever's own plan choice
        (
            "bench",
            &["redrec-core", "redrec-store", "redrec-retriever"],
            &["axum"],
        ),
        // the quality evaluation of `cargo xtask eval`: reads interaction files with ingest's
        // sources, imports training events with ingest's interaction import (into userstate's
        // event function), talks to the gateway over HTTP with bench's client
        (
            "eval",
            &[
                "redrec-core",
                "redrec-ingest",
                "redrec-userstate",
                "redrec-bench",
            ],
            &["axum"],
        ),
    ];

    /// Names listed in the `[dependencies]` table of a manifest (dev-dependencies are free).
    fn normal_deps(manifest: &str) -> Vec<String> {
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_deps = line == "[dependencies]";
                continue;
            }
            if !in_deps || line.starts_with('#') {
                continue;
            }
            if let Some((name, _)) = line.split_once('=') {
                deps.push(name.trim().trim_end_matches(".workspace").to_owned());
            }
        }
        deps
    }

    #[test]
    fn crate_layering_holds() {
        let root = crate::workspace_root();
        let mut problems = Vec::new();
        for entry in fs::read_dir(root.join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let Some((_, allowed, banned)) = RULES.iter().find(|(n, _, _)| *n == name) else {
                problems.push(format!(
                    "crates/{name} has no layering rule in xtask/src/tidy.rs"
                ));
                continue;
            };
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            for dep in normal_deps(&manifest) {
                if dep.starts_with("redrec-") && !allowed.contains(&dep.as_str()) {
                    problems.push(format!("crates/{name} must not depend on {dep}"));
                }
                if banned.contains(&dep.as_str()) {
                    problems.push(format!("crates/{name} must not depend on {dep}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "layering violations:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn parses_dependency_tables() {
        let deps = normal_deps(
            "[package]\nname = \"x\"\n[dependencies]\nredrec-core.workspace = true\naxum = \"1\"\n[dev-dependencies]\ntokio = \"1\"\n",
        );
        assert_eq!(deps, ["redrec-core", "axum"]);
    }

    /// Longest source file (lines) outside tests before it needs a reason to stay one file.
    const MAX_LINES: usize = 800;

    /// Files allowed past [`MAX_LINES`], each with why.
    const LONG_FILES: &[(&str, &str)] = &[
        (
            "crates/core/src/filter.rs",
            "the filter AST, its JSON form, rendering and escaping are one grammar; half the file \
             is its table and property tests, which must sit next to the private escaping",
        ),
        (
            "crates/bench/src/suite.rs",
            "the benchmark's phases in the order they run, each a short function with its own \
             progress and failure message; to be split into phase modules",
        ),
        (
            "crates/bench/src/report.rs",
            "the report's markdown sections and their snapshot tests; to be split by section",
        ),
    ];

    /// Every file and directory below `dir` (relative to `root`, `/`-separated), skipping build
    /// output and VCS data.
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "target" || name.starts_with('.') {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }

    fn files() -> Vec<String> {
        let root = crate::workspace_root();
        let mut out = Vec::new();
        for top in ["crates", "xtask", "tests", "docs"] {
            out.push(format!("{top}/"));
            walk(&root, &root.join(top), &mut out);
        }
        out
    }

    /// Paths named in backticks in a markdown text, each with the code-map paragraph it appears
    /// in (`crates/gateway`, `xtask`, `tests/`), `None` outside the code map.
    fn named_paths(doc: &str) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let mut scope: Option<String> = None;
        let mut in_code_map = false;
        for line in doc.lines() {
            if line.starts_with("## ") {
                in_code_map = line == "## Code map";
                scope = None;
            }
            if in_code_map && let Some(rest) = line.strip_prefix("**`") {
                scope = rest
                    .split('`')
                    .next()
                    .map(|s| s.trim_end_matches('/').to_owned());
            }
            for (i, token) in line.split('`').enumerate() {
                let looks_like_path = token.contains('/')
                    || [".rs", ".lua", ".html"].iter().any(|e| token.ends_with(e));
                let plain = !token.contains([' ', '<', '{', '*', ':', '(']);
                if i % 2 == 1 && looks_like_path && plain {
                    out.push((scope.clone(), token.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn architecture_paths_exist() {
        let root = crate::workspace_root();
        let doc = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let files = files();
        let mut missing = Vec::new();
        for (scope, path) in named_paths(&doc) {
            let wanted = path.trim_end_matches('/');
            let under = scope
                .as_deref()
                .map(|s| format!("{s}/"))
                .unwrap_or_default();
            let found = files.iter().any(|f| {
                let f = f.trim_end_matches('/');
                f == wanted || (f.starts_with(&under) && f.ends_with(&format!("/{wanted}")))
            });
            if !found {
                missing.push(format!(
                    "`{path}` (in {})",
                    scope.as_deref().unwrap_or("docs/ARCHITECTURE.md")
                ));
            }
        }
        assert!(
            missing.is_empty(),
            "docs/ARCHITECTURE.md names paths that do not exist:\n{}",
            missing.join("\n")
        );
    }

    /// The `a ─▶ b ─▶ c` and `a ─▶ b, c` edges of the layering diagram between crates.
    fn layering_edges(doc: &str) -> Vec<(String, String)> {
        let section = doc
            .split("## Layering")
            .nth(1)
            .and_then(|s| s.split("```").nth(1))
            .expect("docs/ARCHITECTURE.md has a ## Layering diagram");
        let mut edges = Vec::new();
        for line in section.lines() {
            // two diagrams side by side: split at runs of spaces between chains
            for chain in line.split("    ").map(str::trim).filter(|c| !c.is_empty()) {
                let nodes: Vec<&str> = chain
                    .split('▶')
                    .map(|n| n.trim_end_matches('─').trim())
                    .collect();
                for pair in nodes.windows(2) {
                    let from = pair[0].rsplit(',').next().unwrap().trim();
                    for to in pair[1].split(',').map(str::trim) {
                        let is_crate = |n: &str| !n.is_empty() && !n.contains(' ');
                        if is_crate(from) && is_crate(to) && from != "xtask" {
                            edges.push((from.to_owned(), to.to_owned()));
                        }
                    }
                }
            }
        }
        edges
    }

    #[test]
    fn architecture_edges_are_in_the_manifests() {
        let root = crate::workspace_root();
        let doc = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let edges = layering_edges(&doc);
        assert!(edges.len() > 5, "too few edges parsed: {edges:?}");
        let mut problems = Vec::new();
        for (from, to) in edges {
            let manifest = root.join("crates").join(&from).join("Cargo.toml");
            let Ok(text) = fs::read_to_string(&manifest) else {
                problems.push(format!("`{from}` is not a crate under crates/"));
                continue;
            };
            if !normal_deps(&text).contains(&format!("redrec-{to}")) {
                problems.push(format!(
                    "{from} -> {to}: crates/{from}/Cargo.toml has no redrec-{to}"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "docs/ARCHITECTURE.md draws edges the manifests do not have:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn reads_layering_diagrams() {
        let doc = "## Layering\n\n```\na ─▶ b ─▶ c        d ─▶ e, f\nxtask ─▶ runs things\n```\n";
        assert_eq!(
            layering_edges(doc),
            [("a", "b"), ("b", "c"), ("d", "e"), ("d", "f")]
                .map(|(x, y)| (x.to_owned(), y.to_owned()))
        );
        let paths = named_paths(
            "## Code map\n**`crates/x` (x)**: `a.rs` and `b/`, not `{ns}:item`\n## Other\n`c/d.rs`",
        );
        assert_eq!(
            paths,
            [
                (Some("crates/x".to_owned()), "crates/x".to_owned()),
                (Some("crates/x".to_owned()), "a.rs".to_owned()),
                (Some("crates/x".to_owned()), "b/".to_owned()),
                (None, "c/d.rs".to_owned()),
            ]
        );
    }

    #[test]
    fn gateway_routes_send_no_redis_commands() {
        let root = crate::workspace_root();
        let mut offenders = Vec::new();
        for f in files() {
            if f.starts_with("crates/gateway/src/routes/") && f.ends_with(".rs") {
                let text = fs::read_to_string(root.join(&f)).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if line.contains("redis::") {
                        offenders.push(format!("{f}:{}: {}", n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "route modules translate HTTP to service calls; Redis commands belong in \
             redrec-store or gateway/src/services:\n{}",
            offenders.join("\n")
        );
    }

    #[test]
    fn index_admin_and_error_classification_live_in_the_store() {
        const ADMIN: [&str; 6] = [
            "\"FT.CREATE\"",
            "\"FT.ALTER\"",
            "\"FT.ALIASUPDATE\"",
            "\"FT.ALIASADD\"",
            "\"FT.ALIASDEL\"",
            "\"FT.DROPINDEX\"",
        ];
        const CLASSIFYING: [&str; 3] =
            ["ServerErrorKind::", "is_connection_dropped", "is_io_error"];
        let root = crate::workspace_root();
        let mut offenders = Vec::new();
        for f in files() {
            let in_tests = f.starts_with("tests/") || f.contains("/tests/");
            if !f.starts_with("crates/")
                || !f.ends_with(".rs")
                || in_tests
                || f.starts_with("crates/store/")
                // test support: drops each test's indexes
                || f.starts_with("crates/testkit/")
            {
                continue;
            }
            let text = fs::read_to_string(root.join(&f)).unwrap();
            // unit tests may build errors and commands of their own
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // core renders `FT.CREATE` (`IndexSchema::ft_create_cmd`) but sends nothing
            let admin: &[&str] = if f.starts_with("crates/core/") {
                &[]
            } else {
                &ADMIN
            };
            for (n, line) in code.lines().enumerate() {
                if admin.iter().chain(&CLASSIFYING).any(|p| line.contains(p)) {
                    offenders.push(format!("{f}:{}: {}", n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "index admin goes through redrec_store::index and Redis errors through \
             redrec_store::classify:\n{}",
            offenders.join("\n")
        );
    }

    #[test]
    fn no_long_files_without_a_reason() {
        let root = crate::workspace_root();
        let mut long = Vec::new();
        for f in files() {
            let in_tests = f.starts_with("tests/") || f.contains("/tests/");
            if !f.ends_with(".rs")
                || in_tests
                || f.contains("/benches/")
                || f.contains("/examples/")
            {
                continue;
            }
            let lines = fs::read_to_string(root.join(&f)).unwrap().lines().count();
            let allowed = LONG_FILES.iter().any(|(p, _)| *p == f);
            if lines > MAX_LINES && !allowed {
                long.push(format!("{f}: {lines} lines"));
            }
        }
        for (p, why) in LONG_FILES {
            assert!(
                !why.is_empty() && root.join(p).exists(),
                "stale allow-list entry {p}"
            );
        }
        assert!(
            long.is_empty(),
            "files over {MAX_LINES} lines: split them, or add them to LONG_FILES in \
             xtask/src/tidy.rs with the reason:\n{}",
            long.join("\n")
        );
    }
}
