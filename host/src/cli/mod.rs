//! The `bitspike` command line: one module per subcommand group, parsing in [`args`].

pub(crate) mod args;
pub(crate) mod costs;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod files;
pub(crate) mod mps;
pub(crate) mod qac;
pub(crate) mod snn;
pub(crate) mod ssql;
pub(crate) mod tools;
