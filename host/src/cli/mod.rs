//! The `bitspike` command line: the root and the subcommands in [`command`], the argument
//! groups several share in [`args`], each subcommand's own arguments beside its dispatch.

pub(crate) mod args;
pub(crate) mod command;
pub(crate) mod costs;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod files;
pub(crate) mod golden;
pub(crate) mod inspect;
pub(crate) mod model;
pub(crate) mod mps;
pub(crate) mod ops;
pub(crate) mod qac;
pub(crate) mod report;
pub(crate) mod snn;
pub(crate) mod ssql;
pub(crate) mod train;
