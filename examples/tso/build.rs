fn main() {
    rpcgen::Builder::new()
        .out_name("tso")
        .compile(&["../../schemas/tso/tso.service"])
        .expect("the timestamp oracle's schemas compile");
}
