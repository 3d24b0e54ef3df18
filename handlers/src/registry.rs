//! Selecting handlers by name at run time (`--handler logging:uppercase`).

use std::fmt;
use std::sync::Arc;

use crate::{Echo, Handler, Logging, Uppercase};

type BuildHandler = Box<dyn Fn() -> Arc<dyn Handler> + Send + Sync>;
type BuildWithArgs = Box<dyn Fn(&str) -> Result<Arc<dyn Handler>, String> + Send + Sync>;
type WrapHandler = Box<dyn Fn(Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync>;

/// How a registered handler is built: from its name alone, or from the text after `NAME:`.
enum Build {
    Plain(BuildHandler),
    /// The label shown for the arguments (`PROGRAM [ARG...]`), and the builder.
    WithArgs(String, BuildWithArgs),
}

/// Named handlers and decorators, and the `SPEC` grammar that picks one:
/// `NAME` for a handler, `NAME:ARGS` for a handler that takes arguments (everything after the
/// first `:` is its own), `DECORATOR:SPEC` for a decorator around another spec, and a bare
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
    handlers: Vec<(String, String, Build)>,
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
        let build = Build::Plain(Box::new(build));
        self.handlers
            .push((name.to_string(), summary.to_string(), build));
    }

    /// Adds a handler under `name` that takes arguments: `NAME:ARGS`, where `ARGS` is all the
    /// text after the first `:` (it may hold more colons). `args` labels them in `--help`
    /// (`PROGRAM [ARG...]`); `build` turns them into the handler, or says what is wrong with
    /// them (checked once, when the spec is built, so a server can refuse a bad spec at start).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use echopool_handlers::{Echo, Registry};
    ///
    /// let mut registry = Registry::stock();
    /// registry.add_handler_with_args("repeat", "N", "echo N times", |n| {
    ///     let n: u32 = n.parse().map_err(|_| format!("repeat: '{n}' is not a count"))?;
    ///     let _ = n; // a real handler would keep it
    ///     Ok(Arc::new(Echo))
    /// });
    /// assert!(registry.build("logging:repeat:3").is_ok());
    /// let err = registry.build("repeat:x").err().unwrap();
    /// assert_eq!(err.to_string(), "repeat: 'x' is not a count");
    /// ```
    ///
    /// # Panics
    ///
    /// If `name` is empty, holds a `:`, or is taken already.
    pub fn add_handler_with_args(
        &mut self,
        name: &str,
        args: &str,
        summary: &str,
        build: impl Fn(&str) -> Result<Arc<dyn Handler>, String> + Send + Sync + 'static,
    ) {
        self.check_new_name(name);
        let build = Build::WithArgs(args.to_string(), Box::new(build));
        self.handlers
            .push((name.to_string(), summary.to_string(), build));
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
    /// [`SpecError::Unknown`] when a name in `spec` is not registered (its message lists the
    /// names that are); [`SpecError::Invalid`] when a handler refused its arguments.
    pub fn build(&self, spec: &str) -> Result<Arc<dyn Handler>, SpecError> {
        let unknown = || {
            SpecError::Unknown(UnknownHandler {
                spec: spec.to_string(),
                known: self.names(),
            })
        };
        let (name, inner) = match spec.split_once(':') {
            Some((name, inner)) => (name, Some(inner)),
            None => (spec, None),
        };
        if let Some((_, _, wrap)) = self.decorators.iter().find(|(n, ..)| n == name) {
            let inner = match inner {
                Some(inner) => match self.build(inner) {
                    Ok(inner) => inner,
                    Err(SpecError::Unknown(_)) => return Err(unknown()),
                    Err(invalid) => return Err(invalid),
                },
                None => self.default_handler().ok_or_else(unknown)?,
            };
            return Ok(wrap(inner));
        }
        let invalid = |reason: String| SpecError::Invalid {
            spec: spec.to_string(),
            reason,
        };
        match (self.handlers.iter().find(|(n, ..)| n == name), inner) {
            (Some((_, _, Build::Plain(build))), None) => Ok(build()),
            (Some((_, _, Build::WithArgs(_, build))), Some(args)) => build(args).map_err(invalid),
            (Some((_, _, Build::WithArgs(label, _))), None) => {
                Err(invalid(format!("{name} needs arguments: {name}:{label}")))
            }
            _ => Err(unknown()),
        }
    }

    /// Every accepted form, in the order added: handler names, then each decorator as `NAME`
    /// and `NAME:SPEC`.
    pub fn names(&self) -> Vec<String> {
        let handlers = self
            .handlers
            .iter()
            .map(|(name, _, build)| with_args(name, build));
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
            .map(|(name, summary, build)| (with_args(name, build), summary));
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

    /// The default handler's name: the first handler added that takes no arguments, which a
    /// bare decorator wraps.
    pub fn default_name(&self) -> Option<&str> {
        self.default_entry().map(|(name, _)| name)
    }

    /// The handler at the heart of `spec`, past its decorators: `exec` for
    /// `logging:exec:cat`, `echo` for a bare `logging`. `None` when `spec` names no registered
    /// handler there.
    pub fn handler_name<'a>(&'a self, spec: &'a str) -> Option<&'a str> {
        let (name, inner) = match spec.split_once(':') {
            Some((name, inner)) => (name, Some(inner)),
            None => (spec, None),
        };
        if self.decorators.iter().any(|(n, ..)| n == name) {
            return match inner {
                Some(inner) => self.handler_name(inner),
                None => self.default_name(),
            };
        }
        self.handlers
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(n, ..)| n.as_str())
    }

    fn default_entry(&self) -> Option<(&str, &BuildHandler)> {
        self.handlers
            .iter()
            .find_map(|(name, _, build)| match build {
                Build::Plain(build) => Some((name.as_str(), build)),
                Build::WithArgs(..) => None,
            })
    }

    fn default_handler(&self) -> Option<Arc<dyn Handler>> {
        self.default_entry().map(|(_, build)| build())
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

/// The name a handler shows in lists: `echo`, or `exec:PROGRAM [ARG...]` for one that takes
/// arguments.
fn with_args(name: &str, build: &Build) -> String {
    match build {
        Build::Plain(_) => name.to_string(),
        Build::WithArgs(label, _) => format!("{name}:{label}"),
    }
}

/// Why a handler spec could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A name in the spec is not registered.
    #[error(transparent)]
    Unknown(#[from] UnknownHandler),
    /// A handler refused its arguments (`exec:` with a program that is not there, say).
    #[error("{reason}")]
    Invalid {
        /// The spec as given.
        spec: String,
        /// What the handler said, naming what was wrong.
        reason: String,
    },
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
    use crate::{ConnInfo, Uppercase};
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
            let Some(SpecError::Unknown(err)) = registry.build(bad).err() else {
                panic!("{bad} was not refused as unknown");
            };
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

    fn with_a_handler_that_takes_args() -> Registry {
        let mut registry = Registry::stock();
        registry.add_handler_with_args("upper-if", "WORD", "uppercase if WORD is yes", |word| {
            match word {
                "yes" => Ok(Arc::new(Uppercase) as Arc<dyn Handler>),
                "no" | "a:b c" => Ok(Arc::new(Echo)),
                other => Err(format!("upper-if: '{other}' is neither yes nor no")),
            }
        });
        registry
    }

    #[test]
    fn a_handler_takes_everything_after_its_name_as_arguments() {
        let registry = with_a_handler_that_takes_args();
        let reply = |spec: &str| {
            let handler = registry.build(spec).unwrap();
            let mut session = handler.open(&ConnInfo::example()).into_session().unwrap();
            let mut out = Vec::new();
            session.data(b"abc", &mut out).unwrap();
            out
        };
        assert_eq!(reply("upper-if:yes"), b"ABC");
        assert_eq!(reply("logging:upper-if:no"), b"abc");
        assert_eq!(reply("logging:logging:upper-if:a:b c"), b"abc");
        assert_eq!(
            registry.handler_name("logging:upper-if:a:b"),
            Some("upper-if")
        );
        assert_eq!(registry.handler_name("logging"), Some("echo"));
        assert_eq!(registry.handler_name("shout"), None);
    }

    #[test]
    fn refused_arguments_say_why_even_under_a_decorator() {
        let registry = with_a_handler_that_takes_args();
        for spec in ["upper-if:maybe", "logging:upper-if:maybe"] {
            let err = registry.build(spec).err().unwrap();
            assert_eq!(err.to_string(), "upper-if: 'maybe' is neither yes nor no");
        }
        let err = registry.build("upper-if").err().unwrap();
        assert_eq!(err.to_string(), "upper-if needs arguments: upper-if:WORD");
        assert!(matches!(err, SpecError::Invalid { .. }));
        let names = registry.names().join(", ");
        assert!(names.contains("upper-if:WORD"), "{names}");
        assert!(registry.describe().contains("upper-if:WORD"));
        assert_eq!(registry.default_name(), Some("echo"));
    }

    #[test]
    #[should_panic(expected = "registered already")]
    fn names_are_unique() {
        Registry::stock().add_handler("echo", "again", || Arc::new(Echo));
    }
}
