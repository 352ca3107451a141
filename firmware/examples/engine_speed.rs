//! The engine alone, for profiling (`perf record target/release/examples/engine_speed`):
//! the same issue → call → finish cycles as `hallq bench`, for longer.
fn main() {
    let cycles = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let (rate, refused) = hallq::bench::engine_commands_per_sec(cycles);
    println!("engine alone: {rate:.0} commands/s over {cycles} cycles ({refused} refused)");
}
