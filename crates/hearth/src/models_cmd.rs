//! `hearth models list`: the stored models as a table, then known models not yet pulled.

use std::fmt::Write;

use anyhow::Result;
use hearth_models::store::{known_models, Store, StoredModel};

/// The table printed by `hearth models list`.
pub fn list(store: &Store) -> Result<String> {
    let stored = store.list()?;
    let mut out = String::new();
    if stored.is_empty() {
        writeln!(
            out,
            "no models in {}",
            store.home().join("models").display()
        )?;
    } else {
        out.push_str(&table(&stored));
    }
    let missing: Vec<_> = known_models()
        .into_iter()
        .filter(|k| !stored.iter().any(|s| s.name == k.name))
        .collect();
    if !missing.is_empty() {
        writeln!(out, "\nknown, not pulled (`hearth pull NAME`):")?;
        for k in missing {
            let aliases = if k.aliases.is_empty() {
                String::new()
            } else {
                format!(" (aliases: {})", k.aliases.join(", "))
            };
            writeln!(out, "  {}{aliases}  {}", k.name, human_size(k.size))?;
        }
    }
    Ok(out)
}

fn table(models: &[StoredModel]) -> String {
    let rows: Vec<[String; 4]> = models
        .iter()
        .map(|m| {
            [
                m.name.clone(),
                human_size(m.size),
                m.sha256.clone(),
                m.path.display().to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "SIZE", "SHA256", "PATH"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Bytes in binary units, one decimal ("93.8 MiB").
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_models::store::{Manifest, Source};

    fn store_with(names: &[&str]) -> Store {
        let home = std::env::temp_dir().join(format!(
            "hearth-models-cmd-{}-{}",
            std::process::id(),
            names.len()
        ));
        let _ = std::fs::remove_dir_all(&home);
        let store = Store::open(home).expect("store");
        for name in names {
            let staged = store.staging_path(name, "m.gguf").expect("stage");
            std::fs::write(&staged, vec![0u8; 2048]).expect("write");
            let manifest = Manifest {
                name: name.to_string(),
                file: "m.gguf".into(),
                size: 2048,
                sha256: "ab".repeat(32),
                source: Source::Local { path: "/x".into() },
            };
            store.commit(&manifest, &staged).expect("commit");
        }
        store
    }

    #[test]
    fn table_lists_each_model_with_size_hash_and_path() {
        let store = store_with(&["beta", "alpha"]);
        let out = list(&store).expect("list");
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("SHA256"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("alpha ") && lines[2].starts_with("beta "),
            "{out}"
        );
        assert!(
            lines[1].contains("2.0 KiB") && lines[1].contains(&"ab".repeat(32)),
            "{out}"
        );
        assert!(lines[1].contains("models/alpha/m.gguf"), "{out}");
        // Columns line up: SHA256 starts at the same offset on every row.
        let col = lines[0].find("SHA256").expect("col");
        assert_eq!(lines[1].find(&"ab".repeat(32)), Some(col));
        assert!(out.contains("known, not pulled") && out.contains("smollm2-135m-instruct-q4_1"));
    }

    #[test]
    fn empty_store_says_so() {
        let out = list(&store_with(&[])).expect("list");
        assert!(out.starts_with("no models in "), "{out}");
        assert!(out.contains("aliases: default"), "{out}");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(98_362_432), "93.8 MiB");
    }
}
