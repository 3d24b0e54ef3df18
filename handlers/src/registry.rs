//! Selecting handlers by name at run time (`--handler logging:uppercase`).

use std::fmt;
use std::sync::Arc;

use crate::{Echo, Handler, Logging, Uppercase};

type BuildHandler = Box<dyn Fn() -> Arc<dyn Handler> + Send + Sync>;
type WrapHandler = Box<dyn Fn(Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync>;

/// Named handlers and decorators, and the `SPEC` grammar that picks one:
/// `NAME` for a handler, `DECORATOR:SPEC` for a decorator around another spec, and a bare
/// `DECORATOR` for the decorator around the default handler (the first one added).
///
/// ```
/// use echopool_handlers::Registry;
///
/// let registry = Registry::stock();
/// assert!(registry.build("logging:uppercase").is_ok());
/// let err = registry.build("shout").err().unwrap();
/// assert_eq!(
///     err.to_string(),
///     "unknown handler 'shout'; known handlers: echo, uppercase, logging, logging:SPEC"
/// );
/// ```
#[derive(Default)]
pub struct Registry {
    handlers: Vec<(String, String, BuildHandler)>,
    decorators: Vec<(String, String, WrapHandler)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stock handlers: `echo` (the default), `uppercase`, and the `logging` decorator.
    pub fn stock() -> Self {
        let mut registry = Self::new();
        registry.add_handler(
            "echo",
            "write every byte back as it arrives (default)",
            || Arc::new(Echo),
        );
        registry.add_handler(
            "uppercase",
            "write back the Unicode uppercase of UTF-8 text; other bytes pass unchanged",
            || Arc::new(Uppercase),
        );
        registry.add_decorator(
            "logging",
            "log each connection's open, chunks (at debug) and close around SPEC (default echo)",
            |inner| Arc::new(Logging::new(inner)),
        );
        registry
    }

    /// Adds a handler under `name`; `summary` is one line for `--help`.
    ///
    /// # Panics
    ///
    /// If `name` is empty, holds a `:`, or is taken already.
    pub fn add_handler(
        &mut self,
        name: &str,
        summary: &str,
        build: impl Fn() -> Arc<dyn Handler> + Send + Sync + 'static,
    ) {
        self.check_new_name(name);
        self.handlers
            .push((name.to_string(), summary.to_string(), Box::new(build)));
    }

    /// Adds a decorator under `name`: a handler that wraps the handler its `SPEC` names.
    ///
    /// # Panics
    ///
    /// If `name` is empty, holds a `:`, or is taken already.
    pub fn add_decorator(
        &mut self,
        name: &str,
        summary: &str,
        wrap: impl Fn(Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync + 'static,
    ) {
        self.check_new_name(name);
        self.decorators
            .push((name.to_string(), summary.to_string(), Box::new(wrap)));
    }

    /// Builds the handler that `spec` names.
    ///
    /// # Errors
    ///
    /// [`UnknownHandler`] when a name in `spec` is not registered; its message lists the names
    /// that are.
    pub fn build(&self, spec: &str) -> Result<Arc<dyn Handler>, UnknownHandler> {
        let unknown = || UnknownHandler {
            spec: spec.to_string(),
            known: self.names(),
        };
        let (name, inner) = match spec.split_once(':') {
            Some((name, inner)) => (name, Some(inner)),
            None => (spec, None),
        };
        if let Some((_, _, wrap)) = self.decorators.iter().find(|(n, ..)| n == name) {
            let inner = match inner {
                Some(inner) => self.build(inner).map_err(|_| unknown())?,
                None => self.default_handler().ok_or_else(unknown)?,
            };
            return Ok(wrap(inner));
        }
        match (self.handlers.iter().find(|(n, ..)| n == name), inner) {
            (Some((_, _, build)), None) => Ok(build()),
            _ => Err(unknown()),
        }
    }

    /// Every accepted form, in the order added: handler names, then each decorator as `NAME`
    /// and `NAME:SPEC`.
    pub fn names(&self) -> Vec<String> {
        let handlers = self.handlers.iter().map(|(name, ..)| name.clone());
        let decorators = self
            .decorators
            .iter()
            .flat_map(|(name, ..)| [name.clone(), format!("{name}:SPEC")]);
        handlers.chain(decorators).collect()
    }

    /// One indented line per handler and decorator with its summary, for `--help`.
    pub fn describe(&self) -> String {
        let handlers = self
            .handlers
            .iter()
            .map(|(name, summary, _)| (name.clone(), summary));
        let decorators = self
            .decorators
            .iter()
            .map(|(name, summary, _)| (format!("{name}[:SPEC]"), summary));
        let rows: Vec<_> = handlers.chain(decorators).collect();
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(name, summary)| format!("  {name:width$}  {summary}\n"))
            .collect()
    }

    /// The default handler's name: the first handler added, which a bare decorator wraps.
    pub fn default_name(&self) -> Option<&str> {
        self.handlers.first().map(|(name, ..)| name.as_str())
    }

    fn default_handler(&self) -> Option<Arc<dyn Handler>> {
        self.handlers.first().map(|(_, _, build)| build())
    }

    fn check_new_name(&self, name: &str) {
        assert!(
            !name.is_empty() && !name.contains(':'),
            "handler name {name:?} must be non-empty and hold no ':'"
        );
        let taken = self.handlers.iter().map(|(n, ..)| n);
        let taken = taken.chain(self.decorators.iter().map(|(n, ..)| n));
        assert!(
            !taken.into_iter().any(|n| n == name),
            "handler name {name:?} is registered already"
        );
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

/// The error for a handler spec that names no registered handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown handler '{spec}'; known handlers: {}", known.join(", "))]
pub struct UnknownHandler {
    /// The spec as given.
    pub spec: String,
    /// The forms the registry accepts.
    pub known: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnInfo;
    use std::io::Write;

    fn reply(spec: &str, input: &[u8]) -> Vec<u8> {
        let handler = Registry::stock().build(spec).unwrap();
        let mut session = handler.open(&ConnInfo::example()).into_session().unwrap();
        let mut out = Vec::new();
        session.data(input, &mut out).unwrap();
        session.eof(&mut out).unwrap();
        out.flush().unwrap();
        out
    }

    #[test]
    fn every_stock_spec_builds_the_right_handler() {
        assert_eq!(reply("echo", b"abc"), b"abc");
        assert_eq!(reply("uppercase", b"abc"), b"ABC");
        assert_eq!(reply("logging", b"abc"), b"abc");
        assert_eq!(reply("logging:uppercase", b"abc"), b"ABC");
        assert_eq!(reply("logging:logging:uppercase", b"abc"), b"ABC");
    }

    #[test]
    fn unknown_specs_list_the_known_names() {
        let registry = Registry::stock();
        for bad in [
            "",
            "shout",
            "echo:",
            "echo:uppercase",
            "logging:",
            "logging:shout",
            "LOGGING",
        ] {
            let err = registry.build(bad).err().expect(bad);
            assert_eq!(err.spec, bad);
            assert!(
                err.to_string().contains("echo, uppercase, logging"),
                "{err}"
            );
        }
    }

    #[test]
    fn describe_lists_every_name() {
        let text = Registry::stock().describe();
        for name in ["echo", "uppercase", "logging[:SPEC]"] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    #[should_panic(expected = "registered already")]
    fn names_are_unique() {
        Registry::stock().add_handler("echo", "again", || Arc::new(Echo));
    }
}
