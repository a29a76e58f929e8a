fn main() {
    rpcgen::Builder::new()
        .out_name("tracker")
        .compile(&["../../schemas/tracker/tracker.service"])
        .expect("the Tracker schemas compile");
}
