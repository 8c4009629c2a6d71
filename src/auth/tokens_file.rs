//! `auth.tokens_file`: per-`proj` tokens kept outside the configuration, re-read on SIGHUP.
//!
//! The file has the shape of `[auth.proj_tokens]` without the header: one
//! `"pattern" = "token"` line per rule, `#` comments allowed.
//!
//! ```toml
//! "A-*"   = "3f9c0b6e..."
//! "db-?"  = "71aa04d2..."
//! "*"     = "a global token, reloadable"
//! ```
//!
//! TOML rather than a format of our own: lines can move between the configuration and the
//! file unchanged, quoting and escaping are already defined (a pattern may hold `=`, `#` or
//! spaces), and a duplicate pattern is a parse error rather than a silent override.

use std::path::{Path, PathBuf};

use super::secret::Secret;

/// The tokens file cannot be used. The message names the file and a line or a pattern, never
/// a token: a parser's own message may quote the offending text, so it is not passed on.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not TOML (or repeats a pattern).
    #[error("{}: not valid TOML at line {line}, column {column} (expected lines \"pattern\" = \"token\", each pattern once)", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped, from 1.
        line: usize,
        /// Where the parser stopped, from 1.
        column: usize,
    },
    /// A value is not a string (a number, a table, ...).
    #[error("{}: the token of pattern {pattern:?} must be a string", path.display())]
    NotAString {
        /// The file.
        path: PathBuf,
        /// The pattern whose value is wrong.
        pattern: String,
    },
}

/// Reads `path` into `(pattern, token)` pairs, in file order.
pub fn read(path: &Path) -> Result<Vec<(String, Secret)>, TokensFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokensFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|e| match e {
        Problem::Syntax { line, column } => TokensFileError::Syntax {
            path: path.to_owned(),
            line,
            column,
        },
        Problem::NotAString { pattern } => TokensFileError::NotAString {
            path: path.to_owned(),
            pattern,
        },
    })
}

enum Problem {
    Syntax { line: usize, column: usize },
    NotAString { pattern: String },
}

fn parse(text: &str) -> Result<Vec<(String, Secret)>, Problem> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |span| span.start);
        let (mut line, mut column) = (1, 1);
        for (_, c) in text.char_indices().take_while(|(i, _)| *i < at) {
            if c == '\n' {
                (line, column) = (line + 1, 1);
            } else {
                column += 1;
            }
        }
        Problem::Syntax { line, column }
    })?;
    table
        .into_iter()
        .map(|(pattern, value)| match value {
            toml::Value::String(token) => Ok((pattern, Secret::new(token))),
            _ => Err(Problem::NotAString { pattern }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hw-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_pattern_token_lines_with_comments_and_quoting() {
        let path = file(
            "good.toml",
            "# operators\n\"A-*\" = \"tok-a\"\n'weird = #key' = \"tok-w\"\n\n\"*\"=\"tok-all\"\n",
        );
        let rules = read(&path).unwrap();
        let patterns: Vec<&str> = rules.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(patterns.len(), 3);
        assert!(patterns.contains(&"A-*") && patterns.contains(&"weird = #key"));
        let a = rules.iter().find(|(p, _)| p == "A-*").unwrap();
        assert_eq!(a.1.expose(), "tok-a");
        assert!(read(&file("empty.toml", "")).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_file_and_line_but_never_a_token() {
        let path = file(
            "broken.toml",
            "\"A-*\" = \"ok-token\"\n\"B-*\" = secret-token-xyz\n",
        );
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("broken.toml") && e.contains("line 2"), "{e}");
        assert!(
            !e.contains("secret-token-xyz") && !e.contains("ok-token"),
            "{e}"
        );

        let path = file("number.toml", "\"B-*\" = 123456789\n");
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("\"B-*\"") && !e.contains("123456789"), "{e}");

        let path = file("dup.toml", "\"A\" = \"t1-secret\"\n\"A\" = \"t2-secret\"\n");
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("secret"), "{e}");

        let e = read(Path::new("/nonexistent/tokens.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/tokens.toml"), "{e}");
    }
}
