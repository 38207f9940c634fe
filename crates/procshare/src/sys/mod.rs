//! The only place procshare makes raw system calls (Linux).
//!
//! Every syscall sits behind one small safe function whose first doc line names it. Errors at
//! this level are plain `std::io::Error`s; the layers above turn them into `procshare::Error`.
//! A port to another OS replaces this module, not the crate.
//!
//! # Safety
//! Each `unsafe` block here calls libc with pointers derived from live Rust references or
//! owned file descriptors, and with lengths taken from the same slices; each block says which.
#![allow(unsafe_code)]

pub mod deadline;
pub mod dir;
pub mod fd;
pub mod futex;
pub mod limits;
pub mod memfd;
pub mod mmap;
pub mod owner;
pub mod poll;
pub mod proc;
pub mod shm;
pub mod socket;

use std::io;

/// Turns a libc return value of `-1` into the current `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`] for calls that return `ssize_t`.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Retries `f` while it fails with `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
