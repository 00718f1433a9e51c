//! The only `unsafe` code in the workspace: OpenSSL entry points that `openssl-sys` does not declare, and
//! C macros (`DTLSv1_get_timeout`, `DTLSv1_handle_timeout`) expressed through `SSL_ctrl`, each behind a safe
//! wrapper that takes a borrowed [`SslRef`]; and the `gettimeofday` interposition that runs OpenSSL's DTLS
//! timers in the caller's time.
//!
//! Every function here is declared exactly as in OpenSSL 3.0's public headers (`ssl.h`, `dtls1.h`,
//! `bio.h`). The wrappers only pass pointers that the `openssl` crate keeps alive for the duration of the
//! call (the `SslRef` borrow) or that they allocate and free themselves.
//!
//! # Virtual time: why and how
//!
//! OpenSSL 3.0 keeps the DTLS retransmission timer itself: when a flight is sent it stores
//! `next_timeout = gettimeofday() + duration` (the duration comes from our timer callback), and
//! `DTLSv1_get_timeout` / `DTLSv1_handle_timeout` compare that against `gettimeofday()` again. There is no
//! API to say "the timer has expired" or "it is now T", and the duration is fixed when the timer starts, so
//! a sans-IO core cannot make OpenSSL follow the caller's `now` through the public API.
//!
//! OpenSSL reads that clock only through the libc symbol `gettimeofday` (`libssl.so.3` imports it:
//! `nm -D libssl.so.3 | grep gettimeofday`). This module defines a `#[no_mangle] extern "C" fn
//! gettimeofday` in the program. The executable's definition comes first in the dynamic symbol lookup
//! order, so the linker exports it and `libssl` binds to it instead of glibc's. Our definition returns a
//! thread-local *virtual* time when one is set, and otherwise the real time
//! (`clock_gettime(CLOCK_REALTIME)`, exactly what glibc's `gettimeofday` returns).
//!
//! Every [`crate::DtlsSession`] maps the caller's `now: Instant` to a virtual `timeval`
//! (`VIRTUAL_EPOCH` seconds + (now - the session's creation `now`)) and sets it, with a [`TimeGuard`],
//! around *every* call into OpenSSL for that session. OpenSSL's whole timer logic then runs in the caller's
//! time: the retransmission schedule (100 ms doubling to [`crate::MAX_RETRANSMIT`]) is measured in the
//! caller's time, `poll_timeout` is exact, and a simulator can run handshakes in virtual time.
//!
//! What it affects, and what not:
//! * only `gettimeofday` calls made *on the thread that set the override, while it is set* (that is,
//!   inside our calls into OpenSSL); every other caller in the process, and every other thread, sees the
//!   real time;
//! * certificate validity checks use `time()`, which does not go through `gettimeofday`: they keep using the
//!   real clock (a certificate is checked against the real date even in a simulation);
//! * the guard restores the previous value on drop, so it nests and is panic-safe.
//!
//! Limits: a program (or another library linked statically into it) that defines its own `gettimeofday`
//! fails to link with a duplicate symbol. With a statically linked OpenSSL, or a platform where the
//! interposition does not take effect, OpenSSL keeps reading the real clock; [`virtual_time_supported`]
//! detects this once (a probe handshake under a virtual time) and the sessions then behave as before
//! (timers on the real clock, `poll_timeout` translated relative to the last `now`).

#![allow(unsafe_code)]

use std::cell::Cell;
use std::os::raw::{c_int, c_long, c_uint, c_void};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslRef, SslStream};
use openssl_sys::SSL;

/// OpenSSL's opaque `BIO_ADDR` (only ever handled by pointer).
#[repr(C)]
struct BioAddr {
    _opaque: [u8; 0],
}

/// `DTLS_CTRL_GET_TIMEOUT` from `ssl.h` (the `DTLSv1_get_timeout` macro).
const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
/// `DTLS_CTRL_HANDLE_TIMEOUT` from `ssl.h` (the `DTLSv1_handle_timeout` macro).
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

/// `DTLS_timer_cb` from `ssl.h`: returns the next timeout in microseconds given the previous one
/// (0 on the first call of a flight).
type DtlsTimerCb = extern "C" fn(s: *mut SSL, timer_us: c_uint) -> c_uint;

