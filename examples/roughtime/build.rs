fn main() {
    rpcgen::Builder::new()
        .out_name("roughtime")
        .compile(&["../../schemas/roughtime/roughtime.service"])
        .expect("the Roughtime schemas compile");
}
