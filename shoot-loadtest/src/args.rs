//! A small `--key value` argument parser (no dependency needed for a handful of options).

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// Parsed arguments: one subcommand and `--key value` / `--flag` options.
#[derive(Debug, Clone, Default)]
pub struct Args {
    /// The subcommand (first positional argument).
    pub command: Option<String>,
    values: BTreeMap<String, String>,
    used: std::cell::RefCell<Vec<String>>,
}

impl Args {
    /// Parses `argv` without the program name. `--key=value`, `--key value` and bare
    /// `--flag` (followed by another option or the end) are accepted.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args> {
        let mut args = Args::default();
        let mut it = argv.into_iter().peekable();
        while let Some(a) = it.next() {
            if let Some(opt) = a.strip_prefix("--") {
                if let Some((k, v)) = opt.split_once('=') {
                    args.values.insert(k.to_owned(), v.to_owned());
                } else if it.peek().is_some_and(|n| !n.starts_with("--")) {
                    let v = it.next().unwrap_or_default();
                    args.values.insert(opt.to_owned(), v);
                } else {
                    args.values.insert(opt.to_owned(), "true".to_owned());
                }
            } else if args.command.is_none() {
                args.command = Some(a);
            } else {
                bail!("unexpected argument {a:?}");
            }
        }
        Ok(args)
    }

    /// Whether `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.used.borrow_mut().push(name.to_owned());
        self.values.contains_key(name)
    }

    /// `--name` parsed, or `default`.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.used.borrow_mut().push(name.to_owned());
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<T>()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("--{name} {v:?}")),
        }
    }

    /// `--name` as a string, or `None`.
    pub fn opt(&self, name: &str) -> Option<String> {
        self.used.borrow_mut().push(name.to_owned());
        self.values.get(name).cloned()
    }

    /// Fails on any option that was never looked up (a typo would otherwise be ignored).
    pub fn reject_unknown(&self) -> Result<()> {
        let used = self.used.borrow();
        for k in self.values.keys() {
            if !used.iter().any(|u| u == k) {
                bail!("unknown option --{k} (see --help)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(s.split_whitespace().map(str::to_owned)).unwrap()
    }

    #[test]
    fn parses_command_values_and_flags() {
        let a = parse("fanout --clients 200 --rate=5000 --verbose --target shoot");
        assert_eq!(a.command.as_deref(), Some("fanout"));
        assert_eq!(a.get("clients", 0usize).unwrap(), 200);
        assert_eq!(a.get("rate", 0.0f64).unwrap(), 5000.0);
        assert!(a.has("verbose"));
        assert_eq!(a.opt("target").as_deref(), Some("shoot"));
        assert_eq!(a.get("duration", 7u64).unwrap(), 7);
        a.reject_unknown().unwrap();
        assert!(a.get::<u32>("target", 0).is_err());
    }

    #[test]
    fn unknown_options_and_extra_positionals_are_errors() {
        let a = parse("idle --clinets 5");
        assert!(a.reject_unknown().is_err());
        assert!(Args::parse(["a".to_owned(), "b".to_owned()]).is_err());
    }
}
