//! The Shoot engine embedded in a program: two users, a direct room, messages and their
//! status lifecycle, a reaction, a pin, a thread reply and read receipts — all in-process.
//!
//! Run with `cargo run -p shoot-examples --example embedded_chat`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    shoot_examples::embedded_chat(&mut out).await
}
