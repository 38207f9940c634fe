//! Directories held open by descriptor: `openat`, `mkdirat`, `unlinkat`, `renameat`, `linkat`,
//! `fstatat`, `readdir` — every name resolved relative to a directory we already checked, never
//! following a symlink in the last component.
//!
//! A path walked again by name can be swapped (a symlink, another user's directory) between the
//! check and the use; a descriptor cannot. Every open here adds `O_NOFOLLOW` (a symlink is
//! `ELOOP`), `O_NONBLOCK` (a FIFO does not hang the open) and `O_CLOEXEC`.

use super::{cvt, retry};
use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What `fstat` says about a file, as far as procshare cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`: tells one incarnation of a name from the next.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_uid`.
    pub uid: u32,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// `st_nlink`: 0 once the file (or directory) was removed.
    pub nlink: u64,
}

impl Stat {
    fn from_raw(st: &libc::stat) -> Stat {
        Stat {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            uid: st.st_uid,
            mode: st.st_mode,
            nlink: st.st_nlink,
        }
    }

    /// A regular file (`S_ISREG`).
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// A directory (`S_ISDIR`).
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// The permission bits (`mode & 0o777`).
    pub fn perms(&self) -> u32 {
        self.mode & 0o777
    }
}

/// `fstat(fd)`.
///
/// # References
/// fstat(2)
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer to a `stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it.
    Ok(Stat::from_raw(&unsafe { st.assume_init() }))
}

/// `geteuid()`: the user whose files these are (files are created with it).
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn c_name(name: &str) -> io::Result<CString> {
    // A name is one component inside the directory: '/' or ".." would walk out of it.
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

const OPEN_FLAGS: libc::c_int = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | OPEN_FLAGS;

/// An open directory; the names given to its methods are single components inside it.
#[derive(Debug)]
pub struct Dir(OwnedFd);

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Dir {
    /// `open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC)`: a trusted starting
    /// point such as `/dev/shm`, which follows symlinks (some systems make `/dev/shm` one to
    /// `/run/shm`); every name below it is then opened without following.
    ///
    /// # References
    /// open(2)
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let flags = DIR_FLAGS & !libc::O_NOFOLLOW;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let fd = retry(|| cvt(unsafe { libc::open(c.as_ptr(), flags) }))?;
        // SAFETY: the kernel just returned this descriptor to us alone.
        Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `openat(self, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | ...)`.
    ///
    /// # References
    /// openat(2)
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        self.openat(name, DIR_FLAGS, 0).map(Dir)
    }

    /// `openat(self, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)`.
    ///
    /// `O_NONBLOCK` has no effect on regular files; it only keeps a FIFO from hanging the open.
    ///
    /// # References
    /// openat(2)
    pub fn open_file(
        &self,
        name: &str,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<OwnedFd> {
        self.openat(name, flags | OPEN_FLAGS, mode)
    }

    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = c_name(name)?;
        let dir = self.0.as_raw_fd();
        // SAFETY: `c` is a valid NUL-terminated string; `dir` is an open descriptor we own.
        let fd =
            retry(|| cvt(unsafe { libc::openat(dir, c.as_ptr(), flags, mode as libc::c_uint) }))?;
        // SAFETY: the kernel just returned this descriptor to us alone.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `fstat(self)`.
    pub fn stat(&self) -> io::Result<Stat> {
        stat(self.0.as_fd())
    }

    /// `fstatat(self, name, AT_SYMLINK_NOFOLLOW)`: a symlink is described, not followed.
    ///
    /// # References
    /// fstatat(2)
    pub fn stat_at(&self, name: &str) -> io::Result<Stat> {
        let c = c_name(name)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out-pointer.
        cvt(unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                c.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        // SAFETY: fstatat succeeded and filled it.
        Ok(Stat::from_raw(&unsafe { st.assume_init() }))
    }

    /// `mkdirat(self, name, mode)` (the umask applies; see [`Dir::set_mode`]).
    ///
    /// # References
    /// mkdirat(2)
    pub fn create_dir(&self, name: &str, mode: libc::mode_t) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        cvt(unsafe { libc::mkdirat(self.0.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
    }

    /// `fchmod(self, mode)`.
    ///
    /// # References
    /// fchmod(2)
    pub fn set_mode(&self, mode: libc::mode_t) -> io::Result<()> {
        // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
        // borrowed, so it stays open for the call.
        cvt(unsafe { libc::fchmod(self.0.as_raw_fd(), mode) }).map(drop)
    }

    /// `unlinkat(self, name, 0)`: removes a non-directory entry (a symlink itself, never its
    /// target).
    ///
    /// # References
    /// unlinkat(2)
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        self.unlinkat(name, 0)
    }

    /// `unlinkat(self, name, AT_REMOVEDIR)`: removes an empty directory (`ENOTDIR` for a
    /// symlink).
    ///
    /// # References
    /// unlinkat(2)
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        self.unlinkat(name, libc::AT_REMOVEDIR)
    }

    fn unlinkat(&self, name: &str, flags: libc::c_int) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        cvt(unsafe { libc::unlinkat(self.0.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
    }

    /// `renameat(self, from, self, to)`: atomically replaces `to`.
    ///
    /// # References
    /// renameat(2)
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        let d = self.0.as_raw_fd();
        // SAFETY: both are valid NUL-terminated strings for the duration of the call.
        cvt(unsafe { libc::renameat(d, f.as_ptr(), d, t.as_ptr()) }).map(drop)
    }

    /// `linkat(self, from, self, to, 0)`: gives the file `from` a second name `to` (`EEXIST`
    /// if taken); a symlink `from` is linked itself, not followed.
    ///
    /// # References
    /// linkat(2)
    pub fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        let d = self.0.as_raw_fd();
        // SAFETY: both are valid NUL-terminated strings for the duration of the call.
        cvt(unsafe { libc::linkat(d, f.as_ptr(), d, t.as_ptr(), 0) }).map(drop)
    }

    /// `fdopendir` + `readdir`: the names in the directory, without `.` and `..`.
    ///
    /// # References
    /// fdopendir(3), readdir(3)
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        // A descriptor of its own (its own read position), which `closedir` closes.
        let dot = c".";
        // SAFETY: `dot` is a valid NUL-terminated string; the descriptor is ours.
        let fd =
            retry(|| cvt(unsafe { libc::openat(self.0.as_raw_fd(), dot.as_ptr(), DIR_FLAGS) }))?;
        // SAFETY: the kernel just returned this descriptor to us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fd` is an open directory descriptor; on success the DIR owns it.
        let dirp = unsafe { libc::fdopendir(fd.as_raw_fd()) };
        if dirp.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(fd);
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; readdir reports its errors only through it.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `dirp` is a live DIR from fdopendir, used by this thread only.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) { Ok(()) } else { Err(e) };
            }
            // SAFETY: readdir returned a valid entry whose `d_name` is NUL-terminated and lives
            // until the next readdir on `dirp`; we copy it out now.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                out.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: `dirp` is live and closed exactly once; it closes the descriptor it owns.
        unsafe { libc::closedir(dirp) };
        result.map(|()| out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        let d = Dir::open(Path::new("/tmp")).unwrap();
        assert!(d.stat_at("../etc").is_err());
        assert!(d.stat_at("").is_err());
        assert!(d.stat_at("..").is_err());
        assert!(d.open_dir("a\0b").is_err());
    }

    #[test]
    fn symlinks_and_fifos_are_not_followed_or_waited_for() {
        struct Gone(std::path::PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let base = std::env::temp_dir().join(format!("procshare-dir-test-{}", std::process::id()));
        std::fs::create_dir(&base).unwrap();
        let _gone = Gone(base.clone());
        let d = Dir::open(&base).unwrap();
        std::os::unix::fs::symlink("/tmp", base.join("link")).unwrap();
        let c = CString::new(base.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // With O_DIRECTORY, Linux reports a symlink as ENOTDIR; either way it is not followed.
        let e = d.open_dir("link").unwrap_err().raw_os_error();
        assert!(matches!(e, Some(libc::ELOOP | libc::ENOTDIR)), "{e:?}");
        assert_eq!(
            d.open_file("link", libc::O_RDONLY, 0).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        assert!(!d.stat_at("link").unwrap().is_dir());
        // A FIFO with no writer: without O_NONBLOCK this would block forever.
        let f = d.open_file("fifo", libc::O_RDONLY, 0).unwrap();
        assert!(!stat(f.as_fd()).unwrap().is_file());
        let mut names = d.entries().unwrap();
        names.sort();
        assert_eq!(names, vec![OsString::from("fifo"), OsString::from("link")]);
        d.remove_file("link").unwrap();
        d.remove_file("fifo").unwrap();
        assert!(d.entries().unwrap().is_empty());
    }
}
