//! Process-wide libgit2 settings, set in one place: object caching (bounded), which objects
//! may be cached, and hash re-verification of objects read from the repository.

use std::sync::Once;

/// Upper bound of libgit2's object cache: enough for the few big `models/` trees a pass or a
/// check reads again and again, small beside the daemon's own state.
pub const CACHE_MAX_BYTES: usize = 24 << 20;

/// Configure libgit2 once per process (later calls do nothing):
/// * the object cache is on, bounded by [`CACHE_MAX_BYTES`], and may hold trees of any size
///   (its default skips trees over 4 KiB, so a big registry's `models/` tree would be parsed
///   again on every path lookup);
/// * objects are not re-hashed when read (the repository is ours and git already verified
///   them when they arrived).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        git2::opts::enable_caching(true);
        git2::opts::strict_hash_verification(false);
        // SAFETY: both calls set process-wide limits of libgit2's object cache, once, before
        // this process reads objects through them; they change what is cached, never what is
        // read. GIT_OPT_SET_CACHE_MAX_SIZE takes one `ssize_t`.
        unsafe {
            let _ = git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 8 << 20);
            libgit2_sys::git_libgit2_opts(
                libgit2_sys::GIT_OPT_SET_CACHE_MAX_SIZE as libc::c_int,
                CACHE_MAX_BYTES as libc::ssize_t,
            );
        }
    });
}
