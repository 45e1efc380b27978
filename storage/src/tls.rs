//! One TLS crypto provider for every HTTP client of the process: rustls with *ring*, which builds
//! without a C toolchain beyond `cc` (aws-lc-rs would need cmake).

/// Installs *ring* as the process's default rustls provider, once; later calls do nothing.
pub fn install_ring() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
