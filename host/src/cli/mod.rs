//! The `bitspike` command line: the root and the subcommands in [`command`], the argument
//! groups several share in [`args`], each subcommand's own arguments beside its dispatch.

pub(crate) mod args;
pub(crate) mod command;
pub(crate) mod costs;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod files;
pub(crate) mod mps;
pub(crate) mod qac;
pub(crate) mod snn;
pub(crate) mod ssql;
pub(crate) mod tools;
pub(crate) mod train;
