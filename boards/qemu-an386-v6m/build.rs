//! Memory map, link arguments and the embedded model (see `bitspike-board-build`).
fn main() {
    bitspike_board_build::build(include_str!("memory.x"));
}
