//! Processes, seen from outside: /proc readers ([`procfs`]), the kernel's socket table
//! ([`sockets`]), what a supervisor records about a slot's app ([`pidfile`]), proving who
//! answers on a slot's port ([`proof`]), and stopping a proven app ([`signal`]). **This is the
//! only module that sends signals.**
//!
//! Everything about other processes is read from /proc: no lsof, no fuser. Launching an app is
//! its supervisor's business ([`crate::supervisor`]).

pub mod pidfile;
pub mod procfs;
pub mod proof;
pub mod signal;
pub mod sockets;

pub use pidfile::{
    read_exit_record, read_pid_file, running_app, slot_process, ExitRecord, PidFile, SlotProcess,
    Stale,
};
pub use procfs::{alive, boot_id, children, cmdline, same_process, started_at, stat, tree, Stat};
pub use proof::{answerer, answerer_of, owner, owner_of, Answerer, Owner};
pub use signal::terminate;
pub use sockets::{
    connecting_to, established_to, holds_socket, in_flight_to, listen_inodes, listener, listeners,
    listening_sockets_of, port_in_use, socket_inodes, tcp_sockets, wait_port_free, TcpRow,
};
