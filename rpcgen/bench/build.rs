fn main() {
    rpcgen::Builder::new()
        .compile(&["../../schemas/bench/report.fbs"])
        .expect("the benchmark schema compiles");
}
