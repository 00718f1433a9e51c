//! The only `unsafe` code in the workspace: OpenSSL entry points that `openssl-sys` does not declare, and
//! C macros (`DTLSv1_get_timeout`, `DTLSv1_handle_timeout`) expressed through `SSL_ctrl`, each behind a safe
//! wrapper that takes a borrowed [`SslRef`].
//!
//! Every function here is declared exactly as in OpenSSL 3.0's public headers (`ssl.h`, `dtls1.h`,
//! `bio.h`). The wrappers only pass pointers that the `openssl` crate keeps alive for the duration of the
//! call (the `SslRef` borrow) or that they allocate and free themselves.

#![allow(unsafe_code)]

use std::os::raw::{c_int, c_long, c_uint, c_void};
use std::time::Duration;

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

/// `DTLSv1_get_timeout(ssl, &tv)`: time left until OpenSSL's retransmission timer fires (measured by
/// OpenSSL on the real clock), or `None` when no timer runs.
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

/// `DTLSv1_handle_timeout(ssl)`: retransmits the last flight if OpenSSL's (real-clock) timer expired.
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
