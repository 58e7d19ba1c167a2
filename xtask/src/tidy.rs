//! Tidy checks run as plain tests (`cargo test -p xtask`): the crate layering of
//! docs/ARCHITECTURE.md, enforced on every Cargo.toml so a new dependency edge is a review item.

#[cfg(test)]
mod tests {
    use std::fs;

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
        ("features", &["redrec-core"], &["axum", "tower-http"]),
        (
            "ingest",
            &["redrec-core", "redrec-embedder", "redrec-store"],
            &["axum", "tower-http"],
        ),
        (
            "gateway",
            &[
                "redrec-core",
                "redrec-retriever",
                "redrec-reranker",
                "redrec-features",
                "redrec-embedder",
                "redrec-store",
            ],
            &[],
        ),
        ("testkit", &["redrec-core"], &["axum"]),
        // the load generator of `cargo xtask bench`: talks to Redis and to the gateway over HTTP
        ("bench", &["redrec-core", "redrec-store"], &["axum"]),
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
}
