//! Implementing ports yourself: a link fetcher with canned previews and an event-bus
//! decorator, plugged into the engine's `Ports`.
//!
//! Run with `cargo run -p shoot-examples --example custom_port`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    shoot_examples::custom_port(&mut out).await
}