extern "C" {
    fn DTLSv1_listen(s: *mut SSL, client: *mut BioAddr) -> c_int;
    fn BIO_ADDR_new() -> *mut BioAddr;
    fn BIO_ADDR_free(addr: *mut BioAddr);
    fn DTLS_set_timer_cb(s: *mut SSL, cb: Option<DtlsTimerCb>);
    fn DTLS_get_data_mtu(s: *const SSL) -> usize;
    fn SSL_has_pending(s: *const SSL) -> c_int;
}

/// Result of [`dtls_listen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenResult {
    /// A ClientHello with a valid cookie was read; continue with `SSL_accept`.
    Accepted,
    /// Nothing accepted: a HelloVerifyRequest may have been written, or the input was ignored.
    Pending,
    /// A fatal error (see the OpenSSL error queue).
    Failed,
}

/// `DTLSv1_listen(ssl, addr)`: reads datagrams from the SSL's read BIO until it would block, answering
/// cookie-less ClientHellos with a HelloVerifyRequest on the write BIO, without allocating per-client state.
///
/// The peer address that OpenSSL writes into the scratch `BIO_ADDR` is discarded: our in-memory BIO cannot
/// report one, so the caller keeps the address in the SSL's ex_data for the cookie callbacks.
pub(crate) fn dtls_listen<S: std::io::Read + std::io::Write>(
    stream: &mut SslStream<S>,
) -> ListenResult {
    let ssl = stream.ssl();
    // SAFETY: BIO_ADDR_new takes no arguments and returns either NULL or a fresh, owned BIO_ADDR.
    let addr = unsafe { BIO_ADDR_new() };
    if addr.is_null() {
        return ListenResult::Failed;
    }
    // SAFETY: `ssl` is the live SSL object of `stream`, which we borrow exclusively (`&mut`) for the whole
    // call, so nothing else uses the SSL or its BIO meanwhile (the `SslRef` type is an opaque cell, so
    // OpenSSL mutating it behind the shared reborrow is allowed). `addr` is the valid BIO_ADDR allocated
    // above; DTLSv1_listen only writes into it and keeps no reference to either.
    let ret = unsafe { DTLSv1_listen(ssl.as_ptr(), addr) };
    // SAFETY: `addr` came from BIO_ADDR_new above, is freed exactly once, and is not used afterwards.
    unsafe { BIO_ADDR_free(addr) };
    match ret {
        r if r > 0 => ListenResult::Accepted,
        0 => ListenResult::Pending,
        _ => ListenResult::Failed,
    }
}

/// Our retransmission schedule: [`crate::INITIAL_RETRANSMIT`] for the first try of each flight, doubling
/// up to [`crate::MAX_RETRANSMIT`]. Never panics (it is called from C).
extern "C" fn timer_cb(_s: *mut SSL, timer_us: c_uint) -> c_uint {
    let initial = crate::INITIAL_RETRANSMIT.as_micros() as c_uint;
    let max = crate::MAX_RETRANSMIT.as_micros() as c_uint;
    if timer_us == 0 {
        initial
    } else {
        timer_us.saturating_mul(2).min(max)
    }
}

/// `DTLS_set_timer_cb(ssl, ...)`: installs the short retransmission schedule of [`timer_cb`].
pub(crate) fn set_short_timer(ssl: &mut SslRef) {
    // SAFETY: `ssl` is a live SSL object; `timer_cb` is a plain `extern "C"` function with the exact
    // `DTLS_timer_cb` signature and 'static lifetime, and it does not touch the SSL pointer.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), Some(timer_cb)) };
}

/// `DTLS_get_data_mtu(ssl)`: the largest application payload that fits one datagram with the negotiated
/// cipher, or `None` before a cipher is negotiated.
pub(crate) fn data_mtu(ssl: &SslRef) -> Option<usize> {
    // SAFETY: `ssl` is a live SSL object borrowed for the call; the function only reads from it.
    let mtu = unsafe { DTLS_get_data_mtu(ssl.as_ptr()) };
    (mtu > 0).then_some(mtu)
}

