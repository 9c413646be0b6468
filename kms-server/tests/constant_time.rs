//! THREATS 6: tags, MACs, commitments and check values are compared in constant time.
//! This scans the library's non-test source for `==`/`!=` on lines that mention them;
//! use `subtle::ConstantTimeEq` instead.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::Path;

/// Words (of identifiers split at `_` and punctuation) that name authenticators.
const SECRETISH: &[&str] = &[
    "tag",
    "mac",
    "commitment",
    "commit",
    "kcv",
    "check",
    "digest",
    "hash",
];

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, hits);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or("").to_lowercase();
                let compares = code.contains("==") || code.contains("!=");
                let secretish = code
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| SECRETISH.contains(&w));
                if compares && secretish {
                    hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
}

#[test]
fn no_variable_time_comparison_of_authenticators() {
    let mut hits = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "use subtle::ConstantTimeEq:\n{}",
        hits.join("\n")
    );
}
