//! The one way the engine takes a std mutex. A leaf: it names nothing, so
//! every file of the engine can use it without closing an import circle.

/// A mutex's guard even after a panic elsewhere: every value kept behind
/// one in the engine stays consistent at each unlock, so poisoning carries
/// no news.
pub(crate) fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