/// `SSL_has_pending(ssl)`: whether OpenSSL holds received bytes not yet returned by `SSL_read`:
/// the rest of a datagram that carried several records, buffered records (application data
/// that arrived during the handshake, or records already processed). When false, another
/// `SSL_read` could only read a new datagram from the BIO.
pub(crate) fn has_pending(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a live SSL object borrowed for the call; SSL_has_pending only reads the
    // record layer's buffers and queues, and keeps no reference.
    unsafe { SSL_has_pending(ssl.as_ptr()) == 1 }
}

/// `DTLSv1_get_timeout(ssl, &tv)`: time left until OpenSSL's retransmission timer fires (measured by
/// OpenSSL against `gettimeofday`: the virtual time while a [`TimeGuard`] lives), or `None` when no timer
/// runs. OpenSSL reports anything under 15 ms as 0.
pub(crate) fn get_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl` is a live SSL object; for DTLS_CTRL_GET_TIMEOUT, SSL_ctrl writes one `struct timeval`
    // through `parg`, which points to the local `tv` that outlives the call.
    let ret = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast::<c_void>(),
        )
    };
    if ret <= 0 {
        return None;
    }
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// Outcome of [`handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutResult {
    /// The timer had not expired (or none was running): nothing done.
    NotExpired,
    /// The timer expired and the last flight was retransmitted.
    Retransmitted,
    /// Too many retransmissions or a write failure: the handshake is dead.
    Failed,
}

/// `DTLSv1_handle_timeout(ssl)`: retransmits the last flight if OpenSSL's timer expired (against
/// `gettimeofday`, see [`get_timeout`]).
pub(crate) fn handle_timeout<S: std::io::Read + std::io::Write>(
    stream: &mut SslStream<S>,
) -> TimeoutResult {
    let ssl = stream.ssl();
    // SAFETY: `ssl` is the live SSL object of `stream`, borrowed exclusively for the call (see
    // `dtls_listen` on mutation through the opaque `SslRef`); DTLS_CTRL_HANDLE_TIMEOUT takes no pointer
    // argument (`parg` is NULL) and may write to the SSL's BIO, which the SslStream keeps alive.
    let ret: c_long = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    };
    match ret {
        r if r > 0 => TimeoutResult::Retransmitted,
        0 => TimeoutResult::NotExpired,
        _ => TimeoutResult::Failed,
    }
}

/// `SSL_alert_desc_string_long(code)`: OpenSSL's name for a TLS alert description code.
pub(crate) fn alert_description(code: u8) -> String {
    // SAFETY: SSL_alert_desc_string_long accepts any int and returns a pointer to a static,
    // NUL-terminated string (the "unknown" string for codes it does not know); it is never NULL.
    let ptr = unsafe { openssl_sys::SSL_alert_desc_string_long(c_int::from(code)) };
    if ptr.is_null() {
        return format!("alert {code}");
    }
    // SAFETY: `ptr` is non-NULL and points to a static NUL-terminated C string owned by OpenSSL.
    let s = unsafe { std::ffi::CStr::from_ptr(ptr) };
    s.to_string_lossy().into_owned()
}

/// Seconds since the Unix epoch at which every virtual clock starts (2001-09-09): far from the real date,
/// so the probe in [`virtual_time_supported`] cannot mistake the real clock for the virtual one.
const VIRTUAL_EPOCH_SECS: i64 = 1_000_000_000;

thread_local! {
    /// The virtual time `gettimeofday` reports on this thread, as (seconds, microseconds); `None` = real.
    static VIRTUAL_NOW: Cell<Option<(i64, i64)>> = const { Cell::new(None) };
}

