//! The `drawbridge` command line (commands arrive with the server).

fn main() {}