/// The process's `gettimeofday`: OpenSSL's DTLS timers read the clock through it (see the module docs).
/// Returns the thread's virtual time while a [`TimeGuard`] is alive, else the real time. Never panics.
///
/// # Safety
/// Same contract as POSIX `gettimeofday`: `tv` is NULL or points to a writable `struct timeval`; `tz` is
/// ignored (it is obsolete, glibc ignores it too).
// `pub` and unmangled so the linker exports it to libssl; nothing in Rust calls it.
#[allow(unreachable_pub)]
#[no_mangle]
pub unsafe extern "C" fn gettimeofday(tv: *mut libc::timeval, _tz: *mut c_void) -> c_int {
    // `try_with`: during thread teardown the thread-local may be gone; fall back to the real clock.
    let virtual_now = VIRTUAL_NOW.try_with(Cell::get).ok().flatten();
    let (sec, usec) = match virtual_now {
        Some(v) => v,
        None => {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec on our stack; CLOCK_REALTIME always exists.
            if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
                return -1;
            }
            (ts.tv_sec, ts.tv_nsec / 1000)
        }
    };
    if !tv.is_null() {
        // SAFETY: the caller passes NULL or a valid `struct timeval` (POSIX contract, checked non-NULL).
        unsafe {
            (*tv).tv_sec = sec;
            (*tv).tv_usec = usec;
        }
    }
    0
}

/// Maps a caller's `Instant` onto the virtual `timeval` OpenSSL sees: [`VIRTUAL_EPOCH_SECS`] +
/// (`now` - `origin`), to the microsecond (an earlier `now` counts as `origin`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VirtualClock {
    origin: Instant,
}

impl VirtualClock {
    /// A clock whose virtual epoch is the caller's `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        VirtualClock { origin }
    }

    fn timeval(&self, now: Instant) -> (i64, i64) {
        let d = now.saturating_duration_since(self.origin);
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
        (
            VIRTUAL_EPOCH_SECS.saturating_add(secs),
            i64::from(d.subsec_micros()),
        )
    }

    /// Makes OpenSSL see `now` on this thread until the guard drops.
    pub(crate) fn enter(&self, now: Instant) -> TimeGuard {
        TimeGuard::set(Some(self.timeval(now)))
    }
}

/// Sets this thread's virtual time; restores the previous value (nested guards, panics) on drop.
#[derive(Debug)]
#[must_use = "the virtual time is only set while the guard lives"]
pub(crate) struct TimeGuard {
    previous: Option<(i64, i64)>,
}

impl TimeGuard {
    fn set(value: Option<(i64, i64)>) -> Self {
        let previous = VIRTUAL_NOW.with(|v| v.replace(value));
        TimeGuard { previous }
    }
}

impl Drop for TimeGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        // `try_with`: never panic in drop, even during thread teardown.
        let _ = VIRTUAL_NOW.try_with(|v| v.set(previous));
    }
}

/// Whether OpenSSL's DTLS timers follow the virtual time set by [`TimeGuard`] in this process (see the
/// module docs). Probed once: a client handshake is started under virtual time T (OpenSSL's default 1 s
/// timer, no callback), then `DTLSv1_get_timeout` is asked under T + 0.5 s; with the interposition in
/// effect it reports 0.5 s left, with the real clock about 1 s (or 0) instead.
pub(crate) fn virtual_time_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let supported = probe_virtual_time();
        if !supported {
            tracing::warn!(
                "OpenSSL does not read the clock through this program's gettimeofday (statically linked?); \
                 DTLS retransmission timers run on the real clock"
            );
        }
        supported
    })
}

fn probe_virtual_time() -> bool {
    use openssl::ssl::{HandshakeError, Ssl, SslContext, SslMethod};
    let Ok(ctx) = SslContext::builder(SslMethod::dtls()).map(|b| b.build()) else {
        return false;
    };
    let Ok(ssl) = Ssl::new(&ctx) else {
        return false;
    };
    let clock = VirtualClock::new(Instant::now());
    let t = Instant::now();
    let guard = clock.enter(t);
    let stream = match ssl.connect(crate::bio::Channel::default()) {
        Err(HandshakeError::WouldBlock(mid)) => mid,
        _ => return false,
    };
    drop(guard);
    let left = {
        let _guard = clock.enter(t + Duration::from_millis(500));
        get_timeout(stream.ssl())
    };
    // OpenSSL 3.0 starts the first flight with a 1 s timer when no callback is installed.
    left.is_some_and(|l| l >= Duration::from_millis(450) && l <= Duration::from_millis(550))
}
